//! Docker's `json-file` log format: `{"log":"…\n","stream":"stdout","time":"…"}` per line.
//!
//! Spec: <https://docs.docker.com/engine/logging/drivers/json-file/>. Docker splits lines longer
//! than 16 KiB into several entries; every entry but the last lacks the trailing `\n` in `log`,
//! which is how a partial entry is recognised here.

use super::timestamp::parse_rfc3339;
use super::{ParseErrorKind, Parsed};
use logrelay_common::record::Stream;
use serde::Deserialize;
use std::borrow::Cow;

/// One json-file entry; unknown fields (e.g. `attrs`) are ignored.
#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow)]
    log: Option<Cow<'a, str>>,
    #[serde(borrow)]
    stream: Option<Cow<'a, str>>,
    #[serde(borrow)]
    time: Option<Cow<'a, str>>,
}

/// Parses one json-file line (without its newline).
pub fn parse(line: &[u8]) -> Result<Parsed<'static>, ParseErrorKind> {
    let entry: Entry<'_> = serde_json::from_slice(line).map_err(|_| ParseErrorKind::InvalidJson)?;
    let (Some(log), Some(stream), Some(time)) = (entry.log, entry.stream, entry.time) else {
        return Err(ParseErrorKind::MissingFields);
    };
    let timestamp = parse_rfc3339(time.as_bytes()).ok_or(ParseErrorKind::BadTimestamp)?;
    let stream = match &*stream {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return Err(ParseErrorKind::UnknownStream),
    };
    let mut message = log.into_owned().into_bytes();
    let partial = message.last() != Some(&b'\n');
    if !partial {
        message.pop();
    }
    Ok(Parsed {
        timestamp,
        stream,
        partial,
        message: Cow::Owned(message),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use logrelay_common::record::format_timestamp;

    #[test]
    fn complete_entry_drops_only_the_trailing_newline() {
        let parsed = parse(
            br#"{"log":"h\u00e9llo \"x\"\r\n","stream":"stderr","time":"2024-01-01T00:00:00.5Z"}"#,
        )
        .expect("valid entry");
        assert_eq!(&*parsed.message, "héllo \"x\"\r".as_bytes());
        assert_eq!(parsed.stream, Stream::Stderr);
        assert!(!parsed.partial);
        assert_eq!(
            format_timestamp(&parsed.timestamp),
            "2024-01-01T00:00:00.500000000Z"
        );
    }

    #[test]
    fn entry_without_trailing_newline_is_partial() {
        let parsed = parse(
            br#"{"log":"first half","stream":"stdout","time":"2024-01-01T00:00:00Z","attrs":{}}"#,
        )
        .expect("valid entry");
        assert!(parsed.partial);
        assert_eq!(&*parsed.message, b"first half");
    }

    #[test]
    fn bad_entries_report_the_reason() {
        let cases: [(&[u8], ParseErrorKind); 5] = [
            (
                b"{\"log\":\"x\\n\",\"stream\":\"stdout\"",
                ParseErrorKind::InvalidJson,
            ),
            (b"not json", ParseErrorKind::InvalidJson),
            (
                br#"{"log":"x\n","stream":"stdout"}"#,
                ParseErrorKind::MissingFields,
            ),
            (
                br#"{"log":"x\n","stream":"stdout","time":"noon"}"#,
                ParseErrorKind::BadTimestamp,
            ),
            (
                br#"{"log":"x\n","stream":"tty","time":"2024-01-01T00:00:00Z"}"#,
                ParseErrorKind::UnknownStream,
            ),
        ];
        for (line, reason) in cases {
            assert_eq!(
                parse(line).err(),
                Some(reason),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }
}
