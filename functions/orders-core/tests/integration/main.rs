//! Integration tests against DynamoDB Local (started by `make test`), in one test binary so the
//! AWS SDK is linked once.

mod api;
mod support;
mod transactions;
