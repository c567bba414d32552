//! The core's settings: what the intake side passes to [`super::Processor::new`] (tables, roles,
//! prefix, endpoint override) and the limits with their production defaults, checked at start.

use crate::credentials::{DEFAULT_DENIED_RETRY_AFTER, DEFAULT_MAX_CONCURRENT_ASSUME_ROLE};
use crate::deliver::DEFAULT_MAX_PARALLEL_PUTS_PER_TENANT;
use crate::progress::{MAX_LEASE, MIN_LEASE, ProgressSettings};
use crate::retry::RetryPolicy;
use crate::tenant::DEFAULT_TENANT_CACHE_TTL;
use aws_config::SdkConfig;
use logrelay_common::codec::ReadLimits;
use std::time::Duration;

use crate::deliver::cloudwatch::sink::DEFAULT_MAX_IN_FLIGHT_PER_OBJECT;

/// Default timeout of one AWS request attempt (PutLogEvents of 1 MiB normally takes well under a
/// second; a stalled connection is retried instead of waited on).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Limits and timings of the core; every field has a production default.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessorLimits {
    /// Retry policy of every AWS call (`RETRY_ATTEMPTS` sets `attempts`).
    pub retry: RetryPolicy,
    /// Events per PutLogEvents request (`LOGRELAY_PUT_LOG_EVENTS_MAX_EVENTS`; 1..=10,000).
    pub max_batch_events: usize,
    /// PutLogEvents in flight per tenant, over all objects.
    pub max_parallel_puts_per_tenant: usize,
    /// Batches of one object in flight.
    pub max_in_flight_per_object: usize,
    /// AssumeRole calls in flight.
    pub max_concurrent_assume_role: usize,
    /// How long a tenant's configs are cached.
    pub tenant_cache_ttl: Duration,
    /// How long an AssumeRole refusal is remembered.
    pub denied_retry_after: Duration,
    /// Decompressed-size cap and line cap of objects.
    pub read: ReadLimits,
    /// Lifetime of progress items after their last write.
    pub progress_ttl: Duration,
    /// Lease of an attempt on an object's progress (`LOGRELAY_PROGRESS_LEASE_SECONDS`;
    /// `MIN_LEASE..=MAX_LEASE` of [`crate::progress`]).
    pub progress_lease: Duration,
    /// Timeout of one AWS request attempt.
    pub request_timeout: Duration,
}

impl Default for ProcessorLimits {
    fn default() -> Self {
        let progress = ProgressSettings::default();
        Self {
            retry: RetryPolicy::default(),
            max_batch_events: crate::deliver::cloudwatch::batch::MAX_BATCH_EVENTS,
            max_parallel_puts_per_tenant: DEFAULT_MAX_PARALLEL_PUTS_PER_TENANT,
            max_in_flight_per_object: DEFAULT_MAX_IN_FLIGHT_PER_OBJECT,
            max_concurrent_assume_role: DEFAULT_MAX_CONCURRENT_ASSUME_ROLE,
            tenant_cache_ttl: DEFAULT_TENANT_CACHE_TTL,
            denied_retry_after: DEFAULT_DENIED_RETRY_AFTER,
            read: ReadLimits::default(),
            progress_ttl: progress.ttl,
            progress_lease: progress.lease,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// Everything the core depends on; the intake side builds it from `config.rs`.
#[derive(Debug, Clone)]
pub struct ProcessorSettings {
    /// The processor's own AWS identity, region and endpoint (`logrelay_common::aws::base_config`).
    pub aws: SdkConfig,
    /// `TENANT_CONFIG_TABLE`.
    pub tenant_config_table: String,
    /// `DELIVERY_PROGRESS_TABLE`; `None` turns resume and duplicate detection off.
    pub delivery_progress_table: Option<String>,
    /// `CENTRAL_LOG_DISTRIBUTION_ROLE_ARN`; `None` uses the processor's own identity as central hop.
    pub central_role_arn: Option<String>,
    /// ExternalId for tenants whose config has none (deployments with one ExternalId for every tenant).
    pub default_external_id: Option<String>,
    /// Deployment prefix of keys in the central bucket (`""` = none).
    pub key_prefix: String,
    /// `LOGRELAY_CENTRAL_BUCKET`: the only bucket objects are read from; a notification naming
    /// another is refused permanently (dead-lettered). `None` reads any bucket IAM allows.
    pub central_bucket: Option<String>,
    /// CloudWatch Logs endpoint override (tests, VPC endpoints); `None` = the SDK's.
    pub logs_endpoint_url: Option<String>,
    /// Deliver objects again even when the progress table says a config is complete for them, from
    /// their first batch (`replay --force`). Duplicates what was delivered before; an attempt in
    /// progress elsewhere (an unexpired lease) is still respected.
    pub force_redelivery: bool,
    /// `LOGRELAY_CLUSTER_WRITERS`: each cluster's writer role; empty = uploaders not checked.
    pub cluster_writers: super::uploader::ClusterWriters,
    /// Limits and timings.
    pub limits: ProcessorLimits,
}

impl ProcessorSettings {
    /// Settings with default limits.
    pub fn new(aws: SdkConfig, tenant_config_table: impl Into<String>) -> Self {
        Self {
            aws,
            tenant_config_table: tenant_config_table.into(),
            delivery_progress_table: None,
            central_role_arn: None,
            default_external_id: None,
            key_prefix: String::new(),
            central_bucket: None,
            logs_endpoint_url: None,
            force_redelivery: false,
            cluster_writers: super::uploader::ClusterWriters::default(),
            limits: ProcessorLimits::default(),
        }
    }
}

/// A setting the core cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid processor setting {field}: {message}")]
pub struct SettingsError {
    /// The field (environment name where there is one).
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

pub(super) fn check_settings(settings: &ProcessorSettings) -> Result<(), SettingsError> {
    let bad = |field, message: String| Err(SettingsError { field, message });
    if settings.tenant_config_table.trim().is_empty() {
        return bad("TENANT_CONFIG_TABLE", "must not be empty".into());
    }
    if settings
        .delivery_progress_table
        .as_deref()
        .is_some_and(|t| t.trim().is_empty())
    {
        return bad(
            "DELIVERY_PROGRESS_TABLE",
            "must not be empty when set".into(),
        );
    }
    if let Err(error) = logrelay_common::key::validate_prefix(&settings.key_prefix) {
        return bad("key_prefix", error.to_string());
    }
    if let Some(arn) = &settings.central_role_arn
        && logrelay_common::aws::role_account_id(arn).is_none()
    {
        return bad(
            "CENTRAL_LOG_DISTRIBUTION_ROLE_ARN",
            format!("{arn:?} is not an IAM role ARN"),
        );
    }
    let limits = &settings.limits;
    if limits.retry.attempts == 0 {
        return bad("RETRY_ATTEMPTS", "must be at least 1".into());
    }
    if !(1..=crate::deliver::cloudwatch::batch::MAX_BATCH_EVENTS).contains(&limits.max_batch_events)
    {
        return bad(
            "LOGRELAY_PUT_LOG_EVENTS_MAX_EVENTS",
            format!("must be 1..=10000, is {}", limits.max_batch_events),
        );
    }
    if settings.delivery_progress_table.is_some()
        && !(MIN_LEASE..=MAX_LEASE).contains(&limits.progress_lease)
    {
        return bad(
            "LOGRELAY_PROGRESS_LEASE_SECONDS",
            format!(
                "must be {} to {} s, is {:?}",
                MIN_LEASE.as_secs(),
                MAX_LEASE.as_secs(),
                limits.progress_lease
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_lease(lease: Duration, table: Option<&str>) -> ProcessorSettings {
        let mut settings = ProcessorSettings::new(SdkConfig::builder().build(), "tenants");
        settings.delivery_progress_table = table.map(str::to_owned);
        settings.limits.progress_lease = lease;
        settings
    }

    #[test]
    fn the_progress_lease_must_be_within_its_bounds_when_progress_is_on() {
        for lease in [MIN_LEASE, Duration::from_secs(20), MAX_LEASE] {
            assert_eq!(check_settings(&with_lease(lease, Some("progress"))), Ok(()));
        }
        for lease in [Duration::from_secs(9), MAX_LEASE + Duration::from_secs(1)] {
            let error = check_settings(&with_lease(lease, Some("progress"))).expect_err("bounds");
            assert_eq!(error.field, "LOGRELAY_PROGRESS_LEASE_SECONDS");
        }
        assert_eq!(
            check_settings(&with_lease(Duration::ZERO, None)),
            Ok(()),
            "no table, no lease"
        );
    }
}
