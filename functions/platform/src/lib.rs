//! The plumbing every service of the shop shares, written once.
//!
//! - [`aws`]: the SDK configuration every function loads once at init;
//! - [`config`]: settings read from the environment template.yaml gives a function;
//! - [`telemetry`] and [`metrics`]: JSON logs and CloudWatch EMF metrics;
//! - [`http`]: API Gateway HTTP API events in, JSON and RFC 9457 problems out, and the one
//!   `main` body of an HTTP function;
//! - [`events`]: the CloudEvents envelope services talk in;
//! - [`dynamo`]: DynamoDB errors, tagged transactions, the outbox and inbox items;
//! - [`relay`]: an outbox table's stream → an SQS FIFO queue;
//! - [`reconcile`]: sends again the outbox events no consumer recorded (beyond the stream's 24 h);
//! - [`consumer`]: the inbox-guarded loop that applies a queue's events.
//!
//! A service brings its domain, its store (ports and their DynamoDB adapter) and its handlers.

pub mod aws;
pub mod config;
pub mod consumer;
pub mod dynamo;
pub mod events;
pub mod http;
pub mod metrics;
pub mod reconcile;
pub mod relay;
pub mod retry;
pub mod telemetry;
