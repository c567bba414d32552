//! Notification bodies → what to process. Auto-detects every shape that announces an object of the
//! central bucket and turns it into [`IntakeItem`]s, leniently: only the fields the processor uses
//! are read, so emulator events without `userIdentity`, `requestParameters`, `responseElements` or
//! `sequencer` parse as well as real ones.
//!
//! Shapes (see `docs/processor.md`):
//! - an SNS envelope whose string `Message` holds one of the shapes below (S3 → SNS → SQS); an
//!   object with `Message` and only other SNS envelope fields counts, `Type`/`TopicArn` or not;
//! - an S3 event notification, `{"Records": [...]}`, any `eventVersion` 2.x
//!   (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html>);
//!   keys are form-encoded there and decoded with [`key::decode_notification_key`]; a record
//!   without both `eventVersion` and `eventName` (a hand-written `{"s3": {...}}`) announces an object;
//! - the `s3:TestEvent` S3 sends when a notification is configured (acknowledged, nothing to do);
//! - an EventBridge `aws.s3` event (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html>);
//!   its key is the stored key, not form-encoded (AWS's own example shows `:` unencoded);
//! - manual input only: a plain `s3://bucket/key` line (key taken literally, as the AWS CLI does),
//!   and a whole Lambda SQS event (its records' bodies are read in turn).

use crate::object::ObjectRef;
use chrono::{DateTime, Utc};
use logrelay_common::key::{self, KeyError};
use serde_json::{Map, Value};

/// Largest body accepted: the SQS maximum message size (1 MiB since August 2025; was 256 KiB).
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Largest manual input read from stdin (many bodies); a bound, not an AWS limit.
pub const MAX_MANUAL_INPUT_BYTES: usize = 64 << 20;
/// Deepest nesting followed: Lambda SQS event → SQS body → SNS envelope → S3 event, plus one spare.
pub const MAX_NESTING: usize = 4;
/// Longest excerpt of a value quoted in an error message.
const MAX_QUOTED_CHARS: usize = 200;
/// The `eventName` prefix of every object-creation event (`ObjectCreated:Put`, `:Copy`, ...).
const OBJECT_CREATED: &str = "ObjectCreated:";
/// The EventBridge `detail-type` of object creation.
const EVENTBRIDGE_OBJECT_CREATED: &str = "Object Created";
/// The fields of an SNS notification envelope
/// (<https://docs.aws.amazon.com/sns/latest/dg/sns-message-and-json-formats.html>). An object
/// holding `Message` and nothing outside this list is read as an envelope even without `Type` and
/// `TopicArn`: the proof of concept's documented manual test sends `{"Message": "..."}` alone.
const SNS_ENVELOPE_FIELDS: &[&str] = &[
    "Type",
    "MessageId",
    "TopicArn",
    "Subject",
    "Message",
    "Timestamp",
    "SignatureVersion",
    "Signature",
    "SigningCertURL",
    "UnsubscribeURL",
    "MessageAttributes",
];

/// One thing a notification announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntakeItem {
    /// An object was created: process it.
    Object(ObjectRef),
    /// S3's `s3:TestEvent`, sent when a notification is configured: acknowledge.
    TestEvent {
        /// The bucket it names, when it says.
        bucket: Option<String>,
    },
    /// An event that is not an object creation (deletes, restores, ...): skip, counted.
    Ignored {
        /// The event's name (`ObjectRemoved:Delete`, `Object Deleted`, ...).
        event_name: String,
    },
}

/// Where a body came from; manual input accepts more shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySource {
    /// An SQS message body (Lambda or SQS poller).
    Queue,
    /// Operator input on stdin.
    Manual,
}

/// Why a body cannot be processed. Always permanent: the same body fails the same way again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body is larger than [`MAX_BODY_BYTES`] (or the manual input than its bound).
    #[error("body is {len} bytes, more than the {max} accepted")]
    TooLarge {
        /// Length of the body.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The body is empty or only whitespace.
    #[error("body is empty")]
    Empty,
    /// The body is not JSON.
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    /// The body is JSON but none of the known shapes.
    #[error(
        "body is not a known notification (SNS envelope, S3 event with Records, s3:TestEvent, EventBridge aws.s3 event); it has {0}"
    )]
    UnknownShape(String),
    /// A field the processor needs is missing or has the wrong type.
    #[error("{shape}: field {field} is missing or not {expected}")]
    MissingField {
        /// Which shape was being read.
        shape: &'static str,
        /// The field's path.
        field: &'static str,
        /// The JSON type expected.
        expected: &'static str,
    },
    /// An S3 event record of a major version other than 2.
    #[error("S3 event version {0:?} is not supported (expected 2.x)")]
    UnsupportedVersion(String),
    /// A notification key that cannot be form-decoded.
    #[error("object key {raw:?} cannot be decoded: {source}")]
    BadKey {
        /// The key as the notification carried it (shortened).
        raw: String,
        /// What is wrong with it.
        source: KeyError,
    },
    /// A manual `s3://` line without bucket or key.
    #[error("{0:?} is not an s3://bucket/key URL")]
    BadS3Url(String),
    /// A manual input line that is neither JSON nor an `s3://` URL.
    #[error("input line {0:?} is neither a JSON notification nor an s3://bucket/key URL")]
    UnknownLine(String),
    /// Notifications nested deeper than [`MAX_NESTING`].
    #[error("notification is nested more than {MAX_NESTING} levels deep")]
    TooDeep,
}

impl BodyError {
    /// Stable, low-cardinality label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            BodyError::TooLarge { .. } => "body_too_large",
            BodyError::Empty => "empty_body",
            BodyError::NotJson(_) => "malformed_json",
            BodyError::UnknownShape(_) => "unknown_shape",
            BodyError::MissingField { .. } => "missing_field",
            BodyError::UnsupportedVersion(_) => "unsupported_event_version",
            BodyError::BadKey { .. } => "bad_notification_key",
            BodyError::BadS3Url(_) => "bad_s3_url",
            BodyError::UnknownLine(_) => "unknown_input_line",
            BodyError::TooDeep => "nested_too_deep",
        }
    }
}

/// Parses one message body into what it announces.
pub fn parse_body(body: &str, source: BodySource) -> Result<Vec<IntakeItem>, BodyError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(BodyError::TooLarge {
            len: body.len(),
            max: MAX_BODY_BYTES,
        });
    }
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return Err(BodyError::Empty);
    }
    if source == BodySource::Manual && trimmed.starts_with("s3://") {
        return parse_s3_url(trimmed).map(|object| vec![IntakeItem::Object(object)]);
    }
    let value: Value =
        serde_json::from_str(trimmed).map_err(|e| BodyError::NotJson(e.to_string()))?;
    parse_value(&value, source, 0)
}

/// One entry of manual input: a JSON notification or an `s3://` line, or why it is unusable.
pub type ManualEntry = Result<Vec<IntakeItem>, BodyError>;

/// Splits manual input (stdin) into entries and parses each (see [`parse_manual_entries`]).
pub fn parse_manual_input(input: &str) -> Vec<ManualEntry> {
    parse_manual_entries(input)
        .into_iter()
        .map(|(_, entry)| entry)
        .collect()
}

/// Splits manual input (stdin) into entries, each with the 1-based line it starts on: JSON values
/// (one per line or pretty-printed, one after another) and `s3://bucket/key` lines. Malformed JSON
/// is reported as one entry, and reading goes on at the next line that starts (in its first
/// column) like an entry; the lines skipped are named in the error, so no input line goes
/// unreported and a bad entry never hides the ones after it.
pub fn parse_manual_entries(input: &str) -> Vec<(usize, ManualEntry)> {
    if input.len() > MAX_MANUAL_INPUT_BYTES {
        return vec![(
            1,
            Err(BodyError::TooLarge {
                len: input.len(),
                max: MAX_MANUAL_INPUT_BYTES,
            }),
        )];
    }
    let mut entries = Vec::new();
    let mut lines = LineCounter::default();
    let mut pos = 0;
    loop {
        let rest = &input[pos..];
        let trimmed = rest.trim_start();
        pos += rest.len() - trimmed.len();
        if trimmed.is_empty() {
            break;
        }
        let line = lines.line_at(input, pos);
        if trimmed.starts_with(['{', '[', '"']) {
            let mut stream = serde_json::Deserializer::from_str(trimmed).into_iter::<Value>();
            match stream.next() {
                Some(Ok(value)) => {
                    entries.push((line, parse_value(&value, BodySource::Manual, 0)));
                    pos += stream.byte_offset();
                }
                Some(Err(e)) => {
                    let next = next_entry_start(input, pos);
                    let last = lines.line_at(input, next.saturating_sub(1));
                    let skipped = if last > line {
                        format!(" (lines {line}-{last} skipped)")
                    } else {
                        String::new()
                    };
                    entries.push((line, Err(BodyError::NotJson(format!("{e}{skipped}")))));
                    pos = next;
                }
                None => break,
            }
        } else {
            let (text, tail) = trimmed.split_once('\n').unwrap_or((trimmed, ""));
            let text = text.trim();
            entries.push((
                line,
                if text.starts_with("s3://") {
                    parse_s3_url(text).map(|object| vec![IntakeItem::Object(object)])
                } else {
                    Err(BodyError::UnknownLine(shorten(text)))
                },
            ));
            pos = input.len() - tail.len();
        }
    }
    entries
}

/// Line numbers of byte offsets visited in increasing order (one pass over the input in all).
#[derive(Debug, Default)]
struct LineCounter {
    pos: usize,
    line: usize,
}

impl LineCounter {
    /// The 1-based line holding byte `pos` (`pos` never below an earlier call's).
    fn line_at(&mut self, input: &str, pos: usize) -> usize {
        let pos = pos.min(input.len());
        if pos >= self.pos {
            self.line += input.as_bytes()[self.pos..pos]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            self.pos = pos;
        }
        self.line + 1
    }
}

/// After a malformed entry starting at `start`: the start of the next line that begins, in its
/// first column, like an entry (`{`, `[`, `"` or `s3://`), or the end of the input.
fn next_entry_start(input: &str, start: usize) -> usize {
    let Some(newline) = input[start..].find('\n') else {
        return input.len();
    };
    let mut pos = start + newline + 1;
    while pos < input.len() {
        let line = &input[pos..];
        if line.starts_with(['{', '[', '"']) || line.starts_with("s3://") {
            return pos;
        }
        pos = line.find('\n').map_or(input.len(), |end| pos + end + 1);
    }
    input.len()
}

/// Reads `s3://bucket/key`; the key is taken literally.
fn parse_s3_url(line: &str) -> Result<ObjectRef, BodyError> {
    let bad = || BodyError::BadS3Url(shorten(line));
    let rest = line.strip_prefix("s3://").ok_or_else(bad)?;
    let (bucket, key) = rest.split_once('/').ok_or_else(bad)?;
    if bucket.is_empty() || key.is_empty() {
        return Err(bad());
    }
    Ok(object_ref(bucket.to_owned(), key.to_owned()))
}

/// Detects the shape of one JSON value and reads it.
fn parse_value(
    value: &Value,
    source: BodySource,
    depth: usize,
) -> Result<Vec<IntakeItem>, BodyError> {
    if depth > MAX_NESTING {
        return Err(BodyError::TooDeep);
    }
    let object = match value {
        Value::Object(object) => object,
        // A body quoted once more (seen when bodies are copied from consoles): read what it holds.
        Value::String(inner) => return parse_nested(inner, source, depth),
        other => {
            return Err(BodyError::UnknownShape(format!(
                "a JSON {}",
                json_type(other)
            )));
        }
    };
    if let Some(records) = object.get("Records") {
        let records = records.as_array().ok_or(BodyError::MissingField {
            shape: "S3 event",
            field: "Records",
            expected: "an array",
        })?;
        return parse_records(records, source, depth);
    }
    if object.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        let bucket = object
            .get("Bucket")
            .and_then(Value::as_str)
            .map(str::to_owned);
        return Ok(vec![IntakeItem::TestEvent { bucket }]);
    }
    if let Some(message) = object.get("Message")
        && (object.contains_key("TopicArn")
            || object.get("Type").is_some_and(|t| t == "Notification")
            || object
                .keys()
                .all(|name| SNS_ENVELOPE_FIELDS.contains(&name.as_str())))
    {
        let message = message.as_str().ok_or(BodyError::MissingField {
            shape: "SNS envelope",
            field: "Message",
            expected: "a string",
        })?;
        return parse_nested(message, source, depth);
    }
    if object.get("source").and_then(Value::as_str) == Some("aws.s3") {
        return parse_eventbridge(object).map(|item| vec![item]);
    }
    Err(BodyError::UnknownShape(describe_fields(object)))
}

/// Parses a JSON document carried as a string (SNS `Message`, SQS `body`) and reads it.
fn parse_nested(
    text: &str,
    source: BodySource,
    depth: usize,
) -> Result<Vec<IntakeItem>, BodyError> {
    let value: Value = serde_json::from_str(text).map_err(|e| BodyError::NotJson(e.to_string()))?;
    parse_value(&value, source, depth + 1)
}

/// Reads `Records[]`: S3 event records, or (manual input) the records of a Lambda SQS event.
fn parse_records(
    records: &[Value],
    source: BodySource,
    depth: usize,
) -> Result<Vec<IntakeItem>, BodyError> {
    let mut items = Vec::with_capacity(records.len());
    for record in records {
        let record = record.as_object().ok_or(BodyError::MissingField {
            shape: "S3 event",
            field: "Records[]",
            expected: "an object",
        })?;
        if source == BodySource::Manual
            && record.get("eventSource").and_then(Value::as_str) == Some("aws:sqs")
        {
            let body =
                record
                    .get("body")
                    .and_then(Value::as_str)
                    .ok_or(BodyError::MissingField {
                        shape: "SQS event",
                        field: "Records[].body",
                        expected: "a string",
                    })?;
            items.extend(parse_nested(body, source, depth)?);
        } else {
            items.push(parse_s3_record(record)?);
        }
    }
    Ok(items)
}

/// Reads one S3 event notification record.
fn parse_s3_record(record: &Map<String, Value>) -> Result<IntakeItem, BodyError> {
    const SHAPE: &str = "S3 event record";
    // A record with `s3` but neither `eventVersion` nor `eventName` is the minimal hand-written
    // form (`{"s3": {"bucket": {"name": ...}, "object": {"key": ...}}}`) that the proof of
    // concept's manual test sends: it announces a created object. Any other record needs both.
    if !record.contains_key("eventVersion")
        && !record.contains_key("eventName")
        && record.contains_key("s3")
    {
        return read_s3_object(record);
    }
    let version =
        record
            .get("eventVersion")
            .and_then(Value::as_str)
            .ok_or(BodyError::MissingField {
                shape: SHAPE,
                field: "eventVersion",
                expected: "a string",
            })?;
    if version.split('.').next() != Some("2") {
        return Err(BodyError::UnsupportedVersion(shorten(version)));
    }
    let event_name =
        record
            .get("eventName")
            .and_then(Value::as_str)
            .ok_or(BodyError::MissingField {
                shape: SHAPE,
                field: "eventName",
                expected: "a string",
            })?;
    // Real S3 writes `ObjectCreated:Put`; some emulators and SDK samples prefix `s3:`.
    if !event_name
        .trim_start_matches("s3:")
        .starts_with(OBJECT_CREATED)
    {
        return Ok(IntakeItem::Ignored {
            event_name: shorten(event_name),
        });
    }
    read_s3_object(record)
}

/// Reads the object an S3 event record announces (`s3.bucket.name`, `s3.object.*`, `eventTime`).
fn read_s3_object(record: &Map<String, Value>) -> Result<IntakeItem, BodyError> {
    const SHAPE: &str = "S3 event record";
    let s3 = record
        .get("s3")
        .and_then(Value::as_object)
        .ok_or(BodyError::MissingField {
            shape: SHAPE,
            field: "s3",
            expected: "an object",
        })?;
    let bucket = s3
        .get("bucket")
        .and_then(|b| b.get("name"))
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty())
        .ok_or(BodyError::MissingField {
            shape: SHAPE,
            field: "s3.bucket.name",
            expected: "a non-empty string",
        })?;
    let object = s3
        .get("object")
        .and_then(Value::as_object)
        .ok_or(BodyError::MissingField {
            shape: SHAPE,
            field: "s3.object",
            expected: "an object",
        })?;
    let raw_key = object
        .get("key")
        .and_then(Value::as_str)
        .filter(|key| !key.is_empty())
        .ok_or(BodyError::MissingField {
            shape: SHAPE,
            field: "s3.object.key",
            expected: "a non-empty string",
        })?;
    let key = key::decode_notification_key(raw_key).map_err(|source| BodyError::BadKey {
        raw: shorten(raw_key),
        source,
    })?;
    let mut object_ref = object_ref(bucket.to_owned(), key);
    object_ref.size = object.get("size").and_then(Value::as_u64);
    object_ref.etag =
        string_field(object, &["eTag", "etag"]).map(|etag| etag.trim_matches('"').to_owned());
    object_ref.version_id = version_id(object, "versionId");
    object_ref.sequencer = string_field(object, &["sequencer"]).map(str::to_owned);
    object_ref.event_time = record.get("eventTime").and_then(parse_time);
    object_ref.uploader = record
        .get("userIdentity")
        .and_then(|identity| identity.get("principalId"))
        .and_then(Value::as_str)
        .filter(|principal| !principal.is_empty())
        .map(str::to_owned);
    Ok(IntakeItem::Object(object_ref))
}

/// Reads an EventBridge event from `aws.s3`.
fn parse_eventbridge(event: &Map<String, Value>) -> Result<IntakeItem, BodyError> {
    const SHAPE: &str = "EventBridge aws.s3 event";
    let detail_type =
        event
            .get("detail-type")
            .and_then(Value::as_str)
            .ok_or(BodyError::MissingField {
                shape: SHAPE,
                field: "detail-type",
                expected: "a string",
            })?;
    if detail_type != EVENTBRIDGE_OBJECT_CREATED {
        return Ok(IntakeItem::Ignored {
            event_name: shorten(detail_type),
        });
    }
    let detail = event
        .get("detail")
        .and_then(Value::as_object)
        .ok_or(BodyError::MissingField {
            shape: SHAPE,
            field: "detail",
            expected: "an object",
        })?;
    let bucket = detail
        .get("bucket")
        .and_then(|b| b.get("name"))
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty())
        .ok_or(BodyError::MissingField {
            shape: SHAPE,
            field: "detail.bucket.name",
            expected: "a non-empty string",
        })?;
    let object =
        detail
            .get("object")
            .and_then(Value::as_object)
            .ok_or(BodyError::MissingField {
                shape: SHAPE,
                field: "detail.object",
                expected: "an object",
            })?;
    let key = object
        .get("key")
        .and_then(Value::as_str)
        .filter(|key| !key.is_empty())
        .ok_or(BodyError::MissingField {
            shape: SHAPE,
            field: "detail.object.key",
            expected: "a non-empty string",
        })?;
    let mut object_ref = object_ref(bucket.to_owned(), key.to_owned());
    object_ref.size = object.get("size").and_then(Value::as_u64);
    // AWS writes `etag`; moto writes `eTag`.
    object_ref.etag =
        string_field(object, &["etag", "eTag"]).map(|etag| etag.trim_matches('"').to_owned());
    object_ref.version_id = version_id(object, "version-id");
    object_ref.sequencer = string_field(object, &["sequencer"]).map(str::to_owned);
    object_ref.event_time = event.get("time").and_then(parse_time);
    Ok(IntakeItem::Object(object_ref))
}

/// An [`ObjectRef`] with only bucket and key known.
fn object_ref(bucket: String, key: String) -> ObjectRef {
    ObjectRef {
        bucket,
        key,
        size: None,
        etag: None,
        version_id: None,
        sequencer: None,
        event_time: None,
        uploader: None,
    }
}

/// The first of `names` that is a non-empty string.
fn string_field<'a>(object: &'a Map<String, Value>, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|name| {
        object
            .get(*name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    })
}

/// The version id, if the object has one. `"null"` is what S3 calls the version of an object
/// written while versioning was off; reading "the current version" is right for it.
fn version_id(object: &Map<String, Value>, field: &str) -> Option<String> {
    string_field(object, &[field])
        .filter(|id| *id != "null")
        .map(str::to_owned)
}

/// An event time: RFC 3339 text, or epoch seconds as a number (moto's EventBridge events).
/// Unreadable times are treated as absent: the core then falls back to other sources.
fn parse_time(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(text) => DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        Value::Number(number) => {
            let seconds = number.as_f64()?;
            if !seconds.is_finite() || seconds < 0.0 {
                return None;
            }
            // Whole milliseconds are precise enough for an event time.
            DateTime::from_timestamp_millis((seconds * 1000.0) as i64)
        }
        _ => None,
    }
}

/// A short description of an unrecognized object, for the error message (field names only).
fn describe_fields(object: &Map<String, Value>) -> String {
    if object.is_empty() {
        return "no fields".to_owned();
    }
    let names: Vec<&str> = object.keys().take(8).map(String::as_str).collect();
    let more = if object.len() > names.len() {
        ", ..."
    } else {
        ""
    };
    shorten(&format!("fields {}{more}", names.join(", ")))
}

/// The JSON type name of `value`.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `text` cut to [`MAX_QUOTED_CHARS`] characters for error messages.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SNS_CREATED: &str = include_str!("testdata/moto_sns_object_created.json");
    const SNS_REMOVED: &str = include_str!("testdata/moto_sns_object_removed.json");
    const SNS_TEST_EVENT: &str = include_str!("testdata/moto_sns_test_event.json");
    const S3_CREATED: &str = include_str!("testdata/moto_s3_object_created.json");
    const S3_TEST_EVENT: &str = include_str!("testdata/moto_s3_test_event.json");
    const EVENTBRIDGE_CREATED: &str = include_str!("testdata/moto_eventbridge_object_created.json");
    const EVENTBRIDGE_TAGS: &str = include_str!("testdata/moto_eventbridge_tags_added.json");
    const AWS_CREATED: &str = include_str!("testdata/aws_s3_object_created.json");

    /// The key moto's fixtures announce (stored as `acme/c1/my app/pod+1/...`).
    const FIXTURE_KEY: &str = "acme/c1/my app/pod+1/20240102T030405Z-abc.json.gz";

    fn single_object(items: Vec<IntakeItem>) -> ObjectRef {
        match items.as_slice() {
            [IntakeItem::Object(object)] => object.clone(),
            other => panic!("expected one object, got {other:?}"),
        }
    }

    fn s3_record(version: &str, event_name: &str, key: &str) -> Value {
        json!({
            "eventVersion": version,
            "eventSource": "aws:s3",
            "eventTime": "2024-01-02T03:04:05.000Z",
            "eventName": event_name,
            "s3": {"bucket": {"name": "central"}, "object": {"key": key, "size": 3}}
        })
    }

    fn s3_event(records: Vec<Value>) -> String {
        json!({ "Records": records }).to_string()
    }

    /// An S3 event of one `ObjectCreated:Put` record (version 2.1) announcing `key`.
    fn created_event(key: &str) -> String {
        s3_event(vec![s3_record("2.1", "ObjectCreated:Put", key)])
    }

    /// What a queue body announces; it must parse.
    fn queue_items(body: &str) -> Vec<IntakeItem> {
        parse_body(body, BodySource::Queue).expect("parses")
    }

    /// The one object a queue body announces.
    fn queue_object(body: &str) -> ObjectRef {
        single_object(queue_items(body))
    }

    /// Why a queue body is refused; it must be.
    fn queue_error(body: &str) -> BodyError {
        parse_body(body, BodySource::Queue).expect_err("refused")
    }

    #[test]
    fn sns_envelope_from_moto_yields_the_decoded_object() {
        let object = queue_object(SNS_CREATED);
        assert_eq!(object.bucket, "central-fx");
        assert_eq!(object.key, FIXTURE_KEY);
        assert_eq!(object.size, Some(10));
        assert_eq!(
            object.etag.as_deref(),
            Some("336311a016184326ddbdd61edd4eeb52")
        );
        assert_eq!(object.sequencer, None, "moto sends no sequencer");
        assert!(object.event_time.is_some());
    }

    #[test]
    fn raw_s3_event_from_moto_yields_the_decoded_object() {
        let object = queue_object(S3_CREATED);
        assert_eq!(object.key, FIXTURE_KEY);
        assert_eq!(object.bucket, "central-fx");
    }

    #[test]
    fn real_s3_event_keeps_version_sequencer_etag_and_time() {
        let object = queue_object(AWS_CREATED);
        assert_eq!(
            object.key,
            "acme/c1/api/api-7d9f/20240102T030405Z-0f3a.json.gz"
        );
        assert_eq!(object.size, Some(1024));
        assert_eq!(
            object.version_id.as_deref(),
            Some("096fKKXTRTtl3on89fVO.nfljtsv6qko")
        );
        assert_eq!(object.sequencer.as_deref(), Some("0055AED6DCD90281E5"));
        let time = object.event_time.expect("event time");
        assert_eq!(time.to_rfc3339(), "2024-01-02T03:04:06.789+00:00");
        assert_eq!(
            object.uploader.as_deref(),
            Some("AWS:AROAEXAMPLE:logrelay-agent"),
            "the uploader's principal"
        );
    }

    #[test]
    fn test_events_are_acknowledged_raw_and_through_sns() {
        for body in [S3_TEST_EVENT, SNS_TEST_EVENT] {
            assert_eq!(
                queue_items(body),
                vec![IntakeItem::TestEvent {
                    bucket: Some("central-fx".into())
                }]
            );
        }
    }

    #[test]
    fn object_removed_events_are_ignored_with_their_name() {
        assert_eq!(
            queue_items(SNS_REMOVED),
            vec![IntakeItem::Ignored {
                event_name: "ObjectRemoved:Delete".into()
            }]
        );
    }

    #[test]
    fn eventbridge_object_created_takes_the_key_literally() {
        let object = queue_object(EVENTBRIDGE_CREATED);
        assert_eq!(object.bucket, "central-eb2");
        assert_eq!(
            object.key, FIXTURE_KEY,
            "EventBridge keys are not form-encoded"
        );
        assert_eq!(
            object.etag.as_deref(),
            Some("336311a016184326ddbdd61edd4eeb52")
        );
        assert_eq!(
            object.version_id, None,
            "the \"null\" version means unversioned"
        );
        assert_eq!(object.sequencer.as_deref(), Some("617f08299329d189"));
        assert!(object.event_time.is_some());
    }

    #[test]
    fn eventbridge_events_other_than_object_created_are_ignored() {
        assert_eq!(
            queue_items(EVENTBRIDGE_TAGS),
            vec![IntakeItem::Ignored {
                event_name: "Object Tags Added".into()
            }]
        );
    }

    #[test]
    fn eventbridge_epoch_time_is_read() {
        let mut event: Value = serde_json::from_str(EVENTBRIDGE_CREATED).expect("fixture is JSON");
        event["time"] = json!(1_704_164_645.5);
        let object = queue_object(&event.to_string());
        assert_eq!(
            object.event_time.map(|t| t.timestamp_millis()),
            Some(1_704_164_645_500)
        );
    }

    #[test]
    fn every_event_version_2_x_is_accepted() {
        for version in ["2.0", "2.1", "2.2", "2.3", "2.5"] {
            let body = s3_event(vec![s3_record(version, "ObjectCreated:Put", "a%2Fb")]);
            let object = single_object(parse_body(&body, BodySource::Queue).expect(version));
            assert_eq!(object.key, "a/b");
        }
    }

    #[test]
    fn other_event_major_versions_are_rejected() {
        for version in ["1.0", "3.0", "", "x"] {
            let body = s3_event(vec![s3_record(version, "ObjectCreated:Put", "k")]);
            let error = parse_body(&body, BodySource::Queue).expect_err(version);
            assert_eq!(error, BodyError::UnsupportedVersion(version.into()));
            assert_eq!(error.reason(), "unsupported_event_version");
        }
    }

    #[test]
    fn form_encoded_keys_are_decoded() {
        let cases = [
            (
                "acme%2Fc1%2Fapp%2Fpod%2Ff.json.gz",
                "acme/c1/app/pod/f.json.gz",
            ),
            ("my+app%2Bx", "my app+x"),
            ("pct%2525seg", "pct%25seg"),
            ("caf%C3%A9", "café"),
        ];
        for (raw, decoded) in cases {
            assert_eq!(queue_object(&created_event(raw)).key, decoded, "{raw}");
        }
    }

    #[test]
    fn undecodable_key_is_a_bad_key() {
        let error = queue_error(&created_event("bad%C3%28utf8")); // not UTF-8 once decoded
        assert!(matches!(error, BodyError::BadKey { .. }), "{error:?}");
        assert_eq!(error.reason(), "bad_notification_key");
    }

    #[test]
    fn s3_prefixed_event_names_count_as_object_created() {
        let body = s3_event(vec![s3_record("2.1", "s3:ObjectCreated:Copy", "k")]);
        assert_eq!(queue_object(&body).key, "k");
    }

    #[test]
    fn every_record_of_an_event_is_read_in_order() {
        let body = s3_event(vec![
            s3_record("2.1", "ObjectCreated:Put", "one"),
            s3_record("2.1", "ObjectRemoved:Delete", "two"),
            s3_record("2.1", "ObjectCreated:Post", "three"),
        ]);
        let items = queue_items(&body);
        assert_eq!(items.len(), 3);
        assert!(matches!(&items[0], IntakeItem::Object(o) if o.key == "one"));
        assert!(matches!(&items[1], IntakeItem::Ignored { .. }));
        assert!(matches!(&items[2], IntakeItem::Object(o) if o.key == "three"));
    }

    #[test]
    fn empty_records_announce_nothing() {
        assert_eq!(
            parse_body(r#"{"Records": []}"#, BodySource::Queue),
            Ok(vec![])
        );
    }

    #[test]
    fn malformed_json_is_rejected_with_the_parser_message() {
        let error = queue_error(r#"{"Records": [}"#);
        assert!(
            matches!(&error, BodyError::NotJson(m) if m.contains("line 1")),
            "{error}"
        );
        assert_eq!(error.reason(), "malformed_json");
        let error = queue_error(r#"{"Type":"Notification","TopicArn":"t","Message":"{not json"}"#);
        assert_eq!(
            error.reason(),
            "malformed_json",
            "an SNS message that is no JSON"
        );
    }

    #[test]
    fn missing_fields_are_named() {
        let mut record = s3_record("2.1", "ObjectCreated:Put", "k");
        record["s3"]["bucket"]
            .as_object_mut()
            .expect("object")
            .remove("name");
        let error = queue_error(&s3_event(vec![record])); // no bucket
        assert!(error.to_string().contains("s3.bucket.name"), "{error}");

        let mut record = s3_record("2.1", "ObjectCreated:Put", "k");
        record["s3"]["object"]["key"] = json!("");
        let error = queue_error(&s3_event(vec![record])); // empty key
        assert!(error.to_string().contains("s3.object.key"), "{error}");

        let error = queue_error(r#"{"Records": [{"eventVersion": "2.1"}]}"#); // no name
        assert!(error.to_string().contains("eventName"), "{error}");

        // An SNS Message must be a string.
        let error = queue_error(r#"{"Type":"Notification","TopicArn":"t","Message":{"a":1}}"#);
        assert!(error.to_string().contains("Message"), "{error}");
        assert_eq!(error.reason(), "missing_field");
    }

    /// The body of the proof of concept's documented manual-mode test, byte for byte.
    const POC_MANUAL_BODY: &str = r#"{"Message": "{\"Records\": [{\"s3\": {\"bucket\": {\"name\": \"test-bucket\"}, \"object\": {\"key\": \"test-customer/test-cluster/test-app/test-pod/20240101-test.json.gz\"}}}]}"}"#;

    #[test]
    fn a_message_only_envelope_with_minimal_records_announces_the_object() {
        for source in [BodySource::Manual, BodySource::Queue] {
            let object = single_object(parse_body(POC_MANUAL_BODY, source).expect("parses"));
            assert_eq!(object.bucket, "test-bucket");
            assert_eq!(
                object.key,
                "test-customer/test-cluster/test-app/test-pod/20240101-test.json.gz"
            );
        }
        let entries = parse_manual_input(&format!("{POC_MANUAL_BODY}\n"));
        assert_eq!(entries.len(), 1);
        assert!(entries[0].is_ok(), "{entries:?}");
    }

    #[test]
    fn a_message_beside_unknown_fields_is_still_an_unknown_shape() {
        let error = queue_error(r#"{"Message": "{\"Records\": []}", "hello": 1}"#);
        assert_eq!(error.reason(), "unknown_shape");
        assert!(error.to_string().contains("hello"), "{error}");
        // A minimal record still needs its bucket and key.
        let error = queue_error(r#"{"Message": "{\"Records\": [{\"s3\": {}}]}"}"#);
        assert!(error.to_string().contains("s3.bucket.name"), "{error}");
        // A record with only one of eventVersion and eventName is not the minimal form.
        let error = queue_error(r#"{"Records": [{"eventName": "ObjectCreated:Put", "s3": {}}]}"#);
        assert!(error.to_string().contains("eventVersion"), "{error}");
    }

    #[test]
    fn unknown_shapes_name_their_fields() {
        let error = queue_error(r#"{"hello": "world"}"#);
        assert!(error.to_string().contains("hello"), "{error}");
        assert_eq!(error.reason(), "unknown_shape");
        let error = queue_error("[1, 2]");
        assert!(error.to_string().contains("array"), "{error}");
    }

    #[test]
    fn bodies_up_to_the_sqs_maximum_are_read_and_larger_ones_rejected() {
        let event = created_event("k");
        let at_limit = format!("{event}{}", " ".repeat(MAX_BODY_BYTES - event.len()));
        assert_eq!(at_limit.len(), MAX_BODY_BYTES);
        assert!(parse_body(&at_limit, BodySource::Queue).is_ok());
        let over = format!("{at_limit} ");
        let error = queue_error(&over); // one byte over
        assert_eq!(
            error,
            BodyError::TooLarge {
                len: MAX_BODY_BYTES + 1,
                max: MAX_BODY_BYTES
            }
        );
    }

    #[test]
    fn huge_keys_are_shortened_in_error_messages() {
        let huge = "%".repeat(100_000);
        let error = queue_error(&created_event(&huge)); // bad percent sequences
        assert!(error.to_string().len() < 1_000, "error message stays short");
    }

    #[test]
    fn empty_bodies_are_rejected() {
        assert_eq!(parse_body("  \n", BodySource::Queue), Err(BodyError::Empty));
    }

    #[test]
    fn nesting_is_bounded() {
        let mut body = created_event("k");
        for _ in 0..=MAX_NESTING {
            body = serde_json::to_string(&body).expect("quotes");
        }
        assert_eq!(
            parse_body(&body, BodySource::Queue),
            Err(BodyError::TooDeep)
        );
    }

    #[test]
    fn s3_urls_are_only_accepted_as_manual_input() {
        let object = single_object(
            parse_body("s3://central/a/b c+d%2F.json.gz\n", BodySource::Manual).expect("url"),
        );
        assert_eq!(
            (object.bucket.as_str(), object.key.as_str()),
            ("central", "a/b c+d%2F.json.gz")
        );
        assert_eq!(
            parse_body("s3://central/k", BodySource::Queue).map_err(|e| e.reason()),
            Err("malformed_json")
        );
        for bad in ["s3://central", "s3:///key", "s3://central/"] {
            assert_eq!(
                parse_body(bad, BodySource::Manual).map_err(|e| e.reason()),
                Err("bad_s3_url"),
                "{bad}"
            );
        }
    }

    #[test]
    fn manual_input_holds_many_bodies_and_lines() {
        let pretty =
            serde_json::to_string_pretty(&serde_json::from_str::<Value>(S3_CREATED).expect("json"))
                .expect("pretty");
        let input = format!(
            "{pretty}\n{}\ns3://central/x/y.json.gz\n\n   {}\nnot a notification\n{}",
            S3_TEST_EVENT.trim(),
            EVENTBRIDGE_CREATED.trim(),
            SNS_REMOVED
        );
        let entries = parse_manual_input(&input);
        assert_eq!(entries.len(), 6, "{entries:?}");
        assert_eq!(
            single_object(entries[0].clone().expect("pretty S3 event")).key,
            FIXTURE_KEY
        );
        assert!(matches!(
            entries[1].as_deref(),
            Ok([IntakeItem::TestEvent { .. }])
        ));
        assert_eq!(
            single_object(entries[2].clone().expect("url")).key,
            "x/y.json.gz"
        );
        assert_eq!(
            single_object(entries[3].clone().expect("eventbridge")).bucket,
            "central-eb2"
        );
        assert!(
            matches!(&entries[4], Err(BodyError::UnknownLine(line)) if line == "not a notification")
        );
        assert!(matches!(
            entries[5].as_deref(),
            Ok([IntakeItem::Ignored { .. }])
        ));
    }

    #[test]
    fn malformed_json_is_one_entry_and_reading_goes_on_at_the_next_entry() {
        let input = format!(
            "{}\n{{\"Records\": [\ns3://central/k\n{{\"Records\": [{{\"s3\":\n    \"x\"\n  also inside\n{}\n",
            S3_TEST_EVENT.trim(),
            SNS_REMOVED.trim()
        );
        let entries = parse_manual_entries(&input);
        let lines: Vec<usize> = entries.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 7], "{entries:?}");
        assert!(entries[0].1.is_ok());
        assert!(matches!(&entries[1].1, Err(BodyError::NotJson(e)) if !e.contains("skipped")));
        assert_eq!(
            single_object(entries[2].1.clone().expect("url after the bad entry")).key,
            "k"
        );
        assert!(
            matches!(&entries[3].1, Err(BodyError::NotJson(e)) if e.contains("lines 4-6 skipped")),
            "{:?}",
            entries[3]
        );
        assert!(matches!(
            entries[4].1.as_deref(),
            Ok([IntakeItem::Ignored { .. }])
        ));
    }

    #[test]
    fn manual_input_unwraps_a_lambda_sqs_event() {
        let event = json!({"Records": [
            {"messageId": "m1", "eventSource": "aws:sqs", "body": SNS_CREATED},
            {"messageId": "m2", "eventSource": "aws:sqs", "body": S3_TEST_EVENT},
        ]});
        let entries = parse_manual_input(&event.to_string());
        let items = entries
            .into_iter()
            .next()
            .expect("one entry")
            .expect("parses");
        assert_eq!(items.len(), 2);
        assert!(matches!(&items[0], IntakeItem::Object(o) if o.key == FIXTURE_KEY));
        assert!(matches!(&items[1], IntakeItem::TestEvent { .. }));
        let error = queue_error(&event.to_string()); // no S3 record in a queue body
        assert!(error.to_string().contains("eventVersion"), "{error}");
    }

    #[test]
    fn oversized_manual_input_is_rejected() {
        let input = " ".repeat(MAX_MANUAL_INPUT_BYTES + 1);
        assert!(matches!(
            parse_manual_input(&input).as_slice(),
            [Err(BodyError::TooLarge { .. })]
        ));
    }
}
