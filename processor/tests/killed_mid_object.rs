//! The processor killed mid-object (required: "processor killed mid-object → redelivery resumes
//! without duplicates"), literally: the real `logrelay-processor` binary in `manual` mode delivers
//! one notification of a many-batch object (`LOGRELAY_PUT_LOG_EVENTS_MAX_EVENTS` lowered) through a proxy in front of
//! the emulator's CloudWatch Logs. The proxy holds PutLogEvents requests, so the SIGKILL lands while
//! puts are in flight and the reader is mid-object; the binary is then run again on the same
//! notification and the tenant's log group is read back.
//!
//! Two kill points:
//! - the held puts never reached CloudWatch → the redelivery sends every event exactly once;
//! - one put was accepted by CloudWatch and its answer held, so the progress write after it never
//!   happened → the redelivery re-sends that one batch: every event arrives, exactly one batch twice
//!   (the window `docs/processor-delivery.md` calls out; never more than the batches in flight).

mod intake_support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use chrono::Utc;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use intake_support::{ACCOUNT_A, Central, expected_lines, messages, processor_command};
use logrelay_common::key::Partition;
use logrelay_testkit::Moto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Records in the object.
const RECORDS: usize = 2_000;
/// Events per PutLogEvents (`LOGRELAY_PUT_LOG_EVENTS_MAX_EVENTS`): 40 batches.
const BATCH: usize = 50;
/// Puts that go through before the proxy starts holding: the kill lands after batch 10 of 40.
const PUTS_BEFORE_HOLD: usize = 10;
/// Events CloudWatch has from those puts.
const EVENTS_BEFORE_HOLD: usize = PUTS_BEFORE_HOLD * BATCH;
/// Puts of one log stream in flight at once (its batches are sent in order, one at a time).
const PUTS_IN_FLIGHT_PER_STREAM: usize = 1;
/// Longest wait for the processor to reach the kill point.
const KILL_POINT_DEADLINE: Duration = Duration::from_secs(60);

/// Which PutLogEvents requests the proxy holds (numbered from 0 in arrival order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Forward everything.
    Nothing,
    /// Hold put `n` and every later one before CloudWatch sees them.
    RequestsFrom(usize),
    /// Forward put `n`, then hold its answer (CloudWatch stored it, the processor never hears);
    /// hold every later put before CloudWatch sees it.
    AnswerOf(usize),
}

/// An HTTP proxy to the emulator that holds PutLogEvents requests as planned.
struct HoldProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

struct Shared {
    upstream: String,
    client: Client<HttpConnector, Incoming>,
    hold: Mutex<Hold>,
    puts: AtomicUsize,
    held: AtomicUsize,
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;

impl HoldProxy {
    async fn start(upstream: &str, hold: Hold) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            hold: Mutex::new(hold),
            puts: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
        });
        let accept = tokio::spawn({
            let shared = shared.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request| handle(shared.clone(), request));
                        // Ends with an error when the killed processor's connections drop.
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        Self {
            addr,
            shared,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests (or answers) held so far.
    fn held(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// From now on everything goes through (held requests stay held).
    fn release_new_requests(&self) {
        *self.shared.hold.lock().expect("hold plan") = Hold::Nothing;
    }
}

impl Drop for HoldProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let is_put = request
        .headers()
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|target| target.ends_with(".PutLogEvents"));
    if is_put {
        let index = shared.puts.fetch_add(1, Ordering::SeqCst);
        let hold = *shared.hold.lock().expect("hold plan");
        match hold {
            Hold::RequestsFrom(n) if index >= n => return Ok(hold_forever(&shared).await),
            Hold::AnswerOf(n) if index > n => return Ok(hold_forever(&shared).await),
            Hold::AnswerOf(n) if index == n => {
                // CloudWatch stores the batch (the test checks it); its answer is read and dropped.
                let _ = forward(&shared, request).await.into_body().collect().await;
                return Ok(hold_forever(&shared).await);
            }
            _ => {}
        }
    }
    Ok(forward(&shared, request).await)
}

/// Counts a held request and never answers it.
async fn hold_forever(shared: &Shared) -> Response<ProxyBody> {
    shared.held.fetch_add(1, Ordering::SeqCst);
    let never: Infallible = std::future::pending().await;
    match never {}
}

/// Sends the request to the emulator unchanged (the Host header stays as the client signed it).
async fn forward(shared: &Shared, request: Request<Incoming>) -> Response<ProxyBody> {
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    parts.uri = format!("{}{path}", shared.upstream)
        .parse()
        .expect("upstream URI");
    match shared
        .client
        .request(Request::from_parts(parts, body))
        .await
    {
        Ok(response) => response.map(BodyExt::boxed),
        Err(error) => {
            let mut response = Response::new(
                Full::new(Bytes::from(format!("upstream failed: {error}")))
                    .map_err(|never: Infallible| match never {})
                    .boxed(),
            );
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response
        }
    }
}

/// One test's tenant, object and notification.
struct Scenario {
    central: Central,
    group: String,
    notification: String,
}

impl Scenario {
    /// A tenant with a CloudWatch config, its log group and stream created in advance (so every
    /// put carries a batch: none is a `ResourceNotFoundException` round), and one object of
    /// [`RECORDS`] records whose notifications are taken from the queue.
    async fn new() -> Self {
        let central = Central::new().await;
        let (tenant, group) = central.new_cloudwatch_tenant(ACCOUNT_A).await;
        let pod = "api-7d9f";
        let logs =
            aws_sdk_cloudwatchlogs::Client::new(&Moto::shared().await.config(ACCOUNT_A).await);
        logs.create_log_group()
            .log_group_name(&group)
            .send()
            .await
            .expect("log group");
        logs.create_log_stream()
            .log_group_name(&group)
            .log_stream_name(pod)
            .send()
            .await
            .expect("log stream");
        central
            .put_object(
                &Partition::new(&tenant, "c1", "api", pod),
                Utc::now(),
                RECORDS,
                "kill",
            )
            .await;
        // The bucket's s3:TestEvent and the object's SNS notification, as a queue holds them.
        let notification = central.take_bodies().await.join("\n");
        Self {
            central,
            group,
            notification,
        }
    }

    /// Starts the processor in manual mode on the notification, CloudWatch through `logs_url`.
    fn spawn(&self, logs_url: &str) -> Child {
        let mut env = self.central.processor_env(&self.central.moto_url);
        env.insert("LOGRELAY_LOGS_ENDPOINT_URL", logs_url.to_owned());
        env.insert("LOGRELAY_PUT_LOG_EVENTS_MAX_EVENTS", BATCH.to_string());
        let mut command = processor_command(&env);
        command.arg("manual").stdin(Stdio::piped());
        let mut child = command.spawn().expect("spawn processor");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(self.notification.as_bytes())
            .expect("write notification");
        drop(stdin);
        child
    }

    /// Runs the processor on the notification to the end.
    fn run(&self, logs_url: &str) -> Output {
        self.spawn(logs_url).wait_with_output().expect("wait")
    }

    /// Runs the processor with CloudWatch behind a proxy holding puts as `hold`, waits until the
    /// proxy holds a put (the object has one log stream, whose batches go out one at a time, so
    /// every earlier batch has been answered and its progress written, and the reader waits
    /// mid-object), and SIGKILLs it. Returns the proxy.
    async fn run_and_kill(&self, hold: Hold) -> HoldProxy {
        let proxy = HoldProxy::start(&self.central.moto_url, hold).await;
        let mut child = self.spawn(&proxy.url());
        let started = Instant::now();
        while proxy.held() < PUTS_IN_FLIGHT_PER_STREAM {
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!("the processor exited ({status}) before the kill point");
            }
            assert!(
                started.elapsed() < KILL_POINT_DEADLINE,
                "the proxy holds {} puts after {KILL_POINT_DEADLINE:?}",
                proxy.held()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.kill().expect("SIGKILL"); // std sends SIGKILL on Unix
        let status = child.wait().expect("reap");
        assert_eq!(status.code(), None, "killed by a signal, not exited");
        proxy
    }

    /// The redelivery right after the kill finds the dead attempt's lease and leaves the object
    /// for later (transient); once the lease has expired it delivers the rest. Returns what the
    /// group holds then.
    async fn redeliver(&self, proxy: &HoldProxy) -> Vec<String> {
        proxy.release_new_requests();
        let blocked = self.run(&proxy.url());
        assert_eq!(blocked.status.code(), Some(1), "{}", stderr(&blocked));
        assert!(
            stderr(&blocked).contains("in_progress_elsewhere"),
            "{}",
            stderr(&blocked)
        );
        self.expire_leases().await;
        let resumed = self.run(&proxy.url());
        let report = stderr(&resumed);
        assert_eq!(resumed.status.code(), Some(0), "{report}");
        assert!(report.contains("delivered 1"), "{report}");
        self.delivered().await
    }

    /// Every message in the tenant's group, sorted.
    async fn delivered(&self) -> Vec<String> {
        messages(ACCOUNT_A, &self.group).await
    }

    /// Makes the killed attempt's progress lease expire, as the 5 minutes would
    /// (`DEFAULT_LEASE`; in production the message comes back after its visibility timeout).
    async fn expire_leases(&self) {
        let dynamodb = aws_sdk_dynamodb::Client::new(&self.central.aws);
        for item in self.progress_items().await {
            dynamodb
                .update_item()
                .table_name(&self.central.progress_table)
                .key("pk", item["pk"].clone())
                .update_expression("SET lease_until_ms = :past")
                .expression_attribute_values(":past", AttributeValue::N("0".into()))
                .send()
                .await
                .expect("expire lease");
        }
    }

    /// Events the progress table records as delivered, over all its items.
    async fn recorded_events(&self) -> usize {
        self.progress_items()
            .await
            .iter()
            .filter_map(|item| {
                item.get("events_delivered")?
                    .as_n()
                    .ok()?
                    .parse::<usize>()
                    .ok()
            })
            .sum()
    }

    async fn progress_items(&self) -> Vec<std::collections::HashMap<String, AttributeValue>> {
        aws_sdk_dynamodb::Client::new(&self.central.aws)
            .scan()
            .table_name(&self.central.progress_table)
            .consistent_read(true)
            .send()
            .await
            .expect("scan progress")
            .items
            .unwrap_or_default()
    }
}

/// What the group holds compared with the object's records, each event once.
#[derive(Debug, Default)]
struct Tally {
    /// Records not in the group.
    missing: Vec<String>,
    /// Records in the group more than once, with how often.
    repeated: BTreeMap<String, usize>,
    /// Messages that are no record of the object.
    foreign: Vec<String>,
}

/// Compares the group's messages with `kill line 0..RECORDS`.
fn tally(lines: &[String]) -> Tally {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for line in lines {
        *seen.entry(line.as_str()).or_default() += 1;
    }
    let expected = expected_lines("kill", RECORDS);
    let mut tally = Tally {
        missing: expected
            .iter()
            .filter(|line| !seen.contains_key(line.as_str()))
            .cloned()
            .collect(),
        ..Tally::default()
    };
    for (line, n) in seen {
        if expected.binary_search_by(|e| e.as_str().cmp(line)).is_err() {
            tally.foreign.push(line.to_owned());
        } else if n > 1 {
            tally.repeated.insert(line.to_owned(), n);
        }
    }
    tally
}

/// A short description of a tally for assertion messages.
fn summary(tally: &Tally) -> String {
    format!(
        "{} missing (first {:?}), {} repeated (first {:?}), {} foreign",
        tally.missing.len(),
        tally.missing.first(),
        tally.repeated.len(),
        tally.repeated.iter().next(),
        tally.foreign.len()
    )
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_puts_are_held_the_redelivery_resumes_without_duplicates() {
    let scenario = Scenario::new().await;
    let proxy = scenario
        .run_and_kill(Hold::RequestsFrom(PUTS_BEFORE_HOLD))
        .await;
    let before = scenario.delivered().await;
    assert_eq!(
        before.len(),
        EVENTS_BEFORE_HOLD,
        "the puts that went through"
    );
    let partial = tally(&before);
    assert!(
        partial.repeated.is_empty() && partial.foreign.is_empty(),
        "{}",
        summary(&partial)
    );
    assert_eq!(
        scenario.recorded_events().await,
        EVENTS_BEFORE_HOLD,
        "every batch CloudWatch has is recorded"
    );

    let after = scenario.redeliver(&proxy).await;
    let tally = tally(&after);
    assert!(
        tally.missing.is_empty() && tally.repeated.is_empty() && tally.foreign.is_empty(),
        "every event exactly once: {}",
        summary(&tally)
    );
    assert_eq!(after.len(), RECORDS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_cloudwatch_accepted_a_batch_it_is_sent_again_and_nothing_else() {
    let scenario = Scenario::new().await;
    let proxy = scenario
        .run_and_kill(Hold::AnswerOf(PUTS_BEFORE_HOLD))
        .await;
    let before = scenario.delivered().await;
    assert_eq!(
        before.len(),
        EVENTS_BEFORE_HOLD + BATCH,
        "CloudWatch has the held batch too"
    );
    assert_eq!(
        scenario.recorded_events().await,
        EVENTS_BEFORE_HOLD,
        "but its progress write never happened"
    );

    let after = scenario.redeliver(&proxy).await;
    let tally = tally(&after);
    assert!(
        tally.missing.is_empty() && tally.foreign.is_empty(),
        "every event arrived: {}",
        summary(&tally)
    );
    assert!(
        tally.repeated.values().all(|&n| n == 2),
        "nothing three times: {}",
        summary(&tally)
    );
    // The bound: at most the batch whose acceptance was never recorded; here exactly that one.
    assert!(tally.repeated.len() <= BATCH, "{}", summary(&tally));
    assert_eq!(
        tally.repeated.len(),
        BATCH,
        "exactly the held batch is sent again"
    );
    assert_eq!(after.len(), RECORDS + BATCH);
}
