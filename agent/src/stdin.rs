//! The stdin source (`--source stdin`): NDJSON records in the common schema, one per line, as
//! `logrelay-testgen ndjson` prints them (the `fake_log_generator.py | vector` pipeline of the proof of concept logrelay replaces).
//!
//! Nothing is dropped: a record missing a partition field (`customer_id`, `cluster_id`,
//! `application`, `pod_name`) gets `_unknown` there, other missing fields get `_unknown`, `""` or
//! now; a line that is not a JSON object, or not a valid record, becomes a record whose message is
//! the raw line and whose partition is `_unknown`. Each repair is counted. Lines are read in
//! bounded memory (`max_line_bytes`; longer lines are cut, marked and counted). Events carry
//! [`FileId::STDIN`] and running byte offsets of the stream; at its end a `Closed` follows.

use crate::internal_events::parse::{EmptyLine, StdinRecordRepaired, StdinRepair};
use crate::internal_events::tail::LinesRead;
use crate::parse::finish_message;
use crate::source_event::{FileId, Line, SourceEvent, Unfinished};
use crate::tail::path::UNKNOWN;
use crate::tail::reader::MarkerWindow;
use chrono::Utc;
use logrelay_common::record::{LogRecord, Stream, format_timestamp};
use serde_json::{Map, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::mpsc;

/// Fields that make up a record's partition (`customer_id/cluster_id/application/pod_name`).
pub const PARTITION_FIELDS: [&str; 4] = ["customer_id", "cluster_id", "application", "pod_name"];

/// Other metadata fields a record needs, set to `_unknown` when missing.
const METADATA_FIELDS: [&str; 3] = ["namespace", "container_name", "node_name"];

/// Why the stdin source stopped early.
#[derive(Debug, thiserror::Error)]
pub enum StdinError {
    /// Reading the input failed.
    #[error("reading stdin failed: {0}")]
    Read(#[from] std::io::Error),
    /// Delivery dropped its receiver.
    #[error("delivery stopped receiving source events")]
    ChannelClosed,
}

/// What the stdin source read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StdinSummary {
    /// Records sent.
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
}

/// Reads NDJSON records from `reader` until its end and sends them to `sender`; waits while the
/// channel is full.
pub async fn run<R: AsyncBufRead + Unpin>(
    mut reader: R,
    max_line_bytes: usize,
    sender: mpsc::Sender<SourceEvent>,
) -> Result<StdinSummary, StdinError> {
    let mut line = Vec::new();
    let mut cut: u64 = 0;
    let mut line_start: u64 = 0;
    let mut offset: u64 = 0;
    let mut window = MarkerWindow::default();
    let mut summary = StdinSummary::default();
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            if offset > line_start {
                summary.lines += send_line(
                    &line,
                    cut,
                    (line_start, offset, window.marker()),
                    max_line_bytes,
                    &sender,
                )
                .await?;
            }
            sender
                .send(SourceEvent::Closed {
                    file: FileId::STDIN,
                })
                .await
                .map_err(|_| StdinError::ChannelClosed)?;
            summary.bytes = offset;
            return Ok(summary);
        }
        let (piece, complete) = match memchr::memchr(b'\n', buf) {
            Some(newline) => (&buf[..=newline], true),
            None => (buf, false),
        };
        let content = if complete {
            &piece[..piece.len() - 1]
        } else {
            piece
        };
        let room = max_line_bytes.saturating_sub(line.len());
        line.extend_from_slice(&content[..content.len().min(room)]);
        cut += content.len().saturating_sub(room) as u64;
        window.push(piece);
        let consumed = piece.len();
        offset += consumed as u64;
        reader.consume(consumed);
        if complete {
            summary.lines += send_line(
                &line,
                cut,
                (line_start, offset, window.marker()),
                max_line_bytes,
                &sender,
            )
            .await?;
            line.clear();
            cut = 0;
            line_start = offset;
        }
    }
}

/// Sends one line (a record, or `Consumed` for a blank line); returns the records sent.
async fn send_line(
    bytes: &[u8],
    cut: u64,
    (start, end, end_marker): (u64, u64, u64),
    max_line_bytes: usize,
    sender: &mpsc::Sender<SourceEvent>,
) -> Result<u64, StdinError> {
    let event = if cut == 0 && bytes.iter().all(u8::is_ascii_whitespace) {
        EmptyLine.emit();
        SourceEvent::Consumed {
            file: FileId::STDIN,
            end,
            end_marker,
            unfinished: Unfinished::NONE,
        }
    } else {
        let record = to_record(bytes, cut, max_line_bytes);
        SourceEvent::Line(Line {
            record,
            file: FileId::STDIN,
            start,
            end,
            end_marker,
            unfinished: Unfinished::NONE,
        })
    };
    let lines = u64::from(matches!(event, SourceEvent::Line(_)));
    LinesRead {
        lines,
        bytes: end - start,
    }
    .emit_for("stdin");
    sender
        .send(event)
        .await
        .map_err(|_| StdinError::ChannelClosed)?;
    Ok(lines)
}

/// The record for one stdin line (see the module documentation).
pub fn to_record(bytes: &[u8], cut: u64, max_line_bytes: usize) -> LogRecord {
    let parsed = if cut == 0 {
        serde_json::from_slice::<Value>(bytes).ok()
    } else {
        None
    };
    let Some(Value::Object(fields)) = parsed else {
        StdinRecordRepaired {
            reason: StdinRepair::NotJson,
        }
        .emit();
        return raw_record(bytes, cut, max_line_bytes);
    };
    match repair(fields) {
        Some(record) => record,
        None => {
            StdinRecordRepaired {
                reason: StdinRepair::InvalidRecord,
            }
            .emit();
            raw_record(bytes, cut, max_line_bytes)
        }
    }
}

/// Fills missing fields of a JSON record; `None` when it still is not a valid record.
fn repair(mut fields: Map<String, Value>) -> Option<LogRecord> {
    let mut missing_partition = false;
    let mut missing_other = false;
    for name in PARTITION_FIELDS {
        missing_partition |= fill_if_missing(&mut fields, name, || Value::from(UNKNOWN));
    }
    for name in METADATA_FIELDS {
        missing_other |= fill_if_missing(&mut fields, name, || Value::from(UNKNOWN));
    }
    missing_other |= fill_if_missing(&mut fields, "message", || Value::from(""));
    for name in ["timestamp", "ingest_timestamp"] {
        missing_other |= fill_if_missing(&mut fields, name, || {
            Value::from(format_timestamp(&Utc::now()))
        });
    }
    let record = serde_json::from_value::<LogRecord>(Value::Object(fields)).ok()?;
    if missing_partition {
        StdinRecordRepaired {
            reason: StdinRepair::MissingPartitionField,
        }
        .emit();
    }
    if missing_other {
        StdinRecordRepaired {
            reason: StdinRepair::MissingField,
        }
        .emit();
    }
    Some(record)
}

/// Sets `name` when it is missing, null or an empty string; returns whether it did.
fn fill_if_missing(
    fields: &mut Map<String, Value>,
    name: &str,
    value: impl FnOnce() -> Value,
) -> bool {
    let missing = match fields.get(name) {
        None | Some(Value::Null) => true,
        Some(Value::String(text)) => text.is_empty() && name != "message",
        Some(_) => false,
    };
    if missing {
        fields.insert(name.to_string(), value());
    }
    missing
}

/// A record carrying the raw line as its message, in the `_unknown` partition.
fn raw_record(bytes: &[u8], cut: u64, max_line_bytes: usize) -> LogRecord {
    let message = finish_message(bytes.to_vec(), bytes.len() as u64 + cut, max_line_bytes);
    let mut extra = Map::new();
    message.mark(&mut extra);
    let now = Utc::now();
    LogRecord {
        timestamp: now,
        message: message.text,
        stream: Stream::Stdout,
        customer_id: UNKNOWN.into(),
        cluster_id: UNKNOWN.into(),
        namespace: UNKNOWN.into(),
        application: UNKNOWN.into(),
        pod_name: UNKNOWN.into(),
        container_name: UNKNOWN.into(),
        node_name: UNKNOWN.into(),
        ingest_timestamp: now,
        kubernetes: None,
        extra,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{ORIGINAL_BYTES_FIELD, TRUNCATED_FIELD};
    use crate::source_event::offset_marker;

    async fn run_on(
        input: &[u8],
        max_line_bytes: usize,
        read_size: usize,
    ) -> (Vec<SourceEvent>, StdinSummary) {
        let (sender, mut receiver) = mpsc::channel(4);
        let reader = tokio::io::BufReader::with_capacity(read_size, input);
        let collector = tokio::spawn(async move {
            let mut events = Vec::new();
            while let Some(event) = receiver.recv().await {
                events.push(event);
            }
            events
        });
        let summary = run(reader, max_line_bytes, sender)
            .await
            .expect("stdin source runs");
        (collector.await.expect("collector"), summary)
    }

    fn lines(events: &[SourceEvent]) -> Vec<&Line> {
        events
            .iter()
            .filter_map(|event| match event {
                SourceEvent::Line(line) => Some(line),
                _ => None,
            })
            .collect()
    }

    const FULL: &str = r#"{"timestamp":"2024-01-01T00:00:00.5Z","message":"hello","stream":"stderr","customer_id":"acme","cluster_id":"c1","namespace":"ns","application":"api","pod_name":"api-1","container_name":"main","node_name":"n1","ingest_timestamp":"2024-01-01T00:00:01Z","lrseq":"acme/api-1#1"}"#;

    #[tokio::test]
    async fn complete_records_pass_through_with_offsets_and_markers() {
        let input = format!("{FULL}\n{FULL}\n");
        let (events, summary) = run_on(input.as_bytes(), 1 << 20, 7).await;
        let lines = lines(&events);
        assert_eq!(lines.len(), 2);
        let first_end = FULL.len() as u64 + 1;
        assert_eq!((lines[0].start, lines[0].end), (0, first_end));
        assert_eq!((lines[1].start, lines[1].end), (first_end, 2 * first_end));
        assert_eq!(lines[1].end_marker, offset_marker(input.as_bytes()));
        assert!(lines.iter().all(|line| line.file == FileId::STDIN));
        let record = &lines[0].record;
        assert_eq!(
            (
                record.customer_id.as_str(),
                record.pod_name.as_str(),
                record.message.as_str()
            ),
            ("acme", "api-1", "hello")
        );
        assert_eq!(record.stream, Stream::Stderr);
        assert_eq!(record.extra["lrseq"], serde_json::json!("acme/api-1#1"));
        assert!(matches!(
            events.last(),
            Some(SourceEvent::Closed {
                file: FileId::STDIN
            })
        ));
        assert_eq!(
            summary,
            StdinSummary {
                lines: 2,
                bytes: input.len() as u64
            }
        );
    }

    #[tokio::test]
    async fn missing_partition_fields_become_unknown() {
        let input = br#"{"timestamp":"2024-01-01T00:00:00Z","message":"m","customer_id":"","cluster_id":null}"#;
        let (events, _) = run_on(input, 1 << 20, 64).await;
        let record = &lines(&events)[0].record;
        assert_eq!(record.message, "m");
        for value in [
            &record.customer_id,
            &record.cluster_id,
            &record.application,
            &record.pod_name,
            &record.namespace,
        ] {
            assert_eq!(value, UNKNOWN);
        }
        assert_eq!(
            lines(&events)[0].end,
            input.len() as u64,
            "last line without newline is still read"
        );
    }

    #[tokio::test]
    async fn non_json_and_invalid_records_keep_the_raw_text() {
        let input = "not json at all\n[1,2]\n{\"customer_id\":5}\n\n   \n";
        let (events, summary) = run_on(input.as_bytes(), 1 << 20, 5).await;
        let messages: Vec<&str> = lines(&events)
            .iter()
            .map(|line| line.record.message.as_str())
            .collect();
        assert_eq!(
            messages,
            ["not json at all", "[1,2]", "{\"customer_id\":5}"]
        );
        assert!(
            lines(&events)
                .iter()
                .all(|line| line.record.customer_id == UNKNOWN)
        );
        let consumed: Vec<u64> = events
            .iter()
            .filter_map(|event| match event {
                SourceEvent::Consumed { end, .. } => Some(*end),
                _ => None,
            })
            .collect();
        assert_eq!(
            consumed,
            [input.len() as u64 - 4, input.len() as u64],
            "blank lines are consumed, not shipped"
        );
        assert_eq!(summary.lines, 3);
    }

    #[tokio::test]
    async fn long_line_is_cut_marked_and_memory_stays_bounded() {
        let mut input = vec![b'x'; 100_000];
        input.push(b'\n');
        input.extend_from_slice(FULL.as_bytes());
        input.push(b'\n');
        let (events, _) = run_on(&input, 1000, 4096).await;
        let lines = lines(&events);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].record.message.len(), 1000);
        assert_eq!(
            lines[0].record.extra[TRUNCATED_FIELD],
            serde_json::json!(true)
        );
        assert_eq!(
            lines[0].record.extra[ORIGINAL_BYTES_FIELD],
            serde_json::json!(100_000)
        );
        assert_eq!((lines[0].start, lines[0].end), (0, 100_001));
        assert_eq!(
            lines[1].record.customer_id, "acme",
            "the next line is intact"
        );
    }

    #[tokio::test]
    async fn closed_receiver_is_an_error() {
        let (sender, receiver) = mpsc::channel(1);
        drop(receiver);
        let result = run(FULL.as_bytes(), 1 << 20, sender).await;
        assert!(matches!(result, Err(StdinError::ChannelClosed)));
    }
}
