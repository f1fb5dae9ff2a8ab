//! POST /orders, GET /orders/{orderId}, GET /orders.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    Caller, FieldError, Problem, SCOPE_ORDERS_READ, SCOPE_ORDERS_WRITE, from_json, json_body,
    json_response, path_param, query_param,
};
use crate::domain::{IdempotencyKey, Order, OrderId, OrderLines, ProductId, Quantity};
use crate::service::{
    CancelFailure, CancelOrderDeps, Cancelled, CreateOrder, CreateOrderDeps, CreateOrderFailure,
    Created, cancel_order, create_order,
};
use crate::store::{OrderCanceller, OrderReader, OrderWriter, PageKey};

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
    #[serde(deserialize_with = "super::whole_number")]
    quantity: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderBody {
    items: Vec<LineBody>,
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

fn idempotency_key(req: &Request) -> Result<Option<IdempotencyKey>, Problem> {
    let Some(raw) = req.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    raw.to_str()
        .ok()
        .and_then(IdempotencyKey::parse)
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

/// POST /orders, counting each order created or refused (by reason).
pub async fn create<S: OrderWriter>(
    deps: &CreateOrderDeps<S>,
    req: Request,
) -> Result<Response<Body>, Problem> {
    use crate::metrics::{Unit, names};
    let result = create_order_response(deps, req).await;
    let refused = |reason: &str| {
        deps.metrics.add_with(
            names::ORDERS_REFUSED,
            Unit::Count,
            1.0,
            &[("reason", reason)],
        )
    };
    match &result {
        Ok(response) if response.headers().contains_key(IDEMPOTENT_REPLAYED) => {
            refused("idempotent-replay")
        }
        Ok(_) => deps.metrics.add(names::ORDERS_CREATED, Unit::Count, 1.0),
        Err(problem) if problem.status.is_server_error() => {}
        Err(problem) => refused(refusal_reason(problem.slug)),
    }
    result
}

/// The `reason` dimension of a refused order: a few stable values, whatever the problem kind.
fn refusal_reason(slug: &str) -> &'static str {
    match slug {
        "insufficient-stock" => "insufficient-stock",
        "product-not-found" => "unknown-product",
        "quota-exceeded" => "quota",
        "validation-failed" | "malformed-json" | "unsupported-media-type" | "payload-too-large" => {
            "validation"
        }
        "unauthorized" | "insufficient-scope" => "unauthorized",
        _ => "other",
    }
}

async fn create_order_response<S: OrderWriter>(
    deps: &CreateOrderDeps<S>,
    req: Request,
) -> Result<Response<Body>, Problem> {
    let caller = Caller::with_scope(&req, SCOPE_ORDERS_WRITE)?;
    let body = json_body(&req)?;
    let lines = parse_order_lines(body)?;
    let idempotency_key = idempotency_key(&req)?;
    let request = CreateOrder {
        user: caller.user,
        lines,
        idempotency_key,
        trace: xray_trace(&req),
    };
    let created = create_order(deps, &request, Utc::now())
        .await
        .map_err(create_problem)?;
    let (order, replayed) = match created {
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

fn create_problem(failure: CreateOrderFailure) -> Problem {
    match failure {
        CreateOrderFailure::UnknownProduct(id) => Problem::product_not_found(id.as_str()),
        CreateOrderFailure::InsufficientStock {
            product,
            requested,
            available,
        } => Problem::new(
            StatusCode::CONFLICT,
            "insufficient-stock",
            "Insufficient stock",
            format!(
                "product {product} has {available} left, {} requested",
                requested.get()
            ),
        )
        .with("productId", product.as_str())
        .with("requested", requested.get())
        .with("available", available.max(0)),
        CreateOrderFailure::PriceChanged(product) => Problem::new(
            StatusCode::CONFLICT,
            "price-changed",
            "Price changed",
            format!("the price of product {product} changed while the order was placed; retry"),
        )
        .with("productId", product.as_str()),
        CreateOrderFailure::MixedCurrencies(a, b) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "currency-mismatch",
            "Currency mismatch",
            format!("the lines of one order must share one currency ({a} and {b} given)"),
        ),
        CreateOrderFailure::Unpriceable(e) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "total-out-of-range",
            "Total out of range",
            e.to_string(),
        ),
        CreateOrderFailure::IdempotencyKeyReused => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency key reused",
            "this Idempotency-Key was used before with a different request",
        ),
        CreateOrderFailure::QuotaExceeded {
            limit,
            retry_after_secs,
        } => Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "quota-exceeded",
            "Too many orders",
            format!("at most {limit} orders a minute"),
        )
        .with("limit", limit)
        .with_header(header::RETRY_AFTER, retry_after_secs),
        CreateOrderFailure::Busy { attempts } => {
            Problem::unavailable(1).with_internal(format!("gave up after {attempts} attempts"))
        }
        CreateOrderFailure::Store(e) => e.into(),
    }
}

/// GET /orders/{orderId}: the order, for its owner only; anyone else gets the same 404 as for an
/// unknown id.
pub async fn get<S: OrderReader>(store: &S, req: Request) -> Result<Response<Body>, Problem> {
    let caller = Caller::with_scope(&req, SCOPE_ORDERS_READ)?;
    let id = path_param(&req, "orderId")
        .and_then(|raw| OrderId::parse(&raw))
        .ok_or_else(Problem::order_not_found)?;
    tracing::Span::current().record("order_id", id.to_string());
    match store.order(id).await? {
        Some(stored) if stored.order.user_id == caller.user => {
            json_response(StatusCode::OK, &stored.order)
        }
        _ => Err(Problem::order_not_found()),
    }
}

/// POST /orders/{orderId}/cancel: 200 with the cancelled order; cancelling a cancelled order
/// changes nothing and answers it again.
pub async fn cancel<S: OrderCanceller>(
    deps: &CancelOrderDeps<S>,
    req: Request,
) -> Result<Response<Body>, Problem> {
    let caller = Caller::with_scope(&req, SCOPE_ORDERS_WRITE)?;
    let id = path_param(&req, "orderId")
        .and_then(|raw| OrderId::parse(&raw))
        .ok_or_else(Problem::order_not_found)?;
    tracing::Span::current().record("order_id", id.to_string());
    let trace = xray_trace(&req);
    let order = match cancel_order(deps, &caller.user, id, trace.as_deref(), Utc::now()).await {
        Ok(Cancelled::Now(order)) => order,
        Ok(Cancelled::Already(order)) => {
            tracing::info!("the order was already cancelled; nothing changed");
            order
        }
        Err(CancelFailure::NotFound) => return Err(Problem::order_not_found()),
        Err(CancelFailure::Busy { attempts }) => {
            return Err(
                Problem::unavailable(1).with_internal(format!("gave up after {attempts} attempts"))
            );
        }
        Err(CancelFailure::Cancel(e)) => return Err(Problem::internal(e)),
        Err(CancelFailure::Store(e)) => return Err(e.into()),
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
    let caller = Caller::with_scope(&req, SCOPE_ORDERS_READ)?;
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

fn decode_cursor(raw: &str) -> Option<PageKey> {
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    let key: PageKey = serde_json::from_slice(&bytes).ok()?;
    chrono::DateTime::parse_from_rfc3339(&key.created_at).ok()?;
    Some(key)
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
        assert_eq!(
            decode_cursor(&URL_SAFE_NO_PAD.encode(b"{\"o\":\"x\",\"c\":\"y\"}")),
            None
        );
    }
}
