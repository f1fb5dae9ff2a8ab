//! The cold-start floor: a `lambda_runtime` binary that answers every event with `{}`.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run(service_fn(|_: LambdaEvent<Value>| async {
        Ok::<_, Error>(serde_json::json!({}))
    }))
    .await
}
