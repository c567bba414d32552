//! `logrelay-testgen ndjson`: records in the common schema, one JSON line each, to a writer.
//!
//! Lines come in batches (a size drawn from `--min/max-batch-size`) separated by sleeps (drawn from
//! `--min/max-sleep`), or paced to `--rate` lines/s. Records are spread over `--tenants` customers ×
//! `--pods` pods; each (customer, pod) is one ledger source `customer/pod` whose lines carry
//! `lrseq=customer/pod#n`. With `--seed`, output is fully deterministic: the content comes from a
//! seeded generator and timestamps from a virtual clock starting at [`SEEDED_CLOCK_START`].

use crate::content::{ContentGenerator, SizeModel, TimestampFormat};
use crate::ledger::{Book, LedgerError, SourceHandle, SourceMeta};
use crate::seq::{self, SeqToken};
use crate::stats::Stats;
use chrono::{DateTime, TimeDelta, Utc};
use logrelay_common::record::{KubernetesMeta, LogRecord};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Where the virtual clock starts when `--seed` is given (2024-01-01T00:00:00Z).
pub const SEEDED_CLOCK_START: i64 = 1_704_067_200;

/// Virtual time between two lines of a batch in the sleep model.
const VIRTUAL_LINE_GAP: TimeDelta = TimeDelta::microseconds(1);

/// Range of the simulated delay between a line's timestamp and its ingest timestamp, in ms.
const INGEST_DELAY_MS: (i64, i64) = (5, 500);

/// Label the agent derives the application from.
const APP_LABEL: &str = "app.kubernetes.io/name";

/// Flags of `logrelay-testgen ndjson`.
#[derive(Debug, Clone, clap::Args)]
pub struct NdjsonArgs {
    /// Fewest lines per batch.
    #[arg(long, default_value_t = 1)]
    pub min_batch_size: u64,
    /// Most lines per batch.
    #[arg(long, default_value_t = 100)]
    pub max_batch_size: u64,
    /// Shortest sleep between batches, in seconds.
    #[arg(long, default_value_t = 0.1)]
    pub min_sleep: f64,
    /// Longest sleep between batches, in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub max_sleep: f64,
    /// Smallest typical message, in bytes (short lines are padded).
    #[arg(long, default_value_t = 80)]
    pub min_message_bytes: usize,
    /// Largest typical message, in bytes (large lines excepted).
    #[arg(long, default_value_t = 400)]
    pub max_message_bytes: usize,
    /// Share of lines that are multi-KiB or over 16 KiB (0 disables them).
    #[arg(long, default_value_t = 0.01)]
    pub large_line_ratio: f64,
    /// Customer id (the prefix `<id>-<n>` when `--tenants` > 1).
    #[arg(long, default_value = "customer-1")]
    pub customer_id: String,
    /// Cluster id written into every record.
    #[arg(long, default_value = "cluster-1")]
    pub cluster_id: String,
    /// Application name written into every record.
    #[arg(long, default_value = "app")]
    pub application: String,
    /// Pod name (the prefix `<name>-<n>` when `--pods` > 1).
    #[arg(long, default_value = "pod-1")]
    pub pod_name: String,
    /// Node name written into every record.
    #[arg(long, default_value = "node-1")]
    pub node_name: String,
    /// Batches to write before exiting; 0 runs until a signal.
    #[arg(long, default_value_t = 0)]
    pub total_batches: u64,
    /// Seconds between progress lines on stderr; 0 prints only the final one.
    #[arg(long, default_value_t = 10.0)]
    pub stats_interval: f64,
    /// Lines per second; replaces the sleep model (raise --max-batch-size for high rates).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seed for deterministic output (content and timestamps); random when absent.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Number of customers to spread records over.
    #[arg(long, default_value_t = 1)]
    pub tenants: usize,
    /// Number of pods per customer to spread records over.
    #[arg(long, default_value_t = 1)]
    pub pods: usize,
    /// Style of the timestamp (and line) inside the message text.
    #[arg(long, value_enum, default_value_t)]
    pub timestamp_format: TimestampFormat,
    /// Write the ledger of generated lines to this file.
    #[arg(long)]
    pub ledger: Option<PathBuf>,
    /// Seconds between periodic ledger writes.
    #[arg(long, default_value_t = 5.0)]
    pub ledger_interval: f64,
}

impl Default for NdjsonArgs {
    fn default() -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: NdjsonArgs,
        }
        // Parsing no flags yields the documented defaults; it cannot fail.
        Wrapper::try_parse_from(["ndjson"])
            .map(|w| w.args)
            .unwrap_or_else(|_| unreachable!("defaults parse"))
    }
}

/// The `ndjson` generator failed.
#[derive(Debug, thiserror::Error)]
pub enum NdjsonError {
    /// A flag has an unusable value.
    #[error("invalid --{flag}: {reason}")]
    InvalidArg {
        /// The flag's name.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Writing the output failed (other than a closed pipe).
    #[error("writing output: {0}")]
    Output(#[source] io::Error),
    /// Writing the ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Why the generator stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// It wrote `--total-batches` batches (or reached `--duration`).
    Finished,
    /// SIGINT/SIGTERM (the cancellation token).
    Signal,
    /// The reader closed the pipe.
    BrokenPipe,
}

/// What a finished run did.
#[derive(Debug, Clone)]
pub struct NdjsonSummary {
    /// Lines and bytes written.
    pub stats: Stats,
    /// Why it stopped.
    pub stop: StopReason,
    /// The seed used (the given one or a random one), to reproduce the content.
    pub seed: u64,
}

impl NdjsonArgs {
    /// Checks the flags; the error names the bad flag.
    pub fn validate(&self) -> Result<(), NdjsonError> {
        let bad = |flag, reason: &str| {
            Err(NdjsonError::InvalidArg {
                flag,
                reason: reason.to_string(),
            })
        };
        if self.min_batch_size == 0 || self.min_batch_size > self.max_batch_size {
            return bad(
                "min-batch-size",
                "must be at least 1 and at most --max-batch-size",
            );
        }
        if !(self.min_sleep.is_finite()
            && self.min_sleep >= 0.0
            && self.min_sleep <= self.max_sleep)
        {
            return bad("min-sleep", "must be >= 0 and at most --max-sleep");
        }
        if !self.max_sleep.is_finite() {
            return bad("max-sleep", "must be finite");
        }
        if self.min_message_bytes > self.max_message_bytes {
            return bad("min-message-bytes", "must be at most --max-message-bytes");
        }
        if !(0.0..=1.0).contains(&self.large_line_ratio) {
            return bad("large-line-ratio", "must be between 0 and 1");
        }
        if let Some(rate) = self.rate.filter(|r| !(r.is_finite() && *r > 0.0)) {
            return bad("rate", &format!("{rate} is not a positive number"));
        }
        if !(self.stats_interval.is_finite() && self.stats_interval >= 0.0) {
            return bad("stats-interval", "must be >= 0");
        }
        if !(self.ledger_interval.is_finite() && self.ledger_interval > 0.0) {
            return bad("ledger-interval", "must be > 0");
        }
        if self.tenants == 0 {
            return bad("tenants", "must be at least 1");
        }
        if self.pods == 0 {
            return bad("pods", "must be at least 1");
        }
        for (flag, value) in [
            ("customer-id", &self.customer_id),
            ("cluster-id", &self.cluster_id),
            ("application", &self.application),
            ("pod-name", &self.pod_name),
            ("node-name", &self.node_name),
        ] {
            if !seq::is_valid_component(value) {
                return bad(
                    flag,
                    "must be non-empty ASCII letters, digits, '-', '.', '_' or ':'",
                );
            }
        }
        Ok(())
    }
}

/// One (customer, pod) pair records are spread over.
struct Source {
    customer_id: String,
    pod_name: String,
    pod_uid: String,
    handle: SourceHandle,
}

/// Makes records: deterministic for a given seed and flags; owns the ledger book.
struct RecordGenerator {
    rng: ChaCha8Rng,
    content: ContentGenerator,
    sources: Vec<Source>,
    book: Book,
    clock: Option<DateTime<Utc>>,
    line_gap: TimeDelta,
    args: NdjsonArgs,
}

impl RecordGenerator {
    fn new(args: &NdjsonArgs, seed: u64, virtual_clock: bool) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut book = Book::new("ndjson");
        let numbered = |base: &str, n: usize, i: usize| {
            if n == 1 {
                base.to_string()
            } else {
                format!("{base}-{i}")
            }
        };
        let mut sources = Vec::new();
        for t in 1..=args.tenants {
            let customer_id = numbered(&args.customer_id, args.tenants, t);
            for p in 1..=args.pods {
                let pod_name = numbered(&args.pod_name, args.pods, p);
                let pod_uid = crate::kube_objects::random_uid(&mut rng);
                let handle = book.register(SourceMeta {
                    source: seq::source_id(&[&customer_id, &pod_name]),
                    customer_id: customer_id.clone(),
                    cluster_id: Some(args.cluster_id.clone()),
                    namespace: customer_id.clone(),
                    pod: pod_name.clone(),
                    pod_uid: Some(pod_uid.clone()),
                    container: args.application.clone(),
                    stream: None,
                    application: args.application.clone(),
                });
                sources.push(Source {
                    customer_id: customer_id.clone(),
                    pod_name,
                    pod_uid,
                    handle,
                });
            }
        }
        let line_gap = match args.rate {
            Some(rate) => TimeDelta::nanoseconds((1e9 / rate) as i64),
            None => VIRTUAL_LINE_GAP,
        };
        Self {
            rng,
            content: ContentGenerator::new(
                args.timestamp_format,
                SizeModel {
                    min_bytes: args.min_message_bytes,
                    max_bytes: args.max_message_bytes,
                    large_ratio: args.large_line_ratio,
                },
            ),
            sources,
            book,
            clock: virtual_clock
                .then(|| DateTime::from_timestamp(SEEDED_CLOCK_START, 0).unwrap_or_default()),
            line_gap,
            args: args.clone(),
        }
    }

    fn now(&mut self) -> DateTime<Utc> {
        match self.clock.as_mut() {
            Some(clock) => {
                *clock += self.line_gap;
                *clock
            }
            None => Utc::now(),
        }
    }

    fn advance(&mut self, by: Duration) {
        if let Some(clock) = self.clock.as_mut() {
            *clock += TimeDelta::from_std(by).unwrap_or_default();
        }
    }

    fn sleep_between_batches(&mut self) -> Duration {
        Duration::from_secs_f64(
            self.rng
                .random_range(self.args.min_sleep..=self.args.max_sleep),
        )
    }

    fn batch_size(&mut self) -> u64 {
        self.rng
            .random_range(self.args.min_batch_size..=self.args.max_batch_size)
    }

    /// The next record as one JSON line with its newline.
    fn next_line(&mut self) -> Vec<u8> {
        let pick = self.rng.random_range(0..self.sources.len());
        let ts = self.now();
        let level = self.content.pick_level(&mut self.rng);
        let stream = self.content.pick_stream(&mut self.rng, level);
        let Some(source) = self.sources.get(pick) else {
            return Vec::new();
        };
        let n = self.book.next_seq(source.handle);
        let token = SeqToken {
            source: self.book.source_id(source.handle),
            seq: n,
        };
        let message = self.content.render(&mut self.rng, level, &token, ts);
        let ingest = ts
            + TimeDelta::milliseconds(self.rng.random_range(INGEST_DELAY_MS.0..=INGEST_DELAY_MS.1));
        let app = &self.args.application;
        let record = LogRecord {
            timestamp: ts,
            message,
            stream,
            customer_id: source.customer_id.clone(),
            cluster_id: self.args.cluster_id.clone(),
            namespace: source.customer_id.clone(),
            application: app.clone(),
            pod_name: source.pod_name.clone(),
            container_name: app.clone(),
            node_name: self.args.node_name.clone(),
            ingest_timestamp: ingest,
            kubernetes: Some(KubernetesMeta {
                pod_uid: Some(source.pod_uid.clone()),
                labels: BTreeMap::from([(APP_LABEL.to_string(), app.clone())]),
                container_image: Some(format!("registry.example.com/{app}:1.4.2")),
                owner: Some(format!("Deployment/{app}")),
                ..Default::default()
            }),
            extra: Default::default(),
        };
        // A record of strings and timestamps always serializes.
        let mut line = serde_json::to_vec(&record).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// Runs the generator, writing lines to `out` until done, `shutdown` is cancelled or the pipe closes.
///
/// Prints progress to stderr every `--stats-interval`. The ledger (if asked) is written
/// periodically and once more at the end, also after a signal or a closed pipe.
pub async fn run<W: Write>(
    args: &NdjsonArgs,
    mut out: W,
    shutdown: CancellationToken,
) -> Result<NdjsonSummary, NdjsonError> {
    args.validate()?;
    let seed = args.seed.unwrap_or_else(|| rand::rng().random());
    let mut generator = RecordGenerator::new(args, seed, args.seed.is_some());
    let mut stats = Stats::new();
    let stats_interval = Duration::from_secs_f64(args.stats_interval);
    let ledger_interval = Duration::from_secs_f64(args.ledger_interval);
    let mut last_ledger = Instant::now();
    let pace_start = Instant::now();
    let mut batches = 0u64;
    let stop = 'run: loop {
        let size = generator.batch_size();
        for _ in 0..size {
            if shutdown.is_cancelled() {
                break 'run StopReason::Signal;
            }
            let line = generator.next_line();
            if let Err(e) = out.write_all(&line) {
                break 'run output_stop(e)?;
            }
            stats.add_line(line.len());
        }
        if let Err(e) = out.flush() {
            break 'run output_stop(e)?;
        }
        batches += 1;
        if stats.report_due(stats_interval) {
            eprintln!("logrelay-testgen ndjson: {}", stats.summary());
        }
        if let Some(path) = args
            .ledger
            .as_deref()
            .filter(|_| last_ledger.elapsed() >= ledger_interval)
        {
            generator
                .book
                .snapshot(false, Utc::now())
                .write_atomic(path)?;
            last_ledger = Instant::now();
        }
        if args.total_batches > 0 && batches >= args.total_batches {
            break StopReason::Finished;
        }
        let pause = match args.rate {
            Some(rate) => {
                let due = pace_start + Duration::from_secs_f64(stats.lines as f64 / rate);
                due.saturating_duration_since(Instant::now())
            }
            None => {
                let pause = generator.sleep_between_batches();
                generator.advance(pause);
                pause
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break StopReason::Signal,
            _ = tokio::time::sleep(pause) => {}
        }
    };
    if let Some(path) = args.ledger.as_deref() {
        generator
            .book
            .snapshot(true, Utc::now())
            .write_atomic(path)?;
    }
    Ok(NdjsonSummary { stats, stop, seed })
}

/// A closed pipe ends the run quietly; any other write error is an error.
fn output_stop(error: io::Error) -> Result<StopReason, NdjsonError> {
    if error.kind() == io::ErrorKind::BrokenPipe {
        Ok(StopReason::BrokenPipe)
    } else {
        Err(NdjsonError::Output(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Ledger;
    use std::collections::HashMap;

    fn quick_args(seed: u64) -> NdjsonArgs {
        NdjsonArgs {
            min_sleep: 0.0,
            max_sleep: 0.0,
            total_batches: 5,
            stats_interval: 0.0,
            seed: Some(seed),
            tenants: 2,
            pods: 3,
            large_line_ratio: 0.05,
            ..NdjsonArgs::default()
        }
    }

    async fn output(args: &NdjsonArgs) -> (Vec<u8>, NdjsonSummary) {
        let mut out = Vec::new();
        let summary = run(args, &mut out, CancellationToken::new())
            .await
            .expect("runs");
        (out, summary)
    }

    #[tokio::test]
    async fn same_seed_and_flags_give_byte_identical_output() {
        let (a, _) = output(&quick_args(7)).await;
        let (b, _) = output(&quick_args(7)).await;
        let (c, _) = output(&quick_args(8)).await;
        assert!(!a.is_empty());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let first: LogRecord =
            serde_json::from_slice(a.split(|b| *b == b'\n').next().expect("a line"))
                .expect("record");
        assert_eq!(first.timestamp.timestamp(), SEEDED_CLOCK_START);
    }

    #[tokio::test]
    async fn records_spread_over_tenants_and_pods_with_gapless_sequences_matching_the_ledger() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger_path = dir.path().join("ledger.json");
        let args = NdjsonArgs {
            ledger: Some(ledger_path.clone()),
            min_batch_size: 50,
            max_batch_size: 50,
            ..quick_args(1)
        };
        let (out, summary) = output(&args).await;
        assert_eq!(summary.stop, StopReason::Finished);
        assert_eq!(summary.stats.lines, 250);
        let mut next: HashMap<String, u64> = HashMap::new();
        for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let record: LogRecord = serde_json::from_slice(line).expect("record");
            let token = seq::parse(&record.message).expect("token");
            assert_eq!(
                token.source,
                format!("{}/{}", record.customer_id, record.pod_name)
            );
            let expected = next.entry(token.source.to_string()).or_default();
            assert_eq!(token.seq, *expected, "gapless per source");
            *expected += 1;
        }
        assert_eq!(next.len(), 6, "2 tenants x 3 pods");
        assert!(next.contains_key("customer-1-2/pod-1-3"));
        let ledger = Ledger::read(&ledger_path).expect("ledger");
        assert!(ledger.complete);
        for entry in &ledger.sources {
            assert_eq!(Some(&(entry.last_seq + 1)), next.get(&entry.meta.source));
        }
        assert_eq!(ledger.sources.len(), 6);
    }

    #[tokio::test]
    async fn a_closed_pipe_stops_quietly() {
        struct ClosedAfter(usize);
        impl Write for ClosedAfter {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::ErrorKind::BrokenPipe.into());
                }
                self.0 -= 1;
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let args = NdjsonArgs {
            total_batches: 0,
            ..quick_args(3)
        };
        let summary = run(&args, ClosedAfter(10), CancellationToken::new())
            .await
            .expect("no error");
        assert_eq!(summary.stop, StopReason::BrokenPipe);
        assert_eq!(summary.stats.lines, 10);
    }

    #[tokio::test]
    async fn cancellation_stops_an_endless_run_and_writes_the_final_ledger() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger_path = dir.path().join("ledger.json");
        let args = NdjsonArgs {
            total_batches: 0,
            min_sleep: 0.01,
            max_sleep: 0.01,
            ledger: Some(ledger_path.clone()),
            ..quick_args(4)
        };
        let token = CancellationToken::new();
        let cancel = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            cancel.cancel();
        });
        let mut out = Vec::new();
        let summary = run(&args, &mut out, token).await.expect("runs");
        assert_eq!(summary.stop, StopReason::Signal);
        assert!(out.ends_with(b"\n"), "the last line is complete");
        let ledger = Ledger::read(&ledger_path).expect("ledger");
        let total: u64 = ledger.sources.iter().map(|e| e.lines()).sum();
        assert_eq!(total, summary.stats.lines);
    }

    #[test]
    fn invalid_flags_are_named() {
        let args = NdjsonArgs {
            min_batch_size: 10,
            max_batch_size: 5,
            ..NdjsonArgs::default()
        };
        assert!(matches!(
            args.validate(),
            Err(NdjsonError::InvalidArg {
                flag: "min-batch-size",
                ..
            })
        ));
        let args = NdjsonArgs {
            customer_id: "a/b".into(),
            ..NdjsonArgs::default()
        };
        assert!(matches!(
            args.validate(),
            Err(NdjsonError::InvalidArg {
                flag: "customer-id",
                ..
            })
        ));
        let args = NdjsonArgs {
            rate: Some(0.0),
            ..NdjsonArgs::default()
        };
        assert!(matches!(
            args.validate(),
            Err(NdjsonError::InvalidArg { flag: "rate", .. })
        ));
    }
}
