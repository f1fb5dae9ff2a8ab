//! POST /orders, GET /orders/{orderId}, GET /orders.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use platform::http::{
    Caller, FieldError, Problem, from_json, json_body, json_response, path_param, query_param,
};
use platform::metrics::Unit;

use super::{SCOPE_ORDERS_READ, SCOPE_ORDERS_WRITE, order_not_found};
use crate::domain::{
    IdempotencyKey, Order, OrderId, OrderLines, PaymentMethod, ProductId, Quantity, RawAddress,
    ShippingAddress, UserId,
};
use crate::metrics::{ORDERS_CREATED, ORDERS_REFUSED};
use crate::service::ports::{OrderCanceller, OrderReader, OrderWriter, PageKey};
use crate::service::{
    CancelBy, CancelOrderDeps, Cancelled, CreateOrder, CreateOrderDeps, CreateOrderError, Created,
    cancel_order, create_order,
};

/// The header that makes a create request safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a response that answers a retried request from its first answer.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// Default and largest page size of GET /orders.
pub const DEFAULT_PAGE: u32 = 20;
pub const MAX_PAGE: u32 = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LineBody {
    product_id: String,
    #[serde(deserialize_with = "platform::http::whole_number")]
    quantity: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderBody {
    items: Vec<LineBody>,
}

/// A create request's body, parsed: what to order, what to pay with, where to ship.
#[derive(Debug, Clone)]
pub struct OrderRequest {
    pub lines: OrderLines,
    pub payment_method: PaymentMethod,
    pub shipping_address: Option<ShippingAddress>,
}

/// Parses a create request: the lines (either form, see [`parse_order_lines`]), the required
/// `paymentMethod` and the optional `shippingAddress`, collecting every invalid member.
pub fn parse_order_request(mut body: Value) -> Result<OrderRequest, Problem> {
    let mut errors = Vec::new();
    let (method, address) = match body.as_object_mut() {
        Some(object) => (
            object.remove("paymentMethod"),
            object.remove("shippingAddress"),
        ),
        None => (None, None),
    };
    let payment_method = match method {
        Some(Value::String(raw)) => PaymentMethod::parse(&raw)
            .map_err(|e| errors.push(FieldError::pointer("/paymentMethod", e)))
            .ok(),
        Some(_) => {
            errors.push(FieldError::pointer("/paymentMethod", "must be a string"));
            None
        }
        None if body.is_object() => {
            errors.push(FieldError::pointer(
                "/paymentMethod",
                "missing: the payment provider's token or payment-method id",
            ));
            None
        }
        None => None,
    };
    let shipping_address = match address {
        None | Some(Value::Null) => None,
        Some(raw) => from_json::<RawAddress>(raw, "/shippingAddress")
            .map_err(|p| errors.extend(p.field_errors()))
            .ok()
            .and_then(|raw| {
                ShippingAddress::parse(raw)
                    .map_err(|e| {
                        let member = match &e {
                            crate::domain::DomainError::InvalidAddress(m) => *m,
                            _ => "",
                        };
                        errors.push(FieldError::pointer(format!("/shippingAddress/{member}"), e))
                    })
                    .ok()
            }),
    };
    let lines = parse_order_lines(body)
        .map_err(|p| errors.extend(p.field_errors()))
        .ok();
    match (lines, payment_method) {
        (Some(lines), Some(payment_method)) if errors.is_empty() => Ok(OrderRequest {
            lines,
            payment_method,
            shipping_address,
        }),
        _ => Err(Problem::validation(errors)),
    }
}

/// Parses `{"items":[…]}` or the single-line form `{"productId","quantity"}`, collecting every
/// invalid member with its JSON pointer.
pub fn parse_order_lines(body: Value) -> Result<OrderLines, Problem> {
    let has_items = body.as_object().is_some_and(|o| o.contains_key("items"));
    let (lines, prefix) = if has_items {
        (from_json::<OrderBody>(body, "")?.items, "/items/")
    } else {
        (vec![from_json::<LineBody>(body, "")?], "/")
    };
    let at = |i: usize, member: &str| {
        if has_items {
            format!("{prefix}{i}/{member}")
        } else {
            format!("{prefix}{member}")
        }
    };
    let mut errors = Vec::new();
    let mut parsed = Vec::with_capacity(lines.len());
    let mut seen = std::collections::HashSet::new();
    for (i, line) in lines.iter().enumerate() {
        let id = ProductId::parse(&line.product_id)
            .map_err(|e| errors.push(FieldError::pointer(at(i, "productId"), e)))
            .ok();
        let quantity = Quantity::new(line.quantity)
            .map_err(|e| errors.push(FieldError::pointer(at(i, "quantity"), e)))
            .ok();
        if let Some(id) = &id
            && !seen.insert(id.clone())
        {
            errors.push(FieldError::pointer(
                at(i, "productId"),
                format!("product {id} appears on more than one line"),
            ));
        }
        if let (Some(id), Some(quantity)) = (id, quantity) {
            parsed.push((id, quantity));
        }
    }
    if !(OrderLines::MIN..=OrderLines::MAX).contains(&lines.len()) {
        errors.push(FieldError::pointer(
            "/items",
            format!(
                "an order has {} to {} lines",
                OrderLines::MIN,
                OrderLines::MAX
            ),
        ));
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    OrderLines::new(parsed).map_err(|e| Problem::validation(vec![FieldError::pointer("/items", e)]))
}

pub(super) fn idempotency_key(req: &Request) -> Result<Option<IdempotencyKey>, Problem> {
    let Some(raw) = req.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    raw.to_str()
        .ok()
        .and_then(|key| IdempotencyKey::parse(key).ok())
        .map(Some)
        .ok_or_else(|| {
            Problem::invalid_header(
                "Idempotency-Key",
                "the key is 1 to 64 printable ASCII characters",
            )
        })
}

/// The X-Ray trace header of this invocation, as the runtime received it.
fn xray_trace(req: &Request) -> Option<String> {
    use lambda_http::RequestExt;
    req.lambda_context_ref()
        .and_then(|c| c.xray_trace_id.clone())
}

fn order_location(order: &Order) -> String {
    format!("/orders/{}", order.order_id)
}

/// Why POST /orders created no order, by what refused it.
#[derive(Debug)]
enum Refusal {
    /// No identity, or not the scope.
    Caller(Problem),
    /// The request is malformed.
    Request(Problem),
    Order(CreateOrderError),
}

impl Refusal {
    /// The `reason` dimension of `OrdersRefused`; `None` when the fault is the service's.
    fn reason(&self) -> Option<&'static str> {
        match self {
            Refusal::Caller(_) => Some("unauthorized"),
            Refusal::Request(_) => Some("validation"),
            Refusal::Order(e) => e.refusal_reason(),
        }
    }
}

impl From<Refusal> for Problem {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Caller(problem) | Refusal::Request(problem) => problem,
            Refusal::Order(e) => e.into(),
        }
    }
}

/// POST /orders, counting each order created or refused (by reason).
pub async fn create<S: OrderWriter>(
    deps: &CreateOrderDeps<S>,
    req: Request,
) -> Result<Response<Body>, Problem> {
    let outcome = place(deps, &req).await;
    let refused = |reason| {
        deps.metrics
            .add_with(ORDERS_REFUSED, Unit::Count, 1.0, &[("reason", reason)])
    };
    match &outcome {
        Ok(Created::New(_)) => deps.metrics.add(ORDERS_CREATED, Unit::Count, 1.0),
        Ok(Created::Replayed(_)) => refused("idempotent-replay"),
        Err(refusal) => {
            if let Some(reason) = refusal.reason() {
                refused(reason);
            }
        }
    }
    let (order, replayed) = match outcome? {
        Created::New(order) => (order, false),
        Created::Replayed(order) => (order, true),
    };
    tracing::Span::current().record("order_id", order.order_id.to_string());
    let mut response = json_response(StatusCode::CREATED, &order)?;
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&order_location(&order)) {
        headers.insert(header::LOCATION, location);
    }
    if replayed {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

async fn place<S: OrderWriter>(
    deps: &CreateOrderDeps<S>,
    req: &Request,
) -> Result<Created, Refusal> {
    let caller = Caller::<UserId>::with_scope(req, SCOPE_ORDERS_WRITE).map_err(Refusal::Caller)?;
    let body = json_body(req)
        .and_then(parse_order_request)
        .map_err(Refusal::Request)?;
    let request = CreateOrder {
        user: caller.user,
        lines: body.lines,
        payment_method: body.payment_method,
        shipping_address: body.shipping_address,
        idempotency_key: idempotency_key(req).map_err(Refusal::Request)?,
        trace: xray_trace(req),
    };
    create_order(deps, &request, Utc::now())
        .await
        .map_err(Refusal::Order)
}

/// GET /orders/{orderId}: the order, for its owner only; anyone else gets the same 404 as for an
/// unknown id.
pub async fn get<S: OrderReader>(store: &S, req: Request) -> Result<Response<Body>, Problem> {
    let caller = Caller::<UserId>::with_scope(&req, SCOPE_ORDERS_READ)?;
    let id = path_param(&req, "orderId")
        .and_then(|raw| OrderId::parse(&raw))
        .ok_or_else(order_not_found)?;
    tracing::Span::current().record("order_id", id.to_string());
    match store.order(id).await? {
        Some(stored) if stored.order.user_id == caller.user => {
            json_response(StatusCode::OK, &stored.order)
        }
        _ => Err(order_not_found()),
    }
}

/// POST /orders/{orderId}/cancel: 200 with the cancelled order; cancelling a cancelled order
/// changes nothing and answers it again.
pub async fn cancel<S: OrderCanceller>(
    deps: &CancelOrderDeps<S>,
    req: Request,
) -> Result<Response<Body>, Problem> {
    let caller = Caller::<UserId>::with_scope(&req, SCOPE_ORDERS_WRITE)?;
    let id = path_param(&req, "orderId")
        .and_then(|raw| OrderId::parse(&raw))
        .ok_or_else(order_not_found)?;
    tracing::Span::current().record("order_id", id.to_string());
    let trace = xray_trace(&req);
    let by = CancelBy::Customer(caller.user);
    let order = match cancel_order(deps, &by, id, trace.as_deref(), Utc::now()).await? {
        Cancelled::Now(order) => order,
        Cancelled::Already(order) => {
            tracing::info!("the order was already cancelled; nothing changed");
            order
        }
        // Only the expiry leaves an order because it is not due yet.
        Cancelled::NotDue(order) => order,
    };
    json_response(StatusCode::OK, &order)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct OrderList {
    orders: Vec<Order>,
    next_cursor: Option<String>,
}

/// GET /orders: the caller's orders, newest first.
pub async fn list<S: OrderReader>(store: &S, req: Request) -> Result<Response<Body>, Problem> {
    let caller = Caller::<UserId>::with_scope(&req, SCOPE_ORDERS_READ)?;
    let mut errors = Vec::new();
    let limit = match query_param(&req, "limit") {
        None => DEFAULT_PAGE,
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                errors.push(FieldError::parameter(
                    "limit",
                    format!("limit is a whole number from 1 to {MAX_PAGE}"),
                ));
                DEFAULT_PAGE
            }
        },
    };
    let cursor = match query_param(&req, "cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(raw) => match decode_cursor(&raw) {
            Some(key) => Some(key),
            None => {
                errors.push(FieldError::parameter(
                    "cursor",
                    "cursor is not one this API issued",
                ));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let page = store
        .orders_of(&caller.user, limit, cursor.as_ref())
        .await?;
    let body = OrderList {
        orders: page.orders,
        next_cursor: page.next.as_ref().map(encode_cursor),
    };
    json_response(StatusCode::OK, &body)
}

fn encode_cursor(key: &PageKey) -> String {
    let json = serde_json::to_vec(key).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// The page key of a cursor this API issued, and only of one: its time must be in the exact form
/// orders are stored with, and the cursor exactly what [`encode_cursor`] makes of its key (so an
/// oversized or re-spelled key never reaches DynamoDB).
fn decode_cursor(raw: &str) -> Option<PageKey> {
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    let key: PageKey = serde_json::from_slice(&bytes).ok()?;
    let time = chrono::DateTime::parse_from_rfc3339(&key.created_at).ok()?;
    let canonical = platform::events::rfc3339_millis::format(&time.with_timezone(&Utc));
    (canonical == key.created_at && encode_cursor(&key) == raw).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pointers(problem: &Problem) -> Vec<String> {
        problem.extensions()["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["pointer"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn single_line_form_is_one_line() {
        let lines = parse_order_lines(json!({"productId": "p-1", "quantity": 2})).unwrap();
        assert_eq!(lines.len(), 1);
    }

    #[test]
    fn every_invalid_member_is_named() {
        let problem = parse_order_lines(json!({"items": [
            {"productId": "bad id", "quantity": 0},
            {"productId": "p-2", "quantity": 1001},
        ]}))
        .unwrap_err();
        assert_eq!(
            pointers(&problem),
            [
                "/items/0/productId",
                "/items/0/quantity",
                "/items/1/quantity"
            ]
        );
    }

    #[test]
    fn unknown_members_are_refused() {
        for body in [
            json!({"items": [{"productId": "p", "quantity": 1}], "userId": "mallory"}),
            json!({"items": [{"productId": "p", "quantity": 1, "price": 1}]}),
            json!({"productId": "p", "quantity": 1, "userId": "mallory"}),
        ] {
            let problem = parse_order_lines(body).unwrap_err();
            assert_eq!(problem.status, StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn duplicate_products_and_line_counts_are_refused() {
        let dup = parse_order_lines(json!({"items": [
            {"productId": "p", "quantity": 1}, {"productId": "p", "quantity": 2}
        ]}))
        .unwrap_err();
        assert_eq!(pointers(&dup), ["/items/1/productId"]);
        let empty = parse_order_lines(json!({"items": []})).unwrap_err();
        assert_eq!(pointers(&empty), ["/items"]);
        let many: Vec<_> = (0..26)
            .map(|i| json!({"productId": format!("p{i}"), "quantity": 1}))
            .collect();
        let too_many = parse_order_lines(json!({ "items": many })).unwrap_err();
        assert_eq!(pointers(&too_many), ["/items"]);
    }

    #[test]
    fn whole_numbers_may_be_written_with_a_zero_fraction() {
        let lines = parse_order_lines(json!({"productId": "p", "quantity": 3.0})).unwrap();
        assert_eq!(lines.iter().next().unwrap().quantity.get(), 3);
        let problem = parse_order_lines(json!({"productId": "p", "quantity": -1})).unwrap_err();
        assert_eq!(pointers(&problem), ["/quantity"]);
    }

    #[test]
    fn wrong_types_name_their_member() {
        let problem =
            parse_order_lines(json!({"items": [{"productId": "p", "quantity": 2.5}]})).unwrap_err();
        assert_eq!(pointers(&problem), ["/items/0/quantity"]);
        let problem = parse_order_lines(json!([1, 2])).unwrap_err();
        assert_eq!(problem.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let key = PageKey {
            order_id: OrderId::new_random(),
            created_at: "2026-11-24T10:00:00.000Z".to_owned(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&key)), Some(key));
        assert_eq!(decode_cursor("not-a-cursor"), None);
        // Valid RFC 3339, but not the form the API issues: refused before it reaches DynamoDB.
        let id = OrderId::new_random();
        for time in [
            format!("2026-11-24T10:00:00.{}Z", "1".repeat(1100)),
            "2026-11-24T10:00:00Z".to_owned(),
            "2026-11-24T11:00:00.000+01:00".to_owned(),
        ] {
            let json = format!(r#"{{"o":"{id}","c":"{time}"}}"#);
            assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode(json)), None, "{time}");
        }
        let spaced = format!(r#"{{ "o":"{id}","c":"2026-11-24T10:00:00.000Z"}}"#);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode(spaced)), None);
        assert_eq!(
            decode_cursor(&URL_SAFE_NO_PAD.encode(b"{\"o\":\"x\",\"c\":\"y\"}")),
            None
        );
    }
}
