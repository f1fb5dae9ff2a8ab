//! The HTTP mapping: API Gateway HTTP API (payload 2.0) events in, JSON or problem+json out.
//!
//! Identity comes only from the JWT authorizer's claims in the request context; bodies are parsed
//! strictly (unknown members are errors) and every failure becomes an RFC 9457 problem.

pub mod body;
pub mod problem;

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_http::aws_lambda_events::apigw::ApiGatewayRequestAuthorizerJwtDescription;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::{Instrument, field};

use crate::metrics::Metrics;
pub use problem::{FieldError, Problem};

/// The largest request body the API takes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The caller, as the JWT authorizer vouched for them: `user` is the token's `sub`, as the
/// service's own user id type `U` (a `sub` that `U` refuses is no identity: 401).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller<U> {
    pub user: U,
    scopes: Vec<String>,
}

impl<U: TryFrom<String> + std::fmt::Display> Caller<U> {
    /// Reads `sub` and the scopes from `requestContext.authorizer.jwt`; no claims → 401.
    pub fn from_request(req: &Request) -> Result<Self, Problem> {
        let jwt = jwt_of(req).ok_or_else(Problem::unauthorized)?;
        let user = jwt
            .claims
            .get("sub")
            .and_then(|sub| U::try_from(sub.clone()).ok())
            .ok_or_else(Problem::unauthorized)?;
        let mut scopes = jwt.scopes.clone().unwrap_or_default();
        if let Some(scope) = jwt.claims.get("scope") {
            scopes.extend(scope.split_whitespace().map(str::to_owned));
        }
        Ok(Self { user, scopes })
    }

    /// The caller, who must hold `scope` (else 403).
    pub fn with_scope(req: &Request, scope: &str) -> Result<Self, Problem> {
        let caller = Self::from_request(req)?;
        if caller.scopes.iter().any(|s| s == scope) {
            tracing::Span::current().record("user_id", caller.user.to_string());
            Ok(caller)
        } else {
            Err(Problem::forbidden(scope))
        }
    }
}

fn jwt_of(req: &Request) -> Option<&ApiGatewayRequestAuthorizerJwtDescription> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.authorizer.as_ref()?.jwt.as_ref(),
        _ => None,
    }
}

/// The id a client sees for this request: API Gateway's request id, else Lambda's.
pub fn request_id(req: &Request) -> String {
    let api = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    };
    api.or_else(|| req.lambda_context_ref().map(|c| c.request_id.clone()))
        .unwrap_or_default()
}

/// The whole `main` of an HTTP function once its dependencies are built: each request runs in
/// [`serve`], and the metrics it recorded are flushed when it ends.
pub async fn run<F, Fut>(
    operation: &'static str,
    metrics: &Metrics,
    handler: F,
) -> Result<(), lambda_http::Error>
where
    F: Fn(Request) -> Fut + Sync,
    Fut: Future<Output = Result<Response<Body>, Problem>> + Send,
{
    lambda_http::run(lambda_http::service_fn(|req| {
        metrics.measure(serve(operation, req, &handler))
    }))
    .await
}

/// What is kept of the function's time for the answer to leave: the handler's budget ends this
/// long before the invocation's deadline.
pub const ANSWER_MARGIN: Duration = Duration::from_millis(1500);

/// How long the handler may run: until [`ANSWER_MARGIN`] before the invocation's deadline.
/// `None` without a deadline (a request built outside Lambda).
pub fn budget(req: &Request) -> Option<Duration> {
    let deadline = req.lambda_context_ref()?.deadline;
    if deadline == 0 {
        return None;
    }
    let deadline = UNIX_EPOCH + Duration::from_millis(deadline);
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    Some(left.saturating_sub(ANSWER_MARGIN))
}

/// Runs one route's handler inside the invocation's span and turns its problem into a response.
/// Handlers never fail the invocation: every outcome is an HTTP answer, also when the handler is
/// still waiting (on a hung or throttled dependency) as the function's time runs out: then it is
/// stopped at its [`budget`] and the answer is 503 with `Retry-After`.
pub async fn serve<F, Fut>(
    operation: &'static str,
    req: Request,
    handler: F,
) -> Result<Response<Body>, std::convert::Infallible>
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Result<Response<Body>, Problem>>,
{
    let request_id = request_id(&req);
    let lambda_request_id = req
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        operation,
        request_id = %request_id,
        lambda_request_id = %lambda_request_id,
        user_id = field::Empty,
        order_id = field::Empty,
        status = field::Empty,
        outcome = field::Empty,
    );
    let budget = budget(&req);
    async move {
        let outcome = match budget {
            Some(budget) => tokio::time::timeout(budget, handler(req))
                .await
                .unwrap_or_else(|_| Err(Problem::out_of_time(budget))),
            None => handler(req).await,
        };
        let response = match outcome {
            Ok(response) => {
                tracing::Span::current().record("outcome", "ok");
                response
            }
            Err(problem) => {
                let span = tracing::Span::current();
                span.record("outcome", problem.slug);
                if problem.status.is_server_error() {
                    tracing::error!(cause = problem.cause().unwrap_or(""), "request failed");
                } else if let Some(cause) = problem.cause() {
                    tracing::warn!(cause, "request refused");
                }
                problem.into_response(&request_id)
            }
        };
        tracing::Span::current().record("status", response.status().as_u16());
        tracing::info!("request done");
        Ok(response)
    }
    .instrument(span)
    .await
}

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Result<Response<Body>, Problem> {
    let text = serde_json::to_string(body).map_err(Problem::internal)?;
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// Checks media type and size, and parses the body as JSON (any JSON value).
pub fn json_body(req: &Request) -> Result<serde_json::Value, Problem> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !body::is_json_media_type(content_type) {
        return Err(Problem::unsupported_media_type());
    }
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Problem::payload_too_large(MAX_BODY_BYTES));
    }
    let mut parser = serde_json::Deserializer::from_slice(bytes);
    let malformed =
        |e: &serde_json::Error| Problem::malformed_json(format!("the body is not valid JSON: {e}"));
    match serde_path_to_error::deserialize(&mut parser) {
        Ok(body::UniqueJson(value)) => parser.end().map(|()| value).map_err(|e| malformed(&e)),
        // Well-formed JSON that repeats a member: name it, as any invalid member is named.
        Err(e) if e.inner().classify() == serde_json::error::Category::Data => {
            let pointer = pointer_of("", e.path());
            Err(Problem::validation(vec![FieldError::pointer(
                pointer,
                e.inner().to_string(),
            )]))
        }
        Err(e) => Err(malformed(e.inner())),
    }
}

/// Deserialises a JSON value into a strict shape, naming the failing member by JSON pointer.
pub fn from_json<T: DeserializeOwned>(
    value: serde_json::Value,
    prefix: &str,
) -> Result<T, Problem> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let pointer = pointer_of(prefix, e.path());
        let detail = e.inner().to_string();
        Problem::validation(vec![FieldError::pointer(pointer, detail)])
    })
}

fn pointer_of(prefix: &str, path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = prefix.to_owned();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
            Segment::Map { key } => {
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    pointer
}

/// Deserialises a JSON number that is a whole number, also when written with a zero fraction
/// (`2.0`): JSON Schema's `integer`, which the API document promises.
pub fn whole_number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    use serde::de::Error;
    let number = serde_json::Number::deserialize(deserializer)?;
    let whole = number.as_i64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    });
    whole.and_then(|n| T::try_from(n).ok()).ok_or_else(|| {
        D::Error::custom(format!("expected a whole number in range, found {number}"))
    })
}

/// A path parameter, or `None` when API Gateway did not pass it.
pub fn path_param(req: &Request, name: &str) -> Option<String> {
    req.path_parameters_ref()
        .and_then(|params| params.first(name))
        .map(str::to_owned)
}

/// A query string parameter.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref()
        .and_then(|params| params.first(name))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with(time_left: Duration) -> Request {
        let deadline = SystemTime::now() + time_left;
        let mut context = lambda_http::Context::default();
        context.deadline = deadline.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        Request::default().with_lambda_context(context)
    }

    #[tokio::test]
    async fn a_handler_still_waiting_at_its_budget_is_answered_503_in_time() {
        // GIVEN an invocation with 1.7 s left, and a handler waiting on something that hangs
        let time_left = ANSWER_MARGIN + Duration::from_millis(200);
        let started = tokio::time::Instant::now();
        let response = serve("create-order", request_with(time_left), |_| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(Response::new(Body::Empty))
        })
        .await
        .unwrap();
        // THEN it is stopped at the budget and answered 503 with Retry-After, before the deadline
        assert!(started.elapsed() < time_left);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let body: serde_json::Value = match response.body() {
            Body::Text(text) => serde_json::from_str(text).unwrap(),
            other => panic!("a problem body, not {other:?}"),
        };
        assert_eq!(body["type"], "urn:orders:problem:service-unavailable");
        assert!(body["detail"].as_str().unwrap().contains("Idempotency-Key"));
    }

    #[tokio::test]
    async fn without_a_deadline_there_is_no_budget() {
        assert_eq!(budget(&Request::default()), None);
        let spent = budget(&request_with(Duration::from_millis(100))).unwrap();
        assert_eq!(
            spent,
            Duration::ZERO,
            "less time left than the margin: none to spend"
        );
    }

    #[test]
    fn pointers_escape_per_rfc_6901() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Shape {
            items: Vec<Inner>,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Inner {
            quantity: u32,
        }
        let value = serde_json::json!({"items": [{"quantity": 1}, {"quantity": "two"}]});
        let problem = from_json::<Shape>(value, "").unwrap_err();
        assert_eq!(
            problem.extensions()["errors"][0]["pointer"],
            "/items/1/quantity"
        );
    }
}
