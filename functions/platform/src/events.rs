//! The envelope services talk in: CloudEvents 1.0 in JSON, written to an outbox and carried by
//! the queues. Each service names its event types (an enum implementing [`EventType`]) and its data.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The CloudEvents specification version this project writes.
pub const SPEC_VERSION: &str = "1.0";

/// A service's event types (`order.created`, …), serialised as their names.
pub trait EventType:
    Copy + Eq + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    fn as_str(self) -> &'static str;
}

/// A CloudEvents 1.0 envelope (JSON format) whose data is what the event is about, as committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "T: Serialize, D: Serialize",
    deserialize = "T: DeserializeOwned, D: DeserializeOwned"
))]
pub struct CloudEvent<T, D> {
    pub specversion: String,
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: T,
    pub source: String,
    pub subject: String,
    #[serde(with = "rfc3339_millis")]
    pub time: DateTime<Utc>,
    pub datacontenttype: String,
    /// The Distributed Tracing extension: the W3C trace context of the request that caused the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub data: D,
}

/// Namespace of event ids: an event id is derived from its subject and type, so one subject can
/// never produce two different events of one type, whatever retries happen on the way.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x1c3e_8a52_77d4_4f0b_9e61_0b8f_4d2a_c955);

impl<T: EventType, D> CloudEvent<T, D> {
    /// Whether the id is the one derived from the subject and the type, as every producer's is.
    pub fn has_derived_id(&self) -> bool {
        self.id == event_id(&self.subject, self.event_type.as_str()).to_string()
    }

    /// The event of type `event_type` about `subject`, with a deterministic id.
    pub fn new(event_type: T, source: &str, subject: &str, data: D, time: DateTime<Utc>) -> Self {
        Self {
            specversion: SPEC_VERSION.to_owned(),
            id: event_id(subject, event_type.as_str()).to_string(),
            event_type,
            source: source.to_owned(),
            subject: subject.to_owned(),
            time: rfc3339_millis::truncate(time),
            datacontenttype: "application/json".to_owned(),
            traceparent: None,
            data,
        }
    }

    /// The event, carrying the X-Ray trace of the invocation that writes it (as `traceparent`).
    pub fn traced(mut self, xray_trace_header: Option<&str>) -> Self {
        self.traceparent = xray_trace_header.and_then(traceparent_from_xray);
        self
    }

    /// The event, carrying on the trace of the event that caused it.
    pub fn with_traceparent(mut self, traceparent: Option<String>) -> Self {
        self.traceparent = traceparent;
        self
    }

    /// The X-Ray trace header (`Root=…;Parent=…;Sampled=…`) of the event's `traceparent`.
    pub fn xray_trace_header(&self) -> Option<String> {
        self.traceparent.as_deref().and_then(xray_from_traceparent)
    }
}

/// The id of the event of type `event_type` about `subject`.
pub fn event_id(subject: &str, event_type: &str) -> Uuid {
    let name = format!("{subject}/{event_type}");
    Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes())
}

pub use kernel::rfc3339_millis;

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1` →
/// `00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01`. Without a parent (the invocation's
/// own segment is not known here) the root's first 16 hex digits stand in.
pub fn traceparent_from_xray(header: &str) -> Option<String> {
    let field = |name: &str| {
        header
            .split(';')
            .filter_map(|part| part.trim().split_once('='))
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_owned())
    };
    let root = field("Root")?;
    let mut parts = root.split('-');
    let (version, time, id) = (parts.next()?, parts.next()?, parts.next()?);
    if version != "1" || !is_hex(time, 8) || !is_hex(id, 24) {
        return None;
    }
    let trace_id = format!("{time}{id}").to_ascii_lowercase();
    let parent = field("Parent")
        .filter(|p| is_hex(p, 16))
        .unwrap_or_else(|| trace_id[..16].to_owned())
        .to_ascii_lowercase();
    let sampled = if field("Sampled").as_deref() == Some("1") {
        "01"
    } else {
        "00"
    };
    Some(format!("00-{trace_id}-{parent}-{sampled}"))
}

/// The inverse of [`traceparent_from_xray`].
pub fn xray_from_traceparent(traceparent: &str) -> Option<String> {
    let mut parts = traceparent.split('-');
    let (version, trace_id, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || !is_hex(trace_id, 32) || !is_hex(parent, 16) || !is_hex(flags, 2) {
        return None;
    }
    let sampled = u8::from_str_radix(flags, 16).ok()? & 1;
    Some(format!(
        "Root=1-{}-{};Parent={parent};Sampled={sampled}",
        &trace_id[..8],
        &trace_id[8..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    enum Kind {
        #[serde(rename = "thing.made")]
        Made,
        #[serde(rename = "thing.broken")]
        Broken,
    }

    impl EventType for Kind {
        fn as_str(self) -> &'static str {
            match self {
                Kind::Made => "thing.made",
                Kind::Broken => "thing.broken",
            }
        }
    }

    fn made(subject: &str) -> CloudEvent<Kind, serde_json::Value> {
        CloudEvent::new(
            Kind::Made,
            "things",
            subject,
            serde_json::json!({"amount": 1999}),
            Utc::now(),
        )
    }

    #[test]
    fn envelope_has_every_required_cloudevents_attribute() {
        let event = made("s-1");
        let json = serde_json::to_value(&event).unwrap();
        for attr in [
            "specversion",
            "id",
            "type",
            "source",
            "subject",
            "time",
            "datacontenttype",
            "data",
        ] {
            assert!(json.get(attr).is_some(), "missing {attr}");
        }
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["type"], "thing.made");
        assert_eq!(json["subject"], "s-1");
        assert_eq!(json["data"]["amount"], 1999);
        let back: CloudEvent<Kind, serde_json::Value> = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn xray_headers_and_traceparents_convert_both_ways() {
        let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let w3c = traceparent_from_xray(xray).unwrap();
        assert_eq!(
            w3c,
            "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
        );
        assert_eq!(xray_from_traceparent(&w3c).as_deref(), Some(xray));
        let rootless = traceparent_from_xray("Root=1-5759e988-bd862e3fe1be46a994272793").unwrap();
        assert!(rootless.ends_with("-00"));
        assert_eq!(traceparent_from_xray("Self=1-abc"), None);
        assert_eq!(xray_from_traceparent("garbage"), None);
    }

    #[test]
    fn a_traced_event_carries_its_traceparent_through_json() {
        let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let event = made("s-1").traced(Some(xray));
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json["traceparent"],
            "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
        );
        let back: CloudEvent<Kind, serde_json::Value> = serde_json::from_value(json).unwrap();
        assert_eq!(back.xray_trace_header().as_deref(), Some(xray));
        assert!(
            serde_json::to_value(made("s-2"))
                .unwrap()
                .get("traceparent")
                .is_none()
        );
    }

    #[test]
    fn event_ids_differ_by_type_and_subject_but_are_stable() {
        assert_eq!(made("a").id, made("a").id);
        assert_ne!(made("a").id, made("b").id);
        assert_ne!(
            event_id("a", Kind::Made.as_str()),
            event_id("a", Kind::Broken.as_str())
        );
    }
}
