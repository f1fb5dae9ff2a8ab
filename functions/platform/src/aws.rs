//! The AWS SDK configuration, loaded once per environment at init.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;

/// How long a connection may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one attempt of a call may take (DynamoDB and SQS answer in milliseconds; a hung
/// endpoint must not hold the invocation).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one call may take, its retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// Every call: bounded attempts, bounded time. The SDK retries throttling and network errors up
/// to 3 attempts with short backoff (at most 1 s, not the default 20 s), so a call is over within
/// [`OPERATION_TIMEOUT`]; the invocation's own budget (`http::serve`) ends before the function's
/// timeout whatever is retried inside it.
pub fn timeouts() -> (TimeoutConfig, RetryConfig) {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build();
    let retries = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_secs(1));
    (timeouts, retries)
}

/// Loads the AWS configuration once at init, with [`timeouts`]. Endpoints come only from the standard variables
/// (`AWS_ENDPOINT_URL_DYNAMODB`, …), which is how the local emulators are reached.
///
/// Stalled-stream protection is off: it watches the throughput of every request and response
/// body as it is polled (~3 % of create-order's CPU per order in a perf profile), to catch a
/// download that stalls; these functions send and receive bodies of a few kilobytes, and
/// [`ATTEMPT_TIMEOUT`] already ends any attempt, stalled or not, within 2 s.
///
/// The HTTPS client trusts the five Amazon Trust Services roots (`certs/amazon-trust-services.pem`)
/// that every AWS endpoint chains to, instead of the system's store: reading and decoding the whole
/// system store was ~5 ms of every cold start (see BENCHMARKS.md). Where the environment asks for
/// something else (`SSL_CERT_FILE`/`SSL_CERT_DIR`, say for a TLS-inspecting proxy's CA, or a proxy
/// variable), the SDK's default client is used, which honours them.
pub async fn config() -> aws_config::SdkConfig {
    let (timeouts, retries) = timeouts();
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(retries)
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
    let loader = match aws_endpoints_client(|name| std::env::var_os(name).is_some()) {
        Some(client) => loader.http_client(client),
        None => loader,
    };
    loader.load().await
}

/// The roots of Amazon Trust Services (Amazon Root CA 1–4, Starfield Services Root CA G2).
const AWS_ROOTS: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");

/// Variables that mean "use the system's trust store or a proxy": the SDK default client then.
const SYSTEM_TLS_VARIABLES: &[&str] = &[
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// An HTTPS client that trusts only the AWS roots, unless `is_set` says one of
/// [`SYSTEM_TLS_VARIABLES`] is set.
fn aws_endpoints_client(
    is_set: impl Fn(&str) -> bool,
) -> Option<aws_sdk_dynamodb::config::SharedHttpClient> {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
    if SYSTEM_TLS_VARIABLES.iter().any(|name| is_set(name)) {
        return None;
    }
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AWS_ROOTS);
    let context = TlsContext::builder().with_trust_store(trust).build().ok()?;
    Some(
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(context)
            .build_https(),
    )
}

/// The SNS client over the shared configuration (`AWS_ENDPOINT_URL_SNS` reaches the emulator).
pub fn sns_client(config: &aws_config::SdkConfig) -> aws_sdk_sns::Client {
    aws_sdk_sns::Client::new(config)
}

/// The SQS client over the shared configuration (`AWS_ENDPOINT_URL_SQS` reaches the emulator).
pub fn sqs_client(config: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

/// The DynamoDB client over the shared configuration (`AWS_ENDPOINT_URL_DYNAMODB`).
pub fn dynamodb_client(config: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aws_roots_are_the_five_of_amazon_trust_services() {
        let text = std::str::from_utf8(AWS_ROOTS).unwrap_or_default();
        assert_eq!(text.matches("-----BEGIN CERTIFICATE-----").count(), 5);
        for name in [
            "Amazon_Root_CA_1",
            "Amazon_Root_CA_2",
            "Amazon_Root_CA_3",
            "Amazon_Root_CA_4",
            "Starfield_Services_Root_Certificate_Authority_-_G2",
        ] {
            assert!(text.contains(name), "{name} is missing");
        }
    }

    #[test]
    fn a_trust_store_or_proxy_in_the_environment_keeps_the_sdk_default_client() {
        assert!(aws_endpoints_client(|_| false).is_some());
        assert!(aws_endpoints_client(|name| name == "SSL_CERT_FILE").is_none());
        assert!(aws_endpoints_client(|name| name == "HTTPS_PROXY").is_none());
    }
}
