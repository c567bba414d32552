//! The summary's chaos section: the seed, what was injected into each component's AWS traffic
//! and what the components saw, every kill and unexpected exit, the S3 outage, the log group
//! deletion, duplicates and the drain time — as JSON fields and as text.

use std::fmt::Write;

use serde::Serialize;

use super::FaultClass;
use super::log_group::Deletion;

/// Chaos done to one component.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ComponentChaos {
    /// `agent` or `processor`.
    pub component: String,
    /// AWS requests it sent.
    pub requests: u64,
    /// Random faults injected (delays included).
    pub random_faults: u64,
    /// Requests failed by outages (S3 outage, CloudWatch pause).
    pub outage_faults: u64,
    /// Seconds into generation of each SIGKILL (each followed by a restart).
    pub kills_at_seconds: Vec<f64>,
}

/// Answers one component got from one service, by outcome (counted at its counting proxy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnswerRow {
    /// `agent` or `processor`.
    pub component: String,
    /// AWS service.
    pub service: String,
    /// `2xx`, `3xx`, `4xx`, `5xx` or `hang-up`.
    pub outcome: String,
    /// Answers.
    pub count: u64,
}

/// A component that exited by itself and was started again (as Kubernetes would).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExitRecord {
    /// `agent` or `processor`.
    pub component: String,
    /// Seconds into generation it was found gone.
    pub at_seconds: u64,
    /// Its exit status.
    pub status: String,
    /// The end of its log.
    pub log_tail: String,
}

/// The S3 outage as it happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutageRecord {
    /// Seconds into generation it began.
    pub start_seconds: f64,
    /// Seconds into generation it ended.
    pub end_seconds: f64,
    /// S3 requests of both components it failed.
    pub failed_requests: u64,
}

/// The log group deletion as it happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeletionRecord {
    /// Seconds into generation.
    pub at_seconds: f64,
    /// What was done.
    #[serde(flatten)]
    pub deletion: Deletion,
}

/// The chaos section of the summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChaosReport {
    /// Seed of the schedule and the generator (`--seed` repeats the run's schedule).
    pub seed: u64,
    /// Probability of a random fault per request.
    pub fault_rate: f64,
    /// Classes of random faults.
    pub fault_kinds: Vec<FaultClass>,
    /// Per component.
    pub components: Vec<ComponentChaos>,
    /// What the components got back, by service and outcome.
    pub answers: Vec<AnswerRow>,
    /// The S3 outage, if one was planned and began.
    pub s3_outage: Option<OutageRecord>,
    /// The log group deletion, if done.
    pub log_group_deletion: Option<DeletionRecord>,
    /// Components that exited by themselves (and were restarted).
    pub unexpected_exits: Vec<ExitRecord>,
    /// The queue's visibility timeout in the run.
    pub visibility_timeout_seconds: u32,
    /// The queue's maxReceiveCount in the run.
    pub max_receive_count: u32,
    /// Extra copies over every destination (at-least-once delivery).
    pub duplicates: u64,
    /// Seconds from the end of generation until the pipeline was empty.
    pub drain_seconds: f64,
    /// Chaos steps that could not be carried out (they fail the run).
    pub errors: Vec<String>,
}

impl ChaosReport {
    /// Appends the section as text.
    pub fn write_text(&self, out: &mut String) {
        let kinds: Vec<&str> = self.fault_kinds.iter().map(|k| k.name()).collect();
        let _ = writeln!(
            out,
            "\nchaos (seed {seed}; the same schedule again: --seed {seed}):",
            seed = self.seed
        );
        let _ = writeln!(
            out,
            "  random faults on {:.0} % of every AWS request of agent and processor ({})",
            self.fault_rate * 100.0,
            kinds.join(", ")
        );
        let _ = writeln!(
            out,
            "  {:<10} {:>9} {:>15} {:>13} {:>6} {:>6}",
            "COMPONENT", "REQUESTS", "RANDOM FAULTS", "OUTAGE FAULTS", "KILLS", "EXITS"
        );
        for row in &self.components {
            let exits = self
                .unexpected_exits
                .iter()
                .filter(|e| e.component == row.component)
                .count();
            let share = if row.requests == 0 {
                0.0
            } else {
                row.random_faults as f64 * 100.0 / row.requests as f64
            };
            let _ = writeln!(
                out,
                "  {:<10} {:>9} {:>7} ({:>4.1} %) {:>13} {:>6} {:>6}",
                row.component,
                row.requests,
                row.random_faults,
                share,
                row.outage_faults,
                row.kills_at_seconds.len(),
                exits
            );
        }
        let mut answers = String::new();
        let mut current = (String::new(), String::new());
        for row in &self.answers {
            if (row.component.as_str(), row.service.as_str())
                != (current.0.as_str(), current.1.as_str())
            {
                current = (row.component.clone(), row.service.clone());
                let _ = write!(answers, "\n    {} {}:", row.component, row.service);
            }
            let _ = write!(answers, " {} {}", row.outcome, row.count);
        }
        let _ = writeln!(out, "  answers the components got:{answers}");
        for row in &self.components {
            let times: Vec<String> = row
                .kills_at_seconds
                .iter()
                .map(|t| format!("{t:.0}"))
                .collect();
            let _ = writeln!(
                out,
                "  {} SIGKILLed and restarted at (s): {}",
                row.component,
                if times.is_empty() {
                    "never".to_owned()
                } else {
                    times.join(", ")
                }
            );
        }
        match &self.s3_outage {
            Some(outage) => {
                let _ = writeln!(
                    out,
                    "  S3 outage from {:.0} s to {:.0} s ({:.0} s): {} S3 requests failed",
                    outage.start_seconds,
                    outage.end_seconds,
                    outage.end_seconds - outage.start_seconds,
                    outage.failed_requests
                );
            }
            None => {
                let _ = writeln!(out, "  S3 outage: none");
            }
        }
        match &self.log_group_deletion {
            Some(record) => {
                let d = &record.deletion;
                let _ = writeln!(
                    out,
                    "  {} deleted its log group {} at {:.0} s ({} events archived first; the processor's CloudWatch calls paused {:.1} s, {} failed); verified as archive + recreated group",
                    d.tenant,
                    d.group,
                    record.at_seconds,
                    d.events_archived,
                    d.paused_ms as f64 / 1000.0,
                    d.paused_calls
                );
            }
            None => {
                let _ = writeln!(out, "  log group deletion: none");
            }
        }
        for exit in &self.unexpected_exits {
            let _ = writeln!(
                out,
                "  {} exited by itself at {} s ({}) and was restarted; its log ended:\n      {}",
                exit.component,
                exit.at_seconds,
                exit.status,
                exit.log_tail.replace('\n', "\n      ")
            );
        }
        let _ = writeln!(
            out,
            "  duplicates: {} extra copies over all destinations (at-least-once delivery)",
            self.duplicates
        );
        let _ = writeln!(
            out,
            "  drained in {:.1} s; queue visibility timeout {} s, maxReceiveCount {}",
            self.drain_seconds, self.visibility_timeout_seconds, self.max_receive_count
        );
        for error in &self.errors {
            let _ = writeln!(out, "  ERROR: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_seed_faults_kills_outage_and_duplicates() {
        let report = ChaosReport {
            seed: 42,
            fault_rate: 0.3,
            fault_kinds: FaultClass::ALL.to_vec(),
            components: vec![ComponentChaos {
                component: "agent".into(),
                requests: 1000,
                random_faults: 300,
                outage_faults: 20,
                kills_at_seconds: vec![5.2, 40.0],
            }],
            answers: vec![AnswerRow {
                component: "agent".into(),
                service: "s3".into(),
                outcome: "hang-up".into(),
                count: 75,
            }],
            s3_outage: Some(OutageRecord {
                start_seconds: 10.0,
                end_seconds: 30.0,
                failed_requests: 20,
            }),
            duplicates: 17,
            ..ChaosReport::default()
        };
        let mut text = String::new();
        report.write_text(&mut text);
        for needle in [
            "seed 42",
            "30 %",
            "5xx, throttling, reset, latency",
            "300 (30.0 %)",
            "5, 40",
            "from 10 s to 30 s (20 s): 20 S3 requests failed",
            "agent s3: hang-up 75",
            "17 extra copies",
        ] {
            assert!(text.contains(needle), "{needle:?} not in:\n{text}");
        }
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["fault_kinds"][0], "5xx");
        assert_eq!(json["components"][0]["kills_at_seconds"][1], 40.0);
    }
}
