//! RFC 3339 timestamps as container runtimes write them (Go's `time.RFC3339Nano`): a hand-written
//! parser for `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±hh:mm)` with a fraction of any width.
//!
//! Spec: <https://www.rfc-editor.org/rfc/rfc3339#section-5.6>. Go trims trailing zeros of the
//! fraction, so its width varies from line to line; digits past nanoseconds are ignored.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

/// Parses an RFC 3339 timestamp into UTC; `None` when it is not one.
pub fn parse_rfc3339(text: &[u8]) -> Option<DateTime<Utc>> {
    // Fixed part: "YYYY-MM-DDTHH:MM:SS" is 19 bytes.
    if text.len() < 20 {
        return None;
    }
    let year = digits(&text[0..4])?;
    let month = digits(&text[5..7])?;
    let day = digits(&text[8..10])?;
    let hour = digits(&text[11..13])?;
    let minute = digits(&text[14..16])?;
    let second = digits(&text[17..19])?;
    if text[4] != b'-'
        || text[7] != b'-'
        || !matches!(text[10], b'T' | b't')
        || text[13] != b':'
        || text[16] != b':'
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos: u32 = 0;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let width = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if width == 0 {
            return None;
        }
        for (i, digit) in fraction[..width].iter().take(9).enumerate() {
            nanos += u32::from(digit - b'0') * 10u32.pow(8 - i as u32);
        }
        rest = &fraction[width..];
    }
    let offset_seconds: i64 = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let magnitude = i64::from(hours * 3600 + minutes * 60);
            if *sign == b'-' { -magnitude } else { magnitude }
        }
        _ => return None,
    };
    // RFC 3339 allows a leap second (:60); chrono represents it as :59 with nanos >= 1e9.
    let (second, nanos) = if second == 60 {
        (59, nanos + 1_000_000_000)
    } else {
        (second, nanos)
    };
    let local = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?
        .and_hms_nano_opt(hour, minute, second, nanos)?;
    let utc = local.checked_sub_signed(TimeDelta::seconds(offset_seconds))?;
    Some(utc.and_utc())
}

/// The value of a run of ASCII digits; `None` if any byte is not a digit.
fn digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |value, byte| {
        byte.is_ascii_digit()
            .then(|| value * 10 + u32::from(byte - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use logrelay_common::record::format_timestamp;

    fn parsed(text: &str) -> String {
        format_timestamp(&parse_rfc3339(text.as_bytes()).expect("valid timestamp"))
    }

    #[test]
    fn fraction_of_any_width_is_read_as_nanoseconds() {
        assert_eq!(
            parsed("2024-01-01T00:00:00Z"),
            "2024-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            parsed("2024-01-01T00:00:00.5Z"),
            "2024-01-01T00:00:00.500000000Z"
        );
        assert_eq!(
            parsed("2024-01-01T00:00:00.000005Z"),
            "2024-01-01T00:00:00.000005000Z"
        );
        assert_eq!(
            parsed("2024-01-01T00:00:00.123456789Z"),
            "2024-01-01T00:00:00.123456789Z"
        );
        assert_eq!(
            parsed("2024-01-01T00:00:00.1234567891234Z"),
            "2024-01-01T00:00:00.123456789Z"
        );
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        assert_eq!(
            parsed("2024-01-01T02:30:00.25+02:30"),
            "2024-01-01T00:00:00.250000000Z"
        );
        assert_eq!(
            parsed("2023-12-31T19:00:00-05:00"),
            "2024-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            parsed("2024-01-01t00:00:00z"),
            "2024-01-01T00:00:00.000000000Z"
        );
    }

    #[test]
    fn leap_second_is_accepted() {
        let ts = parse_rfc3339(b"2016-12-31T23:59:60.5Z").expect("leap second");
        assert_eq!(
            ts.timestamp(),
            parse_rfc3339(b"2016-12-31T23:59:59Z")
                .expect("valid")
                .timestamp()
        );
    }

    #[test]
    fn malformed_timestamps_are_rejected() {
        for bad in [
            "",
            "2024-01-01",
            "2024-01-01T00:00:00",
            "2024-01-01 00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+0200",
            "2024-01-01T00:00:00+02:00x",
            "2024-01-01T00:00:00.12a4Z",
            "20x4-01-01T00:00:00Z",
            "2024-01-01T00:00:00+25:00",
        ] {
            assert_eq!(
                parse_rfc3339(bad.as_bytes()),
                None,
                "{bad:?} must be rejected"
            );
        }
    }
}
