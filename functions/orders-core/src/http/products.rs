//! GET /products/{productId} (public), PUT /products/{productId} (details; never stock) and
//! POST /products/{productId}/stock-adjustments (stock, by a delta).

use chrono::Utc;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};

use platform::http::{
    Caller, FieldError, Problem, from_json, json_body, json_response, path_param,
};

use super::orders::{IDEMPOTENT_REPLAYED, idempotency_key};
use super::{SCOPE_PRODUCTS_WRITE, product_not_found};
use crate::domain::{
    AdjustmentReason, MaxPerOrder, Money, Product, ProductId, ProductName, RawMoney, Stock,
    StockAdjustment, StockDelta, UserId,
};
use crate::service::ports::{Catalogue, ProductDraft, ReadProduct, StockKeeper};
use crate::service::{AdjustStock, AdjustStockDeps, Adjusted, Put, adjust_stock};

/// A product as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductView<'a> {
    product_id: &'a str,
    name: &'a str,
    price: Money,
    stock: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_per_order: Option<MaxPerOrder>,
}

impl<'a> From<&'a Product> for ProductView<'a> {
    fn from(p: &'a Product) -> Self {
        Self {
            product_id: p.id.as_str(),
            name: p.name.as_str(),
            price: p.price,
            stock: p.stock.get(),
            max_per_order: p.max_per_order,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductBody {
    name: String,
    price: MoneyBody,
    /// The initial stock of a new product; on a replace, if given, the stock there is.
    #[serde(default, deserialize_with = "optional_whole_number")]
    stock: Option<i64>,
    #[serde(
        default,
        rename = "maxPerOrder",
        deserialize_with = "optional_whole_number"
    )]
    max_per_order: Option<u32>,
}

fn optional_whole_number<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    platform::http::whole_number(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoneyBody {
    #[serde(deserialize_with = "platform::http::whole_number")]
    amount: i64,
    currency: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdjustmentBody {
    #[serde(deserialize_with = "platform::http::whole_number")]
    delta: i64,
    reason: String,
}

/// An adjustment as the API shows it, with the product's stock just after it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AdjustmentView<'a> {
    #[serde(flatten)]
    adjustment: &'a StockAdjustment,
    stock: i64,
}

/// GET /products/{productId}: needs no token.
pub async fn get<S: ReadProduct>(store: &S, req: Request) -> Result<Response<Body>, Problem> {
    let raw = path_param(&req, "productId").unwrap_or_default();
    let Ok(id) = ProductId::parse(&raw) else {
        return Err(product_not_found(&raw));
    };
    match store.product(&id).await? {
        Some(product) => json_response(StatusCode::OK, &ProductView::from(&product)),
        None => Err(product_not_found(id.as_str())),
    }
}

/// PUT /products/{productId}: creates (201) a product, or replaces (200) its name and price. It
/// never changes an existing product's stock: a `stock` in the body is the initial stock of a new
/// product, and on a replace must be the stock there is (else 409 `stock-differs`).
pub async fn put<S: Catalogue>(store: &S, req: Request) -> Result<Response<Body>, Problem> {
    Caller::<UserId>::with_scope(&req, SCOPE_PRODUCTS_WRITE)?;
    let raw_id = path_param(&req, "productId").unwrap_or_default();
    let body: ProductBody = from_json(json_body(&req)?, "")?;
    let mut errors = Vec::new();
    let id = ProductId::parse(&raw_id)
        .map_err(|e| errors.push(FieldError::parameter("productId", e)))
        .ok();
    let name = ProductName::parse(&body.name)
        .map_err(|e| errors.push(FieldError::pointer("/name", e)))
        .ok();
    let raw_price = RawMoney {
        amount: body.price.amount,
        currency: body.price.currency,
    };
    let price = Money::try_from(raw_price)
        .map_err(|e| errors.push(FieldError::pointer("/price", e)))
        .ok();
    let stock = body
        .stock
        .map(Stock::new)
        .transpose()
        .map_err(|e| errors.push(FieldError::pointer("/stock", e)))
        .ok();
    let max_per_order = body
        .max_per_order
        .map(MaxPerOrder::new)
        .transpose()
        .map_err(|e| errors.push(FieldError::pointer("/maxPerOrder", e)))
        .ok();
    let (Some(id), Some(name), Some(price), Some(stock), Some(max_per_order)) =
        (id, name, price, stock, max_per_order)
    else {
        return Err(Problem::validation(errors));
    };
    let draft = ProductDraft {
        id,
        name,
        price,
        stock,
        max_per_order,
    };
    let (status, product) = match store.put_product(&draft).await? {
        Put::Created(product) => (StatusCode::CREATED, product),
        Put::Replaced(product) => (StatusCode::OK, product),
    };
    let mut response = json_response(status, &ProductView::from(&product))?;
    if status == StatusCode::CREATED
        && let Ok(location) = HeaderValue::from_str(&format!("/products/{}", product.id))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// POST /products/{productId}/stock-adjustments: adds `delta` (±) to the stock in one conditional
/// transaction with its record; 201 with the adjustment and the stock after it. With an
/// `Idempotency-Key`, a retry answers the first adjustment (`Idempotent-Replayed: true`) and
/// changes nothing.
pub async fn adjust<S: StockKeeper>(
    deps: &AdjustStockDeps<S>,
    req: Request,
) -> Result<Response<Body>, Problem> {
    let caller = Caller::<UserId>::with_scope(&req, SCOPE_PRODUCTS_WRITE)?;
    let raw_id = path_param(&req, "productId").unwrap_or_default();
    let Ok(product) = ProductId::parse(&raw_id) else {
        return Err(product_not_found(&raw_id));
    };
    let body: AdjustmentBody = from_json(json_body(&req)?, "")?;
    let key = idempotency_key(&req)?;
    let mut errors = Vec::new();
    let delta = StockDelta::new(body.delta)
        .map_err(|e| errors.push(FieldError::pointer("/delta", e)))
        .ok();
    let reason = AdjustmentReason::parse(&body.reason)
        .map_err(|e| errors.push(FieldError::pointer("/reason", e)))
        .ok();
    let (Some(delta), Some(reason)) = (delta, reason) else {
        return Err(Problem::validation(errors));
    };
    let request = AdjustStock {
        product,
        delta,
        reason,
        by: caller.user,
        idempotency_key: key,
    };
    let (adjustment, stock, replayed) = match adjust_stock(deps, &request, Utc::now()).await? {
        Adjusted::New(adjustment, stock) => (adjustment, stock, false),
        Adjusted::Replayed(adjustment, stock) => (adjustment, stock, true),
    };
    let view = AdjustmentView {
        adjustment: &adjustment,
        stock: stock.get(),
    };
    let mut response = json_response(StatusCode::CREATED, &view)?;
    if replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}
