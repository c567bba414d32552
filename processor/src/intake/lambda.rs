//! The Lambda entry point: an SQS event source mapping with `ReportBatchItemFailures` invokes the
//! function with up to N messages; their objects are processed concurrently (bounded) and the
//! response lists in `batchItemFailures` exactly the messages whose outcome is not final, so Lambda
//! deletes the others and only those come back.
//!
//! Permanent failures are dead-lettered at once (see [`dead_letter`](crate::intake::dead_letter)):
//! forwarded to `DLQ_URL` when set, then reported as done. If forwarding fails the message is
//! reported as failed, so it comes back and the queue's redrive policy still catches it.
//! After each invocation the metrics are written as EMF lines (per-tenant counters).
//!
//! Records are started only while more than a margin is left before the invocation's deadline
//! ([`deadline`](crate::intake::deadline)); the others are reported as failures and come back.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};

use crate::intake::dead_letter::DeadLetterQueue;
use crate::intake::deadline::{Clock, DEFAULT_DEADLINE_MARGIN, Deadline, SystemClock};
use crate::intake::event::{BodySource, parse_body};
use crate::intake::message::{Tally, process_items};
use crate::intake::settle::{QueuedMessage, settle};
use crate::object::ObjectHandler;
use crate::telemetry::InternalEvent;
use crate::telemetry::emf::EmfHandle;
use crate::telemetry::intake::MessagesNotStarted;
use std::time::Duration;

/// Default number of messages processed at once (Lambda's default SQS batch size is 10).
pub const DEFAULT_MAX_CONCURRENCY: usize = 10;

/// An invocation that cannot be answered with a partial batch response.
#[derive(Debug, thiserror::Error)]
pub enum LambdaHandlerError {
    /// A failed record has no message id, so it cannot be reported on its own.
    #[error(
        "SQS record {index} failed but has no messageId to report; failing the whole batch so nothing is lost"
    )]
    MissingMessageId {
        /// Position of the record in the event.
        index: usize,
    },
}

impl From<LambdaHandlerError> for Diagnostic {
    fn from(error: LambdaHandlerError) -> Self {
        let error_type = match error {
            LambdaHandlerError::MissingMessageId { .. } => "logrelay.MissingMessageId",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// What one record came to.
struct RecordResult {
    index: usize,
    message_id: Option<String>,
    is_final: bool,
    /// Not started because the deadline was near (comes back).
    not_started: bool,
    tally: Tally,
}

impl RecordResult {
    /// A record passed over because the deadline was near: it must come back.
    fn not_started(index: usize, message_id: Option<String>) -> Self {
        let mut tally = Tally::default();
        tally.messages += 1;
        tally.retried += 1;
        Self {
            index,
            message_id,
            is_final: false,
            not_started: true,
            tally,
        }
    }
}

/// The Lambda intake over any [`ObjectHandler`].
pub struct LambdaIntake<H> {
    handler: Arc<H>,
    dead_letter: Option<DeadLetterQueue>,
    max_concurrency: usize,
    metrics: Option<EmfHandle>,
    clock: Arc<dyn Clock>,
    deadline_margin: Duration,
}

impl<H: ObjectHandler + 'static> LambdaIntake<H> {
    /// An intake driving `handler`, [`DEFAULT_MAX_CONCURRENCY`] messages at a time, no DLQ, no EMF.
    pub fn new(handler: Arc<H>) -> Self {
        Self {
            handler,
            dead_letter: None,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            metrics: None,
            clock: Arc::new(SystemClock),
            deadline_margin: DEFAULT_DEADLINE_MARGIN,
        }
    }

    /// Reads the time from `clock` (tests use a fake one).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Starts no record with less than `margin` left before the invocation's deadline.
    pub fn with_deadline_margin(mut self, margin: Duration) -> Self {
        self.deadline_margin = margin;
        self
    }

    /// Forwards permanently failed messages to `queue` before acknowledging them.
    pub fn with_dead_letter_queue(mut self, queue: Option<DeadLetterQueue>) -> Self {
        self.dead_letter = queue;
        self
    }

    /// Processes at most `n` (≥ 1) messages at once.
    pub fn with_max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.max(1);
        self
    }

    /// Writes the metrics as EMF lines to stdout after each invocation.
    pub fn with_metrics(mut self, metrics: EmfHandle) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Processes one SQS event without a deadline; the response names every message that must
    /// come back.
    pub async fn handle_batch(
        &self,
        event: SqsEvent,
    ) -> Result<SqsBatchResponse, LambdaHandlerError> {
        self.handle_batch_until(event, None).await
    }

    /// Processes one SQS event, starting records only while `deadline` allows; the response names
    /// every message that must come back, the ones not started included.
    pub async fn handle_batch_until(
        &self,
        event: SqsEvent,
        deadline: Option<Deadline>,
    ) -> Result<SqsBatchResponse, LambdaHandlerError> {
        let mut results: Vec<RecordResult> =
            futures::stream::iter(event.records.into_iter().enumerate())
                .map(|(index, record)| self.start_record(index, record, deadline))
                .buffer_unordered(self.max_concurrency)
                .collect()
                .await;
        results.sort_by_key(|r| r.index);
        self.report_not_started(&results, deadline);
        let mut tally = Tally::default();
        let mut response = SqsBatchResponse::default();
        let mut missing_id = None;
        for result in &results {
            tally.merge(&result.tally);
            if result.is_final {
                continue;
            }
            match &result.message_id {
                Some(id) if !id.is_empty() => {
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = id.clone();
                    response.batch_item_failures.push(failure);
                }
                _ => missing_id = missing_id.or(Some(result.index)),
            }
        }
        tracing::info!(
            messages = tally.messages,
            failed_messages = response.batch_item_failures.len(),
            summary = %tally,
            "invocation done"
        );
        if let Some(metrics) = &self.metrics {
            metrics.flush_to_stdout();
        }
        match missing_id {
            Some(index) => Err(LambdaHandlerError::MissingMessageId { index }),
            None => Ok(response),
        }
    }

    /// Runs the Lambda runtime loop (reads `AWS_LAMBDA_RUNTIME_API` and the function's env) until
    /// the runtime API fails.
    pub async fn run(self) -> Result<(), lambda_runtime::Error> {
        let intake = Arc::new(self);
        lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
            let intake = intake.clone();
            let deadline =
                Deadline::from_epoch_millis(event.context.deadline, intake.deadline_margin);
            async move { intake.handle_batch_until(event.payload, deadline).await }
        }))
        .await
    }

    /// Processes one record, unless the deadline is too near to start it.
    async fn start_record(
        &self,
        index: usize,
        record: SqsMessage,
        deadline: Option<Deadline>,
    ) -> RecordResult {
        match deadline {
            Some(deadline) if !deadline.allows_start(self.clock.now()) => {
                RecordResult::not_started(index, record.message_id)
            }
            _ => self.process_record(index, record).await,
        }
    }

    /// Emits one event for the records passed over in this invocation, if any.
    fn report_not_started(&self, results: &[RecordResult], deadline: Option<Deadline>) {
        let count = results.iter().filter(|r| r.not_started).count();
        if let (true, Some(deadline)) = (count > 0, deadline) {
            MessagesNotStarted {
                count,
                left: deadline.left(self.clock.now()),
            }
            .emit();
        }
    }

    /// Processes one record and decides whether it is done.
    async fn process_record(&self, index: usize, record: SqsMessage) -> RecordResult {
        let message_id = record.message_id.clone();
        let id = message_id.as_deref().unwrap_or("");
        let body = record.body.as_deref().unwrap_or("");
        let outcome = process_items(&*self.handler, parse_body(body, BodySource::Queue), id).await;
        let disposition = outcome.disposition();
        let message = QueuedMessage {
            id,
            source_id: message_id.as_deref(),
            body,
        };
        let is_final = settle(&disposition, self.dead_letter.as_ref(), message).await;
        let mut tally = Tally::default();
        tally.record_message(&outcome);
        if is_final {
            tally.record_disposition(&disposition);
        } else {
            tally.retried += 1;
        }
        RecordResult {
            index,
            message_id,
            is_final,
            not_started: false,
            tally,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::message::tests::KeyedHandler;
    use serde_json::json;

    fn s3_body(key: &str) -> String {
        json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "eventTime": "2024-01-02T03:04:05.000Z",
            "s3": {"bucket": {"name": "central"}, "object": {"key": key, "size": 1}}
        }]})
        .to_string()
    }

    fn event(records: &[(Option<&str>, String)]) -> SqsEvent {
        let records: Vec<_> = records
            .iter()
            .map(|(id, body)| json!({"messageId": id, "body": body, "eventSource": "aws:sqs"}))
            .collect();
        serde_json::from_value(json!({ "Records": records })).expect("valid SQS event")
    }

    fn failed_ids(response: &SqsBatchResponse) -> Vec<&str> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    #[tokio::test]
    async fn only_transiently_failed_messages_are_reported() {
        let handler = Arc::new(KeyedHandler::default());
        let intake = LambdaIntake::new(handler.clone()).with_max_concurrency(2);
        let batch = event(&[
            (Some("m-ok"), s3_body("a%2Fok")),
            (Some("m-transient"), s3_body("a%2Ftransient-1")),
            (Some("m-permanent"), s3_body("a%2Fpermanent-1")),
            (Some("m-skip"), s3_body("a%2Fskip-1")),
            (Some("m-bad"), "{not json".to_owned()),
            (Some("m-transient-2"), s3_body("a%2Ftransient-2")),
        ]);
        let response = intake
            .handle_batch(batch)
            .await
            .expect("partial batch response");
        assert_eq!(failed_ids(&response), ["m-transient", "m-transient-2"]);
        assert_eq!(
            handler.seen.lock().expect("lock").len(),
            5,
            "every object handled once"
        );
    }

    #[tokio::test]
    async fn a_failed_record_without_message_id_fails_the_whole_batch() {
        let intake = LambdaIntake::new(Arc::new(KeyedHandler::default()));
        let error = intake
            .handle_batch(event(&[
                (Some("m1"), s3_body("ok")),
                (None, s3_body("transient")),
            ]))
            .await
            .expect_err("cannot report a record without id");
        assert!(matches!(
            error,
            LambdaHandlerError::MissingMessageId { index: 1 }
        ));
        assert_eq!(
            Diagnostic::from(error).error_type,
            "logrelay.MissingMessageId"
        );
    }

    #[tokio::test]
    async fn a_successful_record_without_message_id_is_fine() {
        let intake = LambdaIntake::new(Arc::new(KeyedHandler::default()));
        let response = intake
            .handle_batch(event(&[(None, s3_body("ok"))]))
            .await
            .expect("ok");
        assert!(response.batch_item_failures.is_empty());
    }

    #[tokio::test]
    async fn concurrency_is_bounded() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        #[derive(Default)]
        struct Slow {
            running: AtomicUsize,
            peak: AtomicUsize,
        }
        impl ObjectHandler for Slow {
            async fn handle(&self, _: &crate::object::ObjectRef) -> crate::object::Outcome {
                let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                self.running.fetch_sub(1, Ordering::SeqCst);
                crate::object::Outcome::Delivered(Default::default())
            }
        }
        let handler = Arc::new(Slow::default());
        let intake = LambdaIntake::new(handler.clone()).with_max_concurrency(3);
        let records: Vec<_> = (0..10)
            .map(|i| (Some("m"), s3_body(&format!("k{i}"))))
            .collect();
        let ids: Vec<(Option<&str>, String)> = records;
        intake.handle_batch(event(&ids)).await.expect("ok");
        assert_eq!(handler.peak.load(Ordering::SeqCst), 3);
    }

    /// A clock the test moves by hand.
    struct FakeClock(std::sync::Mutex<std::time::SystemTime>);

    impl FakeClock {
        fn advance(&self, by: Duration) {
            if let Ok(mut now) = self.0.lock() {
                *now += by;
            }
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> std::time::SystemTime {
            self.0
                .lock()
                .map(|now| *now)
                .unwrap_or(std::time::UNIX_EPOCH)
        }
    }

    /// Each object takes 10 s of the fake clock.
    struct TenSecondObjects {
        clock: Arc<FakeClock>,
        handled: std::sync::atomic::AtomicUsize,
    }

    impl ObjectHandler for TenSecondObjects {
        async fn handle(&self, _: &crate::object::ObjectRef) -> crate::object::Outcome {
            self.clock.advance(Duration::from_secs(10));
            self.handled
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            crate::object::Outcome::Delivered(Default::default())
        }
    }

    #[tokio::test]
    async fn records_are_not_started_near_the_deadline_and_come_back() {
        let start = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let clock = Arc::new(FakeClock(std::sync::Mutex::new(start)));
        let handler = Arc::new(TenSecondObjects {
            clock: clock.clone(),
            handled: Default::default(),
        });
        let intake = LambdaIntake::new(handler.clone())
            .with_max_concurrency(1)
            .with_clock(clock.clone());
        let ids = ["m0", "m1", "m2", "m3", "m4"];
        let records: Vec<_> = ids
            .iter()
            .map(|id| (Some(*id), s3_body(&format!("a%2F{id}"))))
            .collect();
        // 35 s left, 20 s margin: records start at 0 s and 10 s; at 20 s only 15 s are left.
        let deadline = Deadline::new(start + Duration::from_secs(35), Duration::from_secs(20));
        let response = intake
            .handle_batch_until(event(&records), Some(deadline))
            .await
            .expect("partial batch response");
        assert_eq!(failed_ids(&response), ["m2", "m3", "m4"]);
        assert_eq!(
            handler.handled.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "no object started after the margin was reached"
        );

        let none_left = Deadline::new(
            clock.now() + Duration::from_secs(5),
            DEFAULT_DEADLINE_MARGIN,
        );
        let response = intake
            .handle_batch_until(event(&records[..2]), Some(none_left))
            .await
            .expect("partial batch response");
        assert_eq!(
            failed_ids(&response),
            ["m0", "m1"],
            "nothing started, everything comes back"
        );
        let response = intake
            .handle_batch_until(event(&records[..1]), None)
            .await
            .expect("no deadline: processed");
        assert!(response.batch_item_failures.is_empty());
    }
}
