//! Reading one NDJSON line as a record, leniently: the fields delivery needs (`message`,
//! `timestamp`, `customer_id`, and the stream-template fields) are taken from any line that has a
//! message, whatever else it lacks or adds. Timestamps are RFC 3339 strings (the record schema) or
//! epoch seconds / milliseconds / micro- / nanoseconds as numbers or digit strings.
//!
//! A line in the record schema (`logrelay_common::record::LogRecord`) is read by a borrowing fast
//! path; anything else falls back to `serde_json::Value` extraction.
//!
//! Vector-written lines (Vector's `kubernetes_logs` source through its `json` codec) carry
//! `message`, `timestamp` (RFC 3339, nanoseconds), `stream`, `file`, `source_type` and a
//! `kubernetes` object; the proof of concept's Vector configuration adds top-level `customer_id`,
//! `cluster_id`, `application` and `pod_name` and reduces `kubernetes` to `namespace`, `pod_name`,
//! `container_name` and `node_name`. Fields missing at the top level are taken from `kubernetes`
//! (`namespace` or Vector's own `pod_namespace`, `pod_name`, `container_name`).

use chrono::DateTime;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::borrow::Cow;
use std::fmt;

/// The parts of a record delivery uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// The original log line.
    pub message: Cow<'a, str>,
    /// Event time in ms since the epoch; `None` when missing or unreadable.
    pub timestamp_ms: Option<i64>,
    /// Tenant the record claims.
    pub customer_id: Option<Cow<'a, str>>,
    /// Cluster.
    pub cluster_id: Option<Cow<'a, str>>,
    /// Namespace.
    pub namespace: Option<Cow<'a, str>>,
    /// Application.
    pub application: Option<Cow<'a, str>>,
    /// Pod.
    pub pod_name: Option<Cow<'a, str>>,
    /// Container.
    pub container_name: Option<Cow<'a, str>>,
}

/// Why a line is not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadLine {
    /// Not a JSON object.
    InvalidJson,
    /// Not UTF-8 (so not JSON either), counted on its own so a tenant can tell encoding
    /// problems from malformed records.
    InvalidUtf8,
    /// A JSON object without a `message`.
    MissingMessage,
}

/// The record schema's shape, borrowing strings where the line has no escapes.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    message: Cow<'a, str>,
    #[serde(default)]
    timestamp: Timestamp,
    #[serde(borrow, default)]
    customer_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    cluster_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    namespace: Option<Text<'a>>,
    #[serde(borrow, default)]
    application: Option<Text<'a>>,
    #[serde(borrow, default)]
    pod_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    container_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    kubernetes: Option<Kubernetes<'a>>,
}

/// The `kubernetes` object of a Vector-written line (both the proof of concept's reduced form and
/// Vector's own field names); anything of another shape is ignored.
#[derive(Default)]
struct Kubernetes<'a> {
    namespace: Option<Cow<'a, str>>,
    pod_name: Option<Cow<'a, str>>,
    container_name: Option<Cow<'a, str>>,
}

/// [`Kubernetes`] as serde reads it: every field optional and a string.
#[derive(Deserialize)]
struct KubernetesWire<'a> {
    #[serde(borrow, default)]
    namespace: Option<Text<'a>>,
    #[serde(borrow, default)]
    pod_namespace: Option<Text<'a>>,
    #[serde(borrow, default)]
    pod_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    container_name: Option<Text<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Kubernetes<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = KubernetesWire::deserialize(deserializer)?;
        Ok(Kubernetes {
            namespace: wire.namespace.or(wire.pod_namespace).map(|t| t.0),
            pod_name: wire.pod_name.map(|t| t.0),
            container_name: wire.container_name.map(|t| t.0),
        })
    }
}

/// A string field, borrowed from the line when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Cow<'de, str>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(text))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(text.to_owned()))
            }
            fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(text))
            }
        }

        deserializer.deserialize_str(TextVisitor).map(Text)
    }
}

/// A `timestamp` field of any supported form; unreadable values become `None`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Timestamp(Option<i64>);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;

        impl Visitor<'_> for TimestampVisitor {
            type Value = Timestamp;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 string or epoch number")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Timestamp, E> {
                Ok(Timestamp(parse_timestamp_text(text)))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(epoch_int_to_ms(i128::from(n))))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Timestamp, E> {
                Ok(Timestamp(epoch_int_to_ms(i128::from(n))))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Timestamp, E> {
                Ok(Timestamp(epoch_float_to_ms(n)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Timestamp, E> {
                Ok(Timestamp(None))
            }
        }

        deserializer.deserialize_any(TimestampVisitor)
    }
}

/// Parses one line.
pub fn parse_record(line: &[u8]) -> Result<Record<'_>, BadLine> {
    if let Ok(wire) = serde_json::from_slice::<Wire<'_>>(line) {
        let kubernetes = wire.kubernetes.unwrap_or_default();
        return Ok(Record {
            message: wire.message,
            timestamp_ms: wire.timestamp.0,
            customer_id: wire.customer_id.map(|t| t.0),
            cluster_id: wire.cluster_id.map(|t| t.0),
            namespace: wire.namespace.map(|t| t.0).or(kubernetes.namespace),
            application: wire.application.map(|t| t.0),
            pod_name: wire.pod_name.map(|t| t.0).or(kubernetes.pod_name),
            container_name: wire
                .container_name
                .map(|t| t.0)
                .or(kubernetes.container_name),
        });
    }
    let value: serde_json::Value = serde_json::from_slice(line).map_err(|_| {
        if std::str::from_utf8(line).is_err() {
            BadLine::InvalidUtf8
        } else {
            BadLine::InvalidJson
        }
    })?;
    let serde_json::Value::Object(map) = value else {
        return Err(BadLine::InvalidJson);
    };
    let message = match map.get("message") {
        None | Some(serde_json::Value::Null) => return Err(BadLine::MissingMessage),
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(), // structured message: delivered as its JSON text
    };
    let text = |name: &str| match map.get(name) {
        Some(serde_json::Value::String(text)) => Some(Cow::Owned(text.clone())),
        _ => None,
    };
    let kubernetes = map
        .get("kubernetes")
        .and_then(|value| Kubernetes::deserialize(value).ok())
        .unwrap_or_default();
    let owned = |text: Option<Cow<'_, str>>| text.map(|t| Cow::Owned(t.into_owned()));
    let timestamp_ms = match map.get("timestamp") {
        Some(serde_json::Value::String(text)) => parse_timestamp_text(text),
        Some(serde_json::Value::Number(number)) => match (number.as_i64(), number.as_u64()) {
            (Some(n), _) => epoch_int_to_ms(i128::from(n)),
            (None, Some(n)) => epoch_int_to_ms(i128::from(n)),
            _ => number.as_f64().and_then(epoch_float_to_ms),
        },
        _ => None,
    };
    Ok(Record {
        message: Cow::Owned(message),
        timestamp_ms,
        customer_id: text("customer_id"),
        cluster_id: text("cluster_id"),
        namespace: text("namespace").or_else(|| owned(kubernetes.namespace)),
        application: text("application"),
        pod_name: text("pod_name").or_else(|| owned(kubernetes.pod_name)),
        container_name: text("container_name").or_else(|| owned(kubernetes.container_name)),
    })
}

/// An RFC 3339 time, or an epoch number written as a string.
pub fn parse_timestamp_text(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.timestamp_millis());
    }
    if let Ok(n) = text.parse::<i128>() {
        return epoch_int_to_ms(n);
    }
    text.parse::<f64>().ok().and_then(epoch_float_to_ms)
}

/// Magnitudes that tell epoch units apart: below 10^11 is seconds (until the year 5138), below
/// 10^14 milliseconds, below 10^17 microseconds, above that nanoseconds.
const SECONDS_BELOW: i128 = 100_000_000_000;
const MILLIS_BELOW: i128 = 100_000_000_000_000;
const MICROS_BELOW: i128 = 100_000_000_000_000_000;

/// An integer epoch time in seconds, ms, µs or ns (told apart by magnitude), as ms; `None` when
/// it does not fit (`i128::MIN` has no absolute value).
pub fn epoch_int_to_ms(n: i128) -> Option<i64> {
    let ms = match n.checked_abs()? {
        a if a < SECONDS_BELOW => n * 1000,
        a if a < MILLIS_BELOW => n,
        a if a < MICROS_BELOW => n / 1000,
        _ => n / 1_000_000,
    };
    i64::try_from(ms).ok()
}

/// A fractional epoch time (seconds with a fraction, or larger units), as ms.
pub fn epoch_float_to_ms(n: f64) -> Option<i64> {
    if !n.is_finite() {
        return None;
    }
    let magnitude = n.abs();
    let ms = if magnitude < 1e11 {
        n * 1e3
    } else if magnitude < 1e14 {
        n
    } else if magnitude < 1e17 {
        n / 1e3
    } else {
        n / 1e6
    };
    // `as` saturates; anything that far out is rejected later as too old or too new.
    (ms.abs() < 9.2e18).then(|| ms.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_700_000_000_123; // 2023-11-14T22:13:20.123Z

    fn ts(line: &str) -> Option<i64> {
        parse_record(line.as_bytes()).expect("record").timestamp_ms
    }

    #[test]
    fn a_schema_record_is_read_with_all_fields() {
        let line = r#"{"timestamp":"2023-11-14T22:13:20.123456789Z","message":"hello","stream":"stdout","customer_id":"acme","cluster_id":"c1","namespace":"ns","application":"api","pod_name":"p","container_name":"main","node_name":"n","ingest_timestamp":"2023-11-14T22:13:20Z","kubernetes":{"labels":{"a":"b"}}}"#;
        let record = parse_record(line.as_bytes()).expect("record");
        assert_eq!(record.message, "hello");
        assert!(
            matches!(record.message, Cow::Borrowed(_)),
            "no escapes: borrowed"
        );
        assert_eq!(record.timestamp_ms, Some(T));
        assert_eq!(record.customer_id.as_deref(), Some("acme"));
        assert!(matches!(record.customer_id, Some(Cow::Borrowed(_))));
        assert_eq!(record.application.as_deref(), Some("api"));
        assert_eq!(record.container_name.as_deref(), Some("main"));
    }

    /// A line as the proof of concept's Vector wrote it (`kubernetes_logs` source, its
    /// `enrich_metadata` remap, `json` codec: fields in Vector's sorted order).
    pub(crate) const VECTOR_LINE: &str = r#"{"application":"test-app","cluster_id":"test-cluster","customer_id":"test-customer","environment":"development","file":"/var/log/pods/clusters-test_test-pod_5f0c9d2e-1b7a-4c1e-9f3d-2a8b7c6d5e4f/main/0.log","kubernetes":{"container_name":"main","namespace":"clusters-test","node_name":"ip-10-0-1-5.ec2.internal","pod_name":"test-pod"},"log_level":"INFO","message":"I0720 19:54:34.123456       1 controller.go:231] INFO synced","pod_name":"test-pod","source_type":"kubernetes_logs","stream":"stderr","timestamp":"2023-11-14T22:13:20.123456789Z"}"#;

    #[test]
    fn a_vector_written_line_is_read_with_its_kubernetes_fields() {
        let record = parse_record(VECTOR_LINE.as_bytes()).expect("record");
        assert_eq!(
            record.message,
            "I0720 19:54:34.123456       1 controller.go:231] INFO synced"
        );
        assert_eq!(record.timestamp_ms, Some(T));
        assert_eq!(record.customer_id.as_deref(), Some("test-customer"));
        assert_eq!(record.cluster_id.as_deref(), Some("test-cluster"));
        assert_eq!(record.application.as_deref(), Some("test-app"));
        assert_eq!(record.pod_name.as_deref(), Some("test-pod"));
        assert_eq!(record.namespace.as_deref(), Some("clusters-test"));
        assert_eq!(record.container_name.as_deref(), Some("main"));
    }

    #[test]
    fn vector_own_kubernetes_names_are_read_on_both_paths() {
        let line = r#"{"message":"m","kubernetes":{"pod_namespace":"ns1","pod_name":"p1","container_name":"c1","pod_labels":{"app":"x"}}}"#;
        let record = parse_record(line.as_bytes()).expect("record");
        assert_eq!(record.namespace.as_deref(), Some("ns1"));
        assert_eq!(record.pod_name.as_deref(), Some("p1"));
        assert_eq!(record.container_name.as_deref(), Some("c1"));
        // A structured message takes the lenient path; the kubernetes fields still count.
        let line =
            r#"{"message":{"k":1},"kubernetes":{"pod_namespace":"ns1","container_name":"c1"}}"#;
        let record = parse_record(line.as_bytes()).expect("record");
        assert_eq!(record.namespace.as_deref(), Some("ns1"));
        assert_eq!(record.container_name.as_deref(), Some("c1"));
        // Top-level fields win over the kubernetes object.
        let line = r#"{"message":"m","namespace":"top","kubernetes":{"namespace":"inner"}}"#;
        let record = parse_record(line.as_bytes()).expect("record");
        assert_eq!(record.namespace.as_deref(), Some("top"));
    }

    #[test]
    fn rfc3339_offsets_are_converted_to_utc() {
        assert_eq!(
            ts(r#"{"message":"m","timestamp":"2023-11-15T00:13:20.123+02:00"}"#),
            Some(T)
        );
    }

    #[test]
    fn epoch_seconds_milliseconds_micros_and_nanos_are_recognised() {
        assert_eq!(
            ts(r#"{"message":"m","timestamp":1700000000}"#),
            Some(1_700_000_000_000)
        );
        assert_eq!(ts(r#"{"message":"m","timestamp":1700000000.123}"#), Some(T));
        assert_eq!(ts(r#"{"message":"m","timestamp":1700000000123}"#), Some(T));
        assert_eq!(
            ts(r#"{"message":"m","timestamp":1700000000123456}"#),
            Some(T)
        );
        assert_eq!(
            ts(r#"{"message":"m","timestamp":1700000000123456789}"#),
            Some(T)
        );
        assert_eq!(
            ts(r#"{"message":"m","timestamp":"1700000000123"}"#),
            Some(T)
        );
    }

    #[test]
    fn missing_or_unreadable_timestamps_are_none() {
        assert_eq!(ts(r#"{"message":"m"}"#), None);
        assert_eq!(ts(r#"{"message":"m","timestamp":null}"#), None);
        assert_eq!(ts(r#"{"message":"m","timestamp":"yesterday"}"#), None);
        assert_eq!(ts(r#"{"message":"m","timestamp":{"s":1}}"#), None);
        assert_eq!(ts(r#"{"message":"m","timestamp":true}"#), None);
    }

    #[test]
    fn odd_field_types_fall_back_to_lenient_extraction() {
        let record =
            parse_record(br#"{"message":{"k":1},"application":7,"pod_name":"p"}"#).expect("record");
        assert_eq!(record.message, r#"{"k":1}"#);
        assert_eq!(record.application, None);
        assert_eq!(record.pod_name.as_deref(), Some("p"));
    }

    #[test]
    fn escaped_messages_are_decoded_exactly() {
        let record = parse_record(br#"{"message":"tab\there \"q\" \u00e9"}"#).expect("record");
        assert_eq!(record.message, "tab\there \"q\" é");
    }

    #[test]
    fn lines_that_are_not_records_say_why() {
        assert_eq!(parse_record(b"not json"), Err(BadLine::InvalidJson));
        assert_eq!(parse_record(b"[1,2]"), Err(BadLine::InvalidJson));
        assert_eq!(
            parse_record(b"{\"msg\":\"x\"}"),
            Err(BadLine::MissingMessage)
        );
        assert_eq!(
            parse_record(b"{\"message\":null}"),
            Err(BadLine::MissingMessage)
        );
        assert_eq!(
            parse_record(b"{\"message\":\"\xff\"}"),
            Err(BadLine::InvalidUtf8)
        );
        assert_eq!(parse_record(b"\xff not json"), Err(BadLine::InvalidUtf8));
    }
}
