//! The agent's metrics recorder ([`recorder`]) and its readiness: the shared HTTP endpoint
//! (`logrelay_common::http_endpoint`) serves `/metrics`, `/healthz` and `/readyz`, which is ready
//! once the pipeline started, while the file source's pods root exists and while the sink has not
//! been failing for long.

pub mod recorder;

use crate::sink::SinkHealth;
use logrelay_common::http_endpoint::{self, Readiness};
pub use recorder::{AgentMetrics, LATENCY_BUCKETS, SplitRecorder};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_util::sync::CancellationToken;

/// Installs the global metrics recorder and returns the handle that renders it. Call once, early;
/// a second call (tests) returns a handle to a recorder that is not installed.
pub fn install_metrics() -> AgentMetrics {
    let recorder = SplitRecorder::default();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        tracing::debug!("a metrics recorder is already installed");
    }
    handle
}

/// What the probes look at.
#[derive(Debug, Clone)]
pub struct ServerState {
    metrics: AgentMetrics,
    started: Arc<AtomicBool>,
    sink: SinkHealth,
    /// The directory the file source reads (`None` for stdin): not ready while it is missing.
    pods_root: Option<PathBuf>,
}

impl ServerState {
    /// State over the metrics `handle` and the sink's health.
    pub fn new(metrics: AgentMetrics, sink: SinkHealth) -> Self {
        Self {
            metrics,
            started: Arc::new(AtomicBool::new(false)),
            sink,
            pods_root: None,
        }
    }

    /// Makes readiness require `pods_root` to be a directory (the file source's input).
    pub fn with_pods_root(mut self, pods_root: PathBuf) -> Self {
        self.pods_root = Some(pods_root);
        self
    }

    /// Marks the pipeline as started (sources and delivery running).
    pub fn set_started(&self) {
        self.started.store(true, Ordering::Relaxed);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.readiness().is_ok()
    }
}

/// Paths the endpoint answers.
pub use logrelay_common::http_endpoint::HTTP_PATHS;

impl Readiness for ServerState {
    fn readiness(&self) -> Result<(), &'static str> {
        if !self.started.load(Ordering::Relaxed) {
            Err("starting")
        } else if self.pods_root.as_ref().is_some_and(|root| !root.is_dir()) {
            Err("pods root missing")
        } else if !self.sink.is_healthy() {
            Err("sink failing")
        } else {
            Ok(())
        }
    }
}

/// Binds `addr`; returns the bound address (useful with port 0) and the serving future, which
/// ends when `shutdown` is cancelled.
pub async fn bind(
    addr: SocketAddr,
    state: ServerState,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    http_endpoint::bind(addr, state.metrics.clone(), state, async move {
        shutdown.cancelled_owned().await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_started_while_the_sink_is_healthy() {
        let metrics = SplitRecorder::default().handle();
        let state = ServerState::new(metrics, SinkHealth::default());
        assert_eq!(state.readiness(), Err("starting"));
        state.set_started();
        assert_eq!(state.readiness(), Ok(()));
        assert!(state.is_ready());
    }

    #[test]
    fn not_ready_while_the_pods_root_is_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("pods");
        let metrics = SplitRecorder::default().handle();
        let state = ServerState::new(metrics, SinkHealth::default()).with_pods_root(root.clone());
        state.set_started();
        assert_eq!(state.readiness(), Err("pods root missing"));
        std::fs::create_dir(&root).expect("creates");
        assert_eq!(state.readiness(), Ok(()));
    }
}
