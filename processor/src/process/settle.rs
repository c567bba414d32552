//! Ending an attempt: every lease it holds is completed or released through one path (`end_lease`
//! of [`claim`](super::claim)). CloudWatch configs complete when read to the end without failure; S3
//! configs are copied and completed only after a clean read (no other tenant's records, no
//! corrupt data). Counts become events and the report; failures become one honest error.

use super::attempt::{Attempt, Finished, Headers};
use super::claim::Ending;
use super::read::ReadOutcome;
use super::targets::{S3Target, Targets};
use crate::deliver::s3::{self, CopyRequest, MAX_COPY_BYTES, copy_object};
use crate::error::{ConfigFailure, DeliveryError, ProcessError};
use crate::object::{DeliveryReport, FailureKind, ObjectRef, SkipReason};
use crate::telemetry::InternalEvent;
use crate::telemetry::events::{
    ConfigDelivered, ConfigFailed, DeliveryLatency, DeliveryResumed, ObjectCopied, ObjectRead,
};
use chrono::Utc;
use logrelay_common::codec::CodecError;
use logrelay_common::key::ObjectKey;
use logrelay_common::tenant::DeliveryType;

impl Attempt<'_> {
    /// Settles every lease after the read, and turns what happened into the attempt's result.
    pub(super) async fn settle(
        &self,
        key: &ObjectKey,
        headers: &Headers,
        mut targets: Targets,
        read: Result<ReadOutcome, ProcessError>,
        mut report: DeliveryReport,
    ) -> Result<Finished, ProcessError> {
        let read = match read {
            Ok(read) => read,
            Err(error) => {
                for target in &targets.cloudwatch {
                    let ending = Ending::SaveAndRelease(&target.state);
                    let _ = self.end_lease(&target.progress_key, ending).await;
                }
                self.release(targets.s3.iter().map(|t| &t.progress_key).collect())
                    .await;
                return Err(error);
            }
        };
        count_read(&read, &mut report);
        let mut failures = std::mem::take(&mut targets.failures);
        self.settle_cloudwatch(&mut targets, &read, &mut report, &mut failures)
            .await;
        if let Some(error) = &read.error {
            self.release(targets.s3.iter().map(|t| &t.progress_key).collect())
                .await;
            tracing::warn!(
                tenant = %report.tenant_id,
                events_delivered = report.events_delivered,
                records_read = report.records_read,
                "object unreadable after part of it was delivered"
            );
            return Err(read_error(self.object, error));
        }
        for target in &targets.s3 {
            let result = self.copy_when_clean(target, key, headers, &read).await;
            let ending = match &result {
                Ok(()) => {
                    report.s3_copies += 1;
                    Ending::Complete(&target.state)
                }
                Err(_) => Ending::Release,
            };
            let ended = self.end_lease(&target.progress_key, ending).await;
            if let Some(error) = result.err().or(ended.err()) {
                failures.push(ConfigFailure {
                    delivery_type: DeliveryType::S3,
                    error,
                });
            }
        }
        if !failures.is_empty() {
            return Err(delivery_failed(report, failures));
        }
        if let Some(created) = self.object.event_time.or(headers.last_modified) {
            let latency = (Utc::now() - created).to_std().unwrap_or_default();
            DeliveryLatency {
                tenant: &report.tenant_id,
                latency,
            }
            .emit();
        }
        Ok(Finished::Delivered(report))
    }

    /// Completes each CloudWatch config read to the end without failure, releases the rest, and
    /// counts what each delivered.
    async fn settle_cloudwatch(
        &self,
        targets: &mut Targets,
        read: &ReadOutcome,
        report: &mut DeliveryReport,
        failures: &mut Vec<ConfigFailure>,
    ) {
        let tenant = report.tenant_id.clone();
        for (target, route) in targets.cloudwatch.iter_mut().zip(&read.routes) {
            let ending = if target.failure.is_none() && read.read_to_end() {
                Ending::Complete(&target.state)
            } else {
                Ending::SaveAndRelease(&target.state)
            };
            if let Err(error) = self.end_lease(&target.progress_key, ending).await {
                target.failure = Some(error);
            }
            if target.batches_resumed > 0 {
                DeliveryResumed {
                    tenant: &tenant,
                    delivery_type: target.config.delivery_type,
                    batches_skipped: target.batches_resumed,
                }
                .emit();
            }
            let counts = target.counts;
            let rejected = counts.rejected_by_reason(route.empty_messages);
            ConfigDelivered {
                tenant: &tenant,
                delivery_type: target.config.delivery_type,
                events: counts.delivered,
                bytes: counts.bytes,
                filtered: route.filtered,
                rejected,
                split: route.split,
            }
            .emit();
            report.events_delivered += counts.delivered;
            report.records_filtered += route.filtered;
            report.events_rejected += rejected.iter().map(|(_, count)| count).sum::<u64>();
            if let Some(error) = target.failure.take() {
                failures.push(ConfigFailure {
                    delivery_type: target.config.delivery_type,
                    error,
                });
            }
        }
    }

    /// Copies the object into an S3 config's bucket, only when it was read to the end and holds
    /// no other tenant's records.
    async fn copy_when_clean(
        &self,
        target: &S3Target,
        key: &ObjectKey,
        headers: &Headers,
        read: &ReadOutcome,
    ) -> Result<(), DeliveryError> {
        if !read.read_to_end() {
            return Err(DeliveryError::transient(
                "object_not_verified",
                "the object was not read to the end, so it is not copied",
            ));
        }
        if read.stats.misattributed > 0 {
            return Err(DeliveryError::permanent(
                "misattributed_records",
                format!(
                    "the object holds {} records of another tenant; it is not copied into {}'s bucket",
                    read.stats.misattributed, key.partition.customer_id
                ),
            ));
        }
        self.copy(target, key, headers).await
    }

    async fn copy(
        &self,
        target: &S3Target,
        key: &ObjectKey,
        headers: &Headers,
    ) -> Result<(), DeliveryError> {
        if headers.size.is_some_and(|size| size > MAX_COPY_BYTES) {
            return Err(DeliveryError::permanent(
                "object_too_large_to_copy",
                format!("object is over the {MAX_COPY_BYTES} bytes one CopyObject can copy"),
            ));
        }
        let tenant_id = &key.partition.customer_id;
        let mut request = CopyRequest::for_config(
            &target.config,
            &self.object.bucket,
            &self.object.key,
            self.object.version_id.as_deref(),
            &headers.etag,
            &key.to_key(),
            &key.partition.cluster_id,
        )
        .ok_or_else(|| {
            DeliveryError::permanent("invalid_config", "s3 config has no bucket_name")
        })?;
        request.expected_bucket_owner = Some(self.bucket_owner(&target.config).await?);
        let central = self
            .inner
            .credentials
            .central(target.config.target_region.as_deref())
            .await?;
        let client = s3::client(&central, self.inner.limits.request_timeout);
        copy_object(&client, &request, &self.inner.limits.retry, tenant_id).await?;
        ObjectCopied {
            tenant: tenant_id,
            bucket: &request.bucket,
            key: &request.key,
        }
        .emit();
        Ok(())
    }
}

/// Whether no config of `targets` holds a lease (each was complete already or failed to claim).
pub(super) fn holds_nothing(targets: &Targets) -> bool {
    targets.cloudwatch.is_empty() && targets.s3.is_empty()
}

/// The outcome when no lease is held: a duplicate when every config was complete already,
/// otherwise the claim failures.
pub(super) fn nothing_held(
    targets: Targets,
    report: DeliveryReport,
) -> Result<Finished, ProcessError> {
    if targets.failures.is_empty() && targets.already_complete > 0 {
        return Ok(Finished::Skipped(SkipReason::AlreadyDelivered));
    }
    Err(delivery_failed(report, targets.failures))
}

/// Emits the read's counts and adds them to the report.
fn count_read(read: &ReadOutcome, report: &mut DeliveryReport) {
    ObjectRead {
        tenant: &report.tenant_id,
        records: read.stats.records,
        invalid_json: read.stats.invalid_json,
        invalid_utf8: read.stats.invalid_utf8,
        too_long: read.stats.too_long,
        missing_message: read.stats.missing_message,
        timestamp_fallbacks: read.stats.timestamp_fallbacks,
        misattributed: read.stats.misattributed,
    }
    .emit();
    tracing::debug!(
        tenant = %report.tenant_id,
        records = read.stats.records,
        decompressed_bytes = read.decompressed_bytes,
        read_to_end = read.read_to_end(),
        "object read"
    );
    report.records_read = read.stats.records;
    report.bad_lines = read.stats.bad_lines();
    report.records_misattributed = read.stats.misattributed;
}

fn read_error(object: &ObjectRef, error: &CodecError) -> ProcessError {
    let (kind, reason) = match error {
        CodecError::TooLarge { .. } => (FailureKind::Permanent, "object_too_large"),
        CodecError::Gzip(_) => (FailureKind::Permanent, "object_corrupt"),
        CodecError::Io(_) => (FailureKind::Transient, "object_read"),
        _ => (FailureKind::Permanent, "object_read"),
    };
    ProcessError::ReadObject {
        kind,
        reason,
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        message: error.to_string(),
    }
}

/// The honest outcome of failed configs: transient if any may succeed on retry (the successful
/// configs are not re-sent then, thanks to progress), permanent otherwise.
pub(super) fn delivery_failed(
    report: DeliveryReport,
    failures: Vec<ConfigFailure>,
) -> ProcessError {
    for failure in &failures {
        ConfigFailed {
            tenant: &report.tenant_id,
            delivery_type: failure.delivery_type,
            error: &failure.error,
        }
        .emit();
    }
    let kind = if failures.iter().any(|failure| failure.error.is_transient()) {
        FailureKind::Transient
    } else {
        FailureKind::Permanent
    };
    ProcessError::Delivery {
        kind,
        report: Box::new(report),
        failures,
    }
}
