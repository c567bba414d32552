//! The SQS mode's metrics recorder and readiness, served by the shared HTTP endpoint
//! (`logrelay_common::http_endpoint`): `/metrics`, `/healthz` (200 while the process runs) and
//! `/readyz`, 200 once the configuration is loaded and the intake is polling its queue, 503
//! before that and while shutting down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use logrelay_common::http_endpoint::Readiness;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// How often histogram summaries are maintained (the exporter's own default upkeep period).
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
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| PrometheusError::Install(e.to_string()))?;
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
