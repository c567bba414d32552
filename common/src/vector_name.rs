//! File names of Vector-written objects: what Vector's `aws_s3` sink names an object below the key
//! prefix (`{filename_time_format}-{uuid}.{filename_extension}`), as the proof of concept's Vector
//! configuration set it up (`filename_time_format` `%Y%m%d-%H%M%S` or `%Y%m%d%H%M%S`,
//! `filename_append_uuid: true`, `filename_extension: json.gz`), plus the date-only names of its
//! documented manual test (`20240101-test.json.gz`).
//!
//! Only the file name differs from the layout of [`crate::key`]: the directory segments of such
//! keys are parsed as strictly as any other key (they route tenants), and the file name is kept
//! verbatim so that a key rebuilt from the parsed value is the key that was read.
//! Sink reference: <https://vector.dev/docs/reference/configuration/sinks/aws_s3/#filename_time_format>.

use crate::key::KeyError;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};

/// The file name suffix (Vector's `filename_extension: json.gz`).
const SUFFIX: &str = ".json.gz";
/// Length of the `%Y%m%d` date every accepted name starts with.
const DATE_LEN: usize = 8;
/// Length of a `%H%M%S` time.
const TIME_LEN: usize = 6;
/// The longest tail after the date and time (a hyphenated UUID is 36 bytes).
const MAX_TAIL_BYTES: usize = 64;

/// Whether `stem` (the file name without `.json.gz`) has the shape of a Vector-written name: eight
/// digits, then `-` or a digit. Names of the layout have `T` in that place.
pub(crate) fn looks_like_vector_name(stem: &str) -> bool {
    let bytes = stem.as_bytes();
    bytes.len() > DATE_LEN
        && bytes[..DATE_LEN].iter().all(u8::is_ascii_digit)
        && (bytes[DATE_LEN] == b'-' || bytes[DATE_LEN].is_ascii_digit())
}

/// Parses a Vector-written file name: `{YYYYMMDD}-{HHMMSS}-{id}`, `{YYYYMMDDHHMMSS}-{id}` or
/// `{YYYYMMDD}-{id}`, each followed by `.json.gz`; `{id}` is 1 to 64 bytes of `[a-z0-9-]` (a
/// lowercase UUID, or a name such as `test`). Returns the time the name gives (midnight when it has
/// only a date) and the id.
pub(crate) fn parse(filename: &str) -> Result<(DateTime<Utc>, String), KeyError> {
    let stem = filename.strip_suffix(SUFFIX).ok_or(KeyError::BadFilename {
        reason: "does not end with .json.gz",
    })?;
    if !looks_like_vector_name(stem) {
        return Err(KeyError::BadFilename {
            reason: "expected a Vector-written name {YYYYMMDD}[-{HHMMSS}]-{id}",
        });
    }
    let date =
        NaiveDate::parse_from_str(&stem[..DATE_LEN], "%Y%m%d").map_err(|_| KeyError::BadTime {
            reason: "no such date",
        })?;
    let rest = &stem[DATE_LEN..];
    let (seconds, tail) = split_time(rest);
    let tail = tail.strip_prefix('-').ok_or(KeyError::BadFilename {
        reason: "expected a Vector-written name {YYYYMMDD}[-{HHMMSS}]-{id}",
    })?;
    check_tail(tail)?;
    let created = date.and_time(chrono::NaiveTime::MIN) + chrono::Duration::seconds(seconds);
    Ok((Utc.from_utc_datetime(&created), tail.to_owned()))
}

/// Splits a leading `HHMMSS` or `-HHMMSS` that is a real time of day and is followed by `-`;
/// anything else is no time (seconds 0) and all of `rest` is the tail.
fn split_time(rest: &str) -> (i64, &str) {
    let candidate = rest.strip_prefix('-').unwrap_or(rest);
    let Some(time) = candidate.get(..TIME_LEN) else {
        return (0, rest);
    };
    let after = &candidate[TIME_LEN..];
    if !after.starts_with('-') || !time.bytes().all(|b| b.is_ascii_digit()) {
        return (0, rest);
    }
    match chrono::NaiveTime::parse_from_str(time, "%H%M%S") {
        Ok(t) => (
            i64::from(chrono::Timelike::num_seconds_from_midnight(&t)),
            after,
        ),
        Err(_) => (0, rest),
    }
}

/// Checks the id part: 1 to [`MAX_TAIL_BYTES`] bytes of `[a-z0-9-]`.
fn check_tail(tail: &str) -> Result<(), KeyError> {
    if tail.is_empty() {
        return Err(KeyError::BadId { reason: "empty" });
    }
    if tail.len() > MAX_TAIL_BYTES {
        return Err(KeyError::BadId {
            reason: "longer than 64 bytes",
        });
    }
    if !tail
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(KeyError::BadId {
            reason: "only a-z, 0-9 and '-' are allowed",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("test time")
            .with_timezone(&Utc)
    }

    #[test]
    fn the_three_vector_name_shapes_are_read() {
        assert_eq!(
            parse("20240101-test.json.gz"),
            Ok((at("2024-01-01T00:00:00Z"), "test".to_owned()))
        );
        assert_eq!(
            parse("20250720-155434-0b9d1c4e-6f2a-4c3e-9a7b-2f1e0d9c8b7a.json.gz"),
            Ok((
                at("2025-07-20T15:54:34Z"),
                "0b9d1c4e-6f2a-4c3e-9a7b-2f1e0d9c8b7a".to_owned()
            ))
        );
        assert_eq!(
            parse("20250719123456-0b9d1c4e-6f2a-4c3e-9a7b-2f1e0d9c8b7a.json.gz"),
            Ok((
                at("2025-07-19T12:34:56Z"),
                "0b9d1c4e-6f2a-4c3e-9a7b-2f1e0d9c8b7a".to_owned()
            ))
        );
    }

    #[test]
    fn a_six_digit_tail_without_an_id_is_the_id() {
        assert_eq!(
            parse("20250720-155434.json.gz"),
            Ok((at("2025-07-20T00:00:00Z"), "155434".to_owned()))
        );
    }

    #[test]
    fn bad_vector_names_give_typed_errors() {
        assert_eq!(
            parse("20241301-test.json.gz"),
            Err(KeyError::BadTime {
                reason: "no such date"
            })
        );
        assert!(matches!(
            parse("20240101-Test.json.gz"),
            Err(KeyError::BadId { .. })
        ));
        assert!(matches!(
            parse("20240101-.json.gz"),
            Err(KeyError::BadId { .. })
        ));
        assert!(matches!(
            parse("20240101-a.b.json.gz"),
            Err(KeyError::BadId { .. })
        ));
        assert!(matches!(
            parse(&format!("20240101-{}.json.gz", "a".repeat(65))),
            Err(KeyError::BadId { .. })
        ));
        assert!(matches!(
            parse("20240101-test.json"),
            Err(KeyError::BadFilename { .. })
        ));
        assert!(matches!(
            parse("2024010x-test.json.gz"),
            Err(KeyError::BadFilename { .. })
        ));
        assert!(matches!(
            parse("202401011-test.json.gz"),
            Err(KeyError::BadFilename { .. })
        ));
    }
}
