//! Reassembly of lines the runtime split into chunks (CRI `P`…`F`, json-file entries without a
//! trailing newline), per file.
//!
//! A merged line covers the byte range from its first chunk's start to its last chunk's end, and
//! lines leave the merger in file order with contiguous ranges — what the acknowledged checkpoint
//! needs (see [`crate::pipeline`]): a checkpoint at a line's end must imply that every earlier byte
//! is shipped. So at most one partial line is pending per file, keyed by its stream: a line of the
//! *other* stream (or an unparseable line) arriving while a partial is pending flushes the partial
//! as it is first (counted as `interrupted`); the rest of it becomes a line of its own. Nothing is
//! lost, and runtimes write a split line's chunks back to back, so this is rare. Bytes consumed
//! without a line (blank lines) while a partial is pending are absorbed into its range.
//!
//! A dangling partial is flushed after [`PARTIAL_FLUSH_TIMEOUT`] or when its file ends. The merged
//! message is kept up to the line cap; the bytes past it are only counted (see
//! [`super::finish_message`]).

use crate::internal_events::parse::{PartialFlushReason, PartialLineFlushed};
use chrono::{DateTime, Utc};
use logrelay_common::record::Stream;
use std::time::{Duration, Instant};

/// How long a partial line may wait for its next chunk before it is shipped as it is: 5 s, as
/// issue 3 sets (runtimes write a split line's chunks back to back, so a real line never waits).
pub const PARTIAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// One parsed line or chunk, with the byte range it came from.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    /// Offset of the chunk's first byte.
    pub start: u64,
    /// Offset just past the chunk (including its newline).
    pub end: u64,
    /// Offset marker of the raw bytes before `end`.
    pub end_marker: u64,
    /// When the runtime saw it.
    pub timestamp: DateTime<Utc>,
    /// Its stream.
    pub stream: Stream,
    /// Whether more chunks of the same line follow.
    pub partial: bool,
    /// The message bytes this chunk carries (possibly already cut by the reader's cap).
    pub message: &'a [u8],
    /// The chunk's full message length in bytes, including any bytes cut before the merger.
    pub message_len: u64,
}

/// A complete line (merged or not) leaving the merger.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedLine {
    /// Offset of the first chunk's first byte.
    pub start: u64,
    /// Offset just past the last chunk (or absorbed blank line).
    pub end: u64,
    /// Offset marker of the raw bytes before `end`.
    pub end_marker: u64,
    /// The first chunk's timestamp.
    pub timestamp: DateTime<Utc>,
    /// The stream.
    pub stream: Stream,
    /// The message's first bytes, at most the line cap.
    pub message: Vec<u8>,
    /// The full message length in bytes.
    pub message_len: u64,
}

/// What the merger hands on, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Merged {
    /// A line to ship.
    Line(MergedLine),
    /// Bytes up to `end` produced no line.
    Consumed {
        /// Offset just past the consumed bytes.
        end: u64,
        /// Offset marker of the raw bytes before `end`.
        end_marker: u64,
    },
}

/// The pending partial line of one file.
#[derive(Debug)]
struct Pending {
    line: MergedLine,
    since: Instant,
}

/// Reassembles split lines of one file; see the module documentation.
#[derive(Debug)]
pub struct PartialMerger {
    max_line_bytes: usize,
    timeout: Duration,
    pending: Option<Pending>,
}

impl PartialMerger {
    /// A merger keeping at most `max_line_bytes` of a message, flushing partials after `timeout`.
    pub fn new(max_line_bytes: usize, timeout: Duration) -> Self {
        Self {
            max_line_bytes,
            timeout,
            pending: None,
        }
    }

    /// Takes the next parsed chunk of the file; completed lines are appended to `out`.
    pub fn push(&mut self, chunk: Chunk<'_>, now: Instant, out: &mut Vec<Merged>) {
        if let Some(pending) = &mut self.pending {
            if pending.line.stream == chunk.stream {
                append(
                    &mut pending.line.message,
                    chunk.message,
                    self.max_line_bytes,
                );
                pending.line.message_len += chunk.message_len;
                pending.line.end = chunk.end;
                pending.line.end_marker = chunk.end_marker;
                if !chunk.partial {
                    self.take_pending(out);
                }
                return;
            }
            self.flush(PartialFlushReason::Interrupted, out);
        }
        let mut message = Vec::new();
        append(&mut message, chunk.message, self.max_line_bytes);
        let line = MergedLine {
            start: chunk.start,
            end: chunk.end,
            end_marker: chunk.end_marker,
            timestamp: chunk.timestamp,
            stream: chunk.stream,
            message,
            message_len: chunk.message_len,
        };
        if chunk.partial {
            self.pending = Some(Pending { line, since: now });
        } else {
            out.push(Merged::Line(line));
        }
    }

    /// Takes a line that joins nothing (e.g. one that did not parse): a pending partial is flushed
    /// first.
    pub fn push_standalone(&mut self, mut line: MergedLine, out: &mut Vec<Merged>) {
        self.flush(PartialFlushReason::Interrupted, out);
        line.message.truncate(self.max_line_bytes);
        out.push(Merged::Line(line));
    }

    /// Takes bytes that produced no line; absorbed into a pending partial's range if there is one.
    pub fn push_consumed(&mut self, end: u64, end_marker: u64, out: &mut Vec<Merged>) {
        match &mut self.pending {
            Some(pending) => {
                pending.line.end = end;
                pending.line.end_marker = end_marker;
            }
            None => out.push(Merged::Consumed { end, end_marker }),
        }
    }

    /// Flushes the pending partial if it has waited longer than the timeout.
    pub fn flush_expired(&mut self, now: Instant, out: &mut Vec<Merged>) {
        if self.deadline().is_some_and(|deadline| now >= deadline) {
            self.flush(PartialFlushReason::Timeout, out);
        }
    }

    /// Flushes the pending partial, if any, as a line of its own.
    pub fn flush(&mut self, reason: PartialFlushReason, out: &mut Vec<Merged>) {
        if self.pending.is_some() {
            PartialLineFlushed { reason }.emit();
            self.take_pending(out);
        }
    }

    /// When the pending partial must be flushed, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending
            .as_ref()
            .map(|pending| pending.since + self.timeout)
    }

    /// Whether a partial line is pending.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    fn take_pending(&mut self, out: &mut Vec<Merged>) {
        if let Some(pending) = self.pending.take() {
            out.push(Merged::Line(pending.line));
        }
    }
}

/// Appends `bytes` to `message` without letting it grow past `max`.
fn append(message: &mut Vec<u8>, bytes: &[u8], max: usize) {
    let room = max.saturating_sub(message.len());
    message.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(start: u64, end: u64, stream: Stream, partial: bool, message: &[u8]) -> Chunk<'_> {
        Chunk {
            start,
            end,
            end_marker: end * 7,
            timestamp: DateTime::from_timestamp(1_700_000_000 + start as i64, 0)
                .expect("valid time"),
            stream,
            partial,
            message,
            message_len: message.len() as u64,
        }
    }

    fn lines(out: &[Merged]) -> Vec<(u64, u64, Stream, String)> {
        out.iter()
            .filter_map(|merged| match merged {
                Merged::Line(line) => Some((
                    line.start,
                    line.end,
                    line.stream,
                    String::from_utf8_lossy(&line.message).into_owned(),
                )),
                Merged::Consumed { .. } => None,
            })
            .collect()
    }

    #[test]
    fn partial_chunks_merge_into_one_line_spanning_their_range() {
        let mut merger = PartialMerger::new(1 << 20, PARTIAL_FLUSH_TIMEOUT);
        let mut out = Vec::new();
        let now = Instant::now();
        merger.push(chunk(0, 10, Stream::Stdout, true, b"ab"), now, &mut out);
        merger.push(chunk(10, 20, Stream::Stdout, true, b"cd"), now, &mut out);
        assert!(out.is_empty());
        merger.push(chunk(20, 30, Stream::Stdout, false, b"ef"), now, &mut out);
        assert_eq!(lines(&out), vec![(0, 30, Stream::Stdout, "abcdef".into())]);
        let Merged::Line(line) = &out[0] else {
            panic!("a line")
        };
        assert_eq!(line.end_marker, 30 * 7);
        assert_eq!(
            line.timestamp.timestamp(),
            1_700_000_000,
            "first chunk's timestamp"
        );
        assert!(!merger.has_pending());
    }

    #[test]
    fn other_stream_interrupts_a_pending_partial_and_ranges_stay_in_order() {
        let mut merger = PartialMerger::new(1 << 20, PARTIAL_FLUSH_TIMEOUT);
        let mut out = Vec::new();
        let now = Instant::now();
        merger.push(chunk(0, 10, Stream::Stdout, true, b"out-1"), now, &mut out);
        merger.push(chunk(10, 20, Stream::Stderr, false, b"err"), now, &mut out);
        merger.push(
            chunk(20, 30, Stream::Stdout, false, b"out-2"),
            now,
            &mut out,
        );
        assert_eq!(
            lines(&out),
            vec![
                (0, 10, Stream::Stdout, "out-1".into()),
                (10, 20, Stream::Stderr, "err".into()),
                (20, 30, Stream::Stdout, "out-2".into()),
            ]
        );
    }

    #[test]
    fn standalone_line_flushes_the_pending_partial_first() {
        let mut merger = PartialMerger::new(1 << 20, PARTIAL_FLUSH_TIMEOUT);
        let mut out = Vec::new();
        merger.push(
            chunk(0, 10, Stream::Stdout, true, b"p"),
            Instant::now(),
            &mut out,
        );
        let raw = MergedLine {
            start: 10,
            end: 15,
            end_marker: 1,
            timestamp: Utc::now(),
            stream: Stream::Stdout,
            message: b"raw".to_vec(),
            message_len: 3,
        };
        merger.push_standalone(raw, &mut out);
        assert_eq!(
            lines(&out),
            vec![
                (0, 10, Stream::Stdout, "p".into()),
                (10, 15, Stream::Stdout, "raw".into())
            ]
        );
    }

    #[test]
    fn blank_bytes_are_absorbed_by_a_pending_partial_or_reported_as_consumed() {
        let mut merger = PartialMerger::new(1 << 20, PARTIAL_FLUSH_TIMEOUT);
        let mut out = Vec::new();
        merger.push_consumed(1, 11, &mut out);
        assert_eq!(
            out,
            vec![Merged::Consumed {
                end: 1,
                end_marker: 11
            }]
        );
        out.clear();
        merger.push(
            chunk(1, 10, Stream::Stdout, true, b"a"),
            Instant::now(),
            &mut out,
        );
        merger.push_consumed(11, 12, &mut out);
        merger.push(
            chunk(11, 20, Stream::Stdout, false, b"b"),
            Instant::now(),
            &mut out,
        );
        assert_eq!(lines(&out), vec![(1, 20, Stream::Stdout, "ab".into())]);
    }

    #[test]
    fn dangling_partial_is_flushed_after_the_timeout_only() {
        let mut merger = PartialMerger::new(1 << 20, Duration::from_secs(5));
        let mut out = Vec::new();
        let start = Instant::now();
        merger.push(
            chunk(0, 10, Stream::Stderr, true, b"dangling"),
            start,
            &mut out,
        );
        merger.flush_expired(start + Duration::from_secs(4), &mut out);
        assert!(out.is_empty());
        assert_eq!(merger.deadline(), Some(start + Duration::from_secs(5)));
        merger.flush_expired(start + Duration::from_secs(5), &mut out);
        assert_eq!(
            lines(&out),
            vec![(0, 10, Stream::Stderr, "dangling".into())]
        );
        assert_eq!(merger.deadline(), None);
    }

    #[test]
    fn merged_message_is_capped_but_its_full_length_is_kept() {
        let mut merger = PartialMerger::new(5, PARTIAL_FLUSH_TIMEOUT);
        let mut out = Vec::new();
        let now = Instant::now();
        merger.push(chunk(0, 10, Stream::Stdout, true, b"abcd"), now, &mut out);
        merger.push(chunk(10, 20, Stream::Stdout, true, b"efgh"), now, &mut out);
        merger.push(chunk(20, 30, Stream::Stdout, false, b"ijkl"), now, &mut out);
        let Merged::Line(line) = &out[0] else {
            panic!("a line")
        };
        assert_eq!(line.message, b"abcde");
        assert_eq!(line.message_len, 12);
    }
}
