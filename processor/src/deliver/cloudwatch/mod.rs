//! CloudWatch Logs delivery, split like Vector's sinks: [`batch`] builds requests under every
//! limit, [`encode`] writes their bodies, [`service`] sends them (PutLogEvents, creating the group/stream when missing), [`retry`]
//! decides what a failure means. [`CloudWatchTarget`] is one tenant config's delivery of one object:
//! its service, its progress and its counts.

pub mod batch;
pub mod encode;
pub mod request_builder;
pub mod retry;
pub mod service;
pub mod sink;

use crate::error::DeliveryError;
use crate::progress::{ProgressKey, ProgressState};
use logrelay_common::tenant::DeliveryConfig;
use service::{LogsService, PutOutcome};
use std::sync::Arc;

/// Counts of one config's delivery of one object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CloudWatchCounts {
    /// Events CloudWatch accepted.
    pub delivered: u64,
    /// Their message bytes.
    pub bytes: u64,
    /// Dropped before sending: older than 14 days / the retention.
    pub dropped_too_old: u64,
    /// Dropped before sending: more than 2 h ahead.
    pub dropped_too_new: u64,
    /// Rejected by CloudWatch: too old.
    pub rejected_too_old: u64,
    /// Rejected by CloudWatch: too new.
    pub rejected_too_new: u64,
    /// Rejected by CloudWatch: expired (older than the retention).
    pub rejected_expired: u64,
    /// Isolated by bisection as invalid.
    pub invalid: u64,
}

impl CloudWatchCounts {
    /// Adds what one batch achieved.
    pub fn add(&mut self, outcome: &PutOutcome) {
        self.delivered += outcome.accepted;
        self.bytes += outcome.accepted_bytes;
        self.rejected_too_old += outcome.rejected.too_old;
        self.rejected_too_new += outcome.rejected.too_new;
        self.rejected_expired += outcome.rejected.expired;
        self.invalid += outcome.invalid;
    }

    /// Events not delivered, by reason label (`empty_messages` comes from routing).
    pub fn rejected_by_reason(&self, empty_messages: u64) -> [(&'static str, u64); 5] {
        [
            ("too_old", self.dropped_too_old + self.rejected_too_old),
            ("too_new", self.dropped_too_new + self.rejected_too_new),
            ("expired", self.rejected_expired),
            ("invalid", self.invalid),
            ("empty_message", empty_messages),
        ]
    }
}

/// One CloudWatch config's delivery of one object.
#[derive(Debug)]
pub struct CloudWatchTarget {
    /// The config.
    pub config: Arc<DeliveryConfig>,
    /// Its log group, reached with the tenant's credentials.
    pub service: LogsService,
    /// Where its progress is kept.
    pub progress_key: ProgressKey,
    /// Progress so far (from an earlier attempt, then this one).
    pub state: ProgressState,
    /// Counts of this attempt.
    pub counts: CloudWatchCounts,
    /// Batches skipped because an earlier attempt delivered them.
    pub batches_resumed: u64,
    /// The first failure; once set, no more batches are sent for this config.
    pub failure: Option<DeliveryError>,
}
