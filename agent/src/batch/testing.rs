//! Test helpers for the delivery side: records, lines and decoding of stored objects.

use crate::source_event::{FileId, Line, SourceEvent, offset_marker};
use chrono::{TimeZone, Utc};
use logrelay_common::codec::{NdjsonGzReader, ReadLimits};
use logrelay_common::record::{LogRecord, Stream};

/// A record of pod `pod` (customer `acme`, cluster `c1`, application `api`).
pub fn record(pod: &str, message: &str) -> LogRecord {
    let ts = Utc
        .timestamp_opt(1_700_000_000, 5)
        .single()
        .expect("valid time");
    LogRecord {
        timestamp: ts,
        message: message.to_string(),
        stream: Stream::Stdout,
        customer_id: "acme".into(),
        cluster_id: "c1".into(),
        namespace: "ns".into(),
        application: "api".into(),
        pod_name: pod.to_string(),
        container_name: "main".into(),
        node_name: "node-1".into(),
        ingest_timestamp: ts,
        kubernetes: None,
        extra: Default::default(),
    }
}

/// A line of `file` at `start` whose raw form is `message` plus a newline.
pub fn line(file: u64, start: u64, pod: &str, message: &str) -> Line {
    let end = start + message.len() as u64 + 1;
    Line {
        record: record(pod, message),
        file: FileId(file),
        start,
        end,
        end_marker: offset_marker(format!("{message}\n").as_bytes()),
        unfinished: crate::source_event::Unfinished::NONE,
    }
}

/// Consecutive lines of `file` from offset 0, messages `"{prefix}{i}"`.
pub fn lines(file: u64, pod: &str, prefix: &str, count: usize) -> Vec<SourceEvent> {
    let mut offset = 0;
    (0..count)
        .map(|i| {
            let l = line(file, offset, pod, &format!("{prefix}{i}"));
            offset = l.end;
            SourceEvent::Line(l)
        })
        .collect()
}

/// Decodes a gzip NDJSON body into records.
pub async fn decode(body: &[u8]) -> Vec<LogRecord> {
    let mut reader = NdjsonGzReader::new(body, ReadLimits::default());
    let mut out = Vec::new();
    while let Some((_, record)) = reader.next_record::<LogRecord>().await.expect("valid gzip") {
        out.push(record.expect("valid record"));
    }
    out
}

/// A disk buffer in a fresh temporary directory (kept as long as the returned guard).
pub fn test_buffer(limit: u64) -> (tempfile::TempDir, super::buffer::DiskBuffer) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (buffer, _) =
        super::buffer::DiskBuffer::open(dir.path().join("buffer"), limit).expect("opens");
    (dir, buffer)
}
