//! The delivery core's internal events: one small type per notable thing that happens to a
//! tenant's data (delivered, filtered, rejected, split, retried, refused, …). Each `emit` logs once
//! and increments `logrelay_processor_*` metrics through the `metrics` facade, labelled with the
//! tenant, so nothing is dropped silently and every count is per tenant.
//!
//! Events are emitted once per object and config with aggregated counts, not once per record.
//! Each implements [`InternalEvent`].

use super::InternalEvent;
use logrelay_common::tenant::DeliveryType;
use metrics::{counter, histogram};
use std::time::Duration;

/// Objects finished, by outcome (`delivered`, `skipped_duplicate`, `skipped_unwanted`,
/// `skipped_quarantined`, `failed_transient`, `failed_permanent`) and reason.
pub const OBJECTS_TOTAL: &str = "logrelay_processor_objects_total";
/// Records read from objects.
pub const RECORDS_READ_TOTAL: &str = "logrelay_processor_records_read_total";
/// Events accepted by the destination, by delivery type.
pub const EVENTS_DELIVERED_TOTAL: &str = "logrelay_processor_events_delivered_total";
/// Message bytes (UTF-8) accepted by the destination, by delivery type.
pub const BYTES_DELIVERED_TOTAL: &str = "logrelay_processor_bytes_delivered_total";
/// Events not delivered, by reason (`too_old`, `too_new`, `expired`, `invalid`, `empty_message`).
pub const EVENTS_REJECTED_TOTAL: &str = "logrelay_processor_events_rejected_total";
/// Records a config's filter did not want.
pub const RECORDS_FILTERED_TOTAL: &str = "logrelay_processor_records_filtered_total";
/// Records whose own `customer_id` disagrees with the object key's tenant (never delivered).
pub const RECORDS_MISATTRIBUTED_TOTAL: &str = "logrelay_processor_records_misattributed_total";
/// Lines that are not records, by reason.
pub const BAD_LINES_TOTAL: &str = "logrelay_processor_bad_lines_total";
/// Records without a usable timestamp that were given the object's time.
pub const TIMESTAMP_FALLBACKS_TOTAL: &str = "logrelay_processor_timestamp_fallbacks_total";
/// Messages over the per-event limit that were split into continuation events.
pub const EVENTS_SPLIT_TOTAL: &str = "logrelay_processor_events_split_total";
/// Delivery configs skipped because they are invalid, by delivery type.
pub const CONFIGS_INVALID_TOTAL: &str = "logrelay_processor_configs_invalid_total";
/// Configs read from items without a `type` attribute (a single-key tenant table), by the type
/// they were read as.
pub const CONFIGS_UNTYPED_TOTAL: &str = "logrelay_processor_configs_untyped_total";
/// Objects with a Vector-written file name (the proof of concept's DaemonSet), by tenant: zero
/// once every node runs the agent.
pub const VECTOR_OBJECTS_TOTAL: &str = "logrelay_processor_vector_objects_total";
/// AssumeRole calls refused (access denied), by delivery type.
pub const ASSUME_ROLE_DENIED_TOTAL: &str = "logrelay_processor_assume_role_denied_total";
/// Configs that failed for an object, by delivery type, kind and reason.
pub const CONFIG_FAILURES_TOTAL: &str = "logrelay_processor_config_failures_total";
/// Retried AWS calls, by operation.
pub const RETRIES_TOTAL: &str = "logrelay_processor_retries_total";
/// Log groups and streams created, by kind and whether they had existed before (deleted by the tenant).
pub const LOG_RESOURCES_CREATED_TOTAL: &str = "logrelay_processor_log_resources_created_total";
/// Objects copied to the tenant's bucket.
pub const S3_COPIES_TOTAL: &str = "logrelay_processor_s3_copies_total";
/// Batches skipped because an earlier attempt had delivered them.
pub const BATCHES_RESUMED_TOTAL: &str = "logrelay_processor_batches_resumed_total";
/// Progress discarded because the config changed since the earlier attempt.
pub const PROGRESS_RESETS_TOTAL: &str = "logrelay_processor_progress_resets_total";
/// Configs of objects delivered again although already delivered (`replay --force`), by delivery
/// type.
pub const FORCED_REDELIVERIES_TOTAL: &str = "logrelay_processor_forced_redeliveries_total";
/// Objects whose notification named no uploader while cluster writers are registered (not
/// checked: EventBridge events, the emulator).
pub const UPLOADS_UNVERIFIED_TOTAL: &str = "logrelay_processor_uploads_unverified_total";
/// Seconds from object creation to the end of its delivery.
pub const DELIVERY_LATENCY_SECONDS: &str = "logrelay_processor_delivery_latency_seconds";

/// An object was finished (delivered, skipped or failed).
#[derive(Debug)]
pub struct ObjectFinished<'a> {
    /// Tenant from the key (`""` when the key had none).
    pub tenant: &'a str,
    /// `delivered`, `skipped_duplicate`, `skipped_unwanted`, `skipped_quarantined` (logged at
    /// warn level), `failed_transient`, `failed_permanent`.
    pub outcome: &'static str,
    /// Stable reason label (`ok` when delivered).
    pub reason: &'static str,
    /// `s3://bucket/key`.
    pub object: &'a str,
}

impl InternalEvent for ObjectFinished<'_> {
    fn emit(self) {
        match self.outcome {
            "delivered" | "skipped_duplicate" | "skipped_unwanted" => {
                tracing::info!(
                    tenant = self.tenant,
                    outcome = self.outcome,
                    object = self.object,
                    "object finished"
                )
            }
            _ => tracing::warn!(
                tenant = self.tenant,
                outcome = self.outcome,
                reason = self.reason,
                object = self.object,
                "object not delivered"
            ),
        }
        counter!(OBJECTS_TOTAL, "tenant" => self.tenant.to_owned(), "outcome" => self.outcome, "reason" => self.reason)
            .increment(1);
    }
}

/// Counts from reading one object: records, bad lines by reason, fallbacks, misattributed records.
#[derive(Debug, Default)]
pub struct ObjectRead<'a> {
    /// Tenant from the key.
    pub tenant: &'a str,
    /// Records read.
    pub records: u64,
    /// Lines that were not JSON.
    pub invalid_json: u64,
    /// Lines that were not UTF-8.
    pub invalid_utf8: u64,
    /// Lines over the line limit.
    pub too_long: u64,
    /// JSON lines without a message.
    pub missing_message: u64,
    /// Records whose timestamp was missing or unreadable.
    pub timestamp_fallbacks: u64,
    /// Records claiming another tenant.
    pub misattributed: u64,
}

impl InternalEvent for ObjectRead<'_> {
    fn emit(self) {
        let tenant = self.tenant.to_owned();
        counter!(RECORDS_READ_TOTAL, "tenant" => tenant.clone()).increment(self.records);
        for (reason, count) in [
            ("invalid_json", self.invalid_json),
            ("invalid_utf8", self.invalid_utf8),
            ("too_long", self.too_long),
            ("missing_message", self.missing_message),
        ] {
            if count > 0 {
                counter!(BAD_LINES_TOTAL, "tenant" => tenant.clone(), "reason" => reason)
                    .increment(count);
            }
        }
        let bad = self.invalid_json + self.invalid_utf8 + self.too_long + self.missing_message;
        if bad > 0 {
            tracing::warn!(
                tenant = self.tenant,
                invalid_json = self.invalid_json,
                invalid_utf8 = self.invalid_utf8,
                too_long = self.too_long,
                missing_message = self.missing_message,
                "lines skipped: not records"
            );
        }
        if self.timestamp_fallbacks > 0 {
            tracing::debug!(
                tenant = self.tenant,
                records = self.timestamp_fallbacks,
                "records without timestamp got the object's time"
            );
            counter!(TIMESTAMP_FALLBACKS_TOTAL, "tenant" => tenant.clone())
                .increment(self.timestamp_fallbacks);
        }
        if self.misattributed > 0 {
            tracing::error!(
                tenant = self.tenant,
                records = self.misattributed,
                "records claim another tenant than their object's key; not delivered"
            );
            counter!(RECORDS_MISATTRIBUTED_TOTAL, "tenant" => tenant).increment(self.misattributed);
        }
    }
}

/// What one config did with one object.
#[derive(Debug)]
pub struct ConfigDelivered<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// Which config.
    pub delivery_type: DeliveryType,
    /// Events (or copies) accepted.
    pub events: u64,
    /// Message bytes accepted.
    pub bytes: u64,
    /// Records the filter did not want.
    pub filtered: u64,
    /// Dropped before sending or rejected by CloudWatch: `(reason, count)`.
    pub rejected: [(&'static str, u64); 5],
    /// Messages split into continuation events.
    pub split: u64,
}

impl InternalEvent for ConfigDelivered<'_> {
    fn emit(self) {
        let tenant = self.tenant.to_owned();
        let kind = self.delivery_type.as_str();
        counter!(EVENTS_DELIVERED_TOTAL, "tenant" => tenant.clone(), "type" => kind)
            .increment(self.events);
        counter!(BYTES_DELIVERED_TOTAL, "tenant" => tenant.clone(), "type" => kind)
            .increment(self.bytes);
        if self.filtered > 0 {
            counter!(RECORDS_FILTERED_TOTAL, "tenant" => tenant.clone(), "type" => kind)
                .increment(self.filtered);
        }
        for (reason, count) in self.rejected {
            if count > 0 {
                counter!(EVENTS_REJECTED_TOTAL, "tenant" => tenant.clone(), "type" => kind, "reason" => reason)
                    .increment(count);
            }
        }
        if self.split > 0 {
            counter!(EVENTS_SPLIT_TOTAL, "tenant" => tenant.clone()).increment(self.split);
        }
        let rejected: u64 = self.rejected.iter().map(|(_, count)| count).sum();
        if rejected > 0 {
            let reasons = self
                .rejected
                .iter()
                .filter(|(_, count)| *count > 0)
                .map(|(reason, count)| format!("{reason}={count}"))
                .collect::<Vec<_>>()
                .join(" ");
            tracing::warn!(
                tenant = self.tenant,
                delivery = kind,
                rejected,
                reasons,
                "events not accepted"
            );
        }
        tracing::debug!(
            tenant = self.tenant,
            delivery = kind,
            events = self.events,
            bytes = self.bytes,
            filtered = self.filtered,
            split = self.split,
            "config delivered"
        );
    }
}

/// A tenant's config is invalid and was skipped (its other configs still deliver).
#[derive(Debug)]
pub struct ConfigInvalid<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// Type, when readable.
    pub delivery_type: &'a str,
    /// Every problem, with field names.
    pub problems: &'a str,
}

impl InternalEvent for ConfigInvalid<'_> {
    fn emit(self) {
        tracing::error!(
            tenant = self.tenant,
            delivery = self.delivery_type,
            problems = self.problems,
            "invalid delivery config skipped"
        );
        counter!(CONFIGS_INVALID_TOTAL, "tenant" => self.tenant.to_owned(), "type" => self.delivery_type.to_owned())
            .increment(1);
    }
}

/// A tenant's config was read from an item without `type` (a single-key table's item) as the
/// only type it can be; it delivers, and `tenants migrate` should give it its type.
#[derive(Debug)]
pub struct ConfigUntyped<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// The type it was read as.
    pub delivery_type: &'a str,
}

impl InternalEvent for ConfigUntyped<'_> {
    fn emit(self) {
        tracing::warn!(
            tenant = self.tenant,
            delivery = self.delivery_type,
            "tenant config item has no `type` attribute (single-key table item); read as {}: run `tenants migrate` to write it with its type",
            self.delivery_type
        );
        counter!(CONFIGS_UNTYPED_TOTAL, "tenant" => self.tenant.to_owned(), "type" => self.delivery_type.to_owned())
            .increment(1);
    }
}

/// An object with a Vector-written file name is being processed (see `logrelay_common::vector_name`).
#[derive(Debug)]
pub struct VectorObjectRead<'a> {
    /// Tenant from the key.
    pub tenant: &'a str,
    /// The object's file name.
    pub filename: &'a str,
}

impl InternalEvent for VectorObjectRead<'_> {
    fn emit(self) {
        tracing::debug!(
            tenant = self.tenant,
            filename = self.filename,
            "object with a Vector-written file name"
        );
        counter!(VECTOR_OBJECTS_TOTAL, "tenant" => self.tenant.to_owned()).increment(1);
    }
}

/// STS refused a role of the chain for a tenant's config.
#[derive(Debug)]
pub struct AssumeRoleDenied<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// Which config.
    pub delivery_type: DeliveryType,
    /// The refused role.
    pub role_arn: &'a str,
    /// STS's message.
    pub message: &'a str,
}

impl InternalEvent for AssumeRoleDenied<'_> {
    fn emit(self) {
        tracing::error!(
            tenant = self.tenant,
            delivery = self.delivery_type.as_str(),
            role_arn = self.role_arn,
            error = self.message,
            "assume role refused; the tenant must fix the role's trust policy or external id"
        );
        counter!(ASSUME_ROLE_DENIED_TOTAL, "tenant" => self.tenant.to_owned(), "type" => self.delivery_type.as_str())
            .increment(1);
    }
}

/// One config failed for one object.
#[derive(Debug)]
pub struct ConfigFailed<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// Which config.
    pub delivery_type: DeliveryType,
    /// The failure.
    pub error: &'a crate::error::DeliveryError,
}

impl InternalEvent for ConfigFailed<'_> {
    fn emit(self) {
        let kind = if self.error.is_transient() {
            "transient"
        } else {
            "permanent"
        };
        tracing::warn!(
            tenant = self.tenant,
            delivery = self.delivery_type.as_str(),
            kind,
            reason = self.error.reason,
            error = %self.error.message,
            "delivery config failed"
        );
        counter!(
            CONFIG_FAILURES_TOTAL,
            "tenant" => self.tenant.to_owned(),
            "type" => self.delivery_type.as_str(),
            "kind" => kind,
            "reason" => self.error.reason
        )
        .increment(1);
    }
}

/// An AWS call is being retried after a backoff.
#[derive(Debug)]
pub struct CallRetried<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// E.g. `logs:PutLogEvents`.
    pub operation: &'static str,
    /// Attempt that failed (1-based).
    pub attempt: u32,
    /// The backoff before the next attempt.
    pub backoff: Duration,
    /// What failed.
    pub error: &'a str,
}

impl InternalEvent for CallRetried<'_> {
    fn emit(self) {
        tracing::debug!(
            tenant = self.tenant,
            operation = self.operation,
            attempt = self.attempt,
            backoff_ms = u64::try_from(self.backoff.as_millis()).unwrap_or(u64::MAX),
            error = self.error,
            "retrying"
        );
        counter!(RETRIES_TOTAL, "tenant" => self.tenant.to_owned(), "operation" => self.operation)
            .increment(1);
    }
}

/// A log group or stream was created because a put found it missing.
#[derive(Debug)]
pub struct LogResourceCreated<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// `group` or `stream`.
    pub kind: &'static str,
    /// Its name.
    pub name: &'a str,
    /// Whether we had delivered to it before (so the tenant deleted it).
    pub recreated: bool,
}

impl InternalEvent for LogResourceCreated<'_> {
    fn emit(self) {
        if self.recreated {
            tracing::warn!(
                tenant = self.tenant,
                kind = self.kind,
                name = self.name,
                "log resource had been deleted; recreated"
            );
        } else {
            tracing::info!(
                tenant = self.tenant,
                kind = self.kind,
                name = self.name,
                "log resource created"
            );
        }
        counter!(
            LOG_RESOURCES_CREATED_TOTAL,
            "tenant" => self.tenant.to_owned(),
            "kind" => self.kind,
            "recreated" => if self.recreated { "true" } else { "false" }
        )
        .increment(1);
    }
}

/// An object was copied into the tenant's bucket.
#[derive(Debug)]
pub struct ObjectCopied<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// Destination bucket.
    pub bucket: &'a str,
    /// Destination key.
    pub key: &'a str,
}

impl InternalEvent for ObjectCopied<'_> {
    fn emit(self) {
        tracing::debug!(
            tenant = self.tenant,
            bucket = self.bucket,
            key = self.key,
            "object copied"
        );
        counter!(S3_COPIES_TOTAL, "tenant" => self.tenant.to_owned()).increment(1);
    }
}

/// A redelivered object resumed after batches an earlier attempt had delivered.
#[derive(Debug)]
pub struct DeliveryResumed<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// Which config.
    pub delivery_type: DeliveryType,
    /// Batches not sent again.
    pub batches_skipped: u64,
}

impl InternalEvent for DeliveryResumed<'_> {
    fn emit(self) {
        tracing::info!(
            tenant = self.tenant,
            delivery = self.delivery_type.as_str(),
            batches_skipped = self.batches_skipped,
            "resumed after batches delivered by an earlier attempt"
        );
        counter!(BATCHES_RESUMED_TOTAL, "tenant" => self.tenant.to_owned())
            .increment(self.batches_skipped);
    }
}

/// Earlier progress could not be used because the config changed; the object starts over.
#[derive(Debug)]
pub struct ProgressReset<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// Which config.
    pub delivery_type: DeliveryType,
}

impl InternalEvent for ProgressReset<'_> {
    fn emit(self) {
        tracing::warn!(
            tenant = self.tenant,
            delivery = self.delivery_type.as_str(),
            "config changed since the earlier attempt; delivering the object from the start"
        );
        counter!(PROGRESS_RESETS_TOTAL, "tenant" => self.tenant.to_owned()).increment(1);
    }
}

/// A config's progress on an object was reset on purpose (`replay --force`): what it delivered
/// before is delivered again.
#[derive(Debug)]
pub struct ForcedRedelivery<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// Which config.
    pub delivery_type: DeliveryType,
    /// The object's key.
    pub object: &'a str,
    /// Events the earlier attempts had delivered (sent again now).
    pub events_before: u64,
}

impl InternalEvent for ForcedRedelivery<'_> {
    fn emit(self) {
        tracing::warn!(
            tenant = self.tenant,
            delivery = self.delivery_type.as_str(),
            object = self.object,
            events_before = self.events_before,
            "forced redelivery: delivering an already delivered object again \
             (CloudWatch Logs gets its events twice; an S3 copy is overwritten)"
        );
        counter!(
            FORCED_REDELIVERIES_TOTAL,
            "tenant" => self.tenant.to_owned(),
            "type" => self.delivery_type.as_str()
        )
        .increment(1);
    }
}

/// Time from object creation to the end of its delivery.
#[derive(Debug)]
pub struct DeliveryLatency<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// The latency.
    pub latency: Duration,
}

impl InternalEvent for DeliveryLatency<'_> {
    fn emit(self) {
        histogram!(DELIVERY_LATENCY_SECONDS, "tenant" => self.tenant.to_owned())
            .record(self.latency.as_secs_f64());
    }
}
