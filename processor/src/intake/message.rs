//! One notification message through the handler: every object it announces is handed to the
//! [`ObjectHandler`] in turn, and the outcomes decide the message's fate ([`Disposition`]):
//! acknowledge it, leave it for redelivery, or dead-letter it. Shared by every intake, so Lambda,
//! the SQS poller and manual runs treat the same message the same way.

use std::fmt;

use crate::intake::event::{BodyError, IntakeItem};
use crate::object::{FailureKind, ObjectHandler, ObjectRef, Outcome};
use crate::telemetry::InternalEvent;
use crate::telemetry::intake::{BodyRejected, EventIgnored, TestEventAcknowledged};

/// Longest error text carried into a dead-letter attribute (whole messages stay in the logs).
pub const MAX_ERROR_CHARS: usize = 1024;

/// One announced object and what became of it.
#[derive(Debug)]
pub struct ObjectResult {
    /// The object.
    pub object: ObjectRef,
    /// What the handler made of it.
    pub outcome: Outcome,
}

/// What became of everything one message announced.
#[derive(Debug, Default)]
pub struct MessageOutcome {
    /// Objects handed to the handler, in announcement order.
    pub objects: Vec<ObjectResult>,
    /// `s3:TestEvent`s acknowledged.
    pub test_events: u64,
    /// Events that are not object creations, skipped.
    pub ignored_events: u64,
    /// Why the body could not be read, if it could not.
    pub body_error: Option<BodyError>,
}

/// What to do with a message once its objects are processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Everything is done (delivered, skipped or nothing to do): delete the message.
    Acknowledge,
    /// Something failed transiently: leave the message for redelivery.
    Retry {
        /// The first transient failure's metric label.
        reason: &'static str,
    },
    /// Something failed permanently (and nothing transiently): dead-letter, then delete.
    DeadLetter(DeadLetterCause),
}

/// Why a message is dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterCause {
    /// Stable metric label of the (first) permanent failure.
    pub reason: &'static str,
    /// Human-readable error(s), at most [`MAX_ERROR_CHARS`] characters.
    pub error: String,
}

impl MessageOutcome {
    /// The message's fate: a transient failure anywhere means retry (redelivery resumes where
    /// delivery stopped); otherwise a permanent failure or an unreadable body means dead-letter.
    pub fn disposition(&self) -> Disposition {
        if let Some(error) = &self.body_error {
            return Disposition::DeadLetter(DeadLetterCause {
                reason: error.reason(),
                error: shorten(&error.to_string()),
            });
        }
        let mut permanent = Vec::new();
        for result in &self.objects {
            if let Outcome::Failed { kind, error } = &result.outcome {
                match kind {
                    FailureKind::Transient => {
                        return Disposition::Retry {
                            reason: error.reason(),
                        };
                    }
                    FailureKind::Permanent => permanent.push((result, error)),
                }
            }
        }
        match permanent.first() {
            None => Disposition::Acknowledge,
            Some((_, first)) => {
                let text = permanent
                    .iter()
                    .map(|(result, error)| {
                        format!(
                            "s3://{}/{}: {error}",
                            result.object.bucket, result.object.key
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                Disposition::DeadLetter(DeadLetterCause {
                    reason: first.reason(),
                    error: shorten(&text),
                })
            }
        }
    }
}

/// Hands every object of a parsed body to `handler`, one after another, and counts the rest.
/// `message_id` only labels logs.
pub async fn process_items<H: ObjectHandler>(
    handler: &H,
    parsed: Result<Vec<IntakeItem>, BodyError>,
    message_id: &str,
) -> MessageOutcome {
    let mut outcome = MessageOutcome::default();
    let items = match parsed {
        Ok(items) => items,
        Err(error) => {
            BodyRejected {
                message_id,
                error: &error,
            }
            .emit();
            outcome.body_error = Some(error);
            return outcome;
        }
    };
    for item in items {
        match item {
            IntakeItem::Object(object) => {
                let result = handler.handle(&object).await;
                outcome.objects.push(ObjectResult {
                    object,
                    outcome: result,
                });
            }
            IntakeItem::TestEvent { bucket } => {
                TestEventAcknowledged {
                    message_id,
                    bucket: bucket.as_deref(),
                }
                .emit();
                outcome.test_events += 1;
            }
            IntakeItem::Ignored { event_name } => {
                EventIgnored {
                    message_id,
                    event_name: &event_name,
                }
                .emit();
                outcome.ignored_events += 1;
            }
        }
    }
    outcome
}

/// Counts over many messages and objects, for summaries and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Messages (or manual entries) read.
    pub messages: u64,
    /// Messages acknowledged (deleted / not reported as failed).
    pub acknowledged: u64,
    /// Messages left for redelivery.
    pub retried: u64,
    /// Messages dead-lettered (forwarded when a DLQ is configured) and acknowledged.
    pub dead_lettered: u64,
    /// Objects handed to the handler.
    pub objects: u64,
    /// Objects delivered.
    pub delivered: u64,
    /// Objects acknowledged without delivery (duplicates, nothing wanted).
    pub skipped: u64,
    /// Objects that failed transiently.
    pub failed_transient: u64,
    /// Objects that failed permanently.
    pub failed_permanent: u64,
    /// `s3:TestEvent`s acknowledged.
    pub test_events: u64,
    /// Non-creation events skipped.
    pub ignored_events: u64,
    /// Bodies that could not be read.
    pub bad_bodies: u64,
}

impl Tally {
    /// Counts one object's outcome.
    pub fn record_outcome(&mut self, outcome: &Outcome) {
        self.objects += 1;
        match outcome {
            Outcome::Delivered(_) => self.delivered += 1,
            Outcome::Skipped(_) => self.skipped += 1,
            Outcome::Failed {
                kind: FailureKind::Transient,
                ..
            } => self.failed_transient += 1,
            Outcome::Failed {
                kind: FailureKind::Permanent,
                ..
            } => self.failed_permanent += 1,
        }
    }

    /// Counts one message's objects and events (not its disposition).
    pub fn record_message(&mut self, message: &MessageOutcome) {
        self.messages += 1;
        for result in &message.objects {
            self.record_outcome(&result.outcome);
        }
        self.test_events += message.test_events;
        self.ignored_events += message.ignored_events;
        self.bad_bodies += u64::from(message.body_error.is_some());
    }

    /// Counts a message's disposition.
    pub fn record_disposition(&mut self, disposition: &Disposition) {
        match disposition {
            Disposition::Acknowledge => self.acknowledged += 1,
            Disposition::Retry { .. } => self.retried += 1,
            Disposition::DeadLetter(_) => self.dead_lettered += 1,
        }
    }

    /// Adds another tally to this one.
    pub fn merge(&mut self, other: &Tally) {
        self.messages += other.messages;
        self.acknowledged += other.acknowledged;
        self.retried += other.retried;
        self.dead_lettered += other.dead_lettered;
        self.objects += other.objects;
        self.delivered += other.delivered;
        self.skipped += other.skipped;
        self.failed_transient += other.failed_transient;
        self.failed_permanent += other.failed_permanent;
        self.test_events += other.test_events;
        self.ignored_events += other.ignored_events;
        self.bad_bodies += other.bad_bodies;
    }

    /// Objects that failed plus bodies that could not be read.
    pub fn failures(&self) -> u64 {
        self.failed_transient + self.failed_permanent + self.bad_bodies
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "objects {} (delivered {}, skipped {}, failed {}: {} transient, {} permanent), \
             test events {}, ignored events {}, unreadable bodies {}",
            self.objects,
            self.delivered,
            self.skipped,
            self.failed_transient + self.failed_permanent,
            self.failed_transient,
            self.failed_permanent,
            self.test_events,
            self.ignored_events,
            self.bad_bodies
        )
    }
}

/// `text` cut to [`MAX_ERROR_CHARS`] characters.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_ERROR_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::ProcessError;
    use crate::object::{DeliveryReport, SkipReason};
    use std::sync::Mutex;

    /// A handler whose outcome depends on the key: `transient*`, `permanent*`, `skip*`, else delivered.
    /// Records every object it saw.
    #[derive(Default)]
    pub(crate) struct KeyedHandler {
        pub(crate) seen: Mutex<Vec<ObjectRef>>,
    }

    impl ObjectHandler for KeyedHandler {
        async fn handle(&self, object: &ObjectRef) -> Outcome {
            if let Ok(mut seen) = self.seen.lock() {
                seen.push(object.clone());
            }
            outcome_for_key(&object.key)
        }
    }

    /// The outcome [`KeyedHandler`] gives a key.
    pub(crate) fn outcome_for_key(key: &str) -> Outcome {
        let name = key.rsplit('/').next().unwrap_or(key);
        let failed = |kind| Outcome::Failed {
            kind,
            error: ProcessError::Other {
                kind,
                reason: "test_failure",
                message: format!("{key} failed"),
            },
        };
        if name.starts_with("transient") {
            failed(FailureKind::Transient)
        } else if name.starts_with("permanent") {
            failed(FailureKind::Permanent)
        } else if name.starts_with("skip") {
            Outcome::Skipped(SkipReason::AlreadyDelivered)
        } else {
            Outcome::Delivered(DeliveryReport::default())
        }
    }

    fn object(key: &str) -> IntakeItem {
        IntakeItem::Object(ObjectRef {
            bucket: "b".into(),
            key: key.into(),
            size: None,
            etag: None,
            version_id: None,
            sequencer: None,
            event_time: None,
            uploader: None,
        })
    }

    #[tokio::test]
    async fn every_object_is_handled_in_order_and_events_are_counted() {
        let handler = KeyedHandler::default();
        let items = vec![
            object("one"),
            IntakeItem::TestEvent { bucket: None },
            object("skip-two"),
            IntakeItem::Ignored {
                event_name: "ObjectRemoved:Delete".into(),
            },
        ];
        let outcome = process_items(&handler, Ok(items), "m1").await;
        let keys: Vec<String> = handler
            .seen
            .lock()
            .expect("lock")
            .iter()
            .map(|o| o.key.clone())
            .collect();
        assert_eq!(keys, ["one", "skip-two"]);
        assert_eq!((outcome.test_events, outcome.ignored_events), (1, 1));
        assert_eq!(outcome.disposition(), Disposition::Acknowledge);
        let mut tally = Tally::default();
        tally.record_message(&outcome);
        assert_eq!(
            (
                tally.objects,
                tally.delivered,
                tally.skipped,
                tally.failures()
            ),
            (2, 1, 1, 0)
        );
    }

    #[tokio::test]
    async fn a_transient_failure_retries_the_message_even_beside_a_permanent_one() {
        let handler = KeyedHandler::default();
        let items = vec![object("permanent-a"), object("transient-b"), object("c")];
        let outcome = process_items(&handler, Ok(items), "m1").await;
        assert_eq!(
            handler.seen.lock().expect("lock").len(),
            3,
            "later objects still handled"
        );
        assert_eq!(
            outcome.disposition(),
            Disposition::Retry {
                reason: "test_failure"
            }
        );
    }

    #[tokio::test]
    async fn permanent_failures_dead_letter_with_every_error() {
        let handler = KeyedHandler::default();
        let outcome = process_items(
            &handler,
            Ok(vec![
                object("permanent-a"),
                object("ok"),
                object("permanent-b"),
            ]),
            "m",
        )
        .await;
        match outcome.disposition() {
            Disposition::DeadLetter(cause) => {
                assert_eq!(cause.reason, "test_failure");
                assert!(
                    cause.error.contains("s3://b/permanent-a")
                        && cause.error.contains("s3://b/permanent-b")
                );
            }
            other => panic!("expected dead letter, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_unreadable_body_is_dead_lettered_without_calling_the_handler() {
        let handler = KeyedHandler::default();
        let outcome = process_items(&handler, Err(BodyError::Empty), "m").await;
        assert!(handler.seen.lock().expect("lock").is_empty());
        assert_eq!(
            outcome.disposition(),
            Disposition::DeadLetter(DeadLetterCause {
                reason: "empty_body",
                error: "body is empty".into()
            })
        );
    }

    #[test]
    fn dead_letter_errors_are_bounded() {
        let long = "x".repeat(10 * MAX_ERROR_CHARS);
        assert_eq!(shorten(&long).chars().count(), MAX_ERROR_CHARS + 1);
    }
}
