//! The sequence token every generated line carries: `lrseq=<source>#<n>`.
//!
//! `<source>` names one stream of lines (`namespace/pod/container/stream` for the pods tree,
//! `customer/pod` for NDJSON) and `<n>` counts that stream's lines from 0 with no gaps. The token
//! sits near the start of each message so a truncated huge line still carries it, and it uses only
//! characters that JSON never escapes, so it can be found in raw text and in JSON-encoded text alike.

use std::fmt;

/// The marker that starts a token.
pub const TOKEN_PREFIX: &str = "lrseq=";

/// Longest source id accepted when parsing (namespace 63 + pod 253 + container 63 + stream + slashes).
pub const MAX_SOURCE_LEN: usize = 400;

/// One parsed token: which stream a line belongs to and its number in that stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqToken<'a> {
    /// The source id, e.g. `tenant-1/api-5d8f9c7b6d-x2x9k/api/stdout`.
    pub source: &'a str,
    /// The line's number within the source, from 0.
    pub seq: u64,
}

impl fmt::Display for SeqToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TOKEN_PREFIX}{}#{}", self.source, self.seq)
    }
}

/// Whether `c` may appear in a source id (DNS-label characters plus `/`, `_`, `:`).
pub fn is_source_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/' | ':')
}

/// Whether `part` can be used as one component of a source id (non-empty, no `/`, only token characters).
pub fn is_valid_component(part: &str) -> bool {
    !part.is_empty() && part.len() <= 253 && part.chars().all(|c| is_source_char(c) && c != '/')
}

/// Builds a source id from its components, joined with `/`.
pub fn source_id(parts: &[&str]) -> String {
    parts.join("/")
}

/// Finds the first token in `text`, if any.
pub fn parse(text: &str) -> Option<SeqToken<'_>> {
    let mut rest = text;
    while let Some(pos) = rest.find(TOKEN_PREFIX) {
        let after = &rest[pos + TOKEN_PREFIX.len()..];
        if let Some(token) = parse_after_prefix(after) {
            return Some(token);
        }
        rest = after;
    }
    None
}

fn parse_after_prefix(after: &str) -> Option<SeqToken<'_>> {
    let source_len = after
        .find(|c: char| !is_source_char(c))
        .unwrap_or(after.len());
    if source_len == 0 || source_len > MAX_SOURCE_LEN || !after[source_len..].starts_with('#') {
        return None;
    }
    let digits = &after[source_len + 1..];
    let digits_len = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let seq = digits[..digits_len].parse().ok()?;
    Some(SeqToken {
        source: &after[..source_len],
        seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips_through_display_and_parse() {
        let token = SeqToken {
            source: "tenant-1/api-5d8f9c7b6d-x2x9k/api/stdout",
            seq: 42,
        };
        let text = format!("2024-01-01T00:00:00Z INFO [http] {token} request done");
        assert_eq!(parse(&text), Some(token));
    }

    #[test]
    fn token_is_found_inside_json_strings() {
        let text = r#"{"level":"info","seq":"lrseq=acme/pod-1#7","msg":"x"}"#;
        let token = parse(text).expect("token present");
        assert_eq!(token.source, "acme/pod-1");
        assert_eq!(token.seq, 7);
        // Once more after JSON encoding the whole line (as a record's message).
        let encoded = serde_json::to_string(text).expect("encodes");
        assert_eq!(parse(&encoded), Some(token));
    }

    #[test]
    fn malformed_tokens_are_skipped_for_a_later_valid_one() {
        assert_eq!(parse("no token here"), None);
        assert_eq!(parse("lrseq=abc"), None);
        assert_eq!(parse("lrseq=abc#"), None);
        assert_eq!(parse("lrseq=#5"), None);
        assert_eq!(parse("lrseq=a b#5"), None);
        let token = parse("lrseq=broken lrseq=ok/src#99x").expect("second token");
        assert_eq!((token.source, token.seq), ("ok/src", 99));
    }

    #[test]
    fn sequence_numbers_beyond_u64_are_rejected() {
        assert_eq!(parse("lrseq=a#99999999999999999999999"), None);
    }

    #[test]
    fn components_with_separators_or_spaces_are_invalid() {
        assert!(is_valid_component("tenant-1"));
        assert!(is_valid_component("cust_1:eu.west"));
        assert!(!is_valid_component(""));
        assert!(!is_valid_component("a/b"));
        assert!(!is_valid_component("a b"));
        assert!(!is_valid_component("a#b"));
        assert!(!is_valid_component("é"));
    }
}
