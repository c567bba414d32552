//! The CRI container log format, as containerd and CRI-O write it:
//! `<RFC3339Nano time> <stdout|stderr> <P|F> <content>\n`.
//!
//! Spec: <https://github.com/kubernetes/design-proposals-archive/blob/main/node/kubelet-cri-logging.md>.
//! containerd formats the time with Go's `time.RFC3339Nano` (trailing zeros of the fraction trimmed,
//! so the width varies) and splits lines longer than its `max_container_log_line_size` (16 KiB by
//! default) into `P` (partial) chunks followed by a final `F` chunk, at byte boundaries — a chunk may
//! end inside a multi-byte UTF-8 character; only the joined line is valid text.

use chrono::{DateTime, Utc};
use logrelay_common::record::Stream;

/// Longest chunk containerd writes before splitting (its default `max_container_log_line_size`).
pub const MAX_CHUNK_BYTES: usize = 16 * 1024;

/// Formats `ts` like Go's `time.RFC3339Nano` in UTC: `2024-01-01T00:00:00.1234Z`, no fraction when zero.
pub fn format_time(ts: &DateTime<Utc>) -> String {
    let mut out = ts.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = ts.timestamp_subsec_nanos().min(999_999_999);
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Appends the CRI lines for one logical line to `out`: `P` chunks of [`MAX_CHUNK_BYTES`], then `F`.
pub fn encode_line(out: &mut Vec<u8>, ts: &DateTime<Utc>, stream: Stream, message: &[u8]) {
    let time = format_time(ts);
    let mut chunks = message.chunks(MAX_CHUNK_BYTES).peekable();
    if chunks.peek().is_none() {
        push_chunk(out, &time, stream, 'F', b"");
    }
    while let Some(chunk) = chunks.next() {
        let tag = if chunks.peek().is_some() { 'P' } else { 'F' };
        push_chunk(out, &time, stream, tag, chunk);
    }
}

/// Appends one CRI entry (with its newline) stamped `ts`: tag `F` when `is_final`, else `P`.
pub fn push_entry(
    out: &mut Vec<u8>,
    ts: &DateTime<Utc>,
    stream: Stream,
    is_final: bool,
    chunk: &[u8],
) {
    let tag = if is_final { 'F' } else { 'P' };
    push_chunk(out, &format_time(ts), stream, tag, chunk);
}

fn push_chunk(out: &mut Vec<u8>, time: &str, stream: Stream, tag: char, chunk: &[u8]) {
    out.extend_from_slice(time.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.push(b' ');
    out.push(tag as u8);
    out.push(b' ');
    out.extend_from_slice(chunk);
    out.push(b'\n');
}

/// One parsed CRI line (without its newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriLine<'a> {
    /// The time field as written.
    pub time: &'a str,
    /// `stdout` or `stderr`.
    pub stream: &'a str,
    /// Whether this chunk ends the logical line (`F`) rather than continuing it (`P`).
    pub is_final: bool,
    /// The chunk's bytes.
    pub content: &'a [u8],
}

/// Parses one CRI line (without the trailing newline); `None` when it is not in CRI format.
pub fn parse_line(line: &[u8]) -> Option<CriLine<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let stream = std::str::from_utf8(parts.next()?).ok()?;
    let is_final = match parts.next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    Some(CriLine {
        time,
        stream,
        is_final,
        content: parts.next().unwrap_or(b""),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(nanos: u32) -> DateTime<Utc> {
        Utc.timestamp_opt(1_704_067_200, nanos)
            .single()
            .expect("valid time")
    }

    #[test]
    fn time_trims_trailing_zeros_like_go_rfc3339nano() {
        assert_eq!(
            format_time(&at(123_456_789)),
            "2024-01-01T00:00:00.123456789Z"
        );
        assert_eq!(format_time(&at(120_000_000)), "2024-01-01T00:00:00.12Z");
        assert_eq!(format_time(&at(5_000)), "2024-01-01T00:00:00.000005Z");
        assert_eq!(format_time(&at(0)), "2024-01-01T00:00:00Z");
    }

    #[test]
    fn short_line_is_one_final_chunk() {
        let mut out = Vec::new();
        encode_line(
            &mut out,
            &at(5_000_000),
            Stream::Stderr,
            "héllo wörld".as_bytes(),
        );
        assert_eq!(
            out,
            "2024-01-01T00:00:00.005Z stderr F héllo wörld\n".as_bytes()
        );
    }

    #[test]
    fn long_line_splits_into_16_kib_partials_and_a_final_chunk() {
        let message = "ab日".repeat(8_000); // 40,000 bytes, multi-byte characters straddle chunk edges
        let mut out = Vec::new();
        encode_line(&mut out, &at(1), Stream::Stdout, message.as_bytes());
        let lines: Vec<&[u8]> = out
            .strip_suffix(b"\n")
            .expect("ends in newline")
            .split(|b| *b == b'\n')
            .collect();
        let parsed: Vec<CriLine> = lines
            .iter()
            .map(|l| parse_line(l).expect("CRI line"))
            .collect();
        assert_eq!(
            parsed.iter().map(|p| p.is_final).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert_eq!(parsed[0].content.len(), MAX_CHUNK_BYTES);
        assert_eq!(parsed[1].content.len(), MAX_CHUNK_BYTES);
        assert_eq!(parsed[2].content.len(), 40_000 - 2 * MAX_CHUNK_BYTES);
        assert!(
            std::str::from_utf8(parsed[0].content).is_err(),
            "split at a byte boundary"
        );
        let joined: Vec<u8> = parsed
            .iter()
            .flat_map(|p| p.content.iter().copied())
            .collect();
        assert_eq!(joined, message.as_bytes());
        assert!(
            parsed
                .iter()
                .all(|p| p.time == "2024-01-01T00:00:00.000000001Z" && p.stream == "stdout")
        );
    }

    #[test]
    fn line_of_exactly_16_kib_is_a_single_final_chunk() {
        let mut out = Vec::new();
        encode_line(&mut out, &at(0), Stream::Stdout, &[b'x'; MAX_CHUNK_BYTES]);
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
        assert!(parse_line(&out[..out.len() - 1]).expect("CRI").is_final);
    }

    #[test]
    fn empty_line_keeps_the_separator_space() {
        let mut out = Vec::new();
        encode_line(&mut out, &at(0), Stream::Stdout, b"");
        assert_eq!(out, b"2024-01-01T00:00:00Z stdout F \n");
        let parsed = parse_line(&out[..out.len() - 1]).expect("CRI");
        assert_eq!(parsed.content, b"");
    }

    #[test]
    fn non_cri_text_is_rejected() {
        assert_eq!(parse_line(b"{\"log\":\"x\"}"), None);
        assert_eq!(parse_line(b"2024-01-01T00:00:00Z stdout X msg"), None);
    }
}
