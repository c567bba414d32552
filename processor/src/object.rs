//! The processor's core contract: an object to process ([`ObjectRef`]), what became of it
//! ([`Outcome`]), and the handler every intake drives ([`ObjectHandler`]).

pub use crate::report::{DeliveryReport, FailureKind};

use crate::error::ProcessError;
use chrono::{DateTime, Utc};
use std::future::Future;

/// One S3 object announced by a notification (key already form-decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// Bucket holding the object.
    pub bucket: String,
    /// Object key, decoded (as stored in S3).
    pub key: String,
    /// Object size in bytes, when the notification says.
    pub size: Option<u64>,
    /// ETag (without quotes), when the notification says; identifies the object version's content.
    pub etag: Option<String>,
    /// Version id, on versioned buckets.
    pub version_id: Option<String>,
    /// S3's event sequencer, when present (orders events for the same key).
    pub sequencer: Option<String>,
    /// When the object was created (the notification's event time).
    pub event_time: Option<DateTime<Utc>>,
    /// Who uploaded it: the S3 event's `userIdentity.principalId` (`AWS:AROA…:session` for an
    /// assumed role), when the notification names one.
    pub uploader: Option<String>,
}

/// Why an object was acknowledged without delivering anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// This exact object version was already delivered (duplicate notification).
    AlreadyDelivered,
    /// No delivery config wants any of the object's records.
    NothingWanted,
    /// The object is in the quarantine prefix (lines the agent could not attribute to a tenant):
    /// never delivered; an operator assigns it with `quarantine release`.
    Quarantined,
}

/// What became of one object.
#[derive(Debug)]
pub enum Outcome {
    /// Delivered to every wanted destination.
    Delivered(DeliveryReport),
    /// Acknowledged without delivery.
    Skipped(SkipReason),
    /// Not (fully) delivered.
    Failed {
        /// Transient (retry) or permanent (dead-letter).
        kind: FailureKind,
        /// What went wrong, for logs and the DLQ.
        error: ProcessError,
    },
}

impl Outcome {
    /// True when the message announcing the object may be deleted (delivered, skipped, or failed
    /// permanently and dead-lettered).
    pub fn is_final(&self) -> bool {
        !matches!(
            self,
            Outcome::Failed {
                kind: FailureKind::Transient,
                ..
            }
        )
    }
}

/// Processes one object; implemented by the processor core, driven by every intake.
pub trait ObjectHandler: Send + Sync {
    /// Delivers `object` and says what became of it. Never panics on bad input.
    fn handle(&self, object: &ObjectRef) -> impl Future<Output = Outcome> + Send;
}
