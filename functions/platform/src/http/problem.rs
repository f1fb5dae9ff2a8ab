//! RFC 9457 problem details: every error response of the API.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde_json::{Map, Value, json};

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The base of the `type` URIs; each problem kind appends its slug.
pub const TYPE_BASE: &str = "urn:orders:problem:";

/// A problem to answer, with what only the logs may see kept apart from what the client sees.
/// Small (the body is boxed) because every fallible HTTP step returns it.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub slug: &'static str,
    body: Box<ProblemBody>,
}

#[derive(Debug, Clone)]
struct ProblemBody {
    title: &'static str,
    detail: String,
    extensions: Map<String, Value>,
    headers: Vec<(header::HeaderName, String)>,
    /// The invalid members of a validation problem (also in `errors`).
    fields: Vec<FieldError>,
    /// The cause, for the logs only (never in the body).
    internal: Option<String>,
}

/// One invalid member of a request: where (a JSON pointer into the body, or a parameter or header
/// name) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldError {
    Pointer { pointer: String, detail: String },
    Parameter { parameter: String, detail: String },
    Header { header: String, detail: String },
}

impl FieldError {
    pub fn pointer(pointer: impl Into<String>, detail: impl ToString) -> Self {
        FieldError::Pointer {
            pointer: pointer.into(),
            detail: detail.to_string(),
        }
    }

    pub fn parameter(parameter: impl Into<String>, detail: impl ToString) -> Self {
        FieldError::Parameter {
            parameter: parameter.into(),
            detail: detail.to_string(),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            FieldError::Pointer { pointer, detail } => {
                json!({"pointer": pointer, "detail": detail})
            }
            FieldError::Parameter { parameter, detail } => {
                json!({"parameter": parameter, "detail": detail})
            }
            FieldError::Header { header, detail } => json!({"header": header, "detail": detail}),
        }
    }
}

impl Problem {
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            slug,
            body: Box::new(ProblemBody {
                title,
                detail: detail.into(),
                extensions: Map::new(),
                headers: Vec::new(),
                fields: Vec::new(),
                internal: None,
            }),
        }
    }

    pub fn with(mut self, member: &str, value: impl Into<Value>) -> Self {
        self.body.extensions.insert(member.to_owned(), value.into());
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: impl ToString) -> Self {
        self.body.headers.push((name, value.to_string()));
        self
    }

    pub fn with_internal(mut self, cause: impl std::fmt::Display) -> Self {
        self.body.internal = Some(cause.to_string());
        self
    }

    /// The members beyond the standard five (`errors`, `productId`, …).
    pub fn extensions(&self) -> &Map<String, Value> {
        &self.body.extensions
    }

    /// The invalid members of a validation problem, to gather with others into one answer.
    pub fn field_errors(&self) -> Vec<FieldError> {
        self.body.fields.clone()
    }

    /// The cause, for the logs only.
    pub fn cause(&self) -> Option<&str> {
        self.body.internal.as_deref()
    }

    pub fn type_uri(&self) -> String {
        format!("{TYPE_BASE}{}", self.slug)
    }

    pub fn unauthorized() -> Self {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "a valid bearer token is required",
        )
        .with_header(header::WWW_AUTHENTICATE, "Bearer")
    }

    pub fn forbidden(scope: &str) -> Self {
        Problem::new(
            StatusCode::FORBIDDEN,
            "insufficient-scope",
            "Insufficient scope",
            format!("the token lacks the scope {scope}"),
        )
        .with("requiredScope", scope)
        .with_header(
            header::WWW_AUTHENTICATE,
            format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\""),
        )
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .first()
            .map(|e| match e {
                FieldError::Pointer { detail, .. }
                | FieldError::Parameter { detail, .. }
                | FieldError::Header { detail, .. } => detail.clone(),
            })
            .unwrap_or_else(|| "the request is not valid".to_owned());
        let list = errors.iter().map(FieldError::to_json).collect::<Vec<_>>();
        let mut problem = Problem::new(
            StatusCode::BAD_REQUEST,
            "validation-failed",
            "Validation failed",
            detail,
        )
        .with("errors", list);
        problem.body.fields = errors;
        problem
    }

    pub fn invalid_header(name: &str, detail: impl ToString) -> Self {
        let error = FieldError::Header {
            header: name.to_owned(),
            detail: detail.to_string(),
        };
        Problem::validation(vec![error])
    }

    pub fn malformed_json(detail: impl ToString) -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "Malformed JSON",
            detail.to_string(),
        )
    }

    pub fn unsupported_media_type() -> Self {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "the body must be sent as Content-Type: application/json (charset=utf-8, if any)",
        )
        .with_header(header::ACCEPT, "application/json")
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            format!("the body may be at most {limit} bytes"),
        )
        .with("maxBytes", limit)
    }

    pub fn unavailable(retry_after_secs: u32) -> Self {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service-unavailable",
            "Service unavailable",
            "the service is busy; retry after the time given",
        )
        .with_header(header::RETRY_AFTER, retry_after_secs)
    }

    /// The handler did not finish within the invocation's budget: what it was doing may or may not
    /// have taken effect, so the client retries (an idempotent request with the same key).
    pub fn out_of_time(budget: std::time::Duration) -> Self {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service-unavailable",
            "Service unavailable",
            "the request did not finish in time and may or may not have taken effect; retry it \
             (with the same Idempotency-Key) after the time given",
        )
        .with_header(header::RETRY_AFTER, 1)
        .with_internal(format!(
            "stopped at the invocation's budget of {} ms",
            budget.as_millis()
        ))
    }

    /// A 500 whose body says nothing but the request id (in `instance`).
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the request could not be completed; quote the instance when reporting it",
        )
        .with_internal(cause)
    }

    /// The HTTP response; `instance` is the request id.
    pub fn into_response(self, instance: &str) -> Response<Body> {
        let type_uri = self.type_uri();
        let ProblemBody {
            title,
            detail,
            extensions,
            headers,
            ..
        } = *self.body;
        let mut body = Map::new();
        body.insert("type".into(), type_uri.into());
        body.insert("title".into(), title.into());
        body.insert("status".into(), self.status.as_u16().into());
        body.insert("detail".into(), detail.into());
        body.insert("instance".into(), instance.into());
        body.extend(extensions);
        let mut response = Response::new(Body::Text(Value::Object(body).to_string()));
        *response.status_mut() = self.status;
        let response_headers = response.headers_mut();
        response_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        for (name, value) in headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response_headers.insert(name, value);
            }
        }
        response
    }
}

impl From<crate::dynamo::StoreError> for Problem {
    fn from(e: crate::dynamo::StoreError) -> Self {
        match e {
            crate::dynamo::StoreError::Transient => Problem::unavailable(1).with_internal(e),
            other => Problem::internal(other),
        }
    }
}
