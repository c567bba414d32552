//! The integrity seal a generated line can carry: `lrsum=<16 hex digits>`, an FNV-1a 64 hash of
//! the whole line with the seal's digits read as zeros.
//!
//! The seal sits right after the line's sequence token, so any piece of a split line that still
//! names its line also carries the seal, and the seal then fails: a delivered text that is not
//! byte for byte the written line (cut, joined with other bytes, a character replaced by U+FFFD)
//! is detected without storing the lines anywhere.

use crate::seq::SeqToken;

/// The marker that starts a seal.
pub const SEAL_PREFIX: &str = "lrsum=";

/// Hex digits of a seal.
const SEAL_DIGITS: usize = 16;

/// FNV-1a 64 offset basis and prime (<http://www.isthe.com/chongo/tech/comp/fnv/>).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// What [`check`] found in a delivered text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealCheck {
    /// The text is exactly the sealed line.
    Intact,
    /// A seal is present but the text is not the line it sealed.
    Broken,
    /// The text carries no seal.
    Absent,
}

/// The text to place right after `token` in a line that will be sealed: ` lrsum=000…0`.
pub fn placeholder() -> String {
    format!(" {SEAL_PREFIX}{}", "0".repeat(SEAL_DIGITS))
}

/// Inserts a placeholder right after the first occurrence of `token` in `line` and seals it;
/// a line without the token is left unsealed.
pub fn insert_after_token(line: &str, token: &SeqToken<'_>) -> String {
    let token_text = token.to_string();
    let Some(pos) = line.find(&token_text) else {
        return line.to_string();
    };
    let at = pos + token_text.len();
    let mut bytes = Vec::with_capacity(line.len() + SEAL_DIGITS + SEAL_PREFIX.len() + 1);
    bytes.extend_from_slice(&line.as_bytes()[..at]);
    bytes.extend_from_slice(placeholder().as_bytes());
    bytes.extend_from_slice(&line.as_bytes()[at..]);
    fill(&mut bytes);
    // Only ASCII was inserted at a character boundary: still UTF-8.
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Writes the seal of `line` into its first placeholder (which must be all zeros).
pub fn fill(line: &mut [u8]) {
    let Some(start) = digits_at(line) else {
        return;
    };
    let hash = hash_with_zero_digits(line, start);
    let digits = format!("{hash:016x}");
    line[start..start + SEAL_DIGITS].copy_from_slice(digits.as_bytes());
}

/// Checks the first seal in `text` against the whole text.
pub fn check(text: &[u8]) -> SealCheck {
    let Some(start) = digits_at(text) else {
        return SealCheck::Absent;
    };
    let written = std::str::from_utf8(&text[start..start + SEAL_DIGITS])
        .ok()
        .and_then(|d| u64::from_str_radix(d, 16).ok());
    match written {
        Some(w) if w == hash_with_zero_digits(text, start) => SealCheck::Intact,
        _ => SealCheck::Broken,
    }
}

/// Offset of the digits of the first complete seal in `text`.
fn digits_at(text: &[u8]) -> Option<usize> {
    let prefix = SEAL_PREFIX.as_bytes();
    let pos = text.windows(prefix.len()).position(|w| w == prefix)?;
    let start = pos + prefix.len();
    let digits = text.get(start..start + SEAL_DIGITS)?;
    digits
        .iter()
        .all(|b| b.is_ascii_hexdigit())
        .then_some(start)
}

fn hash_with_zero_digits(text: &[u8], start: usize) -> u64 {
    let mut hash = FNV_OFFSET;
    for (i, byte) in text.iter().enumerate() {
        let b = if (start..start + SEAL_DIGITS).contains(&i) {
            b'0'
        } else {
            *byte
        };
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> SeqToken<'static> {
        SeqToken {
            source: "ns/pod/c/stdout",
            seq: 7,
        }
    }

    #[test]
    fn sealed_line_checks_intact_and_keeps_its_token() {
        let line = insert_after_token("INFO lrseq=ns/pod/c/stdout#7 hello wörld", &token());
        assert!(
            line.starts_with("INFO lrseq=ns/pod/c/stdout#7 lrsum="),
            "{line}"
        );
        assert_eq!(crate::seq::parse(&line), Some(token()));
        assert_eq!(check(line.as_bytes()), SealCheck::Intact);
    }

    #[test]
    fn any_change_breaks_the_seal() {
        let line = insert_after_token("x lrseq=ns/pod/c/stdout#7 日本語のログ", &token());
        let cut = &line.as_bytes()[..line.len() - 2];
        assert_eq!(check(cut), SealCheck::Broken);
        let lossy = String::from_utf8_lossy(cut).into_owned();
        assert_eq!(check(lossy.as_bytes()), SealCheck::Broken);
        let mut joined = line.clone().into_bytes();
        joined.extend_from_slice(b"more");
        assert_eq!(check(&joined), SealCheck::Broken);
    }

    #[test]
    fn text_without_seal_or_token_is_absent() {
        assert_eq!(check(b"plain"), SealCheck::Absent);
        assert_eq!(check(b"lrsum=12"), SealCheck::Absent);
        assert_eq!(insert_after_token("no token", &token()), "no token");
    }
}
