//! The processor's error classes: every way processing an object can fail, each with a stable
//! metric label and a transient/permanent classification.
//!
//! Whole-object failures (bad key, unknown tenant, unreadable object) are variants of their own;
//! failures of single delivery configs are collected in [`ProcessError::Delivery`], which keeps the
//! per-config results and the counts of what *was* delivered, so a dead-lettered message still says
//! exactly what happened.

use crate::report::{DeliveryReport, FailureKind};
use logrelay_common::aws::{AwsError, ErrorClass};
use logrelay_common::tenant::DeliveryType;
use std::fmt;

/// Why processing an object failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The key is not in the logrelay layout.
    #[error("object key is not in the logrelay layout: {0}")]
    BadKey(#[from] logrelay_common::key::KeyError),
    /// The key's customer segment is not a valid tenant id (so no tenant can own the object).
    #[error("object key names an invalid tenant id {tenant_id:?}: {problem}")]
    BadTenantId {
        /// The decoded customer segment.
        tenant_id: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The notification names a bucket other than the central bucket; the object is never read.
    #[error("notification names bucket {bucket:?}, not the central bucket {central:?}; not read")]
    ForeignBucket {
        /// The bucket the notification names.
        bucket: String,
        /// The central bucket.
        central: String,
    },
    /// The notification's uploader may not write the key's cluster (`LOGRELAY_CLUSTER_WRITERS`);
    /// the object is never read.
    #[error("{0}; not read")]
    UploaderNotAllowed(#[from] crate::process::UploaderRefusal),
    /// No enabled, valid delivery config exists for the tenant.
    #[error("tenant {tenant_id:?} is not configured (no enabled, valid delivery config)")]
    TenantNotConfigured {
        /// The tenant named by the key.
        tenant_id: String,
    },
    /// The tenant's configs could not be read (DynamoDB failed); retried.
    #[error(
        "cannot read the configs of tenant {tenant_id:?} from table {table:?} (TENANT_CONFIG_TABLE): {message}"
    )]
    TenantLookup {
        /// The tenant named by the key.
        tenant_id: String,
        /// The tenant config table.
        table: String,
        /// What failed.
        message: String,
    },
    /// The object could not be fetched or decoded as a whole.
    #[error("cannot read s3://{bucket}/{key}: {message}")]
    ReadObject {
        /// Transient (network, 5xx) or permanent (missing, corrupt, gzip bomb).
        kind: FailureKind,
        /// Stable metric label, e.g. `object_missing`, `object_too_large`.
        reason: &'static str,
        /// Bucket of the object.
        bucket: String,
        /// Key of the object.
        key: String,
        /// Human-readable detail.
        message: String,
    },
    /// The delivery-progress table could not be read or written; retried.
    #[error("delivery progress: {message}")]
    Progress {
        /// Transient (DynamoDB unavailable) or permanent (table missing, access denied).
        kind: FailureKind,
        /// Stable metric label, e.g. `progress_store`, `in_progress_elsewhere`.
        reason: &'static str,
        /// Human-readable detail.
        message: String,
    },
    /// At least one delivery config failed; the others may have succeeded (see `failures`).
    #[error("delivery failed for {} of the configs of tenant {:?}: {}", failures.len(), report.tenant_id, summary(failures))]
    Delivery {
        /// Transient when any failed config may succeed on retry, permanent otherwise.
        kind: FailureKind,
        /// What was delivered before and besides the failures.
        report: Box<DeliveryReport>,
        /// One entry per failed config.
        failures: Vec<ConfigFailure>,
    },
    /// Any other failure, classified by the code that raised it.
    #[error("{message}")]
    Other {
        /// Transient or permanent.
        kind: FailureKind,
        /// Stable metric label, e.g. `access_denied`.
        reason: &'static str,
        /// Human-readable detail.
        message: String,
    },
}

impl ProcessError {
    /// Whether trying again may help.
    pub fn kind(&self) -> FailureKind {
        match self {
            ProcessError::BadKey(_)
            | ProcessError::BadTenantId { .. }
            | ProcessError::ForeignBucket { .. }
            | ProcessError::UploaderNotAllowed(_)
            | ProcessError::TenantNotConfigured { .. } => FailureKind::Permanent,
            ProcessError::TenantLookup { .. } => FailureKind::Transient,
            ProcessError::ReadObject { kind, .. }
            | ProcessError::Progress { kind, .. }
            | ProcessError::Delivery { kind, .. }
            | ProcessError::Other { kind, .. } => *kind,
        }
    }

    /// Stable, low-cardinality label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ProcessError::BadKey(_) => "bad_key",
            ProcessError::BadTenantId { .. } => "bad_tenant_id",
            ProcessError::ForeignBucket { .. } => "foreign_bucket",
            ProcessError::UploaderNotAllowed(_) => "uploader_not_allowed",
            ProcessError::TenantNotConfigured { .. } => "tenant_not_configured",
            ProcessError::TenantLookup { .. } => "tenant_lookup",
            ProcessError::Delivery { failures, .. } => match failures.as_slice() {
                [only] => only.error.reason,
                _ => "delivery",
            },
            ProcessError::ReadObject { reason, .. }
            | ProcessError::Progress { reason, .. }
            | ProcessError::Other { reason, .. } => reason,
        }
    }

    /// The delivery report, when some delivery happened before the failure.
    pub fn report(&self) -> Option<&DeliveryReport> {
        match self {
            ProcessError::Delivery { report, .. } => Some(report),
            _ => None,
        }
    }
}

/// One delivery config that failed for an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFailure {
    /// Which of the tenant's configs (a tenant has at most one per type).
    pub delivery_type: DeliveryType,
    /// What went wrong.
    pub error: DeliveryError,
}

impl fmt::Display for ConfigFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.delivery_type, self.error)
    }
}

fn summary(failures: &[ConfigFailure]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The AWS answer behind a failure, kept typed so callers (the `tenants doctor` hints) read the
/// call and AWS's error code from it instead of from the message text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCause {
    /// The call that failed, e.g. `logs:CreateLogGroup`.
    pub operation: String,
    /// What the caller should do about it.
    pub class: ErrorClass,
    /// AWS's error code, when AWS answered with one.
    pub code: Option<String>,
}

impl AwsCause {
    /// The cause of a failed call; `None` when no call was made (an invalid role step).
    pub fn of(error: &AwsError) -> Option<Self> {
        Some(Self {
            operation: error.operation()?.to_owned(),
            class: error.class(),
            code: error.code().map(str::to_owned),
        })
    }
}

/// A failure of one delivery (one config, or one request of it), classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({reason}, {})", kind_name(*.kind))]
pub struct DeliveryError {
    /// Transient (retry later) or permanent (dead-letter).
    pub kind: FailureKind,
    /// Stable metric label: `access_denied`, `throttled`, `no_such_bucket`, `invalid_parameter`, ….
    pub reason: &'static str,
    /// Human-readable detail.
    pub message: String,
    /// The AWS error behind it, when an AWS call failed.
    pub cause: Option<AwsCause>,
}

impl DeliveryError {
    /// A failure that may succeed later.
    pub fn transient(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Transient,
            reason,
            message: message.into(),
            cause: None,
        }
    }

    /// A failure that will not succeed until something changes (config, IAM, bucket).
    pub fn permanent(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Permanent,
            reason,
            message: message.into(),
            cause: None,
        }
    }

    /// The same failure with the AWS error behind it.
    pub fn with_cause(mut self, cause: Option<AwsCause>) -> Self {
        self.cause = cause;
        self
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        self.kind == FailureKind::Transient
    }
}

fn kind_name(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Transient => "transient",
        FailureKind::Permanent => "permanent",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_transient_config_failure_makes_the_object_transient() {
        let failures = vec![
            ConfigFailure {
                delivery_type: DeliveryType::Cloudwatch,
                error: DeliveryError::permanent("access_denied", "role refused"),
            },
            ConfigFailure {
                delivery_type: DeliveryType::S3,
                error: DeliveryError::transient("throttled", "slow down"),
            },
        ];
        let error = ProcessError::Delivery {
            kind: FailureKind::Transient,
            report: Box::default(),
            failures,
        };
        assert_eq!(error.kind(), FailureKind::Transient);
        assert_eq!(error.reason(), "delivery");
        let text = error.to_string();
        assert!(
            text.contains("cloudwatch: role refused (access_denied, permanent)"),
            "{text}"
        );
        assert!(
            text.contains("s3: slow down (throttled, transient)"),
            "{text}"
        );
    }

    #[test]
    fn a_single_config_failure_lends_its_reason() {
        let error = ProcessError::Delivery {
            kind: FailureKind::Permanent,
            report: Box::default(),
            failures: vec![ConfigFailure {
                delivery_type: DeliveryType::Cloudwatch,
                error: DeliveryError::permanent("access_denied", "refused"),
            }],
        };
        assert_eq!(error.reason(), "access_denied");
        assert!(error.report().is_some());
    }
}
