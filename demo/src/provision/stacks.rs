//! The CloudFormation part of provisioning: `demo/python/deploy_stacks.py` deploys the repo's
//! templates into moto with boto3 (as `cloudformation/checks/moto_smoke.py` does) and prints the
//! stacks' outputs, read here into typed values.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use tokio::process::Command;

use crate::options::DemoOptions;
use crate::paths::{python_script, templates_dir, venv_tool};

/// Longest a deployment may take (moto completes stacks synchronously in about a second).
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(120);

/// Project name of the demo's stacks (`ProjectName`: 2–20 of a-z 0-9 -).
pub const PROJECT: &str = "logrelay-demo";

/// OIDC issuer given to the core stack so that it creates the agent's `S3WriterRole` (moto has
/// no web identity; the agent assumes the role with plain AssumeRole, which moto allows).
pub const DEMO_OIDC_ISSUER: &str = "oidc.logrelay-demo.local/cluster-1";

/// The queue's visibility timeout in the demo: the template's minimum range is 30 s; one minute
/// lets a transiently failed message come back within the demo instead of after 30 minutes.
pub const DEMO_VISIBILITY_TIMEOUT_SECONDS: u32 = 60;

/// The queue's visibility timeout in chaos runs: the template's minimum, so that the messages a
/// killed processor held come back quickly (it extends visibility every third of it while it works).
pub const CHAOS_VISIBILITY_TIMEOUT_SECONDS: u32 = 30;

/// `sqs-stack.yaml`'s default (and minimum) `MaxReceiveCount`.
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 5;

/// The delivery queue's settings of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    /// `VisibilityTimeoutSeconds`.
    pub visibility_timeout_seconds: u32,
    /// `MaxReceiveCount` (receives before the redrive policy moves a message to the DLQ).
    pub max_receive_count: u32,
}

impl QueueSettings {
    /// The demo's settings; in chaos runs the short visibility timeout, and on top of the
    /// template's default 5 receives enough that the redrive window (receives × visibility)
    /// covers twice the S3 outage and twice the processor's progress lease (a killed processor's
    /// objects bounce once per visibility timeout until the lease expires). In production
    /// 5 × 1800 s = 2.5 h covers both; with the demo's short visibility, messages failing
    /// throughout the outage or a lease would otherwise be dead-lettered by the redrive policy.
    pub fn for_run(options: &DemoOptions) -> Self {
        match &options.chaos {
            None => Self {
                visibility_timeout_seconds: DEMO_VISIBILITY_TIMEOUT_SECONDS,
                max_receive_count: DEFAULT_MAX_RECEIVE_COUNT,
            },
            Some(plan) => {
                let visibility = CHAOS_VISIBILITY_TIMEOUT_SECONDS;
                let receives = |d: Duration| {
                    u32::try_from(d.as_secs().div_ceil(u64::from(visibility)) * 2)
                        .unwrap_or(u32::MAX)
                };
                let lease = plan.lease_held_after_kill();
                Self {
                    visibility_timeout_seconds: visibility,
                    max_receive_count: DEFAULT_MAX_RECEIVE_COUNT
                        .saturating_add(receives(plan.s3_outage))
                        .saturating_add(receives(lease))
                        .min(MAX_RECEIVE_COUNT_LIMIT),
                }
            }
        }
    }
}

/// `sqs-stack.yaml`'s `MaxReceiveCount` maximum.
const MAX_RECEIVE_COUNT_LIMIT: u32 = 1000;

/// Outputs of the core and SQS stacks.
#[derive(Debug, Clone, Deserialize)]
pub struct CentralStacks {
    /// `core-infrastructure.yaml` outputs.
    pub core: CoreOutputs,
    /// `sqs-stack.yaml` outputs.
    pub sqs: SqsOutputs,
    /// Resources moto did not create: logical id → type.
    pub skipped: BTreeMap<String, String>,
}

/// The core stack's outputs the demo uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CoreOutputs {
    /// Central bucket.
    pub central_logging_bucket_name: String,
    /// Topic of the bucket's notifications.
    pub log_delivery_topic_arn: String,
    /// Tenant config table.
    pub tenant_config_table_name: String,
    /// Delivery progress table.
    pub delivery_progress_table_name: String,
    /// Agent's writer role (present because the demo gives an OIDC issuer).
    pub s3_writer_role_arn: Option<String>,
    /// Central role the processor assumes before each tenant's role.
    pub central_log_distribution_role_arn: String,
}

/// The SQS stack's outputs the demo uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SqsOutputs {
    /// Queue URL.
    pub log_delivery_queue_url: String,
    /// Queue ARN.
    pub log_delivery_queue_arn: String,
    /// DLQ URL.
    #[serde(rename = "LogDeliveryDLQUrl")]
    pub log_delivery_dlq_url: String,
    /// DLQ ARN.
    #[serde(rename = "LogDeliveryDLQArn")]
    pub log_delivery_dlq_arn: String,
}

/// Outputs of one customer stack.
#[derive(Debug, Clone, Deserialize)]
pub struct CustomerStack {
    /// Stack outputs (`RoleArn`, `ExternalId`, `TenantId`, `LogGroupPrefix`, `LogGroupName`).
    pub outputs: BTreeMap<String, String>,
    /// Resources moto did not create.
    pub skipped: BTreeMap<String, String>,
}

/// Deploys the core and SQS stacks into the central account.
pub async fn deploy_central(
    endpoint: &str,
    suffix: &str,
    queue: QueueSettings,
    log_dir: &Path,
) -> anyhow::Result<CentralStacks> {
    let visibility = queue.visibility_timeout_seconds.to_string();
    let max_receive_count = queue.max_receive_count.to_string();
    let args = [
        "central",
        "--endpoint",
        endpoint,
        "--project",
        PROJECT,
        "--suffix",
        suffix,
        "--oidc-issuer",
        DEMO_OIDC_ISSUER,
        "--visibility-timeout",
        &visibility,
        "--max-receive-count",
        &max_receive_count,
    ];
    let stdout = run_script(&args, log_dir).await?;
    serde_json::from_str(&stdout).context("reading the central stacks' outputs")
}

/// Deploys `customer-log-distribution-role.yaml` into `account_id` with `parameters`.
pub async fn deploy_customer(
    endpoint: &str,
    account_id: &str,
    stack_name: &str,
    parameters: &[(String, String)],
    log_dir: &Path,
) -> anyhow::Result<CustomerStack> {
    let mut args: Vec<String> = [
        "customer",
        "--endpoint",
        endpoint,
        "--account",
        account_id,
        "--stack-name",
        stack_name,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for (key, value) in parameters {
        args.push("--param".into());
        args.push(format!("{key}={value}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stdout = run_script(&args, log_dir).await?;
    serde_json::from_str(&stdout).context("reading the customer stack's outputs")
}

/// Runs the script with the venv's Python; returns its stdout (stderr goes to the log).
async fn run_script(args: &[&str], log_dir: &Path) -> anyhow::Result<String> {
    let templates = templates_dir();
    let mut command = Command::new(venv_tool("python"));
    command
        .arg(python_script("deploy_stacks.py"))
        .arg(args[0])
        .arg("--templates")
        .arg(&templates)
        .args(&args[1..])
        .kill_on_drop(true);
    let output = tokio::time::timeout(DEPLOY_TIMEOUT, command.output())
        .await
        .context("CloudFormation deployment timed out")?
        .context("start the deployment script with .venv/bin/python")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let log = log_dir.join("cloudformation.log");
    let mut previous = std::fs::read_to_string(&log).unwrap_or_default();
    previous.push_str(&stderr);
    std::fs::write(&log, previous).with_context(|| format!("write {}", log.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "deploy_stacks.py {} failed ({}): {}",
        args[0],
        output.status,
        stderr.trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn central_outputs_are_read_by_their_output_names() {
        let json = r#"{"core": {"KmsKeyArn": "k", "CentralLoggingBucketName": "b",
            "CentralLoggingBucketArn": "arn:aws:s3:::b", "LogDeliveryTopicArn": "t",
            "TenantConfigTableName": "tc", "TenantConfigTableArn": "x", "DeliveryProgressTableName": "dp",
            "DeliveryProgressTableArn": "y", "S3WriterRoleArn": "w", "CentralLogDistributionRoleArn": "c"},
            "sqs": {"LogDeliveryQueueUrl": "q", "LogDeliveryQueueArn": "qa", "LogDeliveryDLQUrl": "d",
            "LogDeliveryDLQArn": "da", "VisibilityTimeoutSeconds": "60"},
            "skipped": {"LogDeliverySubscription": "AWS::SNS::Subscription"}}"#;
        let stacks: CentralStacks = serde_json::from_str(json).expect("parses");
        assert_eq!(stacks.core.central_logging_bucket_name, "b");
        assert_eq!(stacks.core.s3_writer_role_arn.as_deref(), Some("w"));
        assert_eq!(stacks.sqs.log_delivery_dlq_url, "d");
        assert_eq!(
            stacks.skipped["LogDeliverySubscription"],
            "AWS::SNS::Subscription"
        );
    }
}
