//! Creates the template's SNS topics on moto and subscribes the template's queues to them, with
//! their raw delivery and filter policies, as CloudFormation would.

use std::collections::BTreeMap;

use aws_sdk_sns::Client;
use serde_json::Value;

use crate::queues::Queues;
use crate::template::{Template, TemplateError};

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("topic {topic}: {message}")]
    Sns { topic: String, message: String },
    #[error("subscription {0} names a topic or queue that is not in the template")]
    Unresolved(String),
}

/// The topics as created: `Ref` (the ARN) of each logical id.
pub type Topics = BTreeMap<String, String>;

/// Creates every `AWS::SNS::Topic` with `FifoTopic` (the events topics; alarm topics are not
/// played locally), then every `AWS::SNS::Subscription` of a queue to one of them.
pub async fn create_topics(
    client: &Client,
    template: &Template,
    prefix: &str,
    queues: &Queues,
) -> Result<Topics, TopicError> {
    let mut topics = Topics::new();
    for id in template.resources_of_type("AWS::SNS::Topic") {
        let props = template.resource_properties(id)?;
        if props.get("FifoTopic").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let fail = |e: &dyn std::fmt::Display| TopicError::Sns {
            topic: id.clone(),
            message: e.to_string(),
        };
        let dedup = props
            .get("ContentBasedDeduplication")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let out = client
            .create_topic()
            .name(format!("{prefix}-{id}.fifo"))
            .attributes("FifoTopic", "true")
            .attributes("ContentBasedDeduplication", dedup.to_string())
            .send()
            .await
            .map_err(|e| fail(&aws_sdk_sns::error::DisplayErrorContext(&e)))?;
        let arn = out.topic_arn.ok_or_else(|| fail(&"no topic ARN"))?;
        topics.insert(id.clone(), arn);
    }
    for id in template.resources_of_type("AWS::SNS::Subscription") {
        let props = template.resource_properties(id)?;
        if props.get("Protocol").and_then(Value::as_str) != Some("sqs") {
            continue;
        }
        let unresolved = || TopicError::Unresolved(id.clone());
        let topic = props
            .pointer("/TopicArn/Ref")
            .and_then(Value::as_str)
            .and_then(|t| topics.get(t))
            .ok_or_else(unresolved)?;
        let queue = props
            .pointer("/Endpoint/Fn::GetAtt/0")
            .and_then(Value::as_str)
            .and_then(|q| queues.arns.get(q))
            .ok_or_else(unresolved)?;
        let mut request = client
            .subscribe()
            .topic_arn(topic)
            .protocol("sqs")
            .endpoint(queue);
        if props.get("RawMessageDelivery").and_then(Value::as_bool) == Some(true) {
            request = request.attributes("RawMessageDelivery", "true");
        }
        if let Some(policy) = props.get("FilterPolicy") {
            request = request.attributes("FilterPolicy", policy.to_string());
        }
        if let Some(scope) = props.get("FilterPolicyScope").and_then(Value::as_str) {
            request = request.attributes("FilterPolicyScope", scope);
        }
        request.send().await.map_err(|e| TopicError::Sns {
            topic: id.clone(),
            message: aws_sdk_sns::error::DisplayErrorContext(&e).to_string(),
        })?;
    }
    Ok(topics)
}
