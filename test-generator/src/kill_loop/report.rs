//! The kill loop's findings and its verdict against the agent's integrity targets:
//! - no line missing, except lines in files deleted while the agent was down, and lines whose
//!   bytes the agent counted in `logrelay_agent_lost_bytes_total`;
//! - no line corrupted (every delivered record is byte for byte the written line, on its stream);
//! - no line delivered more than [`MAX_DELIVERIES`] times;
//! - the duplicates each restart caused (in message bytes) at most the bytes the agent had read
//!   but not acknowledged when it was killed.
//!
//! Missing lines are placed with the ledger's file records: in a file deleted while the agent was
//! down (from a kill until the next run's first scan), in a file deleted while it ran, or in no
//! deleted file. The unacknowledged gauge is scraped about 0.1 s before each kill, so a run can
//! read (and later duplicate) a little more than the scrape shows.

use super::{DownWindow, Kill, KillLoopArgs};
use crate::cluster::ClusterCounts;
use crate::ledger::{FileRecord, Ledger};
use crate::verify::report::Report;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write;
use std::time::Duration;

/// Most deliveries of one line the targets allow.
pub const MAX_DELIVERIES: u64 = 3;

/// What one agent run delivered, in the order the runs wrote their objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Incarnation {
    /// Run number (0 = first).
    pub run: usize,
    /// Objects it wrote.
    pub objects: usize,
    /// Copies of lines that earlier runs (or itself) had delivered already.
    pub duplicated: u64,
    /// Message bytes of those copies.
    pub duplicated_bytes: u64,
    /// Corrupted records it delivered.
    pub corrupted_deliveries: u64,
}

/// One kill next to the duplicates the following run delivered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KillRow {
    /// Kill number (1 = first).
    pub kill: usize,
    /// Seconds the killed run lived.
    pub lived_secs: f64,
    /// Seconds down before the next run.
    pub downtime_secs: f64,
    /// Unacknowledged bytes scraped just before the kill (`None`: no answer).
    pub unacknowledged_bytes: Option<f64>,
    /// The same in lines, at the run's mean bytes per line.
    pub unacknowledged_lines_est: Option<f64>,
    /// Copies delivered by the next run.
    pub duplicated: u64,
    /// Message bytes of those copies.
    pub duplicated_bytes: u64,
}

/// Missing lines by where they were.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MissingSplit {
    /// In files deleted while the agent was down.
    pub deleted_while_down: u64,
    /// In files deleted while the agent ran.
    pub deleted_while_up: u64,
    /// In files never deleted (or not in the ledger's file records).
    pub not_deleted: u64,
    /// Estimated on-disk bytes of the missing lines not deleted while down.
    pub unexcused_bytes: u64,
}

/// The whole kill-loop report.
#[derive(Debug, Clone, Serialize)]
pub struct KillLoopReport {
    /// Rotation mode.
    pub rotation: String,
    /// Seed of generator and schedule.
    pub seed: u64,
    /// Seconds the loop ran (writing, kills and drain).
    pub elapsed_secs: f64,
    /// Lines written.
    pub lines_written: u64,
    /// Bytes written (uncompressed, on disk).
    pub bytes_written: u64,
    /// Mean write rate over the writing time, MiB/s.
    pub mib_per_sec: f64,
    /// Rotations, gzips, deleted files, pods and restarts.
    pub rotations: u64,
    /// Rotated files gzipped.
    pub compressions: u64,
    /// Rotated files deleted.
    pub deletions: u64,
    /// Pods created.
    pub pods_created: u64,
    /// Container restarts.
    pub container_restarts: u64,
    /// SIGKILLs.
    pub kills: usize,
    /// Lines `copytruncate` itself made unreadable as whole lines (the ledger's excused lines).
    pub excused_written: u64,
    /// Of those, lines that did not arrive.
    pub excused: u64,
    /// Distinct lines delivered.
    pub delivered: u64,
    /// Missing lines.
    pub missing: u64,
    /// Where the missing lines were.
    pub missing_split: MissingSplit,
    /// Lines delivered corrupted at least once.
    pub corrupted: u64,
    /// Corrupted records.
    pub corrupted_deliveries: u64,
    /// Records without a sequence token (pieces of split lines).
    pub fragments: u64,
    /// Extra copies.
    pub duplicated: u64,
    /// Duplicates as a share of lines written, percent.
    pub duplicated_percent: f64,
    /// Most deliveries of one line.
    pub max_deliveries: u64,
    /// Lines of another tenant.
    pub misrouted: u64,
    /// `logrelay_agent_lost_bytes_total` summed over every run.
    pub lost_bytes_counted: f64,
    /// `logrelay_agent_partial_lines_flushed_total` summed over every run.
    pub partial_lines_flushed: f64,
    /// Whether the last run delivered everything it read before the drain deadline.
    pub drained: bool,
    /// Whether the last run stopped with status 0 after SIGTERM.
    pub graceful_exit: bool,
    /// Per kill: unacknowledged at the kill against duplicates after it.
    pub per_kill: Vec<KillRow>,
    /// The targets missed; empty when all are met.
    pub violations: Vec<String>,
}

/// Everything [`build`] needs.
pub struct Inputs<'a> {
    /// The loop's flags.
    pub args: &'a KillLoopArgs,
    /// The seed used.
    pub seed: u64,
    /// The generator's final ledger.
    pub ledger: &'a Ledger,
    /// Verification with every missing range listed.
    pub verify: Report,
    /// The kills.
    pub kills: Vec<Kill>,
    /// Spans the agent was down.
    pub down: Vec<DownWindow>,
    /// What each run delivered.
    pub incarnations: Vec<Incarnation>,
    /// The final run's last scrape.
    pub final_scrape: Option<super::agent::Scrape>,
    /// Whether the final run drained.
    pub drained: bool,
    /// Whether the final run exited 0 after SIGTERM.
    pub graceful_exit: bool,
    /// The generator's counts.
    pub counts: ClusterCounts,
    /// Bytes the generator wrote.
    pub bytes_written: u64,
    /// Time the loop took.
    pub elapsed: Duration,
}

/// Classifies, compares and judges.
pub fn build(inputs: Inputs<'_>) -> KillLoopReport {
    let Inputs {
        args,
        seed,
        ledger,
        verify,
        kills,
        down,
        incarnations,
        final_scrape,
        drained,
        graceful_exit,
        counts,
        bytes_written,
        elapsed,
    } = inputs;
    let t = &verify.totals;
    let lines_written = ledger.sources.iter().map(|s| s.lines()).sum::<u64>();
    let (file_bytes, file_lines) = ledger
        .files
        .iter()
        .fold((0u64, 0u64), |(b, l), f| (b + f.bytes, l + f.line_count));
    let mean_line_bytes = match file_lines {
        0 => 0.0,
        n => file_bytes as f64 / n as f64,
    };
    let missing_split = split_missing(&verify, ledger, &down);
    let lost_bytes_counted = kills
        .iter()
        .filter_map(|k| k.before.map(|s| s.lost_bytes))
        .fold(0.0, |sum, b| sum + b)
        + final_scrape.map_or(0.0, |s| s.lost_bytes);
    let partial_lines_flushed = kills
        .iter()
        .filter_map(|k| k.before.map(|s| s.partial_flushed))
        .fold(0.0, |sum, b| sum + b)
        + final_scrape.map_or(0.0, |s| s.partial_flushed);
    let per_kill: Vec<KillRow> = kills
        .iter()
        .enumerate()
        .map(|(i, kill)| {
            let next = incarnations.get(i + 1);
            let unacked = kill.before.map(|s| s.unacknowledged_bytes);
            KillRow {
                kill: i + 1,
                lived_secs: kill.lived.as_secs_f64(),
                downtime_secs: kill.downtime.as_secs_f64(),
                unacknowledged_bytes: unacked,
                unacknowledged_lines_est: unacked
                    .filter(|_| mean_line_bytes > 0.0)
                    .map(|b| b / mean_line_bytes),
                duplicated: next.map_or(0, |n| n.duplicated),
                duplicated_bytes: next.map_or(0, |n| n.duplicated_bytes),
            }
        })
        .collect();
    let mut violations = Vec::new();
    if missing_split.unexcused_bytes as f64 > lost_bytes_counted {
        violations.push(format!(
            "{} lines missing outside files deleted while the agent was down (~{} bytes: {} in files deleted while it ran, {} in files never deleted), more than the {} lost bytes the agent counted",
            missing_split.deleted_while_up + missing_split.not_deleted,
            missing_split.unexcused_bytes,
            missing_split.deleted_while_up,
            missing_split.not_deleted,
            lost_bytes_counted
        ));
    }
    if t.corrupted > 0 {
        violations.push(format!(
            "{} lines corrupted ({} records not byte for byte the written line, {} fragments without a token)",
            t.corrupted, t.corrupted_deliveries, t.untokened
        ));
    }
    if t.max_deliveries > MAX_DELIVERIES {
        violations.push(format!(
            "a line was delivered {} times (at most {MAX_DELIVERIES} allowed)",
            t.max_deliveries
        ));
    }
    let over: Vec<String> = per_kill
        .iter()
        .filter(|k| k.duplicated_bytes as f64 > k.unacknowledged_bytes.unwrap_or(0.0))
        .map(|k| {
            format!(
                "kill {}: {} bytes duplicated > {} unacknowledged",
                k.kill,
                k.duplicated_bytes,
                k.unacknowledged_bytes
                    .map_or("unknown".to_string(), |b| format!("{b:.0}"))
            )
        })
        .collect();
    if !over.is_empty() {
        violations.push(format!(
            "duplicates exceed what was unacknowledged at {} of {} kills ({})",
            over.len(),
            per_kill.len(),
            over.join("; ")
        ));
    }
    if t.misrouted > 0 {
        violations.push(format!("{} lines misrouted", t.misrouted));
    }
    if !drained {
        violations.push("the last run did not drain before the deadline".to_string());
    }
    if !graceful_exit {
        violations.push("the last run did not exit 0 after SIGTERM".to_string());
    }
    let writing = args.duration.max(1.0);
    KillLoopReport {
        rotation: format!("{:?}", args.rotation).to_lowercase(),
        seed,
        elapsed_secs: elapsed.as_secs_f64(),
        lines_written,
        bytes_written,
        mib_per_sec: bytes_written as f64 / writing / (1024.0 * 1024.0),
        rotations: counts.rotation.rotations,
        compressions: counts.rotation.compressions,
        deletions: counts.rotation.deletions,
        pods_created: counts.pods_created,
        container_restarts: counts.restarts,
        kills: kills.len(),
        excused_written: ledger
            .excused
            .iter()
            .map(|e| e.lines.last.saturating_sub(e.lines.first) + 1)
            .sum(),
        excused: t.excused,
        delivered: t.delivered,
        missing: t.missing,
        missing_split,
        corrupted: t.corrupted,
        corrupted_deliveries: t.corrupted_deliveries,
        fragments: t.untokened,
        duplicated: t.duplicated,
        duplicated_percent: match lines_written {
            0 => 0.0,
            n => 100.0 * t.duplicated as f64 / n as f64,
        },
        max_deliveries: t.max_deliveries,
        misrouted: t.misrouted,
        lost_bytes_counted,
        partial_lines_flushed,
        drained,
        graceful_exit,
        per_kill,
        violations,
    }
}

/// Places every missing line in its file record and sorts it by when that file was deleted.
fn split_missing(verify: &Report, ledger: &Ledger, down: &[DownWindow]) -> MissingSplit {
    let mut by_source: HashMap<&str, Vec<(u64, u64, &FileRecord)>> = HashMap::new();
    for file in &ledger.files {
        for range in &file.lines {
            by_source.entry(range.source.as_str()).or_default().push((
                range.first,
                range.last,
                file,
            ));
        }
    }
    let was_down = |at: DateTime<Utc>| down.iter().any(|w| w.from <= at && at <= w.to);
    let mut split = MissingSplit::default();
    for source in &verify.sources {
        let files = by_source.get(source.source.as_str());
        for range in &source.missing_ranges {
            for seq in range.first..=range.last {
                let file = files.and_then(|f| {
                    f.iter()
                        .find(|(first, last, _)| (*first..=*last).contains(&seq))
                        .map(|(_, _, file)| *file)
                });
                let line_bytes = file.map_or(0, |f| f.bytes / f.line_count.max(1));
                match file.and_then(|f| f.deleted_at) {
                    Some(at) if was_down(at) => split.deleted_while_down += 1,
                    Some(_) => {
                        split.deleted_while_up += 1;
                        split.unexcused_bytes += line_bytes;
                    }
                    None => {
                        split.not_deleted += 1;
                        split.unexcused_bytes += line_bytes;
                    }
                }
            }
        }
    }
    split
}

impl KillLoopReport {
    /// True when every target is met.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report as text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "kill loop ({} rotation, seed {}): {:.0} s, {} lines / {:.1} MiB written at {:.2} MiB/s; {} rotations, {} gzipped, {} deleted; {} pods, {} container restarts; {} SIGKILLs",
            self.rotation,
            self.seed,
            self.elapsed_secs,
            self.lines_written,
            self.bytes_written as f64 / (1024.0 * 1024.0),
            self.mib_per_sec,
            self.rotations,
            self.compressions,
            self.deletions,
            self.pods_created,
            self.container_restarts,
            self.kills
        );
        let m = &self.missing_split;
        let _ = writeln!(
            out,
            "delivered {}  missing {} (in files deleted while the agent was down {}, deleted while it ran {}, never deleted {}; ~{} bytes outside downtime)  excused by copytruncate {} (not arrived {})",
            self.delivered,
            self.missing,
            m.deleted_while_down,
            m.deleted_while_up,
            m.not_deleted,
            m.unexcused_bytes,
            self.excused_written,
            self.excused
        );
        let _ = writeln!(
            out,
            "corrupted {} lines ({} records, {} fragments without a token)  duplicates {} ({:.2} %)  max deliveries of one line {}  misrouted {}",
            self.corrupted,
            self.corrupted_deliveries,
            self.fragments,
            self.duplicated,
            self.duplicated_percent,
            self.max_deliveries,
            self.misrouted
        );
        let _ = writeln!(
            out,
            "agent counted: lost_bytes_total {:.0}, partial_lines_flushed_total {:.0}; last run drained: {}, exited cleanly: {}",
            self.lost_bytes_counted, self.partial_lines_flushed, self.drained, self.graceful_exit
        );
        let _ = writeln!(
            out,
            "{:>4} {:>7} {:>7} {:>14} {:>11} {:>10} {:>12}",
            "KILL", "LIVED", "DOWN", "UNACKED_BYTES", "UNACKED_~LN", "DUP_LINES", "DUP_BYTES"
        );
        for k in &self.per_kill {
            let _ = writeln!(
                out,
                "{:>4} {:>6.1}s {:>6.1}s {:>14} {:>11} {:>10} {:>12}{}",
                k.kill,
                k.lived_secs,
                k.downtime_secs,
                k.unacknowledged_bytes
                    .map_or("-".to_string(), |b| format!("{b:.0}")),
                k.unacknowledged_lines_est
                    .map_or("-".to_string(), |l| format!("{l:.0}")),
                k.duplicated,
                k.duplicated_bytes,
                if k.duplicated_bytes as f64 > k.unacknowledged_bytes.unwrap_or(0.0) {
                    "  over"
                } else {
                    ""
                }
            );
        }
        match self.violations.is_empty() {
            true => {
                let _ = writeln!(out, "PASSED: every target met");
            }
            false => {
                let _ = writeln!(out, "FAILED:");
                for v in &self.violations {
                    let _ = writeln!(out, "  - {v}");
                }
            }
        }
        out
    }
}
