//! `logrelay-testgen kill-loop`: the agent's integrity under containerd-like writing, rotation
//! and SIGKILLs, measured end to end against the real `logrelay-agent` binary.
//!
//! The `pods` generator writes with the containerd-like writer (interleaved streams, 16 KiB
//! entries, multi-byte characters at the cuts, sealed lines) and rotates by rename or
//! `copytruncate`, with gzip, pod churn and container restarts. Meanwhile the agent (directory
//! sink) is SIGKILLed at random intervals, sometimes left down for a while; just before each kill
//! its metrics are scraped for the bytes read but not yet acknowledged. A last run drains and stops
//! with SIGTERM. The delivered objects are then verified against the ledger in the order the runs
//! wrote them, so duplicates can be attributed to the restart that caused them ([`report`]).

pub mod agent;
pub mod report;

use crate::cluster::WriterKind;
use crate::containerd::RotationMode;
use crate::ledger::Ledger;
use crate::pods::{self, PodsArgs, PodsError};
use crate::verify::dir;
use crate::verify::tally::{Expectations, Tally};
use agent::{AgentError, AgentRun, AgentSetup, Scrape};
use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use report::{Incarnation, KillLoopReport};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Mean bytes on disk per generated line (short lines of 80–400 bytes plus CRI headers, the
/// content's own large lines and the default share of long lines; measured: 1 MiB/s of lines at
/// 650 bytes each wrote 1.4 MiB/s), used to turn `--mib-per-sec` into lines per second.
const MEAN_LINE_BYTES: f64 = 900.0;

/// Time after an agent answers its first scrape during which a file deletion still counts as
/// happening while it was down (its first scan of the pods root).
const STARTUP_GRACE: Duration = Duration::from_secs(1);

/// Polls of the final run's progress while it drains.
const DRAIN_POLL: Duration = Duration::from_secs(2);

/// Consecutive polls with nothing unacknowledged and no new object that mean "drained".
const DRAINED_POLLS: usize = 4;

/// Flags of `logrelay-testgen kill-loop`.
#[derive(Debug, Clone, clap::Args)]
pub struct KillLoopArgs {
    /// The `logrelay-agent` binary.
    #[arg(long)]
    pub agent: PathBuf,
    /// Directory for the pods tree, delivered objects, checkpoints, ledger and agent logs
    /// (created; kept afterwards).
    #[arg(long)]
    pub work_dir: PathBuf,
    /// Rotation of the containers' logs.
    #[arg(long, value_enum, default_value_t)]
    pub rotation: RotationMode,
    /// Seconds of writing.
    #[arg(long, default_value = "300", value_parser = crate::seconds)]
    pub duration: f64,
    /// Write rate over all containers, MiB per second.
    #[arg(long, default_value_t = 3.0)]
    pub mib_per_sec: f64,
    /// SIGKILLs at least (the loop goes on past `--duration` until there were this many).
    #[arg(long, default_value_t = 50)]
    pub kills: usize,
    /// Shortest agent lifetime between kills, seconds.
    #[arg(long, default_value = "1", value_parser = crate::seconds)]
    pub min_interval: f64,
    /// Longest agent lifetime between kills, seconds.
    #[arg(long, default_value = "6", value_parser = crate::seconds)]
    pub max_interval: f64,
    /// Share of kills after which the agent stays down for 5–10 s before its restart.
    #[arg(long, default_value_t = 0.2)]
    pub downtime_share: f64,
    /// Tenants (one namespace each).
    #[arg(long, default_value_t = 2)]
    pub tenants: usize,
    /// Pods per tenant.
    #[arg(long, default_value_t = 10)]
    pub pods_per_tenant: usize,
    /// Containers per pod.
    #[arg(long, default_value_t = 2)]
    pub containers_per_pod: usize,
    /// Rotation size in bytes.
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    pub max_size: u64,
    /// Files kept per container, the live one included.
    #[arg(long, default_value_t = 5)]
    pub max_files: usize,
    /// Seconds between churn steps (a pod replaced, a container restarted); 0 disables churn.
    #[arg(long, default_value = "3", value_parser = crate::seconds)]
    pub churn_interval: f64,
    /// Seconds before a deleted pod's directory is removed.
    #[arg(long, default_value = "5", value_parser = crate::seconds)]
    pub removal_delay: f64,
    /// Share of lines of 16 KiB to a few hundred KiB.
    #[arg(long, default_value_t = 0.005)]
    pub long_line_ratio: f64,
    /// The agent's `--batch-timeout`.
    #[arg(long, default_value = "2s")]
    pub batch_timeout: String,
    /// Another flag for every agent run, e.g. `--agent-arg=--batch-memory-limit=1MiB`
    /// (repeatable).
    #[arg(long = "agent-arg", allow_hyphen_values = true)]
    pub agent_args: Vec<String>,
    /// Most seconds the last run may take to deliver the rest.
    #[arg(long, default_value_t = 180.0)]
    pub drain_timeout: f64,
    /// Seed of the generator and the kill schedule; random when absent.
    #[arg(long)]
    pub seed: Option<u64>,
    /// `RUST_LOG` of the agent runs (their logs are `agent-NN.log` in the work directory).
    #[arg(long, default_value = "info")]
    pub agent_log: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

impl KillLoopArgs {
    /// Flags with their defaults for `agent` and `work_dir`.
    pub fn new(agent: impl Into<PathBuf>, work_dir: impl Into<PathBuf>) -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: KillLoopArgs,
        }
        let (agent, work_dir) = (agent.into(), work_dir.into());
        // Parsing only the two required flags yields the documented defaults; it cannot fail.
        Wrapper::try_parse_from([
            std::ffi::OsStr::new("kill-loop"),
            "--agent".as_ref(),
            agent.as_os_str(),
            "--work-dir".as_ref(),
            work_dir.as_os_str(),
        ])
        .map(|w| w.args)
        .unwrap_or_else(|_| unreachable!("defaults parse"))
    }

    fn pods_args(&self, seed: u64) -> PodsArgs {
        let root = self.work_dir.join("pods");
        PodsArgs {
            writer: WriterKind::Containerd,
            rotation: self.rotation,
            rate: (self.mib_per_sec * 1024.0 * 1024.0 / MEAN_LINE_BYTES).max(1.0),
            duration: self.duration,
            seed: Some(seed),
            tenants: crate::pods::TenantList(
                (1..=self.tenants.max(1))
                    .map(|i| format!("tenant-{i}"))
                    .collect(),
            ),
            pods_per_namespace: self.pods_per_tenant,
            containers_per_pod: self.containers_per_pod,
            max_size: self.max_size,
            max_files: self.max_files,
            churn_interval: self.churn_interval,
            removal_delay: self.removal_delay,
            long_line_ratio: self.long_line_ratio,
            ledger: Some(self.work_dir.join("ledger.json")),
            stats_interval: 0.0,
            ..PodsArgs::with_root(root)
        }
    }

    fn validate(&self) -> Result<(), KillLoopError> {
        let bad = |flag: &'static str, reason: &str| {
            Err(KillLoopError::InvalidArg {
                flag,
                reason: reason.to_string(),
            })
        };
        if !(self.min_interval > 0.0 && self.max_interval >= self.min_interval) {
            return bad("min-interval", "must be > 0 and at most --max-interval");
        }
        if !(0.0..=1.0).contains(&self.downtime_share) {
            return bad("downtime-share", "must be between 0 and 1");
        }
        if !(self.mib_per_sec > 0.0 && self.mib_per_sec.is_finite()) {
            return bad("mib-per-sec", "must be a positive number");
        }
        if !(self.drain_timeout > 0.0 && self.drain_timeout.is_finite()) {
            return bad("drain-timeout", "must be a positive number of seconds");
        }
        Ok(())
    }
}

/// The kill loop could not run.
#[derive(Debug, thiserror::Error)]
pub enum KillLoopError {
    /// A flag has an unusable value.
    #[error("invalid --{flag}: {reason}")]
    InvalidArg {
        /// The flag's name.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The generator failed.
    #[error(transparent)]
    Pods(#[from] PodsError),
    /// The agent could not be run.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// Verification could not run.
    #[error(transparent)]
    Verify(#[from] crate::verify::VerifyError),
    /// Creating the work directory failed.
    #[error("creating {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A task of the loop panicked.
    #[error("a task of the kill loop failed: {0}")]
    Join(String),
}

/// One SIGKILL and what the agent had in flight.
#[derive(Debug, Clone)]
pub struct Kill {
    /// When the agent was killed.
    pub at: DateTime<Utc>,
    /// How long the killed run lived.
    pub lived: Duration,
    /// How long the agent stayed down before the next run was started.
    pub downtime: Duration,
    /// The last scrape before the kill (`None` when it did not answer).
    pub before: Option<Scrape>,
}

/// A time span in which the agent was not reading.
#[derive(Debug, Clone, Copy)]
pub struct DownWindow {
    /// From (the kill).
    pub from: DateTime<Utc>,
    /// To (the next run answering, plus its start-up grace).
    pub to: DateTime<Utc>,
}

/// Runs the loop and verifies; the report says whether the targets were met.
pub async fn run(args: &KillLoopArgs) -> Result<KillLoopReport, KillLoopError> {
    args.validate()?;
    let seed = args.seed.unwrap_or_else(|| rand::rng().random());
    let setup = AgentSetup {
        binary: args.agent.clone(),
        pods_root: args.work_dir.join("pods"),
        out: args.work_dir.join("out"),
        data: args.work_dir.join("data"),
        logs: args.work_dir.clone(),
        batch_timeout: args.batch_timeout.clone(),
        extra_args: args.agent_args.clone(),
        log_filter: args.agent_log.clone(),
    };
    for dir in [&setup.pods_root, &setup.out, &setup.data] {
        std::fs::create_dir_all(dir).map_err(|source| KillLoopError::Io {
            path: dir.clone(),
            source,
        })?;
    }
    let pods_args = args.pods_args(seed);
    let generator_done = CancellationToken::new();
    let generator = {
        let done = generator_done.clone();
        tokio::spawn(async move {
            let result = pods::run(&pods_args, CancellationToken::new()).await;
            done.cancel();
            result
        })
    };
    let loop_args = args.clone();
    let loop_setup = setup.clone();
    let driver =
        tokio::task::spawn_blocking(move || drive(&loop_args, &loop_setup, seed, &generator_done));
    let driven = driver
        .await
        .map_err(|e| KillLoopError::Join(e.to_string()))?;
    let summary = generator
        .await
        .map_err(|e| KillLoopError::Join(e.to_string()))??;
    let driven = driven?;

    let ledger = Ledger::read(&args.work_dir.join("ledger.json"))
        .map_err(crate::verify::VerifyError::from)?;
    let mut tally =
        Tally::new(&ledger, Expectations::default()).map_err(crate::verify::VerifyError::from)?;
    let mut incarnations = Vec::new();
    for (run, objects) in driven.objects.iter().enumerate() {
        let (dups, dup_bytes, corrupted) = (
            tally.duplicated_so_far(),
            tally.duplicated_bytes_so_far(),
            tally.corrupted_so_far(),
        );
        for path in objects {
            dir::read_file(&setup.out, path, &mut tally).await;
        }
        incarnations.push(Incarnation {
            run,
            objects: objects.len(),
            duplicated: tally.duplicated_so_far() - dups,
            duplicated_bytes: tally.duplicated_bytes_so_far() - dup_bytes,
            corrupted_deliveries: tally.corrupted_so_far() - corrupted,
        });
    }
    let verify = tally.finish(usize::MAX);
    Ok(report::build(report::Inputs {
        args,
        seed,
        ledger: &ledger,
        verify,
        kills: driven.kills,
        down: driven.down,
        incarnations,
        final_scrape: driven.final_scrape,
        drained: driven.drained,
        graceful_exit: driven.graceful_exit,
        counts: summary.counts,
        bytes_written: summary.stats.bytes,
        elapsed: driven.elapsed,
    }))
}

/// What the blocking driver observed.
struct Driven {
    kills: Vec<Kill>,
    down: Vec<DownWindow>,
    /// Objects first seen after each run ended, per run (the last entry: the final run).
    objects: Vec<Vec<PathBuf>>,
    final_scrape: Option<Scrape>,
    drained: bool,
    graceful_exit: bool,
    elapsed: Duration,
}

/// Starts, scrapes and kills agent runs until the generator is done and enough kills happened,
/// then lets a last run drain and stops it with SIGTERM.
fn drive(
    args: &KillLoopArgs,
    setup: &AgentSetup,
    seed: u64,
    generator_done: &CancellationToken,
) -> Result<Driven, KillLoopError> {
    let started = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6b69_6c6c);
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut objects = Vec::new();
    let mut kills = Vec::new();
    let mut down = Vec::new();
    let mut pending_down: Option<DateTime<Utc>> = None;
    while kills.len() < args.kills || !generator_done.is_cancelled() {
        let run = AgentRun::start(setup, kills.len())?;
        let run_started = Instant::now();
        if let Some(from) = pending_down.take() {
            down.push(DownWindow {
                from,
                to: Utc::now() + STARTUP_GRACE,
            });
        }
        let lifetime =
            Duration::from_secs_f64(rng.random_range(args.min_interval..=args.max_interval));
        std::thread::sleep(lifetime.saturating_sub(Duration::from_millis(100)));
        let before = run.scrape();
        run.kill();
        let at = Utc::now();
        let downtime = match rng.random_bool(args.downtime_share) {
            true => Duration::from_secs_f64(rng.random_range(5.0..=10.0)),
            false => Duration::ZERO,
        };
        objects.push(new_objects(&setup.out, &mut seen));
        kills.push(Kill {
            at,
            lived: run_started.elapsed(),
            downtime,
            before,
        });
        pending_down = Some(at);
        eprintln!(
            "kill-loop: kill {} after {:.1}s (unacknowledged {:.0} bytes){}",
            kills.len(),
            run_started.elapsed().as_secs_f64(),
            before.map_or(f64::NAN, |s| s.unacknowledged_bytes),
            match downtime.is_zero() {
                true => String::new(),
                false => format!(", down for {:.1}s", downtime.as_secs_f64()),
            }
        );
        std::thread::sleep(downtime);
    }
    let run = AgentRun::start(setup, kills.len())?;
    if let Some(from) = pending_down.take() {
        down.push(DownWindow {
            from,
            to: Utc::now() + STARTUP_GRACE,
        });
    }
    let deadline = Instant::now() + Duration::from_secs_f64(args.drain_timeout);
    let (mut quiet, mut last_count) = (0, usize::MAX);
    let mut final_scrape = None;
    let drained = loop {
        std::thread::sleep(DRAIN_POLL);
        let count = agent::object_files(&setup.out).len();
        let scrape = run.scrape();
        final_scrape = scrape.or(final_scrape);
        let idle = scrape.is_some_and(|s| s.unacknowledged_bytes == 0.0) && count == last_count;
        quiet = if idle { quiet + 1 } else { 0 };
        last_count = count;
        if quiet >= DRAINED_POLLS {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
    };
    let graceful_exit = run
        .terminate(Duration::from_secs(60))
        .is_some_and(|status| status.success());
    objects.push(new_objects(&setup.out, &mut seen));
    Ok(Driven {
        kills,
        down,
        objects,
        final_scrape,
        drained,
        graceful_exit,
        elapsed: started.elapsed(),
    })
}

/// Objects under `out` not seen before, sorted; marks them seen.
fn new_objects(out: &std::path::Path, seen: &mut HashSet<PathBuf>) -> Vec<PathBuf> {
    agent::object_files(out)
        .into_iter()
        .filter(|p| seen.insert(p.clone()))
        .collect()
}
