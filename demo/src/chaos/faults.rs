//! The fault proxies of one component (agent or processor): testkit [`FaultProxy`]s between the
//! component's counting proxy and the emulator, one chain for S3 and one for every other service.
//!
//! ```text
//!                             ┌─ s3 ────→ random faults → outages → moto
//! component → counting proxy ─┤
//!                             └─ others → random faults → outages → moto
//! ```
//!
//! The first proxy of a chain injects the run's random faults into every request (5xx,
//! throttling, resets, latency at `--fault-rate`); the second fails every request of one service
//! while an outage lasts (the S3 outage, or the short CloudWatch pause around the log group
//! deletion). The random one comes first because the testkit proxy turns an upstream's closed
//! connection into a 502: a reset must be injected next to the component to reach it as a reset.
//! S3 has its own chain so that its outage fails S3 requests only (the testkit proxy answers each
//! service's throttling in that service's own shape, S3's being a 503 `SlowDown`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use logrelay_testkit::{FaultKind, FaultMatch, FaultPlan, FaultProxy};

use super::FaultClass;

/// The SigV4 service name of S3, which gets its own chain.
pub const S3_SERVICE: &str = "s3";

/// Delays of the `latency` class: a short and a long one (both well under the components'
/// request timeouts: agent 60 s, processor 30 s).
pub const LATENCY_FAULTS: [Duration; 2] = [Duration::from_millis(300), Duration::from_millis(1500)];

/// The longest injected delay: a paused service is quiet this long (plus moto's own time) after
/// its outage began.
pub const LONGEST_LATENCY_FAULT: Duration = LATENCY_FAULTS[1];

/// What an outage answers: S3's and every service's "unavailable" answers.
const OUTAGE_KINDS: [FaultKind; 2] = [FaultKind::Status5xx, FaultKind::SlowDown];

/// The testkit fault kinds of `classes` for S3 (`s3 == true`) or the other services, two per
/// class so that each class has the same weight (the proxy draws uniformly from the list).
pub fn fault_kinds(classes: &[FaultClass], s3: bool) -> Vec<FaultKind> {
    let mut kinds = Vec::with_capacity(classes.len() * 2);
    for class in classes {
        match (class, s3) {
            (FaultClass::ServerError, true) => {
                kinds.extend([FaultKind::Status5xx, FaultKind::SlowDown])
            }
            (FaultClass::ServerError, false) => kinds.extend([FaultKind::Status5xx; 2]),
            // S3's throttling is 503 SlowDown.
            (FaultClass::Throttling, true) => kinds.extend([FaultKind::SlowDown; 2]),
            (FaultClass::Throttling, false) => kinds.extend([FaultKind::Throttling; 2]),
            (FaultClass::Reset, _) => kinds.extend([FaultKind::Reset; 2]),
            (FaultClass::Latency, _) => kinds.extend(LATENCY_FAULTS.map(FaultKind::Delay)),
        }
    }
    kinds
}

/// Requests of one AWS service, by the SigV4 credential scope of their `Authorization` header
/// (`Credential=KEY/DATE/REGION/<service>/aws4_request`).
pub fn service_match(service: &str) -> FaultMatch {
    FaultMatch::Header {
        name: "authorization".into(),
        contains: format!("/{service}/aws4_request"),
    }
}

/// What one component's proxies did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FaultStats {
    /// AWS requests the component sent.
    pub requests: u64,
    /// Random faults injected into them (delays included).
    pub random_faults: u64,
    /// Requests failed by outages (S3 outage, CloudWatch pause).
    pub outage_faults: u64,
}

/// One chain: random faults, then outages.
#[derive(Debug)]
struct Chain {
    random: FaultProxy,
    outage: FaultProxy,
    outage_faults_before: AtomicU64,
}

impl Chain {
    async fn start(upstream: &str, plan: FaultPlan) -> std::io::Result<Self> {
        let outage = FaultProxy::start(upstream).await?;
        let random = FaultProxy::start(&outage.url()).await?;
        random.set_plan(plan);
        Ok(Self {
            random,
            outage,
            outage_faults_before: AtomicU64::new(0),
        })
    }

    fn begin_outage(&self, service: &str) {
        self.outage_faults_before
            .store(self.outage.faults_injected(), Ordering::SeqCst);
        self.outage.set_plan(FaultPlan {
            error_rate: 1.0,
            kinds: OUTAGE_KINDS.to_vec(),
            only: Some(service_match(service)),
        });
    }

    fn end_outage(&self) -> u64 {
        self.outage.heal();
        self.outage
            .faults_injected()
            .saturating_sub(self.outage_faults_before.load(Ordering::SeqCst))
    }
}

/// The fault chains of one component; stop when dropped.
#[derive(Debug)]
pub struct ComponentFaults {
    s3: Chain,
    others: Chain,
}

impl ComponentFaults {
    /// Starts both chains in front of `upstream` with random faults at `rate` drawn from `classes`.
    pub async fn start(upstream: &str, rate: f64, classes: &[FaultClass]) -> std::io::Result<Self> {
        let plan = |s3: bool| FaultPlan {
            error_rate: rate,
            kinds: fault_kinds(classes, s3),
            only: None,
        };
        Ok(Self {
            s3: Chain::start(upstream, plan(true)).await?,
            others: Chain::start(upstream, plan(false)).await?,
        })
    }

    /// Where the counting proxy sends the component's requests other than S3's.
    pub fn url(&self) -> String {
        self.others.random.url()
    }

    /// Per-service upstreams for the counting proxy: S3 to its own chain.
    pub fn routes(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(S3_SERVICE.to_owned(), self.s3.random.url())])
    }

    fn chain(&self, service: &str) -> &Chain {
        if service == S3_SERVICE {
            &self.s3
        } else {
            &self.others
        }
    }

    /// From now on every request to `service` (`s3`, `logs`, …) fails with a 5xx or `SlowDown`.
    pub fn begin_outage(&self, service: &str) {
        self.chain(service).begin_outage(service);
    }

    /// Ends the outage of `service`; returns how many requests it failed.
    pub fn end_outage(&self, service: &str) -> u64 {
        self.chain(service).end_outage()
    }

    /// The counts so far.
    pub fn stats(&self) -> FaultStats {
        let chains = [&self.s3, &self.others];
        FaultStats {
            requests: chains.iter().map(|c| c.random.requests_seen()).sum(),
            random_faults: chains.iter().map(|c| c.random.faults_injected()).sum(),
            outage_faults: chains.iter().map(|c| c.outage.faults_injected()).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws_proxy::CountingProxy;

    #[test]
    fn every_class_gets_the_same_weight_and_s3_throttles_like_s3() {
        for s3 in [true, false] {
            let kinds = fault_kinds(&FaultClass::ALL, s3);
            assert_eq!(kinds.len(), 8);
            let count =
                |pred: &dyn Fn(&FaultKind) -> bool| kinds.iter().filter(|k| pred(k)).count();
            assert_eq!(count(&|k| *k == FaultKind::Reset), 2);
            assert_eq!(count(&|k| matches!(k, FaultKind::Delay(_))), 2);
            assert_eq!(
                count(&|k| matches!(
                    k,
                    FaultKind::Status5xx | FaultKind::SlowDown | FaultKind::Throttling
                )),
                4
            );
        }
        assert!(!fault_kinds(&FaultClass::ALL, true).contains(&FaultKind::Throttling));
        assert_eq!(
            fault_kinds(&[FaultClass::Throttling], true),
            vec![FaultKind::SlowDown; 2]
        );
        assert_eq!(
            fault_kinds(&[FaultClass::Throttling], false),
            vec![FaultKind::Throttling; 2]
        );
    }

    #[tokio::test]
    async fn an_outage_fails_only_its_service_until_it_ends() {
        use bytes::Bytes;
        use http_body_util::Full;
        use hyper::Request;
        use hyper_util::client::legacy::Client;
        use hyper_util::rt::TokioExecutor;

        // Upstream: answers 200 to everything.
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let upstream = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|_r: Request<_>| async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let faults = ComponentFaults::start(&upstream, 0.0, &FaultClass::ALL)
            .await
            .expect("proxies");
        let proxy = CountingProxy::start_routed(&faults.url(), faults.routes())
            .await
            .expect("counting proxy");
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let status = |service: &'static str| {
            let request = Request::get(format!("{}/x", proxy.url()))
                .header(
                    "authorization",
                    format!("AWS4-HMAC-SHA256 Credential=K/20240101/us-east-1/{service}/aws4_request, Signature=x"),
                )
                .body(Full::new(Bytes::new()))
                .expect("request");
            let client = client.clone();
            async move {
                client
                    .request(request)
                    .await
                    .expect("answer")
                    .status()
                    .as_u16()
            }
        };
        assert_eq!(status("s3").await, 200);
        faults.begin_outage("s3");
        assert!(status("s3").await >= 500);
        assert!(status("s3").await >= 500);
        assert_eq!(status("logs").await, 200);
        assert_eq!(faults.end_outage("s3"), 2);
        assert_eq!(status("s3").await, 200);
        faults.begin_outage("logs");
        assert!(status("logs").await >= 500);
        assert_eq!(status("s3").await, 200);
        assert_eq!(faults.end_outage("logs"), 1);
        let stats = faults.stats();
        assert_eq!(stats.requests, 7);
        assert_eq!(stats.random_faults, 0);
        assert_eq!(stats.outage_faults, 3);
        assert_eq!(
            proxy.outcomes().get(&("s3".to_owned(), "5xx")),
            Some(&2),
            "{:?}",
            proxy.outcomes()
        );
    }
}
