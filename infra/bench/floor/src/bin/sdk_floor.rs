//! What aws-config and the two SDK clients cost at init on their own: the hello-world floor plus
//! `aws_config::load_defaults` and a DynamoDB and an SQS client, as every orders function builds them.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    run(service_fn(|_: LambdaEvent<Value>| {
        let _clients = (&dynamo, &sqs);
        async { Ok::<_, Error>(serde_json::json!({})) }
    }))
    .await
}
