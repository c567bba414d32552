//! Internal events of the agent's `checkpoint` stage: saves, failures, age, fresh starts, dropped
//! entries and how much is read but not yet acknowledged.

use super::InternalEvent;
use std::path::Path;
use std::time::Duration;

/// Registers help texts for this module's metrics.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "logrelay_agent_checkpoint_saves_total",
        "Checkpoint file writes."
    );
    metrics::describe_counter!(
        "logrelay_agent_checkpoint_save_errors_total",
        "Failed checkpoint file writes (retried next second)."
    );
    metrics::describe_histogram!(
        "logrelay_agent_checkpoint_save_duration_seconds",
        metrics::Unit::Seconds,
        "Time to write, fsync and rename the checkpoint file."
    );
    metrics::describe_gauge!(
        "logrelay_agent_checkpoint_entries",
        "Entries in the checkpoint file."
    );
    metrics::describe_gauge!(
        "logrelay_agent_checkpoint_age_seconds",
        "Time since the checkpoint file was last known current."
    );
    metrics::describe_counter!(
        "logrelay_agent_checkpoint_fresh_starts_total",
        "Starts without checkpoints because the file was unusable (corrupt or other version)."
    );
    metrics::describe_counter!(
        "logrelay_agent_checkpoint_entries_dropped_total",
        "Checkpoint entries dropped because their file was gone for over a minute."
    );
    metrics::describe_gauge!(
        "logrelay_agent_unacknowledged_bytes",
        "Bytes read whose lines are not all in acknowledged objects yet."
    );
    metrics::describe_gauge!(
        "logrelay_agent_tracked_files",
        "Files with events in this run whose acknowledgements are tracked."
    );
    metrics::describe_gauge!(
        "logrelay_agent_downtime_seconds",
        metrics::Unit::Seconds,
        "How long the agent was not running before this start (at most 30 s more than the truth)."
    );
}

/// The checkpoint file was written.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointSaved {
    /// Entries written.
    pub entries: usize,
    /// Time taken (write, fsync, rename, fsync).
    pub duration: Duration,
}

impl InternalEvent for CheckpointSaved {
    fn emit(self) {
        tracing::trace!(
            entries = self.entries,
            duration_ms = self.duration.as_millis() as u64,
            "checkpoints saved"
        );
        metrics::counter!("logrelay_agent_checkpoint_saves_total").increment(1);
        metrics::gauge!("logrelay_agent_checkpoint_entries").set(self.entries as f64);
        metrics::histogram!("logrelay_agent_checkpoint_save_duration_seconds")
            .record(self.duration.as_secs_f64());
    }
}

/// Writing the checkpoint file failed; the next save tries again.
#[derive(Debug)]
pub struct CheckpointSaveFailed<'a> {
    /// Why.
    pub error: &'a dyn std::error::Error,
}

impl InternalEvent for CheckpointSaveFailed<'_> {
    fn emit(self) {
        tracing::error!(error = %self.error, "cannot save checkpoints");
        metrics::counter!("logrelay_agent_checkpoint_save_errors_total").increment(1);
    }
}

/// Time since the checkpoint file was last written successfully.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointAge {
    /// The age.
    pub age: Duration,
}

impl InternalEvent for CheckpointAge {
    fn emit(self) {
        metrics::gauge!("logrelay_agent_checkpoint_age_seconds").set(self.age.as_secs_f64());
    }
}

/// The checkpoint file could not be used: the agent starts without checkpoints (every file is read
/// from its start: duplicates, never loss).
#[derive(Debug)]
pub struct CheckpointFreshStart<'a> {
    /// Why.
    pub error: &'a dyn std::error::Error,
    /// Where the unusable file was moved.
    pub set_aside: Option<&'a Path>,
}

impl InternalEvent for CheckpointFreshStart<'_> {
    fn emit(self) {
        tracing::error!(
            error = %self.error,
            set_aside = ?self.set_aside,
            "checkpoint file unusable; starting without checkpoints (files are read from the start)"
        );
        metrics::counter!("logrelay_agent_checkpoint_fresh_starts_total").increment(1);
    }
}

/// Entries of files gone for longer than the retention were dropped.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointEntriesDropped {
    /// How many.
    pub count: usize,
}

impl InternalEvent for CheckpointEntriesDropped {
    fn emit(self) {
        tracing::debug!(
            count = self.count,
            "dropped checkpoints of files that are gone"
        );
        metrics::counter!("logrelay_agent_checkpoint_entries_dropped_total")
            .increment(self.count as u64);
    }
}

/// How much has been read but is not yet in an acknowledged object.
#[derive(Debug, Clone, Copy)]
pub struct Unacknowledged {
    /// Bytes read whose lines are not all acknowledged.
    pub bytes: u64,
    /// Files with events in this run still tracked.
    pub files: usize,
}

impl InternalEvent for Unacknowledged {
    fn emit(self) {
        metrics::gauge!("logrelay_agent_unacknowledged_bytes").set(self.bytes as f64);
        metrics::gauge!("logrelay_agent_tracked_files").set(self.files as f64);
    }
}

/// The agent starts again after a time it was not running: a container whose whole life fell in
/// that window wrote logs no one read (its files are gone before anything could see them).
#[derive(Debug, Clone, Copy)]
pub struct AgentWasDown {
    /// When the previous run last wrote its checkpoints (it ran until at least then).
    pub since: chrono::DateTime<chrono::Utc>,
    /// How long ago that was.
    pub seconds: f64,
}

/// Downtimes shorter than this are logged at info, longer ones at warn.
const DOWNTIME_WARN_SECONDS: f64 = 60.0;

impl InternalEvent for AgentWasDown {
    fn emit(self) {
        let since = self.since.to_rfc3339();
        if self.seconds >= DOWNTIME_WARN_SECONDS {
            tracing::warn!(
                since,
                seconds = self.seconds,
                "the agent was not running: logs of containers that started and ended in this \
                 window were not read"
            );
        } else {
            tracing::info!(since, seconds = self.seconds, "resuming after a restart");
        }
        metrics::gauge!("logrelay_agent_downtime_seconds").set(self.seconds);
    }
}
