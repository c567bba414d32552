//! `tenants doctor`: walks a tenant's delivery chain with the processor's own code and reports
//! each step — read the configs (`crate::tenant::query_tenant`, validated like the processor
//! does) → assume the central role and the customer role (`crate::credentials::{central_step,
//! tenant_step}` through `logrelay_common::aws::assume_role_chain`, as the credential broker does)
//! → check the log group → optionally write one marked event (`LogsService`, the delivery code,
//! which creates a missing group and stream) → for S3 configs, HeadBucket and optionally a test
//! object. Every failure carries the AWS error code and a hint (see [`super::hints`]).

use super::hints;
use crate::credentials::{central_step, tenant_step};
use crate::deliver::cloudwatch::batch::LogEvent;
use crate::deliver::cloudwatch::service::LogsService;
use crate::process::DEFAULT_REQUEST_TIMEOUT;
use crate::retry::{Classified, RetryPolicy};
use crate::tenant::{ConfigItem, query_tenant};
use aws_config::{Region, SdkConfig};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ObjectCannedAcl;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use logrelay_common::aws::{AwsError, ErrorClass, RoleStep, assume_role_chain, s3_client};
use logrelay_common::tenant::{DeliveryConfig, DeliveryType};
use serde::Serialize;
use std::fmt::Write as _;
use std::sync::Arc;

/// Session tag `cluster_id` sent by doctor (the processor sends the object's cluster).
pub const DEFAULT_DOCTOR_CLUSTER_ID: &str = "logrelay-doctor";
/// Log stream that doctor's test event goes to.
pub const DOCTOR_LOG_STREAM: &str = "logrelay-doctor";
/// Folder (below the config's prefix and the tenant id) of doctor's test objects.
pub const DOCTOR_OBJECT_FOLDER: &str = "logrelay-doctor";

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// Checked and fine.
    Pass,
    /// Fine as far as could be checked, with a remark (e.g. the config is disabled).
    Warn,
    /// Broken: delivery will fail.
    Fail,
    /// Not run (not asked for, or an earlier step failed).
    Skip,
}

impl StepStatus {
    /// The mark printed before the step.
    pub fn mark(self) -> &'static str {
        match self {
            Self::Pass => "✓",
            Self::Warn => "!",
            Self::Fail => "✗",
            Self::Skip => "-",
        }
    }
}

/// One step of the walk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Stable identifier, e.g. `cloudwatch.assume_role`.
    pub id: String,
    /// What was checked, for people.
    pub title: String,
    /// How it ended.
    pub status: StepStatus,
    /// What was found.
    pub detail: String,
    /// The AWS error code (or error class when AWS sent no code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The likely fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Why the customer role refused the central role (the tenant hop's AccessDenied only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<hints::Refusal>,
}

impl Step {
    fn new(id: &str, title: &str, status: StepStatus, detail: impl Into<String>) -> Self {
        Self {
            id: id.to_owned(),
            title: title.to_owned(),
            status,
            detail: detail.into(),
            code: None,
            hint: None,
            refusal: None,
        }
    }

    fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Everything doctor found for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DoctorReport {
    /// The tenant.
    pub tenant_id: String,
    /// The table read.
    pub table: String,
    /// Whether no step failed.
    pub ok: bool,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl DoctorReport {
    fn push(&mut self, step: Step) {
        if step.status == StepStatus::Fail {
            self.ok = false;
        }
        self.steps.push(step);
    }

    /// The step with this id, if it ran.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|step| step.id == id)
    }

    /// The report as text, one line per step with indented code and hint.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "logrelay doctor: tenant {} (table {})\n",
            self.tenant_id, self.table
        );
        for step in &self.steps {
            let _ = writeln!(
                text,
                "{} {}: {}",
                step.status.mark(),
                step.title,
                step.detail
            );
            if let Some(code) = &step.code {
                let _ = writeln!(text, "    error: {code}");
            }
            if let Some(hint) = &step.hint {
                let _ = writeln!(text, "    hint: {hint}");
            }
        }
        let failed = self
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Fail)
            .count();
        if failed == 0 {
            text.push_str("result: OK, every step passed\n");
        } else {
            let _ = writeln!(text, "result: FAILED, {failed} step(s) failed");
        }
        text
    }
}

/// What doctor needs: the processor's identity and settings.
#[derive(Debug, Clone)]
pub struct DoctorSettings {
    /// The processor's own identity and region (`logrelay_common::aws::base_config`).
    pub aws: SdkConfig,
    /// Tenant config table.
    pub table: String,
    /// `CENTRAL_LOG_DISTRIBUTION_ROLE_ARN`.
    pub central_role_arn: Option<String>,
    /// `DEFAULT_EXTERNAL_ID`.
    pub default_external_id: Option<String>,
    /// `LOGRELAY_LOGS_ENDPOINT_URL`.
    pub logs_endpoint_url: Option<String>,
    /// Put one test event / object.
    pub write: bool,
    /// The `cluster_id` session tag.
    pub cluster_id: String,
}

/// Walks the tenant's chain; never fails itself (every failure is a step).
pub async fn doctor(settings: &DoctorSettings, tenant_id: &str) -> DoctorReport {
    let mut report = DoctorReport {
        tenant_id: tenant_id.to_owned(),
        table: settings.table.clone(),
        ok: true,
        steps: Vec::new(),
    };
    let configs = read_configs(settings, tenant_id, &mut report).await;
    if configs.is_empty() {
        return report;
    }
    let Some(central) = central_hop(settings, &mut report).await else {
        for config in &configs {
            report.push(Step::new(
                &format!("{}.chain", config.delivery_type),
                &format!("{} delivery", config.delivery_type),
                StepStatus::Skip,
                "skipped: the central role could not be assumed",
            ));
        }
        return report;
    };
    let cloudwatch_account = cloudwatch_role_account(&configs);
    for config in &configs {
        let owner = config
            .bucket_owner_account_id
            .clone()
            .or_else(|| cloudwatch_account.clone());
        config_steps(settings, &central, config, owner, &mut report).await;
    }
    report
}

/// The account of the tenant's first cloudwatch role: the bucket owner an S3 config without
/// `bucket_owner_account_id` is delivered with (as delivery decides it).
fn cloudwatch_role_account(configs: &[DeliveryConfig]) -> Option<String> {
    configs
        .iter()
        .filter(|config| config.delivery_type == DeliveryType::Cloudwatch)
        .filter_map(|config| config.log_distribution_role_arn.as_deref())
        .find_map(logrelay_common::tenant::role_arn_account)
        .map(str::to_owned)
}

/// Step 1: the tenant's items, each validated as the processor does. Returns the valid configs.
async fn read_configs(
    settings: &DoctorSettings,
    tenant_id: &str,
    report: &mut DoctorReport,
) -> Vec<DeliveryConfig> {
    let region = region_of(&settings.aws);
    let items = match query_tenant(
        &aws_sdk_dynamodb::Client::new(&settings.aws),
        &settings.table,
        tenant_id,
        &RetryPolicy::default(),
    )
    .await
    {
        Ok(items) => items,
        Err(failure) => {
            report.push(
                Step::new(
                    "configs",
                    "read configs",
                    StepStatus::Fail,
                    failure.message.clone(),
                )
                .with_code(hints::shown_code(failure.code.as_deref(), failure.class))
                .with_hint(hints::table(&failure, &settings.table, &region)),
            );
            return Vec::new();
        }
    };
    if items.is_empty() {
        report.push(
            Step::new("configs", "read configs", StepStatus::Fail, format!("no configs for tenant {tenant_id}"))
                .with_hint(format!(
                    "Onboard the tenant (`tenants onboard {tenant_id} --account <id>`) or add a config (`tenants put`); check the table name and region ({region})."
                )),
        );
        return Vec::new();
    }
    report.push(Step::new(
        "configs",
        "read configs",
        StepStatus::Pass,
        format!("{} config(s) in {region}", items.len()),
    ));
    let mut valid = Vec::new();
    for item in items {
        match item {
            ConfigItem::Valid(config) => {
                let id = format!("config.{}", config.delivery_type);
                let title = format!("{} config", config.delivery_type);
                if config.enabled {
                    report.push(Step::new(&id, &title, StepStatus::Pass, "valid, enabled"));
                } else {
                    report.push(
                        Step::new(
                            &id,
                            &title,
                            StepStatus::Warn,
                            "valid but disabled: the processor skips it",
                        )
                        .with_hint(format!(
                            "When every step passes: `tenants enable {tenant_id} {}`.",
                            config.delivery_type
                        )),
                    );
                }
                valid.push(*config);
            }
            ConfigItem::Untyped(config) => {
                let id = format!("config.{}", config.delivery_type);
                report.push(
                    Step::new(
                        &id,
                        &format!("{} config", config.delivery_type),
                        StepStatus::Warn,
                        format!(
                            "item has no `type` (single-key table item): read as {}",
                            config.delivery_type
                        ),
                    )
                    .with_hint("Write it with its type: `tenants migrate --from-table OLD_TABLE`."),
                );
                valid.push(*config);
            }
            ConfigItem::Invalid {
                delivery_type,
                problems,
            } => {
                let kind = delivery_type.unwrap_or_else(|| "unknown".to_owned());
                report.push(
                    Step::new(&format!("config.{kind}"), &format!("{kind} config"), StepStatus::Fail, format!("invalid: {}", problems.join("; ")))
                        .with_hint(format!("The processor skips this config. Fix it: `tenants get {tenant_id} {kind} --show-external-id` > file, edit, `tenants put file --update`.")),
                );
            }
        }
    }
    valid
}

/// Step 2: the central hop, as the credential broker makes it.
async fn central_hop(settings: &DoctorSettings, report: &mut DoctorReport) -> Option<SdkConfig> {
    let Some(role_arn) = &settings.central_role_arn else {
        report.push(
            Step::new("central_role", "central role", StepStatus::Warn, "not configured: the processor's own identity assumes tenant roles")
                .with_hint("The customer template trusts a central role; set CENTRAL_LOG_DISTRIBUTION_ROLE_ARN (or --central-role-arn) as the processor has it."),
        );
        return Some(settings.aws.clone());
    };
    match assume_role_chain(&settings.aws, &[central_step(role_arn)]).await {
        Ok(config) => {
            report.push(Step::new(
                "central_role",
                "central role",
                StepStatus::Pass,
                format!("assumed {role_arn}"),
            ));
            Some(config)
        }
        Err(error) => {
            report.push(
                Step::new(
                    "central_role",
                    "central role",
                    StepStatus::Fail,
                    error.to_string(),
                )
                .with_code(hints::shown_code(error.code(), error.class()))
                .with_hint(hints::central_role(&error, role_arn)),
            );
            None
        }
    }
}

/// One check of a delivery config: its stable id and its title in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Assume the customer's role (the tenant hop).
    CloudwatchAssumeRole,
    /// The log group exists (DescribeLogGroups).
    CloudwatchLogGroup,
    /// One marked test event through the delivery code (`--write`).
    CloudwatchWrite,
    /// HeadBucket with the central identity.
    S3Bucket,
    /// One marked test object (`--write`).
    S3Write,
}

/// The checks of a cloudwatch config, in the order they run.
const CLOUDWATCH_CHECKS: [Check; 3] = [
    Check::CloudwatchAssumeRole,
    Check::CloudwatchLogGroup,
    Check::CloudwatchWrite,
];
/// The checks of an s3 config, in the order they run (single hop: the central identity writes).
const S3_CHECKS: [Check; 2] = [Check::S3Bucket, Check::S3Write];

impl Check {
    fn id(self) -> &'static str {
        match self {
            Check::CloudwatchAssumeRole => "cloudwatch.assume_role",
            Check::CloudwatchLogGroup => "cloudwatch.log_group",
            Check::CloudwatchWrite => "cloudwatch.write",
            Check::S3Bucket => "s3.bucket",
            Check::S3Write => "s3.write",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Check::CloudwatchAssumeRole => "cloudwatch: assume customer role",
            Check::CloudwatchLogGroup => "cloudwatch: log group",
            Check::CloudwatchWrite => "cloudwatch: write test event",
            Check::S3Bucket => "s3: bucket",
            Check::S3Write => "s3: write test object",
        }
    }

    fn step(self, status: StepStatus, detail: impl Into<String>) -> Step {
        Step::new(self.id(), self.title(), status, detail)
    }
}

/// What one check came to: its step, and why the checks after it are skipped, if they are.
struct Checked {
    step: Step,
    stop: Option<&'static str>,
}

impl From<Step> for Checked {
    fn from(step: Step) -> Self {
        Self { step, stop: None }
    }
}

impl Checked {
    fn stop(step: Step, why: &'static str) -> Self {
        Self {
            step,
            stop: Some(why),
        }
    }
}

/// Runs the checks of `config`'s type in order; after a check that stops, the rest are skipped.
async fn config_steps(
    settings: &DoctorSettings,
    central: &SdkConfig,
    config: &DeliveryConfig,
    bucket_owner: Option<String>,
    report: &mut DoctorReport,
) {
    let checks: &[Check] = match config.delivery_type {
        DeliveryType::Cloudwatch => &CLOUDWATCH_CHECKS,
        DeliveryType::S3 => &S3_CHECKS,
    };
    let Some(mut state) = ConfigChecks::new(settings, central, config) else {
        return; // a valid cloudwatch config always names its role
    };
    state.bucket_owner = bucket_owner;
    let mut stopped: Option<&'static str> = None;
    for &check in checks {
        if let Some(why) = stopped {
            report.push(check.step(StepStatus::Skip, why));
            continue;
        }
        let checked = state.run(check).await;
        report.push(checked.step);
        stopped = checked.stop;
    }
}

/// What the checks of one config share as they run.
struct ConfigChecks<'a> {
    settings: &'a DoctorSettings,
    central: &'a SdkConfig,
    config: &'a DeliveryConfig,
    /// The region the config delivers to.
    region: String,
    /// The customer role hop (cloudwatch configs).
    role_step: Option<RoleStep>,
    /// CloudWatch Logs in the customer's account, once the role is assumed.
    logs: Option<aws_sdk_cloudwatchlogs::Client>,
    /// Who writes to the bucket (s3 configs): the central role, or the processor's identity.
    writer: String,
    /// S3 in the config's region with the central identity (s3 configs).
    s3: Option<aws_sdk_s3::Client>,
    /// The account that must own the bucket (s3 configs), sent as `ExpectedBucketOwner`.
    bucket_owner: Option<String>,
}

impl<'a> ConfigChecks<'a> {
    /// `None` for a cloudwatch config without a role (invalid, never reaches doctor's checks).
    fn new(
        settings: &'a DoctorSettings,
        central: &'a SdkConfig,
        config: &'a DeliveryConfig,
    ) -> Option<Self> {
        let mut checks = Self {
            settings,
            central,
            config,
            region: region_of(central),
            role_step: None,
            logs: None,
            writer: settings
                .central_role_arn
                .clone()
                .unwrap_or_else(|| "the processor's identity".to_owned()),
            s3: None,
            bucket_owner: None,
        };
        match config.delivery_type {
            DeliveryType::Cloudwatch => {
                let step = tenant_step(
                    config,
                    &settings.cluster_id,
                    settings.default_external_id.as_deref(),
                )?;
                if let Some(region) = &step.region {
                    checks.region.clone_from(region);
                }
                checks.role_step = Some(step);
            }
            DeliveryType::S3 => {
                if let Some(region) = &config.target_region {
                    checks.region.clone_from(region);
                }
                let regional = central
                    .clone()
                    .into_builder()
                    .region(Region::new(checks.region.clone()))
                    .build();
                checks.s3 = Some(s3_client(&regional));
            }
        }
        Some(checks)
    }

    async fn run(&mut self, check: Check) -> Checked {
        match check {
            Check::CloudwatchAssumeRole => self.assume_customer_role().await,
            Check::CloudwatchLogGroup => self.log_group().await.into(),
            Check::CloudwatchWrite => self.write_event().await.into(),
            Check::S3Bucket => self.bucket().await,
            Check::S3Write => self.write_object().await.into(),
        }
    }

    fn group(&self) -> String {
        self.config.log_group_name.clone().unwrap_or_default()
    }

    /// The customer role, assumed as the credential broker assumes it.
    async fn assume_customer_role(&mut self) -> Checked {
        let check = Check::CloudwatchAssumeRole;
        let Some(step) = &self.role_step else {
            return check.step(StepStatus::Skip, "no role").into();
        };
        let external_id_sent = step.external_id.is_some();
        match assume_role_chain(self.central, std::slice::from_ref(step)).await {
            Ok(session) => {
                let caller = caller_arn(&session).await;
                // The delivery path's own client: each check reports the first answer it gets.
                self.logs = Some(crate::deliver::cloudwatch::service::client(
                    &session,
                    DEFAULT_REQUEST_TIMEOUT,
                    self.settings.logs_endpoint_url.as_deref(),
                ));
                check
                    .step(
                        StepStatus::Pass,
                        format!(
                            "assumed {} in {}{caller} (ExternalId sent: {}, session tags tenant_id, cluster_id)",
                            step.role_arn,
                            self.region,
                            if external_id_sent { "yes" } else { "no" }
                        ),
                    )
                    .into()
            }
            Err(error) => {
                let mut failed = check
                    .step(StepStatus::Fail, error.to_string())
                    .with_code(hints::shown_code(error.code(), error.class()))
                    .with_hint(hints::customer_role(
                        &error,
                        self.config,
                        self.settings.central_role_arn.as_deref(),
                        external_id_sent,
                        &self.region,
                    ));
                failed.refusal = hints::refusal(&error, &step.role_arn, external_id_sent);
                Checked::stop(failed, "skipped: the customer role could not be assumed")
            }
        }
    }

    /// Checks that the log group exists (DescribeLogGroups with its name as prefix).
    async fn log_group(&self) -> Step {
        let check = Check::CloudwatchLogGroup;
        let (group, region) = (self.group(), &self.region);
        let Some(client) = &self.logs else {
            return check.step(StepStatus::Skip, "no session");
        };
        let result = client
            .describe_log_groups()
            .log_group_name_prefix(&group)
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(error) => {
                let failure =
                    Classified::from_aws(AwsError::from_sdk("logs:DescribeLogGroups", error));
                return self.log_group_unlisted(&failure);
            }
        };
        let found = output
            .log_groups()
            .iter()
            .find(|candidate| candidate.log_group_name() == Some(group.as_str()));
        match found {
            Some(existing) => check.step(StepStatus::Pass, self.log_group_detail(existing)),
            None if self.settings.write => check.step(
                StepStatus::Warn,
                format!("{group} not found in {region}; the write step below creates it there"),
            ),
            None => check
                .step(StepStatus::Fail, format!("{group} not found in {region}"))
                .with_code("ResourceNotFound")
                .with_hint(hints::log_group_missing(self.config, &group, region)),
        }
    }

    /// The log group step when DescribeLogGroups failed: expected when only writing is granted.
    fn log_group_unlisted(&self, failure: &Classified) -> Step {
        let check = Check::CloudwatchLogGroup;
        let code = hints::shown_code(failure.code.as_deref(), failure.class);
        if failure.class != ErrorClass::AccessDenied {
            return check
                .step(StepStatus::Fail, failure.message.clone())
                .with_code(code)
                .with_hint(hints::log_group_check(failure, &self.region));
        }
        let next = if self.settings.write {
            "the write step below proves delivery"
        } else {
            "run with --write to prove delivery"
        };
        check
            .step(
                StepStatus::Warn,
                format!(
                    "cannot list log groups in {}: the role may not call logs:DescribeLogGroups",
                    self.region
                ),
            )
            .with_code(code)
            .with_hint(format!(
                "The customer template grants only writing, not listing, so this is expected; {next}."
            ))
    }

    /// What doctor says about an existing log group: region, retention, encryption.
    fn log_group_detail(&self, existing: &aws_sdk_cloudwatchlogs::types::LogGroup) -> String {
        let mut detail = format!("{} exists in {}", self.group(), self.region);
        match existing.retention_in_days() {
            Some(days) => {
                let _ = write!(detail, ", retention {days} days");
            }
            None => detail.push_str(", never expires"),
        }
        if let Some(key) = existing.kms_key_id() {
            let _ = write!(detail, ", encrypted with KMS key {key}");
        }
        if let Some(wanted) = self.config.retention_days
            && existing.retention_in_days() != Some(wanted)
        {
            let _ = write!(
                detail,
                " (the config's retention_days {wanted} applies only to groups logrelay creates)"
            );
        }
        detail
    }

    /// One marked test event through the delivery code, which creates a missing group and stream.
    async fn write_event(&self) -> Step {
        let check = Check::CloudwatchWrite;
        if !self.settings.write {
            return check.step(
                StepStatus::Skip,
                "not run (add --write to put one marked test event)",
            );
        }
        let (Some(client), Some(step)) = (&self.logs, &self.role_step) else {
            return check.step(StepStatus::Skip, "no session");
        };
        let (group, region) = (self.group(), &self.region);
        let service = LogsService::new(
            client.clone(),
            &self.config.tenant_id,
            format!("{}@{region}", step.role_arn),
            group.clone(),
            self.config.retention_days,
            RetryPolicy {
                attempts: 1,
                ..RetryPolicy::default()
            },
            Arc::default(),
        );
        let now = chrono::Utc::now();
        let event = LogEvent {
            timestamp_ms: now.timestamp_millis(),
            message: probe_message(&self.config.tenant_id, &now.to_rfc3339()),
        };
        match service.deliver(DOCTOR_LOG_STREAM, vec![event]).await {
            Ok(outcome) if outcome.accepted == 1 => check.step(
                StepStatus::Pass,
                format!("wrote 1 test event to {group} / {DOCTOR_LOG_STREAM} in {region}"),
            ),
            Ok(outcome) => check
                .step(
                    StepStatus::Fail,
                    format!("CloudWatch did not store the event: {:?}", outcome.rejected),
                )
                .with_hint("Check the host clock (events more than 2 hours ahead or 14 days behind are rejected)."),
            Err(error) => check
                .step(StepStatus::Fail, error.message.clone())
                .with_code(hints::delivery_code(&error))
                .with_hint(hints::logs_write(&error, &group, region)),
        }
    }

    /// HeadBucket with the central identity, in the config's region.
    async fn bucket(&self) -> Checked {
        let check = Check::S3Bucket;
        let Some(client) = &self.s3 else {
            return check.step(StepStatus::Skip, "no client").into();
        };
        let bucket = self.config.bucket_name.clone().unwrap_or_default();
        let region = &self.region;
        let failed_why = "skipped: the bucket check failed";
        let error = match client.head_bucket().bucket(&bucket).send().await {
            Ok(output) => match output.bucket_region() {
                Some(actual) if actual != region => {
                    let failed = check
                        .step(
                            StepStatus::Fail,
                            format!("{bucket} is in {actual}, not in {region}"),
                        )
                        .with_code("BucketRegionMismatch")
                        .with_hint(hints::bucket(
                            None,
                            &bucket,
                            region,
                            Some(actual),
                            &self.writer,
                        ));
                    return Checked::stop(failed, failed_why);
                }
                _ => {
                    return check
                        .step(StepStatus::Pass, format!("{bucket} reachable in {region}"))
                        .into();
                }
            },
            Err(error) => error,
        };
        let status = error
            .raw_response()
            .map(|response| response.status().as_u16());
        let bucket_region = error
            .raw_response()
            .and_then(|response| response.headers().get("x-amz-bucket-region"))
            .map(str::to_owned);
        let code = error.code().map(str::to_owned);
        let failure = AwsError::from_sdk(format!("s3:HeadBucket {bucket}"), error);
        let shown = code
            .or_else(|| status.map(|s| format!("HTTP {s}")))
            .unwrap_or_else(|| hints::shown_code(None, failure.class()));
        let hint = hints::bucket(
            status,
            &bucket,
            region,
            bucket_region.as_deref(),
            &self.writer,
        );
        let wrong_region = bucket_region
            .as_deref()
            .is_some_and(|actual| actual != region);
        if status == Some(403) && !wrong_region {
            // Delivery needs s3:PutObject only; a bucket policy without s3:ListBucket refuses
            // HeadBucket although delivery works. The write step decides.
            let next = if self.settings.write {
                "the write step below decides"
            } else {
                "run with --write to prove delivery"
            };
            return check
                .step(
                    StepStatus::Warn,
                    format!("cannot check {bucket}: HeadBucket refused (no s3:ListBucket); {next}"),
                )
                .with_code(shown)
                .with_hint(hint)
                .into();
        }
        let failed = check
            .step(StepStatus::Fail, failure.to_string())
            .with_code(shown)
            .with_hint(hint);
        Checked::stop(failed, failed_why)
    }

    /// One marked test object below the config's prefix, written as delivery writes.
    async fn write_object(&self) -> Step {
        let check = Check::S3Write;
        if !self.settings.write {
            return check.step(
                StepStatus::Skip,
                "not run (add --write to put one marked test object)",
            );
        }
        let Some(client) = &self.s3 else {
            return check.step(StepStatus::Skip, "no client");
        };
        let config = self.config;
        let bucket = config.bucket_name.clone().unwrap_or_default();
        let Some(owner) = self.bucket_owner.clone() else {
            return check.step(
                StepStatus::Fail,
                "no bucket_owner_account_id and no cloudwatch role to take the account from: \
                 delivery refuses this copy (bucket_owner_unknown); set bucket_owner_account_id",
            );
        };
        let now = chrono::Utc::now();
        let key = format!(
            "{}{}/{DOCTOR_OBJECT_FOLDER}/probe-{}.txt",
            config.effective_bucket_prefix(),
            config.tenant_id,
            now.format("%Y%m%dT%H%M%SZ")
        );
        let result = client
            .put_object()
            .bucket(&bucket)
            .key(&key)
            .expected_bucket_owner(&owner)
            .acl(ObjectCannedAcl::BucketOwnerFullControl)
            .content_type("text/plain; charset=utf-8")
            .body(ByteStream::from(
                probe_message(&config.tenant_id, &now.to_rfc3339()).into_bytes(),
            ))
            .send()
            .await;
        match result {
            Ok(_) => check.step(StepStatus::Pass, format!("wrote s3://{bucket}/{key}")),
            Err(error) => {
                let failure =
                    AwsError::from_sdk(format!("s3:PutObject s3://{bucket}/{key}"), error);
                let message = failure.to_string();
                check
                    .step(StepStatus::Fail, message.clone())
                    .with_code(hints::shown_code(failure.code(), failure.class()))
                    .with_hint(hints::s3_write(
                        failure.class(),
                        &message,
                        &bucket,
                        &self.writer,
                    ))
            }
        }
    }
}

/// The text of doctor's test event and object: says what it is.
pub fn probe_message(tenant_id: &str, time: &str) -> String {
    format!(
        "logrelay doctor probe: a test written by `logrelay-processor tenants doctor --write` for tenant {tenant_id} at {time} to check delivery; it can be ignored"
    )
}

/// `", acting as <arn>"` when STS says who the session is; empty otherwise (informational only).
async fn caller_arn(session: &SdkConfig) -> String {
    match logrelay_common::aws::sts_client(session)
        .get_caller_identity()
        .send()
        .await
    {
        Ok(identity) => identity
            .arn()
            .map(|arn| format!(", acting as {arn}"))
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn region_of(config: &SdkConfig) -> String {
    config
        .region()
        .map_or(logrelay_common::aws::DEFAULT_REGION, Region::as_ref)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_write_names_the_owner_delivery_would_expect() {
        let config = |json: serde_json::Value| -> DeliveryConfig {
            serde_json::from_value(json).expect("config")
        };
        let s3 = config(serde_json::json!({"tenant_id": "acme", "type": "s3", "bucket_name": "b"}));
        let cloudwatch = config(serde_json::json!({
            "tenant_id": "acme", "type": "cloudwatch", "log_group_name": "/g",
            "log_distribution_role_arn": "arn:aws:iam::222222222222:role/logs",
        }));
        assert_eq!(
            cloudwatch_role_account(&[s3.clone(), cloudwatch]).as_deref(),
            Some("222222222222")
        );
        assert_eq!(
            cloudwatch_role_account(&[s3]),
            None,
            "then the write is refused"
        );
    }

    fn report(statuses: &[StepStatus]) -> DoctorReport {
        let mut report = DoctorReport {
            tenant_id: "acme".into(),
            table: "t".into(),
            ok: true,
            steps: Vec::new(),
        };
        for (i, status) in statuses.iter().enumerate() {
            report
                .push(Step::new(&format!("s{i}"), "step", *status, "detail").with_hint("do this"));
        }
        report
    }

    #[test]
    fn only_a_failed_step_makes_the_report_fail() {
        assert!(report(&[StepStatus::Pass, StepStatus::Warn, StepStatus::Skip]).ok);
        let failed = report(&[StepStatus::Pass, StepStatus::Fail]);
        assert!(!failed.ok);
        let text = failed.to_text();
        assert!(text.contains("✓ step: detail"), "{text}");
        assert!(text.contains("✗ step: detail\n    hint: do this"), "{text}");
        assert!(
            text.ends_with("result: FAILED, 1 step(s) failed\n"),
            "{text}"
        );
    }

    #[test]
    fn the_probe_says_what_it_is() {
        let message = probe_message("acme", "2024-01-01T00:00:00Z");
        assert!(message.starts_with("logrelay doctor probe"), "{message}");
        assert!(message.contains("acme"));
    }
}
