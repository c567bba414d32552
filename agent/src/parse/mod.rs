//! Turning raw container log lines into messages: the two on-disk formats ([`cri`], [`docker`]),
//! detected per file from its first line; reassembly of lines the runtime split into chunks
//! ([`partial`]); opt-in joining of multi-line records such as stack traces ([`multiline`]); and
//! the last step every message takes ([`finish_message`]): the line-length cap
//! and lossy UTF-8 repair, both counted. Nothing here drops a line: a line that does not parse is
//! still shipped with its raw text as the message.

pub mod cri;
pub mod docker;
pub mod multiline;
pub mod partial;
pub mod timestamp;

use crate::internal_events::parse::{InvalidUtf8, LineTruncated};
use chrono::{DateTime, Utc};
use logrelay_common::record::Stream;
use std::borrow::Cow;

/// Default cap on a message (after partial lines are merged), in bytes: 1 MiB, CloudWatch Logs'
/// event size limit; far above containerd's 16 KiB chunks, far below what would strain the agent's memory.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

/// Record field set to `true` on a message cut at the line-length cap.
pub const TRUNCATED_FIELD: &str = "logrelay_truncated";

/// Record field holding the length in bytes a truncated message had before it was cut.
pub const ORIGINAL_BYTES_FIELD: &str = "logrelay_original_bytes";

/// The on-disk format of a container log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The CRI format (containerd, CRI-O).
    Cri,
    /// Docker's json-file format.
    Docker,
}

impl Format {
    /// Detects the format from a file's first line: json-file lines are JSON objects.
    pub fn detect(first_line: &[u8]) -> Format {
        match first_line.iter().find(|byte| !byte.is_ascii_whitespace()) {
            Some(b'{') => Format::Docker,
            _ => Format::Cri,
        }
    }

    /// Parses one line (without its newline) in this format.
    pub fn parse(self, line: &[u8]) -> Result<Parsed<'_>, ParseErrorKind> {
        match self {
            Format::Cri => cri::parse(line),
            Format::Docker => docker::parse(line),
        }
    }

    /// The name used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Cri => "cri",
            Format::Docker => "docker",
        }
    }
}

/// One successfully parsed line (a whole line, or a chunk of a longer one).
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed<'a> {
    /// When the runtime saw the line.
    pub timestamp: DateTime<Utc>,
    /// The stream it was written to.
    pub stream: Stream,
    /// Whether more chunks of the same line follow (`P` in CRI, no trailing `\n` in json-file).
    pub partial: bool,
    /// The message bytes, exactly as written.
    pub message: Cow<'a, [u8]>,
}

/// Why a line did not parse; the raw line is then shipped as the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// Fewer fields than the format requires.
    MissingFields,
    /// The timestamp is not RFC 3339.
    BadTimestamp,
    /// The stream is neither `stdout` nor `stderr`.
    UnknownStream,
    /// The CRI tag is neither `P` nor `F`.
    UnknownTag,
    /// A json-file line that is not a JSON object.
    InvalidJson,
}

impl ParseErrorKind {
    /// The reason label used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ParseErrorKind::MissingFields => "missing_fields",
            ParseErrorKind::BadTimestamp => "bad_timestamp",
            ParseErrorKind::UnknownStream => "unknown_stream",
            ParseErrorKind::UnknownTag => "unknown_tag",
            ParseErrorKind::InvalidJson => "invalid_json",
        }
    }
}

/// A message ready for a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The text: the original bytes, cut at the cap and repaired lossily if they were not UTF-8.
    pub text: String,
    /// The original length in bytes when the message was cut at the cap.
    pub truncated_from: Option<u64>,
}

impl Message {
    /// Adds the truncation marker fields to a record's `extra` when the message was cut.
    pub fn mark(&self, extra: &mut serde_json::Map<String, serde_json::Value>) {
        if let Some(original) = self.truncated_from {
            extra.insert(TRUNCATED_FIELD.into(), serde_json::Value::Bool(true));
            extra.insert(
                ORIGINAL_BYTES_FIELD.into(),
                serde_json::Value::from(original),
            );
        }
    }
}

/// Finishes a message: `bytes` are its first bytes (at most `max_bytes` are kept) and
/// `original_len` its full length. A cut message loses any multi-byte character split by the cut
/// and is counted as truncated; invalid UTF-8 is replaced lossily and counted.
pub fn finish_message(mut bytes: Vec<u8>, original_len: u64, max_bytes: usize) -> Message {
    let original_len = original_len.max(bytes.len() as u64);
    bytes.truncate(max_bytes);
    let truncated_from = (original_len > bytes.len() as u64).then_some(original_len);
    if let Some(original_bytes) = truncated_from {
        cut_incomplete_char(&mut bytes);
        LineTruncated {
            original_bytes,
            kept_bytes: bytes.len() as u64,
        }
        .emit();
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            InvalidUtf8 {
                bytes: error.as_bytes().len() as u64,
            }
            .emit();
            String::from_utf8_lossy(error.as_bytes()).into_owned()
        }
    };
    Message {
        text,
        truncated_from,
    }
}

/// Drops a UTF-8 sequence left incomplete at the end of `bytes` by a cut.
fn cut_incomplete_char(bytes: &mut Vec<u8>) {
    let len = bytes.len();
    for start in (len.saturating_sub(3)..len).rev() {
        let byte = bytes[start];
        if byte & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: look further back for the sequence's lead byte
        }
        let needed = match byte {
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        if len - start < needed {
            bytes.truncate(start);
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_is_detected_from_the_first_line() {
        assert_eq!(Format::detect(br#"{"log":"x\n"}"#), Format::Docker);
        assert_eq!(Format::detect(br#"  {"log":"x\n"}"#), Format::Docker);
        assert_eq!(
            Format::detect(b"2024-01-01T00:00:00Z stdout F x"),
            Format::Cri
        );
        assert_eq!(Format::detect(b"garbage"), Format::Cri);
    }

    #[test]
    fn short_valid_message_is_kept_as_is() {
        let message = finish_message("héllo\r".as_bytes().to_vec(), 7, 100);
        assert_eq!(
            message,
            Message {
                text: "héllo\r".into(),
                truncated_from: None
            }
        );
    }

    #[test]
    fn long_message_is_cut_at_the_cap_and_marked() {
        let message = finish_message(vec![b'a'; 50], 1_000, 10);
        assert_eq!(message.text, "a".repeat(10));
        assert_eq!(message.truncated_from, Some(1_000));
        let mut extra = serde_json::Map::new();
        message.mark(&mut extra);
        assert_eq!(extra[TRUNCATED_FIELD], serde_json::json!(true));
        assert_eq!(extra[ORIGINAL_BYTES_FIELD], serde_json::json!(1_000));
    }

    #[test]
    fn cut_inside_a_multibyte_character_drops_the_fragment() {
        // "日" is three bytes; a cap of 5 cuts the second one after its first byte.
        let message = finish_message("a日日".as_bytes().to_vec(), 7, 5);
        assert_eq!(message.text, "a日");
        assert_eq!(message.truncated_from, Some(7));
        let emoji = finish_message("😀😀".as_bytes().to_vec(), 8, 7);
        assert_eq!(emoji.text, "😀");
    }

    #[test]
    fn invalid_utf8_is_replaced_lossily() {
        let message = finish_message(b"ok \xff\xfe end".to_vec(), 9, 100);
        assert_eq!(message.text, "ok \u{FFFD}\u{FFFD} end");
        assert_eq!(message.truncated_from, None);
    }

    #[test]
    fn unmarked_message_adds_no_fields() {
        let mut extra = serde_json::Map::new();
        finish_message(b"x".to_vec(), 1, 10).mark(&mut extra);
        assert!(extra.is_empty());
    }
}
