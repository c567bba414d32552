//! A fast fake CloudWatch Logs endpoint for benchmarks and load tests: a small HTTP/1.1 server on a
//! free loopback port that accepts `PutLogEvents` (answering `{"nextSequenceToken":null}`, as
//! CloudWatch does) and the create calls, and checks every `PutLogEvents` request against the
//! service's limits. It keeps counters only, never the events, so its memory stays flat however
//! much is sent. A request over a limit is refused with `InvalidParameterException` (as CloudWatch
//! refuses it) and counted as a violation.
//!
//! Limits checked (source: the PutLogEvents API reference,
//! <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html>):
//! at least one and at most 10,000 events; Σ(UTF-8 message bytes + 26) ≤ 1,048,576; events in
//! chronological order; first to last event ≤ 24 hours.
//!
//! Unlike moto (which enforces none of the size limits, see `shared/TOOLCHAIN.md`) this answers in
//! microseconds, so a benchmark measures the sender and not the emulator.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Most events in one request ("The maximum number of log events in a batch is 10,000.").
pub const MAX_REQUEST_EVENTS: usize = 10_000;
/// Largest request, counted as CloudWatch counts it ("The maximum batch size is 1,048,576 bytes").
pub const MAX_REQUEST_BYTES: usize = 1_048_576;
/// Bytes CloudWatch adds to each event's message length when sizing a request.
pub const EVENT_OVERHEAD_BYTES: usize = 26;
/// Longest first-to-last span of one request ("cannot span more than 24 hours"), in ms.
pub const MAX_SPAN_MS: i64 = 24 * 60 * 60 * 1000;
/// Largest HTTP body read: a full 1 MiB batch whose every byte is JSON-escaped as `\u00XX` is 6 MiB.
pub const MAX_BODY_BYTES: usize = 8 * MAX_REQUEST_BYTES;

/// The `X-Amz-Target` prefix of CloudWatch Logs operations.
const TARGET_PREFIX: &str = "Logs_20140328.";
/// Operations answered with an empty success (creating what a sender may create).
const ACCEPTED_OTHER_OPERATIONS: [&str; 3] =
    ["CreateLogGroup", "CreateLogStream", "PutRetentionPolicy"];
/// The success answer of PutLogEvents.
const PUT_RESPONSE: &str = r#"{"nextSequenceToken":null}"#;

/// Requests that broke a PutLogEvents rule, by rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Violations {
    /// More than [`MAX_REQUEST_EVENTS`] events.
    pub too_many_events: u64,
    /// More than [`MAX_REQUEST_BYTES`] counted bytes.
    pub too_many_bytes: u64,
    /// Events not in chronological order.
    pub unsorted: u64,
    /// First to last event more than [`MAX_SPAN_MS`] apart.
    pub span_over_24h: u64,
    /// No events at all.
    pub empty: u64,
    /// A body that is not a PutLogEvents request (or over [`MAX_BODY_BYTES`]).
    pub malformed: u64,
}

impl Violations {
    /// All violations together.
    pub fn total(&self) -> u64 {
        self.too_many_events
            + self.too_many_bytes
            + self.unsorted
            + self.span_over_24h
            + self.empty
            + self.malformed
    }
}

/// What the endpoint has seen so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FakeLogsStats {
    /// PutLogEvents requests accepted.
    pub put_requests: u64,
    /// Events in accepted requests.
    pub events: u64,
    /// UTF-8 message bytes in accepted requests.
    pub message_bytes: u64,
    /// CreateLogGroup, CreateLogStream and PutRetentionPolicy requests.
    pub other_requests: u64,
    /// Requests refused for breaking a rule.
    pub violations: Violations,
}

/// Counters shared by the connections and the handle.
#[derive(Default)]
struct Counters {
    put_requests: AtomicU64,
    events: AtomicU64,
    message_bytes: AtomicU64,
    other_requests: AtomicU64,
    too_many_events: AtomicU64,
    too_many_bytes: AtomicU64,
    unsorted: AtomicU64,
    span_over_24h: AtomicU64,
    empty: AtomicU64,
    malformed: AtomicU64,
}

/// The fake endpoint; stops when dropped.
pub struct FakeLogs {
    addr: SocketAddr,
    counters: Arc<Counters>,
    server: JoinHandle<()>,
}

impl Drop for FakeLogs {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeLogs {
    /// Starts the endpoint on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let server = tokio::spawn(serve(listener, counters.clone()));
        Ok(Self {
            addr,
            counters,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`, the CloudWatch Logs endpoint URL to give a client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The counters so far.
    pub fn stats(&self) -> FakeLogsStats {
        let c = &self.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        FakeLogsStats {
            put_requests: load(&c.put_requests),
            events: load(&c.events),
            message_bytes: load(&c.message_bytes),
            other_requests: load(&c.other_requests),
            violations: Violations {
                too_many_events: load(&c.too_many_events),
                too_many_bytes: load(&c.too_many_bytes),
                unsorted: load(&c.unsorted),
                span_over_24h: load(&c.span_over_24h),
                empty: load(&c.empty),
                malformed: load(&c.malformed),
            },
        }
    }
}

/// Accepts connections until the task is aborted.
async fn serve(listener: TcpListener, counters: Arc<Counters>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let counters = counters.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(request, counters.clone()));
            // A client that goes away mid-request is not an error of the endpoint.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// One event of a PutLogEvents body.
#[derive(Deserialize)]
struct InputEvent<'a> {
    timestamp: i64,
    #[serde(borrow)]
    message: Cow<'a, str>,
}

/// The part of a PutLogEvents body that is checked.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutLogEventsBody<'a> {
    #[serde(borrow)]
    log_events: Vec<InputEvent<'a>>,
}

/// Answers one request.
async fn handle(
    request: Request<Incoming>,
    counters: Arc<Counters>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let operation = request
        .headers()
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .and_then(|target| target.strip_prefix(TARGET_PREFIX))
        .unwrap_or_default()
        .to_owned();
    let body = Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map(|collected| collected.to_bytes());
    let response = match (operation.as_str(), body) {
        ("PutLogEvents", Ok(body)) => put_log_events(&body, &counters),
        ("PutLogEvents", Err(_)) => {
            counters.malformed.fetch_add(1, Ordering::Relaxed);
            invalid("request body too large")
        }
        (other, _) if ACCEPTED_OTHER_OPERATIONS.contains(&other) => {
            counters.other_requests.fetch_add(1, Ordering::Relaxed);
            json(StatusCode::OK, Bytes::from_static(b"{}"))
        }
        _ => json(
            StatusCode::BAD_REQUEST,
            Bytes::from_static(br#"{"__type":"UnknownOperationException"}"#),
        ),
    };
    Ok(response)
}

/// Checks and counts one PutLogEvents body.
fn put_log_events(body: &[u8], counters: &Counters) -> Response<Full<Bytes>> {
    let Ok(put) = serde_json::from_slice::<PutLogEventsBody<'_>>(body) else {
        counters.malformed.fetch_add(1, Ordering::Relaxed);
        return invalid("not a PutLogEvents request");
    };
    let events = &put.log_events;
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        counters.empty.fetch_add(1, Ordering::Relaxed);
        return invalid("no log events");
    };
    if events.len() > MAX_REQUEST_EVENTS {
        counters.too_many_events.fetch_add(1, Ordering::Relaxed);
        return invalid("too many log events");
    }
    let message_bytes: usize = events.iter().map(|event| event.message.len()).sum();
    if message_bytes + events.len() * EVENT_OVERHEAD_BYTES > MAX_REQUEST_BYTES {
        counters.too_many_bytes.fetch_add(1, Ordering::Relaxed);
        return invalid("batch too large");
    }
    if events
        .windows(2)
        .any(|pair| pair[1].timestamp < pair[0].timestamp)
    {
        counters.unsorted.fetch_add(1, Ordering::Relaxed);
        return invalid(
            "log events in a single PutLogEvents request must be in chronological order",
        );
    }
    if last.timestamp - first.timestamp > MAX_SPAN_MS {
        counters.span_over_24h.fetch_add(1, Ordering::Relaxed);
        return invalid("log events in a single request cannot span more than 24 hours");
    }
    counters.put_requests.fetch_add(1, Ordering::Relaxed);
    counters
        .events
        .fetch_add(events.len() as u64, Ordering::Relaxed);
    counters
        .message_bytes
        .fetch_add(message_bytes as u64, Ordering::Relaxed);
    json(StatusCode::OK, Bytes::from_static(PUT_RESPONSE.as_bytes()))
}

/// CloudWatch's answer to a request that breaks a rule.
fn invalid(message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"__type": "InvalidParameterException", "message": message});
    json(StatusCode::BAD_REQUEST, Bytes::from(body.to_string()))
}

/// A JSON-protocol response.
fn json(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{static_config, test_credentials};
    use aws_sdk_cloudwatchlogs::types::InputLogEvent;

    async fn client(logs: &FakeLogs) -> aws_sdk_cloudwatchlogs::Client {
        aws_sdk_cloudwatchlogs::Client::new(&static_config(&logs.url(), test_credentials()).await)
    }

    fn events(timestamps: &[i64], message: &str) -> Vec<InputLogEvent> {
        timestamps
            .iter()
            .map(|&timestamp| {
                InputLogEvent::builder()
                    .timestamp(timestamp)
                    .message(message)
                    .build()
                    .expect("timestamp and message are set")
            })
            .collect()
    }

    async fn put(
        client: &aws_sdk_cloudwatchlogs::Client,
        events: Vec<InputLogEvent>,
    ) -> Result<(), String> {
        client
            .put_log_events()
            .log_group_name("g")
            .log_stream_name("s")
            .set_log_events(Some(events))
            .send()
            .await
            .map(|_| ())
            .map_err(|error| {
                aws_smithy_types::error::display::DisplayErrorContext(error).to_string()
            })
    }

    #[tokio::test]
    async fn sdk_client_puts_a_batch_at_the_limits_and_it_is_counted() {
        let logs = FakeLogs::start().await.expect("starts");
        let client = client(&logs).await;
        // Exactly 1,048,576 counted bytes in 10,000 events spanning exactly 24 hours.
        let per_event = MAX_REQUEST_BYTES / MAX_REQUEST_EVENTS - EVENT_OVERHEAD_BYTES;
        assert_eq!(
            (per_event + EVENT_OVERHEAD_BYTES) * MAX_REQUEST_EVENTS,
            1_040_000
        );
        let mut batch = events(&[0; MAX_REQUEST_EVENTS], &"x".repeat(per_event));
        let tail = MAX_REQUEST_BYTES - 1_040_000 + per_event;
        batch[MAX_REQUEST_EVENTS - 1] = InputLogEvent::builder()
            .timestamp(MAX_SPAN_MS)
            .message("y".repeat(tail))
            .build()
            .expect("set");
        put(&client, batch).await.expect("accepted");
        client
            .create_log_stream()
            .log_group_name("g")
            .log_stream_name("s")
            .send()
            .await
            .expect("create accepted");
        let stats = logs.stats();
        assert_eq!(stats.put_requests, 1);
        assert_eq!(stats.events, MAX_REQUEST_EVENTS as u64);
        assert_eq!(
            stats.message_bytes as usize + MAX_REQUEST_EVENTS * EVENT_OVERHEAD_BYTES,
            MAX_REQUEST_BYTES
        );
        assert_eq!(stats.other_requests, 1);
        assert_eq!(stats.violations.total(), 0);
    }

    #[tokio::test]
    async fn every_broken_rule_is_refused_and_counted() {
        let logs = FakeLogs::start().await.expect("starts");
        let client = client(&logs).await;
        let over_events = events(&[0; MAX_REQUEST_EVENTS + 1], "x");
        let over_bytes = events(&[0, 0], &"x".repeat(MAX_REQUEST_BYTES / 2));
        let unsorted = events(&[2, 1], "x");
        let too_long = events(&[0, MAX_SPAN_MS + 1], "x");
        for batch in [over_events, over_bytes, unsorted, too_long] {
            let error = put(&client, batch).await.expect_err("refused");
            assert!(error.contains("InvalidParameterException"), "{error}");
        }
        let violations = logs.stats().violations;
        assert_eq!(
            violations,
            Violations {
                too_many_events: 1,
                too_many_bytes: 1,
                unsorted: 1,
                span_over_24h: 1,
                empty: 0,
                malformed: 0,
            }
        );
        assert_eq!(logs.stats().events, 0);
    }
}
