//! Sending one sealed batch to CloudWatch Logs: PutLogEvents with retries, the log group and stream
//! created only when a put finds them missing (`ResourceNotFoundException`; retention is set only on
//! a group we create), and bisection of a batch CloudWatch calls invalid so only the offending
//! events are lost. Never calls Describe*. Creation is single-flight per resource: a put that finds
//! a group or stream missing while another task of this process creates it waits for that
//! creation instead of racing it, and only a create CloudWatch accepted is logged and counted.

use super::batch::{LogEvent, Rejected};
use super::encode::put_log_events_body;
use super::retry::{Next, RESOURCE_ALREADY_EXISTS, RESOURCE_NOT_FOUND, decide};
use crate::error::DeliveryError;
use crate::retry::{Classified, RetryPolicy, with_retries};
use crate::telemetry::InternalEvent;
use crate::telemetry::events::LogResourceCreated;
use aws_config::SdkConfig;
use aws_sdk_cloudwatchlogs::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use logrelay_common::aws::without_sdk_retries;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Requests one batch may spend on bisection before the whole batch is given up (enough to isolate
/// a few bad events in 10,000: about 2·log2(10,000) ≈ 27 requests per bad event).
pub const MAX_BISECT_REQUESTS: u32 = 64;
/// How many times one put may create missing resources before giving up (the group or stream is
/// being deleted as fast as we create it).
const MAX_CREATE_ROUNDS: u32 = 2;
/// Streams remembered as existing; the set is cleared when it grows past this (memory bound).
pub const MAX_KNOWN_STREAMS: usize = 100_000;

/// The log streams this process has delivered to or created: lets the service tell a stream the
/// tenant deleted (recreated, counted) from a new one. It never replaces asking CloudWatch: a put
/// always goes first, and creation happens only on `ResourceNotFoundException`. Also holds the
/// creations in flight, shared by every object's deliveries.
#[derive(Debug, Default)]
pub struct KnownStreams {
    inner: Mutex<HashSet<String>>,
    creating: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl KnownStreams {
    fn key(destination: &str, group: &str, stream: &str) -> String {
        format!("{destination}\u{0}{group}\u{0}{stream}")
    }

    /// Runs `create` for the resource `key`, unless a creation of it is already in flight: then
    /// waits for that one to end and returns `None` (the caller's next put will tell whether the
    /// resource exists now).
    async fn single_flight<T>(&self, key: String, create: impl Future<Output = T>) -> Option<T> {
        let cell = match self.creating.lock() {
            Ok(mut creating) => creating.entry(key.clone()).or_default().clone(),
            Err(_) => Arc::default(),
        };
        match cell.clone().try_lock_owned() {
            Ok(leading) => {
                let out = create.await;
                if let Ok(mut creating) = self.creating.lock() {
                    creating.remove(&key);
                }
                drop(leading);
                Some(out)
            }
            Err(_) => {
                drop(cell.lock().await);
                None
            }
        }
    }

    fn insert(&self, destination: &str, group: &str, stream: &str) {
        if let Ok(mut set) = self.inner.lock() {
            if set.len() >= MAX_KNOWN_STREAMS {
                set.clear();
            }
            set.insert(Self::key(destination, group, stream));
        }
    }

    fn contains(&self, destination: &str, group: &str, stream: &str) -> bool {
        self.inner
            .lock()
            .map(|set| set.contains(&Self::key(destination, group, stream)))
            .unwrap_or(false)
    }
}

/// What one batch achieved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PutOutcome {
    /// Events CloudWatch stored.
    pub accepted: u64,
    /// Their message bytes.
    pub accepted_bytes: u64,
    /// Events CloudWatch refused by `rejectedLogEventsInfo`.
    pub rejected: Rejected,
    /// Events isolated by bisection that CloudWatch calls invalid.
    pub invalid: u64,
    /// PutLogEvents requests made (retries not counted).
    pub requests: u32,
}

/// Makes `body` the request's body, with its length.
fn replace_body(request: &mut HttpRequest, body: Bytes) {
    request
        .headers_mut()
        .insert("content-length", body.len().to_string());
    *request.body_mut() = SdkBody::from(body);
}

/// A CloudWatch Logs client over a tenant's session `config`, retried only by [`LogsService`]'s
/// policy, each request attempt bounded by `attempt_timeout`; `endpoint_url` overrides the endpoint
/// (an emulator or a proxy in tests).
pub fn client(config: &SdkConfig, attempt_timeout: Duration, endpoint_url: Option<&str>) -> Client {
    let config = without_sdk_retries(config, Some(attempt_timeout));
    let mut builder = aws_sdk_cloudwatchlogs::config::Builder::from(&config);
    if let Some(url) = endpoint_url {
        builder = builder.endpoint_url(url);
    }
    Client::from_conf(builder.build())
}

/// One tenant config's log group, reached with that tenant's credentials.
#[derive(Debug, Clone)]
pub struct LogsService {
    client: Client,
    tenant_id: String,
    /// Identifies the account and region the client reaches (role ARN + region).
    destination: String,
    group: String,
    retention_days: Option<i32>,
    policy: RetryPolicy,
    known: Arc<KnownStreams>,
}

/// How a put failed.
enum PutFailure {
    Invalid(Classified),
    Other(DeliveryError),
}

impl LogsService {
    /// A service for `group`, creating it with `retention_days` if a put finds it missing.
    pub fn new(
        client: Client,
        tenant_id: impl Into<String>,
        destination: impl Into<String>,
        group: impl Into<String>,
        retention_days: Option<i32>,
        policy: RetryPolicy,
        known: Arc<KnownStreams>,
    ) -> Self {
        Self {
            client,
            tenant_id: tenant_id.into(),
            destination: destination.into(),
            group: group.into(),
            retention_days,
            policy,
            known,
        }
    }

    /// The log group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Delivers one sorted, non-empty batch to `stream`. Events CloudWatch calls invalid are
    /// isolated by bisection and counted; the rest are delivered. An error means the batch as a
    /// whole could not be delivered (parts of it may have been, when bisecting). Each request's
    /// body is written once from the events and shared by its retries.
    pub async fn deliver(
        &self,
        stream: &str,
        events: Vec<LogEvent>,
    ) -> Result<PutOutcome, DeliveryError> {
        let mut outcome = PutOutcome::default();
        if events.is_empty() {
            return Ok(outcome); // never send an empty batch (CloudWatch rejects it)
        }
        // Depth-first, left half first, so bisected parts are still sent in order.
        let mut pending = vec![(0, events.len())];
        let mut budget = MAX_BISECT_REQUESTS;
        while let Some((start, end)) = pending.pop() {
            let chunk = &events[start..end];
            outcome.requests += 1;
            match self.put(stream, chunk).await {
                Ok(rejected) => {
                    let accepted = rejected.accepted_range(chunk.len());
                    outcome.accepted += accepted.len() as u64;
                    outcome.accepted_bytes += chunk[accepted]
                        .iter()
                        .map(|event| event.message.len() as u64)
                        .sum::<u64>();
                    outcome.rejected.expired += rejected.expired;
                    outcome.rejected.too_old += rejected.too_old;
                    outcome.rejected.too_new += rejected.too_new;
                }
                Err(PutFailure::Invalid(failure)) if chunk.len() == 1 => {
                    tracing::warn!(
                        tenant = %self.tenant_id,
                        group = %self.group,
                        stream,
                        error = %failure.message,
                        "event refused as invalid; dropped"
                    );
                    outcome.invalid += 1;
                }
                Err(PutFailure::Invalid(failure)) => {
                    budget = budget.saturating_sub(1);
                    if budget == 0 {
                        return Err(DeliveryError::permanent(
                            "invalid_parameter",
                            format!(
                                "batch still invalid after {MAX_BISECT_REQUESTS} bisection requests: {}",
                                failure.message
                            ),
                        ));
                    }
                    let middle = start + chunk.len() / 2;
                    pending.push((middle, end));
                    pending.push((start, middle));
                }
                Err(PutFailure::Other(error)) => return Err(error),
            }
        }
        Ok(outcome)
    }

    /// One PutLogEvents (with retries), creating the group/stream when missing.
    async fn put(&self, stream: &str, events: &[LogEvent]) -> Result<Rejected, PutFailure> {
        let body = put_log_events_body(&self.group, stream, events);
        let mut create_rounds = 0;
        loop {
            let result = with_retries(&self.policy, &self.tenant_id, "logs:PutLogEvents", || {
                let body = body.clone();
                // The SDK serializes the group and stream only; the written body replaces its
                // request body before signing, so the signature covers the events.
                self.client
                    .put_log_events()
                    .log_group_name(&self.group)
                    .log_stream_name(stream)
                    .customize()
                    .mutate_request(move |request| replace_body(request, body.clone()))
                    .send()
            })
            .await;
            let failure = match result {
                Ok(output) => {
                    self.known.insert(&self.destination, &self.group, stream);
                    return Ok(Rejected::from_info(
                        output.rejected_log_events_info(),
                        events.len(),
                    ));
                }
                Err(failure) => failure,
            };
            match decide(failure) {
                Next::AlreadyAccepted => return Ok(Rejected::default()),
                Next::Bisect(failure) => return Err(PutFailure::Invalid(failure)),
                Next::CreateResources(failure) if create_rounds < MAX_CREATE_ROUNDS => {
                    tracing::debug!(error = %failure.message, stream, "log stream or group missing; creating");
                    create_rounds += 1;
                    self.create_stream(stream)
                        .await
                        .map_err(PutFailure::Other)?;
                }
                Next::CreateResources(failure) => {
                    return Err(PutFailure::Other(
                        DeliveryError::transient(
                            "log_stream_unavailable",
                            format!(
                                "log stream still missing after creating it: {}",
                                failure.message
                            ),
                        )
                        .with_cause(Some(failure.cause())),
                    ));
                }
                Next::Fail(failure) => {
                    return Err(PutFailure::Other(failure.into_delivery_error()));
                }
            }
        }
    }

    /// Creates the stream (single-flight), and the group first when CloudWatch says it is
    /// missing too.
    async fn create_stream(&self, stream: &str) -> Result<(), DeliveryError> {
        let key = KnownStreams::key(&self.destination, &self.group, stream);
        let known = self.known.clone();
        known
            .single_flight(key, self.create_stream_now(stream))
            .await
            .unwrap_or(Ok(()))
    }

    async fn create_stream_now(&self, stream: &str) -> Result<(), DeliveryError> {
        let recreated = self.known.contains(&self.destination, &self.group, stream);
        let created = match self.try_create_stream(stream).await {
            Ok(created) => created,
            Err(failure) if failure.has_code(RESOURCE_NOT_FOUND) => {
                self.create_group(recreated).await?;
                self.try_create_stream(stream)
                    .await
                    .map_err(Classified::into_delivery_error)?
            }
            Err(failure) => return Err(failure.into_delivery_error()),
        };
        if created {
            LogResourceCreated {
                tenant: &self.tenant_id,
                kind: "stream",
                name: stream,
                recreated,
            }
            .emit();
        }
        Ok(())
    }

    /// One CreateLogStream: true when it created the stream, false when it existed already.
    async fn try_create_stream(&self, stream: &str) -> Result<bool, Classified> {
        let result = with_retries(
            &self.policy,
            &self.tenant_id,
            "logs:CreateLogStream",
            || {
                self.client
                    .create_log_stream()
                    .log_group_name(&self.group)
                    .log_stream_name(stream)
                    .send()
            },
        )
        .await;
        match result {
            Ok(_) => Ok(true),
            Err(failure) if failure.has_code(RESOURCE_ALREADY_EXISTS) => Ok(false),
            Err(failure) => Err(failure),
        }
    }

    /// Creates the group (single-flight per group) and sets retention on a group it created.
    async fn create_group(&self, recreated: bool) -> Result<(), DeliveryError> {
        let key = KnownStreams::key(&self.destination, &self.group, "");
        let known = self.known.clone();
        known
            .single_flight(key, self.create_group_now(recreated))
            .await
            .unwrap_or(Ok(()))
    }

    async fn create_group_now(&self, recreated: bool) -> Result<(), DeliveryError> {
        let result = with_retries(&self.policy, &self.tenant_id, "logs:CreateLogGroup", || {
            self.client
                .create_log_group()
                .log_group_name(&self.group)
                .send()
        })
        .await;
        match result {
            Ok(_) => {}
            // Someone else created it meanwhile: its retention is theirs, leave it alone.
            Err(failure) if failure.has_code(RESOURCE_ALREADY_EXISTS) => return Ok(()),
            Err(failure) => return Err(failure.into_delivery_error()),
        }
        LogResourceCreated {
            tenant: &self.tenant_id,
            kind: "group",
            name: &self.group,
            recreated,
        }
        .emit();
        if let Some(days) = self.retention_days {
            let result = with_retries(
                &self.policy,
                &self.tenant_id,
                "logs:PutRetentionPolicy",
                || {
                    self.client
                        .put_retention_policy()
                        .log_group_name(&self.group)
                        .retention_in_days(days)
                        .send()
                },
            )
            .await;
            if let Err(failure) = result {
                // Delivery goes on; the group keeps CloudWatch's default (never expire).
                tracing::warn!(
                    tenant = %self.tenant_id,
                    group = %self.group,
                    retention_days = days,
                    error = %failure.message,
                    "could not set retention on the created log group"
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::fake_http::{self, FakeHttp, Request};
    use aws_credential_types::Credentials;
    use logrelay_common::aws::{AwsOptions, base_config};
    use std::time::Duration;

    async fn service(url: &str, known: Arc<KnownStreams>) -> LogsService {
        let config = base_config(&AwsOptions {
            region: Some("us-east-1".into()),
            endpoint_url: Some(url.to_owned()),
            credentials: Some(Credentials::from_keys("AKID", "secret", None)),
        })
        .await;
        let client = Client::new(&without_sdk_retries(&config, None));
        let policy = RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        LogsService::new(
            client,
            "acme",
            "role@us-east-1",
            "/acme",
            Some(7),
            policy,
            known,
        )
    }

    fn operation(request: &Request) -> String {
        request
            .header("x-amz-target")
            .unwrap_or_default()
            .trim_start_matches("Logs_20140328.")
            .to_owned()
    }

    fn error(code: &str) -> (u16, String) {
        (
            400,
            format!(r#"{{"__type":"{code}","message":"{code} from the fake"}}"#),
        )
    }

    fn events(messages: &[&str]) -> Vec<LogEvent> {
        messages
            .iter()
            .enumerate()
            .map(|(i, m)| LogEvent {
                timestamp_ms: 1_000 + i as i64,
                message: (*m).to_owned(),
            })
            .collect()
    }

    fn sent_messages(fake: &FakeHttp) -> Vec<Vec<String>> {
        fake.seen()
            .iter()
            .filter(|r| operation(r) == "PutLogEvents")
            .map(|r| {
                r.json()["logEvents"]
                    .as_array()
                    .map(|events| {
                        events
                            .iter()
                            .filter_map(|e| e["message"].as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect()
    }

    #[tokio::test]
    async fn invalid_events_are_isolated_by_bisection_and_the_rest_is_delivered() {
        let fake = fake_http::serve(|request: &Request| {
            if request.json()["logEvents"].to_string().contains("BAD") {
                error("InvalidParameterException")
            } else {
                (200, "{}".to_owned())
            }
        })
        .await;
        let service = service(&fake.url, Arc::default()).await;
        let mut messages: Vec<String> = (0..16).map(|i| format!("m{i}")).collect();
        messages[5] = "BAD5".into();
        messages[11] = "BAD11".into();
        let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
        let outcome = service
            .deliver("s", events(&refs))
            .await
            .expect("delivered");
        assert_eq!((outcome.accepted, outcome.invalid), (14, 2));
        let accepted: Vec<String> = fake
            .seen()
            .iter()
            .filter(|r| !r.json()["logEvents"].to_string().contains("BAD"))
            .flat_map(|r| {
                r.json()["logEvents"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|e| e["message"].as_str().map(str::to_owned))
            })
            .collect();
        let expected: Vec<String> = messages
            .iter()
            .filter(|m| !m.starts_with("BAD"))
            .cloned()
            .collect();
        assert_eq!(accepted, expected, "every good event once, in order");
        assert!(
            sent_messages(&fake).iter().all(|batch| !batch.is_empty()),
            "no empty request"
        );
    }

    #[tokio::test]
    async fn rejected_events_are_counted_from_the_response() {
        let fake = fake_http::serve(|_: &Request| {
            (200, r#"{"rejectedLogEventsInfo":{"tooOldLogEventEndIndex":2,"tooNewLogEventStartIndex":9}}"#.to_owned())
        })
        .await;
        let service = service(&fake.url, Arc::default()).await;
        let batch = events(&["a", "bb", "c", "d", "e", "f", "g", "h", "i", "jjjj"]);
        let outcome = service.deliver("s", batch).await.expect("delivered");
        assert_eq!(outcome.accepted, 7);
        assert_eq!((outcome.rejected.too_old, outcome.rejected.too_new), (2, 1));
        assert_eq!(outcome.accepted_bytes, 7, "bytes of events 2..9 only");
    }

    #[tokio::test]
    async fn a_missing_group_and_stream_are_created_on_demand_and_never_described() {
        let state = Arc::new(Mutex::new((false, false))); // (group exists, stream exists)
        let shared = state.clone();
        let fake = fake_http::serve(move |request: &Request| {
            let mut exists = shared.lock().expect("state");
            match operation(request).as_str() {
                "PutLogEvents" if exists.1 => (200, "{}".to_owned()),
                "PutLogEvents" => error("ResourceNotFoundException"),
                "CreateLogStream" if !exists.0 => error("ResourceNotFoundException"),
                "CreateLogStream" => {
                    exists.1 = true;
                    (200, "{}".to_owned())
                }
                "CreateLogGroup" => {
                    exists.0 = true;
                    (200, "{}".to_owned())
                }
                "PutRetentionPolicy" => (200, "{}".to_owned()),
                _ => error("UnknownOperationException"),
            }
        })
        .await;
        let known: Arc<KnownStreams> = Arc::default();
        let service = service(&fake.url, known.clone()).await;
        service
            .deliver("s", events(&["one"]))
            .await
            .expect("delivered");
        service
            .deliver("s", events(&["two"]))
            .await
            .expect("delivered");
        let calls: Vec<String> = fake.seen().iter().map(operation).collect();
        assert_eq!(
            calls,
            [
                "PutLogEvents",
                "CreateLogStream",
                "CreateLogGroup",
                "PutRetentionPolicy",
                "CreateLogStream",
                "PutLogEvents",
                "PutLogEvents"
            ]
        );
        let retention = fake
            .seen()
            .into_iter()
            .find(|r| operation(r) == "PutRetentionPolicy")
            .map(|r| r.json()["retentionInDays"].clone());
        assert_eq!(retention, Some(serde_json::json!(7)));
        assert!(known.contains("role@us-east-1", "/acme", "s"));
    }

    #[tokio::test]
    async fn concurrent_puts_to_new_streams_create_the_group_and_each_stream_once() {
        // (group exists, streams that exist); creates of existing resources are refused as
        // CloudWatch refuses them.
        let state = Arc::new(Mutex::new((false, HashSet::<String>::new())));
        let shared = state.clone();
        let fake = fake_http::serve(move |request: &Request| {
            let mut state = shared.lock().expect("state");
            let stream = request.json()["logStreamName"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            match operation(request).as_str() {
                "PutLogEvents" if state.1.contains(&stream) => (200, "{}".to_owned()),
                "PutLogEvents" => error("ResourceNotFoundException"),
                "CreateLogStream" if !state.0 => error("ResourceNotFoundException"),
                "CreateLogStream" if !state.1.insert(stream) => {
                    error("ResourceAlreadyExistsException")
                }
                "CreateLogGroup" if state.0 => error("ResourceAlreadyExistsException"),
                "CreateLogGroup" => {
                    state.0 = true;
                    (200, "{}".to_owned())
                }
                "CreateLogStream" | "PutRetentionPolicy" => (200, "{}".to_owned()),
                _ => error("UnknownOperationException"),
            }
        })
        .await;
        let service = service(&fake.url, Arc::default()).await;
        let streams = ["a", "b", "c", "a", "b", "c"];
        let deliveries = streams
            .iter()
            .map(|stream| service.deliver(stream, events(&["x"])));
        for result in futures::future::join_all(deliveries).await {
            result.expect("delivered");
        }
        let calls: Vec<String> = fake.seen().iter().map(operation).collect();
        let count = |name: &str| calls.iter().filter(|call| *call == name).count();
        assert_eq!(count("CreateLogGroup"), 1, "{calls:?}");
        assert_eq!(count("PutRetentionPolicy"), 1, "{calls:?}");
        let stream_creates: Vec<String> = fake
            .seen()
            .iter()
            .filter(|r| operation(r) == "CreateLogStream")
            .filter_map(|r| r.json()["logStreamName"].as_str().map(str::to_owned))
            .collect();
        for stream in ["a", "b", "c"] {
            assert!(
                stream_creates.iter().filter(|s| *s == stream).count() <= 2,
                "stream {stream} created by one task (plus its try before the group existed): {calls:?}"
            );
        }
        assert_eq!(
            count("PutLogEvents") - 6,
            6,
            "each delivery: one miss, one put"
        );
    }

    #[tokio::test]
    async fn an_existing_group_keeps_its_retention() {
        let puts = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = puts.clone();
        let fake = fake_http::serve(move |request: &Request| match operation(request).as_str() {
            "CreateLogStream" => (200, "{}".to_owned()),
            "PutLogEvents" => {
                if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    error("ResourceNotFoundException")
                } else {
                    (200, "{}".to_owned())
                }
            }
            _ => error("UnknownOperationException"),
        })
        .await;
        let service = service(&fake.url, Arc::default()).await;
        service
            .deliver("s", events(&["x"]))
            .await
            .expect("delivered");
        let calls: Vec<String> = fake.seen().iter().map(operation).collect();
        assert_eq!(calls, ["PutLogEvents", "CreateLogStream", "PutLogEvents"]);
    }

    #[tokio::test]
    async fn throttling_is_retried_within_the_budget_then_fails_transiently() {
        let fake = fake_http::serve(|_: &Request| error("ThrottlingException")).await;
        let service = service(&fake.url, Arc::default()).await;
        let tally = Arc::new(crate::retry::RetryTally::default());
        let failure = crate::retry::tallied(tally.clone(), service.deliver("s", events(&["x"])))
            .await
            .expect_err("throttled");
        assert_eq!(
            tally.summary(),
            (2, Some(logrelay_common::aws::ErrorClass::Throttling)),
            "two retries counted for the object"
        );
        assert_eq!(
            (failure.reason, failure.is_transient()),
            ("throttled", true)
        );
        assert_eq!(fake.seen().len(), 3, "RETRY_ATTEMPTS = 3 attempts in all");
        let text = failure.to_string();
        assert!(
            text.contains("gave up after 3 attempts") && text.contains("(request id fake-3)"),
            "names the attempts and AWS's request id of the last one: {text}"
        );
    }

    #[tokio::test]
    async fn server_errors_are_retried_until_they_pass() {
        let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = calls.clone();
        let fake = fake_http::serve(move |_: &Request| {
            if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                (
                    500,
                    r#"{"__type":"ServiceUnavailableException","message":"busy"}"#.to_owned(),
                )
            } else {
                (200, "{}".to_owned())
            }
        })
        .await;
        let service = service(&fake.url, Arc::default()).await;
        let outcome = service
            .deliver("s", events(&["x"]))
            .await
            .expect("delivered on the third attempt");
        assert_eq!(outcome.accepted, 1);
        assert_eq!(fake.seen().len(), 3);
    }

    #[tokio::test]
    async fn access_denied_fails_permanently_without_retrying() {
        let fake = fake_http::serve(|_: &Request| error("AccessDeniedException")).await;
        let service = service(&fake.url, Arc::default()).await;
        let failure = service
            .deliver("s", events(&["x"]))
            .await
            .expect_err("denied");
        assert_eq!(
            (failure.reason, failure.is_transient()),
            ("access_denied", false)
        );
        assert_eq!(fake.seen().len(), 1);
    }

    #[tokio::test]
    async fn an_empty_batch_is_never_sent() {
        let fake = fake_http::serve(|_: &Request| (200, "{}".to_owned())).await;
        let service = service(&fake.url, Arc::default()).await;
        assert_eq!(
            service
                .deliver("s", Vec::new())
                .await
                .expect("nothing to do")
                .requests,
            0
        );
        assert!(fake.seen().is_empty());
    }
}
