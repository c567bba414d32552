//! Internal events of the agent's `sink` stage: requests by outcome and latency, retries, objects
//! stored, uploads abandoned at the shutdown deadline.

use super::InternalEvent;
use std::time::Duration;

/// Registers help texts for this module's metrics.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "logrelay_agent_sink_requests_total",
        "Object store requests, by sink (s3, file), operation and outcome (success, throttled, transient, timeout, rejected)."
    );
    metrics::describe_histogram!(
        "logrelay_agent_sink_request_duration_seconds",
        metrics::Unit::Seconds,
        "Object store request latency, by sink and operation."
    );
    metrics::describe_counter!(
        "logrelay_agent_upload_retries_total",
        "Failed upload attempts that will be retried, by error class."
    );
    metrics::describe_counter!(
        "logrelay_agent_objects_stored_total",
        "Objects stored and acknowledged."
    );
    metrics::describe_counter!(
        "logrelay_agent_stored_bytes_total",
        "Gzip bytes of stored objects."
    );
    metrics::describe_counter!(
        "logrelay_agent_stored_lines_total",
        "Records in stored objects."
    );
    metrics::describe_counter!(
        "logrelay_agent_uploads_abandoned_total",
        "Batches not stored when the shutdown grace period ended (re-read on restart)."
    );
}

/// One request to the object store finished (successfully or not).
#[derive(Debug, Clone, Copy)]
pub struct SinkRequest {
    /// `s3` or `file`.
    pub sink: &'static str,
    /// The operation (`put_object`, `upload_part`, …).
    pub operation: &'static str,
    /// `success`, `throttled`, `transient`, `timeout` or `rejected`.
    pub outcome: &'static str,
    /// How long it took.
    pub duration: Duration,
}

impl InternalEvent for SinkRequest {
    fn emit(self) {
        metrics::counter!(
            "logrelay_agent_sink_requests_total",
            "sink" => self.sink, "operation" => self.operation, "outcome" => self.outcome
        )
        .increment(1);
        metrics::histogram!(
            "logrelay_agent_sink_request_duration_seconds",
            "sink" => self.sink, "operation" => self.operation
        )
        .record(self.duration.as_secs_f64());
    }
}

/// An upload failed and will be tried again after `backoff`.
#[derive(Debug)]
pub struct UploadRetrying<'a> {
    /// The object key.
    pub key: &'a str,
    /// Attempts made so far.
    pub attempt: u32,
    /// The error class (`throttled`, `transient`, `timeout`, `rejected`).
    pub class: &'static str,
    /// Wait before the next attempt.
    pub backoff: Duration,
    /// The error.
    pub error: &'a dyn std::error::Error,
}

impl InternalEvent for UploadRetrying<'_> {
    fn emit(self) {
        tracing::warn!(
            key = self.key,
            attempt = self.attempt,
            class = self.class,
            backoff_ms = self.backoff.as_millis() as u64,
            error = %self.error,
            "upload failed; retrying"
        );
        metrics::counter!("logrelay_agent_upload_retries_total", "class" => self.class)
            .increment(1);
    }
}

/// An object was stored and acknowledged.
#[derive(Debug)]
pub struct ObjectStored<'a> {
    /// The object key.
    pub key: &'a str,
    /// Compressed size.
    pub bytes: u64,
    /// Records in it.
    pub lines: u64,
    /// Attempts it took.
    pub attempts: u32,
}

impl InternalEvent for ObjectStored<'_> {
    fn emit(self) {
        tracing::debug!(
            key = self.key,
            bytes = self.bytes,
            lines = self.lines,
            attempts = self.attempts,
            "object stored"
        );
        metrics::counter!("logrelay_agent_objects_stored_total").increment(1);
        metrics::counter!("logrelay_agent_stored_bytes_total").increment(self.bytes);
        metrics::counter!("logrelay_agent_stored_lines_total").increment(self.lines);
    }
}

/// Uploads still unfinished when the shutdown grace period ended; their lines stay unacknowledged
/// and are read again by the next start.
#[derive(Debug, Clone, Copy)]
pub struct UploadsAbandoned {
    /// Batches not stored.
    pub batches: usize,
    /// Lines in them.
    pub lines: u64,
}

impl InternalEvent for UploadsAbandoned {
    fn emit(self) {
        tracing::error!(
            batches = self.batches,
            lines = self.lines,
            "shutdown grace period over with uploads unfinished; they will be re-read on restart"
        );
        metrics::counter!("logrelay_agent_uploads_abandoned_total").increment(self.batches as u64);
    }
}
