//! `logrelay-testgen pods`: a kubelet-like `/var/log/pods` tree written at a steady rate.
//!
//! Flags become a [`ClusterConfig`]; the loop wakes every [`TICK`], writes the lines due at
//! `--rate`, flushes them, and now and then churns pods, removes deleted pods' directories,
//! prints progress and rewrites the ledger. It stops at `--duration` or on SIGINT/SIGTERM,
//! flushing every file and writing the final ledger.

use crate::cluster::{
    Cluster, ClusterConfig, ClusterCounts, ClusterIoError, LogFormat, WriterKind,
};
use crate::containerd::RotationMode;
use crate::content::{ContentGenerator, SizeModel, TimestampFormat};
use crate::ledger::LedgerError;
use crate::ndjson::StopReason;
use crate::rotation::{self, RotationPolicy};
use crate::stats::Stats;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often the writer wakes up to write the lines due.
pub const TICK: Duration = Duration::from_millis(10);

/// Most lines written in one tick, so a stalled disk cannot make one tick run unbounded.
const MAX_LINES_PER_TICK: u64 = 100_000;

/// Longest Kubernetes namespace name (a DNS-1123 label).
const MAX_NAMESPACE_LEN: usize = 63;

/// Flags of `logrelay-testgen pods`.
#[derive(Debug, Clone, clap::Args)]
pub struct PodsArgs {
    /// Root of the tree (`/var/log/pods` on a node).
    #[arg(long)]
    pub root: PathBuf,
    /// Line format on disk.
    #[arg(long, value_enum, default_value_t)]
    pub format: LogFormat,
    /// How lines reach the files: `simple` (one thread, each line's entries at once) or
    /// `containerd` (a writer thread per stream, interleaved entries, sealed lines; CRI only).
    #[arg(long, value_enum, default_value_t)]
    pub writer: WriterKind,
    /// How the containerd writer's files are rotated: the kubelet's `rename` or `copytruncate`.
    #[arg(long, value_enum, default_value_t)]
    pub rotation: RotationMode,
    /// Share of lines (containerd writer) of 16 KiB to a few hundred KiB with multi-byte
    /// characters across the 16 KiB cuts, on both streams.
    #[arg(long, default_value_t = 0.005)]
    pub long_line_ratio: f64,
    /// Tenants: a count N (tenant-1 … tenant-N) or a comma-separated list of names.
    #[arg(long, visible_alias = "namespaces", default_value = "2")]
    pub tenants: TenantList,
    /// Namespaces per tenant (named `<tenant>` when 1, `<tenant>-<n>` otherwise).
    #[arg(long, default_value_t = 1)]
    pub namespaces_per_tenant: usize,
    /// Pods per namespace (each its own Deployment).
    #[arg(long, default_value_t = 3)]
    pub pods_per_namespace: usize,
    /// Containers per pod.
    #[arg(long, default_value_t = 2)]
    pub containers_per_pod: usize,
    /// Lines per second over all containers.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds to run; 0 runs until SIGINT/SIGTERM.
    #[arg(long, default_value = "0", value_parser = crate::seconds)]
    pub duration: f64,
    /// Seed for deterministic names, UIDs and content; random when absent.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Rotate a container's log at this size in bytes (kubelet containerLogMaxSize); 0 never.
    #[arg(long, default_value_t = rotation::DEFAULT_MAX_SIZE)]
    pub max_size: u64,
    /// Most log files per container, the live one included (kubelet containerLogMaxFiles).
    #[arg(long, default_value_t = rotation::DEFAULT_MAX_FILES)]
    pub max_files: usize,
    /// Seconds between churn steps (a pod replaced, a container restarted); 0 disables churn.
    #[arg(long, default_value = "0", value_parser = crate::seconds)]
    pub churn_interval: f64,
    /// Seconds before a deleted pod's directory is removed.
    #[arg(long, default_value = "5", value_parser = crate::seconds)]
    pub removal_delay: f64,
    /// Write Namespace and Pod objects (JSON) under this directory.
    #[arg(long)]
    pub kube_objects: Option<PathBuf>,
    /// Node name in Pod objects.
    #[arg(long, default_value = "node-1")]
    pub node_name: String,
    /// Write the ledger of generated lines to this file.
    #[arg(long)]
    pub ledger: Option<PathBuf>,
    /// Seconds between periodic ledger writes.
    #[arg(long, default_value = "5", value_parser = crate::seconds)]
    pub ledger_interval: f64,
    /// Seconds between progress lines on stderr; 0 prints only the final one.
    #[arg(long, default_value = "10", value_parser = crate::seconds)]
    pub stats_interval: f64,
    /// Smallest typical message, in bytes.
    #[arg(long, default_value_t = 80)]
    pub min_message_bytes: usize,
    /// Largest typical message, in bytes (large lines excepted).
    #[arg(long, default_value_t = 400)]
    pub max_message_bytes: usize,
    /// Share of lines that are multi-KiB or over 16 KiB (0 disables them).
    #[arg(long, default_value_t = 0.01)]
    pub large_line_ratio: f64,
    /// Style of the timestamp (and line) inside the message text.
    #[arg(long, value_enum, default_value_t)]
    pub timestamp_format: TimestampFormat,
}

impl PodsArgs {
    /// Flags with their defaults and the given root.
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: PodsArgs,
        }
        let root = root.into();
        // Parsing only --root yields the documented defaults; it cannot fail.
        Wrapper::try_parse_from([
            std::ffi::OsStr::new("pods"),
            "--root".as_ref(),
            root.as_os_str(),
        ])
        .map(|w| w.args)
        .unwrap_or_else(|_| unreachable!("defaults parse"))
    }
}

/// The tenants of the simulated node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantList(pub Vec<String>);

impl FromStr for TenantList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(n) = s.trim().parse::<usize>() {
            if n == 0 {
                return Err("at least one tenant is needed".into());
            }
            return Ok(TenantList((1..=n).map(|i| format!("tenant-{i}")).collect()));
        }
        let names: Vec<String> = s.split(',').map(|t| t.trim().to_string()).collect();
        for name in &names {
            if !is_dns_label(name) {
                return Err(format!(
                    "{name:?} is not a valid namespace name (lowercase letters, digits, '-')"
                ));
            }
        }
        Ok(TenantList(names))
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAMESPACE_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The `pods` generator failed.
#[derive(Debug, thiserror::Error)]
pub enum PodsError {
    /// A flag has an unusable value.
    #[error("invalid --{flag}: {reason}")]
    InvalidArg {
        /// The flag's name.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Writing the tree failed.
    #[error(transparent)]
    Io(#[from] ClusterIoError),
    /// Writing the ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// What a finished run did.
#[derive(Debug, Clone)]
pub struct PodsSummary {
    /// Lines and bytes written.
    pub stats: Stats,
    /// Why it stopped.
    pub stop: StopReason,
    /// The seed used.
    pub seed: u64,
    /// Pods created/deleted, restarts, rotations.
    pub counts: ClusterCounts,
}

impl PodsArgs {
    /// Checks the flags; the error names the bad flag.
    pub fn validate(&self) -> Result<(), PodsError> {
        let bad = |flag, reason: &str| {
            Err(PodsError::InvalidArg {
                flag,
                reason: reason.to_string(),
            })
        };
        let seconds = |v: f64| v.is_finite() && v >= 0.0;
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return bad("rate", "must be a positive number");
        }
        for (flag, value) in [
            ("duration", self.duration),
            ("churn-interval", self.churn_interval),
            ("removal-delay", self.removal_delay),
            ("stats-interval", self.stats_interval),
        ] {
            if !seconds(value) {
                return bad(flag, "must be a number of seconds >= 0");
            }
        }
        if !(self.ledger_interval.is_finite() && self.ledger_interval > 0.0) {
            return bad("ledger-interval", "must be > 0");
        }
        if self.max_files < rotation::MIN_MAX_FILES {
            return bad(
                "max-files",
                "must be at least 2 (like the kubelet's containerLogMaxFiles)",
            );
        }
        for (flag, value) in [
            ("namespaces-per-tenant", self.namespaces_per_tenant),
            ("pods-per-namespace", self.pods_per_namespace),
            ("containers-per-pod", self.containers_per_pod),
        ] {
            if value == 0 {
                return bad(flag, "must be at least 1");
            }
        }
        if self.min_message_bytes > self.max_message_bytes {
            return bad("min-message-bytes", "must be at most --max-message-bytes");
        }
        if !(0.0..=1.0).contains(&self.large_line_ratio) {
            return bad("large-line-ratio", "must be between 0 and 1");
        }
        if !(0.0..=1.0).contains(&self.long_line_ratio) {
            return bad("long-line-ratio", "must be between 0 and 1");
        }
        if self.writer == WriterKind::Containerd && self.format != LogFormat::Cri {
            return bad(
                "writer",
                "containerd writes the CRI format only (--format cri)",
            );
        }
        if self.rotation == RotationMode::Copytruncate && self.writer != WriterKind::Containerd {
            return bad("rotation", "copytruncate needs --writer containerd");
        }
        if self.tenants.0.is_empty() {
            return bad("tenants", "at least one tenant is needed");
        }
        Ok(())
    }

    fn cluster_config(&self) -> ClusterConfig {
        ClusterConfig {
            root: self.root.clone(),
            format: self.format,
            tenants: self.tenants.0.clone(),
            namespaces_per_tenant: self.namespaces_per_tenant,
            pods_per_namespace: self.pods_per_namespace,
            containers_per_pod: self.containers_per_pod,
            rotation: RotationPolicy {
                max_size: self.max_size,
                max_files: self.max_files,
            },
            node_name: self.node_name.clone(),
            kube_objects: self.kube_objects.clone(),
            content: ContentGenerator::new(
                self.timestamp_format,
                SizeModel {
                    min_bytes: self.min_message_bytes,
                    max_bytes: self.max_message_bytes,
                    large_ratio: self.large_line_ratio,
                },
            ),
            writer: self.writer,
            rotation_mode: self.rotation,
            long_line_ratio: self.long_line_ratio,
        }
    }
}

/// Runs the generator until `--duration` passes or `shutdown` is cancelled.
pub async fn run(args: &PodsArgs, shutdown: CancellationToken) -> Result<PodsSummary, PodsError> {
    args.validate()?;
    let seed = args.seed.unwrap_or_else(|| rand::rng().random());
    let mut cluster = Cluster::start(args.cluster_config(), ChaCha8Rng::seed_from_u64(seed))?;
    let mut stats = Stats::new();
    let secs = Duration::from_secs_f64;
    let (stats_interval, ledger_interval) = (secs(args.stats_interval), secs(args.ledger_interval));
    let duration = (args.duration > 0.0).then(|| secs(args.duration));
    let churn_interval = (args.churn_interval > 0.0).then(|| secs(args.churn_interval));
    let removal_delay = secs(args.removal_delay);
    let start = Instant::now();
    let (mut last_ledger, mut last_churn) = (start, start);
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break StopReason::Signal,
            _ = ticker.tick() => {}
        }
        let now = Instant::now();
        let elapsed = duration.map_or(now - start, |d| (now - start).min(d));
        let due = (elapsed.as_secs_f64() * args.rate) as u64;
        for _ in 0..due.saturating_sub(stats.lines).min(MAX_LINES_PER_TICK) {
            let bytes = cluster.write_line()?;
            stats.add_line(bytes);
        }
        cluster.flush()?;
        cluster.maintain()?;
        if let Some(interval) = churn_interval.filter(|i| now - last_churn >= *i) {
            last_churn += interval;
            cluster.churn(now + removal_delay)?;
        }
        cluster.remove_due(now)?;
        if stats.report_due(stats_interval) {
            eprintln!(
                "logrelay-testgen pods: {}",
                progress(&stats, &cluster.counts())
            );
        }
        if let Some(path) = args
            .ledger
            .as_deref()
            .filter(|_| now - last_ledger >= ledger_interval)
        {
            cluster.ledger(false).write_atomic(path)?;
            last_ledger = now;
        }
        if duration.is_some_and(|d| now - start >= d) {
            break StopReason::Finished;
        }
    };
    cluster.flush()?;
    cluster.close()?;
    if let Some(path) = args.ledger.as_deref() {
        cluster.ledger(true).write_atomic(path)?;
    }
    Ok(PodsSummary {
        stats,
        stop,
        seed,
        counts: cluster.counts(),
    })
}

/// The progress line: lines, bytes, rate, and the simulation's counters.
pub fn progress(stats: &Stats, counts: &ClusterCounts) -> String {
    format!(
        "{} rotations={} compressed={} deleted_files={} pods_created={} pods_deleted={} restarts={}",
        stats.summary(),
        counts.rotation.rotations,
        counts.rotation.compressions,
        counts.rotation.deletions,
        counts.pods_created,
        counts.pods_deleted,
        counts.restarts
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri;
    use crate::ledger::Ledger;
    use crate::seq;
    use std::collections::{BTreeSet, HashMap};
    use std::path::Path;

    fn files_under(root: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("read dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push(path);
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn tenants_are_a_count_or_a_list_of_namespace_names() {
        assert_eq!(
            "3".parse::<TenantList>().expect("count").0,
            ["tenant-1", "tenant-2", "tenant-3"]
        );
        assert_eq!(
            "acme, globex".parse::<TenantList>().expect("list").0,
            ["acme", "globex"]
        );
        assert!("0".parse::<TenantList>().is_err());
        assert!("Acme".parse::<TenantList>().is_err());
        assert!("acme,,b".parse::<TenantList>().is_err());
    }

    #[tokio::test]
    async fn short_run_writes_the_kubelet_layout_with_sequenced_cri_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("pods");
        let args = PodsArgs {
            rate: 2_000.0,
            duration: 0.3,
            seed: Some(11),
            large_line_ratio: 0.05,
            tenants: "acme,globex".parse().expect("tenants"),
            pods_per_namespace: 2,
            ledger: Some(dir.path().join("ledger.json")),
            stats_interval: 0.0,
            ..PodsArgs::with_root(&root)
        };
        let summary = run(&args, CancellationToken::new()).await.expect("runs");
        assert_eq!(summary.stop, StopReason::Finished);
        assert!(summary.stats.lines >= 300, "{}", summary.stats.lines);

        let files = files_under(&root);
        let mut per_source: HashMap<String, BTreeSet<u64>> = HashMap::new();
        for file in &files {
            let rel = file.strip_prefix(&root).expect("under root");
            let parts: Vec<&str> = rel.iter().map(|p| p.to_str().expect("utf-8")).collect();
            assert_eq!(parts.len(), 3, "{rel:?}");
            assert_eq!(parts[2], "0.log");
            let pod_dir: Vec<&str> = parts[0].split('_').collect();
            assert_eq!(pod_dir.len(), 3, "<namespace>_<pod>_<uid>: {}", parts[0]);
            let mut partial: HashMap<String, Vec<u8>> = HashMap::new();
            for line in std::fs::read(file)
                .expect("read")
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
            {
                let cri = cri::parse_line(line).expect("CRI line");
                let joined = partial.entry(cri.stream.to_string()).or_default();
                joined.extend_from_slice(cri.content);
                if !cri.is_final {
                    continue;
                }
                let text = String::from_utf8(std::mem::take(joined)).expect("joined line is UTF-8");
                let token = seq::parse(&text).expect("every line has a token");
                let expected_source =
                    format!("{}/{}/{}/{}", pod_dir[0], pod_dir[1], parts[1], cri.stream);
                assert_eq!(token.source, expected_source);
                assert!(
                    per_source
                        .entry(expected_source)
                        .or_default()
                        .insert(token.seq),
                    "no duplicates"
                );
            }
        }
        assert_eq!(
            files.len(),
            2 * 2 * 2,
            "2 namespaces x 2 pods x 2 containers"
        );
        let ledger = Ledger::read(&dir.path().join("ledger.json")).expect("ledger");
        assert!(ledger.complete);
        let total: u64 = ledger.sources.iter().map(|e| e.lines()).sum();
        assert_eq!(total, summary.stats.lines);
        for entry in &ledger.sources {
            assert!(["acme", "globex"].contains(&entry.meta.customer_id.as_str()));
            let seen = per_source
                .get(&entry.meta.source)
                .map_or(0, |s| s.len() as u64);
            assert_eq!(seen, entry.lines(), "{}", entry.meta.source);
        }
    }

    #[tokio::test]
    async fn churn_replaces_pods_restarts_containers_and_removes_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("pods");
        let objects = dir.path().join("objects");
        let args = PodsArgs {
            rate: 500.0,
            duration: 0.5,
            seed: Some(5),
            tenants: "1".parse().expect("tenants"),
            pods_per_namespace: 2,
            containers_per_pod: 1,
            churn_interval: 0.1,
            removal_delay: 0.0,
            kube_objects: Some(objects.clone()),
            stats_interval: 0.0,
            ..PodsArgs::with_root(&root)
        };
        let summary = run(&args, CancellationToken::new()).await.expect("runs");
        assert!(summary.counts.pods_deleted >= 2, "{:?}", summary.counts);
        assert_eq!(summary.counts.pods_created, 2 + summary.counts.pods_deleted);
        assert_eq!(summary.counts.dirs_removed, summary.counts.pods_deleted);
        assert!(summary.counts.restarts >= 2);
        let pod_dirs = std::fs::read_dir(&root).expect("root").count();
        assert_eq!(pod_dirs, 2, "deleted pods' directories are gone");
        let pod_files = files_under(&objects.join("pods"));
        assert_eq!(pod_files.len() as u64, summary.counts.pods_created);
        let deleted = pod_files
            .iter()
            .filter(|f| {
                let value: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(f).expect("read")).expect("json");
                value["metadata"]["deletionTimestamp"].is_string()
            })
            .count();
        assert_eq!(deleted as u64, summary.counts.pods_deleted);
        let restarted = pod_files.iter().any(|f| {
            let value: serde_json::Value =
                serde_json::from_slice(&std::fs::read(f).expect("read")).expect("json");
            value["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(1)
        });
        assert!(restarted, "restarts show in the Pod objects");
    }

    #[tokio::test]
    async fn docker_format_writes_json_file_entries_whose_parts_join_to_sequenced_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("pods");
        let args = PodsArgs {
            format: LogFormat::Docker,
            rate: 2_000.0,
            duration: 0.3,
            seed: Some(3),
            large_line_ratio: 0.05,
            ledger: Some(dir.path().join("ledger.json")),
            stats_interval: 0.0,
            ..PodsArgs::with_root(&root)
        };
        let summary = run(&args, CancellationToken::new()).await.expect("runs");
        let mut lines_per_source: HashMap<String, u64> = HashMap::new();
        let mut split_parts = 0;
        for file in files_under(&root) {
            let mut partial: HashMap<String, String> = HashMap::new();
            for line in std::fs::read_to_string(&file).expect("utf-8 file").lines() {
                let entry: serde_json::Value = serde_json::from_str(line).expect("json-file entry");
                let stream = entry["stream"].as_str().expect("stream").to_string();
                assert!(entry["time"].as_str().is_some_and(|t| t.ends_with('Z')));
                let joined = partial.entry(stream.clone()).or_default();
                joined.push_str(entry["log"].as_str().expect("log"));
                let Some(text) = joined.strip_suffix('\n') else {
                    split_parts += 1;
                    continue;
                };
                let token = seq::parse(text).expect("token");
                assert!(
                    token.source.ends_with(&format!("/{stream}")),
                    "{}",
                    token.source
                );
                *lines_per_source
                    .entry(token.source.to_string())
                    .or_default() += 1;
                joined.clear();
            }
        }
        assert!(split_parts > 0, "lines over 16 KiB were split");
        let ledger = Ledger::read(&dir.path().join("ledger.json")).expect("ledger");
        assert_eq!(lines_per_source.values().sum::<u64>(), summary.stats.lines);
        for entry in &ledger.sources {
            assert_eq!(
                lines_per_source.get(&entry.meta.source),
                Some(&entry.lines())
            );
        }
    }

    #[tokio::test]
    async fn containerd_writer_interleaves_streams_and_accounts_for_every_line() {
        use crate::containerd::RotationMode;
        use crate::seal::{self, SealCheck};
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("pods");
        let args = PodsArgs {
            writer: WriterKind::Containerd,
            rotation: RotationMode::Copytruncate,
            rate: 3_000.0,
            duration: 1.0,
            seed: Some(8),
            long_line_ratio: 0.05,
            max_size: 256 * 1024,
            max_files: 3,
            tenants: "1".parse().expect("tenants"),
            pods_per_namespace: 1,
            containers_per_pod: 1,
            ledger: Some(dir.path().join("ledger.json")),
            stats_interval: 0.0,
            ..PodsArgs::with_root(&root)
        };
        let summary = run(&args, CancellationToken::new()).await.expect("runs");
        assert!(
            summary.counts.rotation.rotations >= 2,
            "{:?}",
            summary.counts
        );
        let ledger = Ledger::read(&dir.path().join("ledger.json")).expect("ledger");
        assert!(ledger.sealed);
        // Every line is in exactly one file record or excused.
        let mut accounted: HashMap<String, BTreeSet<u64>> = HashMap::new();
        let ranges = ledger
            .files
            .iter()
            .flat_map(|f| f.lines.iter())
            .chain(ledger.excused.iter().map(|e| &e.lines));
        for range in ranges {
            for seq in range.first..=range.last {
                assert!(
                    accounted
                        .entry(range.source.clone())
                        .or_default()
                        .insert(seq)
                );
            }
        }
        for entry in &ledger.sources {
            assert_eq!(
                accounted
                    .get(&entry.meta.source)
                    .map_or(0, |s| s.len() as u64),
                entry.lines(),
                "{}",
                entry.meta.source
            );
        }
        // The plain files: entries of the two streams interleave inside long lines, and each
        // stream's entries join to sealed lines.
        let mut interleaved = false;
        for file in files_under(&root)
            .into_iter()
            .filter(|f| !f.to_string_lossy().ends_with(".gz"))
        {
            let mut open: HashMap<String, Vec<u8>> = HashMap::new();
            for line in std::fs::read(file)
                .expect("read")
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
            {
                let cri = cri::parse_line(line).expect("CRI line");
                let other = if cri.stream == "stdout" {
                    "stderr"
                } else {
                    "stdout"
                };
                interleaved |= open.get(other).is_some_and(|b| !b.is_empty());
                let joined = open.entry(cri.stream.to_string()).or_default();
                joined.extend_from_slice(cri.content);
                if cri.is_final {
                    let whole = std::mem::take(joined);
                    if seq::parse(&String::from_utf8_lossy(&whole)).is_some() {
                        assert_eq!(seal::check(&whole), SealCheck::Intact);
                    }
                }
            }
        }
        assert!(
            interleaved,
            "an entry of one stream lands inside a split line of the other"
        );
    }

    #[test]
    fn invalid_flags_are_named() {
        let args = PodsArgs {
            max_files: 1,
            ..PodsArgs::with_root("/tmp/x")
        };
        assert!(matches!(
            args.validate(),
            Err(PodsError::InvalidArg {
                flag: "max-files",
                ..
            })
        ));
        let args = PodsArgs {
            rate: -1.0,
            ..PodsArgs::with_root("/tmp/x")
        };
        assert!(matches!(
            args.validate(),
            Err(PodsError::InvalidArg { flag: "rate", .. })
        ));
    }
}
