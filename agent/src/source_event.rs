//! The hand-over between the agent's sources (file tailer, stdin) and its delivery half (batcher,
//! sink, checkpoints): what a source sends, and how delivery tells the source side what is safe.
//!
//! A source sends [`SourceEvent`]s in read order per file through one bounded channel. Every byte a
//! source consumes from a file is covered by exactly one event: a [`Line`] (its `start..end` range)
//! or a [`SourceEvent::Consumed`] (bytes that produced no line, e.g. blank lines). Delivery advances
//! a file's checkpoint to the end of the longest prefix of those events whose lines all sit in
//! objects the sink acknowledged.
//!
//! Runtimes write a file's two streams from separate writers, so a long line of one stream may be
//! interleaved with entries of the other. Lines therefore complete out of file order, and a resume
//! point is an offset *plus* the starts of the lines still unfinished before it ([`Unfinished`]):
//! every byte before `end` is shipped except the chunks of those lines, which a restart reads again.

use logrelay_common::record::Stream;
use serde::{Deserialize, Serialize};

use logrelay_common::record::LogRecord;

/// Capacity of the channel from sources to the batcher, in events. When it is full, sources stop
/// reading: the log files on disk are the buffer (backpressure, bounded memory). 1024 events are
/// four of the batcher's turns ([`crate::delivery`] takes up to 256 at once), and at most a few
/// MiB of lines with the occasional long message.
pub const SOURCE_CHANNEL_CAPACITY: usize = 1024;

/// A file (or the stdin stream) known to this agent run; assigned by the source side, unique per run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u64);

impl FileId {
    /// The stdin source: offsets are byte offsets in the stdin stream; it is never checkpointed.
    pub const STDIN: FileId = FileId(0);
}

/// One log line ready for batching, with the byte range it came from.
#[derive(Debug, Clone)]
pub struct Line {
    /// The record to ship.
    pub record: LogRecord,
    /// Where the line came from.
    pub file: FileId,
    /// Offset of the line's first byte (for a merged partial line: of its first chunk).
    pub start: u64,
    /// Offset just past the line's last byte (including its newline).
    pub end: u64,
    /// [`offset_marker`] of the raw bytes just before `end`, stored with a checkpoint at `end`.
    pub end_marker: u64,
    /// Lines of the file still unfinished before `end` (the other stream's pending partial).
    pub unfinished: Unfinished,
}

/// Where the lines of a file that are still unfinished at a resume point start, per stream. A
/// checkpoint at offset `o` with `unfinished.stdout = Some(s)` means: every byte before `o` is
/// shipped except the stdout chunks from `s` on, which belong to a line not complete yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Unfinished {
    /// Start of the unfinished stdout line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<u64>,
    /// Start of the unfinished stderr line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<u64>,
}

impl Unfinished {
    /// No unfinished line.
    pub const NONE: Unfinished = Unfinished {
        stdout: None,
        stderr: None,
    };

    /// The start of `stream`'s unfinished line.
    pub fn get(&self, stream: Stream) -> Option<u64> {
        match stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        }
    }

    /// Sets the start of `stream`'s unfinished line.
    pub fn set(&mut self, stream: Stream, start: Option<u64>) {
        match stream {
            Stream::Stdout => self.stdout = start,
            Stream::Stderr => self.stderr = start,
        }
    }

    /// Whether no line is unfinished.
    pub fn is_empty(&self) -> bool {
        self.stdout.is_none() && self.stderr.is_none()
    }

    /// The earliest start, where a restart must read from.
    pub fn earliest(&self) -> Option<u64> {
        match (self.stdout, self.stderr) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What a source hands to the delivery half, in read order per file.
// Lines are nearly every event: boxing them would add an allocation per log line to save a few
// bytes on the rare `Consumed` / `Closed` events.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum SourceEvent {
    /// A line to batch and ship.
    Line(Line),
    /// Bytes up to `end` were consumed without producing a line; safe to checkpoint once all
    /// earlier lines of the file are acknowledged.
    Consumed {
        /// The file.
        file: FileId,
        /// Offset just past the consumed bytes.
        end: u64,
        /// [`offset_marker`] of the raw bytes just before `end`.
        end_marker: u64,
        /// Lines of the file still unfinished before `end`.
        unfinished: Unfinished,
    },
    /// The file will produce nothing more (drained after rotation or deletion); its checkpoint
    /// entry may be retired once everything sent for it is acknowledged.
    Closed {
        /// The file.
        file: FileId,
    },
}

impl SourceEvent {
    /// The file this event belongs to.
    pub fn file(&self) -> FileId {
        match self {
            SourceEvent::Line(line) => line.file,
            SourceEvent::Consumed { file, .. } | SourceEvent::Closed { file } => *file,
        }
    }
}

/// How many raw bytes before a checkpointed offset its marker covers.
pub const MARKER_BYTES: usize = 64;

/// The offset marker: FNV-1a (64-bit) of the last [`MARKER_BYTES`] raw bytes before an offset.
///
/// Stored with each checkpoint and checked on resume: a file that reuses a checkpointed inode but
/// holds other bytes there is read from 0 instead (counted), never from a wrong offset.
pub fn offset_marker(bytes_before_offset: &[u8]) -> u64 {
    let window = &bytes_before_offset[bytes_before_offset.len().saturating_sub(MARKER_BYTES)..];
    crate::fnv::fnv1a(window)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_covers_only_the_last_window_of_bytes() {
        let mut long = vec![b'x'; 1000];
        long.extend_from_slice(&[b'y'; MARKER_BYTES]);
        assert_eq!(offset_marker(&long), offset_marker(&[b'y'; MARKER_BYTES]));
        assert_ne!(offset_marker(b"abc"), offset_marker(b"abd"));
        assert_ne!(offset_marker(b""), offset_marker(b"\n"));
    }
}
