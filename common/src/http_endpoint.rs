//! The HTTP endpoint every long-running binary serves, with one meaning for each path:
//! `/metrics` renders the Prometheus text format; `/healthz` is liveness and answers 200 while the
//! process runs (a draining process is still alive and must not be restarted mid-drain);
//! `/readyz` is readiness and answers 200 only while the component says it is ready, else 503 with
//! its reason (`starting`, `shutting down`, or what failed).

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

/// Prometheus scrapes here.
pub const METRICS_PATH: &str = "/metrics";
/// The liveness probe's path.
pub const HEALTHZ_PATH: &str = "/healthz";
/// The readiness probe's path.
pub const READYZ_PATH: &str = "/readyz";
/// Every path [`router`] answers (manifests' probes and annotations are checked against this list
/// through `--check-config`).
pub const HTTP_PATHS: &[&str] = &[METRICS_PATH, HEALTHZ_PATH, READYZ_PATH];
/// Content type of the Prometheus text exposition format 0.0.4.
const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Parses a listen address the same way in every binary: `IP:PORT` (`0.0.0.0:9880`, `[::]:9880`)
/// or `HOST:PORT` resolved once at start (`localhost:9999`; the first address the resolver gives).
pub fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    let value = value.trim();
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    match std::net::ToSocketAddrs::to_socket_addrs(value) {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("{value:?} resolves to no address")),
        Err(err) => Err(format!("{value:?}: {err} (expected HOST:PORT)")),
    }
}

/// What `/metrics` renders: the Prometheus text format of a component's metrics.
pub trait MetricsText: Clone + Send + Sync + 'static {
    /// The metrics as Prometheus text.
    fn render(&self) -> String;
}

impl MetricsText for PrometheusHandle {
    fn render(&self) -> String {
        PrometheusHandle::render(self)
    }
}

/// What `/readyz` asks a component.
pub trait Readiness: Clone + Send + Sync + 'static {
    /// `Ok` when ready; otherwise why not, as `/readyz` prints it.
    fn readiness(&self) -> Result<(), &'static str>;
}

#[derive(Clone)]
struct Endpoint<M, R> {
    metrics: M,
    readiness: R,
}

/// The routes of [`HTTP_PATHS`].
pub fn router<M: MetricsText, R: Readiness>(metrics: M, readiness: R) -> Router {
    Router::new()
        .route(METRICS_PATH, get(render_metrics::<M, R>))
        .route(HEALTHZ_PATH, get(|| async { "ok\n" }))
        .route(READYZ_PATH, get(ready::<M, R>))
        .with_state(Endpoint { metrics, readiness })
}

/// Binds `addr` and returns the bound address (useful with port 0) and the serving future, which
/// ends once `shutdown` completes.
pub async fn bind<M: MetricsText, R: Readiness>(
    addr: SocketAddr,
    metrics: M,
    readiness: R,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let serve = axum::serve(listener, router(metrics, readiness)).with_graceful_shutdown(shutdown);
    Ok((local, async move { serve.await }))
}

async fn render_metrics<M: MetricsText, R: Readiness>(
    State(endpoint): State<Endpoint<M, R>>,
) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)],
        endpoint.metrics.render(),
    )
}

async fn ready<M: MetricsText, R: Readiness>(
    State(endpoint): State<Endpoint<M, R>>,
) -> impl IntoResponse {
    match endpoint.readiness.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusBuilder;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[derive(Clone, Default)]
    struct Flag(Arc<AtomicBool>);

    impl Readiness for Flag {
        fn readiness(&self) -> Result<(), &'static str> {
            if self.0.load(Ordering::Relaxed) {
                Ok(())
            } else {
                Err("starting")
            }
        }
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects");
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("writes");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("reads");
        response
    }

    #[test]
    fn listen_addresses_are_ip_or_host_with_a_port() {
        assert_eq!(
            parse_listen("0.0.0.0:9880"),
            Ok("0.0.0.0:9880".parse().expect("addr"))
        );
        assert_eq!(
            parse_listen("[::]:9090"),
            Ok("[::]:9090".parse().expect("addr"))
        );
        let local = parse_listen("localhost:9999").expect("a host name resolves");
        assert!(local.ip().is_loopback() && local.port() == 9999, "{local}");
        assert!(parse_listen("localhost").is_err(), "a port is required");
        assert!(parse_listen("0.0.0.0:99999").is_err());
    }

    #[tokio::test]
    async fn liveness_is_the_process_and_readiness_is_the_components_answer() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let metrics = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("probe_test_total").increment(1);
        });
        let flag = Flag::default();
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = stop.clone();
        let (addr, serve) = bind(
            "127.0.0.1:0".parse().expect("addr"),
            metrics,
            flag.clone(),
            async move { stopped.notified().await },
        )
        .await
        .expect("binds");
        let server = tokio::spawn(serve);

        assert!(get(addr, HEALTHZ_PATH).await.starts_with("HTTP/1.1 200"));
        let starting = get(addr, READYZ_PATH).await;
        assert!(starting.starts_with("HTTP/1.1 503"), "{starting}");
        assert!(starting.ends_with("starting\n"), "{starting}");
        flag.0.store(true, Ordering::Relaxed);
        assert!(get(addr, READYZ_PATH).await.starts_with("HTTP/1.1 200"));
        let scraped = get(addr, METRICS_PATH).await;
        assert!(scraped.contains("text/plain; version=0.0.4"), "{scraped}");
        assert!(scraped.contains("probe_test_total 1"), "{scraped}");
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));

        stop.notify_one();
        server.await.expect("joins").expect("serves until stopped");
    }
}
