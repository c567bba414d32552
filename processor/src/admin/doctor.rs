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
use aws_config::timeout::TimeoutConfig;
use aws_config::{Region, SdkConfig};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ObjectCannedAcl;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use logrelay_common::aws::{AwsError, ErrorClass, assume_role_chain, s3_client};
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
    for config in &configs {
        match config.delivery_type {
            DeliveryType::Cloudwatch => {
                cloudwatch_steps(settings, &central, config, &mut report).await
            }
            DeliveryType::S3 => s3_steps(settings, &central, config, &mut report).await,
        }
    }
    report
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
            ConfigItem::Invalid {
                delivery_type,
                problems,
            } => {
                let kind = delivery_type.unwrap_or_else(|| "unknown".to_owned());
                report.push(
                    Step::new(&format!("config.{kind}"), &format!("{kind} config"), StepStatus::Fail, format!("invalid: {}", problems.join("; ")))
                        .with_hint(format!("The processor skips this config. Fix it: `tenants get {tenant_id} {kind}` > file, edit, `tenants put file --update`.")),
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

/// Steps of a cloudwatch config: customer role, log group, test event.
async fn cloudwatch_steps(
    settings: &DoctorSettings,
    central: &SdkConfig,
    config: &DeliveryConfig,
    report: &mut DoctorReport,
) {
    let Some(step) = tenant_step(
        config,
        &settings.cluster_id,
        settings.default_external_id.as_deref(),
    ) else {
        return; // a valid cloudwatch config always names its role
    };
    let region = step.region.clone().unwrap_or_else(|| region_of(central));
    let external_id_sent = step.external_id.is_some();
    let session = match assume_role_chain(central, std::slice::from_ref(&step)).await {
        Ok(session) => {
            let caller = caller_arn(&session).await;
            report.push(Step::new(
                "cloudwatch.assume_role",
                "cloudwatch: assume customer role",
                StepStatus::Pass,
                format!(
                    "assumed {} in {region}{caller} (ExternalId sent: {}, session tags tenant_id, cluster_id)",
                    step.role_arn,
                    if external_id_sent { "yes" } else { "no" }
                ),
            ));
            session
        }
        Err(error) => {
            report.push(
                Step::new(
                    "cloudwatch.assume_role",
                    "cloudwatch: assume customer role",
                    StepStatus::Fail,
                    error.to_string(),
                )
                .with_code(hints::shown_code(error.code(), error.class()))
                .with_hint(hints::customer_role(
                    &error,
                    config,
                    settings.central_role_arn.as_deref(),
                    external_id_sent,
                    &region,
                )),
            );
            skip(
                report,
                "cloudwatch.log_group",
                "cloudwatch: log group",
                "skipped: the customer role could not be assumed",
            );
            skip(
                report,
                "cloudwatch.write",
                "cloudwatch: write test event",
                "skipped: the customer role could not be assumed",
            );
            return;
        }
    };
    let client = logs_client(&session, settings.logs_endpoint_url.as_deref());
    let group = config.log_group_name.clone().unwrap_or_default();
    log_group_step(settings, &client, config, &group, &region, report).await;
    if !settings.write {
        skip(
            report,
            "cloudwatch.write",
            "cloudwatch: write test event",
            "not run (add --write to put one marked test event)",
        );
        return;
    }
    let destination = format!("{}@{region}", step.role_arn);
    let service = LogsService::new(
        client,
        &config.tenant_id,
        destination,
        group.clone(),
        config.retention_days,
        RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        },
        Arc::default(),
    );
    let now = chrono::Utc::now();
    let event = LogEvent {
        timestamp_ms: now.timestamp_millis(),
        message: probe_message(&config.tenant_id, &now.to_rfc3339()),
    };
    match service.deliver(DOCTOR_LOG_STREAM, vec![event]).await {
        Ok(outcome) if outcome.accepted == 1 => report.push(Step::new(
            "cloudwatch.write",
            "cloudwatch: write test event",
            StepStatus::Pass,
            format!("wrote 1 test event to {group} / {DOCTOR_LOG_STREAM} in {region}"),
        )),
        Ok(outcome) => report.push(
            Step::new(
                "cloudwatch.write",
                "cloudwatch: write test event",
                StepStatus::Fail,
                format!("CloudWatch did not store the event: {:?}", outcome.rejected),
            )
            .with_hint("Check the host clock (events more than 2 hours ahead or 14 days behind are rejected)."),
        ),
        Err(error) => {
            let code = hints::delivery_code(&error);
            report.push(
                Step::new("cloudwatch.write", "cloudwatch: write test event", StepStatus::Fail, error.message.clone())
                    .with_code(code)
                    .with_hint(hints::logs_write(&error, &group, &region)),
            );
        }
    }
}

/// Checks that the log group exists (DescribeLogGroups with its name as prefix).
async fn log_group_step(
    settings: &DoctorSettings,
    client: &aws_sdk_cloudwatchlogs::Client,
    config: &DeliveryConfig,
    group: &str,
    region: &str,
    report: &mut DoctorReport,
) {
    const ID: &str = "cloudwatch.log_group";
    const TITLE: &str = "cloudwatch: log group";
    let result = client
        .describe_log_groups()
        .log_group_name_prefix(group)
        .send()
        .await;
    let output = match result {
        Ok(output) => output,
        Err(error) => {
            let failure = Classified::from_aws(AwsError::from_sdk("logs:DescribeLogGroups", error));
            if failure.class == ErrorClass::AccessDenied {
                let next = if settings.write {
                    "the write step below proves delivery"
                } else {
                    "run with --write to prove delivery"
                };
                report.push(
                    Step::new(ID, TITLE, StepStatus::Warn, format!("cannot list log groups in {region}: the role may not call logs:DescribeLogGroups"))
                        .with_code(hints::shown_code(failure.code.as_deref(), failure.class))
                        .with_hint(format!("The customer template grants only writing, not listing, so this is expected; {next}.")),
                );
            } else {
                report.push(
                    Step::new(ID, TITLE, StepStatus::Fail, failure.message.clone())
                        .with_code(hints::shown_code(failure.code.as_deref(), failure.class))
                        .with_hint(hints::log_group_check(&failure, region)),
                );
            }
            return;
        }
    };
    let found = output
        .log_groups()
        .iter()
        .find(|candidate| candidate.log_group_name() == Some(group));
    match found {
        Some(existing) => {
            let mut detail = format!("{group} exists in {region}");
            match existing.retention_in_days() {
                Some(days) => {
                    let _ = write!(detail, ", retention {days} days");
                }
                None => detail.push_str(", never expires"),
            }
            if let Some(key) = existing.kms_key_id() {
                let _ = write!(detail, ", encrypted with KMS key {key}");
            }
            if let Some(wanted) = config.retention_days
                && existing.retention_in_days() != Some(wanted)
            {
                let _ = write!(
                    detail,
                    " (the config's retention_days {wanted} applies only to groups logrelay creates)"
                );
            }
            report.push(Step::new(ID, TITLE, StepStatus::Pass, detail));
        }
        None if settings.write => {
            report.push(Step::new(
                ID,
                TITLE,
                StepStatus::Warn,
                format!("{group} not found in {region}; the write step below creates it there"),
            ));
        }
        None => {
            report.push(
                Step::new(
                    ID,
                    TITLE,
                    StepStatus::Fail,
                    format!("{group} not found in {region}"),
                )
                .with_code("ResourceNotFound")
                .with_hint(hints::log_group_missing(config, group, region)),
            );
        }
    }
}

/// Steps of an s3 config: HeadBucket and a test object, with the central identity (single hop).
async fn s3_steps(
    settings: &DoctorSettings,
    central: &SdkConfig,
    config: &DeliveryConfig,
    report: &mut DoctorReport,
) {
    let bucket = config.bucket_name.clone().unwrap_or_default();
    let region = config
        .target_region
        .clone()
        .unwrap_or_else(|| region_of(central));
    let writer = settings
        .central_role_arn
        .clone()
        .unwrap_or_else(|| "the processor's identity".to_owned());
    let regional = central
        .clone()
        .into_builder()
        .region(Region::new(region.clone()))
        .build();
    let client = s3_client(&regional);
    match client.head_bucket().bucket(&bucket).send().await {
        Ok(output) => match output.bucket_region() {
            Some(actual) if actual != region => {
                report.push(
                    Step::new(
                        "s3.bucket",
                        "s3: bucket",
                        StepStatus::Fail,
                        format!("{bucket} is in {actual}, not in {region}"),
                    )
                    .with_code("BucketRegionMismatch")
                    .with_hint(hints::bucket(
                        None,
                        &bucket,
                        &region,
                        Some(actual),
                        &writer,
                    )),
                );
                skip(
                    report,
                    "s3.write",
                    "s3: write test object",
                    "skipped: the bucket check failed",
                );
                return;
            }
            _ => report.push(Step::new(
                "s3.bucket",
                "s3: bucket",
                StepStatus::Pass,
                format!("{bucket} reachable in {region}"),
            )),
        },
        Err(error) => {
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
            let hint = hints::bucket(status, &bucket, &region, bucket_region.as_deref(), &writer);
            let wrong_region = bucket_region
                .as_deref()
                .is_some_and(|actual| actual != region);
            if status == Some(403) && !wrong_region {
                // Delivery needs s3:PutObject only; a bucket policy without s3:ListBucket refuses
                // HeadBucket although delivery works. The write step decides.
                let next = if settings.write {
                    "the write step below decides"
                } else {
                    "run with --write to prove delivery"
                };
                report.push(
                    Step::new(
                        "s3.bucket",
                        "s3: bucket",
                        StepStatus::Warn,
                        format!(
                            "cannot check {bucket}: HeadBucket refused (no s3:ListBucket); {next}"
                        ),
                    )
                    .with_code(shown)
                    .with_hint(hint),
                );
            } else {
                report.push(
                    Step::new(
                        "s3.bucket",
                        "s3: bucket",
                        StepStatus::Fail,
                        failure.to_string(),
                    )
                    .with_code(shown)
                    .with_hint(hint),
                );
                skip(
                    report,
                    "s3.write",
                    "s3: write test object",
                    "skipped: the bucket check failed",
                );
                return;
            }
        }
    }
    if !settings.write {
        skip(
            report,
            "s3.write",
            "s3: write test object",
            "not run (add --write to put one marked test object)",
        );
        return;
    }
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
        .acl(ObjectCannedAcl::BucketOwnerFullControl)
        .content_type("text/plain; charset=utf-8")
        .body(ByteStream::from(
            probe_message(&config.tenant_id, &now.to_rfc3339()).into_bytes(),
        ))
        .send()
        .await;
    match result {
        Ok(_) => report.push(Step::new(
            "s3.write",
            "s3: write test object",
            StepStatus::Pass,
            format!("wrote s3://{bucket}/{key}"),
        )),
        Err(error) => {
            let failure = AwsError::from_sdk(format!("s3:PutObject s3://{bucket}/{key}"), error);
            let message = failure.to_string();
            report.push(
                Step::new(
                    "s3.write",
                    "s3: write test object",
                    StepStatus::Fail,
                    message.clone(),
                )
                .with_code(hints::shown_code(failure.code(), failure.class()))
                .with_hint(hints::s3_write(
                    failure.class(),
                    &message,
                    &bucket,
                    &writer,
                )),
            );
        }
    }
}

/// The text of doctor's test event and object: says what it is.
pub fn probe_message(tenant_id: &str, time: &str) -> String {
    format!(
        "logrelay doctor probe: a test written by `logrelay-processor tenants doctor --write` for tenant {tenant_id} at {time} to check delivery; it can be ignored"
    )
}

fn skip(report: &mut DoctorReport, id: &str, title: &str, detail: &str) {
    report.push(Step::new(id, title, StepStatus::Skip, detail));
}

/// A CloudWatch Logs client of a tenant session, built like the processor's (endpoint override,
/// per-attempt timeout); the SDK's own retries stay on, the delivery code's are set to one try.
fn logs_client(session: &SdkConfig, endpoint_url: Option<&str>) -> aws_sdk_cloudwatchlogs::Client {
    let mut builder = aws_sdk_cloudwatchlogs::config::Builder::from(session).timeout_config(
        TimeoutConfig::builder()
            .operation_attempt_timeout(DEFAULT_REQUEST_TIMEOUT)
            .build(),
    );
    if let Some(url) = endpoint_url {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_cloudwatchlogs::Client::from_conf(builder.build())
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
