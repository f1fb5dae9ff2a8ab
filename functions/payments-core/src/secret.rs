//! The payment provider's secret key, read from AWS Secrets Manager once per environment, at init
//! (`AWS_ENDPOINT_URL_SECRETS_MANAGER` reaches the local emulator). The key is never logged.

/// Why the secret key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("Secrets Manager: {0}")]
    Read(String),
    #[error("secret {0} has no string value")]
    Empty(String),
}

/// The string value of the secret `id` (its ARN or name).
pub async fn secret_string(
    config: &aws_config::SdkConfig,
    id: &str,
) -> Result<String, SecretError> {
    let client = aws_sdk_secretsmanager::Client::new(config);
    let out = client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| {
            SecretError::Read(aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string())
        })?;
    out.secret_string
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| SecretError::Empty(id.to_owned()))
}
