//! A counting HTTP proxy between one component (agent or processor) and the emulator: it streams
//! every request through and counts it by AWS service and API operation, so the summary can show
//! AWS requests per GB of logs exactly as the components made them (retries included).
//!
//! The service comes from the SigV4 credential scope in `Authorization`; the operation from
//! `X-Amz-Target` (JSON protocols), the `Action` of a form body (query protocols: STS, SNS, IAM)
//! or the method and path of S3's REST API. Answers are tallied too, per service, by status class
//! (`2xx` … `5xx`) or `hang-up` (what a component saw, faults included). An upstream that closes
//! the connection without answering (the chaos runs' injected resets) makes the proxy close the
//! component's connection the same way, so the component sees a reset, not a 502.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use logrelay_testkit::http_proxy::{self, Listening, ProxyBody, signing_service_of, text_response};

/// Largest form-encoded (query protocol) body read to find its `Action`; such bodies are small
/// (AssumeRole, Publish, GetCallerIdentity), the 256 KiB SNS message maximum bounds them.
const MAX_FORM_BODY_BYTES: usize = 1 << 20;

/// Requests counted by (service, operation).
pub type RequestCounts = BTreeMap<(String, String), u64>;

/// Answers counted by (service, outcome): `2xx`, `3xx`, `4xx`, `5xx` or [`HANG_UP`].
pub type OutcomeCounts = BTreeMap<(String, &'static str), u64>;

/// The outcome of a request the upstream closed the connection on without answering.
pub const HANG_UP: &str = "hang-up";

/// Returned by the service to make hyper close the component's connection without an answer.
#[derive(Debug)]
struct UpstreamHungUp;

impl std::fmt::Display for UpstreamHungUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the upstream closed the connection without answering")
    }
}

impl std::error::Error for UpstreamHungUp {}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct CountingProxy {
    counts: Arc<Mutex<RequestCounts>>,
    outcomes: Arc<Mutex<OutcomeCounts>>,
    listening: Listening,
}

struct Shared {
    upstream: String,
    routes: BTreeMap<String, String>,
    client: Client<HttpConnector, ProxyBody>,
    counts: Arc<Mutex<RequestCounts>>,
    outcomes: Arc<Mutex<OutcomeCounts>>,
}

impl CountingProxy {
    /// Starts a proxy on a free loopback port forwarding to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        Self::start_routed(upstream, BTreeMap::new()).await
    }

    /// Like [`CountingProxy::start`], but requests of the services in `routes` (SigV4 service
    /// name → upstream URL) go to their own upstream.
    pub async fn start_routed(
        upstream: &str,
        routes: BTreeMap<String, String>,
    ) -> std::io::Result<Self> {
        let counts = Arc::new(Mutex::new(RequestCounts::new()));
        let outcomes = Arc::new(Mutex::new(OutcomeCounts::new()));
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            routes: routes
                .into_iter()
                .map(|(service, url)| (service, url.trim_end_matches('/').to_owned()))
                .collect(),
            client: http_proxy::client(),
            counts: counts.clone(),
            outcomes: outcomes.clone(),
        });
        let listening = Listening::start(move |request| handle(shared.clone(), request)).await?;
        Ok(Self {
            counts,
            outcomes,
            listening,
        })
    }

    /// The proxy's URL, to be used as `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> String {
        self.listening.url()
    }

    /// The counts so far.
    pub fn counts(&self) -> RequestCounts {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The answers so far, by service and outcome.
    pub fn outcomes(&self) -> OutcomeCounts {
        self.outcomes.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, UpstreamHungUp> {
    let (parts, body) = request.into_parts();
    let service = signing_service_of(&parts.headers)
        .unwrap_or("unsigned")
        .to_owned();
    let is_form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let (operation, body): (String, ProxyBody) = if is_form {
        match Limited::new(body, MAX_FORM_BODY_BYTES).collect().await {
            Ok(collected) => {
                let bytes = collected.to_bytes();
                let action = form_action(&bytes).unwrap_or_else(|| "unknown".to_owned());
                (
                    action,
                    Full::new(bytes)
                        .map_err(|never: Infallible| match never {})
                        .boxed(),
                )
            }
            Err(err) => {
                return Ok(text_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    err.to_string(),
                ));
            }
        }
    } else {
        let operation = operation_of(&parts.method, &parts.uri, &parts.headers, &service);
        (operation, body.boxed())
    };
    if let Ok(mut counts) = shared.counts.lock() {
        *counts.entry((service.clone(), operation)).or_default() += 1;
    }
    let tally = |outcome: &'static str| {
        if let Ok(mut outcomes) = shared.outcomes.lock() {
            *outcomes.entry((service.clone(), outcome)).or_default() += 1;
        }
    };
    let upstream = shared.routes.get(&service).unwrap_or(&shared.upstream);
    match http_proxy::forward(&shared.client, upstream, Request::from_parts(parts, body)).await {
        Ok(response) => {
            tally(status_class(response.status()));
            Ok(response.map(BodyExt::boxed))
        }
        Err(error) if error.upstream_hung_up() => {
            tally(HANG_UP);
            Err(UpstreamHungUp)
        }
        Err(error @ http_proxy::ForwardError::BadPath(_)) => {
            Ok(text_response(StatusCode::BAD_REQUEST, error.to_string()))
        }
        Err(error) => {
            tally(status_class(StatusCode::BAD_GATEWAY));
            Ok(text_response(StatusCode::BAD_GATEWAY, error.to_string()))
        }
    }
}

/// `2xx`, `3xx`, `4xx` or `5xx`.
fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The `Action` field of a form-encoded body.
fn form_action(body: &[u8]) -> Option<String> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(str::to_owned)
}

/// The operation of a non-form request: `X-Amz-Target`'s operation, else S3's REST shape.
fn operation_of(method: &Method, uri: &hyper::Uri, headers: &HeaderMap, service: &str) -> String {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    if service == "s3" {
        return s3_operation(method, uri, headers).to_owned();
    }
    format!("{method} {}", uri.path())
}

/// The S3 API operation of a path-style request.
fn s3_operation(method: &Method, uri: &hyper::Uri, headers: &HeaderMap) -> &'static str {
    let path = uri.path().trim_start_matches('/');
    let has_key = path.split_once('/').is_some_and(|(_, key)| !key.is_empty());
    let query = uri.query().unwrap_or("");
    let has = |name: &str| {
        query
            .split('&')
            .any(|pair| pair == name || pair.starts_with(&format!("{name}=")))
    };
    match (method, has_key) {
        (&Method::POST, true) if has("uploads") => "CreateMultipartUpload",
        (&Method::POST, true) if has("uploadId") => "CompleteMultipartUpload",
        (&Method::PUT, true) if has("uploadId") => "UploadPart",
        (&Method::DELETE, true) if has("uploadId") => "AbortMultipartUpload",
        (&Method::PUT, true) if headers.contains_key("x-amz-copy-source") => "CopyObject",
        (&Method::PUT, true) => "PutObject",
        (&Method::GET, true) => "GetObject",
        (&Method::HEAD, true) => "HeadObject",
        (&Method::DELETE, true) => "DeleteObject",
        (&Method::GET, false) if path.is_empty() => "ListBuckets",
        (&Method::GET, false) if has("list-type") => "ListObjectsV2",
        (&Method::GET, false) => "ListObjects",
        (&Method::HEAD, false) => "HeadBucket",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tokio::net::TcpListener;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header value"));
        }
        map
    }

    #[test]
    fn operations_are_named_like_the_api() {
        let uri = |s: &str| s.parse::<hyper::Uri>().expect("uri");
        let none = HeaderMap::new();
        let target = headers(&[("x-amz-target", "Logs_20140328.PutLogEvents")]);
        assert_eq!(
            operation_of(&Method::POST, &uri("/"), &target, "logs"),
            "PutLogEvents"
        );
        let s3 = |m: Method, u: &str, h: &HeaderMap| operation_of(&m, &uri(u), h, "s3");
        assert_eq!(s3(Method::PUT, "/bucket/a/b.json.gz", &none), "PutObject");
        let copy = headers(&[("x-amz-copy-source", "/central/a/b")]);
        assert_eq!(s3(Method::PUT, "/bucket/a/b", &copy), "CopyObject");
        assert_eq!(s3(Method::GET, "/bucket/a/b", &none), "GetObject");
        assert_eq!(
            s3(Method::POST, "/bucket/k?uploads", &none),
            "CreateMultipartUpload"
        );
        assert_eq!(
            s3(Method::PUT, "/bucket/k?partNumber=1&uploadId=x", &none),
            "UploadPart"
        );
        assert_eq!(
            s3(Method::GET, "/bucket?list-type=2&prefix=a", &none),
            "ListObjectsV2"
        );
        assert_eq!(s3(Method::GET, "/", &none), "ListBuckets");
        assert_eq!(
            form_action(b"Version=2011-06-15&Action=AssumeRole&RoleArn=x").as_deref(),
            Some("AssumeRole")
        );
        assert_eq!(form_action(b"nothing"), None);
    }

    #[tokio::test]
    async fn requests_are_forwarded_and_counted() {
        // Upstream: answers every request with 200 "ok".
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let upstream = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let service = service_fn(|_req: Request<Incoming>| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let proxy = CountingProxy::start(&upstream).await.expect("proxy");
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let auth = "AWS4-HMAC-SHA256 Credential=A/20240101/us-east-1/sts/aws4_request, Signature=x";
        for _ in 0..2 {
            let request = Request::post(format!("{}/", proxy.url()))
                .header("authorization", auth)
                .header(
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                )
                .body(Full::new(Bytes::from_static(
                    b"Action=AssumeRole&Version=2011-06-15",
                )))
                .expect("request");
            let response = client.request(request).await.expect("forwarded");
            assert_eq!(response.status(), StatusCode::OK);
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            assert_eq!(&body[..], b"ok");
        }
        let counts = proxy.counts();
        assert_eq!(
            counts.get(&("sts".to_owned(), "AssumeRole".to_owned())),
            Some(&2)
        );
        assert_eq!(counts.len(), 1);
    }

    #[tokio::test]
    async fn an_upstream_hang_up_reaches_the_client_as_a_hang_up() {
        use tokio::io::AsyncReadExt;
        // Upstream: reads the request, then closes the connection without answering.
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let upstream = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                drop(stream);
            }
        });
        let proxy = CountingProxy::start(&upstream).await.expect("proxy");
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let auth = "AWS4-HMAC-SHA256 Credential=A/20240101/us-east-1/s3/aws4_request, Signature=x";
        let request = Request::get(format!("{}/bucket/key", proxy.url()))
            .header("authorization", auth)
            .body(Full::new(Bytes::new()))
            .expect("request");
        let result = client.request(request).await;
        assert!(
            result.is_err(),
            "expected a closed connection, got {:?}",
            result.map(|r| r.status())
        );
        assert_eq!(proxy.outcomes().get(&("s3".to_owned(), HANG_UP)), Some(&1));
    }
}
