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

/// Each queue that sends its dead letters elsewhere, and where (logical ids: source → DLQ).
pub fn dead_letter_targets(template: &Template) -> BTreeMap<String, String> {
    template
        .resources_of_type("AWS::SQS::Queue")
        .filter_map(|id| {
            let props = template.resource_properties(id).ok()?;
            let target = props
                .pointer("/RedrivePolicy/deadLetterTargetArn/Fn::GetAtt/0")?
                .as_str()?;
            Some((id.clone(), target.to_owned()))
        })
        .collect()
}

/// How many messages a queue holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    pub visible: u64,
    pub in_flight: u64,
    /// Sent with a delay not yet over.
    pub delayed: u64,
}

impl Depth {
    /// Every message the queue holds, whatever its state.
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight + self.delayed
    }
}

fn sqs_error<E: std::error::Error + 'static>(queue: &str) -> impl Fn(E) -> QueueError + '_ {
    move |e| QueueError::Sqs {
        queue: queue.to_owned(),
        message: aws_sdk_sqs::error::DisplayErrorContext(&e).to_string(),
    }
}

pub async fn depth(client: &Client, url: &str) -> Result<Depth, QueueError> {
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(sqs_error(url))?;
    let count = |name: &QueueAttributeName| {
        out.attributes()
            .and_then(|a| a.get(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Depth {
        visible: count(&QueueAttributeName::ApproximateNumberOfMessages),
        in_flight: count(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        delayed: count(&QueueAttributeName::ApproximateNumberOfMessagesDelayed),
    })
}

/// The bodies of up to 10 messages, left where they are (received with no visibility timeout).
pub async fn peek(client: &Client, url: &str) -> Result<Vec<String>, QueueError> {
    let out = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .send()
        .await
        .map_err(sqs_error(url))?;
    Ok(out
        .messages()
        .iter()
        .filter_map(|m| m.body().map(str::to_owned))
        .collect())
}

/// Moves every message of `from` to `to`, as SQS's `StartMessageMoveTask` does for a dead-letter
/// queue (moto does not have that call): each is sent with its attributes, its message group and
/// trace header, and a new deduplication id (a FIFO queue would drop a message it deduplicated
/// before), then deleted from `from`. Answers how many moved.
pub async fn move_messages(client: &Client, from: &str, to: &str) -> Result<usize, QueueError> {
    use aws_sdk_sqs::types::{
        MessageSystemAttributeName, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
    };
    let fifo = to.ends_with(".fifo");
    let mut moved = 0;
    loop {
        let out = client
            .receive_message()
            .queue_url(from)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(sqs_error(from))?;
        if out.messages().is_empty() {
            return Ok(moved);
        }
        for message in out.messages() {
            let system = message.attributes();
            let mut send = client
                .send_message()
                .queue_url(to)
                .message_body(message.body().unwrap_or_default())
                .set_message_attributes(message.message_attributes().cloned());
            if let Some(trace) =
                system.and_then(|a| a.get(&MessageSystemAttributeName::AwsTraceHeader))
            {
                let value = MessageSystemAttributeValue::builder()
                    .data_type("String")
                    .string_value(trace)
                    .build()
                    .map_err(sqs_error(to))?;
                send = send.message_system_attributes(
                    MessageSystemAttributeNameForSends::AwsTraceHeader,
                    value,
                );
            }
            if fifo {
                let group = system
                    .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                    .cloned()
                    .unwrap_or_else(|| "redrive".to_owned());
                send = send
                    .message_group_id(group)
                    .message_deduplication_id(uuid::Uuid::new_v4().to_string());
            }
            send.send().await.map_err(sqs_error(to))?;
            client
                .delete_message()
                .queue_url(from)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .map_err(sqs_error(from))?;
            moved += 1;
        }
    }
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
