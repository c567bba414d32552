//! The verification report: per source and totals, as a text table or JSON, and the exit code.

use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// Exit code when everything expected arrived and nothing was misrouted.
pub const EXIT_OK: u8 = logrelay_common::exit::EXIT_OK;
/// Exit code when lines are missing, corrupted or misrouted (or duplicated, with
/// `--fail-on-duplicates`).
pub const EXIT_FAILED: u8 = logrelay_common::exit::EXIT_FAILURES;

/// An inclusive range of sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SeqRange {
    /// First number of the range.
    pub first: u64,
    /// Last number of the range (inclusive).
    pub last: u64,
}

/// The outcome for one ledger source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceReport {
    /// The source id.
    pub source: String,
    /// Its tenant.
    pub customer_id: String,
    /// Its application.
    pub application: String,
    /// Lines expected at this destination (0 when the source is not expected here).
    pub expected: u64,
    /// Distinct expected lines found.
    pub delivered: u64,
    /// Expected lines not found.
    pub missing: u64,
    /// The first missing ranges.
    pub missing_ranges: Vec<SeqRange>,
    /// Missing ranges not listed.
    pub missing_ranges_omitted: usize,
    /// Extra copies of lines already found.
    pub duplicated: u64,
    /// Lines with at least one delivered record that is not byte for byte the written line.
    pub corrupted: u64,
    /// Lines the ledger excuses (lost by rotation itself) that did not arrive; not missing.
    pub excused: u64,
    /// Most records any one line was delivered as.
    pub max_deliveries: u64,
    /// Lines found at another tenant's destination or under another tenant's partition.
    pub misrouted: u64,
    /// Lines of the right tenant that were not expected here (filtered-out applications).
    pub unexpected: u64,
    /// Lines numbered past the ledger's last sequence number (a ledger older than the data).
    pub beyond_ledger: u64,
}

/// Sums over all sources, plus what could not be attributed to a source. Readers of a `verify
/// --json` report (the demo) deserialize it; a field missing there reads as 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Totals {
    /// Sources expected.
    pub sources: u64,
    /// Lines expected.
    pub expected: u64,
    /// Distinct expected lines found.
    pub delivered: u64,
    /// Expected lines not found.
    pub missing: u64,
    /// Extra copies.
    pub duplicated: u64,
    /// Lines delivered corrupted at least once.
    pub corrupted: u64,
    /// Corrupted records (a line split in three pieces that name it counts up to three).
    pub corrupted_deliveries: u64,
    /// Excused lines that did not arrive.
    pub excused: u64,
    /// Most records any one line was delivered as.
    pub max_deliveries: u64,
    /// Lines of another tenant.
    pub misrouted: u64,
    /// Lines not expected here.
    pub unexpected: u64,
    /// Lines past the ledger.
    pub beyond_ledger: u64,
    /// Lines without a sequence token (e.g. partial chunks delivered separately, foreign lines).
    pub untokened: u64,
    /// Lines whose token names a source the ledger does not know.
    pub unknown_source: u64,
    /// Lines that were not valid records.
    pub bad_lines: u64,
    /// Objects read.
    pub objects_read: u64,
    /// Objects that could not be read or whose key did not parse.
    pub unreadable_objects: u64,
    /// Lines read.
    pub lines_read: u64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Whether the ledger was the generator's final one.
    pub ledger_complete: bool,
    /// Whether the ledger's lines carry seals (corruption is checked byte for byte).
    pub sealed: bool,
    /// The tenant expectations were restricted to, if any.
    pub tenant: Option<String>,
    /// The applications expectations were restricted to (empty: all).
    pub applications: Vec<String>,
    /// Expected sources and sources with stray lines, sorted by id.
    pub sources: Vec<SourceReport>,
    /// Sums.
    pub totals: Totals,
}

impl Report {
    /// True when nothing is missing, corrupted or misrouted (nor duplicated, if
    /// `fail_on_duplicates`).
    pub fn passed(&self, fail_on_duplicates: bool) -> bool {
        self.totals.missing == 0
            && self.totals.corrupted == 0
            && self.totals.misrouted == 0
            && !(fail_on_duplicates && self.totals.duplicated > 0)
    }

    /// [`EXIT_OK`] or [`EXIT_FAILED`].
    pub fn exit_code(&self, fail_on_duplicates: bool) -> u8 {
        if self.passed(fail_on_duplicates) {
            EXIT_OK
        } else {
            EXIT_FAILED
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report as a text table, missing ranges under their source, totals last.
    pub fn to_table(&self) -> String {
        let width = self
            .sources
            .iter()
            .map(|s| s.source.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let mut out = String::new();
        let row = |out: &mut String, cells: [&str; 10]| {
            let _ = writeln!(
                out,
                "{:<width$}  {:<12} {:<12} {:>9} {:>9} {:>8} {:>6} {:>8} {:>9} {:>10}",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                cells[4],
                cells[5],
                cells[6],
                cells[7],
                cells[8],
                cells[9]
            );
        };
        row(
            &mut out,
            [
                "SOURCE",
                "TENANT",
                "APP",
                "EXPECTED",
                "DELIVERED",
                "MISSING",
                "DUP",
                "CORRUPT",
                "MISROUTED",
                "UNEXPECTED",
            ],
        );
        for s in &self.sources {
            row(
                &mut out,
                [
                    &s.source,
                    &s.customer_id,
                    &s.application,
                    &s.expected.to_string(),
                    &s.delivered.to_string(),
                    &s.missing.to_string(),
                    &s.duplicated.to_string(),
                    &s.corrupted.to_string(),
                    &s.misrouted.to_string(),
                    &s.unexpected.to_string(),
                ],
            );
            if !s.missing_ranges.is_empty() {
                let ranges: Vec<String> = s
                    .missing_ranges
                    .iter()
                    .map(|r| {
                        if r.first == r.last {
                            r.first.to_string()
                        } else {
                            format!("{}-{}", r.first, r.last)
                        }
                    })
                    .collect();
                let more = match s.missing_ranges_omitted {
                    0 => String::new(),
                    n => format!(" (+{n} more ranges)"),
                };
                let _ = writeln!(out, "  missing: {}{more}", ranges.join(", "));
            }
        }
        let t = &self.totals;
        row(
            &mut out,
            [
                "TOTAL",
                &format!("{} sources", t.sources),
                "",
                &t.expected.to_string(),
                &t.delivered.to_string(),
                &t.missing.to_string(),
                &t.duplicated.to_string(),
                &t.corrupted.to_string(),
                &t.misrouted.to_string(),
                &t.unexpected.to_string(),
            ],
        );
        let _ = writeln!(
            out,
            "max_deliveries={} corrupted_records={} excused={}{}",
            t.max_deliveries,
            t.corrupted_deliveries,
            t.excused,
            if self.sealed {
                ""
            } else {
                " (lines unsealed: corruption checked by stream only)"
            }
        );
        let _ = writeln!(
            out,
            "objects={} unreadable_objects={} lines={} bad_lines={} untokened={} unknown_source={} beyond_ledger={}{}",
            t.objects_read,
            t.unreadable_objects,
            t.lines_read,
            t.bad_lines,
            t.untokened,
            t.unknown_source,
            t.beyond_ledger,
            if self.ledger_complete {
                ""
            } else {
                " (ledger is a periodic snapshot)"
            }
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(missing: u64, duplicated: u64, misrouted: u64) -> Report {
        Report {
            ledger_complete: true,
            sealed: false,
            tenant: None,
            applications: vec![],
            sources: vec![SourceReport {
                source: "ns/pod/c/stdout".into(),
                customer_id: "acme".into(),
                application: "api".into(),
                expected: 10,
                delivered: 10 - missing,
                missing,
                missing_ranges: if missing > 0 {
                    vec![SeqRange {
                        first: 3,
                        last: 2 + missing,
                    }]
                } else {
                    vec![]
                },
                missing_ranges_omitted: 0,
                duplicated,
                corrupted: 0,
                excused: 0,
                max_deliveries: 1,
                misrouted,
                unexpected: 0,
                beyond_ledger: 0,
            }],
            totals: Totals {
                sources: 1,
                expected: 10,
                delivered: 10 - missing,
                missing,
                duplicated,
                misrouted,
                ..Totals::default()
            },
        }
    }

    #[test]
    fn exit_code_fails_on_missing_or_misrouted_and_optionally_duplicates() {
        assert_eq!(report(0, 0, 0).exit_code(false), EXIT_OK);
        assert_eq!(report(1, 0, 0).exit_code(false), EXIT_FAILED);
        assert_eq!(report(0, 0, 1).exit_code(false), EXIT_FAILED);
        assert_eq!(report(0, 2, 0).exit_code(false), EXIT_OK);
        assert_eq!(report(0, 2, 0).exit_code(true), EXIT_FAILED);
    }

    #[test]
    fn table_lists_sources_missing_ranges_and_totals() {
        let table = report(3, 0, 0).to_table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("SOURCE"));
        assert!(lines[1].starts_with("ns/pod/c/stdout  acme"), "{table}");
        assert_eq!(lines[2], "  missing: 3-5");
        assert!(lines[3].starts_with("TOTAL"));
        assert!(lines[4].starts_with("max_deliveries=0"));
        assert!(lines[5].starts_with("objects=0"));
    }

    #[test]
    fn json_has_totals_and_sources() {
        let value: serde_json::Value =
            serde_json::from_str(&report(1, 0, 0).to_json()).expect("json");
        assert_eq!(value["totals"]["missing"], 1);
        assert_eq!(value["sources"][0]["missing_ranges"][0]["first"], 3);
    }
}
