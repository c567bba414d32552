//! Chaos runs (`logrelay-demo chaos`, `docs/reliability.md` "Chaos runs"): the demo pipeline with
//! every AWS request of the agent and the processor behind testkit fault proxies, both programs
//! SIGKILLed and restarted at random times, an S3 outage and a customer deleting its log group
//! mid-run — and then the same verification as the demo: nothing missing, nothing misrouted.
//!
//! [`ChaosPlan`] is what to do; [`schedule`] draws when from the seed; [`faults`] owns the fault
//! proxies; [`log_group`] deletes a tenant's group (keeping what the customer had) and verifies
//! against that archive plus the recreated group; [`runner`] carries the schedule out and restarts
//! a component that exits by itself; [`report`] is the summary's chaos section.

pub mod faults;
pub mod log_group;
pub mod report;
pub mod runner;
pub mod schedule;

use std::time::Duration;

use clap::ValueEnum;

/// Default `--fault-rate`: 30 % of all AWS requests of both components get a fault (the chaos run's required fault rate).
pub const DEFAULT_FAULT_RATE: f64 = 0.30;

/// Default `--agent-kills` and `--processor-kills` of the full run (the chaos run requires at least 20 each).
pub const DEFAULT_KILLS: u32 = 20;

/// Default `--s3-outage` of the full run (the chaos run requires a 5-minute S3 outage).
pub const DEFAULT_S3_OUTAGE: Duration = Duration::from_secs(300);

/// Default `--duration` of `chaos`: room for 20 kills of each component at least 2 s apart and a
/// 5-minute outage inside the generation.
pub const DEFAULT_CHAOS_DURATION: &str = "12m";

/// Default `--drain-timeout` of `chaos`: objects a killed processor held stay leased for
/// [`PROCESSOR_PROGRESS_LEASE`], retried messages come back only after the queue's visibility
/// timeout, and uploads still meet 30 % faults while draining.
pub const DEFAULT_CHAOS_DRAIN_TIMEOUT: &str = "10m";

/// The processor's default progress lease on an object (docs/processor-delivery.md: 5 min,
/// `LOGRELAY_PROGRESS_LEASE_SECONDS`). A SIGKILLed processor cannot release it: the object's
/// redeliveries fail transiently (`in_progress_elsewhere`) once per visibility timeout until it
/// expires.
pub const PROCESSOR_PROGRESS_LEASE: Duration = Duration::from_secs(300);

/// A class of injected fault (`--fault-kinds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, serde::Serialize)]
pub enum FaultClass {
    /// HTTP 500 `InternalError` and HTTP 503 `SlowDown`.
    #[value(name = "5xx")]
    #[serde(rename = "5xx")]
    ServerError,
    /// HTTP 400 `ThrottlingException` / `Throttling`.
    #[value(name = "throttling")]
    #[serde(rename = "throttling")]
    Throttling,
    /// The connection is closed without an answer.
    #[value(name = "reset")]
    #[serde(rename = "reset")]
    Reset,
    /// The request is forwarded after a delay.
    #[value(name = "latency")]
    #[serde(rename = "latency")]
    Latency,
}

impl FaultClass {
    /// Every class, the default of `--fault-kinds`.
    pub const ALL: [FaultClass; 4] = [
        FaultClass::ServerError,
        FaultClass::Throttling,
        FaultClass::Reset,
        FaultClass::Latency,
    ];

    /// The flag value (`5xx`, `throttling`, `reset`, `latency`).
    pub fn name(self) -> &'static str {
        match self {
            Self::ServerError => "5xx",
            Self::Throttling => "throttling",
            Self::Reset => "reset",
            Self::Latency => "latency",
        }
    }
}

/// What a chaos run does (resolved from the `chaos` flags).
#[derive(Debug, Clone, PartialEq)]
pub struct ChaosPlan {
    /// Seed of the schedule (and of the generator).
    pub seed: u64,
    /// Probability that one AWS request of the agent or the processor gets a fault.
    pub fault_rate: f64,
    /// Faults to draw from, with equal weight per class.
    pub fault_classes: Vec<FaultClass>,
    /// SIGKILLs (each followed by a restart) of the agent during generation.
    pub agent_kills: u32,
    /// SIGKILLs (each followed by a restart) of the processor during generation.
    pub processor_kills: u32,
    /// How long every S3 request of both components fails (zero: no outage).
    pub s3_outage: Duration,
    /// The tenant whose CloudWatch Logs group the customer deletes mid-run, if any.
    pub delete_log_group_of: Option<String>,
    /// The processor keeps per-object progress (`DELIVERY_PROGRESS_TABLE`): resume and duplicate
    /// skipping, and a lease per object that a killed processor holds for
    /// [`ChaosPlan::progress_lease`]. Off: a killed processor's objects are redelivered whole.
    pub progress_table: bool,
    /// The processor's progress lease (`LOGRELAY_PROGRESS_LEASE_SECONDS`, whole seconds);
    /// `None`: its default, [`PROCESSOR_PROGRESS_LEASE`].
    pub progress_lease: Option<Duration>,
}

impl ChaosPlan {
    /// How long a killed processor's objects stay leased (zero without the progress table).
    pub fn lease_held_after_kill(&self) -> Duration {
        if self.progress_table {
            self.progress_lease.unwrap_or(PROCESSOR_PROGRESS_LEASE)
        } else {
            Duration::ZERO
        }
    }
}
