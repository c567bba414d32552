//! The record schema: one NDJSON line per container log line, shared by agent, processor and
//! test generator. Field names are stable; see `docs/record-format.md`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// Which output stream of the container a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The lowercase name used on the wire (`stdout` / `stderr`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One container log line with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// When the container runtime saw the line (RFC 3339, nanoseconds, UTC).
    #[serde(with = "rfc3339_nanos")]
    pub timestamp: DateTime<Utc>,
    /// The original line, byte-for-byte as written by the container (without the newline).
    pub message: String,
    /// The output stream the line was written to.
    #[serde(default)]
    pub stream: Stream,
    /// Tenant that owns the line.
    pub customer_id: String,
    /// Cluster the line was collected on.
    pub cluster_id: String,
    /// Kubernetes namespace of the pod.
    pub namespace: String,
    /// Application name derived from the pod's labels or owner.
    pub application: String,
    /// Pod name.
    pub pod_name: String,
    /// Container name within the pod.
    pub container_name: String,
    /// Node the pod ran on.
    pub node_name: String,
    /// When the agent read the line (RFC 3339, nanoseconds, UTC).
    #[serde(with = "rfc3339_nanos")]
    pub ingest_timestamp: DateTime<Utc>,
    /// Kubernetes metadata, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesMeta>,
    /// Fields this version does not know, kept as they were read.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Kubernetes metadata attached to a record.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct KubernetesMeta {
    /// The pod's UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// Allow-listed pod labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Allow-listed pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The container's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_image: Option<String>,
    /// The owning workload, e.g. `Deployment/api`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Fields this version does not know, kept as they were read.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Formats a timestamp the way records carry it: RFC 3339, nine fractional digits, `Z`.
pub fn format_timestamp(ts: &DateTime<Utc>) -> String {
    match TimestampText::new(ts) {
        Some(text) => text.as_str().to_owned(),
        None => ts.to_rfc3339_opts(SecondsFormat::Nanos, true),
    }
}

/// A UTC timestamp written `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` on the stack: what
/// [`format_timestamp`] writes, without chrono's general formatter (records carry two timestamps
/// each, and formatting them was a visible share of the agent's serialization time).
struct TimestampText([u8; 30]);

impl TimestampText {
    /// The text of `ts`, for years 0000–9999 (others need chrono's sign-and-width rules).
    fn new(ts: &DateTime<Utc>) -> Option<Self> {
        use chrono::{Datelike, Timelike};
        let year = u32::try_from(ts.year()).ok().filter(|y| *y <= 9999)?;
        // A leap second is stored as nanosecond ≥ 1e9; chrono prints it as second 60.
        let (second, nanos) = match ts.nanosecond() {
            n if n >= 1_000_000_000 => (60, n - 1_000_000_000),
            n => (ts.second(), n),
        };
        let mut out = *b"0000-00-00T00:00:00.000000000Z";
        write_digits(&mut out[0..4], year);
        write_digits(&mut out[5..7], ts.month());
        write_digits(&mut out[8..10], ts.day());
        write_digits(&mut out[11..13], ts.hour());
        write_digits(&mut out[14..16], ts.minute());
        write_digits(&mut out[17..19], second);
        write_digits(&mut out[20..29], nanos);
        Some(Self(out))
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Writes `value`'s last `out.len()` decimal digits, zero-padded, into `out`.
fn write_digits(out: &mut [u8], mut value: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Serde adapter for RFC 3339 timestamps written with nanoseconds in UTC; any RFC 3339 offset is read.
pub mod rfc3339_nanos {
    use super::*;

    /// Writes `ts` as RFC 3339 with nanoseconds and `Z`.
    pub fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        match TimestampText::new(ts) {
            Some(text) => s.serialize_str(text.as_str()),
            None => s.serialize_str(&format_timestamp(ts)),
        }
    }

    /// Reads any RFC 3339 timestamp and converts it to UTC.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sample() -> LogRecord {
        let ts = Utc
            .timestamp_opt(1_700_000_000, 123_456_789)
            .single()
            .expect("valid time");
        LogRecord {
            timestamp: ts,
            message: "héllo \"world\"\t{\"k\":1}".into(),
            stream: Stream::Stderr,
            customer_id: "acme".into(),
            cluster_id: "c1".into(),
            namespace: "ns".into(),
            application: "api".into(),
            pod_name: "api-7d9f".into(),
            container_name: "main".into(),
            node_name: "node-1".into(),
            ingest_timestamp: ts,
            kubernetes: Some(KubernetesMeta {
                pod_uid: Some("uid-1".into()),
                labels: BTreeMap::from([("app".into(), "api".into())]),
                ..Default::default()
            }),
            extra: Default::default(),
        }
    }

    #[test]
    fn fast_timestamp_text_matches_chrono_exactly() {
        use chrono::NaiveDate;
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut times: Vec<DateTime<Utc>> = (0..20_000)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                // Seconds spanning years 0000-9999, any nanosecond.
                let secs = (seed >> 20) as i64 % 315_537_897_600 - 62_167_219_200;
                let nanos = (seed % 1_000_000_000) as u32;
                Utc.timestamp_opt(secs, nanos).single().expect("in range")
            })
            .collect();
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .expect("leap second");
        times.push(leap.and_utc());
        times.push(Utc.timestamp_opt(0, 0).single().expect("epoch"));
        for ts in times {
            let expected = ts.to_rfc3339_opts(SecondsFormat::Nanos, true);
            assert_eq!(format_timestamp(&ts), expected);
            let json = serde_json::to_value(sample_at(ts)).expect("serializes");
            assert_eq!(json["timestamp"], serde_json::json!(expected));
        }
        // Outside 0000-9999 chrono's own rules apply.
        let far = Utc
            .timestamp_opt(400_000_000_000, 0)
            .single()
            .expect("in range");
        assert_eq!(
            format_timestamp(&far),
            far.to_rfc3339_opts(SecondsFormat::Nanos, true)
        );
    }

    fn sample_at(ts: DateTime<Utc>) -> LogRecord {
        LogRecord {
            timestamp: ts,
            ..sample()
        }
    }

    #[test]
    fn timestamps_are_written_with_nanoseconds_in_utc() {
        let line = serde_json::to_string(&sample()).expect("serializes");
        assert!(
            line.contains(r#""timestamp":"2023-11-14T22:13:20.123456789Z""#),
            "{line}"
        );
        assert!(line.contains(r#""stream":"stderr""#));
    }

    #[test]
    fn record_round_trips_and_keeps_unknown_fields() {
        let mut value = serde_json::to_value(sample()).expect("serializes");
        value["future_field"] = serde_json::json!({"nested": [1, 2]});
        value["kubernetes"]["future_meta"] = serde_json::json!("x");
        let back: LogRecord = serde_json::from_value(value.clone()).expect("reads back");
        assert_eq!(
            back.extra["future_field"],
            serde_json::json!({"nested": [1, 2]})
        );
        assert_eq!(serde_json::to_value(&back).expect("serializes"), value);
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let mut value = serde_json::to_value(sample()).expect("serializes");
        value["timestamp"] = serde_json::json!("2023-11-15T00:13:20.5+02:00");
        let back: LogRecord = serde_json::from_value(value).expect("reads back");
        assert_eq!(
            format_timestamp(&back.timestamp),
            "2023-11-14T22:13:20.500000000Z"
        );
    }
}
