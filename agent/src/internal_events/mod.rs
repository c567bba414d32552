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

/// Registers the help texts of every agent metric (call once after installing the recorder).
pub fn describe_metrics() {
    batch::describe_metrics();
    checkpoint::describe_metrics();
    metadata::describe_metrics();
    parse::describe_metrics();
    sink::describe_metrics();
    tail::describe_metrics();
}
