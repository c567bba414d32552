//! The processor's telemetry: internal events ([`events`] for the delivery core, [`intake`] for
//! the intakes; every notable thing that happens to a message or an
//! object is a small typed value that logs once and updates a metric), and where the metrics go:
//! Prometheus text on `/metrics` in SQS mode ([`prometheus`]), CloudWatch Embedded Metric Format
//! lines on stdout after each Lambda invocation ([`emf`]). Logs are JSON or text via
//! `logrelay_common::logging`.
//!
//! Metric names start with [`METRIC_PREFIX`]; [`describe`] gives each its help text;
//! `docs/processor.md` lists them.

pub mod describe;
pub mod emf;
pub mod events;
pub mod intake;
pub mod prometheus;

/// Prefix of every metric the processor exports.
pub const METRIC_PREFIX: &str = "logrelay_processor_";

/// Something that happened to a message or an object: logs once (at a level fitting the event)
/// and updates its metrics.
pub trait InternalEvent {
    /// Logs the event and updates its metrics.
    fn emit(self);
}
