//! The SQS intake against the AWS emulator: objects put into a bucket notify SNS → SQS (as in
//! production), and the poller drives a small recording handler. Checks deletion on success,
//! redelivery after a transient failure, DLQ forwarding of permanent failures, the visibility
//! heartbeat of a slow handler, and draining on shutdown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;
use logrelay_processor::error::ProcessError;
use logrelay_processor::intake::dead_letter::{
    ATTR_ERROR, ATTR_REASON, ATTR_SOURCE_MESSAGE_ID, DeadLetterQueue,
};
use logrelay_processor::intake::message::Tally;
use logrelay_processor::intake::sqs::{SqsIntake, SqsSettings};
use logrelay_processor::object::{DeliveryReport, FailureKind, ObjectHandler, ObjectRef, Outcome};
use logrelay_testkit::{DEFAULT_ACCOUNT_ID, Moto, TestQueue};
use tokio::sync::Notify;

/// Longest any test waits for the intake to reach a state.
const TEST_DEADLINE: Duration = Duration::from_secs(60);

/// Records every object; outcome by file name: `transient*`, `permanent*`, `slow*` (sleeps), else delivered.
#[derive(Default)]
struct RecordingHandler {
    seen: Mutex<Vec<String>>,
    changed: Notify,
    slow_for: Duration,
}

impl RecordingHandler {
    fn slow(slow_for: Duration) -> Self {
        Self {
            slow_for,
            ..Self::default()
        }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("lock").clone()
    }

    fn count(&self, key: &str) -> usize {
        self.seen().iter().filter(|k| k.as_str() == key).count()
    }

    /// Waits until `key` was handled `times` times.
    async fn wait_for(&self, key: &str, times: usize) {
        tokio::time::timeout(TEST_DEADLINE, async {
            loop {
                let changed = self.changed.notified();
                if self.count(key) >= times {
                    return;
                }
                changed.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{key} not handled {times} time(s); saw {:?}", self.seen()));
    }
}

impl ObjectHandler for RecordingHandler {
    async fn handle(&self, object: &ObjectRef) -> Outcome {
        let name = object.key.rsplit('/').next().unwrap_or_default().to_owned();
        if name.starts_with("slow") {
            tokio::time::sleep(self.slow_for).await;
        }
        self.seen.lock().expect("lock").push(object.key.clone());
        self.changed.notify_waiters();
        let failed = |kind| Outcome::Failed {
            kind,
            error: ProcessError::Other {
                kind,
                reason: "test_failure",
                message: format!("{name} failed on purpose"),
            },
        };
        if name.starts_with("transient") {
            failed(FailureKind::Transient)
        } else if name.starts_with("permanent") {
            failed(FailureKind::Permanent)
        } else {
            Outcome::Delivered(DeliveryReport::default())
        }
    }
}

/// A bucket notifying SNS → SQS (with a redrive DLQ), like the production wiring.
struct Pipeline {
    config: SdkConfig,
    bucket: String,
    queue: TestQueue,
}

impl Pipeline {
    async fn new(visibility_seconds: u32) -> Self {
        let moto = Moto::shared().await;
        let config = moto.config(DEFAULT_ACCOUNT_ID).await;
        let bucket = logrelay_testkit::unique_name("central");
        logrelay_testkit::create_bucket(&config, &bucket)
            .await
            .expect("bucket");
        let topic =
            logrelay_testkit::create_topic(&config, &logrelay_testkit::unique_name("objects"))
                .await
                .expect("topic");
        let queue =
            logrelay_testkit::create_queue(&config, &logrelay_testkit::unique_name("intake"), 5)
                .await
                .expect("queue");
        aws_sdk_sqs::Client::new(&config)
            .set_queue_attributes()
            .queue_url(&queue.url)
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility_seconds.to_string(),
            )
            .send()
            .await
            .expect("visibility timeout");
        logrelay_testkit::subscribe_queue_to_topic(&config, &topic, &queue, false)
            .await
            .expect("subscribe");
        logrelay_testkit::notify_bucket_to_topic(&config, &bucket, &topic)
            .await
            .expect("notify");
        Self {
            config,
            bucket,
            queue,
        }
    }

    async fn put(&self, key: &str) {
        logrelay_testkit::put_object(&self.config, &self.bucket, key, b"{}".to_vec())
            .await
            .expect("put");
    }

    fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.config)
    }

    fn intake(
        &self,
        handler: Arc<RecordingHandler>,
        with_dlq: bool,
    ) -> SqsIntake<RecordingHandler> {
        let mut settings = SqsSettings::new(&self.queue.url);
        settings.max_concurrency = 4;
        settings.shutdown_grace = Duration::from_secs(20);
        let dlq = with_dlq.then(|| DeadLetterQueue::new(self.sqs(), &self.queue.dlq_url));
        SqsIntake::new(self.sqs(), handler, settings).with_dead_letter_queue(dlq)
    }

    /// The queue's visible + in-flight message counts.
    async fn depth(&self, url: &str) -> (u64, u64) {
        let attributes = self
            .sqs()
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("attributes")
            .attributes
            .unwrap_or_default();
        let get = |name| {
            attributes
                .get(&name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (
            get(QueueAttributeName::ApproximateNumberOfMessages),
            get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }
}

/// Runs `intake` until `stop` is notified; returns its tally.
fn spawn(intake: SqsIntake<RecordingHandler>, stop: Arc<Notify>) -> tokio::task::JoinHandle<Tally> {
    tokio::spawn(async move {
        let stopped = stop.notified();
        intake.run(stopped).await.expect("intake runs")
    })
}

async fn stop(task: tokio::task::JoinHandle<Tally>, stop: &Notify) -> Tally {
    stop.notify_one();
    tokio::time::timeout(TEST_DEADLINE, task)
        .await
        .expect("stops in time")
        .expect("task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_objects_are_deleted_and_the_test_event_acknowledged() {
    let pipeline = Pipeline::new(30).await;
    pipeline.put("acme/c1/app/pod/ok-1.json.gz").await;
    pipeline.put("acme/c1/my app/pod+1/ok-2.json.gz").await;
    let handler = Arc::new(RecordingHandler::default());
    let signal = Arc::new(Notify::new());
    let task = spawn(pipeline.intake(handler.clone(), true), signal.clone());
    handler.wait_for("acme/c1/app/pod/ok-1.json.gz", 1).await;
    handler
        .wait_for("acme/c1/my app/pod+1/ok-2.json.gz", 1)
        .await;
    let tally = stop(task, &signal).await;
    assert_eq!(tally.delivered, 2, "{tally}");
    assert_eq!(
        tally.test_events, 1,
        "the subscription's s3:TestEvent is acknowledged: {tally}"
    );
    assert_eq!(tally.acknowledged, 3);
    assert_eq!(
        pipeline.depth(&pipeline.queue.url).await,
        (0, 0),
        "every message deleted"
    );
    assert_eq!(pipeline.depth(&pipeline.queue.dlq_url).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_leaves_the_message_to_come_back_after_its_visibility_timeout() {
    let pipeline = Pipeline::new(2).await;
    let key = "acme/c1/app/pod/transient-1.json.gz";
    pipeline.put(key).await;
    let handler = Arc::new(RecordingHandler::default());
    let signal = Arc::new(Notify::new());
    let task = spawn(pipeline.intake(handler.clone(), true), signal.clone());
    // Handled, left undeleted, visible again after 2 s, handled again.
    handler.wait_for(key, 2).await;
    let tally = stop(task, &signal).await;
    assert!(tally.retried >= 2, "{tally:?}");
    assert_eq!(tally.dead_lettered, 0);
    let (visible, in_flight) = pipeline.depth(&pipeline.queue.url).await;
    assert_eq!(visible + in_flight, 1, "the message is still in the queue");
    assert_eq!(
        pipeline.depth(&pipeline.queue.dlq_url).await,
        (0, 0),
        "not forwarded: redrive decides"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_is_forwarded_to_the_dlq_with_its_error_and_deleted() {
    let pipeline = Pipeline::new(30).await;
    let key = "acme/c1/app/pod/permanent-1.json.gz";
    pipeline.put(key).await;
    let handler = Arc::new(RecordingHandler::default());
    let signal = Arc::new(Notify::new());
    let task = spawn(pipeline.intake(handler.clone(), true), signal.clone());
    handler.wait_for(key, 1).await;
    // Forwarding and deletion follow the handler; wait for the DLQ to hold the message.
    let dead = tokio::time::timeout(TEST_DEADLINE, async {
        loop {
            let received = pipeline
                .sqs()
                .receive_message()
                .queue_url(&pipeline.queue.dlq_url)
                .message_attribute_names("All")
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive from DLQ");
            if let Some(message) = received.messages.unwrap_or_default().into_iter().next() {
                return message;
            }
        }
    })
    .await
    .expect("message reaches the DLQ");
    let tally = stop(task, &signal).await;
    assert_eq!(tally.dead_lettered, 1, "{tally:?}");
    let attributes: HashMap<String, String> = dead
        .message_attributes
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, value)| Some((name, value.string_value?)))
        .collect();
    assert_eq!(
        attributes.get(ATTR_REASON).map(String::as_str),
        Some("test_failure")
    );
    assert!(
        attributes
            .get(ATTR_ERROR)
            .is_some_and(|e| e.contains("permanent-1.json.gz failed on purpose")),
        "{attributes:?}"
    );
    assert!(attributes.contains_key(ATTR_SOURCE_MESSAGE_ID));
    assert!(
        dead.body
            .unwrap_or_default()
            .contains("permanent-1.json.gz"),
        "the original body is kept"
    );
    assert_eq!(
        pipeline.depth(&pipeline.queue.url).await,
        (0, 0),
        "deleted from the source queue"
    );
    assert_eq!(handler.count(key), 1, "not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_keeps_a_slow_message_invisible_until_it_is_done() {
    let pipeline = Pipeline::new(2).await;
    // Drain the s3:TestEvent first, so the only message left is the slow one.
    logrelay_testkit::receive_all(&pipeline.config, &pipeline.queue.url)
        .await
        .expect("drain");
    let key = "acme/c1/app/pod/slow-1.json.gz";
    pipeline.put(key).await;
    let handler = Arc::new(RecordingHandler::slow(Duration::from_secs(7)));
    let signal = Arc::new(Notify::new());
    let task = spawn(pipeline.intake(handler.clone(), true), signal.clone());
    // While the handler sleeps 7 s (3.5 visibility timeouts), nobody else can receive the message.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for _ in 0..4 {
        let (visible, in_flight) = pipeline.depth(&pipeline.queue.url).await;
        assert_eq!((visible, in_flight), (0, 1), "message stays in flight");
        tokio::time::sleep(Duration::from_millis(1_200)).await;
    }
    handler.wait_for(key, 1).await;
    let tally = stop(task, &signal).await;
    assert_eq!(
        handler.count(key),
        1,
        "handled exactly once: the visibility never lapsed"
    );
    assert_eq!(tally.delivered, 1);
    assert_eq!(pipeline.depth(&pipeline.queue.url).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_messages_and_deletes_them() {
    let pipeline = Pipeline::new(30).await;
    logrelay_testkit::receive_all(&pipeline.config, &pipeline.queue.url)
        .await
        .expect("drain");
    let key = "acme/c1/app/pod/slow-2.json.gz";
    pipeline.put(key).await;
    let handler = Arc::new(RecordingHandler::slow(Duration::from_secs(3)));
    let signal = Arc::new(Notify::new());
    let task = spawn(pipeline.intake(handler.clone(), false), signal.clone());
    // Shut down once the message is in flight.
    tokio::time::timeout(TEST_DEADLINE, async {
        while pipeline.depth(&pipeline.queue.url).await.1 == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("message received");
    assert!(handler.seen().is_empty(), "still in progress");
    let tally = stop(task, &signal).await;
    assert_eq!(handler.count(key), 1);
    assert_eq!(tally.delivered, 1, "finished within the grace period");
    assert_eq!(
        pipeline.depth(&pipeline.queue.url).await,
        (0, 0),
        "and deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_at_start_is_retried_and_a_missing_queue_fails_at_once() {
    let pipeline = Pipeline::new(30).await;
    pipeline.put("acme/c1/app/pod/ok-1.json.gz").await;
    let proxy = logrelay_testkit::FaultProxy::start(Moto::shared().await.url())
        .await
        .expect("proxy");
    let through_proxy = |url: &str| {
        let config = pipeline.config.to_builder().endpoint_url(url).build();
        aws_sdk_sqs::Client::new(&config)
    };
    proxy.fail_next(2, logrelay_testkit::FaultKind::Throttling);
    let handler = Arc::new(RecordingHandler::default());
    let intake = SqsIntake::new(
        through_proxy(&proxy.url()),
        handler.clone(),
        SqsSettings::new(&pipeline.queue.url),
    );
    let signal = Arc::new(Notify::new());
    let task = spawn(intake, signal.clone());
    handler.wait_for("acme/c1/app/pod/ok-1.json.gz", 1).await;
    stop(task, &signal).await;
    assert_eq!(proxy.faults_injected(), 2);

    let missing = SqsIntake::new(
        through_proxy(&proxy.url()),
        Arc::new(RecordingHandler::default()),
        SqsSettings::new(format!("{}-missing", pipeline.queue.url)),
    );
    let started = std::time::Instant::now();
    let error = missing
        .run(std::future::pending::<()>())
        .await
        .expect_err("a missing queue stops the poller");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "not retried: {:?}",
        started.elapsed()
    );
    assert!(error.to_string().contains("-missing"), "{error}");
}
