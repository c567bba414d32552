//! Reassembly of lines the runtime split into chunks (CRI `P`…`F`, json-file entries without a
//! trailing newline), per file and stream.
//!
//! containerd writes a container's stdout and stderr from two goroutines into one file, each entry
//! at most 16 KiB, so the chunks of a long line of one stream can have entries of the other stream
//! between them (containerd `internal/cri/io/logger.go`, `redirectLogs`). The merger therefore keeps
//! one pending line per stream: an entry of the other stream, or a line that does not parse, never
//! splits a line. Chunks are joined as raw bytes; text is decoded only on the whole line (see
//! [`super::finish_message`]), so a cut inside a multi-byte character is harmless.
//!
//! Lines can then complete out of file order. Every output carries the file's resume point at that
//! moment: the offset just past the last entry taken, its marker, and the starts of the lines still
//! pending ([`Unfinished`]). A checkpoint there never skips an unfinished line: a restart reads
//! again from its start and skips the other entries before the offset ([`PartialMerger::replay`]).
//!
//! A dangling partial is flushed after [`PARTIAL_FLUSH_TIMEOUT`] or when its file ends. The merged
//! message is kept up to the line cap; the bytes past it are only counted (see
//! [`super::finish_message`]).

use crate::internal_events::parse::{PartialFlushReason, PartialLineFlushed};
use crate::source_event::Unfinished;
use chrono::{DateTime, Utc};
use logrelay_common::record::Stream;
use std::time::{Duration, Instant};

/// How long a partial line may wait for its next chunk before it is shipped as it is: 5 s.
/// containerd writes a split line's chunks back to back (one goroutine per stream), so a real line
/// never waits this long; a container that exits mid-line leaves a final `P` that only this ships.
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
    /// The file's resume offset when the line left: just past the last entry taken.
    pub end: u64,
    /// Offset marker of the raw bytes before `end`.
    pub end_marker: u64,
    /// Lines still pending at `end`.
    pub unfinished: Unfinished,
    /// The first chunk's timestamp.
    pub timestamp: DateTime<Utc>,
    /// The stream.
    pub stream: Stream,
    /// The message's first bytes, at most the line cap.
    pub message: Vec<u8>,
    /// The full message length in bytes.
    pub message_len: u64,
}

/// What the merger hands on; resume points never go backwards.
#[derive(Debug, Clone, PartialEq)]
pub enum Merged {
    /// A line to ship.
    Line(MergedLine),
    /// Bytes up to `end` produced no line (yet): a resume point.
    Consumed {
        /// Offset just past the consumed bytes.
        end: u64,
        /// Offset marker of the raw bytes before `end`.
        end_marker: u64,
        /// Lines still pending at `end`.
        unfinished: Unfinished,
    },
}

/// The pending partial line of one stream.
#[derive(Debug)]
struct Pending {
    line: MergedLine,
    since: Instant,
}

/// Entries before `until` that were shipped before a restart: only the chunks of the lines that
/// were unfinished there are taken again.
#[derive(Debug, Clone, Copy)]
struct Replay {
    until: u64,
    unfinished: Unfinished,
}

/// Reassembles split lines of one file; see the module documentation.
#[derive(Debug)]
pub struct PartialMerger {
    max_line_bytes: usize,
    timeout: Duration,
    /// Pending lines, indexed by [`stream_index`].
    pending: [Option<Pending>; 2],
    /// Offset and marker just past the last entry taken.
    position: (u64, u64),
    replay: Option<Replay>,
}

fn stream_index(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

impl PartialMerger {
    /// A merger keeping at most `max_line_bytes` of a message, flushing partials after `timeout`.
    pub fn new(max_line_bytes: usize, timeout: Duration) -> Self {
        Self {
            max_line_bytes,
            timeout,
            pending: [None, None],
            position: (0, 0),
            replay: None,
        }
    }

    /// Resumes at a checkpoint with unfinished lines: the file is read again from the earliest of
    /// them, and entries before `until` other than those lines' chunks are skipped (shipped
    /// before). Nothing is handed on for offsets before `until`.
    pub fn replay(&mut self, until: u64, unfinished: Unfinished) {
        if !unfinished.is_empty() {
            self.replay = Some(Replay { until, unfinished });
        }
    }

    /// Takes the next parsed chunk of the file; what leaves is appended to `out`.
    pub fn push(&mut self, chunk: Chunk<'_>, now: Instant, out: &mut Vec<Merged>) {
        if self.replaying_other(chunk.start, chunk.end, Some(chunk.stream)) {
            return self.push_consumed(chunk.end, chunk.end_marker, out);
        }
        self.position = (chunk.end, chunk.end_marker);
        let slot = stream_index(chunk.stream);
        if let Some(pending) = &mut self.pending[slot] {
            append(
                &mut pending.line.message,
                chunk.message,
                self.max_line_bytes,
            );
            pending.line.message_len += chunk.message_len;
        } else {
            let mut message = Vec::new();
            append(&mut message, chunk.message, self.max_line_bytes);
            let line = MergedLine {
                start: chunk.start,
                end: chunk.end,
                end_marker: chunk.end_marker,
                unfinished: Unfinished::NONE,
                timestamp: chunk.timestamp,
                stream: chunk.stream,
                message,
                message_len: chunk.message_len,
            };
            self.pending[slot] = Some(Pending { line, since: now });
        }
        if chunk.partial {
            self.emit_position(out);
        } else {
            self.take_pending(slot, out);
        }
    }

    /// Takes a line that joins nothing (one that did not parse); pending partials stay pending.
    pub fn push_standalone(&mut self, mut line: MergedLine, out: &mut Vec<Merged>) {
        if self.replaying_other(line.start, line.end, None) {
            return self.push_consumed(line.end, line.end_marker, out);
        }
        self.position = (line.end, line.end_marker);
        line.message.truncate(self.max_line_bytes);
        line.unfinished = self.unfinished();
        out.push(Merged::Line(line));
    }

    /// Takes bytes that produced no line.
    pub fn push_consumed(&mut self, end: u64, end_marker: u64, out: &mut Vec<Merged>) {
        self.position = (end, end_marker);
        self.end_replay_at(end);
        if self.replay.is_none() {
            self.emit_position(out);
        }
    }

    /// Flushes every pending partial that has waited longer than the timeout.
    pub fn flush_expired(&mut self, now: Instant, out: &mut Vec<Merged>) {
        for slot in 0..self.pending.len() {
            let expired = self.pending[slot]
                .as_ref()
                .is_some_and(|pending| now >= pending.since + self.timeout);
            if expired {
                PartialLineFlushed {
                    reason: PartialFlushReason::Timeout,
                }
                .emit();
                self.take_pending(slot, out);
            }
        }
    }

    /// Flushes every pending partial, oldest first, each as a line of its own.
    pub fn flush(&mut self, reason: PartialFlushReason, out: &mut Vec<Merged>) {
        while let Some(slot) = self.oldest_pending() {
            PartialLineFlushed { reason }.emit();
            self.take_pending(slot, out);
        }
    }

    /// When the next pending partial must be flushed, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending
            .iter()
            .flatten()
            .map(|pending| pending.since + self.timeout)
            .min()
    }

    /// Whether a partial line is pending.
    pub fn has_pending(&self) -> bool {
        self.pending.iter().any(Option::is_some)
    }

    /// Where the pending lines start.
    pub fn unfinished(&self) -> Unfinished {
        let start = |slot: usize| self.pending[slot].as_ref().map(|p| p.line.start);
        Unfinished {
            stdout: start(0),
            stderr: start(1),
        }
    }

    /// Bytes held in pending lines (their kept message bytes).
    pub fn pending_bytes(&self) -> u64 {
        self.pending
            .iter()
            .flatten()
            .map(|pending| pending.line.message_len)
            .sum()
    }

    /// Whether an entry at `start..end` lies in the replayed range and is not a chunk of a line
    /// that was unfinished there (`stream`: the entry's stream; `None` for an unparsed line).
    fn replaying_other(&mut self, start: u64, end: u64, stream: Option<Stream>) -> bool {
        let Some(replay) = self.replay else {
            return false;
        };
        if end > replay.until {
            self.replay = None;
            return false;
        }
        let wanted = stream
            .and_then(|stream| replay.unfinished.get(stream))
            .is_some_and(|unfinished_start| start >= unfinished_start);
        if wanted {
            self.end_replay_at(end);
        }
        !wanted
    }

    fn end_replay_at(&mut self, end: u64) {
        if self.replay.is_some_and(|replay| end >= replay.until) {
            self.replay = None;
        }
    }

    fn oldest_pending(&self) -> Option<usize> {
        (0..self.pending.len())
            .filter(|slot| self.pending[*slot].is_some())
            .min_by_key(|slot| self.pending[*slot].as_ref().map(|p| p.line.start))
    }

    fn emit_position(&self, out: &mut Vec<Merged>) {
        if self.replay.is_some() {
            return;
        }
        out.push(Merged::Consumed {
            end: self.position.0,
            end_marker: self.position.1,
            unfinished: self.unfinished(),
        });
    }

    fn take_pending(&mut self, slot: usize, out: &mut Vec<Merged>) {
        if let Some(pending) = self.pending[slot].take() {
            let mut line = pending.line;
            (line.end, line.end_marker) = self.position;
            line.unfinished = self.unfinished();
            out.push(Merged::Line(line));
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

    /// The resume points handed on, in order: (offset, unfinished stdout start, stderr start).
    fn positions(out: &[Merged]) -> Vec<(u64, Option<u64>, Option<u64>)> {
        out.iter()
            .map(|merged| match merged {
                Merged::Line(line) => (line.end, line.unfinished.stdout, line.unfinished.stderr),
                Merged::Consumed {
                    end, unfinished, ..
                } => (*end, unfinished.stdout, unfinished.stderr),
            })
            .collect()
    }

    fn merger() -> PartialMerger {
        PartialMerger::new(1 << 20, PARTIAL_FLUSH_TIMEOUT)
    }

    #[test]
    fn partial_chunks_merge_into_one_line_spanning_their_range() {
        let mut merger = merger();
        let mut out = Vec::new();
        let now = Instant::now();
        merger.push(chunk(0, 10, Stream::Stdout, true, b"ab"), now, &mut out);
        merger.push(chunk(10, 20, Stream::Stdout, true, b"cd"), now, &mut out);
        assert!(lines(&out).is_empty());
        merger.push(chunk(20, 30, Stream::Stdout, false, b"ef"), now, &mut out);
        assert_eq!(lines(&out), vec![(0, 30, Stream::Stdout, "abcdef".into())]);
        let Some(Merged::Line(line)) = out.last() else {
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
    fn the_other_stream_between_chunks_does_not_split_a_line() {
        let mut merger = merger();
        let mut out = Vec::new();
        let now = Instant::now();
        merger.push(chunk(0, 10, Stream::Stdout, true, b"out-"), now, &mut out);
        merger.push(chunk(10, 20, Stream::Stderr, false, b"err"), now, &mut out);
        merger.push(chunk(20, 30, Stream::Stdout, true, b"mid-"), now, &mut out);
        merger.push(chunk(30, 40, Stream::Stderr, true, b"e1-"), now, &mut out);
        merger.push(chunk(40, 50, Stream::Stdout, false, b"end"), now, &mut out);
        merger.push(chunk(50, 60, Stream::Stderr, false, b"e2"), now, &mut out);
        assert_eq!(
            lines(&out),
            vec![
                (10, 20, Stream::Stderr, "err".into()),
                (0, 50, Stream::Stdout, "out-mid-end".into()),
                (30, 60, Stream::Stderr, "e1-e2".into()),
            ]
        );
        assert_eq!(
            positions(&out),
            vec![
                (10, Some(0), None),
                (20, Some(0), None),
                (30, Some(0), None),
                (40, Some(0), Some(30)),
                (50, None, Some(30)),
                (60, None, None),
            ],
            "no resume point skips the start of an unfinished line"
        );
    }

    #[test]
    fn chunks_cut_inside_a_character_are_joined_as_bytes() {
        let mut merger = merger();
        let mut out = Vec::new();
        let now = Instant::now();
        let text = "a€b".as_bytes(); // € is three bytes: cut after its first
        merger.push(
            chunk(0, 10, Stream::Stdout, true, &text[..2]),
            now,
            &mut out,
        );
        merger.push(chunk(10, 20, Stream::Stderr, false, b"x"), now, &mut out);
        merger.push(
            chunk(20, 30, Stream::Stdout, false, &text[2..]),
            now,
            &mut out,
        );
        let Some(Merged::Line(line)) = out.last() else {
            panic!("a line")
        };
        assert_eq!(line.message, text);
    }

    #[test]
    fn standalone_line_leaves_pending_partials_pending() {
        let mut merger = merger();
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
            unfinished: Unfinished::NONE,
            timestamp: Utc::now(),
            stream: Stream::Stdout,
            message: b"raw".to_vec(),
            message_len: 3,
        };
        merger.push_standalone(raw, &mut out);
        merger.push(
            chunk(15, 20, Stream::Stdout, false, b"q"),
            Instant::now(),
            &mut out,
        );
        assert_eq!(
            lines(&out),
            vec![
                (10, 15, Stream::Stdout, "raw".into()),
                (0, 20, Stream::Stdout, "pq".into())
            ]
        );
        assert_eq!(positions(&out)[1], (15, Some(0), None));
    }
    #[test]
    fn blank_bytes_are_resume_points_that_keep_pending_starts() {
        let mut merger = merger();
        let mut out = Vec::new();
        merger.push_consumed(1, 11, &mut out);
        assert_eq!(
            out,
            vec![Merged::Consumed {
                end: 1,
                end_marker: 11,
                unfinished: Unfinished::NONE,
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
        assert_eq!(
            positions(&out),
            vec![(10, Some(1), None), (11, Some(1), None), (20, None, None)]
        );
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
        merger.push(chunk(10, 20, Stream::Stdout, false, b"x"), start, &mut out);
        out.clear();
        merger.flush_expired(start + Duration::from_secs(4), &mut out);
        assert!(out.is_empty());
        assert_eq!(merger.deadline(), Some(start + Duration::from_secs(5)));
        merger.flush_expired(start + Duration::from_secs(5), &mut out);
        assert_eq!(
            lines(&out),
            vec![(0, 20, Stream::Stderr, "dangling".into())],
            "a flushed line carries the file's current resume point"
        );
        assert_eq!(merger.deadline(), None);
    }

    #[test]
    fn flush_ships_every_pending_line_oldest_first() {
        let mut merger = merger();
        let mut out = Vec::new();
        let now = Instant::now();
        merger.push(chunk(0, 10, Stream::Stderr, true, b"e"), now, &mut out);
        merger.push(chunk(10, 20, Stream::Stdout, true, b"o"), now, &mut out);
        out.clear();
        merger.flush(PartialFlushReason::EndOfFile, &mut out);
        assert_eq!(
            lines(&out),
            vec![
                (0, 20, Stream::Stderr, "e".into()),
                (10, 20, Stream::Stdout, "o".into())
            ]
        );
        assert_eq!(
            positions(&out),
            vec![(20, Some(10), None), (20, None, None)]
        );
    }

    #[test]
    fn replay_takes_only_the_unfinished_lines_chunks_before_the_checkpoint() {
        // Before a restart: stdout P at 0..10, stderr F at 10..20 (shipped), stdout P at 20..30;
        // checkpoint (30, stdout from 0). After it: stdout F at 30..40.
        let mut merger = merger();
        merger.replay(
            30,
            Unfinished {
                stdout: Some(0),
                stderr: None,
            },
        );
        let mut out = Vec::new();
        let now = Instant::now();
        merger.push(chunk(0, 10, Stream::Stdout, true, b"a"), now, &mut out);
        merger.push(chunk(10, 20, Stream::Stderr, false, b"err"), now, &mut out);
        merger.push(chunk(20, 30, Stream::Stdout, true, b"b"), now, &mut out);
        assert_eq!(
            positions(&out),
            vec![(30, Some(0), None)],
            "nothing before the checkpoint is handed on"
        );
        merger.push(chunk(30, 40, Stream::Stdout, false, b"c"), now, &mut out);
        merger.push(chunk(40, 50, Stream::Stderr, false, b"new"), now, &mut out);
        assert_eq!(
            lines(&out),
            vec![
                (0, 40, Stream::Stdout, "abc".into()),
                (40, 50, Stream::Stderr, "new".into())
            ]
        );
    }

    #[test]
    fn replay_skips_unparsed_lines_and_other_stream_lines_of_the_replayed_range() {
        let mut merger = merger();
        merger.replay(
            25,
            Unfinished {
                stdout: None,
                stderr: Some(5),
            },
        );
        let mut out = Vec::new();
        let now = Instant::now();
        let raw = |start, end| MergedLine {
            start,
            end,
            end_marker: 0,
            unfinished: Unfinished::NONE,
            timestamp: Utc::now(),
            stream: Stream::Stdout,
            message: b"raw".to_vec(),
            message_len: 3,
        };
        merger.push_standalone(raw(0, 5), &mut out);
        merger.push(chunk(5, 15, Stream::Stderr, true, b"x"), now, &mut out);
        merger.push_standalone(raw(15, 25), &mut out);
        merger.push(chunk(25, 35, Stream::Stderr, false, b"y"), now, &mut out);
        assert_eq!(lines(&out), vec![(5, 35, Stream::Stderr, "xy".into())]);
    }

    #[test]
    fn merged_message_is_capped_but_its_full_length_is_kept() {
        let mut merger = PartialMerger::new(5, PARTIAL_FLUSH_TIMEOUT);
        let mut out = Vec::new();
        let now = Instant::now();
        merger.push(chunk(0, 10, Stream::Stdout, true, b"abcd"), now, &mut out);
        merger.push(chunk(10, 20, Stream::Stdout, true, b"efgh"), now, &mut out);
        merger.push(chunk(20, 30, Stream::Stdout, false, b"ijkl"), now, &mut out);
        let Some(Merged::Line(line)) = out.last() else {
            panic!("a line")
        };
        assert_eq!(line.message, b"abcde");
        assert_eq!(line.message_len, 12);
    }
}
