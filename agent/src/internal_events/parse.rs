//! Internal events of the agent's `parse` stage (and of the stdin source's record checks): lines
//! that did not parse, were cut at the line cap, carried invalid UTF-8, were blank, or were split
//! partials shipped before their end. Each one counts and logs; per-line events log at debug level
//! so a flood of bad input cannot flood the agent's own log.

/// Registers help texts for this module's metrics.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "logrelay_agent_parse_errors_total",
        "Lines that did not parse, shipped with their raw text as message, by format and reason."
    );
    metrics::describe_counter!(
        "logrelay_agent_lines_truncated_total",
        "Messages cut at the line-length cap (marked logrelay_truncated)."
    );
    metrics::describe_counter!(
        "logrelay_agent_truncated_bytes_total",
        "Bytes dropped from messages cut at the line-length cap."
    );
    metrics::describe_counter!(
        "logrelay_agent_invalid_utf8_lines_total",
        "Messages whose invalid UTF-8 was replaced lossily."
    );
    metrics::describe_counter!(
        "logrelay_agent_empty_lines_total",
        "Blank raw lines (no record; their bytes are checkpointed)."
    );
    metrics::describe_counter!(
        "logrelay_agent_partial_lines_flushed_total",
        "Split lines shipped before their final chunk, by reason."
    );
    metrics::describe_counter!(
        "logrelay_agent_multiline_records_total",
        "Records joined from several lines by --multiline or --multiline-start-regex."
    );
    metrics::describe_counter!(
        "logrelay_agent_multiline_joined_lines_total",
        "Lines that went into joined multi-line records."
    );
    metrics::describe_counter!(
        "logrelay_agent_multiline_annotation_errors_total",
        "Files of pods whose logrelay.io/multiline annotation is invalid (--multiline applies)."
    );
    metrics::describe_counter!(
        "logrelay_agent_stdin_records_repaired_total",
        "Stdin lines shipped after a repair, by reason."
    );
}

/// A line did not parse in its file's format; it is shipped with its raw text as the message.
#[derive(Debug, Clone, Copy)]
pub struct ParseError {
    /// The file's format (`cri`, `docker`, …).
    pub format: &'static str,
    /// What was wrong (`bad_timestamp`, …).
    pub reason: &'static str,
}

impl ParseError {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::debug!(
            format = self.format,
            reason = self.reason,
            "line did not parse; shipping its raw text"
        );
        metrics::counter!("logrelay_agent_parse_errors_total", "format" => self.format, "reason" => self.reason)
            .increment(1);
    }
}

/// A message was cut at the line-length cap.
#[derive(Debug, Clone, Copy)]
pub struct LineTruncated {
    /// Its length before the cut.
    pub original_bytes: u64,
    /// What was kept.
    pub kept_bytes: u64,
}

impl LineTruncated {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::debug!(
            original_bytes = self.original_bytes,
            kept_bytes = self.kept_bytes,
            "message cut at the line cap"
        );
        metrics::counter!("logrelay_agent_lines_truncated_total").increment(1);
        metrics::counter!("logrelay_agent_truncated_bytes_total")
            .increment(self.original_bytes.saturating_sub(self.kept_bytes));
    }
}

/// A message held invalid UTF-8, replaced with U+FFFD.
#[derive(Debug, Clone, Copy)]
pub struct InvalidUtf8 {
    /// Length of the message in bytes.
    pub bytes: u64,
}

impl InvalidUtf8 {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::debug!(
            bytes = self.bytes,
            "message is not valid UTF-8; replaced lossily"
        );
        metrics::counter!("logrelay_agent_invalid_utf8_lines_total").increment(1);
    }
}

/// A blank raw line: no record, its bytes are consumed.
#[derive(Debug, Clone, Copy)]
pub struct EmptyLine;

impl EmptyLine {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::trace!("blank line skipped");
        metrics::counter!("logrelay_agent_empty_lines_total").increment(1);
    }
}

/// Why a partial line was shipped before its final chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartialFlushReason {
    /// No chunk came within the flush timeout.
    Timeout,
    /// The file ended (drained after rotation or deletion).
    EndOfFile,
}

impl PartialFlushReason {
    /// The reason label.
    pub fn as_str(self) -> &'static str {
        match self {
            PartialFlushReason::Timeout => "timeout",
            PartialFlushReason::EndOfFile => "end_of_file",
        }
    }
}

/// A split line was shipped before its final chunk; its remaining chunks become a line of their own.
#[derive(Debug, Clone, Copy)]
pub struct PartialLineFlushed {
    /// Why.
    pub reason: PartialFlushReason,
}

impl PartialLineFlushed {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::debug!(
            reason = self.reason.as_str(),
            "partial line shipped before its final chunk"
        );
        metrics::counter!("logrelay_agent_partial_lines_flushed_total", "reason" => self.reason.as_str()).increment(1);
    }
}

/// Lines of one multi-line record (a stack trace) were joined into one message.
#[derive(Debug, Clone, Copy)]
pub struct MultilineJoined {
    /// How many lines were joined.
    pub lines: u64,
}

impl MultilineJoined {
    /// Counts the event (a debug log: joins are routine).
    pub fn emit(self) {
        tracing::debug!(lines = self.lines, "multi-line record joined");
        metrics::counter!("logrelay_agent_multiline_records_total").increment(1);
        metrics::counter!("logrelay_agent_multiline_joined_lines_total").increment(self.lines);
    }
}

/// A pod's `logrelay.io/multiline` annotation is not a valid setting; `--multiline` applies.
#[derive(Debug, Clone, Copy)]
pub struct MultilineAnnotationInvalid<'a> {
    /// The pod's namespace.
    pub namespace: &'a str,
    /// The pod.
    pub pod: &'a str,
    /// The annotation's value.
    pub value: &'a str,
    /// What is wrong with it.
    pub error: &'a str,
}

impl MultilineAnnotationInvalid<'_> {
    /// Logs (once per file opened) and counts the event.
    pub fn emit(self) {
        tracing::warn!(
            namespace = self.namespace,
            pod = self.pod,
            value = self.value,
            error = self.error,
            "invalid logrelay.io/multiline annotation; --multiline applies"
        );
        metrics::counter!("logrelay_agent_multiline_annotation_errors_total").increment(1);
    }
}

/// What a stdin line needed before it could be shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdinRepair {
    /// A partition field (customer_id, cluster_id, application, pod_name) was missing or empty
    /// and was set to `_unknown`.
    MissingPartitionField,
    /// Another required field was missing: metadata set to `_unknown`, an empty message,
    /// timestamps set to now.
    MissingField,
    /// The line is not a JSON object; shipped as the message of an `_unknown` record.
    NotJson,
    /// A JSON object whose fields have the wrong types; shipped like `NotJson`.
    InvalidRecord,
}

impl StdinRepair {
    /// The reason label.
    pub fn as_str(self) -> &'static str {
        match self {
            StdinRepair::MissingPartitionField => "missing_partition_field",
            StdinRepair::MissingField => "missing_field",
            StdinRepair::NotJson => "not_json",
            StdinRepair::InvalidRecord => "invalid_record",
        }
    }
}

/// A stdin line was repaired before shipping (never dropped).
#[derive(Debug, Clone, Copy)]
pub struct StdinRecordRepaired {
    /// What was repaired.
    pub reason: StdinRepair,
}

impl StdinRecordRepaired {
    /// Logs and counts the event.
    pub fn emit(self) {
        tracing::debug!(reason = self.reason.as_str(), "stdin record repaired");
        metrics::counter!("logrelay_agent_stdin_records_repaired_total", "reason" => self.reason.as_str()).increment(1);
    }
}
