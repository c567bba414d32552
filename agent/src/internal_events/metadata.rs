//! Internal events of the metadata stage: watch failures (restarts), index and cache sizes, lines
//! enriched, held, excluded, or shipped without metadata. Each one counts and logs once; per-line
//! events log at trace, rare ones at info/warn. Metric names start with `logrelay_agent_metadata_`.

/// Registers help texts for this module's metrics.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "logrelay_agent_metadata_watch_restarts_total",
        "Kubernetes watch errors after which the watch restarted (with backoff), by resource."
    );
    metrics::describe_counter!(
        "logrelay_agent_metadata_relists_total",
        "Full lists of a resource (initial and after a 410 Gone or reconnect), by resource."
    );
    metrics::describe_gauge!(
        "logrelay_agent_metadata_pods",
        "Pods in the metadata index, by state (live, gone)."
    );
    metrics::describe_gauge!(
        "logrelay_agent_metadata_namespaces",
        "Namespaces in the watch store."
    );
    metrics::describe_gauge!(
        "logrelay_agent_metadata_pinned_files",
        "Files being read whose pod's metadata is kept for them."
    );
    metrics::describe_counter!(
        "logrelay_agent_metadata_lines_enriched_total",
        "Lines enriched with pod metadata from the Kubernetes API."
    );
    metrics::describe_counter!(
        "logrelay_agent_metadata_missing_total",
        "Lines shipped with path-derived fields only and the logrelay_metadata_missing marker, by reason."
    );
    metrics::describe_counter!(
        "logrelay_agent_metadata_excluded_lines_total",
        "Lines not shipped because of selection (checkpointed as consumed), by reason."
    );
    metrics::describe_counter!(
        "logrelay_agent_metadata_unsent_at_shutdown_total",
        "Events held for metadata at shutdown and left unsent (read again on the next start)."
    );
    metrics::describe_gauge!(
        "logrelay_agent_metadata_held_lines",
        "Lines held back waiting for their pod's metadata."
    );
    metrics::describe_gauge!(
        "logrelay_agent_metadata_held_bytes",
        "Message bytes of lines held back waiting for their pod's metadata."
    );
    metrics::describe_counter!(
        "logrelay_agent_metadata_cache_evictions_total",
        "Gone pods evicted from the metadata index because it was full."
    );
    metrics::describe_counter!(
        "logrelay_agent_metadata_cache_writes_total",
        "Writes of the metadata cache file, by result (ok, error)."
    );
    metrics::describe_counter!(
        "logrelay_agent_metadata_cache_loaded_pods_total",
        "Pods loaded from the metadata cache file at start."
    );
}

/// Why a line was shipped to quarantine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingReason {
    /// `--metadata-wait` passed before the pod was known.
    WaitExpired,
    /// The path carries no pod UID (a file outside the kubelet's layout): nothing to wait for.
    NoPodInPath,
}

impl MissingReason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            MissingReason::WaitExpired => "wait_expired",
            MissingReason::NoPodInPath => "no_pod_in_path",
        }
    }
}

/// A line whose pod is unknown was shipped to the quarantine prefix, with the
/// `metadata_missing` marker.
#[derive(Debug, Clone, Copy)]
pub struct MetadataMissing<'a> {
    /// Namespace from the path.
    pub namespace: &'a str,
    /// Pod name from the path.
    pub pod_name: &'a str,
    /// Why.
    pub reason: MissingReason,
    /// The first quarantined line of this pod seen lately: logged at warn level (the others at
    /// debug level).
    pub first_of_pod: bool,
}

impl MetadataMissing<'_> {
    /// Logs and counts the event.
    pub fn emit(self) {
        if self.first_of_pod {
            tracing::warn!(
                namespace = self.namespace,
                pod = self.pod_name,
                reason = self.reason.as_str(),
                "lines of a pod without metadata go to the quarantine prefix (no tenant is guessed); \
                 assign them with `logrelay-processor quarantine release`"
            );
        } else {
            tracing::debug!(
                namespace = self.namespace,
                pod = self.pod_name,
                reason = self.reason.as_str(),
                "line of an unknown pod shipped to quarantine"
            );
        }
        metrics::counter!("logrelay_agent_metadata_missing_total", "reason" => self.reason.as_str())
            .increment(1);
    }
}

/// Lines were enriched (counted in bulk per wake-up).
#[derive(Debug, Clone, Copy)]
pub struct LinesEnriched {
    /// How many.
    pub lines: u64,
}

impl LinesEnriched {
    /// Counts the event.
    pub fn emit(self) {
        if self.lines > 0 {
            tracing::trace!(lines = self.lines, "lines enriched");
            metrics::counter!("logrelay_agent_metadata_lines_enriched_total").increment(self.lines);
        }
    }
}

/// A line was not shipped because of selection; its bytes were reported as consumed.
#[derive(Debug, Clone, Copy)]
pub struct LineExcluded<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Pod name.
    pub pod_name: &'a str,
    /// Why (`namespace`, `pod_opt_out`, …).
    pub reason: &'static str,
}

impl LineExcluded<'_> {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::trace!(
            namespace = self.namespace,
            pod = self.pod_name,
            reason = self.reason,
            "line excluded by selection"
        );
        metrics::counter!(
            "logrelay_agent_metadata_excluded_lines_total",
            "reason" => self.reason
        )
        .increment(1);
    }
}

/// At shutdown, held events of pods still unknown were not sent: their files' checkpoints stay
/// before them and the next run reads them again.
#[derive(Debug, Clone, Copy)]
pub struct UnsentAtShutdown {
    /// Events not sent.
    pub events: usize,
    /// Files they belong to.
    pub files: usize,
}

impl UnsentAtShutdown {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::info!(
            events = self.events,
            files = self.files,
            "lines still waiting for pod metadata at shutdown are left for the next run"
        );
        metrics::counter!("logrelay_agent_metadata_unsent_at_shutdown_total")
            .increment(self.events as u64);
    }
}

/// What is held back now.
#[derive(Debug, Clone, Copy)]
pub struct HeldLines {
    /// Lines.
    pub lines: usize,
    /// Message bytes.
    pub bytes: usize,
}

impl HeldLines {
    /// Updates the gauges.
    pub fn emit(self) {
        metrics::gauge!("logrelay_agent_metadata_held_lines").set(self.lines as f64);
        metrics::gauge!("logrelay_agent_metadata_held_bytes").set(self.bytes as f64);
    }
}

/// A watch failed; the watcher restarts it after a backoff.
pub struct WatchRestarted<'a> {
    /// `pods` or `namespaces`.
    pub resource: &'static str,
    /// The error.
    pub error: &'a dyn std::fmt::Display,
}

impl WatchRestarted<'_> {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::warn!(resource = self.resource, error = %self.error, "Kubernetes watch failed; retrying with backoff");
        metrics::counter!("logrelay_agent_metadata_watch_restarts_total", "resource" => self.resource)
            .increment(1);
    }
}

/// A full list of a resource completed.
#[derive(Debug, Clone, Copy)]
pub struct Relisted {
    /// `pods` or `namespaces`.
    pub resource: &'static str,
    /// Objects listed.
    pub objects: usize,
}

impl Relisted {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::info!(
            resource = self.resource,
            objects = self.objects,
            "Kubernetes list complete"
        );
        metrics::counter!("logrelay_agent_metadata_relists_total", "resource" => self.resource)
            .increment(1);
    }
}

/// Sizes of the metadata index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexSize {
    /// Pods the API reports.
    pub live: usize,
    /// Pods deleted (or loaded from the cache file) still kept.
    pub gone: usize,
    /// Files pinning pods.
    pub pinned_files: usize,
}

impl IndexSize {
    /// Updates the gauges.
    pub fn emit(self, namespaces: usize) {
        metrics::gauge!("logrelay_agent_metadata_pods", "state" => "live").set(self.live as f64);
        metrics::gauge!("logrelay_agent_metadata_pods", "state" => "gone").set(self.gone as f64);
        metrics::gauge!("logrelay_agent_metadata_pinned_files").set(self.pinned_files as f64);
        metrics::gauge!("logrelay_agent_metadata_namespaces").set(namespaces as f64);
    }
}

/// Gone pods were evicted because the index was full.
#[derive(Debug, Clone, Copy)]
pub struct CacheEvicted {
    /// How many.
    pub pods: usize,
}

impl CacheEvicted {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::warn!(
            pods = self.pods,
            "metadata index full; evicted the oldest deleted pods"
        );
        metrics::counter!("logrelay_agent_metadata_cache_evictions_total")
            .increment(self.pods as u64);
    }
}

/// The cache file was written (or not).
pub struct CacheWritten<'a> {
    /// Pods written.
    pub pods: usize,
    /// The error, if writing failed.
    pub error: Option<&'a dyn std::fmt::Display>,
}

impl CacheWritten<'_> {
    /// Logs and counts the event.
    pub fn emit(self) {
        match self.error {
            None => {
                tracing::debug!(pods = self.pods, "metadata cache written");
                metrics::counter!("logrelay_agent_metadata_cache_writes_total", "result" => "ok")
                    .increment(1);
            }
            Some(error) => {
                tracing::warn!(%error, "could not write the metadata cache file");
                metrics::counter!("logrelay_agent_metadata_cache_writes_total", "result" => "error").increment(1);
            }
        }
    }
}

/// The cache file was read at start.
pub struct CacheLoaded<'a> {
    /// Pods loaded (gone until the API lists them again).
    pub pods: usize,
    /// Why the file could not be used, if it could not.
    pub error: Option<&'a dyn std::fmt::Display>,
}

impl CacheLoaded<'_> {
    /// Logs and counts the event.
    pub fn emit(self) {
        match self.error {
            None => tracing::info!(pods = self.pods, "metadata cache loaded"),
            Some(error) => tracing::warn!(%error, "metadata cache file ignored"),
        }
        metrics::counter!("logrelay_agent_metadata_cache_loaded_pods_total")
            .increment(self.pods as u64);
    }
}
