//! The processor core: one object in, one [`Outcome`] out, whatever the intake.
//!
//! bucket (only the central one) → key (never the quarantine prefix) → tenant (the key's `customer_id`) → the tenant's configs → the object (streamed from S3) →
//! records routed to each CloudWatch config's batches → PutLogEvents with the tenant's credentials,
//! progress recorded after every accepted batch → S3 copies (only of objects that read cleanly and
//! hold no other tenant's records) → progress completed, per-tenant counts emitted.
//! `docs/processor-delivery.md` explains the rules and guarantees.
//!
//! [`settings`] holds what the core is built from. One object's attempt (`run` below) takes its
//! steps from the files in this order: `attempt` (key, tenant, GetObject) → `claim` (progress
//! leases) → `targets` (credentials, services) → `read` (one read feeding the CloudWatch sink) →
//! `settle` (complete or release every lease, copy to S3, the report).

mod attempt;
mod bucket_owner;
mod claim;
mod read;
mod settings;
mod settle;
mod targets;
#[cfg(test)]
mod tests;
mod uploader;

pub use crate::deliver::cloudwatch::sink::{DEFAULT_MAX_IN_FLIGHT_PER_OBJECT, MAX_BATCHES_AHEAD};
pub use crate::record::{BadLine, Record, parse_record, parse_timestamp_text};
pub use settings::{DEFAULT_REQUEST_TIMEOUT, ProcessorLimits, ProcessorSettings, SettingsError};
pub use uploader::{ClusterWriters, ClusterWritersError, UploaderCheck, UploaderRefusal};

use crate::credentials::{CredentialBroker, CredentialSettings};
use crate::deliver::TenantPermits;
use crate::deliver::cloudwatch::batch::BatchLimits;
use crate::deliver::cloudwatch::service::KnownStreams;
use crate::error::ProcessError;
use crate::object::{DeliveryReport, FailureKind, ObjectHandler, ObjectRef, Outcome, SkipReason};
use crate::progress::{ProgressSettings, ProgressStore};
use crate::retry::{RetryTally, tallied};
use crate::telemetry::InternalEvent;
use crate::telemetry::events::ObjectFinished;
use crate::tenant::TenantDirectory;
use attempt::{Attempt, Finished};
use logrelay_common::aws::without_sdk_retries;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// The tenant config table does not answer at start.
#[derive(Debug, thiserror::Error)]
#[error(
    "the tenant config table {table:?} (TENANT_CONFIG_TABLE / --tenant-config-table) cannot be read: \
     {message}; check the name and that the processor's role may dynamodb:Query it"
)]
pub struct TenantTableError {
    /// The table.
    pub table: String,
    /// What failed.
    pub message: String,
}

/// The processor core: delivers one object per [`ObjectHandler::handle`] call. Cheap to clone;
/// clones share caches and limits.
#[derive(Debug, Clone)]
pub struct Processor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    key_prefix: String,
    central_bucket: Option<String>,
    logs_endpoint_url: Option<String>,
    force_redelivery: bool,
    cluster_writers: ClusterWriters,
    limits: ProcessorLimits,
    batch_limits: BatchLimits,
    s3: aws_sdk_s3::Client,
    tenants: TenantDirectory,
    credentials: CredentialBroker,
    progress: ProgressStore,
    known_streams: Arc<KnownStreams>,
    tenant_permits: TenantPermits,
    instance: String,
    attempts: AtomicU64,
}

impl Processor {
    /// Builds the core from its settings (no AWS call is made here).
    pub fn new(settings: ProcessorSettings) -> Result<Self, SettingsError> {
        settings::check_settings(&settings)?;
        let limits = settings.limits.clone();
        // Every client retries through `RetryPolicy` only, so RETRY_ATTEMPTS is the whole budget.
        let aws = without_sdk_retries(&settings.aws, Some(limits.request_timeout));
        let s3 = logrelay_common::aws::s3_client(&aws);
        let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
        let progress = ProgressStore::new(
            dynamodb.clone(),
            ProgressSettings {
                table: settings.delivery_progress_table.clone(),
                ttl: limits.progress_ttl,
                lease: limits.progress_lease,
            },
            limits.retry,
        );
        if !progress.is_enabled() {
            tracing::warn!(
                "no delivery progress table: redeliveries re-send, duplicate notifications are not detected"
            );
        }
        let credentials = CredentialBroker::new(
            settings.aws.clone(),
            CredentialSettings {
                central_role_arn: settings.central_role_arn.clone(),
                default_external_id: settings.default_external_id.clone(),
                max_concurrent_assume_role: limits.max_concurrent_assume_role,
                denied_retry_after: limits.denied_retry_after,
            },
        );
        let instance = format!("{:016x}", rand::random::<u64>());
        Ok(Self {
            inner: Arc::new(Inner {
                key_prefix: settings.key_prefix,
                central_bucket: settings.central_bucket,
                logs_endpoint_url: settings.logs_endpoint_url,
                force_redelivery: settings.force_redelivery,
                cluster_writers: settings.cluster_writers,
                batch_limits: BatchLimits::with_max_events(limits.max_batch_events),
                tenants: TenantDirectory::new(
                    dynamodb,
                    settings.tenant_config_table,
                    limits.tenant_cache_ttl,
                    limits.retry,
                ),
                tenant_permits: TenantPermits::new(limits.max_parallel_puts_per_tenant),
                limits,
                s3,
                credentials,
                progress,
                known_streams: Arc::default(),
                instance,
                attempts: AtomicU64::new(0),
            }),
        })
    }

    /// Proves at start that the tenant config table answers (see [`TenantDirectory::probe`]).
    pub async fn check_tenant_table(&self) -> Result<(), TenantTableError> {
        let tenants = &self.inner.tenants;
        tenants.probe().await.map_err(|failure| TenantTableError {
            table: tenants.table().to_owned(),
            message: failure.message,
        })
    }

    /// Delivers one object (the same as [`ObjectHandler::handle`]).
    pub async fn process(&self, object: &ObjectRef) -> Outcome {
        let uri = format!("s3://{}/{}", object.bucket, object.key);
        let mut attempt = Attempt::new(&self.inner, object);
        let tally = Arc::new(RetryTally::default());
        let result = tallied(tally.clone(), run(&mut attempt)).await;
        let tenant = attempt.tenant_id.clone().unwrap_or_default();
        if let (retries @ 1.., Some(last)) = tally.summary() {
            tracing::info!(
                object = %uri,
                tenant = %tenant,
                retries,
                last_error_class = %last,
                "object's AWS calls were retried"
            );
        }
        match result {
            Ok(Finished::Delivered(report)) => {
                ObjectFinished {
                    tenant: &tenant,
                    outcome: "delivered",
                    reason: "ok",
                    object: &uri,
                }
                .emit();
                Outcome::Delivered(report)
            }
            Ok(Finished::Skipped(reason)) => {
                let (label, why) = match reason {
                    SkipReason::AlreadyDelivered => ("skipped_duplicate", "ok"),
                    SkipReason::NothingWanted => ("skipped_unwanted", "ok"),
                    // Logged at warn level by the event: someone has to assign these lines.
                    SkipReason::Quarantined => ("skipped_quarantined", "no_known_tenant"),
                };
                ObjectFinished {
                    tenant: &tenant,
                    outcome: label,
                    reason: why,
                    object: &uri,
                }
                .emit();
                Outcome::Skipped(reason)
            }
            Err(error) => {
                let kind = error.kind();
                let label = match kind {
                    FailureKind::Transient => "failed_transient",
                    FailureKind::Permanent => "failed_permanent",
                };
                tracing::warn!(object = %uri, tenant = %tenant, error = %error, "object failed");
                ObjectFinished {
                    tenant: &tenant,
                    outcome: label,
                    reason: error.reason(),
                    object: &uri,
                }
                .emit();
                Outcome::Failed { kind, error }
            }
        }
    }
}

/// Runs one attempt through its steps, in the order the object meets them.
async fn run(attempt: &mut Attempt<'_>) -> Result<Finished, ProcessError> {
    check_bucket(attempt.inner.central_bucket.as_deref(), attempt.object)?;
    let key = attempt.parse_key()?;
    check_uploader(&attempt.inner.cluster_writers, &key, attempt.object)?;
    if key.partition.is_quarantine() {
        return Ok(Finished::Skipped(SkipReason::Quarantined));
    }
    let tenant_id = key.partition.customer_id.clone();
    let wanted = attempt.wanted_configs(&key, &tenant_id).await?;
    if wanted.is_empty() {
        return Ok(Finished::Skipped(SkipReason::NothingWanted));
    }
    let (headers, body) = attempt.fetch(&tenant_id).await?;
    let report = DeliveryReport {
        tenant_id,
        ..Default::default()
    };
    let mut targets = attempt.targets(&key, &wanted, &headers.etag).await;
    if settle::holds_nothing(&targets) {
        drop(body);
        return settle::nothing_held(targets, report);
    }
    let read = attempt
        .read_and_dispatch(&key, &headers, body, &mut targets)
        .await;
    attempt.settle(&key, &headers, targets, read, report).await
}

/// An object is read only from the central bucket (when it is known): a notification naming
/// another bucket — forged, or from a misrouted subscription — is refused before any read.
fn check_bucket(central: Option<&str>, object: &ObjectRef) -> Result<(), ProcessError> {
    match central {
        Some(central) if central != object.bucket => Err(ProcessError::ForeignBucket {
            bucket: object.bucket.clone(),
            central: central.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// With registered cluster writers, the object's uploader must be the writer of its key's cluster
/// (`uploader.rs`); a notification naming no uploader is counted as unverified.
fn check_uploader(
    writers: &ClusterWriters,
    key: &logrelay_common::key::ObjectKey,
    object: &ObjectRef,
) -> Result<(), ProcessError> {
    if writers.is_empty() {
        return Ok(());
    }
    if writers.check(&key.partition.cluster_id, object.uploader.as_deref())?
        == UploaderCheck::Unverified
    {
        metrics::counter!(crate::telemetry::events::UPLOADS_UNVERIFIED_TOTAL).increment(1);
    }
    Ok(())
}

impl ObjectHandler for Processor {
    fn handle(&self, object: &ObjectRef) -> impl std::future::Future<Output = Outcome> + Send {
        self.process(object)
    }
}
