//! The SQS mode's metrics recorder and readiness, served by the shared HTTP endpoint
//! (`logrelay_common::http_endpoint`): `/metrics`, `/healthz` (200 while the process runs) and
//! `/readyz`, 200 once the configuration is loaded and the intake is polling its queue, 503
//! before that and while shutting down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use logrelay_common::http_endpoint::Readiness;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// How often the recorder's upkeep runs (the exporter's own default period).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Paths the endpoint answers.
pub use logrelay_common::http_endpoint::HTTP_PATHS;

/// Whether the process is serving (true) or draining (false), and whether the intake is running:
/// what `/readyz` answers from.
#[derive(Debug, Clone)]
pub struct Health {
    serving: Arc<AtomicBool>,
    intake_running: Arc<AtomicBool>,
}

impl Health {
    /// A health flag that starts out healthy and not ready.
    pub fn new() -> Self {
        Self {
            serving: Arc::new(AtomicBool::new(true)),
            intake_running: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Marks the process as shutting down: `/readyz` answers 503 from now on.
    pub fn set_draining(&self) {
        self.serving.store(false, Ordering::Relaxed);
    }

    /// Marks the intake as running (its queue answered): `/readyz` answers 200 from now on.
    pub fn set_ready(&self) {
        self.intake_running.store(true, Ordering::Relaxed);
    }

    /// Whether the process is serving.
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Relaxed)
    }

    /// Whether `/readyz` answers 200: the intake runs and the process is not shutting down.
    pub fn is_ready(&self) -> bool {
        self.is_serving() && self.intake_running.load(Ordering::Relaxed)
    }
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

/// Histogram buckets of the processor's `_seconds` metrics (delivery latency from object creation:
/// a second in a quiet pipeline, minutes behind a backlog or a retried message).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// The recorder's builder: histograms (aggregatable across replicas) for every `_seconds` metric.
pub fn builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .unwrap_or_else(|_| PrometheusBuilder::new())
}

/// Why the metrics endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    /// A metrics recorder was already installed.
    #[error("cannot install the Prometheus recorder: {0}")]
    Install(String),
}

/// Installs the Prometheus recorder globally and starts its upkeep task; returns the handle that
/// renders the metrics. Call once, inside the Tokio runtime.
pub fn install() -> Result<PrometheusHandle, PrometheusError> {
    let handle = builder()
        .install_recorder()
        .map_err(|e| PrometheusError::Install(e.to_string()))?;
    super::describe::describe_metrics();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            interval.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

impl Readiness for Health {
    fn readiness(&self) -> Result<(), &'static str> {
        if !self.is_serving() {
            Err("shutting down")
        } else if !self.intake_running.load(Ordering::Relaxed) {
            Err("starting")
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_the_intake_and_ends_when_draining() {
        let health = Health::new();
        assert!(health.is_serving(), "alive from the start");
        assert_eq!(health.readiness(), Err("starting"));
        health.set_ready();
        assert_eq!(health.readiness(), Ok(()));
        health.set_draining();
        assert_eq!(health.readiness(), Err("shutting down"));
    }
}

#[cfg(test)]
mod exposition_tests {
    use super::*;
    use crate::telemetry::InternalEvent;
    use crate::telemetry::describe::{BUILD_INFO, described_names};
    use crate::telemetry::events::{DELIVERY_LATENCY_SECONDS, ObjectFinished};

    /// What `/metrics` shows: at start, and after a delivery.
    fn render(after_start: impl FnOnce()) -> String {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            crate::telemetry::describe::describe_metrics();
            after_start();
        });
        handle.render()
    }

    /// Families with samples but no `# HELP` or `# TYPE`, and summary families.
    fn problems(text: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let sampled: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(|name| {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(name)
            })
            .collect();
        for family in sampled {
            for marker in ["# HELP", "# TYPE"] {
                if !text.contains(&format!("{marker} {family} ")) {
                    problems.push(format!("{family}: no {marker}"));
                }
            }
            if text.contains(&format!("# TYPE {family} summary")) {
                problems.push(format!("{family}: a summary (not aggregatable)"));
            }
        }
        problems
    }

    /// `promtool check metrics`, when promtool is installed (`make test` installs it); `None`
    /// when it is not.
    fn promtool(text: &str) -> Option<String> {
        use std::io::Write;
        let mut child = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("writes");
        let output = child.wait_with_output().expect("promtool runs");
        Some(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }

    #[test]
    fn metrics_are_described_histograms_and_present_from_the_start() {
        let idle = render(|| {});
        assert!(
            idle.contains(&format!(
                "{BUILD_INFO}{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{idle}"
        );
        assert!(
            idle.contains("logrelay_processor_messages_total{disposition=\"dead_letter\"} 0"),
            "{idle}"
        );
        let busy = render(|| {
            ObjectFinished {
                tenant: "acme",
                outcome: "delivered",
                reason: "ok",
                object: "s3://b/k",
            }
            .emit();
            metrics::histogram!(DELIVERY_LATENCY_SECONDS, "tenant" => "acme").record(1.5);
        });
        assert!(
            busy.contains("# TYPE logrelay_processor_delivery_latency_seconds histogram"),
            "{busy}"
        );
        for text in [&idle, &busy] {
            assert_eq!(problems(text), Vec::<String>::new(), "{text}");
            if let Some(report) = promtool(text) {
                assert_eq!(
                    report.trim(),
                    "",
                    "promtool check metrics:\n{report}\n{text}"
                );
            } else if std::env::var_os("LOGRELAY_REQUIRE_PROMTOOL").is_some() {
                panic!("promtool is not installed (LOGRELAY_REQUIRE_PROMTOOL is set)");
            }
        }
        assert!(described_names().all(|n| n.starts_with(crate::telemetry::METRIC_PREFIX)));
    }
}
