//! Docker's `json-file` log format: `{"log":"...\n","stream":"stdout","time":"..."}` per line.
//!
//! Spec: <https://docs.docker.com/engine/logging/drivers/json-file/>. Docker escapes `<`, `>`, `&`,
//! U+2028 and U+2029 the way Go's `encoding/json` does, writes `time` with Go's `time.RFC3339Nano`,
//! and splits lines longer than 16 KiB (its log copier's buffer): every part but the last lacks
//! the trailing `\n` in `log`. Docker cuts at byte boundaries and so can mangle a multi-byte
//! character; this generator cuts at the nearest character boundary at or below 16 KiB instead, so
//! the joined parts are always the original line.

use crate::cri;
use chrono::{DateTime, Utc};
use logrelay_common::record::Stream;
use serde::Serialize;

/// Longest part of a line Docker writes in one entry (its log copier's buffer size).
pub const MAX_CHUNK_BYTES: usize = 16 * 1024;

#[derive(Serialize)]
struct Entry<'a> {
    log: &'a str,
    stream: &'a str,
    time: &'a str,
}

/// Appends the json-file entries for one logical line to `out`.
pub fn encode_line(out: &mut Vec<u8>, ts: &DateTime<Utc>, stream: Stream, message: &str) {
    let time = cri::format_time(ts);
    let mut rest = message;
    loop {
        let (part, more) = if rest.len() > MAX_CHUNK_BYTES {
            let mut cut = MAX_CHUNK_BYTES;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            (&rest[..cut], true)
        } else {
            (rest, false)
        };
        let log = if more {
            part.to_string()
        } else {
            format!("{part}\n")
        };
        let entry = Entry {
            log: &log,
            stream: stream.as_str(),
            time: &time,
        };
        // Serializing a struct of strings cannot fail; fall back to an empty object just in case.
        let json = serde_json::to_string(&entry).unwrap_or_else(|_| "{}".into());
        out.extend_from_slice(go_escape(&json).as_bytes());
        out.push(b'\n');
        if !more {
            break;
        }
        rest = &rest[part.len()..];
    }
}

/// Applies Go's extra HTML-safe escapes to JSON text (only string contents contain these characters).
fn go_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::Value;

    fn at() -> DateTime<Utc> {
        Utc.timestamp_opt(1_704_067_200, 500_000_000)
            .single()
            .expect("valid time")
    }

    fn entries(out: &[u8]) -> Vec<Value> {
        std::str::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect()
    }

    #[test]
    fn short_line_is_one_entry_ending_in_newline() {
        let mut out = Vec::new();
        encode_line(&mut out, &at(), Stream::Stdout, "a <b> & \"c\" é");
        assert_eq!(
            std::str::from_utf8(&out).expect("utf-8"),
            "{\"log\":\"a \\u003cb\\u003e \\u0026 \\\"c\\\" é\\n\",\"stream\":\"stdout\",\"time\":\"2024-01-01T00:00:00.5Z\"}\n"
        );
        assert_eq!(entries(&out)[0]["log"], "a <b> & \"c\" é\n");
    }

    #[test]
    fn long_line_splits_at_16_kib_and_only_the_last_part_has_a_newline() {
        let message = "x".repeat(MAX_CHUNK_BYTES - 1) + "é" + &"y".repeat(20_000);
        let mut out = Vec::new();
        encode_line(&mut out, &at(), Stream::Stderr, &message);
        let parts = entries(&out);
        assert_eq!(parts.len(), 3);
        let logs: Vec<&str> = parts
            .iter()
            .map(|p| p["log"].as_str().expect("log string"))
            .collect();
        assert_eq!(
            logs[0].len(),
            MAX_CHUNK_BYTES - 1,
            "cut before the two-byte character"
        );
        assert!(!logs[0].ends_with('\n') && !logs[1].ends_with('\n') && logs[2].ends_with('\n'));
        assert!(logs.iter().all(|l| l.len() <= MAX_CHUNK_BYTES + 1));
        assert_eq!(logs.concat(), format!("{message}\n"));
        assert!(parts.iter().all(|p| p["stream"] == "stderr"));
    }
}
