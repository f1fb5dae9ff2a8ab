//! Creates every `AWS::SecretsManager::Secret` of the template on the local emulator (moto), under
//! the name prefix. Locally each holds a test key the emulators accept (`sk_test_…`), never the
//! template's placeholder.

use crate::template::{PhysicalNames, Template};

/// The value of every secret locally.
pub const LOCAL_SECRET: &str = "sk_test_orders_local";

#[derive(Debug, thiserror::Error)]
#[error("creating secret {name}: {message}")]
pub struct SecretError {
    name: String,
    message: String,
}

/// Creates the secrets; answers their ARNs by logical id (what `!Ref` of a secret gives).
pub async fn create_secrets(
    client: &aws_sdk_secretsmanager::Client,
    template: &Template,
    prefix: &str,
) -> Result<PhysicalNames, SecretError> {
    let mut arns = PhysicalNames::new();
    for id in template.resources_of_type("AWS::SecretsManager::Secret") {
        let name = format!("{prefix}-{id}");
        let out = client
            .create_secret()
            .name(&name)
            .secret_string(LOCAL_SECRET)
            .send()
            .await
            .map_err(|e| SecretError {
                name: name.clone(),
                message: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
            })?;
        arns.insert(id.clone(), out.arn.unwrap_or(name));
    }
    Ok(arns)
}
