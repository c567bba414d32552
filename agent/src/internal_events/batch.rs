//! Internal events of the agent's `batch` stage: batches sealed, lines the batcher could not
//! encode, memory and disk buffer held, backpressure.

use super::InternalEvent;

/// Registers help texts for this module's metrics.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "logrelay_agent_batches_sealed_total",
        "Batches sealed into objects, by reason (size, timeout, buffer_full, buffer_error, open_limit, shutdown)."
    );
    metrics::describe_counter!(
        "logrelay_agent_batched_lines_total",
        "Records written into sealed batches."
    );
    metrics::describe_counter!(
        "logrelay_agent_batched_uncompressed_bytes_total",
        "Uncompressed NDJSON bytes of sealed batches."
    );
    metrics::describe_counter!(
        "logrelay_agent_batched_compressed_bytes_total",
        "Gzip bytes of sealed batches."
    );
    metrics::describe_counter!(
        "logrelay_agent_lines_dropped_total",
        "Lines dropped, by reason (the batcher: encode_error)."
    );
    metrics::describe_gauge!(
        "logrelay_agent_open_batches",
        "Batches being filled (one per partition at most)."
    );
    metrics::describe_gauge!(
        "logrelay_agent_batch_memory_bytes",
        "Memory held by batching, by state (open = pending lines, sealed = bodies held in memory until acknowledged)."
    );
    metrics::describe_gauge!(
        "logrelay_agent_buffer_bytes",
        "Bytes in the disk buffer, by state (open = batches being filled, sealed = waiting for upload or acknowledgement)."
    );
    metrics::describe_gauge!(
        "logrelay_agent_buffer_limit_bytes",
        "The disk buffer's limit (--buffer-max-bytes)."
    );
    metrics::describe_counter!(
        "logrelay_agent_buffer_errors_total",
        "Disk buffer writes that failed (the batch was kept in memory and shipped at once)."
    );
    metrics::describe_counter!(
        "logrelay_agent_buffer_leftover_bytes_total",
        "Bytes of an earlier run's disk buffer removed at start (their lines are read again)."
    );
    metrics::describe_gauge!(
        "logrelay_agent_sealed_batches",
        "Sealed batches queued or uploading."
    );
    metrics::describe_gauge!(
        "logrelay_agent_backpressure",
        "1 while the memory cap or the full disk buffer stops reading, else 0."
    );
    metrics::describe_counter!(
        "logrelay_agent_backpressure_events_total",
        "Times the memory cap or the full disk buffer stopped reading."
    );
}

/// A batch was sealed into an object-to-be.
#[derive(Debug, Clone, Copy)]
pub struct BatchSealed {
    /// Why (`size`, `timeout`, …).
    pub reason: &'static str,
    /// Records in it.
    pub lines: u64,
    /// Uncompressed NDJSON bytes.
    pub uncompressed_bytes: u64,
    /// Gzip bytes.
    pub compressed_bytes: u64,
}

impl InternalEvent for BatchSealed {
    fn emit(self) {
        tracing::debug!(
            reason = self.reason,
            lines = self.lines,
            uncompressed_bytes = self.uncompressed_bytes,
            compressed_bytes = self.compressed_bytes,
            "batch sealed"
        );
        metrics::counter!("logrelay_agent_batches_sealed_total", "reason" => self.reason)
            .increment(1);
        metrics::counter!("logrelay_agent_batched_lines_total").increment(self.lines);
        metrics::counter!("logrelay_agent_batched_uncompressed_bytes_total")
            .increment(self.uncompressed_bytes);
        metrics::counter!("logrelay_agent_batched_compressed_bytes_total")
            .increment(self.compressed_bytes);
    }
}

/// A line could not be encoded into a batch and is dropped (its bytes count as consumed).
#[derive(Debug)]
pub struct LineEncodeFailed<'a> {
    /// Why.
    pub error: &'a dyn std::error::Error,
}

impl InternalEvent for LineEncodeFailed<'_> {
    fn emit(self) {
        tracing::warn!(error = %self.error, "line dropped: cannot encode record");
        metrics::counter!("logrelay_agent_lines_dropped_total", "reason" => "encode_error")
            .increment(1);
    }
}

/// How much memory and disk buffer batching holds (updated on every change).
#[derive(Debug, Clone, Copy)]
pub struct BatchMemory {
    /// Open batches.
    pub open_batches: usize,
    /// Memory of open batches (pending lines).
    pub open_bytes: u64,
    /// Sealed bodies held in memory until acknowledged (small ones, and those being uploaded).
    pub sealed_bytes: u64,
    /// Sealed batches not yet acknowledged (queued or uploading).
    pub sealed_batches: usize,
    /// Disk buffer bytes of open batches.
    pub buffer_open_bytes: u64,
    /// Disk buffer bytes of sealed batches.
    pub buffer_sealed_bytes: u64,
}

impl InternalEvent for BatchMemory {
    fn emit(self) {
        metrics::gauge!("logrelay_agent_open_batches").set(self.open_batches as f64);
        metrics::gauge!("logrelay_agent_batch_memory_bytes", "state" => "open")
            .set(self.open_bytes as f64);
        metrics::gauge!("logrelay_agent_batch_memory_bytes", "state" => "sealed")
            .set(self.sealed_bytes as f64);
        metrics::gauge!("logrelay_agent_sealed_batches").set(self.sealed_batches as f64);
        metrics::gauge!("logrelay_agent_buffer_bytes", "state" => "open")
            .set(self.buffer_open_bytes as f64);
        metrics::gauge!("logrelay_agent_buffer_bytes", "state" => "sealed")
            .set(self.buffer_sealed_bytes as f64);
    }
}

/// The disk buffer is ready: its directory, limit, and what an earlier run left there.
#[derive(Debug, Clone, Copy)]
pub struct BufferOpened<'a> {
    /// The directory.
    pub dir: &'a std::path::Path,
    /// `--buffer-max-bytes`.
    pub limit: u64,
    /// Files of an earlier run removed.
    pub leftover_files: u64,
    /// Their bytes.
    pub leftover_bytes: u64,
}

impl InternalEvent for BufferOpened<'_> {
    fn emit(self) {
        if self.leftover_files > 0 {
            tracing::info!(
                dir = %self.dir.display(),
                files = self.leftover_files,
                bytes = self.leftover_bytes,
                "disk buffer: removed an earlier run's unconfirmed batches; their lines are read again from the logs"
            );
        }
        tracing::info!(dir = %self.dir.display(), limit_bytes = self.limit, "disk buffer ready");
        metrics::gauge!("logrelay_agent_buffer_limit_bytes").set(self.limit as f64);
        metrics::counter!("logrelay_agent_buffer_leftover_bytes_total")
            .increment(self.leftover_bytes);
    }
}

/// A disk buffer write failed; the batch is kept in memory and sealed at once.
#[derive(Debug)]
pub struct BufferWriteFailed<'a> {
    /// Why.
    pub error: &'a dyn std::error::Error,
}

impl InternalEvent for BufferWriteFailed<'_> {
    fn emit(self) {
        tracing::warn!(
            error = %self.error,
            "disk buffer write failed: the batch is sealed and shipped from memory"
        );
        metrics::counter!("logrelay_agent_buffer_errors_total").increment(1);
    }
}

/// The batcher stopped (or resumed) taking events because the memory cap is reached or the disk
/// buffer is full: sources stop reading and the log files wait on disk.
#[derive(Debug, Clone, Copy)]
pub struct Backpressure {
    /// Whether backpressure is now on.
    pub active: bool,
    /// Memory held when it changed.
    pub memory_bytes: u64,
    /// Disk buffer bytes when it changed.
    pub buffer_bytes: u64,
}

impl InternalEvent for Backpressure {
    fn emit(self) {
        if self.active {
            tracing::warn!(
                memory_bytes = self.memory_bytes,
                buffer_bytes = self.buffer_bytes,
                "memory cap or disk buffer limit reached: not reading until the sink catches up"
            );
            metrics::counter!("logrelay_agent_backpressure_events_total").increment(1);
        } else {
            tracing::info!(
                memory_bytes = self.memory_bytes,
                buffer_bytes = self.buffer_bytes,
                "below the memory cap and the disk buffer limit again: reading"
            );
        }
        metrics::gauge!("logrelay_agent_backpressure").set(if self.active { 1.0 } else { 0.0 });
    }
}
