//! Tenant delivery config: the model of the tenant table's items (also read from YAML/JSON files;
//! the processor maps it to and from DynamoDB items), its validation, the application filter and
//! the CloudWatch log stream template.
//!
//! Each item is keyed by `tenant_id` (HASH) and `type` (RANGE: `cloudwatch` or `s3`); one flat
//! struct mirrors the item. See `docs/tenant-config.md` for every field and rule.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The stream template used when none is set: one stream per pod.
pub const DEFAULT_LOG_STREAM_TEMPLATE: &str = "{pod_name}";
/// The key prefix used in the tenant's bucket when none is set (the ROSA log forwarding layout).
pub const DEFAULT_BUCKET_PREFIX: &str = "ROSA/cluster-logs/";
/// Longest tenant id (the DynamoDB key stays short and readable; ids are never truncated in keys).
pub const MAX_TENANT_ID_CHARS: usize = 128;
/// CloudWatch Logs limit on a log stream name (CreateLogStream: 1–512 characters).
pub const MAX_LOG_STREAM_NAME_CHARS: usize = 512;
/// CloudWatch Logs limit on a log group name (CreateLogGroup: 1–512 characters).
pub const MAX_LOG_GROUP_NAME_CHARS: usize = 512;
/// The stream name used when a template expands to nothing (CloudWatch needs at least 1 character).
pub const EMPTY_LOG_STREAM_NAME: &str = "unknown";
/// STS AssumeRole limits on `ExternalId`: 2–1224 characters of `[\w+=,.@:/-]`.
pub const EXTERNAL_ID_CHARS: std::ops::RangeInclusive<usize> = 2..=1224;
/// IAM limit on a role name (64 characters).
pub const MAX_ROLE_NAME_CHARS: usize = 64;
/// IAM limit on a role path (512 characters).
pub const MAX_ROLE_PATH_CHARS: usize = 512;
/// Longest bucket prefix: the same room the central bucket leaves for its deployment prefix, so
/// the object layout always fits S3's 1,024-byte key limit below it.
pub const MAX_BUCKET_PREFIX_BYTES: usize = crate::key::MAX_PREFIX_BYTES;
/// The retention periods CloudWatch Logs accepts (PutRetentionPolicy `retentionInDays`).
pub const ALLOWED_RETENTION_DAYS: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];
/// Placeholders a log stream template may use.
pub const STREAM_PLACEHOLDERS: [&str; 6] = [
    "pod_name",
    "namespace",
    "application",
    "container_name",
    "cluster_id",
    "customer_id",
];

/// Named application groups a config can select (matched case-insensitively).
pub const APPLICATION_GROUPS: [(&str, &[&str]); 4] = [
    ("API", &["kube-apiserver", "openshift-apiserver"]),
    (
        "Authentication",
        &[
            "oauth-server",
            "oauth-apiserver",
            "oauth-openshift",
            "openshift-oauth-apiserver",
        ],
    ),
    (
        "Controller Manager",
        &[
            "kube-controller-manager",
            "openshift-controller-manager",
            "openshift-route-controller-manager",
        ],
    ),
    ("Scheduler", &["kube-scheduler"]),
];

/// Where a tenant's logs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryType {
    /// CloudWatch Logs in the tenant's account.
    Cloudwatch,
    /// An S3 bucket in the tenant's account.
    S3,
}

impl DeliveryType {
    /// The name used in items and files (`cloudwatch` / `s3`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cloudwatch => "cloudwatch",
            Self::S3 => "s3",
        }
    }
}

impl fmt::Display for DeliveryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `Debug` and the `tenants` tools print in place of an ExternalId. Not a valid ExternalId
/// (`*` is outside STS's alphabet), so a redacted config put back is refused, never stored.
pub const REDACTED_EXTERNAL_ID: &str = "***";

/// An optional ExternalId for `Debug`: `Some(ExternalId(***))` or `None`, never the value.
pub struct RedactedExternalId<'a>(pub Option<&'a str>);

impl fmt::Debug for RedactedExternalId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => write!(f, "Some(ExternalId({REDACTED_EXTERNAL_ID}))"),
            None => f.write_str("None"),
        }
    }
}

/// One delivery of one tenant: a DynamoDB item keyed by `tenant_id` + `type`.
///
/// Fields of the other delivery type are ignored. Attributes this version does not know are kept
/// in `extra` and written back when the config is saved again (the processor's `tenant::item`).
/// `Debug` never prints the ExternalId.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryConfig {
    /// Tenant id (partition key): 1–128 of `[A-Za-z0-9_-]`.
    pub tenant_id: String,
    /// Delivery type (sort key).
    #[serde(rename = "type")]
    pub delivery_type: DeliveryType,
    /// Whether delivery is on (default `true`).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Applications to deliver; with `groups`, empty means all.
    #[serde(default)]
    pub desired_logs: Vec<String>,
    /// Application groups to deliver (see [`APPLICATION_GROUPS`]).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Region to deliver to (default: the processor's region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_region: Option<String>,
    /// External id passed to AssumeRole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// DynamoDB TTL (epoch seconds) after which the item is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    /// When the item was created (free text, RFC 3339 by convention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// When the item was last changed (free text, RFC 3339 by convention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Role in the tenant's account to assume (cloudwatch; required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_distribution_role_arn: Option<String>,
    /// Log group to write to (cloudwatch; required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_group_name: Option<String>,
    /// Log stream name template (cloudwatch; default [`DEFAULT_LOG_STREAM_TEMPLATE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_stream_template: Option<String>,
    /// Retention to set on the log group (cloudwatch; one of [`ALLOWED_RETENTION_DAYS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<i32>,
    /// Bucket to write to (s3; required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_name: Option<String>,
    /// Key prefix in the bucket (s3; default [`DEFAULT_BUCKET_PREFIX`], `""` = bucket root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_prefix: Option<String>,
    /// Account (12 digits) that must own `bucket_name` (s3): sent as `ExpectedBucketOwner` on every
    /// copy. Default: the account of the tenant's cloudwatch role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_owner_account_id: Option<String>,
    /// Attributes this version does not know, kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn default_true() -> bool {
    true
}

impl fmt::Debug for DeliveryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryConfig")
            .field("tenant_id", &self.tenant_id)
            .field("delivery_type", &self.delivery_type)
            .field("enabled", &self.enabled)
            .field("desired_logs", &self.desired_logs)
            .field("groups", &self.groups)
            .field("target_region", &self.target_region)
            .field(
                "external_id",
                &RedactedExternalId(self.external_id.as_deref()),
            )
            .field("ttl", &self.ttl)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("log_distribution_role_arn", &self.log_distribution_role_arn)
            .field("log_group_name", &self.log_group_name)
            .field("log_stream_template", &self.log_stream_template)
            .field("retention_days", &self.retention_days)
            .field("bucket_name", &self.bucket_name)
            .field("bucket_prefix", &self.bucket_prefix)
            .field("bucket_owner_account_id", &self.bucket_owner_account_id)
            .field("extra", &self.extra)
            .finish()
    }
}

/// One problem with a config, naming its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigProblem {
    /// The field at fault (`desired_logs[2]` for a list entry).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigProblem {
    /// Makes a problem.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A config refused by a rule, naming its tenant and field, with the typed cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant {tenant_id}: {field}: {cause}")]
pub struct TenantConfigError {
    /// The tenant whose config is at fault.
    pub tenant_id: String,
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong.
    pub cause: ConfigCause,
}

/// Why a rule refused a config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigCause {
    /// The role ARN names a partition AWS does not have.
    #[error("unknown partition {partition:?} (known: {known})", known = crate::partition::PARTITIONS.join(", "))]
    UnknownPartition {
        /// The partition as written.
        partition: String,
    },
    /// The role ARN's partition does not serve the config's region.
    #[error(
        "partition {partition:?} does not serve region {region:?} (that region is in {expected:?})"
    )]
    PartitionMismatch {
        /// The role ARN's partition.
        partition: String,
        /// The config's `target_region`.
        region: String,
        /// The partition that serves `region`.
        expected: &'static str,
    },
    /// An enabled cloudwatch config has no ExternalId of its own.
    #[error(
        "an enabled cloudwatch config needs its own ExternalId (run `tenants onboard`, or accept \
         it without one for a migration with --allow-no-external-id)"
    )]
    MissingExternalId,
}

impl From<TenantConfigError> for ConfigProblem {
    fn from(error: TenantConfigError) -> Self {
        Self::new(
            error.field,
            format!("{} (tenant {})", error.cause, error.tenant_id),
        )
    }
}

/// The values a log stream template can use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamFields<'a> {
    /// `{pod_name}`.
    pub pod_name: &'a str,
    /// `{namespace}`.
    pub namespace: &'a str,
    /// `{application}`.
    pub application: &'a str,
    /// `{container_name}`.
    pub container_name: &'a str,
    /// `{cluster_id}`.
    pub cluster_id: &'a str,
    /// `{customer_id}`.
    pub customer_id: &'a str,
}

impl<'a> From<&'a crate::record::LogRecord> for StreamFields<'a> {
    fn from(record: &'a crate::record::LogRecord) -> Self {
        Self {
            pod_name: &record.pod_name,
            namespace: &record.namespace,
            application: &record.application,
            container_name: &record.container_name,
            cluster_id: &record.cluster_id,
            customer_id: &record.customer_id,
        }
    }
}

impl StreamFields<'_> {
    fn get(&self, placeholder: &str) -> Option<&str> {
        Some(match placeholder {
            "pod_name" => self.pod_name,
            "namespace" => self.namespace,
            "application" => self.application,
            "container_name" => self.container_name,
            "cluster_id" => self.cluster_id,
            "customer_id" => self.customer_id,
            _ => return None,
        })
    }
}

/// Reading or writing a config failed.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// A YAML or JSON config file could not be read.
    #[error("cannot read tenant config file: {0}")]
    File(#[source] serde_yaml::Error),
}

impl DeliveryConfig {
    /// Checks every rule and returns every problem, each naming its field. Validation looks at
    /// this config only; one bad config says nothing about another.
    pub fn validate(&self) -> Result<(), Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        if let Err(problem) = validate_tenant_id(&self.tenant_id) {
            problems.push(problem);
        }
        for (i, name) in self.desired_logs.iter().enumerate() {
            if name.trim().is_empty() {
                problems.push(ConfigProblem::new(
                    format!("desired_logs[{i}]"),
                    "empty application name",
                ));
            }
        }
        for (i, group) in self.groups.iter().enumerate() {
            if application_group(group).is_none() {
                let known: Vec<&str> = APPLICATION_GROUPS.iter().map(|(name, _)| *name).collect();
                problems.push(ConfigProblem::new(
                    format!("groups[{i}]"),
                    format!("unknown group {group:?} (known: {})", known.join(", ")),
                ));
            }
        }
        if let Some(region) = &self.target_region
            && !is_region_shaped(region)
        {
            problems.push(ConfigProblem::new(
                "target_region",
                format!("{region:?} is not a region name like us-east-1"),
            ));
        }
        if let Some(external_id) = &self.external_id {
            check_external_id(external_id, &mut problems);
        }
        if let Some(ttl) = self.ttl
            && ttl < 0
        {
            problems.push(ConfigProblem::new(
                "ttl",
                "must be epoch seconds (not negative)",
            ));
        }
        match self.delivery_type {
            DeliveryType::Cloudwatch => self.validate_cloudwatch(&mut problems),
            DeliveryType::S3 => self.validate_s3(&mut problems),
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    fn validate_cloudwatch(&self, problems: &mut Vec<ConfigProblem>) {
        match &self.log_distribution_role_arn {
            None => problems.push(ConfigProblem::new(
                "log_distribution_role_arn",
                "required for cloudwatch delivery",
            )),
            Some(arn) => {
                if let Err(message) = check_role_arn(arn) {
                    problems.push(ConfigProblem::new("log_distribution_role_arn", message));
                } else if let Err(error) = self.check_role_partition() {
                    problems.push(error.into());
                }
            }
        }
        match &self.log_group_name {
            None => problems.push(ConfigProblem::new(
                "log_group_name",
                "required for cloudwatch delivery",
            )),
            Some(name) => {
                let length = name.chars().count();
                if !(1..=MAX_LOG_GROUP_NAME_CHARS).contains(&length) {
                    problems.push(ConfigProblem::new(
                        "log_group_name",
                        format!("must be 1-{MAX_LOG_GROUP_NAME_CHARS} characters, is {length}"),
                    ));
                }
                if let Some(bad) = name.chars().find(|&c| !is_log_group_char(c)) {
                    problems.push(ConfigProblem::new(
                        "log_group_name",
                        format!("character {bad:?} not allowed (only A-Z a-z 0-9 . - _ / #)"),
                    ));
                }
            }
        }
        if let Some(template) = &self.log_stream_template
            && let Err(message) = check_stream_template(template)
        {
            problems.push(ConfigProblem::new("log_stream_template", message));
        }
        if let Some(days) = self.retention_days
            && !ALLOWED_RETENTION_DAYS.contains(&days)
        {
            problems.push(ConfigProblem::new(
                "retention_days",
                format!(
                    "{days} is not a CloudWatch retention period (1, 3, 5, 7, 14, 30, …, 3653)"
                ),
            ));
        }
    }

    fn validate_s3(&self, problems: &mut Vec<ConfigProblem>) {
        match &self.bucket_name {
            None => problems.push(ConfigProblem::new(
                "bucket_name",
                "required for s3 delivery",
            )),
            Some(bucket) => {
                if let Err(message) = check_bucket_name(bucket) {
                    problems.push(ConfigProblem::new("bucket_name", message));
                }
            }
        }
        if let Some(prefix) = &self.bucket_prefix
            && let Err(message) = check_bucket_prefix(prefix)
        {
            problems.push(ConfigProblem::new("bucket_prefix", message));
        }
        if let Some(account) = &self.bucket_owner_account_id
            && !is_account_id(account)
        {
            problems.push(ConfigProblem::new(
                "bucket_owner_account_id",
                format!("{account:?} is not an AWS account id (12 digits)"),
            ));
        }
    }

    /// The role ARN's partition is a known one and, with a `target_region`, the one serving that
    /// region (STS of one partition never grants roles of another).
    pub fn check_role_partition(&self) -> Result<(), TenantConfigError> {
        let Some(partition) = self
            .log_distribution_role_arn
            .as_deref()
            .and_then(crate::partition::of_arn)
        else {
            return Ok(());
        };
        let refuse = |cause| TenantConfigError {
            tenant_id: self.tenant_id.clone(),
            field: "log_distribution_role_arn",
            cause,
        };
        if !crate::partition::is_known(partition) {
            return Err(refuse(ConfigCause::UnknownPartition {
                partition: partition.to_owned(),
            }));
        }
        let Some(region) = self.target_region.as_deref() else {
            return Ok(());
        };
        let expected = crate::partition::of_region(region);
        if partition == expected {
            Ok(())
        } else {
            Err(refuse(ConfigCause::PartitionMismatch {
                partition: partition.to_owned(),
                region: region.to_owned(),
                expected,
            }))
        }
    }

    /// An enabled cloudwatch config must carry its own ExternalId: without one the processor
    /// falls back to the deployment-wide default, which every such tenant shares. Not part of
    /// [`DeliveryConfig::validate`] (stored configs relying on the default still deliver); the
    /// `tenants` tools refuse such configs unless told otherwise.
    pub fn require_external_id(&self) -> Result<(), TenantConfigError> {
        let needed = self.enabled && self.delivery_type == DeliveryType::Cloudwatch;
        if needed && self.external_id.is_none() {
            return Err(TenantConfigError {
                tenant_id: self.tenant_id.clone(),
                field: "external_id",
                cause: ConfigCause::MissingExternalId,
            });
        }
        Ok(())
    }

    /// Whether this config selects `application`: it is named in `desired_logs` or belongs to one
    /// of `groups` (ASCII case-insensitive); both empty selects everything. Does not look at
    /// `enabled` (see [`DeliveryConfig::delivers`]); unknown groups select nothing.
    pub fn wants(&self, application: &str) -> bool {
        if self.desired_logs.is_empty() && self.groups.is_empty() {
            return true;
        }
        self.desired_logs
            .iter()
            .any(|name| name.eq_ignore_ascii_case(application))
            || self
                .groups
                .iter()
                .filter_map(|group| application_group(group))
                .flatten()
                .any(|name| name.eq_ignore_ascii_case(application))
    }

    /// Whether this config is enabled and [wants](DeliveryConfig::wants) `application`.
    pub fn delivers(&self, application: &str) -> bool {
        self.enabled && self.wants(application)
    }

    /// Reads a YAML (or JSON) file holding a list of configs. This does not validate.
    pub fn list_from_yaml(text: &str) -> Result<Vec<Self>, TenantError> {
        serde_yaml::from_str(text).map_err(TenantError::File)
    }

    /// The stream template, or the default.
    pub fn effective_log_stream_template(&self) -> &str {
        self.log_stream_template
            .as_deref()
            .unwrap_or(DEFAULT_LOG_STREAM_TEMPLATE)
    }

    /// Expands the stream template into a valid CloudWatch log stream name: placeholders are
    /// replaced (unknown ones stay as written), `:` and `*` become `_`, the result is cut to 512
    /// characters, and an empty result becomes [`EMPTY_LOG_STREAM_NAME`].
    pub fn log_stream_name(&self, fields: &StreamFields<'_>) -> String {
        let mut out = String::new();
        let mut rest = self.effective_log_stream_template();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match after
                .find('}')
                .and_then(|close| Some((fields.get(&after[..close])?, close)))
            {
                Some((value, close)) => {
                    out.push_str(value);
                    rest = &after[close + 1..];
                }
                None => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        let name: String = out
            .chars()
            .map(|c| if c == ':' || c == '*' { '_' } else { c })
            .take(MAX_LOG_STREAM_NAME_CHARS)
            .collect();
        if name.is_empty() {
            EMPTY_LOG_STREAM_NAME.to_owned()
        } else {
            name
        }
    }

    /// The bucket prefix, or [`DEFAULT_BUCKET_PREFIX`] when unset.
    pub fn effective_bucket_prefix(&self) -> &str {
        self.bucket_prefix
            .as_deref()
            .unwrap_or(DEFAULT_BUCKET_PREFIX)
    }
}

/// The applications of a named group (ASCII case-insensitive), if the group exists.
pub fn application_group(name: &str) -> Option<&'static [&'static str]> {
    APPLICATION_GROUPS
        .iter()
        .find(|(group, _)| group.eq_ignore_ascii_case(name))
        .map(|(_, applications)| *applications)
}

/// An AWS account id: 12 digits.
pub fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// The account of a role ARN (`arn:PARTITION:iam::ACCOUNT:role/…`), if it has that shape.
pub fn role_arn_account(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("arn"), Some(_), Some("iam"), Some(""), Some(account)) if is_account_id(account) => {
            Some(account)
        }
        _ => None,
    }
}

/// Checks a tenant id: 1–128 characters of `[A-Za-z0-9_-]`.
pub fn validate_tenant_id(id: &str) -> Result<(), ConfigProblem> {
    if id.is_empty() || id.len() > MAX_TENANT_ID_CHARS {
        return Err(ConfigProblem::new(
            "tenant_id",
            format!(
                "must be 1-{MAX_TENANT_ID_CHARS} characters, is {}",
                id.chars().count()
            ),
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    {
        return Err(ConfigProblem::new(
            "tenant_id",
            format!("character {bad:?} not allowed (only A-Z a-z 0-9 _ -)"),
        ));
    }
    Ok(())
}

fn is_log_group_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '#')
}

/// `\w+=,.@-` plus `/` and `:` as STS allows in an external id.
fn is_external_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | ':' | '/' | '-')
}

/// `\w+=,.@-` as IAM allows in role names and paths.
fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-')
}

fn check_external_id(external_id: &str, problems: &mut Vec<ConfigProblem>) {
    if external_id == REDACTED_EXTERNAL_ID {
        problems.push(ConfigProblem::new(
            "external_id",
            "is the redacted placeholder `tenants get`/`list` print; print the config with \
             --show-external-id to put it back",
        ));
        return;
    }
    let length = external_id.chars().count();
    if !EXTERNAL_ID_CHARS.contains(&length) {
        problems.push(ConfigProblem::new(
            "external_id",
            format!(
                "must be {}-{} characters, is {length}",
                EXTERNAL_ID_CHARS.start(),
                EXTERNAL_ID_CHARS.end()
            ),
        ));
    }
    if let Some(bad) = external_id.chars().find(|&c| !is_external_id_char(c)) {
        problems.push(ConfigProblem::new(
            "external_id",
            format!("character {bad:?} not allowed (only A-Z a-z 0-9 _ + = , . @ : / -)"),
        ));
    }
}

/// `arn:aws[-a-z]*:iam::{12 digits}:role/{path/}{name}`.
fn check_role_arn(arn: &str) -> Result<(), String> {
    let shape =
        || format!("{arn:?} is not an IAM role ARN like arn:aws:iam::123456789012:role/name");
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(shape());
    };
    let partition_ok = partition
        .strip_prefix("aws")
        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
    if !partition_ok {
        return Err(format!("{}: unknown partition {partition:?}", shape()));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{}: account id must be 12 digits", shape()));
    }
    let Some(path_and_name) = resource.strip_prefix("role/") else {
        return Err(format!("{}: resource must start with role/", shape()));
    };
    let (path, name) = path_and_name
        .rsplit_once('/')
        .unwrap_or(("", path_and_name));
    if name.is_empty() || name.chars().count() > MAX_ROLE_NAME_CHARS {
        return Err(format!(
            "role name must be 1-{MAX_ROLE_NAME_CHARS} characters"
        ));
    }
    if path.chars().count() + 2 > MAX_ROLE_PATH_CHARS {
        return Err(format!(
            "role path longer than {MAX_ROLE_PATH_CHARS} characters"
        ));
    }
    if path.split('/').any(str::is_empty) && !path.is_empty() {
        return Err("role path has an empty element".to_owned());
    }
    if let Some(bad) = path_and_name
        .chars()
        .find(|&c| c != '/' && !is_iam_name_char(c))
    {
        return Err(format!(
            "character {bad:?} not allowed in a role name or path"
        ));
    }
    Ok(())
}

/// The S3 bucket naming rules (general purpose buckets).
fn check_bucket_name(bucket: &str) -> Result<(), String> {
    let length = bucket.len();
    if !(3..=63).contains(&length) {
        return Err(format!(
            "must be 3-63 characters, is {}",
            bucket.chars().count()
        ));
    }
    if let Some(bad) = bucket
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-'))
    {
        return Err(format!("character {bad:?} not allowed (only a-z 0-9 . -)"));
    }
    let alnum = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !alnum(bucket.bytes().next()) || !alnum(bucket.bytes().last()) {
        return Err("must start and end with a letter or digit".to_owned());
    }
    if bucket.contains("..") {
        return Err("must not contain two adjacent periods".to_owned());
    }
    let octets: Vec<&str> = bucket.split('.').collect();
    if octets.len() == 4
        && octets
            .iter()
            .all(|o| !o.is_empty() && o.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("must not be formatted as an IP address".to_owned());
    }
    for reserved in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if bucket.starts_with(reserved) {
            return Err(format!(
                "must not start with the reserved prefix {reserved:?}"
            ));
        }
    }
    for reserved in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if bucket.ends_with(reserved) {
            return Err(format!(
                "must not end with the reserved suffix {reserved:?}"
            ));
        }
    }
    Ok(())
}

/// A bucket prefix: `""` or a relative directory path ending in `/`.
fn check_bucket_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Ok(());
    }
    if prefix.starts_with('/') {
        return Err("must not start with '/'".to_owned());
    }
    if !prefix.ends_with('/') {
        return Err("must end with '/' (or be empty for the bucket root)".to_owned());
    }
    if prefix.len() > MAX_BUCKET_PREFIX_BYTES {
        return Err(format!(
            "must be at most {MAX_BUCKET_PREFIX_BYTES} bytes, is {}",
            prefix.len()
        ));
    }
    if prefix.contains("//") {
        return Err("must not contain '//'".to_owned());
    }
    if prefix.split('/').any(|part| part == "." || part == "..") {
        return Err("must not contain '.' or '..' elements".to_owned());
    }
    if prefix.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(())
}

/// `xx-word(-word)*-N`, e.g. `us-east-1`, `us-gov-west-1`, `ap-southeast-3`.
fn is_region_shaped(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let Some((number, words)) = parts.split_last() else {
        return false;
    };
    region.len() <= 32
        && words.len() >= 2
        && words[0].len() == 2
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && (1..=2).contains(&number.len())
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// Only known `{placeholders}`, no unclosed `{`, no literal `:` or `*`, not empty.
fn check_stream_template(template: &str) -> Result<(), String> {
    if template.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let mut rest = template;
    let mut literal = String::new();
    while let Some(open) = rest.find('{') {
        literal.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err("unclosed '{'".to_owned());
        };
        let name = &after[..close];
        if !STREAM_PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{name}}} (known: {})",
                STREAM_PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(" ")
            ));
        }
        rest = &after[close + 1..];
    }
    literal.push_str(rest);
    if literal.contains([':', '*']) {
        return Err("':' and '*' are not allowed in CloudWatch log stream names".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::123456789012:role/logrelay-delivery";

    fn cloudwatch() -> DeliveryConfig {
        DeliveryConfig {
            tenant_id: "acme".into(),
            delivery_type: DeliveryType::Cloudwatch,
            enabled: true,
            desired_logs: Vec::new(),
            groups: Vec::new(),
            target_region: None,
            external_id: None,
            ttl: None,
            created_at: None,
            updated_at: None,
            log_distribution_role_arn: Some(ROLE.into()),
            log_group_name: Some("/rosa/acme".into()),
            log_stream_template: None,
            retention_days: None,
            bucket_name: None,
            bucket_prefix: None,
            bucket_owner_account_id: None,
            extra: BTreeMap::new(),
        }
    }

    fn s3() -> DeliveryConfig {
        DeliveryConfig {
            delivery_type: DeliveryType::S3,
            log_distribution_role_arn: None,
            log_group_name: None,
            bucket_name: Some("acme-logs".into()),
            ..cloudwatch()
        }
    }

    /// The fields of the problems of `config`.
    fn problem_fields(config: &DeliveryConfig) -> Vec<String> {
        match config.validate() {
            Ok(()) => Vec::new(),
            Err(problems) => problems.into_iter().map(|p| p.field).collect(),
        }
    }

    #[test]
    fn minimal_configs_are_valid() {
        assert_eq!(cloudwatch().validate(), Ok(()));
        assert_eq!(s3().validate(), Ok(()));
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let config = DeliveryConfig {
            tenant_id: "bad id".into(),
            groups: vec!["API".into(), "Nope".into()],
            desired_logs: vec!["".into()],
            target_region: Some("mars".into()),
            external_id: Some("x".into()),
            ttl: Some(-1),
            log_distribution_role_arn: None,
            log_group_name: Some("bad name!".into()),
            log_stream_template: Some("{pod}".into()),
            retention_days: Some(2),
            ..cloudwatch()
        };
        let problems = config.validate().expect_err("invalid");
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "tenant_id",
                "desired_logs[0]",
                "groups[1]",
                "target_region",
                "external_id",
                "ttl",
                "log_distribution_role_arn",
                "log_group_name",
                "log_stream_template",
                "retention_days",
            ]
        );
        assert_eq!(
            problems[2].to_string(),
            "groups[1]: unknown group \"Nope\" (known: API, Authentication, Controller Manager, Scheduler)"
        );
    }

    #[test]
    fn validation_is_per_config() {
        let bad = DeliveryConfig {
            tenant_id: String::new(),
            ..s3()
        };
        let good = s3();
        assert!(bad.validate().is_err());
        assert_eq!(good.validate(), Ok(()));
        let results: Vec<bool> = [bad, good, cloudwatch()]
            .iter()
            .map(|c| c.validate().is_ok())
            .collect();
        assert_eq!(results, [false, true, true]);
    }

    #[test]
    fn tenant_id_rules() {
        for good in ["a", "acme_1-X", &"a".repeat(128)] {
            assert_eq!(validate_tenant_id(good), Ok(()), "{good}");
        }
        for bad in ["", &"a".repeat(129), "a b", "a/b", "a~b", "é", "a.b"] {
            let problem = validate_tenant_id(bad).expect_err("invalid");
            assert_eq!(problem.field, "tenant_id");
        }
    }

    #[test]
    fn cloudwatch_requires_role_and_group() {
        let config = DeliveryConfig {
            log_distribution_role_arn: None,
            log_group_name: None,
            ..cloudwatch()
        };
        assert_eq!(
            problem_fields(&config),
            ["log_distribution_role_arn", "log_group_name"]
        );
        // S3 fields on a cloudwatch config are ignored.
        let config = DeliveryConfig {
            bucket_name: Some("NOT VALID".into()),
            ..cloudwatch()
        };
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn role_arn_shape() {
        for good in [
            ROLE,
            "arn:aws-us-gov:iam::123456789012:role/x",
            "arn:aws-cn:iam::123456789012:role/service-role/path/Name+=,.@_-",
        ] {
            assert_eq!(check_role_arn(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "arn:aws:iam::12345678901:role/x",
            "arn:aws:iam::1234567890123:role/x",
            "arn:aws:iam::12345678901a:role/x",
            "arn:aws:iam:us-east-1:123456789012:role/x",
            "arn:aws:sts::123456789012:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/path/",
            "arn:aws:iam::123456789012:role/a//b",
            "arn:aws:iam::123456789012:role/a b",
            "arn:azure:iam::123456789012:role/x",
            "arn:AWS:iam::123456789012:role/x",
            &format!("arn:aws:iam::123456789012:role/{}", "n".repeat(65)),
        ] {
            assert!(check_role_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_role_arn_whose_partition_does_not_serve_the_target_region_is_invalid() {
        let config = |arn: &str, region: Option<&str>| DeliveryConfig {
            log_distribution_role_arn: Some(arn.to_owned()),
            target_region: region.map(str::to_owned),
            ..cloudwatch()
        };
        let china = "arn:aws-cn:iam::123456789012:role/logs";
        let error = config(china, Some("us-east-1"))
            .check_role_partition()
            .expect_err("aws-cn does not serve us-east-1");
        assert_eq!(
            error,
            TenantConfigError {
                tenant_id: "acme".into(),
                field: "log_distribution_role_arn",
                cause: ConfigCause::PartitionMismatch {
                    partition: "aws-cn".into(),
                    region: "us-east-1".into(),
                    expected: "aws",
                },
            }
        );
        assert!(
            error
                .to_string()
                .starts_with("tenant acme: log_distribution_role_arn: ")
        );
        assert_eq!(
            problem_fields(&config(china, Some("us-east-1"))),
            ["log_distribution_role_arn"]
        );
        assert_eq!(
            problem_fields(&config(ROLE, Some("cn-north-1"))),
            ["log_distribution_role_arn"]
        );
        for (arn, region) in [
            (china, Some("cn-northwest-1")),
            (
                "arn:aws-us-gov:iam::123456789012:role/x",
                Some("us-gov-west-1"),
            ),
            (ROLE, Some("eu-west-1")),
            (china, None),
        ] {
            assert_eq!(config(arn, region).validate(), Ok(()), "{arn} {region:?}");
        }
    }

    #[test]
    fn an_unknown_partition_is_invalid() {
        let config = DeliveryConfig {
            log_distribution_role_arn: Some("arn:awsfoo:iam::123456789012:role/logs".into()),
            ..cloudwatch()
        };
        let problems = config.validate().expect_err("awsfoo is no partition");
        assert_eq!(problems[0].field, "log_distribution_role_arn");
        assert!(
            problems[0].message.contains("tenant acme"),
            "{}",
            problems[0]
        );
        assert!(matches!(
            config.check_role_partition(),
            Err(TenantConfigError {
                cause: ConfigCause::UnknownPartition { .. },
                ..
            })
        ));
    }

    #[test]
    fn an_enabled_cloudwatch_config_needs_its_own_external_id() {
        let error = cloudwatch()
            .require_external_id()
            .expect_err("enabled, no external id");
        assert_eq!(error.cause, ConfigCause::MissingExternalId);
        assert_eq!(error.field, "external_id");
        assert!(error.to_string().starts_with("tenant acme: external_id: "));
        let with_id = DeliveryConfig {
            external_id: Some("acme-ext".into()),
            ..cloudwatch()
        };
        let disabled = DeliveryConfig {
            enabled: false,
            ..cloudwatch()
        };
        for fine in [with_id, disabled, s3()] {
            assert_eq!(fine.require_external_id(), Ok(()), "{fine:?}");
        }
        assert_eq!(
            cloudwatch().validate(),
            Ok(()),
            "stored configs still deliver"
        );
    }

    #[test]
    fn debug_of_a_config_never_shows_its_external_id() {
        let config = DeliveryConfig {
            external_id: Some("acme-secret-ext".into()),
            ..cloudwatch()
        };
        let printed = format!("{config:?} {config:#?}");
        assert!(!printed.contains("acme-secret-ext"), "{printed}");
        assert!(printed.contains("Some(ExternalId(***))"), "{printed}");
        assert!(
            printed.contains("/rosa/acme"),
            "other fields are printed: {printed}"
        );
        assert!(format!("{:?}", cloudwatch()).contains("external_id: None"));
    }

    #[test]
    fn the_redacted_placeholder_is_never_a_valid_external_id() {
        let config = DeliveryConfig {
            external_id: Some(REDACTED_EXTERNAL_ID.into()),
            ..cloudwatch()
        };
        let problems = config.validate().expect_err("placeholder refused");
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].message.contains("--show-external-id"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn the_bucket_owner_is_an_account_id_and_a_role_arn_names_its_account() {
        let owner = |account: &str| DeliveryConfig {
            bucket_owner_account_id: Some(account.to_owned()),
            ..s3()
        };
        assert_eq!(owner("222222222222").validate(), Ok(()));
        for bad in ["", "22222222222", "2222222222222", "22222222222a"] {
            assert_eq!(
                problem_fields(&owner(bad)),
                ["bucket_owner_account_id"],
                "{bad}"
            );
        }
        assert_eq!(role_arn_account(ROLE), Some("123456789012"));
        assert_eq!(role_arn_account("arn:aws:iam::1234:role/x"), None);
        assert_eq!(role_arn_account("not an arn"), None);
    }

    #[test]
    fn log_group_name_rules() {
        for (name, ok) in [
            ("/aws/rosa#1_a-b.c", true),
            ("", false),
            ("a:b", false),
            ("a*b", false),
            ("é", false),
            (&"a".repeat(512), true),
            (&"a".repeat(513), false),
        ] {
            let config = DeliveryConfig {
                log_group_name: Some(name.to_owned()),
                ..cloudwatch()
            };
            assert_eq!(config.validate().is_ok(), ok, "{name}");
        }
    }

    #[test]
    fn retention_days_must_be_a_cloudwatch_value() {
        for days in ALLOWED_RETENTION_DAYS {
            let config = DeliveryConfig {
                retention_days: Some(days),
                ..cloudwatch()
            };
            assert_eq!(config.validate(), Ok(()), "{days}");
        }
        for days in [0, 2, 364, 3654, -1] {
            let config = DeliveryConfig {
                retention_days: Some(days),
                ..cloudwatch()
            };
            assert_eq!(problem_fields(&config), ["retention_days"], "{days}");
        }
    }

    #[test]
    fn stream_template_allows_only_known_placeholders() {
        for good in [
            "{pod_name}",
            "{namespace}/{application}/{container_name}",
            "{cluster_id}-{customer_id}-x",
            "plain",
            "a}b",
        ] {
            assert_eq!(check_stream_template(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "{pod}",
            "{pod_name",
            "x{}",
            "{POD_NAME}",
            "a:{pod_name}",
            "*",
        ] {
            assert!(check_stream_template(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn s3_requires_bucket_and_checks_prefix() {
        let config = DeliveryConfig {
            bucket_name: None,
            ..s3()
        };
        assert_eq!(problem_fields(&config), ["bucket_name"]);
        for (prefix, ok) in [
            ("", true),
            ("logs/", true),
            ("a/b/c/", true),
            ("/logs/", false),
            ("logs", false),
            ("a//b/", false),
            ("a/../b/", false),
            ("a/./", false),
            ("a\n/", false),
            (&format!("{}/", "p".repeat(MAX_BUCKET_PREFIX_BYTES)), false),
        ] {
            let config = DeliveryConfig {
                bucket_prefix: Some(prefix.to_owned()),
                ..s3()
            };
            assert_eq!(config.validate().is_ok(), ok, "{prefix:?}");
        }
    }

    #[test]
    fn bucket_naming_rules() {
        for good in ["abc", "my-bucket.logs", "1bucket9", &"a".repeat(63)] {
            assert_eq!(check_bucket_name(good), Ok(()), "{good}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "My-Bucket",
            "my_bucket",
            "-bucket",
            "bucket-",
            ".bucket",
            "my..bucket",
            "192.168.1.1",
            "xn--bucket",
            "sthree-bucket",
            "amzn-s3-demo-bucket",
            "bucket-s3alias",
            "bucket--ol-s3",
            "bucket.mrap",
            "bucket--x-s3",
            "bucket--table-s3",
            "bück",
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
        assert_eq!(check_bucket_name("192.168.1.1a"), Ok(()));
    }

    #[test]
    fn region_shape() {
        for good in [
            "us-east-1",
            "us-gov-west-1",
            "ap-southeast-3",
            "cn-north-1",
            "us-isob-east-1",
        ] {
            assert!(is_region_shaped(good), "{good}");
        }
        for bad in [
            "",
            "us",
            "us-east",
            "useast-1",
            "US-EAST-1",
            "us-east-123",
            "u-east-1",
            "us--1",
            "us-east-1a",
        ] {
            assert!(!is_region_shaped(bad), "{bad}");
        }
    }

    #[test]
    fn external_id_follows_sts_rules() {
        for (id, ok) in [
            ("ab", true),
            ("a", false),
            ("Az09_+=,.@:/-", true),
            ("has space", false),
            ("é1", false),
            (&"x".repeat(1224), true),
            (&"x".repeat(1225), false),
        ] {
            let config = DeliveryConfig {
                external_id: Some(id.to_owned()),
                ..s3()
            };
            assert_eq!(config.validate().is_ok(), ok, "{id}");
        }
    }

    #[test]
    fn wants_selects_desired_logs_and_groups() {
        let all = s3();
        assert!(all.wants("anything"));
        let config = DeliveryConfig {
            desired_logs: vec!["my-app".into()],
            groups: vec!["api".into(), "SCHEDULER".into(), "unknown".into()],
            ..s3()
        };
        for app in [
            "my-app",
            "MY-APP",
            "kube-apiserver",
            "openshift-apiserver",
            "kube-scheduler",
        ] {
            assert!(config.wants(app), "{app}");
        }
        for app in ["other", "oauth-server", "kube-controller-manager", ""] {
            assert!(!config.wants(app), "{app}");
        }
        let only_groups = DeliveryConfig {
            groups: vec!["Authentication".into()],
            ..s3()
        };
        assert!(only_groups.wants("oauth-openshift"));
        assert!(!only_groups.wants("my-app"));
        let disabled = DeliveryConfig {
            enabled: false,
            ..s3()
        };
        assert!(disabled.wants("x") && !disabled.delivers("x"));
        assert!(all.delivers("x"));
    }

    #[test]
    fn groups_are_case_insensitive() {
        assert_eq!(
            application_group("controller manager"),
            Some(
                &[
                    "kube-controller-manager",
                    "openshift-controller-manager",
                    "openshift-route-controller-manager"
                ][..]
            )
        );
        assert_eq!(application_group("aPi").map(<[_]>::len), Some(2));
        assert_eq!(application_group("authentication").map(<[_]>::len), Some(4));
        assert_eq!(
            application_group("Scheduler"),
            Some(&["kube-scheduler"][..])
        );
        assert_eq!(application_group("controller-manager"), None);
    }

    #[test]
    fn log_stream_name_expands_and_sanitizes() {
        let fields = StreamFields {
            pod_name: "api-7d9f",
            namespace: "ns",
            application: "api",
            container_name: "main",
            cluster_id: "c:1",
            customer_id: "acme",
        };
        assert_eq!(cloudwatch().log_stream_name(&fields), "api-7d9f");
        let custom = |template: &str| DeliveryConfig {
            log_stream_template: Some(template.into()),
            ..cloudwatch()
        };
        assert_eq!(
            custom(
                "{customer_id}/{cluster_id}/{namespace}/{application}/{pod_name}/{container_name}"
            )
            .log_stream_name(&fields),
            "acme/c_1/ns/api/api-7d9f/main"
        );
        assert_eq!(
            custom("{unknown}*{pod_name}").log_stream_name(&fields),
            "{unknown}_api-7d9f"
        );
        assert_eq!(custom("{pod_name").log_stream_name(&fields), "{pod_name");
        assert_eq!(
            custom("{pod_name}").log_stream_name(&StreamFields::default()),
            EMPTY_LOG_STREAM_NAME
        );
        let long = "é".repeat(600);
        let fields = StreamFields {
            pod_name: &long,
            ..fields
        };
        assert_eq!(
            cloudwatch().log_stream_name(&fields).chars().count(),
            MAX_LOG_STREAM_NAME_CHARS
        );
    }

    #[test]
    fn bucket_prefix_defaults() {
        assert_eq!(s3().effective_bucket_prefix(), DEFAULT_BUCKET_PREFIX);
        let root = DeliveryConfig {
            bucket_prefix: Some(String::new()),
            ..s3()
        };
        assert_eq!(root.effective_bucket_prefix(), "");
        assert_eq!(cloudwatch().effective_log_stream_template(), "{pod_name}");
    }

    #[test]
    fn yaml_and_json_files_read() {
        let yaml = r#"
- tenant_id: acme
  type: cloudwatch
  log_distribution_role_arn: "arn:aws:iam::123456789012:role/logrelay-delivery"
  log_group_name: /rosa/acme
  groups: [API]
  retention_days: 30
  note: kept
- tenant_id: acme
  type: s3
  bucket_name: acme-logs
  enabled: false
"#;
        let configs = DeliveryConfig::list_from_yaml(yaml).expect("reads");
        assert_eq!(configs.len(), 2);
        assert_eq!(configs[0].extra["note"], serde_json::json!("kept"));
        assert_eq!(configs[0].retention_days, Some(30));
        assert!(!configs[1].enabled);
        assert!(configs.iter().all(|c| c.validate().is_ok()));
        let json = serde_json::to_string(&configs).expect("serializes");
        assert_eq!(
            DeliveryConfig::list_from_yaml(&json).expect("JSON is YAML"),
            configs
        );
        assert!(matches!(
            DeliveryConfig::list_from_yaml("- tenant_id: x\n  type: ftp\n"),
            Err(TenantError::File(_))
        ));
    }

    /// The fenced block after the first line starting with `fence` in the tenant config doc.
    fn doc_block(fence: &str) -> String {
        let doc = include_str!("../../docs/tenant-config.md");
        doc.split(fence)
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("the doc has the example")
            .to_owned()
    }

    #[test]
    fn documented_examples_are_valid() {
        let configs =
            DeliveryConfig::list_from_yaml(&doc_block("```yaml")).expect("YAML example reads");
        assert_eq!(configs.len(), 3);
        for config in &configs {
            assert_eq!(config.validate(), Ok(()), "{config:?}");
        }
        // The documented DynamoDB item is read by the processor: `processor/src/tenant/item.rs`.
    }
}
