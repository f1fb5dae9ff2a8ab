//! GET /products/{productId} (public) and PUT /products/{productId}.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};

use platform::http::{
    Caller, FieldError, Problem, from_json, json_body, json_response, path_param,
};

use super::{SCOPE_PRODUCTS_WRITE, product_not_found};
use crate::domain::{Money, Product, ProductId, ProductName, RawMoney, Stock, UserId};
use crate::service::ports::{ReadProduct, WriteProduct};

/// A product as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductView<'a> {
    product_id: &'a str,
    name: &'a str,
    price: Money,
    stock: i64,
}

impl<'a> From<&'a Product> for ProductView<'a> {
    fn from(p: &'a Product) -> Self {
        Self {
            product_id: p.id.as_str(),
            name: p.name.as_str(),
            price: p.price,
            stock: p.stock.get(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductBody {
    name: String,
    price: MoneyBody,
    #[serde(deserialize_with = "platform::http::whole_number")]
    stock: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoneyBody {
    #[serde(deserialize_with = "platform::http::whole_number")]
    amount: i64,
    currency: String,
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

/// PUT /products/{productId}: creates (201) or replaces (200) a product.
pub async fn put<S: WriteProduct>(store: &S, req: Request) -> Result<Response<Body>, Problem> {
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
    let stock = Stock::new(body.stock)
        .map_err(|e| errors.push(FieldError::pointer("/stock", e)))
        .ok();
    let (Some(id), Some(name), Some(price), Some(stock)) = (id, name, price, stock) else {
        return Err(Problem::validation(errors));
    };
    let product = Product {
        id,
        name,
        price,
        stock,
    };
    let replaced = store.put_product(&product).await?;
    let status = if replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut response = json_response(status, &ProductView::from(&product))?;
    if !replaced && let Ok(location) = HeaderValue::from_str(&format!("/products/{}", product.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}
