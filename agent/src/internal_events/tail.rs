//! Internal events of the agent's `tail` stage (and the stdin source's read counts): files found,
//! resumed, rotated, truncated, closed; bytes that became unreadable (lost, per pod); reads that
//! failed; and the gauges (open files, bytes at risk). Each one counts and logs once; rare events
//! log at info/warn, per-read ones at trace.

use std::path::Path;

/// Registers help texts for this module's metrics.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "logrelay_agent_lines_read_total",
        "Lines shipped by the sources, by source (file, stdin)."
    );
    metrics::describe_counter!(
        "logrelay_agent_bytes_read_total",
        "Raw bytes read by the sources, by source (file, stdin)."
    );
    metrics::describe_counter!(
        "logrelay_agent_files_discovered_total",
        "Log files the tailer started to follow, by kind."
    );
    metrics::describe_counter!(
        "logrelay_agent_files_resumed_total",
        "Files resumed from a checkpoint mid-way."
    );
    metrics::describe_counter!(
        "logrelay_agent_files_closed_total",
        "Files drained to the end and closed (deleted or compressed away)."
    );
    metrics::describe_counter!(
        "logrelay_agent_rotations_total",
        "Live log files renamed away by rotation."
    );
    metrics::describe_counter!(
        "logrelay_agent_truncation_restarts_total",
        "Files read again from 0 because they shrank below the read offset."
    );
    metrics::describe_counter!(
        "logrelay_agent_inode_reuse_restarts_total",
        "Checkpointed files read from 0 because their content changed, by reason."
    );
    metrics::describe_counter!(
        "logrelay_agent_copied_files_total",
        "Copies of truncated files (copytruncate) continued where the original was read to."
    );
    metrics::describe_counter!(
        "logrelay_agent_lost_bytes_total",
        "Bytes a container wrote that the agent knows it could not ship (deleted or truncated \
         before read, deleted while the agent was down), by namespace, pod and reason."
    );
    metrics::describe_counter!(
        "logrelay_agent_rotated_files_deferred_total",
        "Rotated files not opened at once because of the per-pod cap."
    );
    metrics::describe_counter!(
        "logrelay_agent_compressed_files_resumed_total",
        "Gzipped rotated files read from the offset reached in the plain file."
    );
    metrics::describe_counter!(
        "logrelay_agent_compressed_files_ignored_total",
        "Gzipped rotated files not read (not a continuation of a file this agent followed)."
    );
    metrics::describe_counter!(
        "logrelay_agent_hole_bytes_skipped_total",
        "NUL bytes skipped at the start of a truncated file (a stale writer's hole)."
    );
    metrics::describe_counter!(
        "logrelay_agent_read_errors_total",
        "Failed reads of followed files."
    );
    metrics::describe_counter!(
        "logrelay_agent_discovery_errors_total",
        "Failed directory listings or file opens while scanning the pods root."
    );
    metrics::describe_counter!(
        "logrelay_agent_watch_errors_total",
        "Failures to set up the inotify watch (the 1 s rescan still finds files)."
    );
    metrics::describe_counter!(
        "logrelay_agent_checkpointed_files_missing_total",
        "Checkpointed files not found again after a restart."
    );
    metrics::describe_gauge!(
        "logrelay_agent_open_files",
        "File descriptors the tailer holds."
    );
    metrics::describe_gauge!(
        "logrelay_agent_followed_files",
        "Files the tailer follows (open, waiting for a slot, or parked)."
    );
    metrics::describe_gauge!(
        "logrelay_agent_bytes_at_risk",
        "Unread bytes in rotated files, which the kubelet gzips or deletes next."
    );
}

/// Lines and bytes a source read.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinesRead {
    /// Lines shipped.
    pub lines: u64,
    /// Raw bytes read.
    pub bytes: u64,
}

impl LinesRead {
    /// Logs and counts the event for the file tailer.
    pub fn emit(self) {
        self.emit_for("file");
    }

    /// Logs and counts the event for a named source (`file`, `stdin`).
    pub fn emit_for(self, source: &'static str) {
        tracing::trace!(source, lines = self.lines, bytes = self.bytes, "read");
        metrics::counter!("logrelay_agent_lines_read_total", "source" => source)
            .increment(self.lines);
        metrics::counter!("logrelay_agent_bytes_read_total", "source" => source)
            .increment(self.bytes);
    }
}

/// The tailer started following a file.
#[derive(Debug, Clone, Copy)]
pub struct FileDiscovered<'a> {
    /// Its path.
    pub path: &'a Path,
    /// `live`, `rotated` or `compressed`.
    pub kind: &'static str,
    /// Where reading starts.
    pub offset: u64,
}

impl FileDiscovered<'_> {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::debug!(path = %self.path.display(), kind = self.kind, offset = self.offset, "following file");
        metrics::counter!("logrelay_agent_files_discovered_total", "kind" => self.kind)
            .increment(1);
    }
}

/// A file was resumed from its checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct FileResumed<'a> {
    /// Its path.
    pub path: &'a Path,
    /// The checkpointed offset.
    pub offset: u64,
}

impl FileResumed<'_> {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::info!(path = %self.path.display(), offset = self.offset, "resuming file from its checkpoint");
        metrics::counter!("logrelay_agent_files_resumed_total").increment(1);
    }
}

/// `--start-at end`: a file already on the node at the first start begins after its existing
/// lines, which are not shipped.
#[derive(Debug, Clone, Copy)]
pub struct ExistingFileSkipped<'a> {
    /// Its path.
    pub path: &'a Path,
    /// The bytes left unread (where it begins).
    pub bytes: u64,
}

impl ExistingFileSkipped<'_> {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::info!(path = %self.path.display(), bytes = self.bytes, "--start-at end: starting after the existing lines");
        metrics::counter!("logrelay_agent_files_started_at_end_total").increment(1);
        metrics::counter!("logrelay_agent_bytes_skipped_at_start_total").increment(self.bytes);
    }
}

/// A file was drained and closed.
#[derive(Debug, Clone, Copy)]
pub struct FileClosed<'a> {
    /// Its last path.
    pub path: &'a Path,
    /// Bytes read from it in total (its final offset).
    pub offset: u64,
}

impl FileClosed<'_> {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::debug!(path = %self.path.display(), offset = self.offset, "file drained and closed");
        metrics::counter!("logrelay_agent_files_closed_total").increment(1);
    }
}

/// A live file was renamed away by rotation; it is drained through the open descriptor.
#[derive(Debug, Clone, Copy)]
pub struct FileRotated<'a> {
    /// Its new path.
    pub path: &'a Path,
}

impl FileRotated<'_> {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::debug!(path = %self.path.display(), "file rotated; draining it");
        metrics::counter!("logrelay_agent_rotations_total").increment(1);
    }
}

/// A file shrank below the read offset (truncated, copytruncate); it is read again from 0.
#[derive(Debug, Clone, Copy)]
pub struct FileTruncated<'a> {
    /// Its path.
    pub path: &'a Path,
    /// The offset reached before.
    pub offset: u64,
    /// Its size now.
    pub size: u64,
}

impl FileTruncated<'_> {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::warn!(path = %self.path.display(), offset = self.offset, size = self.size, "file truncated; reading it again from 0");
        metrics::counter!("logrelay_agent_truncation_restarts_total").increment(1);
    }
}

/// Why a checkpointed file is read from 0 instead of its checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartReason {
    /// The inode now holds other content (different fingerprint).
    InodeReused,
    /// Same start, but the bytes before the checkpoint differ (offset marker mismatch).
    MarkerMismatch,
    /// The file is shorter than the checkpoint.
    Truncated,
}

impl RestartReason {
    /// The reason label.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartReason::InodeReused => "inode_reused",
            RestartReason::MarkerMismatch => "marker_mismatch",
            RestartReason::Truncated => "truncated",
        }
    }
}

/// A checkpoint did not fit its file any more; the file is read from 0.
#[derive(Debug, Clone, Copy)]
pub struct ResumeRestarted<'a> {
    /// The file's path.
    pub path: &'a Path,
    /// The checkpointed offset that was not used.
    pub offset: u64,
    /// Why.
    pub reason: RestartReason,
}

impl ResumeRestarted<'_> {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::warn!(path = %self.path.display(), offset = self.offset, reason = self.reason.as_str(), "checkpoint does not match the file; reading it from 0");
        if self.reason == RestartReason::Truncated {
            metrics::counter!("logrelay_agent_truncation_restarts_total").increment(1);
        } else {
            metrics::counter!("logrelay_agent_inode_reuse_restarts_total", "reason" => self.reason.as_str()).increment(1);
        }
    }
}

/// A new rotated file holds a copy of a followed file (copytruncate); it is read from the
/// original's offset, so the copied lines are not shipped twice.
#[derive(Debug, Clone, Copy)]
pub struct CopyDetected<'a> {
    /// The copy's path.
    pub path: &'a Path,
    /// Where reading it starts.
    pub offset: u64,
}

impl CopyDetected<'_> {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::info!(path = %self.path.display(), offset = self.offset, "file is a copy of a followed file; continuing at its offset");
        metrics::counter!("logrelay_agent_copied_files_total").increment(1);
    }
}

/// Bytes became unreadable before they were read: counted per pod, never silently.
#[derive(Debug, Clone, Copy)]
pub struct BytesLost<'a> {
    /// The pod's namespace.
    pub namespace: &'a str,
    /// The pod's name.
    pub pod: &'a str,
    /// The file.
    pub path: &'a Path,
    /// How many bytes.
    pub bytes: u64,
    /// What happened.
    pub reason: LossReason,
}

/// Why bytes a container wrote could not be shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LossReason {
    /// The file was deleted between the listing that found it and its open.
    DeletedBeforeOpen,
    /// A file waiting for a slot (or parked) was removed before it was read to its end, and no
    /// `.gz` continues it.
    RemovedUnread,
    /// The file shrank (truncation) before it was read to its end, and no copy of it appeared.
    TruncatedUnread,
    /// A checkpointed file was gone when the agent started again: the bytes after its
    /// checkpoint (including the unfinished lines it held) were written, but never read.
    DeletedWhileDown,
}

impl LossReason {
    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            LossReason::DeletedBeforeOpen => "deleted_before_open",
            LossReason::RemovedUnread => "removed_unread",
            LossReason::TruncatedUnread => "truncated_unread",
            LossReason::DeletedWhileDown => "deleted_while_down",
        }
    }
}

impl BytesLost<'_> {
    /// Logs (once per file: each file's loss is reported once) and counts the event.
    pub fn emit(self) {
        if self.bytes == 0 {
            return;
        }
        tracing::warn!(
            namespace = self.namespace,
            pod = self.pod,
            path = %self.path.display(),
            bytes = self.bytes,
            reason = self.reason.as_str(),
            "log bytes became unreadable before they were read"
        );
        Self::counter(self.namespace, self.pod, self.reason).increment(self.bytes);
    }

    /// The per-pod series `logrelay_agent_lost_bytes_total{namespace, pod, reason}`.
    pub fn counter(namespace: &str, pod: &str, reason: LossReason) -> metrics::Counter {
        metrics::counter!(
            "logrelay_agent_lost_bytes_total",
            "namespace" => namespace.to_owned(),
            "pod" => pod.to_owned(),
            "reason" => reason.as_str()
        )
    }
}

/// A rotated file waits for a slot under the per-pod cap on open rotated files.
#[derive(Debug, Clone, Copy)]
pub struct RotatedFileDeferred<'a> {
    /// The file.
    pub path: &'a Path,
    /// The cap.
    pub cap: usize,
}

impl RotatedFileDeferred<'_> {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::info!(path = %self.path.display(), cap = self.cap, "per-pod cap on open rotated files reached; file waits for a slot");
        metrics::counter!("logrelay_agent_rotated_files_deferred_total").increment(1);
    }
}

/// A gzipped rotated file continues a file whose plain version went away before it was read to
/// the end; it is read from that offset in the decompressed stream.
#[derive(Debug, Clone, Copy)]
pub struct CompressedFileResumed<'a> {
    /// The `.gz` file.
    pub path: &'a Path,
    /// The offset in the decompressed content.
    pub offset: u64,
}

impl CompressedFileResumed<'_> {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::info!(path = %self.path.display(), offset = self.offset, "continuing a rotated file in its gzipped version");
        metrics::counter!("logrelay_agent_compressed_files_resumed_total").increment(1);
    }
}

/// A gzipped file is not read: it continues no file this agent followed (its content was read
/// before it was compressed, or it predates the agent).
#[derive(Debug, Clone, Copy)]
pub struct CompressedFileIgnored<'a> {
    /// The `.gz` file.
    pub path: &'a Path,
}

impl CompressedFileIgnored<'_> {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::debug!(path = %self.path.display(), "gzipped file continues no followed file; not read");
        metrics::counter!("logrelay_agent_compressed_files_ignored_total").increment(1);
    }
}

/// NUL bytes were skipped at the start of a truncated file.
#[derive(Debug, Clone, Copy)]
pub struct HoleBytesSkipped {
    /// How many.
    pub bytes: u64,
}

impl HoleBytesSkipped {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::debug!(
            bytes = self.bytes,
            "skipped NUL bytes left by a writer after truncation"
        );
        metrics::counter!("logrelay_agent_hole_bytes_skipped_total").increment(self.bytes);
    }
}

/// Reading a followed file failed; it is retried at the next scan.
#[derive(Debug)]
pub struct ReadFailed<'a> {
    /// The file.
    pub path: &'a Path,
    /// The error.
    pub error: &'a std::io::Error,
}

impl ReadFailed<'_> {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::warn!(path = %self.path.display(), error = %self.error, "reading log file failed; retrying at the next scan");
        metrics::counter!("logrelay_agent_read_errors_total").increment(1);
    }
}

/// Listing a directory or opening a found file failed during a scan.
#[derive(Debug)]
pub struct DiscoveryFailed<'a> {
    /// The directory or file.
    pub path: &'a Path,
    /// The error.
    pub error: &'a std::io::Error,
}

impl DiscoveryFailed<'_> {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::warn!(path = %self.path.display(), error = %self.error, "scanning the pods root failed here; retrying at the next scan");
        metrics::counter!("logrelay_agent_discovery_errors_total").increment(1);
    }
}

/// The inotify watch could not be set up; discovery relies on the rescan until it can.
#[derive(Debug)]
pub struct WatchFailed<'a> {
    /// The pods root.
    pub root: &'a Path,
    /// The error.
    pub error: &'a notify::Error,
}

impl WatchFailed<'_> {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::warn!(root = %self.root.display(), error = %self.error, "cannot watch the pods root; relying on the periodic rescan");
        metrics::counter!("logrelay_agent_watch_errors_total").increment(1);
    }
}

/// A checkpointed file was not found again within the grace period after start.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointedFileMissing<'a> {
    /// The path it had.
    pub path: &'a Path,
    /// The checkpointed offset.
    pub offset: u64,
}

impl CheckpointedFileMissing<'_> {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::info!(path = %self.path.display(), offset = self.offset, "checkpointed file is gone");
        metrics::counter!("logrelay_agent_checkpointed_files_missing_total").increment(1);
    }
}

/// The tailer's gauges, set after every scan.
#[derive(Debug, Clone, Copy)]
pub struct TailerGauges {
    /// Descriptors held.
    pub open_files: usize,
    /// Files followed.
    pub followed_files: usize,
    /// Unread bytes in rotated files.
    pub bytes_at_risk: u64,
}

impl TailerGauges {
    /// Sets the gauges.
    pub fn emit(self) {
        tracing::trace!(
            open_files = self.open_files,
            followed_files = self.followed_files,
            bytes_at_risk = self.bytes_at_risk,
            "tailer state"
        );
        metrics::gauge!("logrelay_agent_open_files").set(self.open_files as f64);
        metrics::gauge!("logrelay_agent_followed_files").set(self.followed_files as f64);
        metrics::gauge!("logrelay_agent_bytes_at_risk").set(self.bytes_at_risk as f64);
    }
}
