//! The PutLogEvents request body, written directly into one buffer: the same JSON document the
//! SDK's serializer produces (`{"logGroupName":…,"logStreamName":…,"logEvents":[{"timestamp":…,
//! "message":…},…]}`, strings escaped as `aws_smithy_json` escapes them), without the SDK's
//! per-event input structs, copies and byte-at-a-time escaping. The body is built once per request
//! and shared by its retries; the service swaps it into the SDK's request before signing, so SigV4
//! hashes exactly these bytes. Wire format: the `awsJson1_1` protocol,
//! <https://smithy.io/2.0/aws/protocols/aws-json-1_1-protocol.html>.

use super::batch::{EVENT_OVERHEAD_BYTES, LogEvent};
use bytes::Bytes;

/// How each byte is written inside a JSON string: `0` as is, `u` as `\u00XX`, anything else as a
/// backslash followed by that byte. RFC 8259 §7 requires escaping `"`, `\` and U+0000–U+001F; the
/// short forms are the ones `aws_smithy_json` writes.
static ESCAPES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0A] = b'n';
    table[0x0C] = b'f';
    table[0x0D] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `text` as a JSON string (quoted and escaped), copying runs that need no escape at once.
pub fn write_json_string(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut run_start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let escape = ESCAPES[usize::from(byte)];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[run_start..index]);
        if escape == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xF)],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
        run_start = index + 1;
    }
    out.extend_from_slice(&bytes[run_start..]);
    out.push(b'"');
}

/// The body of a PutLogEvents request of `events` (sorted, non-empty: the caller's duty) to
/// `group`/`stream`.
pub fn put_log_events_body(group: &str, stream: &str, events: &[LogEvent]) -> Bytes {
    // Escaping rarely grows a message much; the event framing is about the per-event overhead.
    let estimate = 64
        + group.len()
        + stream.len()
        + events
            .iter()
            .map(|event| event.message.len() + EVENT_OVERHEAD_BYTES + 16)
            .sum::<usize>();
    let mut out = Vec::with_capacity(estimate);
    out.extend_from_slice(b"{\"logGroupName\":");
    write_json_string(&mut out, group);
    out.extend_from_slice(b",\"logStreamName\":");
    write_json_string(&mut out, stream);
    out.extend_from_slice(b",\"logEvents\":[");
    let mut digits = itoa::Buffer::new();
    for (index, event) in events.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"timestamp\":");
        out.extend_from_slice(digits.format(event.timestamp_ms).as_bytes());
        out.extend_from_slice(b",\"message\":");
        write_json_string(&mut out, &event.message);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_json::serialize::JsonObjectWriter;
    use aws_smithy_types::Number;

    /// The body exactly as the SDK's generated serializer for `PutLogEventsInput` writes it
    /// (`protocol_serde::shape_put_log_events_input`), with the SDK's own JSON writer.
    fn sdk_body(group: &str, stream: &str, events: &[LogEvent]) -> String {
        let mut out = String::new();
        let mut object = JsonObjectWriter::new(&mut out);
        object.key("logGroupName").string(group);
        object.key("logStreamName").string(stream);
        let mut array = object.key("logEvents").start_array();
        for event in events {
            let mut item = array.value().start_object();
            item.key("timestamp")
                .number(Number::NegInt(event.timestamp_ms));
            item.key("message").string(&event.message);
            item.finish();
        }
        array.finish();
        object.finish();
        out
    }

    fn event(timestamp_ms: i64, message: &str) -> LogEvent {
        LogEvent {
            timestamp_ms,
            message: message.to_owned(),
        }
    }

    fn tricky_messages() -> Vec<String> {
        let mut messages: Vec<String> = [
            "plain",
            "",
            "quote \" backslash \\ slash / end",
            "{\"level\":\"info\",\"msg\":\"nested \\\"json\\\"\"}",
            "tab\tnewline\ncr\rbackspace\u{8}formfeed\u{c}",
            "nul \u{0} unit separator \u{1f} escape \u{1b}[31m del \u{7f}",
            "line separator \u{2028} paragraph \u{2029}",
            "é ü 日本語 🚀 \u{fffd} \u{10ffff}",
            "\\u0041 is not an escape in the text",
        ]
        .iter()
        .map(|m| (*m).to_owned())
        .collect();
        messages.push((0u8..0x80).map(char::from).collect());
        messages.push("ab\"\\\u{1}🚀".repeat(40_000)); // long, escapes throughout
        messages
    }

    #[test]
    fn the_body_is_byte_identical_to_the_sdk_serializer() {
        let events: Vec<LogEvent> = tricky_messages()
            .iter()
            .enumerate()
            .map(|(i, m)| event(1_700_000_000_000 + i as i64, m))
            .collect();
        for (group, stream) in [("/acme", "api/pod-1"), ("/g\"q", "s\\\u{1}€")] {
            let body = put_log_events_body(group, stream, &events);
            assert_eq!(
                std::str::from_utf8(&body).expect("UTF-8"),
                sdk_body(group, stream, &events)
            );
        }
    }

    #[test]
    fn negative_zero_and_extreme_timestamps_are_written_like_the_sdk() {
        let events = [event(0, "a"), event(-1, "b"), event(i64::MAX, "c")];
        let body = put_log_events_body("g", "s", &events);
        assert_eq!(
            std::str::from_utf8(&body).expect("UTF-8"),
            sdk_body("g", "s", &events)
        );
    }

    #[test]
    fn the_body_parses_back_to_the_same_events() {
        let messages = tricky_messages();
        let events: Vec<LogEvent> = messages.iter().map(|m| event(5, m)).collect();
        let body = put_log_events_body("g", "s", &events);
        let parsed: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
        let back: Vec<&str> = parsed["logEvents"]
            .as_array()
            .expect("array")
            .iter()
            .map(|e| e["message"].as_str().expect("string"))
            .collect();
        assert_eq!(back, messages);
    }
}
