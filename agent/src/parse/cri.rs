//! The CRI container log format written by containerd and CRI-O:
//! `<RFC3339Nano time> <stdout|stderr> <tags> <message>`, one line per chunk.
//!
//! Spec: the kubelet CRI logging proposal,
//! <https://github.com/kubernetes/design-proposals-archive/blob/main/node/kubelet-cri-logging.md>,
//! and the tags in cri-api, <https://github.com/kubernetes/cri-api/blob/master/pkg/apis/runtime/v1/constants.go>
//! (`LogTagPartial` = `P`, `LogTagFull` = `F`, tags joined by `:`). Runtimes split lines longer than
//! their chunk size (16 KiB in containerd) into `P` chunks followed by an `F` chunk, at byte
//! boundaries. Hand-written (no regex): this runs for every line on the node.

use super::timestamp::parse_rfc3339;
use super::{ParseErrorKind, Parsed};
use logrelay_common::record::Stream;
use std::borrow::Cow;

/// Parses one CRI line (without its newline).
pub fn parse(line: &[u8]) -> Result<Parsed<'_>, ParseErrorKind> {
    let (time, rest) = split_field(line).ok_or(ParseErrorKind::MissingFields)?;
    let (stream, rest) = split_field(rest).ok_or(ParseErrorKind::MissingFields)?;
    // The message may be empty; a line ending right after the tags is read as an empty message.
    let (tags, message) = match memchr::memchr(b' ', rest) {
        Some(space) => (&rest[..space], &rest[space + 1..]),
        None => (rest, &rest[rest.len()..]),
    };
    if time.is_empty() || stream.is_empty() || tags.is_empty() {
        return Err(ParseErrorKind::MissingFields);
    }
    let timestamp = parse_rfc3339(time).ok_or(ParseErrorKind::BadTimestamp)?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return Err(ParseErrorKind::UnknownStream),
    };
    // The first tag says whether the line is complete; later tags are reserved for the future.
    let partial = match tags.split(|byte| *byte == b':').next() {
        Some(b"P") => true,
        Some(b"F") => false,
        _ => return Err(ParseErrorKind::UnknownTag),
    };
    Ok(Parsed {
        timestamp,
        stream,
        partial,
        message: Cow::Borrowed(message),
    })
}

/// Splits off the field before the next space; `None` when there is no space.
fn split_field(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = memchr::memchr(b' ', bytes)?;
    Some((&bytes[..space], &bytes[space + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use logrelay_common::record::format_timestamp;

    fn ok(line: &str) -> Parsed<'_> {
        parse(line.as_bytes()).expect("valid CRI line")
    }

    #[test]
    fn full_line_is_parsed_and_message_kept_byte_for_byte() {
        let parsed = ok("2024-01-01T00:00:00.123456789Z stdout F  héllo  {\"k\": 1}\t");
        assert_eq!(
            format_timestamp(&parsed.timestamp),
            "2024-01-01T00:00:00.123456789Z"
        );
        assert_eq!(parsed.stream, Stream::Stdout);
        assert!(!parsed.partial);
        assert_eq!(&*parsed.message, " héllo  {\"k\": 1}\t".as_bytes());
    }

    #[test]
    fn partial_tag_and_stderr_are_recognised() {
        let parsed = ok("2024-01-01T00:00:00Z stderr P chunk");
        assert!(parsed.partial);
        assert_eq!(parsed.stream, Stream::Stderr);
        assert_eq!(&*parsed.message, b"chunk");
    }

    #[test]
    fn offsets_and_fraction_widths_are_accepted() {
        assert_eq!(
            format_timestamp(&ok("2024-01-01T01:00:00.5+01:00 stdout F x").timestamp),
            "2024-01-01T00:00:00.500000000Z"
        );
        assert_eq!(
            format_timestamp(&ok("2024-01-01T00:00:00.000001Z stdout F x").timestamp),
            "2024-01-01T00:00:00.000001000Z"
        );
    }

    #[test]
    fn extra_tags_after_the_first_are_ignored() {
        let parsed = ok("2024-01-01T00:00:00Z stdout P:future:tags msg");
        assert!(parsed.partial);
        assert_eq!(&*parsed.message, b"msg");
    }

    #[test]
    fn empty_message_with_or_without_separator_is_empty() {
        assert_eq!(&*ok("2024-01-01T00:00:00Z stdout F ").message, b"");
        assert_eq!(&*ok("2024-01-01T00:00:00Z stdout F").message, b"");
    }

    #[test]
    fn bad_lines_report_the_reason() {
        let cases: [(&str, ParseErrorKind); 8] = [
            ("", ParseErrorKind::MissingFields),
            ("just text", ParseErrorKind::MissingFields),
            ("2024-01-01T00:00:00Z stdout", ParseErrorKind::MissingFields),
            (" stdout F x", ParseErrorKind::MissingFields),
            ("yesterday stdout F x", ParseErrorKind::BadTimestamp),
            (
                "2024-01-01T00:00:00 stdout F x",
                ParseErrorKind::BadTimestamp,
            ),
            (
                "2024-01-01T00:00:00Z stdin F x",
                ParseErrorKind::UnknownStream,
            ),
            (
                "2024-01-01T00:00:00Z stdout X x",
                ParseErrorKind::UnknownTag,
            ),
        ];
        for (line, reason) in cases {
            assert_eq!(parse(line.as_bytes()).err(), Some(reason), "{line:?}");
        }
    }

    #[test]
    fn binary_garbage_is_rejected_without_panicking() {
        let garbage: Vec<u8> = (0..=255u8)
            .cycle()
            .take(4096)
            .filter(|b| *b != b'\n')
            .collect();
        assert!(parse(&garbage).is_err());
        assert!(parse(b"\xff\xfe \xff \xff \xff").is_err());
    }
}
