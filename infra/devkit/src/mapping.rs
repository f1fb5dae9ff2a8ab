//! Event source mappings, locally: what Lambda does between a DynamoDB stream or an SQS queue and a
//! function, done against the emulators and handing the function the same event JSON.
//!
//! - [`StreamMapping`] reads a table's stream (ListStreams is not needed: DescribeTable names it),
//!   hands batches to the function in order (only the records its `eventName` filter lets
//!   through), and on `batchItemFailures` resumes at the reported sequence number; without a
//!   failure it moves past the batch, and after `MaximumRetryAttempts` it gives the batch up.
//! - [`SqsMapping`] receives up to `batch_size` messages, hands them over, deletes those that did
//!   not fail and leaves the others for redelivery (the queue's redrive policy moves a message to
//!   its dead-letter queue after `maxReceiveCount` receives).

use std::collections::BTreeMap;
use std::future::Future;

use aws_lambda_events::dynamodb::{
    Event as StreamEvent, EventRecord, StreamRecord, StreamViewType,
};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName,
};

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
    /// Only records with one of these `eventName`s reach the function (the template's filter).
    pub event_names: Option<Vec<String>>,
    /// After this many retries of one batch it is given up (`None`: retried until it succeeds).
    pub maximum_retry_attempts: Option<u32>,
    /// The batch being retried, and how often it was handed over.
    retrying: Option<(String, u32)>,
}

/// What one delivery of a stream batch came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDelivery {
    pub records: usize,
    /// The sequence number the function asked to be retried from, if any.
    pub retry_from: Option<String>,
    /// The batch that was given up after `maximum_retry_attempts` retries (the mapping moved past it).
    pub gave_up: Option<GivenUp>,
}

/// A batch given up, as Lambda describes it to an on-failure destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenUp {
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: Option<String>,
    pub batch_size: usize,
    pub attempts: u32,
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
            event_names: None,
            maximum_retry_attempts: None,
            retrying: None,
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
                        gave_up: None,
                    };
                }
            },
        };
        self.positions.insert(shard_id.to_owned(), position);
        let gave_up = match &retry_from {
            Some(seq) => self.count_retry(shard_id, seq, event),
            None => {
                self.retrying = None;
                None
            }
        };
        StreamDelivery {
            records: event.records.len(),
            retry_from,
            gave_up,
        }
    }

    /// Counts one more handing-over of the batch from `seq`; past `maximum_retry_attempts` moves
    /// past the batch and answers what was given up.
    fn count_retry(&mut self, shard_id: &str, seq: &str, event: &StreamEvent) -> Option<GivenUp> {
        let attempts = match &self.retrying {
            Some((retried, n)) if retried == seq => n + 1,
            _ => 1,
        };
        if self
            .maximum_retry_attempts
            .is_none_or(|max| attempts <= max)
        {
            self.retrying = Some((seq.to_owned(), attempts));
            return None;
        }
        self.retrying = None;
        let end = event
            .records
            .last()
            .and_then(|r| r.change.sequence_number.clone());
        if let Some(last) = &end {
            self.positions
                .insert(shard_id.to_owned(), Position::After(last.clone()));
        }
        Some(GivenUp {
            shard_id: shard_id.to_owned(),
            start_sequence_number: seq.to_owned(),
            end_sequence_number: end,
            batch_size: event.records.len(),
            attempts,
        })
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
        let mut filtered = StreamEvent::default();
        filtered.records = event
            .records
            .iter()
            .filter(|r| {
                self.event_names
                    .as_ref()
                    .is_none_or(|names| names.contains(&r.event_name))
            })
            .cloned()
            .collect();
        let response = if filtered.records.is_empty() {
            DynamoDbEventResponse::default()
        } else {
            // The function sees the event exactly as JSON would carry it.
            let wire: StreamEvent = serde_json::from_value(serde_json::to_value(&filtered)?)?;
            match function(wire).await {
                Ok(response) => response,
                // A function error retries the whole batch.
                Err(_) => whole_batch(&filtered),
            }
        };
        Ok(Some(self.commit(&shard, &event, &response)))
    }

    fn lambda_record(&self, record: &Record) -> Result<EventRecord, MappingError> {
        let image = |image: Option<
            &std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
        >| {
            image
                .map(|i| serde_dynamo::Item::from(i.clone()))
                .unwrap_or_default()
        };
        let mut change = StreamRecord::default();
        if let Some(c) = record.dynamodb.as_ref() {
            change.approximate_creation_date_time = c
                .approximate_creation_date_time
                .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), 0))
                .unwrap_or_default();
            change.keys = image(c.keys.as_ref());
            change.new_image = image(c.new_image.as_ref());
            change.old_image = image(c.old_image.as_ref());
            change.sequence_number = c.sequence_number.clone();
            change.size_bytes = c.size_bytes.unwrap_or_default();
            change.stream_view_type = c.stream_view_type.as_ref().map(|v| match v.as_str() {
                "NEW_IMAGE" => StreamViewType::NewImage,
                "OLD_IMAGE" => StreamViewType::OldImage,
                "NEW_AND_OLD_IMAGES" => StreamViewType::NewAndOldImages,
                _ => StreamViewType::KeysOnly,
            });
        }
        let mut lambda = EventRecord::default();
        lambda.aws_region = self.region.clone();
        lambda.change = change;
        lambda.event_id = record.event_id.clone().unwrap_or_default();
        lambda.event_name = record
            .event_name
            .as_ref()
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default();
        lambda.event_source = Some("aws:dynamodb".to_owned());
        lambda.event_version = Some(
            record
                .event_version
                .clone()
                .unwrap_or_else(|| "1.1".to_owned()),
        );
        lambda.event_source_arn = Some(self.stream_arn.clone());
        Ok(lambda)
    }
}

/// The answer that retries a whole batch (what Lambda does when the function fails).
pub fn whole_batch(event: &StreamEvent) -> DynamoDbEventResponse {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = event
        .records
        .first()
        .and_then(|r| r.change.sequence_number.clone());
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = vec![failure];
    response
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
    /// Make a failed message visible again after this many seconds instead of the queue's
    /// visibility timeout (a local shortcut, `Some(0)`: at once; the receive count, and so the
    /// redrive to the DLQ, is unchanged). `None`: as Lambda does, the visibility timeout.
    pub retry_after_secs: Option<i32>,
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
            retry_after_secs: Some(0),
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
                let mut message = SqsMessage::default();
                message.message_id = m.message_id.clone();
                message.receipt_handle = m.receipt_handle.clone();
                message.body = m.body.clone();
                message.md5_of_body = m.md5_of_body.clone();
                message.attributes = m
                    .attributes
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                    .collect();
                message.event_source = Some("aws:sqs".to_owned());
                message.event_source_arn = Some(self.queue_arn.clone());
                message.aws_region = Some(self.region.clone());
                message
            })
            .collect();
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
        if let Some(retry_after) = self.retry_after_secs
            && !failed.is_empty()
        {
            let entries = messages
                .iter()
                .filter(|m| m.message_id.as_ref().is_some_and(|id| failed.contains(id)))
                .enumerate()
                .filter_map(|(i, m)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                        .visibility_timeout(retry_after)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(maximum_retry_attempts: Option<u32>) -> StreamMapping {
        let config = aws_sdk_dynamodbstreams::Config::builder()
            .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodbstreams::config::Region::new("us-east-1"))
            .build();
        StreamMapping {
            client: aws_sdk_dynamodbstreams::Client::from_conf(config),
            stream_arn: "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/s".into(),
            region: "us-east-1".into(),
            batch_size: 100,
            positions: BTreeMap::new(),
            event_names: None,
            maximum_retry_attempts,
            retrying: None,
        }
    }

    fn batch(sequence_numbers: &[&str]) -> StreamEvent {
        let mut event = StreamEvent::default();
        event.records = sequence_numbers
            .iter()
            .map(|seq| {
                let mut record = EventRecord::default();
                record.change.sequence_number = Some((*seq).to_owned());
                record
            })
            .collect();
        event
    }

    fn failing_at(seq: &str) -> DynamoDbEventResponse {
        whole_batch(&batch(&[seq]))
    }

    #[test]
    fn a_batch_is_given_up_after_the_maximum_retries_and_the_mapping_moves_past_it() {
        let mut mapping = mapping(Some(2));
        let event = batch(&["100", "200"]);
        for attempt in 1..=2 {
            let delivery = mapping.commit("s-1", &event, &failing_at("100"));
            assert_eq!(delivery.retry_from.as_deref(), Some("100"));
            assert_eq!(delivery.gave_up, None, "attempt {attempt} is retried");
            assert_eq!(mapping.positions["s-1"], Position::At("100".into()));
        }
        let delivery = mapping.commit("s-1", &event, &failing_at("100"));
        let given_up = delivery
            .gave_up
            .expect("the third failure gives the batch up");
        assert_eq!(given_up.attempts, 3);
        assert_eq!(given_up.end_sequence_number.as_deref(), Some("200"));
        assert_eq!(mapping.positions["s-1"], Position::After("200".into()));
    }

    #[test]
    fn a_success_starts_the_count_again() {
        let mut mapping = mapping(Some(1));
        let event = batch(&["100"]);
        mapping.commit("s-1", &event, &failing_at("100"));
        mapping.commit("s-1", &event, &DynamoDbEventResponse::default());
        let delivery = mapping.commit("s-1", &event, &failing_at("100"));
        assert_eq!(
            delivery.gave_up, None,
            "one failure after a success is the first"
        );
    }

    #[test]
    fn without_a_maximum_a_batch_is_retried_until_it_succeeds() {
        let mut mapping = mapping(None);
        let event = batch(&["100"]);
        for _ in 0..50 {
            assert_eq!(
                mapping.commit("s-1", &event, &failing_at("100")).gave_up,
                None
            );
        }
    }
}
