//! Internal events of the intakes: bodies rejected, test events and other S3 events acknowledged,
//! what became of each message (acknowledged, retried, dead-lettered), and failed queue calls.
//! Object outcomes are the core's events (`events.rs`).

use super::InternalEvent;
use crate::intake::event::BodyError;
use metrics::counter;

/// Messages by what became of them: `disposition` = `acknowledged` | `retry` | `dead_letter`.
pub const MESSAGES_TOTAL: &str = "logrelay_processor_messages_total";
/// Bodies that could not be read, by `reason` (`malformed_json`, `unknown_shape`, `bad_notification_key`, …).
pub const BODIES_REJECTED_TOTAL: &str = "logrelay_processor_bodies_rejected_total";
/// `s3:TestEvent`s acknowledged.
pub const TEST_EVENTS_TOTAL: &str = "logrelay_processor_test_events_total";
/// Non-creation S3 events skipped (deletes, restores, tag changes).
pub const EVENTS_IGNORED_TOTAL: &str = "logrelay_processor_events_ignored_total";
/// Messages dead-lettered, by `reason` and `forwarded` (`true` when sent to `DLQ_URL`).
pub const DEAD_LETTERED_TOTAL: &str = "logrelay_processor_messages_dead_lettered_total";
/// Failed SQS calls, by `operation` (`receive`, `delete`, `change_visibility`, `dlq_send`).
pub const QUEUE_ERRORS_TOTAL: &str = "logrelay_processor_queue_errors_total";
/// Visibility extensions sent for messages still in progress.
pub const VISIBILITY_EXTENSIONS_TOTAL: &str = "logrelay_processor_visibility_extensions_total";

/// Messages a Lambda invocation did not start because its deadline was near (reported as batch
/// item failures, so they come back).
pub const MESSAGES_NOT_STARTED_TOTAL: &str = "logrelay_processor_messages_not_started_total";

/// A Lambda invocation left messages unstarted because too little time was left.
pub struct MessagesNotStarted {
    /// How many.
    pub count: usize,
    /// Time left before the deadline when the first was passed over.
    pub left: std::time::Duration,
}

impl InternalEvent for MessagesNotStarted {
    fn emit(self) {
        tracing::warn!(
            count = self.count,
            left_ms = u64::try_from(self.left.as_millis()).unwrap_or(u64::MAX),
            "deadline near: messages not started are reported as failures and come back"
        );
        counter!(MESSAGES_NOT_STARTED_TOTAL).increment(self.count as u64);
    }
}

/// A body could not be read; the message is dead-lettered.
pub struct BodyRejected<'a> {
    /// The message (or manual entry) id.
    pub message_id: &'a str,
    /// Why.
    pub error: &'a BodyError,
}

impl InternalEvent for BodyRejected<'_> {
    fn emit(self) {
        tracing::warn!(message_id = self.message_id, reason = self.error.reason(), error = %self.error, "unreadable message body");
        counter!(BODIES_REJECTED_TOTAL, "reason" => self.error.reason()).increment(1);
    }
}

/// An `s3:TestEvent` was acknowledged.
pub struct TestEventAcknowledged<'a> {
    /// The message id.
    pub message_id: &'a str,
    /// The bucket the event names.
    pub bucket: Option<&'a str>,
}

impl InternalEvent for TestEventAcknowledged<'_> {
    fn emit(self) {
        tracing::info!(
            message_id = self.message_id,
            bucket = self.bucket,
            "s3:TestEvent acknowledged"
        );
        counter!(TEST_EVENTS_TOTAL).increment(1);
    }
}

/// An S3 event other than object creation was skipped.
pub struct EventIgnored<'a> {
    /// The message id.
    pub message_id: &'a str,
    /// The event's name (logged, not a label: it comes from outside).
    pub event_name: &'a str,
}

impl InternalEvent for EventIgnored<'_> {
    fn emit(self) {
        tracing::debug!(
            message_id = self.message_id,
            event_name = self.event_name,
            "non-creation event skipped"
        );
        counter!(EVENTS_IGNORED_TOTAL).increment(1);
    }
}

/// A message was fully processed and acknowledged.
pub struct MessageAcknowledged<'a> {
    /// The message id.
    pub message_id: &'a str,
}

impl InternalEvent for MessageAcknowledged<'_> {
    fn emit(self) {
        tracing::debug!(message_id = self.message_id, "message acknowledged");
        counter!(MESSAGES_TOTAL, "disposition" => "acknowledged").increment(1);
    }
}

/// A message is left for redelivery after a transient failure.
pub struct MessageRetried<'a> {
    /// The message id.
    pub message_id: &'a str,
    /// The first transient failure's label.
    pub reason: &'static str,
}

impl InternalEvent for MessageRetried<'_> {
    fn emit(self) {
        tracing::warn!(
            message_id = self.message_id,
            reason = self.reason,
            "transient failure; message left for redelivery"
        );
        counter!(MESSAGES_TOTAL, "disposition" => "retry").increment(1);
    }
}

/// A message failed permanently and was dead-lettered.
pub struct MessageDeadLettered<'a> {
    /// The message id.
    pub message_id: &'a str,
    /// The failure's label.
    pub reason: &'static str,
    /// The error(s).
    pub error: &'a str,
    /// Whether it was forwarded to the configured DLQ (false: none configured, only acknowledged).
    pub forwarded: bool,
}

impl InternalEvent for MessageDeadLettered<'_> {
    fn emit(self) {
        tracing::error!(
            message_id = self.message_id,
            reason = self.reason,
            error = self.error,
            forwarded_to_dlq = self.forwarded,
            "permanent failure; message dead-lettered"
        );
        counter!(MESSAGES_TOTAL, "disposition" => "dead_letter").increment(1);
        let forwarded = if self.forwarded { "true" } else { "false" };
        counter!(DEAD_LETTERED_TOTAL, "reason" => self.reason, "forwarded" => forwarded)
            .increment(1);
    }
}

/// An SQS call of an intake failed.
pub struct QueueCallFailed<'a> {
    /// `receive`, `delete`, `change_visibility` or `dlq_send`.
    pub operation: &'static str,
    /// The message concerned, if any.
    pub message_id: Option<&'a str>,
    /// The error.
    pub error: &'a dyn std::fmt::Display,
}

impl InternalEvent for QueueCallFailed<'_> {
    fn emit(self) {
        tracing::warn!(operation = self.operation, message_id = self.message_id, error = %self.error, "SQS call failed");
        counter!(QUEUE_ERRORS_TOTAL, "operation" => self.operation).increment(1);
    }
}

/// A message's visibility was extended while its objects are in progress.
pub struct VisibilityExtended<'a> {
    /// The message id.
    pub message_id: &'a str,
    /// The new timeout from now, in seconds.
    pub seconds: i32,
}

impl InternalEvent for VisibilityExtended<'_> {
    fn emit(self) {
        tracing::debug!(
            message_id = self.message_id,
            seconds = self.seconds,
            "visibility extended"
        );
        counter!(VISIBILITY_EXTENSIONS_TOTAL).increment(1);
    }
}
