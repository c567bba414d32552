//! Replay: list one tenant's objects in the central bucket (paginated `ListObjectsV2`) within a
//! time range and deliver them again through the handler, e.g. as a backfill after the tenant fixed
//! its role. Only the tenant's own prefix (`{deployment prefix}{encoded customer_id}/`, optionally
//! narrowed to a cluster and application) is ever listed, and every listed key is parsed and checked
//! to belong to that tenant before it is handed on. Delivery progress in the core makes replaying
//! already delivered objects a cheap skip — unless `--force` built the core to deliver them again.
//!
//! Progress lines (objects done of those listed so far, objects/s, MiB/s, ETA) and a summary go
//! to the given writer (stderr in the binary). [`confirm_force`] asks before a `--force` replay.

use std::fmt;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use logrelay_common::aws::AwsError;
use logrelay_common::key::{ObjectKey, Partition, encode_segment};
use tokio::sync::mpsc;

use crate::intake::message::Tally;
use crate::object::{ObjectHandler, ObjectRef, Outcome};

/// Default number of objects delivered at once.
pub const DEFAULT_MAX_CONCURRENCY: usize = 8;
/// Pause between progress lines.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);
/// What `--force` prints before anything is listed.
pub const FORCE_WARNING: &str = "replay: WARNING: --force delivers objects again even if they \
     were delivered before: every event already in CloudWatch Logs will be there twice (S3 copies \
     are overwritten with the same bytes)";
/// Objects per ListObjectsV2 page (the S3 maximum, 1,000).
const LIST_PAGE_SIZE: i32 = 1_000;
/// Bytes in a MiB, for the throughput in progress lines.
const MIB: f64 = 1_048_576.0;

/// The operator's answer to a `--force` replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForceConfirmation {
    /// `--yes`, or the operator typed `yes`.
    Given,
    /// The operator at the terminal did not type `yes`.
    Declined,
    /// No terminal to ask on and no `--yes`.
    NoTerminal,
}

impl ForceConfirmation {
    /// Why the replay does not start, naming `--yes`; `None` when it may.
    pub fn refusal(self) -> Option<&'static str> {
        match self {
            Self::Given => None,
            Self::Declined => Some(
                "replay --force not confirmed; nothing was replayed (--yes skips the question)",
            ),
            Self::NoTerminal => Some(
                "replay --force re-delivers objects already delivered (duplicates) and needs \
                 --yes when stdin is not a terminal; nothing was replayed",
            ),
        }
    }
}

/// Asks before a `--force` replay: `yes` (the `--yes` flag) goes ahead; otherwise, when
/// `terminal` (stdin is one), prints [`FORCE_WARNING`] to `prompt` and reads one answer line from
/// `answer`, going ahead only on `yes` or `y`; off a terminal it refuses.
pub fn confirm_force(
    yes: bool,
    terminal: bool,
    answer: &mut impl BufRead,
    prompt: &mut impl Write,
) -> ForceConfirmation {
    if yes {
        return ForceConfirmation::Given;
    }
    if !terminal {
        return ForceConfirmation::NoTerminal;
    }
    let _ = write!(
        prompt,
        "{FORCE_WARNING}\nReplay with --force? Type yes to continue: "
    );
    let _ = prompt.flush();
    let mut line = String::new();
    match answer.read_line(&mut line) {
        Ok(_) if matches!(line.trim().to_ascii_lowercase().as_str(), "yes" | "y") => {
            ForceConfirmation::Given
        }
        _ => ForceConfirmation::Declined,
    }
}

/// Where a replay stands at one moment, printed as a progress line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Objects handled (delivered, skipped or failed; listed in a dry run).
    pub done: u64,
    /// Objects in range listed so far.
    pub total: u64,
    /// Whether listing has finished (`total` is final).
    pub listed_all: bool,
    /// Stored bytes of the objects handled.
    pub done_bytes: u64,
    /// Time since delivery started.
    pub elapsed: Duration,
}

impl Progress {
    /// Objects per second so far.
    pub fn objects_per_second(&self) -> f64 {
        per_second(self.done as f64, self.elapsed)
    }

    /// Stored MiB per second so far.
    pub fn mib_per_second(&self) -> f64 {
        per_second(self.done_bytes as f64 / MIB, self.elapsed)
    }

    /// Time left at the rate so far; `None` while listing or before any object is done.
    pub fn eta(&self) -> Option<Duration> {
        let rate = self.objects_per_second();
        if !self.listed_all || rate <= 0.0 {
            return None;
        }
        let left = self.total.saturating_sub(self.done) as f64;
        Some(Duration::from_secs_f64(left / rate))
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (more, listing) = if self.listed_all {
            ("", "")
        } else {
            ("+", " (listing)")
        };
        write!(
            f,
            "{}/{}{more} objects{listing}, {:.1} objects/s, {:.2} MiB/s, ETA ",
            self.done,
            self.total,
            self.objects_per_second(),
            self.mib_per_second()
        )?;
        match self.eta() {
            Some(eta) => write!(f, "{}", HumanDuration(eta)),
            None => f.write_str("unknown"),
        }
    }
}

fn per_second(amount: f64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 { amount / seconds } else { 0.0 }
}

/// A duration as `1h02m`, `3m05s` or `42s` (rounded up to the second).
struct HumanDuration(Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0.as_secs();
        if self.0.subsec_nanos() > 0 {
            secs += 1;
        }
        match (secs / 3600, secs % 3600 / 60, secs % 60) {
            (0, 0, s) => write!(f, "{s}s"),
            (0, m, s) => write!(f, "{m}m{s:02}s"),
            (h, m, _) => write!(f, "{h}h{m:02}m"),
        }
    }
}

/// Which timestamp decides whether an object is in the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TimeBasis {
    /// The creation time in the object's key (`YYYYMMDDTHHMMSSZ`).
    Key,
    /// The object's `LastModified`.
    LastModified,
    /// In range if either is.
    Either,
}

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    /// The central bucket.
    pub bucket: String,
    /// Deployment key prefix (`LOGRELAY_KEY_PREFIX`, `""` = none).
    pub key_prefix: String,
    /// The tenant (decoded customer id).
    pub tenant: String,
    /// Only this cluster.
    pub cluster: Option<String>,
    /// Only this application (needs `cluster`).
    pub application: Option<String>,
    /// Objects at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Objects before this time.
    pub until: Option<DateTime<Utc>>,
    /// Which timestamp is compared.
    pub time_basis: TimeBasis,
    /// Objects delivered at once (≥ 1).
    pub max_concurrency: usize,
    /// List and report, deliver nothing.
    pub dry_run: bool,
    /// The handler re-delivers objects already delivered (`--force`); only changes the report
    /// (a warning first), the handler itself must be built for it.
    pub force: bool,
}

impl ReplayRequest {
    /// The one prefix listed: the tenant's, narrowed by cluster and application.
    pub fn list_prefix(&self) -> String {
        // The deployment prefix is a directory: `logs` and `logs/` both mean `logs/`.
        let mut prefix = self.key_prefix.clone();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        prefix.push_str(&Partition::customer_prefix(&self.tenant));
        if let Some(cluster) = &self.cluster {
            prefix.push_str(&encode_segment(cluster));
            prefix.push('/');
            if let Some(application) = &self.application {
                prefix.push_str(&encode_segment(application));
                prefix.push('/');
            }
        }
        prefix
    }

    /// Whether `time` is within `[since, until)`.
    fn in_range(&self, time: DateTime<Utc>) -> bool {
        self.since.is_none_or(|since| time >= since) && self.until.is_none_or(|until| time < until)
    }
}

/// Counts of a replay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Keys listed under the prefix.
    pub listed: u64,
    /// Keys not in the logrelay layout (skipped).
    pub not_in_layout: u64,
    /// Keys whose parsed tenant is not the requested one (never delivered; should not happen).
    pub foreign: u64,
    /// Keys outside the time range.
    pub out_of_range: u64,
    /// Keys in range, handed to the handler (or printed in a dry run).
    pub matched: u64,
    /// What the handler made of them.
    pub objects: Tally,
}

impl ReplaySummary {
    /// Objects that failed.
    pub fn failures(&self) -> u64 {
        self.objects.failures()
    }
}

impl fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed = self.objects.failed_transient + self.objects.failed_permanent;
        write!(
            f,
            "listed {}, in range {}, delivered {}, skipped {}, failed {} (out of range {}, not in layout {}, foreign {})",
            self.listed,
            self.matched,
            self.objects.delivered,
            self.objects.skipped,
            failed,
            self.out_of_range,
            self.not_in_layout,
            self.foreign
        )
    }
}

/// Replay stopped before the end.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// `--application` without `--cluster`, or `--since` not before `--until`.
    #[error("invalid replay request: {0}")]
    InvalidRequest(&'static str),
    /// Listing failed; objects listed before were processed (see the summary).
    #[error("listing s3://{bucket}/{prefix} failed after {summary}: {source}")]
    List {
        /// The bucket.
        bucket: String,
        /// The prefix.
        prefix: String,
        /// What was done before.
        summary: Box<ReplaySummary>,
        /// The S3 error.
        #[source]
        source: AwsError,
    },
    /// The listing task ended abnormally (a bug).
    #[error("listing task failed: {0}")]
    Lister(String),
}

/// Listing counters, shared between the lister task and progress lines.
#[derive(Default)]
struct ListCounters {
    listed: AtomicU64,
    not_in_layout: AtomicU64,
    foreign: AtomicU64,
    out_of_range: AtomicU64,
    matched: AtomicU64,
    /// Listing reached the last page (or failed): `matched` is final.
    finished: AtomicBool,
}

/// Lists, filters and delivers; see the module doc.
pub async fn run<H: ObjectHandler>(
    s3: &aws_sdk_s3::Client,
    handler: &H,
    request: &ReplayRequest,
    report: &mut (impl Write + Send),
) -> Result<ReplaySummary, ReplayError> {
    if request.application.is_some() && request.cluster.is_none() {
        return Err(ReplayError::InvalidRequest("--application needs --cluster"));
    }
    if let (Some(since), Some(until)) = (request.since, request.until)
        && since >= until
    {
        return Err(ReplayError::InvalidRequest(
            "--since must be before --until",
        ));
    }
    let prefix = request.list_prefix();
    if request.force {
        let _ = writeln!(report, "{FORCE_WARNING}");
    }
    let _ = writeln!(report, "replay: listing s3://{}/{prefix}", request.bucket);
    let counters = Arc::new(ListCounters::default());
    let concurrency = request.max_concurrency.max(1);
    let (tx, rx) = mpsc::channel::<ObjectRef>(2 * concurrency);
    let lister = {
        let counters = counters.clone();
        let (s3, request, prefix) = (s3.clone(), request.clone(), prefix.clone());
        tokio::spawn(async move {
            let listed = list(s3, request, prefix, counters.clone(), tx).await;
            counters.finished.store(true, Ordering::Relaxed);
            listed
        })
    };

    let candidates = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|object| (object, rx))
    });
    let results = candidates
        .map(|object| async move {
            let outcome = if request.dry_run {
                None
            } else {
                Some(handler.handle(&object).await)
            };
            (object, outcome)
        })
        .buffer_unordered(concurrency);
    let mut results = std::pin::pin!(results);
    let mut tally = Tally::default();
    let started = Instant::now();
    let mut last_progress = started;
    let (mut done, mut done_bytes) = (0_u64, 0_u64);
    while let Some((object, outcome)) = results.next().await {
        done += 1;
        done_bytes += object.size.unwrap_or(0);
        let url = format!("s3://{}/{}", object.bucket, object.key);
        match &outcome {
            None => {
                let _ = writeln!(report, "would replay {url}");
            }
            Some(outcome) => {
                tally.record_outcome(outcome);
                if let Outcome::Failed { kind, error } = outcome {
                    let _ = writeln!(
                        report,
                        "FAILED {url} ({kind:?}, {}): {error}",
                        error.reason()
                    );
                }
            }
        }
        if last_progress.elapsed() >= PROGRESS_INTERVAL {
            last_progress = Instant::now();
            let progress = Progress {
                done,
                total: counters.matched.load(Ordering::Relaxed),
                listed_all: counters.finished.load(Ordering::Relaxed),
                done_bytes,
                elapsed: started.elapsed(),
            };
            let _ = writeln!(report, "replay: {progress} ({})", summary(&counters, tally));
        }
    }
    let listed = lister.await;
    let summary = summary(&counters, tally);
    let _ = writeln!(report, "replay: done: {summary}");
    match listed {
        Ok(Ok(())) => Ok(summary),
        Ok(Err(source)) => Err(ReplayError::List {
            bucket: request.bucket.clone(),
            prefix,
            summary: Box::new(summary),
            source,
        }),
        Err(join) => Err(ReplayError::Lister(join.to_string())),
    }
}

/// The summary so far.
fn summary(counters: &ListCounters, objects: Tally) -> ReplaySummary {
    ReplaySummary {
        listed: counters.listed.load(Ordering::Relaxed),
        not_in_layout: counters.not_in_layout.load(Ordering::Relaxed),
        foreign: counters.foreign.load(Ordering::Relaxed),
        out_of_range: counters.out_of_range.load(Ordering::Relaxed),
        matched: counters.matched.load(Ordering::Relaxed),
        objects,
    }
}

/// Lists every page under `prefix` and sends the objects in range.
async fn list(
    s3: aws_sdk_s3::Client,
    request: ReplayRequest,
    prefix: String,
    counters: Arc<ListCounters>,
    tx: mpsc::Sender<ObjectRef>,
) -> Result<(), AwsError> {
    let mut pages = s3
        .list_objects_v2()
        .bucket(&request.bucket)
        .prefix(&prefix)
        .max_keys(LIST_PAGE_SIZE)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::from_sdk("s3:ListObjectsV2", e))?;
        for object in page.contents.unwrap_or_default() {
            counters.listed.fetch_add(1, Ordering::Relaxed);
            let Some(key) = object.key else { continue };
            let parsed = match ObjectKey::parse_with_prefix(&key, &request.key_prefix) {
                Ok(parsed) => parsed,
                Err(error) => {
                    tracing::debug!(key, %error, "listed key not in the logrelay layout; skipped");
                    counters.not_in_layout.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            if parsed.partition.customer_id != request.tenant {
                tracing::error!(
                    key,
                    tenant = request.tenant,
                    "listed key belongs to another tenant; not replayed"
                );
                counters.foreign.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let last_modified = object
                .last_modified
                .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()));
            let in_range = match request.time_basis {
                TimeBasis::Key => request.in_range(parsed.created),
                TimeBasis::LastModified => last_modified.is_some_and(|t| request.in_range(t)),
                TimeBasis::Either => {
                    request.in_range(parsed.created)
                        || last_modified.is_some_and(|t| request.in_range(t))
                }
            };
            if !in_range {
                counters.out_of_range.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            counters.matched.fetch_add(1, Ordering::Relaxed);
            let object_ref = ObjectRef {
                bucket: request.bucket.clone(),
                key,
                size: object.size.and_then(|s| u64::try_from(s).ok()),
                etag: object.e_tag.map(|etag| etag.trim_matches('"').to_owned()),
                version_id: None,
                sequencer: None,
                event_time: last_modified,
                uploader: None,
            };
            if tx.send(object_ref).await.is_err() {
                // The consumer is gone (it only stops when the process does).
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn request() -> ReplayRequest {
        ReplayRequest {
            bucket: "central".into(),
            key_prefix: String::new(),
            tenant: "acme".into(),
            cluster: None,
            application: None,
            since: None,
            until: None,
            time_basis: TimeBasis::Key,
            max_concurrency: 2,
            dry_run: false,
            force: false,
        }
    }

    #[test]
    fn the_listed_prefix_is_the_tenants_own() {
        let mut r = request();
        assert_eq!(r.list_prefix(), "acme/");
        r.tenant = "a/b".into();
        r.key_prefix = "logs".into();
        assert_eq!(r.list_prefix(), format!("logs/{}/", encode_segment("a/b")));
        assert!(
            !r.list_prefix().contains("a/b"),
            "a tenant id cannot reach a sibling prefix"
        );
        r.cluster = Some("c 1".into());
        r.application = Some("api".into());
        assert_eq!(
            r.list_prefix(),
            format!(
                "logs/{}/{}/api/",
                encode_segment("a/b"),
                encode_segment("c 1")
            )
        );
    }

    #[test]
    fn progress_lines_give_rates_and_an_eta_once_listing_is_done() {
        let mut progress = Progress {
            done: 120,
            total: 480,
            listed_all: true,
            done_bytes: 60 * 1_048_576,
            elapsed: Duration::from_secs(30),
        };
        assert_eq!(
            progress.to_string(),
            "120/480 objects, 4.0 objects/s, 2.00 MiB/s, ETA 1m30s"
        );
        progress.listed_all = false;
        assert_eq!(
            progress.to_string(),
            "120/480+ objects (listing), 4.0 objects/s, 2.00 MiB/s, ETA unknown"
        );
        let slow = Progress {
            done: 1,
            total: 7_201,
            listed_all: true,
            done_bytes: 0,
            elapsed: Duration::from_secs(1),
        };
        assert_eq!(slow.eta(), Some(Duration::from_secs(7_200)));
        assert!(slow.to_string().ends_with("ETA 2h00m"), "{slow}");
        let start = Progress {
            done: 0,
            total: 10,
            listed_all: true,
            done_bytes: 0,
            elapsed: Duration::ZERO,
        };
        assert_eq!(
            start.to_string(),
            "0/10 objects, 0.0 objects/s, 0.00 MiB/s, ETA unknown"
        );
        assert_eq!(
            HumanDuration(Duration::from_millis(41_200)).to_string(),
            "42s"
        );
    }

    #[test]
    fn force_needs_yes_off_a_terminal_and_an_answer_on_one() {
        let ask = |yes, terminal, typed: &str| {
            let mut prompt = Vec::new();
            let answer = confirm_force(yes, terminal, &mut typed.as_bytes(), &mut prompt);
            (answer, String::from_utf8(prompt).expect("utf-8"))
        };
        assert_eq!(ask(true, false, "").0, ForceConfirmation::Given);
        let (answer, prompt) = ask(false, false, "yes\n");
        assert_eq!(answer, ForceConfirmation::NoTerminal);
        assert!(prompt.is_empty(), "nobody to ask: {prompt}");
        assert!(answer.refusal().is_some_and(|r| r.contains("--yes")));
        let (answer, prompt) = ask(false, true, "yes\n");
        assert_eq!(answer, ForceConfirmation::Given);
        assert!(
            prompt.contains("twice") && prompt.contains("Type yes"),
            "{prompt}"
        );
        assert_eq!(ask(false, true, "n\n").0, ForceConfirmation::Declined);
        assert_eq!(ask(false, true, "").0, ForceConfirmation::Declined);
        assert!(ForceConfirmation::Given.refusal().is_none());
    }

    #[test]
    fn the_range_includes_since_and_excludes_until() {
        let t = |s| Utc.timestamp_opt(s, 0).single().expect("valid");
        let mut r = request();
        r.since = Some(t(100));
        r.until = Some(t(200));
        assert!(!r.in_range(t(99)));
        assert!(r.in_range(t(100)));
        assert!(r.in_range(t(199)));
        assert!(!r.in_range(t(200)));
    }
}
