//! Matching delivered lines against the ledger: per source, which sequence numbers arrived, how
//! often, which arrived corrupted (not byte for byte the written line, or on the wrong stream), and
//! which lines arrived where they must not (another tenant's destination or partition).

use super::report::{Report, SeqRange, SourceReport, Totals};
use crate::ledger::{Ledger, SourceEntry};
use crate::seal::{self, SealCheck};
use crate::seq;
use logrelay_common::record::Stream;
use std::collections::{HashMap, HashSet};

/// Most lines tracked for one source (a bitset of this many bits is 12.5 MB).
pub const MAX_TRACKED_LINES_PER_SOURCE: u64 = 100_000_000;

/// Which ledger sources are expected at the destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectations {
    /// Only this tenant's sources are expected; any other tenant's line found is misrouted.
    pub tenant: Option<String>,
    /// Only these applications are expected (empty: all); others of the tenant are unexpected.
    pub applications: Vec<String>,
}

impl Expectations {
    fn expects(&self, entry: &SourceEntry) -> bool {
        self.tenant
            .as_ref()
            .is_none_or(|t| *t == entry.meta.customer_id)
            && (self.applications.is_empty() || self.applications.contains(&entry.meta.application))
    }
}

/// One delivered line and where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered<'a> {
    /// The line's text (a record's `message`, or a CloudWatch event's text).
    pub text: &'a str,
    /// The customer id of the key partition the line was stored under, if any.
    pub partition_customer: Option<&'a str>,
    /// The customer id the record itself carries, if any.
    pub record_customer: Option<&'a str>,
    /// The stream the record says the line was written to, if it says.
    pub stream: Option<Stream>,
}

/// The ledger sources were too large to track.
#[derive(Debug, thiserror::Error)]
#[error(
    "ledger source {source_id} has {lines} lines, more than the {MAX_TRACKED_LINES_PER_SOURCE} tracked"
)]
pub struct TooManyLines {
    /// The source.
    pub source_id: String,
    /// Its line count.
    pub lines: u64,
}

#[derive(Debug, Default)]
struct Row {
    seen: Vec<u64>,
    corrupt: Vec<u64>,
    /// Deliveries beyond the first, per line delivered more than once.
    extra: HashMap<u64, u32>,
    excused: Vec<(u64, u64)>,
    delivered: u64,
    duplicated: u64,
    misrouted: u64,
    unexpected: u64,
    beyond_ledger: u64,
}

/// Counts delivered lines per ledger source.
#[derive(Debug)]
pub struct Tally<'l> {
    ledger: &'l Ledger,
    expectations: Expectations,
    index: HashMap<&'l str, usize>,
    expected: Vec<bool>,
    rows: Vec<Row>,
    other: Totals,
    duplicated: u64,
    duplicated_bytes: u64,
    corrupted_deliveries: u64,
}

impl<'l> Tally<'l> {
    /// Starts counting against `ledger` under `expectations`.
    pub fn new(ledger: &'l Ledger, expectations: Expectations) -> Result<Self, TooManyLines> {
        let mut rows = Vec::with_capacity(ledger.sources.len());
        let mut expected = Vec::with_capacity(ledger.sources.len());
        for entry in &ledger.sources {
            let wanted = expectations.expects(entry);
            let mut row = Row::default();
            if wanted {
                if entry.lines() > MAX_TRACKED_LINES_PER_SOURCE || entry.first_seq > entry.last_seq
                {
                    return Err(TooManyLines {
                        source_id: entry.meta.source.clone(),
                        lines: entry.lines(),
                    });
                }
                row.seen = vec![0; entry.lines().div_ceil(64) as usize];
                row.corrupt = vec![0; entry.lines().div_ceil(64) as usize];
            }
            expected.push(wanted);
            rows.push(row);
        }
        let index: HashMap<&str, usize> = ledger
            .sources
            .iter()
            .enumerate()
            .map(|(i, e)| (e.meta.source.as_str(), i))
            .collect();
        for excused in &ledger.excused {
            if let Some(row) = index
                .get(excused.lines.source.as_str())
                .and_then(|i| rows.get_mut(*i))
            {
                row.excused.push((excused.lines.first, excused.lines.last));
            }
        }
        Ok(Self {
            ledger,
            expectations,
            index,
            expected,
            rows,
            other: Totals::default(),
            duplicated: 0,
            duplicated_bytes: 0,
            corrupted_deliveries: 0,
        })
    }

    /// Extra copies counted so far (to attribute duplicates to stretches of delivered objects).
    pub fn duplicated_so_far(&self) -> u64 {
        self.duplicated
    }

    /// Message bytes of the extra copies counted so far.
    pub fn duplicated_bytes_so_far(&self) -> u64 {
        self.duplicated_bytes
    }

    /// Corrupted deliveries counted so far.
    pub fn corrupted_so_far(&self) -> u64 {
        self.corrupted_deliveries
    }

    /// Counts an object read (for the report).
    pub fn object_read(&mut self) {
        self.other.objects_read += 1;
    }

    /// Counts an object that could not be read or whose key did not parse.
    pub fn object_unreadable(&mut self) {
        self.other.unreadable_objects += 1;
    }

    /// Counts a line that could not be parsed as a record.
    pub fn bad_line(&mut self) {
        self.other.bad_lines += 1;
    }

    /// Classifies one delivered line.
    pub fn observe(&mut self, line: Delivered<'_>) {
        self.other.lines_read += 1;
        let Some(token) = seq::parse(line.text) else {
            self.other.untokened += 1;
            return;
        };
        let Some(&i) = self.index.get(token.source) else {
            self.other.unknown_source += 1;
            return;
        };
        let (Some(entry), Some(row)) = (self.ledger.sources.get(i), self.rows.get_mut(i)) else {
            return;
        };
        let owner = entry.meta.customer_id.as_str();
        let foreign = |c: Option<&str>| c.is_some_and(|c| c != owner);
        if foreign(self.expectations.tenant.as_deref())
            || foreign(line.partition_customer)
            || foreign(line.record_customer)
        {
            row.misrouted += 1;
            return;
        }
        if !self.expected[i] {
            row.unexpected += 1;
            return;
        }
        if token.seq < entry.first_seq || token.seq > entry.last_seq {
            row.beyond_ledger += 1;
            return;
        }
        let bit = token.seq - entry.first_seq;
        let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
        match row.seen.get_mut(word) {
            Some(w) if *w & mask != 0 => {
                row.duplicated += 1;
                self.duplicated += 1;
                self.duplicated_bytes += line.text.len() as u64;
                *row.extra.entry(bit).or_default() += 1;
            }
            Some(w) => {
                *w |= mask;
                row.delivered += 1;
            }
            None => {
                row.beyond_ledger += 1;
                return;
            }
        }
        let wrong_stream =
            matches!((line.stream, entry.meta.stream), (Some(got), Some(want)) if got != want);
        let broken = self.ledger.sealed && seal::check(line.text.as_bytes()) != SealCheck::Intact;
        if wrong_stream || broken {
            self.corrupted_deliveries += 1;
            if let Some(w) = row.corrupt.get_mut(word) {
                *w |= mask;
            }
        }
    }

    /// The report: every expected source, plus any other source a line was misrouted or
    /// unexpected from; missing ranges listed up to `max_ranges` per source.
    pub fn finish(self, max_ranges: usize) -> Report {
        let mut totals = self.other;
        let mut sources = Vec::new();
        let mut tenants_seen = HashSet::new();
        for ((entry, row), expected) in self.ledger.sources.iter().zip(self.rows).zip(self.expected)
        {
            let stray = row.misrouted + row.unexpected + row.beyond_ledger;
            if !expected && stray == 0 {
                continue;
            }
            let expected_lines = if expected { entry.lines() } else { 0 };
            let mut row = row;
            let mut excused = 0;
            for &(first, last) in &row.excused {
                for seq in first.max(entry.first_seq)..=last.min(entry.last_seq) {
                    let bit = seq - entry.first_seq;
                    let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
                    if let Some(w) = row.seen.get_mut(word).filter(|w| **w & mask == 0) {
                        *w |= mask;
                        excused += 1;
                    }
                    if let Some(w) = row.corrupt.get_mut(word) {
                        *w &= !mask;
                    }
                }
            }
            let corrupted: u64 = row.corrupt.iter().map(|w| u64::from(w.count_ones())).sum();
            let max_deliveries = match (row.delivered, row.extra.values().max()) {
                (0, _) => 0,
                (_, None) => 1,
                (_, Some(extra)) => 1 + u64::from(*extra),
            };
            let missing_ranges = if expected {
                missing(&row.seen, entry)
            } else {
                Vec::new()
            };
            let missing_count: u64 = missing_ranges.iter().map(|r| r.last - r.first + 1).sum();
            tenants_seen.insert(entry.meta.customer_id.clone());
            totals.sources += u64::from(expected);
            totals.expected += expected_lines;
            totals.delivered += row.delivered;
            totals.missing += missing_count;
            totals.duplicated += row.duplicated;
            totals.corrupted += corrupted;
            totals.excused += excused;
            totals.max_deliveries = totals.max_deliveries.max(max_deliveries);
            totals.misrouted += row.misrouted;
            totals.unexpected += row.unexpected;
            totals.beyond_ledger += row.beyond_ledger;
            let ranges_omitted = missing_ranges.len().saturating_sub(max_ranges);
            sources.push(SourceReport {
                source: entry.meta.source.clone(),
                customer_id: entry.meta.customer_id.clone(),
                application: entry.meta.application.clone(),
                expected: expected_lines,
                delivered: row.delivered,
                missing: missing_count,
                missing_ranges: missing_ranges.into_iter().take(max_ranges).collect(),
                missing_ranges_omitted: ranges_omitted,
                duplicated: row.duplicated,
                corrupted,
                excused,
                max_deliveries,
                misrouted: row.misrouted,
                unexpected: row.unexpected,
                beyond_ledger: row.beyond_ledger,
            });
        }
        totals.corrupted_deliveries = self.corrupted_deliveries;
        Report {
            ledger_complete: self.ledger.complete,
            sealed: self.ledger.sealed,
            tenant: self.expectations.tenant,
            applications: self.expectations.applications,
            sources,
            totals,
        }
    }
}

/// The unseen sequence numbers of a source as inclusive ranges.
fn missing(seen: &[u64], entry: &SourceEntry) -> Vec<SeqRange> {
    let mut ranges: Vec<SeqRange> = Vec::new();
    let total = entry.lines();
    let mut bit = 0;
    while bit < total {
        let word = seen.get((bit / 64) as usize).copied().unwrap_or(0);
        if bit % 64 == 0 && word == u64::MAX {
            bit += 64;
            continue;
        }
        if word & (1 << (bit % 64)) == 0 {
            let seq = entry.first_seq + bit;
            match ranges.last_mut() {
                Some(r) if r.last + 1 == seq => r.last = seq,
                _ => ranges.push(SeqRange {
                    first: seq,
                    last: seq,
                }),
            }
        }
        bit += 1;
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::SourceMeta;
    use chrono::Utc;

    fn entry(source: &str, tenant: &str, app: &str, last_seq: u64) -> SourceEntry {
        SourceEntry {
            meta: SourceMeta {
                source: source.into(),
                customer_id: tenant.into(),
                cluster_id: None,
                namespace: tenant.into(),
                pod: "p".into(),
                pod_uid: None,
                container: "c".into(),
                stream: None,
                application: app.into(),
            },
            first_seq: 0,
            last_seq,
        }
    }

    fn ledger() -> Ledger {
        Ledger {
            version: crate::ledger::LEDGER_VERSION,
            generator: "test".into(),
            written_at: Utc::now(),
            complete: true,
            sources: vec![
                entry("a/api", "a", "api", 199),
                entry("a/web", "a", "web", 9),
                entry("b/api", "b", "api", 4),
            ],
            sealed: false,
            files: Vec::new(),
            excused: Vec::new(),
        }
    }

    fn line(text: &str) -> Delivered<'_> {
        Delivered {
            text,
            partition_customer: None,
            record_customer: None,
            stream: None,
        }
    }

    #[test]
    fn sealed_lines_that_are_not_byte_exact_or_on_the_wrong_stream_are_corrupted() {
        let mut ledger = ledger();
        ledger.sealed = true;
        ledger.sources[2].meta.stream = Some(Stream::Stdout);
        ledger.excused.push(crate::ledger::ExcusedRange {
            lines: crate::ledger::LineRange {
                source: "b/api".into(),
                first: 3,
                last: 4,
            },
            reason: "copytruncate".into(),
        });
        let sealed = |n: u64| {
            let token = seq::SeqToken {
                source: "b/api",
                seq: n,
            };
            seal::insert_after_token(&format!("x {token} payload été"), &token)
        };
        let mut tally = Tally::new(&ledger, Expectations::default()).expect("tally");
        let intact = sealed(0);
        tally.observe(line(&intact));
        tally.observe(line(&intact));
        tally.observe(line(&intact));
        let head = sealed(1);
        tally.observe(line(&head[..head.len() - 3]));
        let lossy = sealed(2).replace('é', "\u{fffd}");
        tally.observe(line(&lossy));
        let wrong = sealed(3);
        tally.observe(Delivered {
            stream: Some(Stream::Stderr),
            ..line(&wrong)
        });
        let report = tally.finish(10);
        let b = report
            .sources
            .iter()
            .find(|s| s.source == "b/api")
            .expect("b");
        assert_eq!(b.corrupted, 2, "#1 cut, #2 mangled; #3 is excused");
        assert_eq!((b.missing, b.excused), (0, 1), "#4 excused, not missing");
        assert_eq!((b.duplicated, b.max_deliveries), (2, 3));
        assert_eq!(report.totals.corrupted_deliveries, 3);
        assert!(!report.passed(false));
    }

    #[test]
    fn missing_lines_are_reported_as_ranges_and_duplicates_counted() {
        let ledger = ledger();
        let mut tally = Tally::new(&ledger, Expectations::default()).expect("tally");
        for n in (0..200).filter(|n| !(5..=7).contains(n) && *n != 100 && *n != 199) {
            tally.observe(line(&format!("x lrseq=a/api#{n} y")));
        }
        tally.observe(line("lrseq=a/api#0"));
        tally.observe(line("no token"));
        tally.observe(line("lrseq=zzz/unknown#1"));
        tally.observe(line("lrseq=a/api#500"));
        let report = tally.finish(2);
        let api = &report.sources[0];
        assert_eq!(api.source, "a/api");
        assert_eq!(
            (api.expected, api.delivered, api.missing, api.duplicated),
            (200, 195, 5, 1)
        );
        assert_eq!(
            api.missing_ranges,
            [
                SeqRange { first: 5, last: 7 },
                SeqRange {
                    first: 100,
                    last: 100
                }
            ]
        );
        assert_eq!(api.missing_ranges_omitted, 1, "199 is not listed");
        assert_eq!(api.beyond_ledger, 1);
        assert_eq!(report.totals.untokened, 1);
        assert_eq!(report.totals.unknown_source, 1);
        assert_eq!(
            report.totals.missing,
            5 + 10 + 5,
            "other sources delivered nothing"
        );
        assert!(!report.passed(false));
    }

    #[test]
    fn lines_of_another_tenant_or_partition_are_misrouted() {
        let ledger = ledger();
        let expectations = Expectations {
            tenant: Some("a".into()),
            applications: vec![],
        };
        let mut tally = Tally::new(&ledger, expectations).expect("tally");
        for n in 0..200 {
            tally.observe(line(&format!("lrseq=a/api#{n}")));
        }
        for n in 0..10 {
            tally.observe(Delivered {
                text: &format!("lrseq=a/web#{n}"),
                partition_customer: Some(if n == 3 { "b" } else { "a" }),
                record_customer: Some("a"),
                stream: None,
            });
        }
        tally.observe(line("lrseq=b/api#0"));
        let report = tally.finish(10);
        assert_eq!(report.totals.sources, 2, "tenant b is not expected");
        assert_eq!(report.totals.misrouted, 2);
        assert_eq!(
            report.totals.missing, 1,
            "a/web#3 did not reach a's partition"
        );
        let b = report
            .sources
            .iter()
            .find(|s| s.source == "b/api")
            .expect("listed because misrouted");
        assert_eq!((b.expected, b.misrouted), (0, 1));
        assert!(!report.passed(false));
    }

    #[test]
    fn application_filter_makes_other_applications_unexpected_but_not_failing() {
        let ledger = ledger();
        let expectations = Expectations {
            tenant: Some("a".into()),
            applications: vec!["web".into()],
        };
        let mut tally = Tally::new(&ledger, expectations).expect("tally");
        for n in 0..10 {
            tally.observe(line(&format!("lrseq=a/web#{n}")));
        }
        tally.observe(line("lrseq=a/api#3"));
        tally.observe(line("lrseq=a/web#3"));
        let report = tally.finish(10);
        assert_eq!(report.totals.expected, 10);
        assert_eq!(
            (
                report.totals.missing,
                report.totals.unexpected,
                report.totals.duplicated
            ),
            (0, 1, 1)
        );
        assert!(report.passed(false));
        assert!(!report.passed(true), "duplicates fail only when asked");
    }

    #[test]
    fn absurd_ledger_sizes_are_refused() {
        let mut ledger = ledger();
        ledger.sources[0].last_seq = u64::MAX - 1;
        assert!(Tally::new(&ledger, Expectations::default()).is_err());
    }
}
