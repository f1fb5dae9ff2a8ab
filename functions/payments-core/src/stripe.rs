//! The payment provider port over Stripe's Charges API: `POST /v1/charges` with `capture=false`
//! authorizes, `POST /v1/charges/{id}/capture` captures, `POST /v1/refunds` releases an uncaptured
//! charge (void), and the order id travels in the charge's `metadata[order_id]`.
//!
//! The client trusts the public web PKI's roots (`webpki-roots`, which holds the DigiCert roots
//! Stripe's certificates chain to) — not the Amazon-only roots the AWS clients use — and has its
//! own connect and request timeouts. The base URL is a setting (`PAYMENT_API_BASE`): Stripe's, or
//! the local emulator's (plain http).

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Client, Response, StatusCode};
use serde::Deserialize;

use crate::provider::{
    Authorization, Authorize, Charge, ChargeState, PaymentProvider, ProviderError,
};

/// Stripe's API.
pub const DEFAULT_BASE: &str = "https://api.stripe.com";
/// The most charges one list call returns.
const PAGE: usize = 100;

/// Stripe's Charges API with one secret key.
#[derive(Debug, Clone)]
pub struct Stripe {
    http: Client,
    base: String,
    secret_key: String,
}

impl Stripe {
    /// A client for `base` (no trailing slash needed) with the account's secret key; built once
    /// at init.
    /// The secret key never travels in plain text: `http://` is taken only for a loopback
    /// address (the local emulator).
    pub fn new(base: &str, secret_key: String) -> Result<Self, ProviderError> {
        let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
            .iter()
            .any(|prefix| base.starts_with(prefix));
        if !base.starts_with("https://") && !loopback {
            return Err(ProviderError::Misconfigured(format!(
                "the payment API base {base:?} is not https (plain http only on loopback)"
            )));
        }
        let http = Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .tls_built_in_webpki_certs(true)
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(8))
            .build()
            .map_err(|e| ProviderError::Misconfigured(format!("the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            secret_key,
        })
    }

    async fn post(
        &self,
        path: &str,
        idempotency_key: &str,
        form: &[(&str, &str)],
    ) -> Result<Response, ProviderError> {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.secret_key)
            .header("Idempotency-Key", idempotency_key)
            .form(form)
            .send()
            .await
            .map_err(unreachable)
    }
}

fn unreachable(e: reqwest::Error) -> ProviderError {
    ProviderError::Retryable(e.without_url().to_string())
}

#[derive(Debug, Deserialize)]
struct ChargeBody {
    id: String,
    amount: i64,
    #[serde(default)]
    amount_refunded: i64,
    #[serde(default)]
    captured: bool,
    status: String,
    /// Seconds since the epoch.
    #[serde(default)]
    created: i64,
    #[serde(default)]
    metadata: std::collections::HashMap<String, String>,
}

impl ChargeBody {
    fn state(&self) -> ChargeState {
        if self.status == "failed" {
            ChargeState::Failed
        } else if self.captured {
            ChargeState::Captured
        } else if self.amount_refunded >= self.amount {
            ChargeState::Voided
        } else {
            ChargeState::Authorized
        }
    }
}

#[derive(Debug, Deserialize)]
struct ChargeList {
    data: Vec<ChargeBody>,
    #[serde(default)]
    has_more: bool,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: StripeError,
}

#[derive(Debug, Default, Deserialize)]
struct StripeError {
    #[serde(rename = "type", default)]
    kind: String,
    code: Option<String>,
    decline_code: Option<String>,
    #[serde(default)]
    message: String,
}

/// A failed answer, by what the saga must do about it.
async fn failure(response: Response, idempotency_key: &str) -> ProviderError {
    let status = response.status();
    let body: ErrorBody = response.json().await.unwrap_or_default();
    let message = body.error.message;
    match status {
        StatusCode::TOO_MANY_REQUESTS => ProviderError::Retryable(message),
        s if s.is_server_error() => ProviderError::FailedUnderKey {
            idempotency_key: idempotency_key.to_owned(),
            message,
        },
        s => ProviderError::Refused {
            status: s.as_u16(),
            message,
        },
    }
}

async fn read<T: serde::de::DeserializeOwned>(response: Response) -> Result<T, ProviderError> {
    response
        .json()
        .await
        .map_err(|e| ProviderError::Unreadable(e.without_url().to_string()))
}

impl PaymentProvider for Stripe {
    async fn authorize(&self, request: &Authorize<'_>) -> Result<Authorization, ProviderError> {
        let amount = request.amount.to_string();
        let currency = request.currency.to_ascii_lowercase();
        let description = format!("order {}", request.order_id);
        let form = [
            ("amount", amount.as_str()),
            ("currency", currency.as_str()),
            ("source", request.payment_method),
            ("capture", "false"),
            ("description", description.as_str()),
            ("metadata[order_id]", request.order_id),
        ];
        let response = self
            .post("/v1/charges", request.idempotency_key, &form)
            .await?;
        let status = response.status();
        if status.is_success() {
            let charge: ChargeBody = read(response).await?;
            return Ok(Authorization::Authorized {
                charge_id: charge.id,
            });
        }
        if status == StatusCode::PAYMENT_REQUIRED {
            let body: ErrorBody = response.json().await.unwrap_or_default();
            if body.error.kind == "card_error" {
                let code = body
                    .error
                    .decline_code
                    .or(body.error.code)
                    .unwrap_or_else(|| "card_declined".to_owned());
                return Ok(Authorization::Declined {
                    code,
                    message: body.error.message,
                });
            }
            return Err(ProviderError::Refused {
                status: status.as_u16(),
                message: body.error.message,
            });
        }
        Err(failure(response, request.idempotency_key).await)
    }

    async fn capture(&self, charge_id: &str, idempotency_key: &str) -> Result<(), ProviderError> {
        let response = self
            .post(
                &format!("/v1/charges/{charge_id}/capture"),
                idempotency_key,
                &[],
            )
            .await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(failure(response, idempotency_key).await)
    }

    async fn void(&self, charge_id: &str, idempotency_key: &str) -> Result<(), ProviderError> {
        let response = self
            .post("/v1/refunds", idempotency_key, &[("charge", charge_id)])
            .await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(failure(response, idempotency_key).await)
    }

    /// Pages through the account's charges made since `since`, newest first, for the one whose
    /// metadata names the order. The window goes to the server as `created[gte]` and is also
    /// applied here (paging stops at the first older charge), so a server that ignores the
    /// filter — the local emulator does — costs no more pages. (Stripe's Search API would take
    /// one call, but it is eventually consistent and the emulator does not speak it; the saga
    /// only looks after a provider failure, or to void an order that may hold a charge.)
    async fn find(
        &self,
        order_id: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Option<Charge>, ProviderError> {
        let since = since.map(|t| t.timestamp());
        let in_window = |c: &ChargeBody| since.is_none_or(|s| c.created >= s);
        let mut after: Option<String> = None;
        loop {
            let mut query = vec![("limit", PAGE.to_string())];
            if let Some(s) = since {
                query.push(("created[gte]", s.to_string()));
            }
            if let Some(id) = &after {
                query.push(("starting_after", id.clone()));
            }
            let response = self
                .http
                .get(format!("{}/v1/charges", self.base))
                .bearer_auth(&self.secret_key)
                .query(&query)
                .send()
                .await
                .map_err(unreachable)?;
            if !response.status().is_success() {
                return Err(failure(response, "").await);
            }
            let page: ChargeList = read(response).await?;
            if let Some(charge) = page.data.iter().find(|c| {
                in_window(c) && c.metadata.get("order_id").map(String::as_str) == Some(order_id)
            }) {
                return Ok(Some(Charge {
                    charge_id: charge.id.clone(),
                    amount: charge.amount,
                    state: charge.state(),
                }));
            }
            match page.data.last() {
                Some(last) if page.has_more && in_window(last) => after = Some(last.id.clone()),
                _ => return Ok(None),
            }
        }
    }
}
