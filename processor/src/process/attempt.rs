//! One `handle` call: parse the key, look the tenant up, fetch the object, claim progress, get
//! credentials, read and route the records while sending batches, copy to S3, complete progress,
//! and turn what happened into a report or an error.

use super::{Inner, dispatch, read, route};
use crate::deliver::cloudwatch::service::LogsService;
use crate::deliver::cloudwatch::{CloudWatchCounts, CloudWatchTarget};
use crate::deliver::retry::{Classified, with_retries};
use crate::deliver::s3::{CopyRequest, MAX_COPY_BYTES, copy_object};
use crate::error::{ConfigFailure, DeliveryError, ProcessError};
use crate::object::{DeliveryReport, FailureKind, ObjectRef, SkipReason};
use crate::progress::{Claim, ProgressKey, ProgressState, fingerprint};
use crate::telemetry::InternalEvent;
use crate::telemetry::events::{
    ConfigDelivered, ConfigFailed, DeliveryLatency, DeliveryResumed, ForcedRedelivery,
    ObjectCopied, ObjectRead, ProgressReset,
};
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use chrono::{DateTime, Utc};
use logrelay_common::codec::CodecError;
use logrelay_common::key::ObjectKey;
use logrelay_common::tenant::{DeliveryConfig, DeliveryType, validate_tenant_id};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;

/// How an attempt ended when it did not fail.
pub(super) enum Finished {
    /// Every wanted config delivered.
    Delivered(DeliveryReport),
    /// Acknowledged without delivery.
    Skipped(SkipReason),
}

/// An S3 config's part of one object.
struct S3Target {
    config: Arc<DeliveryConfig>,
    progress_key: ProgressKey,
    state: ProgressState,
}

/// One `handle` call.
pub(super) struct Attempt<'a> {
    inner: &'a Inner,
    object: &'a ObjectRef,
    owner: String,
    pub(super) tenant_id: Option<String>,
}

impl<'a> Attempt<'a> {
    pub(super) fn new(inner: &'a Inner, object: &'a ObjectRef) -> Self {
        let n = inner.attempts.fetch_add(1, Ordering::Relaxed);
        Self {
            inner,
            object,
            owner: format!("{}-{n}", inner.instance),
            tenant_id: None,
        }
    }

    pub(super) async fn run(&mut self) -> Result<Finished, ProcessError> {
        let object = self.object;
        let key = ObjectKey::parse_with_prefix(&object.key, &self.inner.key_prefix)?;
        let tenant_id = key.partition.customer_id.clone();
        validate_tenant_id(&tenant_id).map_err(|problem| ProcessError::BadTenantId {
            tenant_id: tenant_id.clone(),
            problem: problem.to_string(),
        })?;
        self.tenant_id = Some(tenant_id.clone());

        let configs = self
            .inner
            .tenants
            .configs(&tenant_id)
            .await
            .map_err(|failure| tenant_lookup_error(&tenant_id, failure))?;
        if configs.deliveries.is_empty() {
            return Err(ProcessError::TenantNotConfigured { tenant_id });
        }
        // The key's application stands for the object's records (the agent builds keys from them).
        let wanted: Vec<Arc<DeliveryConfig>> = configs
            .deliveries
            .iter()
            .filter(|config| config.wants(&key.partition.application))
            .cloned()
            .collect();
        if wanted.is_empty() {
            return Ok(Finished::Skipped(SkipReason::NothingWanted));
        }

        let fetched = self.fetch(&tenant_id).await?;
        let mut report = DeliveryReport {
            tenant_id: tenant_id.clone(),
            ..Default::default()
        };
        let mut failures: Vec<ConfigFailure> = Vec::new();
        let mut already_complete = 0usize;
        let mut cloudwatch: Vec<CloudWatchTarget> = Vec::new();
        let mut s3: Vec<S3Target> = Vec::new();

        for config in &wanted {
            let progress_key = ProgressKey {
                bucket: object.bucket.clone(),
                key: object.key.clone(),
                etag: fetched.etag.clone(),
                tenant_id: tenant_id.clone(),
                delivery_type: config.delivery_type,
            };
            let claim = if self.inner.force_redelivery {
                self.inner
                    .progress
                    .claim_afresh(&progress_key, &self.owner)
                    .await
            } else {
                self.inner.progress.claim(&progress_key, &self.owner).await
            };
            let state = match claim {
                Ok(Claim::Acquired(state)) => state,
                Ok(Claim::Reset(previous)) => {
                    if previous.complete || previous.events_delivered > 0 {
                        ForcedRedelivery {
                            tenant: &tenant_id,
                            delivery_type: config.delivery_type,
                            object: &object.key,
                            events_before: previous.events_delivered,
                        }
                        .emit();
                    }
                    ProgressState::default()
                }
                Ok(Claim::Complete(_)) => {
                    already_complete += 1;
                    continue;
                }
                Ok(Claim::Busy { owner }) => {
                    failures.push(ConfigFailure {
                        delivery_type: config.delivery_type,
                        error: DeliveryError::transient(
                            "in_progress_elsewhere",
                            format!("another attempt ({owner}) is delivering this object"),
                        ),
                    });
                    continue;
                }
                Err(error) => {
                    failures.push(ConfigFailure {
                        delivery_type: config.delivery_type,
                        error: error.into(),
                    });
                    continue;
                }
            };
            match config.delivery_type {
                DeliveryType::Cloudwatch => match self
                    .cloudwatch_target(config, &key, progress_key, state)
                    .await
                {
                    Ok(target) => cloudwatch.push(target),
                    Err((progress_key, error)) => {
                        self.inner
                            .progress
                            .release(&progress_key, &self.owner)
                            .await;
                        failures.push(ConfigFailure {
                            delivery_type: config.delivery_type,
                            error,
                        });
                    }
                },
                DeliveryType::S3 => s3.push(S3Target {
                    config: config.clone(),
                    progress_key,
                    state,
                }),
            }
        }

        if cloudwatch.is_empty() && s3.is_empty() {
            drop(fetched.body);
            if failures.is_empty() && already_complete > 0 {
                return Ok(Finished::Skipped(SkipReason::AlreadyDelivered));
            }
            return Err(delivery_failed(report, failures));
        }

        // Read the object once: CloudWatch batches go out while reading; S3 copies wait for a
        // clean read (no other tenant's records, no corrupt data).
        let fallback_ms = fetched
            .last_modified
            .or(object.event_time)
            .unwrap_or(key.created)
            .timestamp_millis();
        let route_configs: Vec<Arc<DeliveryConfig>> =
            cloudwatch.iter().map(|t| t.config.clone()).collect();
        let router = route::Router::new(
            key.partition.clone(),
            fallback_ms,
            &route_configs,
            self.inner.batch_limits,
        );
        let (sender, receiver) =
            mpsc::channel(self.inner.limits.max_in_flight_per_object.max(1) * 2);
        let reader = tokio::spawn(read::read_object(
            Box::pin(fetched.body.into_async_read()),
            self.inner.limits.read,
            router,
            sender,
        ));
        let context = dispatch::DispatchContext {
            progress: self.inner.progress.clone(),
            owner: self.owner.clone(),
            tenant_permits: self.inner.tenant_permits.for_tenant(&tenant_id),
            max_in_flight: self.inner.limits.max_in_flight_per_object,
            read_to_end: !s3.is_empty(),
        };
        dispatch::dispatch(&mut cloudwatch, receiver, &context).await;
        let read = match reader.await {
            Ok(read) => read,
            Err(join_error) => {
                for target in &cloudwatch {
                    self.inner
                        .progress
                        .release(&target.progress_key, &self.owner)
                        .await;
                }
                for target in &s3 {
                    self.inner
                        .progress
                        .release(&target.progress_key, &self.owner)
                        .await;
                }
                return Err(ProcessError::Other {
                    kind: FailureKind::Transient,
                    reason: "internal",
                    message: format!("reading the object failed: {join_error}"),
                });
            }
        };

        ObjectRead {
            tenant: &tenant_id,
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
            tenant = %tenant_id,
            records = read.stats.records,
            decompressed_bytes = read.decompressed_bytes,
            read_to_end = read.read_to_end(),
            "object read"
        );
        report.records_read = read.stats.records;
        report.bad_lines = read.stats.bad_lines();
        report.records_misattributed = read.stats.misattributed;

        // CloudWatch: complete what was read to the end without failure; release the rest.
        for (target, route) in cloudwatch.iter_mut().zip(&read.routes) {
            if target.failure.is_none() && read.read_to_end() {
                if let Err(error) = self
                    .inner
                    .progress
                    .complete(&target.progress_key, &self.owner, &target.state)
                    .await
                {
                    target.failure = Some(error.into());
                }
            } else {
                self.inner
                    .progress
                    .release(&target.progress_key, &self.owner)
                    .await;
            }
            if target.batches_resumed > 0 {
                DeliveryResumed {
                    tenant: &tenant_id,
                    delivery_type: target.config.delivery_type,
                    batches_skipped: target.batches_resumed,
                }
                .emit();
            }
            let counts: CloudWatchCounts = target.counts;
            let rejected = counts.rejected_by_reason(route.empty_messages);
            ConfigDelivered {
                tenant: &tenant_id,
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

        if let Some(error) = &read.error {
            for target in &s3 {
                self.inner
                    .progress
                    .release(&target.progress_key, &self.owner)
                    .await;
            }
            tracing::warn!(
                tenant = %tenant_id,
                events_delivered = report.events_delivered,
                records_read = report.records_read,
                "object unreadable after part of it was delivered"
            );
            return Err(read_error(object, error));
        }

        // S3: copy only what read cleanly.
        for target in s3 {
            let result = if !read.read_to_end() {
                Err(DeliveryError::transient(
                    "object_not_verified",
                    "the object was not read to the end, so it is not copied",
                ))
            } else if read.stats.misattributed > 0 {
                Err(DeliveryError::permanent(
                    "misattributed_records",
                    format!(
                        "the object holds {} records of another tenant; it is not copied into {}'s bucket",
                        read.stats.misattributed, tenant_id
                    ),
                ))
            } else {
                self.copy(&target, &key, &fetched.etag, fetched.size, &tenant_id)
                    .await
            };
            match result {
                Ok(()) => {
                    report.s3_copies += 1;
                    if let Err(error) = self
                        .inner
                        .progress
                        .complete(&target.progress_key, &self.owner, &target.state)
                        .await
                    {
                        failures.push(ConfigFailure {
                            delivery_type: DeliveryType::S3,
                            error: error.into(),
                        });
                    }
                }
                Err(error) => {
                    self.inner
                        .progress
                        .release(&target.progress_key, &self.owner)
                        .await;
                    failures.push(ConfigFailure {
                        delivery_type: DeliveryType::S3,
                        error,
                    });
                }
            }
        }

        if !failures.is_empty() {
            return Err(delivery_failed(report, failures));
        }
        if let Some(created) = object.event_time.or(fetched.last_modified) {
            let latency = (Utc::now() - created).to_std().unwrap_or_default();
            DeliveryLatency {
                tenant: &tenant_id,
                latency,
            }
            .emit();
        }
        Ok(Finished::Delivered(report))
    }

    /// GetObject: headers now, the body streamed later.
    async fn fetch(&self, tenant_id: &str) -> Result<Fetched, ProcessError> {
        let object = self.object;
        let output = with_retries(&self.inner.limits.retry, tenant_id, "s3:GetObject", || {
            self.inner
                .s3
                .get_object()
                .bucket(&object.bucket)
                .key(&object.key)
                .set_version_id(object.version_id.clone())
                .send()
        })
        .await
        .map_err(|failure| fetch_error(object, failure))?;
        let etag = output
            .e_tag()
            .map(|etag| etag.trim_matches('"').to_owned())
            .or_else(|| object.etag.clone())
            .unwrap_or_default();
        let last_modified = output
            .last_modified()
            .and_then(|time| DateTime::<Utc>::from_timestamp(time.secs(), time.subsec_nanos()));
        let size = output.content_length().and_then(|n| u64::try_from(n).ok());
        Ok(Fetched {
            etag,
            last_modified,
            size,
            body: output.body,
        })
    }

    async fn cloudwatch_target(
        &self,
        config: &Arc<DeliveryConfig>,
        key: &ObjectKey,
        progress_key: ProgressKey,
        mut state: ProgressState,
    ) -> Result<CloudWatchTarget, (ProgressKey, DeliveryError)> {
        let session = match self
            .inner
            .credentials
            .tenant(config, &key.partition.cluster_id)
            .await
        {
            Ok(session) => session,
            Err(error) => return Err((progress_key, error)),
        };
        let mut builder = aws_sdk_cloudwatchlogs::config::Builder::from(&session.config)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(self.inner.limits.request_timeout)
                    .build(),
            );
        if let Some(url) = &self.inner.logs_endpoint_url {
            builder = builder.endpoint_url(url);
        }
        let client = aws_sdk_cloudwatchlogs::Client::from_conf(builder.build());
        let group = config.log_group_name.clone().unwrap_or_default();
        let service = LogsService::new(
            client,
            &config.tenant_id,
            session.destination,
            group.clone(),
            config.retention_days,
            self.inner.limits.retry,
            self.inner.known_streams.clone(),
        );
        let fingerprint = fingerprint(&[
            &group,
            config.effective_log_stream_template(),
            &config.desired_logs.join("\n"),
            &config.groups.join("\n"),
            &self.inner.batch_limits.max_events.to_string(),
        ]);
        if state
            .fingerprint
            .as_deref()
            .is_some_and(|stored| stored != fingerprint)
            && state.cursor.delivered() > 0
        {
            ProgressReset {
                tenant: &config.tenant_id,
                delivery_type: config.delivery_type,
            }
            .emit();
            state = ProgressState::default();
        }
        state.fingerprint = Some(fingerprint);
        Ok(CloudWatchTarget {
            config: config.clone(),
            service,
            progress_key,
            state,
            counts: CloudWatchCounts::default(),
            batches_resumed: 0,
            failure: None,
        })
    }

    async fn copy(
        &self,
        target: &S3Target,
        key: &ObjectKey,
        etag: &str,
        size: Option<u64>,
        tenant_id: &str,
    ) -> Result<(), DeliveryError> {
        if size.is_some_and(|size| size > MAX_COPY_BYTES) {
            return Err(DeliveryError::permanent(
                "object_too_large_to_copy",
                format!("object is over the {MAX_COPY_BYTES} bytes one CopyObject can copy"),
            ));
        }
        let request = CopyRequest::for_config(
            &target.config,
            &self.object.bucket,
            &self.object.key,
            self.object.version_id.as_deref(),
            etag,
            &key.to_key(),
            &key.partition.cluster_id,
        )
        .ok_or_else(|| {
            DeliveryError::permanent("invalid_config", "s3 config has no bucket_name")
        })?;
        let central = self
            .inner
            .credentials
            .central(target.config.target_region.as_deref())
            .await?;
        let client = {
            let base = logrelay_common::aws::s3_client(&central);
            aws_sdk_s3::Client::from_conf(
                base.config()
                    .to_builder()
                    .retry_config(RetryConfig::disabled())
                    .timeout_config(
                        TimeoutConfig::builder()
                            .operation_attempt_timeout(self.inner.limits.request_timeout)
                            .build(),
                    )
                    .build(),
            )
        };
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

/// The object's headers and body.
struct Fetched {
    etag: String,
    last_modified: Option<DateTime<Utc>>,
    size: Option<u64>,
    body: aws_sdk_s3::primitives::ByteStream,
}

fn tenant_lookup_error(tenant_id: &str, failure: Classified) -> ProcessError {
    ProcessError::TenantLookup {
        tenant_id: tenant_id.to_owned(),
        message: failure.message,
    }
}

fn fetch_error(object: &ObjectRef, failure: Classified) -> ProcessError {
    use logrelay_common::aws::ErrorClass;
    let (kind, reason) = match failure.class {
        ErrorClass::NotFound => (FailureKind::Permanent, "object_missing"),
        ErrorClass::AccessDenied => (FailureKind::Permanent, "object_access_denied"),
        class if class.is_retryable() => (FailureKind::Transient, "object_read"),
        _ => (FailureKind::Permanent, "object_read"),
    };
    ProcessError::ReadObject {
        kind,
        reason,
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        message: failure.message,
    }
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
fn delivery_failed(report: DeliveryReport, failures: Vec<ConfigFailure>) -> ProcessError {
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
