//! The orders service: everything the Lambda functions do, as one library.
//!
//! Layers, from the inside out:
//! - [`domain`]: ids, quantities, money, products and orders with their invariants (no I/O);
//! - [`events`]: the CloudEvents envelope of the outbox;
//! - [`store`]: DynamoDB items and the one order transaction;
//! - [`service`]: the use cases (pricing, idempotency, retries);
//! - [`http`]: API Gateway HTTP API events in, JSON and RFC 9457 problems out;
//! - [`relay`] and [`consumer`]: the outbox stream → SQS FIFO → the order's effects;
//! - [`config`], [`telemetry`] and [`metrics`]: what every function's `main` sets up once at init
//!   (settings, JSON logs, CloudWatch EMF metrics).

pub mod config;
pub mod consumer;
pub mod domain;
pub mod events;
pub mod http;
pub mod metrics;
pub mod relay;
pub mod service;
pub mod store;
pub mod telemetry;

/// Loads the AWS configuration once at init. Endpoints come only from the standard variables
/// (`AWS_ENDPOINT_URL_DYNAMODB`, …), which is how the local emulators are reached.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// The SQS client over the shared configuration (`AWS_ENDPOINT_URL_SQS` reaches the emulator).
pub fn sqs_client(config: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}
