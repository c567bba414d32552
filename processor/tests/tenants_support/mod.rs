//! Shared setup of the `tenants` tests: a tenant table in the emulator, running a `tenants`
//! command through the library (output captured) or through the real binary, and the customer
//! side of onboarding (the role the customer template creates).

#![allow(dead_code)]

use aws_config::SdkConfig;
use clap::Parser;
use logrelay_processor::admin::{Context, Output, TenantsError, run_with};
use logrelay_processor::config::{Command, ProcessorConfig};
use logrelay_testkit::{DEFAULT_ACCOUNT_ID, Moto, create_role, create_tenant_table, unique_name};
use std::collections::HashMap;

/// The customer account of the onboarding tests.
pub const CUSTOMER_ACCOUNT: &str = "222222222222";
/// The central role the tests' processor assumes (moto grants it without IAM enforcement).
pub const CENTRAL_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/logrelay-central";

/// What a command printed and returned.
#[derive(Debug)]
pub struct Ran {
    /// Exit code (from `TenantsError::exit_code` when the command failed).
    pub code: u8,
    /// Stdout.
    pub out: String,
    /// Stderr (for a failed command: its error message).
    pub err: String,
}

/// A fresh tenant table in the shared emulator and a context using it as the processor would.
pub async fn context() -> Context {
    let moto = Moto::shared().await;
    let aws = moto.config(DEFAULT_ACCOUNT_ID).await;
    context_with(aws).await
}

/// A fresh tenant table reached through `aws`, with the central role set.
pub async fn context_with(aws: SdkConfig) -> Context {
    let table = unique_name("tenants");
    create_tenant_table(&aws, &table)
        .await
        .expect("tenant table");
    Context {
        aws,
        table,
        central_role_arn: Some(CENTRAL_ROLE_ARN.to_owned()),
        default_external_id: None,
        logs_endpoint_url: None,
    }
}

/// Runs `logrelay-processor tenants <args>` through the library, parsing the flags like main.
pub async fn run(context: &Context, args: &[&str]) -> Ran {
    let mut argv = vec!["logrelay-processor", "tenants"];
    argv.extend_from_slice(args);
    let config = ProcessorConfig::try_parse_from(argv).expect("flags parse");
    let Some(Command::Tenants(tenants)) = config.command else {
        panic!("not a tenants command");
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result = {
        let mut output = Output {
            out: &mut out,
            err: &mut err,
        };
        run_with(context, &tenants.command, &mut output).await
    };
    let code = match &result {
        Ok(code) => *code,
        Err(error) => {
            err.extend_from_slice(error.to_string().as_bytes());
            error.exit_code()
        }
    };
    Ran {
        code,
        out: String::from_utf8(out).expect("utf-8 output"),
        err: String::from_utf8(err).expect("utf-8 errors"),
    }
}

/// Like [`run`], but returns the error itself.
pub async fn run_err(context: &Context, args: &[&str]) -> TenantsError {
    let mut argv = vec!["logrelay-processor", "tenants"];
    argv.extend_from_slice(args);
    let config = ProcessorConfig::try_parse_from(argv).expect("flags parse");
    let Some(Command::Tenants(tenants)) = config.command else {
        panic!("not a tenants command");
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut output = Output {
        out: &mut out,
        err: &mut err,
    };
    run_with(context, &tenants.command, &mut output)
        .await
        .expect_err("the command fails")
}

/// Runs the real binary with a hermetic environment pointing at `moto_url` (no central role
/// unless given in `envs`).
pub async fn binary(moto_url: &str, table: &str, envs: &[(&str, &str)], args: &[&str]) -> Ran {
    let home = tempfile::tempdir().expect("home");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_logrelay-processor"))
        .arg("tenants")
        .args(args)
        .env_clear()
        .env("HOME", home.path())
        .env("AWS_ENDPOINT_URL", moto_url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("TENANT_CONFIG_TABLE", table)
        .envs(envs.iter().copied())
        .output()
        .await
        .expect("the binary runs");
    Ran {
        code: output
            .status
            .code()
            .and_then(|code| u8::try_from(code).ok())
            .unwrap_or(u8::MAX),
        out: String::from_utf8(output.stdout).expect("utf-8 stdout"),
        err: String::from_utf8(output.stderr).expect("utf-8 stderr"),
    }
}

/// Reads an onboarding parameters file into key → value.
pub fn read_parameters(path: &std::path::Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path).expect("parameters file");
    let list: Vec<serde_json::Value> = serde_json::from_str(&text).expect("parameters JSON");
    list.iter()
        .map(|p| {
            (
                p["ParameterKey"].as_str().expect("key").to_owned(),
                p["ParameterValue"].as_str().expect("value").to_owned(),
            )
        })
        .collect()
}

/// The trust policy `customer-log-distribution-role.yaml` gives the role, for `principal`.
pub fn template_trust_policy(principal: &str, parameters: &HashMap<String, String>) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "OnlyTheCentralRoleWithExternalIdAndTenantTag",
            "Effect": "Allow",
            "Principal": { "AWS": principal },
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {
                "StringEquals": {
                    "sts:ExternalId": parameters["ExternalId"],
                    "aws:RequestTag/tenant_id": parameters["TenantId"],
                },
                "ForAllValues:StringEquals": { "aws:TagKeys": ["tenant_id", "cluster_id"] },
            },
        }],
    })
    .to_string()
}

/// The role policy of the template (resource scoped to the log group prefix), or `*` when the
/// emulator enforces IAM (moto does not match these resource ARNs).
pub fn template_role_policy(account: &str, prefix: Option<&str>) -> String {
    let resource = prefix.map_or_else(
        || "*".to_owned(),
        |prefix| format!("arn:aws:logs:*:{account}:log-group:{prefix}*"),
    );
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:PutRetentionPolicy"],
            "Resource": resource,
        }],
    })
    .to_string()
}

/// What the customer's stack creates: the role (trusting `principal`) and, with
/// `CreateLogGroup=true`, the log group in `region`. Returns the role ARN.
pub async fn deploy_customer_stack(
    customer: &SdkConfig,
    parameters: &HashMap<String, String>,
    principal: &str,
    region: &str,
) -> String {
    let account = CUSTOMER_ACCOUNT;
    let role_arn = create_role(
        customer,
        &parameters["RoleName"],
        &template_trust_policy(principal, parameters),
        Some(&template_role_policy(
            account,
            Some(&parameters["LogGroupPrefix"]),
        )),
    )
    .await
    .expect("customer role");
    if parameters.get("CreateLogGroup").map(String::as_str) == Some("true") {
        let regional = customer
            .clone()
            .into_builder()
            .region(aws_config::Region::new(region.to_owned()))
            .build();
        let logs = aws_sdk_cloudwatchlogs::Client::new(&regional);
        let group = format!(
            "{}{}",
            parameters["LogGroupPrefix"], parameters["LogGroupSuffix"]
        );
        logs.create_log_group()
            .log_group_name(&group)
            .send()
            .await
            .expect("log group");
        let days: i32 = parameters["LogRetentionDays"].parse().expect("days");
        logs.put_retention_policy()
            .log_group_name(&group)
            .retention_in_days(days)
            .send()
            .await
            .expect("retention");
    }
    role_arn
}

/// A tenant id and a role name no other test uses (roles and log groups in the customer account
/// are shared by every test of the binary).
pub fn unique_tenant(prefix: &str) -> (String, String) {
    let tenant = unique_name(prefix);
    let suffix: String = tenant
        .chars()
        .rev()
        .take(30)
        .collect::<String>()
        .chars()
        .rev()
        .collect();
    (tenant, format!("CustomerLogDistribution-{suffix}"))
}
