//! The payment secret key from Secrets Manager (moto, started by `make test`).

use payments_core::secret::{SecretError, secret_string};

#[tokio::test]
async fn the_payment_key_is_read_from_secrets_manager_by_arn() {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL_SECRETS_MANAGER").is_some(),
        "run with `make test` (or infra/with-emulators.sh cargo test)"
    );
    let config = platform::aws::config().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let name = format!("payments-key-{}", uuid::Uuid::new_v4());
    let created = client
        .create_secret()
        .name(&name)
        .secret_string("sk_test_from_secrets_manager")
        .send()
        .await
        .unwrap();
    let arn = created.arn.unwrap();
    assert_eq!(
        secret_string(&config, &arn).await.unwrap(),
        "sk_test_from_secrets_manager"
    );
    let missing = secret_string(&config, "no-such-secret").await;
    assert!(matches!(missing, Err(SecretError::Read(_))), "{missing:?}");
}
