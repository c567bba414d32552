//! The agent's internal events: every notable thing that happens to data (read, dropped,
//! truncated, rotated, uploaded, retried, checkpointed) is a small typed value that logs once and
//! increments a metric. Nothing is dropped silently. One file per area of the data path.
//!
//! Usage: build the event and call [`InternalEvent::emit`], e.g. `BatchSealed { .. }.emit()`.
//! Metric names start with [`METRIC_PREFIX`]; `docs/agent.md` lists them all.

pub mod batch;
pub mod checkpoint;
pub mod metadata;
pub mod parse;
pub mod pod_series;
pub mod sink;
pub mod tail;

/// Prefix of every metric the agent exports.
pub const METRIC_PREFIX: &str = "logrelay_agent_";

/// Something that happened to data: logs once (at a level fitting the event) and updates metrics.
pub trait InternalEvent {
    /// Logs the event and updates its metrics.
    fn emit(self);
}

/// Always 1, labelled with the version: which build runs on which node.
pub const BUILD_INFO: &str = "logrelay_agent_build_info";

/// Counters that exist at zero from the start, so `rate()` and `absent()` alerts on them work
/// before their first event (counters with open-ended labels appear with their first event).
pub const COUNTERS_FROM_START: &[&str] = &[
    "logrelay_agent_objects_stored_total",
    "logrelay_agent_stored_lines_total",
    "logrelay_agent_stored_bytes_total",
    "logrelay_agent_uploads_abandoned_total",
    "logrelay_agent_checkpoint_saves_total",
    "logrelay_agent_checkpoint_save_errors_total",
    "logrelay_agent_lines_truncated_total",
    "logrelay_agent_read_errors_total",
    "logrelay_agent_backpressure_events_total",
    "logrelay_agent_buffer_errors_total",
];

/// Registers the help texts of every agent metric, and the series that exist from the start
/// (call once after installing the recorder).
pub fn describe_metrics() {
    batch::describe_metrics();
    checkpoint::describe_metrics();
    metadata::describe_metrics();
    parse::describe_metrics();
    sink::describe_metrics();
    tail::describe_metrics();
    metrics::describe_gauge!(
        BUILD_INFO,
        "Always 1; the version label names the running build."
    );
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for name in COUNTERS_FROM_START {
        metrics::counter!(*name).absolute(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_and_key_counters_exist_from_the_start_with_help() {
        let recorder = crate::server::SplitRecorder::default();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, describe_metrics);
        let text = logrelay_common::http_endpoint::MetricsText::render(&handle);
        assert!(
            text.contains(&format!(
                "{BUILD_INFO}{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        for name in COUNTERS_FROM_START {
            assert!(text.contains(&format!("{name} 0")), "{name}:\n{text}");
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has help:\n{text}"
            );
        }
    }
}
