//! A fault-injecting HTTP/1.1 proxy to put between an AWS SDK client and the emulator: it streams
//! requests and responses through, and on a programmable plan answers instead with a 5xx, an S3
//! `SlowDown`, throttling, a closed connection, or forwards after a delay. Injected errors take
//! the shape the request's service would send (see [`Protocol`]). Counters tell a test how many
//! requests it saw and how many faults it injected.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::http_proxy::{
    self, Listening, ProxyBody, full_response, signing_service, text_response,
};

/// Message put in injected error bodies.
const FAULT_MESSAGE: &str = "fault injected by logrelay testkit";

/// One kind of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// HTTP 500 with an `InternalError`/`InternalFailure` body.
    Status5xx,
    /// HTTP 503 with S3's `SlowDown` XML body.
    SlowDown,
    /// The service's own throttling answer: HTTP 503 `SlowDown` from S3, HTTP 400
    /// `ThrottlingException` from JSON-protocol services (DynamoDB, CloudWatch Logs, SQS), HTTP 400
    /// `Throttling` in an `ErrorResponse` from query-protocol services (STS, SNS).
    Throttling,
    /// Close the connection without answering.
    Reset,
    /// Wait, then forward normally.
    Delay(Duration),
}

/// Which requests a plan applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultMatch {
    /// The request path (and query) contains this.
    Path(String),
    /// The `X-Amz-Target` header (JSON services' operation, e.g. `DynamoDB_20120810.PutItem`)
    /// contains this.
    Target(String),
    /// The named header's value contains this.
    Header {
        /// Header name (case-insensitive).
        name: String,
        /// Substring of its value.
        contains: String,
    },
    /// The request body is at least this many bytes (by `Content-Length`): slows big requests
    /// down the way a real network does, for ordering tests.
    BodyAtLeast(u64),
}

impl FaultMatch {
    /// Whether the request matches.
    fn matches<B>(&self, request: &Request<B>) -> bool {
        let header_contains = |name: &str, needle: &str| {
            request
                .headers()
                .get_all(name)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| v.contains(needle)))
        };
        match self {
            Self::Path(needle) => request
                .uri()
                .path_and_query()
                .is_some_and(|pq| pq.as_str().contains(needle.as_str())),
            Self::Target(needle) => header_contains("x-amz-target", needle),
            Self::Header { name, contains } => header_contains(name, contains),
            Self::BodyAtLeast(bytes) => request
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .is_some_and(|length| length >= *bytes),
        }
    }
}

/// What to inject: each matching request fails with probability `error_rate` with a kind picked
/// at random from `kinds`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    /// Probability in `0.0..=1.0` that a matching request gets a fault.
    pub error_rate: f64,
    /// Faults to pick from; empty means none.
    pub kinds: Vec<FaultKind>,
    /// Only requests matching this get faults (`None`: all). Also filters [`FaultProxy::fail_next`].
    pub only: Option<FaultMatch>,
}

/// State shared by the accept loop and every connection.
#[derive(Debug)]
struct Shared {
    upstream: String,
    client: Client<HttpConnector, Incoming>,
    plan: Mutex<FaultPlan>,
    forced: Mutex<VecDeque<FaultKind>>,
    requests_seen: AtomicU64,
    faults_injected: AtomicU64,
    /// Requests by `X-Amz-Target` (JSON-protocol operations, e.g. `DynamoDB_20120810.UpdateItem`).
    targets: Mutex<BTreeMap<String, u64>>,
}

/// A running fault proxy on 127.0.0.1; stops accepting when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    shared: Arc<Shared>,
    listening: Listening,
}

/// Locks a mutex, recovering the data if a panicking test poisoned it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FaultProxy {
    /// Starts a proxy forwarding to `upstream_url` (e.g. the emulator's URL) with no faults planned.
    pub async fn start(upstream_url: &str) -> std::io::Result<FaultProxy> {
        let upstream = upstream_url.trim_end_matches('/').to_owned();
        upstream.parse::<Uri>().map_err(|err| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("bad upstream URL {upstream}: {err}"),
            )
        })?;
        let shared = Arc::new(Shared {
            upstream,
            client: http_proxy::client(),
            plan: Mutex::new(FaultPlan::default()),
            forced: Mutex::new(VecDeque::new()),
            requests_seen: AtomicU64::new(0),
            faults_injected: AtomicU64::new(0),
            targets: Mutex::default(),
        });
        let listening = Listening::start({
            let shared = shared.clone();
            move |request| handle(shared.clone(), request)
        })
        .await?;
        Ok(FaultProxy { shared, listening })
    }

    /// The proxy's base URL, to use as the SDK endpoint.
    pub fn url(&self) -> String {
        self.listening.url()
    }

    /// Replaces the fault plan.
    pub fn set_plan(&self, plan: FaultPlan) {
        *lock(&self.shared.plan) = plan;
    }

    /// Makes the next `n` requests that match the plan's `only` filter fail with `kind`,
    /// whatever the error rate.
    pub fn fail_next(&self, n: usize, kind: FaultKind) {
        lock(&self.shared.forced).extend(std::iter::repeat_n(kind, n));
    }

    /// Drops the plan and any pending `fail_next` faults: everything passes through.
    pub fn heal(&self) {
        self.set_plan(FaultPlan::default());
        lock(&self.shared.forced).clear();
    }

    /// Requests received so far.
    pub fn requests_seen(&self) -> u64 {
        self.shared.requests_seen.load(Ordering::SeqCst)
    }

    /// Requests seen so far with this `X-Amz-Target` (e.g. `DynamoDB_20120810.UpdateItem`).
    pub fn requests_to(&self, target: &str) -> u64 {
        lock(&self.shared.targets).get(target).copied().unwrap_or(0)
    }

    /// Faults injected so far (delays included).
    pub fn faults_injected(&self) -> u64 {
        self.shared.faults_injected.load(Ordering::SeqCst)
    }
}

/// Returned by the service to make hyper close the connection without a response.
#[derive(Debug, thiserror::Error)]
#[error("connection reset by the fault proxy")]
struct InjectedReset;

/// Serves one request: picks a fault, or forwards upstream.
async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, InjectedReset> {
    shared.requests_seen.fetch_add(1, Ordering::SeqCst);
    if let Some(target) = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
    {
        *lock(&shared.targets).entry(target.to_owned()).or_default() += 1;
    }
    let fault = pick_fault(&shared, &request);
    if fault.is_some() {
        shared.faults_injected.fetch_add(1, Ordering::SeqCst);
    }
    let protocol = Protocol::of(&request);
    match fault {
        None => Ok(forward(&shared, request).await),
        Some(FaultKind::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            Ok(forward(&shared, request).await)
        }
        Some(FaultKind::Reset) => Err(InjectedReset),
        Some(kind) => Ok(fault_response(kind, protocol)),
    }
}

/// The fault for this request, if any: a forced one first, else a random one per the plan.
fn pick_fault<B>(shared: &Shared, request: &Request<B>) -> Option<FaultKind> {
    let plan = lock(&shared.plan);
    if plan.only.as_ref().is_some_and(|m| !m.matches(request)) {
        return None;
    }
    if let Some(kind) = lock(&shared.forced).pop_front() {
        return Some(kind);
    }
    if plan.kinds.is_empty() || rand::random::<f64>() >= plan.error_rate {
        return None;
    }
    let index = rand::random_range(0..plan.kinds.len());
    plan.kinds.get(index).copied()
}

/// How the request's service shapes its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// S3 (REST-XML): `<Error>` at the root; throttles with 503 `SlowDown`.
    S3,
    /// JSON protocols (DynamoDB, CloudWatch Logs, SQS): `{"__type": …}`.
    Json,
    /// Query protocol (STS, SNS): `<ErrorResponse><Error>…`.
    Query,
}

impl Protocol {
    /// The protocol of a request: S3 by its SigV4 credential scope (first, since an object's
    /// own content type may say JSON), JSON by `X-Amz-Target` or a JSON content type, else query
    /// when another service signed it or the body is a form, else S3 (unsigned REST requests).
    fn of<B>(request: &Request<B>) -> Self {
        let header = |name| request.headers().get(name).and_then(|v| v.to_str().ok());
        let service = header("authorization").and_then(signing_service);
        if service == Some("s3") {
            return Self::S3;
        }
        if request.headers().contains_key("x-amz-target")
            || header(CONTENT_TYPE.as_str()).is_some_and(|v| v.contains("json"))
        {
            return Self::Json;
        }
        let form = header(CONTENT_TYPE.as_str())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if service.is_some() || form {
            Self::Query
        } else {
            Self::S3
        }
    }
}

/// Sends the request upstream with its body streamed; upstream failures become a 502.
async fn forward(shared: &Shared, request: Request<Incoming>) -> Response<ProxyBody> {
    match http_proxy::forward(&shared.client, &shared.upstream, request).await {
        Ok(response) => response.map(http_body_util::BodyExt::boxed),
        Err(error @ http_proxy::ForwardError::BadPath(_)) => {
            text_response(StatusCode::BAD_REQUEST, error.to_string())
        }
        Err(error) => text_response(StatusCode::BAD_GATEWAY, error.to_string()),
    }
}

/// The error response AWS would send for this fault, in the request's protocol.
fn fault_response(kind: FaultKind, protocol: Protocol) -> Response<ProxyBody> {
    let (status, code) = match (kind, protocol) {
        // S3's throttling is SlowDown; SlowDown is always S3's answer.
        (FaultKind::Throttling, Protocol::S3) | (FaultKind::SlowDown, _) => {
            (StatusCode::SERVICE_UNAVAILABLE, "SlowDown")
        }
        (FaultKind::Throttling, Protocol::Json) => (StatusCode::BAD_REQUEST, "ThrottlingException"),
        (FaultKind::Throttling, Protocol::Query) => (StatusCode::BAD_REQUEST, "Throttling"),
        (_, Protocol::Json) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
    };
    if protocol == Protocol::Json && kind != FaultKind::SlowDown {
        let body = serde_json::json!({ "__type": code, "message": FAULT_MESSAGE }).to_string();
        let mut response = full_response(status, "application/x-amz-json-1.0", body);
        response
            .headers_mut()
            .insert("x-amzn-errortype", HeaderValue::from_static(code));
        return response;
    }
    let body = if protocol == Protocol::Query && kind == FaultKind::Throttling {
        format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
             <Message>{FAULT_MESSAGE}</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
        )
    } else {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
             <Message>{FAULT_MESSAGE}</Message><RequestId>fault</RequestId></Error>"
        )
    };
    full_response(status, "application/xml", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moto::{DEFAULT_ACCOUNT_ID, Moto};
    use crate::resources::{
        create_bucket, get_object_bytes, put_object, static_config, test_credentials, unique_name,
    };
    use aws_config::SdkConfig;
    use aws_config::retry::RetryConfig;
    use http_body_util::BodyExt;
    use logrelay_common::aws::{ErrorClass, classify, error_code};

    /// A config through the proxy with quick retries, so tests do not wait seconds per retry.
    async fn config_via(proxy: &FaultProxy, max_attempts: u32) -> SdkConfig {
        static_config(&proxy.url(), test_credentials())
            .await
            .into_builder()
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(max_attempts)
                    .with_initial_backoff(Duration::from_millis(5))
                    .with_max_backoff(Duration::from_millis(50)),
            )
            .build()
    }

    async fn moto_and_proxy() -> (&'static Moto, FaultProxy) {
        let moto = Moto::shared().await;
        let proxy = FaultProxy::start(moto.url()).await.expect("proxy starts");
        (moto, proxy)
    }

    #[tokio::test]
    async fn slowdown_reaches_an_s3_call_which_succeeds_on_retry() {
        let (moto, proxy) = moto_and_proxy().await;
        let direct = moto.config(DEFAULT_ACCOUNT_ID).await;
        let bucket = unique_name("proxy-slowdown");
        create_bucket(&direct, &bucket).await.expect("bucket");

        let via = config_via(&proxy, 3).await;
        proxy.fail_next(2, FaultKind::SlowDown);
        put_object(&via, &bucket, "a.gz", b"hello".to_vec())
            .await
            .expect("third attempt succeeds");
        assert_eq!(proxy.faults_injected(), 2);
        assert_eq!(proxy.requests_seen(), 3);
        let stored = get_object_bytes(&direct, &bucket, "a.gz")
            .await
            .expect("object");
        assert_eq!(stored, b"hello");
    }

    #[tokio::test]
    async fn throttling_that_outlasts_retries_is_classified_as_throttling() {
        let (_moto, proxy) = moto_and_proxy().await;
        let via = config_via(&proxy, 2).await;
        proxy.set_plan(FaultPlan {
            only: Some(FaultMatch::Target("DynamoDB".into())),
            ..FaultPlan::default()
        });
        proxy.fail_next(2, FaultKind::Throttling);
        let err = aws_sdk_dynamodb::Client::new(&via)
            .list_tables()
            .send()
            .await
            .expect_err("both attempts throttled");
        assert_eq!(error_code(&err), Some("ThrottlingException"));
        assert_eq!(classify(&err), ErrorClass::Throttling);
        assert_eq!(proxy.faults_injected(), 2);

        aws_sdk_dynamodb::Client::new(&via)
            .list_tables()
            .send()
            .await
            .expect("passes once the faults are used up");
    }

    #[tokio::test]
    async fn reset_connection_is_retried_transparently() {
        let (moto, proxy) = moto_and_proxy().await;
        let direct = moto.config(DEFAULT_ACCOUNT_ID).await;
        let bucket = unique_name("proxy-reset");
        create_bucket(&direct, &bucket).await.expect("bucket");
        put_object(&direct, &bucket, "k", b"body".to_vec())
            .await
            .expect("put");

        let via = config_via(&proxy, 3).await;
        proxy.fail_next(1, FaultKind::Reset);
        let body = get_object_bytes(&via, &bucket, "k")
            .await
            .expect("retried after reset");
        assert_eq!(body, b"body");
        assert_eq!(proxy.faults_injected(), 1);
        assert_eq!(proxy.requests_seen(), 2);
    }

    #[tokio::test]
    async fn plan_filter_spares_requests_that_do_not_match() {
        let (moto, proxy) = moto_and_proxy().await;
        let direct = moto.config(DEFAULT_ACCOUNT_ID).await;
        let bucket = unique_name("proxy-filter");
        create_bucket(&direct, &bucket).await.expect("bucket");

        let via = config_via(&proxy, 1).await;
        proxy.set_plan(FaultPlan {
            error_rate: 1.0,
            kinds: vec![FaultKind::Status5xx],
            only: Some(FaultMatch::Target("DynamoDB_20120810".into())),
        });
        put_object(&via, &bucket, "k", b"x".to_vec())
            .await
            .expect("S3 is not matched");
        assert_eq!(proxy.faults_injected(), 0);

        let err = aws_sdk_dynamodb::Client::new(&via)
            .list_tables()
            .send()
            .await
            .expect_err("DynamoDB always fails");
        assert_eq!(classify(&err), ErrorClass::Transient);
        assert_eq!(proxy.faults_injected(), 1);

        proxy.heal();
        aws_sdk_dynamodb::Client::new(&via)
            .list_tables()
            .send()
            .await
            .expect("healed");
    }

    #[tokio::test]
    async fn delay_holds_the_request_then_forwards_it() {
        let (moto, proxy) = moto_and_proxy().await;
        let direct = moto.config(DEFAULT_ACCOUNT_ID).await;
        let bucket = unique_name("proxy-delay");
        create_bucket(&direct, &bucket).await.expect("bucket");

        let via = config_via(&proxy, 1).await;
        let delay = Duration::from_millis(300);
        proxy.fail_next(1, FaultKind::Delay(delay));
        let started = std::time::Instant::now();
        put_object(&via, &bucket, "k", b"x".to_vec())
            .await
            .expect("delayed, not failed");
        assert!(started.elapsed() >= delay);
        assert_eq!(proxy.faults_injected(), 1);
    }

    #[tokio::test]
    async fn throttling_reaches_an_s3_call_as_slowdown_which_succeeds_on_retry() {
        let (moto, proxy) = moto_and_proxy().await;
        let direct = moto.config(DEFAULT_ACCOUNT_ID).await;
        let bucket = unique_name("proxy-throttle");
        create_bucket(&direct, &bucket).await.expect("bucket");
        put_object(&direct, &bucket, "k", b"body".to_vec())
            .await
            .expect("put");

        let via = config_via(&proxy, 3).await;
        proxy.fail_next(2, FaultKind::Throttling);
        let body = get_object_bytes(&via, &bucket, "k")
            .await
            .expect("third attempt succeeds");
        assert_eq!(body, b"body");
        assert_eq!(proxy.faults_injected(), 2);
        assert_eq!(proxy.requests_seen(), 3);
    }

    /// Status, content type and body of the injected answer to `request`.
    async fn injected(kind: FaultKind, request: Request<()>) -> (StatusCode, String, String) {
        let response = fault_response(kind, Protocol::of(&request));
        let status = response.status();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("fixed body")
            .to_bytes();
        let body = String::from_utf8(body.to_vec()).expect("utf-8");
        (status, content_type, body)
    }

    fn signed_by(service: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/{service}/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=abc"
        )
    }

    #[tokio::test]
    async fn s3_is_throttled_with_a_503_slowdown() {
        // Signed for S3, even with an object body declared as JSON.
        let request = Request::put("/bucket/key.json")
            .header("authorization", signed_by("s3"))
            .header(CONTENT_TYPE, "application/json")
            .body(())
            .expect("request");
        let (status, content_type, body) = injected(FaultKind::Throttling, request).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(content_type, "application/xml");
        assert!(body.contains("<Error><Code>SlowDown</Code>"), "{body}");
        assert!(!body.contains("ErrorResponse"), "{body}");
    }

    #[tokio::test]
    async fn json_services_are_throttled_with_a_400_throttling_exception() {
        let request = Request::post("/")
            .header("authorization", signed_by("dynamodb"))
            .header("x-amz-target", "DynamoDB_20120810.PutItem")
            .header(CONTENT_TYPE, "application/x-amz-json-1.0")
            .body(())
            .expect("request");
        let (status, content_type, body) = injected(FaultKind::Throttling, request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(content_type, "application/x-amz-json-1.0");
        let body: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
        assert_eq!(body["__type"], "ThrottlingException");
        assert_eq!(body["message"], FAULT_MESSAGE);
    }

    #[tokio::test]
    async fn query_services_are_throttled_with_a_400_error_response() {
        let request = Request::post("/")
            .header("authorization", signed_by("sts"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(())
            .expect("request");
        let (status, content_type, body) = injected(FaultKind::Throttling, request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(content_type, "application/xml");
        assert!(
            body.starts_with("<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"),
            "{body}"
        );
    }

    #[test]
    fn the_protocol_comes_from_the_signing_service_then_the_request_shape() {
        let request = |service: Option<&str>, content_type: Option<&str>| {
            let mut builder = Request::post("/");
            if let Some(service) = service {
                builder = builder.header("authorization", signed_by(service));
            }
            if let Some(content_type) = content_type {
                builder = builder.header(CONTENT_TYPE, content_type);
            }
            Protocol::of(&builder.body(()).expect("request"))
        };
        assert_eq!(request(Some("s3"), None), Protocol::S3);
        assert_eq!(
            request(Some("logs"), Some("application/x-amz-json-1.1")),
            Protocol::Json
        );
        assert_eq!(request(Some("sns"), None), Protocol::Query);
        assert_eq!(
            request(
                None,
                Some("application/x-www-form-urlencoded; charset=utf-8")
            ),
            Protocol::Query
        );
        assert_eq!(request(None, None), Protocol::S3, "unsigned REST request");
        assert_eq!(signing_service("Bearer token"), None);
    }

    #[test]
    fn fault_match_looks_at_path_target_and_headers() {
        let request = Request::post("/bucket/key?uploads")
            .header("X-Amz-Target", "DynamoDB_20120810.PutItem")
            .header("user-agent", "aws-sdk-rust/1")
            .body(())
            .expect("request");
        assert!(FaultMatch::Path("uploads".into()).matches(&request));
        assert!(FaultMatch::Target("PutItem".into()).matches(&request));
        assert!(!FaultMatch::Target("GetItem".into()).matches(&request));
        let header = FaultMatch::Header {
            name: "User-Agent".into(),
            contains: "sdk-rust".into(),
        };
        assert!(header.matches(&request));
    }
}
