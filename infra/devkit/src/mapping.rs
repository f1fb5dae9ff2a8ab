//! Event source mappings, locally: what Lambda does between a DynamoDB stream or an SQS queue and a
//! function, done against the emulators and handing the function the same event JSON.
//!
//! - [`StreamMapping`] reads a table's stream (ListStreams is not needed: DescribeTable names it),
//!   hands batches to the function in order, and on `batchItemFailures` resumes at the reported
//!   sequence number; without a failure it moves past the batch.
//! - [`SqsMapping`] receives up to `batch_size` messages, hands them over, deletes those that did
//!   not fail and leaves the others for redelivery (the queue's redrive policy moves a message to
//!   its dead-letter queue after `maxReceiveCount` receives).

use std::collections::BTreeMap;
use std::future::Future;

use aws_lambda_events::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_lambda_events::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName,
};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("{0}")]
    Aws(String),
    #[error("table {0} has no stream")]
    NoStream(String),
    #[error("a record could not be converted to the Lambda event shape: {0}")]
    Shape(#[from] serde_json::Error),
}

fn aws<E: std::error::Error + 'static>(e: E) -> MappingError {
    MappingError::Aws(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())
}

/// Where a shard is read from next.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Position {
    TrimHorizon,
    At(String),
    After(String),
}

/// Reads one table's stream from TRIM_HORIZON, like a mapping with that starting position.
pub struct StreamMapping {
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    region: String,
    batch_size: i32,
    positions: BTreeMap<String, Position>,
}

/// What one delivery of a stream batch came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDelivery {
    pub records: usize,
    /// The sequence number the function asked to be retried from, if any.
    pub retry_from: Option<String>,
}

impl StreamMapping {
    pub async fn for_table(
        dynamo: &aws_sdk_dynamodb::Client,
        streams: aws_sdk_dynamodbstreams::Client,
        table: &str,
        batch_size: i32,
    ) -> Result<Self, MappingError> {
        let table_desc = dynamo
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(aws)?;
        let stream_arn = table_desc
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| MappingError::NoStream(table.to_owned()))?;
        let region = streams
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".to_owned());
        Ok(Self {
            client: streams,
            stream_arn,
            region,
            batch_size,
            positions: BTreeMap::new(),
        })
    }

    /// Reads the next batch of records, if there is one (from the first shard that has any).
    pub async fn next_batch(&mut self) -> Result<Option<(String, StreamEvent)>, MappingError> {
        let stream = self
            .client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .map_err(aws)?;
        let shards = stream
            .stream_description
            .map(|d| d.shards.unwrap_or_default())
            .unwrap_or_default();
        for shard in shards {
            let Some(shard_id) = shard.shard_id else {
                continue;
            };
            let position = self
                .positions
                .entry(shard_id.clone())
                .or_insert(Position::TrimHorizon)
                .clone();
            let mut request = self
                .client
                .get_shard_iterator()
                .stream_arn(&self.stream_arn)
                .shard_id(&shard_id);
            request = match &position {
                Position::TrimHorizon => {
                    request.shard_iterator_type(ShardIteratorType::TrimHorizon)
                }
                Position::At(seq) => request
                    .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                    .sequence_number(seq),
                Position::After(seq) => request
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .sequence_number(seq),
            };
            let Some(iterator) = request.send().await.map_err(aws)?.shard_iterator else {
                continue;
            };
            let out = self
                .client
                .get_records()
                .shard_iterator(iterator)
                .limit(self.batch_size)
                .send()
                .await
                .map_err(aws)?;
            let records = out.records.unwrap_or_default();
            if records.is_empty() {
                continue;
            }
            let records = records
                .iter()
                .map(|r| self.lambda_record(r))
                .collect::<Result<Vec<_>, _>>()?;
            let mut event = StreamEvent::default();
            event.records = records;
            return Ok(Some((shard_id, event)));
        }
        Ok(None)
    }

    /// Moves the shard's position after a delivery: past the batch, or to the reported failure.
    pub fn commit(
        &mut self,
        shard_id: &str,
        event: &StreamEvent,
        response: &DynamoDbEventResponse,
    ) -> StreamDelivery {
        let retry_from = response
            .batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.clone())
            .min_by(|a, b| compare_sequence(a, b));
        let position = match &retry_from {
            Some(seq) => Position::At(seq.clone()),
            None => match event
                .records
                .last()
                .and_then(|r| r.change.sequence_number.clone())
            {
                Some(last) => Position::After(last),
                None => {
                    return StreamDelivery {
                        records: 0,
                        retry_from,
                    };
                }
            },
        };
        self.positions.insert(shard_id.to_owned(), position);
        StreamDelivery {
            records: event.records.len(),
            retry_from,
        }
    }

    /// Reads, hands over and commits one batch. `None` when the stream had nothing new.
    pub async fn deliver_once<F, Fut, E>(
        &mut self,
        function: F,
    ) -> Result<Option<StreamDelivery>, MappingError>
    where
        F: FnOnce(StreamEvent) -> Fut,
        Fut: Future<Output = Result<DynamoDbEventResponse, E>>,
    {
        let Some((shard, event)) = self.next_batch().await? else {
            return Ok(None);
        };
        // The function sees the event exactly as JSON would carry it.
        let wire: StreamEvent = serde_json::from_value(serde_json::to_value(&event)?)?;
        let response = match function(wire).await {
            Ok(response) => response,
            // A function error retries the whole batch.
            Err(_) => {
                let mut all = DynamoDbEventResponse::default();
                let mut failure = aws_lambda_events::streams::DynamoDbBatchItemFailure::default();
                failure.item_identifier = event
                    .records
                    .first()
                    .and_then(|r| r.change.sequence_number.clone());
                all.batch_item_failures = vec![failure];
                all
            }
        };
        Ok(Some(self.commit(&shard, &event, &response)))
    }

    fn lambda_record(&self, record: &Record) -> Result<EventRecord, MappingError> {
        let change = record.dynamodb.as_ref();
        let item = |image: Option<
            &std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
        >| { image.map(|i| serde_dynamo::Item::from(i.clone())) };
        let mut dynamodb = json!({
            "ApproximateCreationDateTime": change
                .and_then(|c| c.approximate_creation_date_time)
                .map(|t| t.secs())
                .unwrap_or_default(),
            "SequenceNumber": change.and_then(|c| c.sequence_number.clone()),
            "SizeBytes": change.and_then(|c| c.size_bytes).unwrap_or_default(),
            "StreamViewType": change.and_then(|c| c.stream_view_type.as_ref()).map(|v| v.as_str().to_owned()),
        });
        for (name, image) in [
            ("Keys", item(change.and_then(|c| c.keys.as_ref()))),
            ("NewImage", item(change.and_then(|c| c.new_image.as_ref()))),
            ("OldImage", item(change.and_then(|c| c.old_image.as_ref()))),
        ] {
            if let Some(image) = image {
                dynamodb[name] = serde_json::to_value(image)?;
            }
        }
        let value = json!({
            "eventID": record.event_id.clone().unwrap_or_default(),
            "eventName": record.event_name.as_ref().map(|n| n.as_str().to_owned()).unwrap_or_default(),
            "eventVersion": record.event_version.clone().unwrap_or_else(|| "1.1".to_owned()),
            "eventSource": "aws:dynamodb",
            "awsRegion": self.region,
            "eventSourceARN": self.stream_arn,
            "dynamodb": dynamodb,
        });
        Ok(serde_json::from_value(value)?)
    }
}

/// Sequence numbers are decimal strings of varying length.
fn compare_sequence(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Delivers one queue's messages to a function, like an SQS event source mapping with
/// `ReportBatchItemFailures`.
pub struct SqsMapping {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    queue_arn: String,
    region: String,
    batch_size: i32,
    /// Make a failed message visible again at once instead of after the visibility timeout
    /// (a local shortcut; the receive count, and so the redrive to the DLQ, is unchanged).
    pub retry_now: bool,
}

/// What one delivery of a queue batch came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsDelivery {
    pub received: usize,
    pub failed: usize,
}

impl SqsMapping {
    pub fn new(
        client: aws_sdk_sqs::Client,
        queue_url: String,
        queue_arn: String,
        batch_size: i32,
    ) -> Self {
        let region = client
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".to_owned());
        Self {
            client,
            queue_url,
            queue_arn,
            region,
            batch_size,
            retry_now: true,
        }
    }

    /// Receives one batch (waiting up to `wait_secs` for it), hands it over, deletes what succeeded.
    pub async fn deliver_once<F, Fut, E>(
        &self,
        wait_secs: i32,
        function: F,
    ) -> Result<Option<SqsDelivery>, MappingError>
    where
        F: FnOnce(SqsEvent) -> Fut,
        Fut: Future<Output = Result<SqsBatchResponse, E>>,
    {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.batch_size)
            .wait_time_seconds(wait_secs)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(aws)?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(None);
        }
        let records = messages
            .iter()
            .map(|m| {
                let attributes: BTreeMap<String, String> = m
                    .attributes
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                    .collect();
                serde_json::from_value::<SqsMessage>(json!({
                    "messageId": m.message_id,
                    "receiptHandle": m.receipt_handle,
                    "body": m.body,
                    "md5OfBody": m.md5_of_body,
                    "attributes": attributes,
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": self.region,
                }))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut event = SqsEvent::default();
        event.records = records;
        let wire: SqsEvent = serde_json::from_value(serde_json::to_value(&event)?)?;
        let failed: Vec<String> = match function(wire).await {
            Ok(response) => {
                let ids: Vec<String> = response
                    .batch_item_failures
                    .into_iter()
                    .map(|f| f.item_identifier)
                    .collect();
                // An empty or unknown id fails the whole batch, as on Lambda.
                let known =
                    |id: &String| messages.iter().any(|m| m.message_id.as_ref() == Some(id));
                if ids.iter().all(known) {
                    ids
                } else {
                    messages
                        .iter()
                        .filter_map(|m| m.message_id.clone())
                        .collect()
                }
            }
            Err(_) => messages
                .iter()
                .filter_map(|m| m.message_id.clone())
                .collect(),
        };
        let done: Vec<_> = messages
            .iter()
            .filter(|m| !m.message_id.as_ref().is_some_and(|id| failed.contains(id)))
            .collect();
        if !done.is_empty() {
            let entries = done
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                        .build()
                        .ok()
                })
                .collect();
            self.client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(aws)?;
        }
        if self.retry_now && !failed.is_empty() {
            let entries = messages
                .iter()
                .filter(|m| m.message_id.as_ref().is_some_and(|id| failed.contains(id)))
                .enumerate()
                .filter_map(|(i, m)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            self.client
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(aws)?;
        }
        Ok(Some(SqsDelivery {
            received: messages.len(),
            failed: failed.len(),
        }))
    }
}
