//! The SQS mode's HTTP endpoint (axum): `GET /metrics` renders every metric as Prometheus text,
//! `GET /healthz` answers 200 while the process runs and 503 once it is shutting down (a liveness
//! probe sees a live process), `GET /readyz` answers 200 once the configuration is loaded and the
//! intake is polling its queue, 503 before that and while shutting down (readiness probe).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

/// How often histogram summaries are maintained (the exporter's own default upkeep period).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
/// Content type of the Prometheus text exposition format 0.0.4.
const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Paths [`router`] answers: scraping, liveness, readiness (manifests' probes and annotations
/// are checked against this list through `--check-config`).
pub const HTTP_PATHS: &[&str] = &[METRICS_PATH, HEALTHZ_PATH, READYZ_PATH];
const METRICS_PATH: &str = "/metrics";
const HEALTHZ_PATH: &str = "/healthz";
const READYZ_PATH: &str = "/readyz";

/// Whether the process is serving (true) or draining (false), shared with `/healthz`; and whether
/// the intake is running, shared with `/readyz`.
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

    /// Marks the process as shutting down: `/healthz` and `/readyz` answer 503 from now on.
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

/// The router serving [`HTTP_PATHS`].
pub fn router(handle: PrometheusHandle, health: Health) -> Router {
    let ready = health.clone();
    Router::new()
        .route(METRICS_PATH, get(render_metrics))
        .with_state(handle)
        .route(HEALTHZ_PATH, get(move || healthz(health.clone())))
        .route(READYZ_PATH, get(move || readyz(ready.clone())))
}

/// Serves [`router`] on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(handle, health))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn render_metrics(State(handle): State<PrometheusHandle>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)],
        handle.render(),
    )
}

async fn healthz(health: Health) -> impl IntoResponse {
    if health.is_serving() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    }
}

async fn readyz(health: Health) -> impl IntoResponse {
    if health.is_ready() {
        (StatusCode::OK, "ready\n")
    } else if health.is_serving() {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A plain HTTP/1.1 GET; returns the whole response text.
    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects");
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("writes");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("reads");
        response
    }

    #[tokio::test]
    async fn metrics_health_and_readiness_are_served_and_turn_503_when_draining() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("logrelay_processor_test_total", "tenant" => "acme").increment(4);
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("address");
        let health = Health::new();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, handle, health.clone(), async {
            let _ = stopped.await;
        }));

        let metrics = get(addr, "/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        assert!(metrics.contains("text/plain; version=0.0.4"), "{metrics}");
        assert!(
            metrics.contains(r#"logrelay_processor_test_total{tenant="acme"} 4"#),
            "{metrics}"
        );

        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        let starting = get(addr, "/readyz").await;
        assert!(starting.starts_with("HTTP/1.1 503"), "{starting}");
        assert!(starting.ends_with("starting\n"), "{starting}");
        health.set_ready();
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        for path in HTTP_PATHS {
            assert!(get(addr, path).await.starts_with("HTTP/1.1 200"), "{path}");
        }
        health.set_draining();
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 503"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));

        let _ = stop.send(());
        server.await.expect("task").expect("server ends cleanly");
    }
}
