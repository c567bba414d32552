//! The SQS poller: long-polls `SQS_QUEUE_URL` (20 s, up to 10 messages), processes messages
//! concurrently (bounded), keeps each in-progress message invisible with a visibility heartbeat
//! (`ChangeMessageVisibility`), deletes messages whose outcome is final (permanent failures are
//! forwarded to `DLQ_URL` first when set), and leaves transient failures for redelivery, so the
//! queue's redrive policy moves them to its DLQ after `maxReceiveCount` tries.
//!
//! Shutdown: when the shutdown future completes (SIGTERM/SIGINT in production) no more messages are
//! received; in-flight messages get a grace period to finish. Messages still running after it are
//! abandoned without deletion and become visible again after their visibility timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{Message, QueueAttributeName};
use logrelay_common::aws::AwsError;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::intake::dead_letter::DeadLetterQueue;
use crate::intake::event::{BodySource, parse_body};
use crate::intake::message::{Tally, process_items};
use crate::intake::settle::{QueuedMessage, settle};
use crate::object::ObjectHandler;
use crate::telemetry::InternalEvent;
use crate::telemetry::intake::{QueueCallFailed, VisibilityExtended};

/// Long-poll wait per ReceiveMessage (the SQS maximum, 20 s).
pub const WAIT_TIME_SECONDS: i32 = 20;
/// Messages per ReceiveMessage (the SQS maximum, 10).
pub const MAX_MESSAGES_PER_RECEIVE: usize = 10;
/// Default number of messages processed at once.
pub const DEFAULT_MAX_CONCURRENCY: usize = 10;
/// Default time in-flight messages get to finish after a shutdown signal (Kubernetes'
/// default `terminationGracePeriodSeconds` is 30 s; this leaves room to exit).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(25);
/// Shortest visibility timeout the heartbeat keeps (a queue configured with 0 still gets this).
pub const MIN_VISIBILITY: Duration = Duration::from_secs(1);
/// First pause after a failed ReceiveMessage; doubles up to [`MAX_RECEIVE_BACKOFF`].
const INITIAL_RECEIVE_BACKOFF: Duration = Duration::from_millis(500);
/// Longest pause between failed receives.
const MAX_RECEIVE_BACKOFF: Duration = Duration::from_secs(30);

/// How the poller runs.
#[derive(Debug, Clone)]
pub struct SqsSettings {
    /// The queue to poll.
    pub queue_url: String,
    /// Messages processed at once (≥ 1).
    pub max_concurrency: usize,
    /// Time in-flight messages get after shutdown.
    pub shutdown_grace: Duration,
    /// Visibility timeout kept by the heartbeat; `None` reads the queue's `VisibilityTimeout`.
    pub visibility_timeout: Option<Duration>,
}

impl SqsSettings {
    /// Defaults for `queue_url`.
    pub fn new(queue_url: impl Into<String>) -> Self {
        Self {
            queue_url: queue_url.into(),
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            visibility_timeout: None,
        }
    }
}

/// Attempts to read the queue's attributes at start when AWS answers with throttling or a
/// transient error (5 attempts, pauses 0.5, 1, 2, 4 s: 7.5 s in all).
pub const START_ATTEMPTS: u32 = 5;

/// First pause between those attempts (doubling).
const START_RETRY_BASE: Duration = Duration::from_millis(500);

/// The poller cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SqsIntakeError {
    /// The queue's attributes could not be read at start (missing queue, no access, no network).
    #[error("cannot read the attributes of queue {url}: {source}")]
    QueueUnavailable {
        /// The queue.
        url: String,
        /// Why.
        #[source]
        source: AwsError,
    },
}

/// The SQS poller over any [`ObjectHandler`].
pub struct SqsIntake<H> {
    client: aws_sdk_sqs::Client,
    handler: Arc<H>,
    dead_letter: Option<DeadLetterQueue>,
    settings: SqsSettings,
    on_polling: Option<Box<dyn FnOnce() + Send + Sync>>,
}

/// What every message task needs.
struct MessageContext<H> {
    client: aws_sdk_sqs::Client,
    handler: Arc<H>,
    dead_letter: Option<DeadLetterQueue>,
    queue_url: String,
    visibility: Duration,
}

impl<H: ObjectHandler + 'static> SqsIntake<H> {
    /// A poller of `settings.queue_url` driving `handler`.
    pub fn new(client: aws_sdk_sqs::Client, handler: Arc<H>, settings: SqsSettings) -> Self {
        Self {
            client,
            handler,
            dead_letter: None,
            settings,
            on_polling: None,
        }
    }

    /// Calls `f` once the queue answered and polling starts (readiness).
    pub fn on_polling(mut self, f: impl FnOnce() + Send + Sync + 'static) -> Self {
        self.on_polling = Some(Box::new(f));
        self
    }

    /// Forwards permanently failed messages to `queue` before deleting them.
    pub fn with_dead_letter_queue(mut self, queue: Option<DeadLetterQueue>) -> Self {
        self.dead_letter = queue;
        self
    }

    /// Polls until `shutdown` completes, then drains in-flight messages within the grace period.
    /// Returns the counts of everything processed.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Tally, SqsIntakeError> {
        let visibility = match self.settings.visibility_timeout {
            Some(timeout) => timeout,
            None => self.queue_visibility_timeout().await?,
        }
        .max(MIN_VISIBILITY);
        let max_concurrency = self.settings.max_concurrency.max(1);
        tracing::info!(
            queue_url = %self.settings.queue_url,
            visibility_timeout_s = visibility.as_secs(),
            max_concurrency,
            dead_letter_queue = self.dead_letter.as_ref().map(DeadLetterQueue::url),
            "polling SQS"
        );
        if let Some(on_polling) = self.on_polling.take() {
            on_polling();
        }
        let context = Arc::new(MessageContext {
            client: self.client.clone(),
            handler: self.handler.clone(),
            dead_letter: self.dead_letter.clone(),
            queue_url: self.settings.queue_url.clone(),
            visibility,
        });
        let permits = Arc::new(Semaphore::new(max_concurrency));
        let mut tasks: JoinSet<Tally> = JoinSet::new();
        let mut tally = Tally::default();
        let mut backoff = INITIAL_RECEIVE_BACKOFF;
        tokio::pin!(shutdown);
        loop {
            while let Some(done) = tasks.try_join_next() {
                merge_task(&mut tally, done);
            }
            let available = permits.available_permits();
            if available == 0 {
                tokio::select! {
                    () = &mut shutdown => break,
                    Some(done) = tasks.join_next() => merge_task(&mut tally, done),
                }
                continue;
            }
            let wanted = available.min(MAX_MESSAGES_PER_RECEIVE);
            let received = tokio::select! {
                () = &mut shutdown => break,
                received = self.receive(wanted) => received,
            };
            match received {
                Ok(messages) => {
                    backoff = INITIAL_RECEIVE_BACKOFF;
                    for message in messages {
                        let Ok(permit) = permits.clone().acquire_owned().await else {
                            break;
                        };
                        let context = context.clone();
                        tasks.spawn(async move {
                            let tally = process_message(&context, message).await;
                            drop(permit);
                            tally
                        });
                    }
                }
                Err(error) => {
                    QueueCallFailed {
                        operation: "receive",
                        message_id: None,
                        error: &error,
                    }
                    .emit();
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_RECEIVE_BACKOFF);
                }
            }
        }
        tracing::info!(
            in_flight = tasks.len(),
            grace_s = self.settings.shutdown_grace.as_secs_f64(),
            "stopped receiving; draining"
        );
        let drain = async {
            while let Some(done) = tasks.join_next().await {
                merge_task(&mut tally, done);
            }
        };
        if tokio::time::timeout(self.settings.shutdown_grace, drain)
            .await
            .is_err()
        {
            tracing::warn!(
                abandoned = tasks.len(),
                "grace period over; abandoning in-flight messages (they reappear after their visibility timeout)"
            );
            tasks.abort_all();
        }
        tracing::info!(summary = %tally, "SQS intake stopped");
        Ok(tally)
    }

    /// The queue's `VisibilityTimeout` (also proves at start that the queue is reachable).
    /// Throttling and transient errors are retried ([`START_ATTEMPTS`], backing off): a busy
    /// queue must not stop the poller from starting; a missing queue or refused access fails
    /// at once.
    async fn queue_visibility_timeout(&self) -> Result<Duration, SqsIntakeError> {
        let mut attempt = 1;
        let output = loop {
            let result = self
                .client
                .get_queue_attributes()
                .queue_url(&self.settings.queue_url)
                .attribute_names(QueueAttributeName::VisibilityTimeout)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("sqs:GetQueueAttributes", e));
            match result {
                Ok(output) => break output,
                Err(error) if error.is_retryable() && attempt < START_ATTEMPTS => {
                    let pause = START_RETRY_BASE * 2u32.pow(attempt - 1);
                    tracing::warn!(%error, attempt, retry_in = ?pause, "queue not reachable yet; retrying");
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                Err(source) => {
                    return Err(SqsIntakeError::QueueUnavailable {
                        url: self.settings.queue_url.clone(),
                        source,
                    });
                }
            }
        };
        let seconds = output
            .attributes
            .and_then(|attributes| {
                attributes
                    .get(&QueueAttributeName::VisibilityTimeout)
                    .cloned()
            })
            .and_then(|value| value.parse::<u64>().ok())
            // SQS's default visibility timeout when the attribute is somehow missing.
            .unwrap_or(30);
        Ok(Duration::from_secs(seconds))
    }

    /// One long poll for up to `wanted` messages.
    async fn receive(&self, wanted: usize) -> Result<Vec<Message>, AwsError> {
        let wanted = i32::try_from(wanted.min(MAX_MESSAGES_PER_RECEIVE)).unwrap_or(1);
        let output = self
            .client
            .receive_message()
            .queue_url(&self.settings.queue_url)
            .max_number_of_messages(wanted)
            .wait_time_seconds(WAIT_TIME_SECONDS)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sqs:ReceiveMessage", e))?;
        Ok(output.messages.unwrap_or_default())
    }
}

/// Adds a finished task's counts (a panicked or aborted task counts nothing; its message returns).
fn merge_task(tally: &mut Tally, done: Result<Tally, tokio::task::JoinError>) {
    match done {
        Ok(task_tally) => tally.merge(&task_tally),
        Err(error) => {
            tracing::error!(%error, "message task failed; the message will be redelivered")
        }
    }
}

/// Processes one message with a visibility heartbeat, then deletes, dead-letters or leaves it.
async fn process_message<H: ObjectHandler>(context: &MessageContext<H>, message: Message) -> Tally {
    let id = message.message_id.as_deref().unwrap_or("");
    let body = message.body.as_deref().unwrap_or("");
    let Some(receipt) = message.receipt_handle.as_deref() else {
        tracing::error!(
            message_id = id,
            "message without receipt handle; cannot acknowledge it, skipping"
        );
        return Tally::default();
    };
    let work = process_items(&*context.handler, parse_body(body, BodySource::Queue), id);
    let outcome = tokio::select! {
        outcome = work => outcome,
        never = heartbeat(context, id, receipt) => match never {},
    };
    let disposition = outcome.disposition();
    let mut tally = Tally::default();
    tally.record_message(&outcome);
    let message = QueuedMessage {
        id,
        source_id: Some(id),
        body,
    };
    let delete = settle(&disposition, context.dead_letter.as_ref(), message).await;
    if delete {
        tally.record_disposition(&disposition);
        let deleted = context
            .client
            .delete_message()
            .queue_url(&context.queue_url)
            .receipt_handle(receipt)
            .send()
            .await;
        if let Err(error) = deleted {
            // The message comes back; delivery progress makes the redelivery a cheap no-op.
            let error = AwsError::from_sdk("sqs:DeleteMessage", error);
            QueueCallFailed {
                operation: "delete",
                message_id: Some(id),
                error: &error,
            }
            .emit();
        }
    } else {
        tally.retried += 1;
    }
    tally
}

/// Keeps a message invisible while it is processed: every third of the visibility timeout, sets
/// it to the full timeout again. Never completes.
async fn heartbeat<H>(
    context: &MessageContext<H>,
    id: &str,
    receipt: &str,
) -> std::convert::Infallible {
    let period = context.visibility / 3;
    let seconds = i32::try_from(context.visibility.as_secs()).unwrap_or(i32::MAX);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        ticker.tick().await;
        let extended = context
            .client
            .change_message_visibility()
            .queue_url(&context.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds)
            .send()
            .await;
        match extended {
            Ok(_) => VisibilityExtended {
                message_id: id,
                seconds,
            }
            .emit(),
            Err(error) => {
                // E.g. the 12 h maximum was reached: processing goes on; a redelivery may overlap.
                let error = AwsError::from_sdk("sqs:ChangeMessageVisibility", error);
                QueueCallFailed {
                    operation: "change_visibility",
                    message_id: Some(id),
                    error: &error,
                }
                .emit();
            }
        }
    }
}
