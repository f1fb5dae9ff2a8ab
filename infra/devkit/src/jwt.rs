//! Local bearer tokens: HS256 with a secret generated once per checkout (git-ignored), checked the
//! way API Gateway's JWT authorizer checks them (signature, issuer, audience, expiry).

use std::collections::BTreeMap;
use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The issuer and audience of local tokens.
pub const ISSUER: &str = "https://orders.local/dev";
pub const AUDIENCE: &str = "orders-local";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read or write the dev secret at {path}: {source}")]
    Secret {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("token: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
}

/// The signing secret, made on first use.
pub fn secret(path: &Path) -> Result<Vec<u8>, TokenError> {
    let io = |source| TokenError::Secret {
        path: path.display().to_string(),
        source,
    };
    if let Ok(existing) = std::fs::read_to_string(path)
        && existing.trim().len() >= 32
    {
        return Ok(existing.trim().as_bytes().to_vec());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let fresh: String = (0..4)
        .map(|_| format!("{:016x}", fastrand::u64(..)))
        .collect();
    std::fs::write(path, &fresh).map_err(io)?;
    Ok(fresh.into_bytes())
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    scope: String,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
}

/// A token for `sub` with these scopes, valid for `ttl_secs`.
pub fn issue(
    secret: &[u8],
    sub: &str,
    scopes: &[&str],
    ttl_secs: i64,
) -> Result<String, TokenError> {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: sub.to_owned(),
        scope: scopes.join(" "),
        iss: ISSUER.to_owned(),
        aud: AUDIENCE.to_owned(),
        iat: now,
        exp: now + ttl_secs,
    };
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )?)
}

/// What the authorizer puts in `requestContext.authorizer.jwt`: every claim as a string, and the
/// scopes of the `scope` claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub claims: BTreeMap<String, String>,
    pub scopes: Vec<String>,
}

/// Checks a bearer token; `None` is API Gateway's 401.
pub fn verify(secret: &[u8], token: &str) -> Option<Verified> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<BTreeMap<String, Value>>(
        token,
        &DecodingKey::from_secret(secret),
        &validation,
    )
    .ok()?;
    let claims: BTreeMap<String, String> = data
        .claims
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s,
                Value::Array(items) => format!(
                    "[{}]",
                    items
                        .iter()
                        .map(|i| i
                            .as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| i.to_string()))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                other => other.to_string(),
            };
            (k, text)
        })
        .collect();
    let scopes = claims
        .get("scope")
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    Some(Verified { claims, scopes })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_token_round_trips_with_its_claims_and_scopes() {
        let token = issue(SECRET, "alice", &["orders:write", "orders:read"], 60).unwrap();
        let verified = verify(SECRET, &token).unwrap();
        assert_eq!(verified.claims["sub"], "alice");
        assert_eq!(verified.scopes, ["orders:write", "orders:read"]);
        assert!(
            verified.claims["exp"].parse::<i64>().is_ok(),
            "numbers become strings"
        );
    }

    #[test]
    fn bad_tokens_are_refused() {
        let expired = issue(SECRET, "alice", &[], -120).unwrap();
        assert!(verify(SECRET, &expired).is_none());
        let other_key = issue(b"another-secret-another-secret-xx", "alice", &[], 60).unwrap();
        assert!(verify(SECRET, &other_key).is_none());
        assert!(verify(SECRET, "not.a.token").is_none());
    }
}
