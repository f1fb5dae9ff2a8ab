//! The shop's customers and its stock keeper, as good clients: every order carries an
//! `Idempotency-Key`, and every timeout, dropped connection or 5xx is retried with the same key
//! (and the same body) until the API gives a definite answer.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

/// What the customer means to happen to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Intent {
    /// A card that authorizes: the order should end FULFILLED.
    Paid,
    /// A card the provider declines: CANCELLED (`payment_declined`).
    Declined,
    /// Paid, then cancelled by the customer a moment later: CANCELLED (`customer`), unless it
    /// shipped first (409).
    Cancelled,
    /// A card the provider never authorizes (always rate-limited): the reservation expires.
    Expired,
}

impl Intent {
    pub const ALL: [Intent; 4] = [
        Intent::Paid,
        Intent::Declined,
        Intent::Cancelled,
        Intent::Expired,
    ];

    /// The payment emulator's test token that makes it so.
    pub fn payment_method(self) -> &'static str {
        match self {
            Intent::Paid | Intent::Cancelled => "tok_visa",
            Intent::Declined => "tok_chargeDeclined",
            Intent::Expired => "tok_429",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Intent::Paid => "paid",
            Intent::Declined => "declined",
            Intent::Cancelled => "customer-cancelled",
            Intent::Expired => "left to expire",
        }
    }
}

/// Why a client tried a request again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RetryCause {
    /// No answer within the client's timeout.
    Timeout,
    /// The connection failed or closed without an answer.
    Connection,
    /// A 5xx (or 429) answer, by status.
    Status(u16),
}

impl RetryCause {
    /// A request that got no answer: timed out, or its connection failed.
    fn of(error: &reqwest::Error) -> Self {
        if error.is_timeout() {
            RetryCause::Timeout
        } else {
            RetryCause::Connection
        }
    }
}

impl std::fmt::Display for RetryCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetryCause::Timeout => f.write_str("timeout"),
            RetryCause::Connection => f.write_str("connection closed"),
            RetryCause::Status(status) => write!(f, "{status}"),
        }
    }
}

/// A request's final answer after its retries.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    /// `None`: no definite answer after every retry.
    pub status: Option<u16>,
    pub body: Value,
    /// Whether any answer said `Idempotent-Replayed: true`.
    pub replayed: bool,
    pub retries: Vec<RetryCause>,
    /// When the final answer came (or the client gave up).
    pub at: chrono::DateTime<chrono::Utc>,
}

/// One order a customer placed (or tried to), and what became of the requests.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Placed {
    pub user: String,
    pub key: String,
    pub intent: Intent,
    pub lines: BTreeMap<String, i64>,
    pub create: Answer,
    /// The customer's cancel, for [`Intent::Cancelled`] orders that were created.
    pub cancel: Option<Answer>,
}

impl Placed {
    /// The order id of a 201.
    pub fn order_id(&self) -> Option<&str> {
        (self.create.status == Some(201))
            .then(|| self.create.body["orderId"].as_str())
            .flatten()
    }
}

/// The HTTP side of the shop: the API's base URL and a token per user.
pub struct Shop {
    http: reqwest::Client,
    base: String,
    secret: Vec<u8>,
    /// Attempts per request before the client gives up.
    pub attempts: u32,
}

impl Shop {
    pub fn new(base: String, secret: Vec<u8>) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(64)
                .build()
                .unwrap_or_default(),
            base,
            secret,
            attempts: 30,
        }
    }

    fn token(&self, sub: &str, scopes: &[&str]) -> String {
        devkit::jwt::issue(&self.secret, sub, scopes, 3600).unwrap_or_default()
    }

    /// Sends one request until it gets a definite answer (anything but a timeout, a dropped
    /// connection, a 5xx or a 429), with the same body and headers each time.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let mut retries = Vec::new();
        let mut replayed = false;
        for attempt in 0..self.attempts {
            if attempt > 0 {
                // Exponential back-off with full jitter, 50 ms to 2 s.
                let cap = 50u64 << attempt.min(6);
                tokio::time::sleep(Duration::from_millis(fastrand::u64(25..=cap.min(2_000)))).await;
            }
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(token);
            if let Some(key) = key {
                request = request.header("idempotency-key", key);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => {
                    retries.push(RetryCause::of(&e));
                    continue;
                }
            };
            let status = response.status().as_u16();
            replayed |= response
                .headers()
                .get("idempotent-replayed")
                .is_some_and(|v| v == "true");
            let body = match response.bytes().await {
                Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                Err(e) => {
                    retries.push(RetryCause::of(&e));
                    continue;
                }
            };
            if status >= 500 || status == 429 {
                retries.push(RetryCause::Status(status));
                continue;
            }
            return Answer {
                status: Some(status),
                body,
                replayed,
                retries,
                at: chrono::Utc::now(),
            };
        }
        Answer {
            status: None,
            body: Value::Null,
            replayed,
            retries,
            at: chrono::Utc::now(),
        }
    }

    /// Places an order for `lines` (product → quantity) under a fresh key; cancels it after a
    /// moment when that is the intent.
    pub async fn place(&self, user: &str, intent: Intent, lines: BTreeMap<String, i64>) -> Placed {
        let token = self.token(user, &["orders:write", "orders:read"]);
        let key = uuid::Uuid::new_v4().to_string();
        let body = json!({
            "items": lines.iter().map(|(p, q)| json!({"productId": p, "quantity": q})).collect::<Vec<_>>(),
            "paymentMethod": intent.payment_method(),
        });
        let create = self
            .send(
                reqwest::Method::POST,
                "/orders",
                &token,
                Some(&key),
                Some(&body),
            )
            .await;
        let mut placed = Placed {
            user: user.to_owned(),
            key,
            intent,
            lines,
            create,
            cancel: None,
        };
        if intent == Intent::Cancelled
            && let Some(id) = placed.order_id().map(str::to_owned)
        {
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=1_500))).await;
            placed.cancel = Some(
                self.send(
                    reqwest::Method::POST,
                    &format!("/orders/{id}/cancel"),
                    &token,
                    None,
                    None,
                )
                .await,
            );
        }
        placed
    }

    /// Creates a product with its initial stock (as the stock keeper).
    pub async fn put_product(&self, id: &str, price: i64, stock: i64) -> Answer {
        let token = self.token("chaos-stock-keeper", &["products:write"]);
        let body = json!({"name": format!("Product {id}"), "price": {"amount": price, "currency": "EUR"}, "stock": stock});
        self.send(
            reqwest::Method::PUT,
            &format!("/products/{id}"),
            &token,
            None,
            Some(&body),
        )
        .await
    }

    /// Restocks a product under an idempotency key (a retry changes nothing twice).
    pub async fn restock(&self, id: &str, delta: i64) -> Answer {
        let token = self.token("chaos-stock-keeper", &["products:write"]);
        let key = uuid::Uuid::new_v4().to_string();
        let body = json!({"delta": delta, "reason": "chaos restock"});
        self.send(
            reqwest::Method::POST,
            &format!("/products/{id}/stock-adjustments"),
            &token,
            Some(&key),
            Some(&body),
        )
        .await
    }
}
