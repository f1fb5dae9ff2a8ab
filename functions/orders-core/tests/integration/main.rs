//! Integration tests against DynamoDB Local and the SQS emulator (both started by `make test`), in
//! one test binary so the AWS SDK is linked once.

mod api;
mod cancellation;
mod catalogue;
mod chaos;
mod delivery;
mod outbox;
mod request_fuzz;
mod saga;
mod support;
mod timeouts;
mod transactions;
