//! Creates the template's SQS queues on the SQS emulator (moto), dead-letter queues first, with
//! their FIFO, visibility, retention and redrive settings.

use std::collections::BTreeMap;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

use crate::template::{PhysicalNames, Template, TemplateError};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("queue {queue}: {message}")]
    Sqs { queue: String, message: String },
    #[error("queue {0} names a dead-letter queue that is not a queue of the template")]
    UnknownDeadLetterQueue(String),
}

/// The queues as created: `Ref` (the URL) and `Arn` of each logical id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Queues {
    pub urls: PhysicalNames,
    pub arns: BTreeMap<String, String>,
}

/// The local name of a queue: `<prefix>-<LogicalId>`, with `.fifo` for a FIFO queue.
pub fn queue_name(prefix: &str, logical_id: &str, fifo: bool) -> String {
    let suffix = if fifo { ".fifo" } else { "" };
    format!("{prefix}-{logical_id}{suffix}")
}

fn attribute(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Creates every `AWS::SQS::Queue` of the template.
pub async fn create_queues(
    client: &Client,
    template: &Template,
    prefix: &str,
) -> Result<Queues, QueueError> {
    let mut specs: Vec<(String, Value)> = template
        .resources_of_type("AWS::SQS::Queue")
        .map(|id| Ok((id.clone(), template.resource_properties(id)?.clone())))
        .collect::<Result<_, TemplateError>>()?;
    // Queues that redrive into another come after it.
    specs.sort_by_key(|(_, p)| p.get("RedrivePolicy").is_some());
    let mut queues = Queues::default();
    for (id, props) in specs {
        let fail = |message: String| QueueError::Sqs {
            queue: id.clone(),
            message,
        };
        let fifo = props
            .get("FifoQueue")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut request = client
            .create_queue()
            .queue_name(queue_name(prefix, &id, fifo));
        for (property, name) in [
            ("FifoQueue", QueueAttributeName::FifoQueue),
            (
                "ContentBasedDeduplication",
                QueueAttributeName::ContentBasedDeduplication,
            ),
            ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
            (
                "MessageRetentionPeriod",
                QueueAttributeName::MessageRetentionPeriod,
            ),
            ("DelaySeconds", QueueAttributeName::DelaySeconds),
            (
                "ReceiveMessageWaitTimeSeconds",
                QueueAttributeName::ReceiveMessageWaitTimeSeconds,
            ),
        ] {
            if let Some(value) = props.get(property).and_then(attribute) {
                request = request.attributes(name, value);
            }
        }
        if let Some(redrive) = props.get("RedrivePolicy") {
            let target = redrive
                .pointer("/deadLetterTargetArn/Fn::GetAtt/0")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let arn = queues
                .arns
                .get(target)
                .ok_or_else(|| QueueError::UnknownDeadLetterQueue(id.clone()))?;
            let max = redrive
                .get("maxReceiveCount")
                .and_then(attribute)
                .unwrap_or_else(|| "5".into());
            let policy =
                serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max}).to_string();
            request = request.attributes(QueueAttributeName::RedrivePolicy, policy);
        }
        let out = request
            .send()
            .await
            .map_err(|e| fail(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string()))?;
        let url = out.queue_url.ok_or_else(|| fail("no queue URL".into()))?;
        let attrs = client
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| fail(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string()))?;
        let arn = attrs
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .ok_or_else(|| fail("no queue ARN".into()))?;
        queues.urls.insert(id.clone(), url);
        queues.arns.insert(id, arn);
    }
    Ok(queues)
}
