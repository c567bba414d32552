//! The one syntax of sizes and durations in flags and environment variables, for every binary:
//! `10MiB`, `10MB`, `65536`, `2k`; `300s`, `1.5s`, `5m`, `500ms`, `1h` (bare numbers are bytes and
//! seconds).
//! Sizes follow IEC 80000-13: `KiB`/`MiB`/`GiB` are powers of 1024, `KB`/`MB`/`GB` powers of 1000;
//! a bare `K`/`M`/`G` is 1024-based, as in Kubernetes' and Docker's shorthand.

use std::time::Duration;

/// Splits `value` into its leading whole number and the unit after it.
fn number_and_unit(value: &str) -> Option<(u64, &str)> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    Some((number.parse().ok()?, unit))
}

/// Parses a byte size: a number with an optional unit, case-insensitive: `KiB`, `MiB`, `GiB` (and
/// the shorthand `K`, `M`, `G`) are powers of 1024; `KB`, `MB`, `GB` powers of 1000; `B` or none
/// = bytes.
pub fn parse_bytes(value: &str) -> Result<u64, String> {
    let value = value.trim();
    let (number, unit) = number_and_unit(value)
        .ok_or_else(|| format!("{value:?} is not a size like 10MiB or 65536"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use B, KiB, MiB, GiB, or KB, MB, GB for powers of 1000)"
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{value:?} is too large"))
}

/// Parses a duration: a number, fractions allowed, with an optional unit `ms`, `s`, `m` or `h`
/// (bare = seconds): `300`, `1.5s`, `5m`, `500ms`, `2h`.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{value:?} is not a duration like 300s, 5m, 1.5s or 500ms"))?;
    let seconds_per_unit = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(number * seconds_per_unit)
        .map_err(|_| format!("{value:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_and_decimal_units_and_bare_bytes() {
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("10MiB"), Ok(10 << 20));
        assert_eq!(parse_bytes("2k"), Ok(2048));
        assert_eq!(parse_bytes("1 GiB"), Ok(1 << 30));
        assert_eq!(
            parse_bytes("10MB"),
            Ok(10_000_000),
            "MB is 10^6, never read as MiB"
        );
        assert_eq!(parse_bytes("2kb"), Ok(2_000));
        assert_eq!(parse_bytes("1GB"), Ok(1_000_000_000));
        assert!(parse_bytes("10 parsecs").is_err());
        assert!(parse_bytes("MiB").is_err());
        assert!(parse_bytes("99999999999999999999G").is_err());
    }

    #[test]
    fn durations_take_ms_s_m_h_and_bare_seconds() {
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("1.2.3s").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
