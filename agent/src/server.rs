//! The agent's metrics recorder and its readiness: the shared HTTP endpoint
//! (`logrelay_common::http_endpoint`) serves `/metrics`, `/healthz` and `/readyz`, which is ready
//! once the pipeline started and while the sink has not been failing for long.

use crate::sink::SinkHealth;
use logrelay_common::http_endpoint::{self, Readiness};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_util::sync::CancellationToken;

/// Histogram buckets for request latencies, in seconds (5 ms to 60 s: S3 PUTs of small objects
/// take tens of ms, multi-MiB ones up to seconds, the request timeout is 60 s).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Installs the global metrics recorder and returns the handle that renders it. Call once, early;
/// a second call (tests) returns a handle to a recorder that is not installed.
pub fn install_metrics() -> PrometheusHandle {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .unwrap_or_else(|_| PrometheusBuilder::new());
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        tracing::debug!("a metrics recorder is already installed");
    }
    handle
}

/// What the probes look at.
#[derive(Debug, Clone)]
pub struct ServerState {
    metrics: PrometheusHandle,
    started: Arc<AtomicBool>,
    sink: SinkHealth,
}

impl ServerState {
    /// State over the metrics `handle` and the sink's health.
    pub fn new(metrics: PrometheusHandle, sink: SinkHealth) -> Self {
        Self {
            metrics,
            started: Arc::new(AtomicBool::new(false)),
            sink,
        }
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

    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects");
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("writes");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("reads");
        let status = response[9..12].parse().expect("status code");
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    #[tokio::test]
    async fn probes_and_metrics_answer() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("logrelay_agent_test_total").increment(3);
        });
        let state = ServerState::new(handle, SinkHealth::default());
        let shutdown = CancellationToken::new();
        let (addr, serve) = bind(
            "127.0.0.1:0".parse().expect("addr"),
            state.clone(),
            shutdown.clone(),
        )
        .await
        .expect("binds");
        let server = tokio::spawn(serve);
        assert_eq!(get(addr, "/healthz").await.0, 200);
        assert_eq!(get(addr, "/readyz").await, (503, "starting\n".to_string()));
        state.set_started();
        assert_eq!(get(addr, "/readyz").await.0, 200);
        let (status, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(body.contains("logrelay_agent_test_total 3"), "{body}");
        shutdown.cancel();
        server.await.expect("joins").expect("serves");
    }
}
