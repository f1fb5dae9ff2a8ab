//! The HTTP API, locally: requests on a loopback port become API Gateway HTTP API (payload 2.0)
//! events for the route's function, after the JWT authorizer's checks, and the function's answer
//! becomes the HTTP response — what API Gateway does between a client and Lambda.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::{Map, Value, json};

use crate::console::Console;
use crate::jwt;
use crate::rie::FunctionPool;

/// A route of the template with the function behind it.
pub struct ApiRoute {
    pub method: String,
    pub path: String,
    /// `None`: no authorizer (a public route). `Some`: a token is required, holding one of these
    /// scopes when the list is not empty.
    pub scopes: Option<Vec<String>>,
    pub function: Arc<FunctionPool>,
}

impl ApiRoute {
    fn route_key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The path parameters if `path` matches this route's template.
    fn matches(&self, path: &str) -> Option<BTreeMap<String, String>> {
        let template: Vec<&str> = self.path.trim_matches('/').split('/').collect();
        let actual: Vec<&str> = path.trim_matches('/').split('/').collect();
        if template.len() != actual.len() {
            return None;
        }
        let mut params = BTreeMap::new();
        for (t, a) in template.iter().zip(&actual) {
            match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                Some(name) if !a.is_empty() => {
                    params.insert(name.to_owned(), percent_decode(a));
                }
                Some(_) => return None,
                None if t == a => {}
                None => return None,
            }
        }
        Some(params)
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(
                std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                16,
            )
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// API Gateway in front of the functions.
pub struct Gateway {
    pub routes: Vec<ApiRoute>,
    pub secret: Vec<u8>,
    pub console: Arc<Console>,
}

fn message(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(
        json!({ "message": text }).to_string(),
    )));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

fn is_text(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    ct.is_empty()
        || ct.starts_with("text/")
        || ct.contains("json")
        || ct.contains("xml")
        || ct.contains("x-www-form-urlencoded")
        || ct.contains("javascript")
}

impl Gateway {
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Full<Bytes>> {
        let request_id = format!("{:016x}=", fastrand::u64(..));
        let mut response = self.route(request, peer, &request_id).await;
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("apigw-requestid", value);
        }
        response
    }

    async fn route(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
        request_id: &str,
    ) -> Response<Full<Bytes>> {
        let method = request.method().as_str().to_owned();
        let path = request.uri().path().to_owned();
        let Some((route, params)) = self
            .routes
            .iter()
            .filter(|r| r.method == method)
            .find_map(|r| r.matches(&path).map(|p| (r, p)))
        else {
            return message(StatusCode::NOT_FOUND, "Not Found");
        };

        let authorizer = match &route.scopes {
            None => None,
            Some(required) => {
                let token = request
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| {
                        v.strip_prefix("Bearer ")
                            .or_else(|| v.strip_prefix("bearer "))
                    });
                let Some(verified) = token.and_then(|t| jwt::verify(&self.secret, t.trim())) else {
                    return message(StatusCode::UNAUTHORIZED, "Unauthorized");
                };
                if !required.is_empty() && !required.iter().any(|s| verified.scopes.contains(s)) {
                    return message(StatusCode::FORBIDDEN, "Forbidden");
                }
                Some(verified)
            }
        };

        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return message(StatusCode::BAD_REQUEST, "Bad Request"),
        };
        // A new trace per request, as API Gateway starts one (X-Ray header format).
        let trace = format!(
            "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=1",
            chrono::Utc::now().timestamp(),
            fastrand::u128(..) >> 32,
            fastrand::u64(..)
        );
        let mut event = build_event(route, &parts, &body, params, authorizer, peer, request_id);
        event["headers"]["x-amzn-trace-id"] = Value::String(trace.clone());
        let payload = match route
            .function
            .invoke_traced(event.to_string().as_bytes(), Some(&trace))
            .await
        {
            Ok(payload) => payload,
            Err(e) => {
                self.console.error(&e.to_string());
                return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
            }
        };
        to_response(&payload)
    }
}

/// The payload 2.0 event API Gateway sends for this request.
fn build_event(
    route: &ApiRoute,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    params: BTreeMap<String, String>,
    authorizer: Option<jwt::Verified>,
    peer: SocketAddr,
    request_id: &str,
) -> Value {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let value = value.to_str().unwrap_or_default().to_owned();
        if name == "cookie" {
            cookies.extend(
                value
                    .split(';')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty()),
            );
            continue;
        }
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (
            percent_decode(&k.replace('+', " ")),
            percent_decode(&v.replace('+', " ")),
        );
        query
            .entry(k)
            .and_modify(|existing| {
                existing.push(',');
                existing.push_str(&v);
            })
            .or_insert(v);
    }
    let now = chrono::Utc::now();
    let content_type = headers.get("content-type").cloned().unwrap_or_default();
    let text = is_text(&content_type) && std::str::from_utf8(body).is_ok();
    let mut context = json!({
        "accountId": "123456789012",
        "apiId": "local",
        "domainName": headers.get("host").cloned().unwrap_or_else(|| "127.0.0.1".into()),
        "domainPrefix": "local",
        "http": {
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "protocol": "HTTP/1.1",
            "sourceIp": peer.ip().to_string(),
            "userAgent": headers.get("user-agent").cloned().unwrap_or_default(),
        },
        "requestId": request_id,
        "routeKey": route.route_key(),
        "stage": "$default",
        "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
        "timeEpoch": now.timestamp_millis(),
    });
    if let Some(verified) = authorizer {
        context["authorizer"] = json!({"jwt": {
            "claims": verified.claims,
            "scopes": (!verified.scopes.is_empty()).then_some(verified.scopes),
        }});
    }
    let mut event = Map::new();
    event.insert("version".into(), "2.0".into());
    event.insert("routeKey".into(), route.route_key().into());
    event.insert("rawPath".into(), parts.uri.path().into());
    event.insert("rawQueryString".into(), raw_query.into());
    if !cookies.is_empty() {
        event.insert("cookies".into(), json!(cookies));
    }
    event.insert("headers".into(), json!(headers));
    if !query.is_empty() {
        event.insert("queryStringParameters".into(), json!(query));
    }
    event.insert("requestContext".into(), context);
    if !params.is_empty() {
        event.insert("pathParameters".into(), json!(params));
    }
    if !body.is_empty() {
        let encoded = if text {
            String::from_utf8_lossy(body).into_owned()
        } else {
            STANDARD.encode(body)
        };
        event.insert("body".into(), encoded.into());
    }
    event.insert("isBase64Encoded".into(), (!text && !body.is_empty()).into());
    Value::Object(event)
}

/// The HTTP response for a function's payload 2.0 answer.
fn to_response(payload: &[u8]) -> Response<Full<Bytes>> {
    let Ok(value) = serde_json::from_slice::<Value>(payload) else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    if value.get("errorType").is_some() && value.get("statusCode").is_none() {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    }
    let Some(status) = value.get("statusCode").and_then(Value::as_u64) else {
        // Without a statusCode, API Gateway answers the payload itself as JSON with 200.
        let mut response = Response::new(Full::new(Bytes::copy_from_slice(payload)));
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        return response;
    };
    let body = match value.get("body").and_then(Value::as_str) {
        Some(b) if value.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) => {
            STANDARD.decode(b).unwrap_or_default()
        }
        Some(b) => b.as_bytes().to_vec(),
        None => Vec::new(),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(status as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    for (name, value) in value
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if let (Ok(name), Some(Ok(value))) = (
            HeaderName::from_bytes(name.as_bytes()),
            value.as_str().map(HeaderValue::from_str),
        ) {
            headers.insert(name, value);
        }
    }
    for cookie in value
        .get("cookies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(Ok(value)) = cookie.as_str().map(HeaderValue::from_str) {
            headers.append("set-cookie", value);
        }
    }
    response
}

/// Serves the gateway on a free loopback port until the returned sender is sent to or dropped;
/// answers the port, the sender and the server's task.
pub async fn serve_on_free_port(
    gateway: Arc<Gateway>,
) -> std::io::Result<(
    u16,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, gateway, async {
        let _ = stopped.await;
    }));
    Ok((port, stop, server))
}

/// Serves the gateway until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => continue,
            },
        };
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let gateway = gateway.clone();
                async move { Ok::<_, Infallible>(gateway.handle(request, peer).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_keep_status_headers_and_body() {
        let payload = json!({"statusCode": 201, "headers": {"location": "/orders/1", "content-type": "application/json"}, "body": "{\"a\":1}", "isBase64Encoded": false});
        let response = to_response(payload.to_string().as_bytes());
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["location"], "/orders/1");
        let error = to_response(br#"{"errorType":"Panic","errorMessage":"boom"}"#);
        assert_eq!(error.status(), 500);
    }

    #[test]
    fn percent_decoding_handles_escapes_and_plain_text() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("p-1"), "p-1");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
    }
}
