//! The HTTP API, locally: requests on a loopback port become API Gateway HTTP API (payload 2.0)
//! events for the route's function, after the JWT authorizer's checks, and the function's answer
//! becomes the HTTP response — what API Gateway does between a client and Lambda.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext,
    ApiGatewayV2httpRequestContextHttpDescription, ApiGatewayV2httpResponse,
};
use aws_lambda_events::encodings::Body as LambdaBody;
use aws_lambda_events::query_map::QueryMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

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
        match_path(&self.path, path)
    }
}

/// The path parameters if `path` matches `template` (`/orders/{orderId}`).
fn match_path(template: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let template: Vec<&str> = template.trim_matches('/').split('/').collect();
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

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
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
        let mut event = build_event(
            &route.route_key(),
            &parts,
            &body,
            params,
            authorizer,
            peer,
            request_id,
        );
        if let Ok(value) = HeaderValue::from_str(&trace) {
            event.headers.insert("x-amzn-trace-id", value);
        }
        let Ok(event) = serde_json::to_vec(&event) else {
            return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        };
        let payload = match route.function.invoke_traced(&event, Some(&trace)).await {
            Ok(payload) => payload,
            Err(e) => {
                self.console.error(&e.to_string());
                return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
            }
        };
        to_response(&payload)
    }
}

/// The payload 2.0 event API Gateway sends for this request, as `aws_lambda_events` (the
/// functions' own parsing) types it.
fn build_event(
    route_key: &str,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    params: BTreeMap<String, String>,
    authorizer: Option<jwt::Verified>,
    peer: SocketAddr,
    request_id: &str,
) -> ApiGatewayV2httpRequest {
    // API Gateway joins repeated headers with commas and passes cookies on their own.
    let mut joined: BTreeMap<String, String> = BTreeMap::new();
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
        joined
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let header = |name: &str| joined.get(name).cloned();
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let mut query: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in form_urlencoded::parse(raw_query.as_bytes()) {
        query
            .entry(k.into_owned())
            .or_default()
            .push(v.into_owned());
    }
    let now = chrono::Utc::now();
    let content_type = header("content-type").unwrap_or_default();
    let text = is_text(&content_type) && std::str::from_utf8(body).is_ok();

    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = parts.method.clone();
    http.path = Some(parts.uri.path().to_owned());
    http.protocol = Some("HTTP/1.1".to_owned());
    http.source_ip = Some(peer.ip().to_string());
    http.user_agent = header("user-agent");
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.account_id = Some("123456789012".to_owned());
    context.apiid = Some("local".to_owned());
    context.domain_name = Some(header("host").unwrap_or_else(|| "127.0.0.1".into()));
    context.domain_prefix = Some("local".to_owned());
    context.http = http;
    context.request_id = Some(request_id.to_owned());
    context.route_key = Some(route_key.to_owned());
    context.stage = Some("$default".to_owned());
    context.time = Some(now.format("%d/%b/%Y:%H:%M:%S %z").to_string());
    context.time_epoch = now.timestamp_millis();
    context.authorizer = authorizer.map(|verified| {
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims = verified.claims.into_iter().collect();
        jwt.scopes = (!verified.scopes.is_empty()).then_some(verified.scopes);
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        authorizer
    });

    let mut headers = HeaderMap::with_capacity(joined.len());
    for (name, value) in joined {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(name, value);
        }
    }
    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".to_owned());
    event.route_key = Some(route_key.to_owned());
    event.raw_path = Some(parts.uri.path().to_owned());
    event.raw_query_string = Some(raw_query);
    event.cookies = (!cookies.is_empty()).then_some(cookies);
    event.headers = headers;
    event.query_string_parameters = QueryMap::from(query);
    event.path_parameters = params.into_iter().collect();
    event.request_context = context;
    if !body.is_empty() {
        event.body = Some(if text {
            String::from_utf8_lossy(body).into_owned()
        } else {
            STANDARD.encode(body)
        });
        event.is_base64_encoded = !text;
    }
    event
}

/// The HTTP response for a function's payload 2.0 answer.
fn to_response(payload: &[u8]) -> Response<Full<Bytes>> {
    let Ok(mut value) = serde_json::from_slice::<Value>(payload) else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    if value.get("statusCode").is_none() {
        if value.get("errorType").is_some() {
            return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
        // Without a statusCode, API Gateway answers the payload itself as JSON with 200.
        let mut response = Response::new(Full::new(Bytes::copy_from_slice(payload)));
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        return response;
    }
    // API Gateway reads a missing `cookies` as none; the type requires the member.
    if let Some(object) = value.as_object_mut() {
        object.entry("cookies").or_insert_with(|| json!([]));
    }
    let Ok(answer) = serde_json::from_value::<ApiGatewayV2httpResponse>(value) else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    let body = match answer.body {
        Some(LambdaBody::Text(text)) if answer.is_base64_encoded => {
            STANDARD.decode(text).unwrap_or_default()
        }
        Some(LambdaBody::Text(text)) => text.into_bytes(),
        Some(LambdaBody::Binary(bytes)) => bytes,
        Some(LambdaBody::Empty) | None => Vec::new(),
        Some(_) => Vec::new(),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = u16::try_from(answer.status_code)
        .ok()
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.extend(answer.headers);
    for cookie in answer.cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
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

    #[test]
    fn the_event_is_what_the_functions_parse() {
        let request = hyper::Request::get("/orders/o%201?limit=5&tag=a&tag=b+c")
            .header("cookie", "a=1; b=2")
            .header("accept", "text/plain")
            .header("accept", "application/json")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let params = match_path("/orders/{orderId}", parts.uri.path()).unwrap();
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let event = build_event(
            "GET /orders/{orderId}",
            &parts,
            &Bytes::new(),
            params,
            None,
            peer,
            "r-1",
        );
        let json = serde_json::to_string(&event).unwrap();
        let parsed: ApiGatewayV2httpRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed.path_parameters["orderId"], "o 1");
        assert_eq!(parsed.query_string_parameters.first("limit"), Some("5"));
        assert_eq!(
            parsed.query_string_parameters.all("tag"),
            Some(vec!["a", "b c"])
        );
        assert_eq!(parsed.headers["accept"], "text/plain,application/json");
        assert_eq!(parsed.cookies, Some(vec!["a=1".into(), "b=2".into()]));
        assert_eq!(parsed.request_context.http.method, hyper::Method::GET);
        assert_eq!(parsed.request_context.request_id.as_deref(), Some("r-1"));
        assert_eq!(parsed.route_key.as_deref(), Some("GET /orders/{orderId}"));
    }
}
