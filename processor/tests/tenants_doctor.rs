//! `tenants onboard` and `tenants doctor` against the emulator: onboard a tenant, deploy what the
//! customer template creates in a second account (222222222222), doctor all green and its test
//! event landing in the customer's log group; a wrong region and, with IAM enforced, a wrong
//! ExternalId and a missing role each reported at the failing step with a hint; `doctor --all` over
//! several tenants naming each refusing one with its fix.

mod tenants_support;

use aws_config::{Region, SdkConfig};
use logrelay_common::tenant::DeliveryType;
use logrelay_processor::admin::Context;
use logrelay_processor::admin::doctor::{
    DOCTOR_LOG_STREAM, DoctorReport, DoctorSettings, StepStatus, doctor,
};
use logrelay_processor::admin::store::TenantTable;
use logrelay_testkit::{
    DEFAULT_ACCOUNT_ID, Moto, allow_policy, create_bucket, create_role, create_tenant_table,
    create_user_with_access_key, static_config, unique_name,
};
use std::collections::HashMap;
use tenants_support::{
    CENTRAL_ROLE_ARN, CUSTOMER_ACCOUNT, Ran, binary, context, deploy_customer_stack,
    read_parameters, run, template_role_policy, template_trust_policy, unique_tenant,
};

/// Region the customers of these tests deliver to.
const TARGET_REGION: &str = "eu-west-1";

fn settings(context: &Context, write: bool) -> DoctorSettings {
    DoctorSettings {
        aws: context.aws.clone(),
        table: context.table.clone(),
        central_role_arn: context.central_role_arn.clone(),
        default_external_id: None,
        logs_endpoint_url: None,
        write,
        cluster_id: "logrelay-doctor".into(),
    }
}

fn status(report: &DoctorReport, id: &str) -> StepStatus {
    report
        .step(id)
        .unwrap_or_else(|| panic!("no step {id} in {}", report.to_text()))
        .status
}

fn in_region(config: &SdkConfig, region: &str) -> SdkConfig {
    config
        .clone()
        .into_builder()
        .region(Region::new(region.to_owned()))
        .build()
}

fn assert_code(ran: &Ran, code: u8) {
    assert_eq!(ran.code, code, "stdout:\n{}\nstderr:\n{}", ran.out, ran.err);
}

/// Onboards `tenant` (role name `role_name`) and returns the parameters the customer receives.
async fn onboard(
    context: &Context,
    tenant: &str,
    role_name: &str,
    extra: &[&str],
) -> (Ran, HashMap<String, String>) {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("parameters.json");
    let file_arg = file.display().to_string();
    let mut args = vec![
        "onboard",
        tenant,
        "--account",
        CUSTOMER_ACCOUNT,
        "--target-region",
        TARGET_REGION,
        "--role-name",
        role_name,
        "--out",
        &file_arg,
    ];
    args.extend_from_slice(extra);
    let ran = run(context, &args).await;
    assert_code(&ran, 0);
    let parameters = read_parameters(&file);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("file").permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the parameters file holds the ExternalId: owner only"
        );
    }
    (ran, parameters)
}

#[tokio::test]
async fn an_onboarded_tenant_whose_customer_deployed_the_stack_passes_doctor_and_gets_the_test_event()
 {
    let moto = Moto::shared().await;
    let context = context().await;
    let (tenant, role_name) = unique_tenant("green");
    let (ran, parameters) = onboard(&context, &tenant, &role_name, &[]).await;
    let external_id = parameters["ExternalId"].clone();
    assert!(external_id.len() >= 32, "{external_id}");
    assert_eq!(
        parameters["CentralLogDistributionRoleArn"],
        CENTRAL_ROLE_ARN
    );
    assert_eq!(parameters["TenantId"], tenant);
    assert!(
        ran.out.contains(&external_id),
        "the operator sees the parameters"
    );
    assert!(ran.out.contains(&format!(
        "aws cloudformation deploy --template-file customer-log-distribution-role.yaml --stack-name logrelay-{tenant} --region {TARGET_REGION} --capabilities CAPABILITY_NAMED_IAM --parameter-overrides file://"
    )), "{}", ran.out);
    let table = TenantTable::new(&context.aws, &context.table);
    let stored = table
        .get(&tenant, DeliveryType::Cloudwatch)
        .await
        .expect("get")
        .expect("stored")
        .config
        .expect("readable");
    assert_eq!(stored.external_id.as_deref(), Some(external_id.as_str()));
    assert!(!stored.enabled, "disabled until doctor passes");

    // Before the customer deploys: the log group is missing (moto grants any role without IAM).
    let report = doctor(&settings(&context, false), &tenant).await;
    assert_eq!(
        status(&report, "cloudwatch.log_group"),
        StepStatus::Fail,
        "{}",
        report.to_text()
    );

    let customer = moto.config(CUSTOMER_ACCOUNT).await;
    let role_arn =
        deploy_customer_stack(&customer, &parameters, CENTRAL_ROLE_ARN, TARGET_REGION).await;
    assert_eq!(
        stored.log_distribution_role_arn.as_deref(),
        Some(role_arn.as_str())
    );

    let report = doctor(&settings(&context, false), &tenant).await;
    assert!(report.ok, "{}", report.to_text());
    assert_eq!(status(&report, "configs"), StepStatus::Pass);
    assert_eq!(
        status(&report, "config.cloudwatch"),
        StepStatus::Warn,
        "disabled"
    );
    assert_eq!(status(&report, "central_role"), StepStatus::Pass);
    assert_eq!(status(&report, "cloudwatch.assume_role"), StepStatus::Pass);
    assert_eq!(status(&report, "cloudwatch.log_group"), StepStatus::Pass);
    assert_eq!(status(&report, "cloudwatch.write"), StepStatus::Skip);
    let assume = report.step("cloudwatch.assume_role").expect("step");
    assert!(
        assume
            .detail
            .contains(&format!("{CUSTOMER_ACCOUNT}:assumed-role/{role_name}")),
        "{}",
        assume.detail
    );
    assert!(
        report
            .step("cloudwatch.log_group")
            .expect("step")
            .detail
            .contains("retention 30 days")
    );

    // The S3 delivery of the same tenant: a bucket in the customer's account.
    let bucket = unique_name("customer-logs");
    create_bucket(&in_region(&customer, TARGET_REGION), &bucket)
        .await
        .expect("bucket");
    let ran = run(
        &context,
        &[
            "put",
            "--tenant-id",
            &tenant,
            "--type",
            "s3",
            "--bucket-name",
            &bucket,
            "--target-region",
            TARGET_REGION,
        ],
    )
    .await;
    assert_code(&ran, 0);
    assert_code(&run(&context, &["enable", &tenant, "cloudwatch"]).await, 0);

    let report = doctor(&settings(&context, true), &tenant).await;
    assert!(report.ok, "{}", report.to_text());
    for id in [
        "config.cloudwatch",
        "config.s3",
        "cloudwatch.write",
        "s3.bucket",
        "s3.write",
    ] {
        assert_eq!(
            status(&report, id),
            StepStatus::Pass,
            "{id}: {}",
            report.to_text()
        );
    }
    assert!(
        !report.to_text().contains(&external_id),
        "doctor never prints the ExternalId"
    );

    let logs = aws_sdk_cloudwatchlogs::Client::new(&in_region(&customer, TARGET_REGION));
    let group = format!(
        "{}{}",
        parameters["LogGroupPrefix"], parameters["LogGroupSuffix"]
    );
    let events = logs
        .get_log_events()
        .log_group_name(&group)
        .log_stream_name(DOCTOR_LOG_STREAM)
        .send()
        .await
        .expect("the probe stream exists in the customer's account");
    let messages: Vec<&str> = events.events().iter().filter_map(|e| e.message()).collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].starts_with("logrelay doctor probe"),
        "{}",
        messages[0]
    );
    let objects = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&in_region(&customer, TARGET_REGION))
            .force_path_style(true)
            .build(),
    )
    .list_objects_v2()
    .bucket(&bucket)
    .send()
    .await
    .expect("list");
    let keys: Vec<&str> = objects.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].starts_with(&format!(
            "ROSA/cluster-logs/{tenant}/logrelay-doctor/probe-"
        )),
        "{}",
        keys[0]
    );

    // The real binary: exit 0, marks, and the ExternalId neither in its output nor its logs.
    let central = ("CENTRAL_LOG_DISTRIBUTION_ROLE_ARN", CENTRAL_ROLE_ARN);
    let ran = binary(
        moto.url(),
        &context.table,
        &[central, ("RUST_LOG", "debug")],
        &["doctor", &tenant],
    )
    .await;
    assert_code(&ran, 0);
    assert!(
        ran.out.contains("✓ cloudwatch: assume customer role"),
        "{}",
        ran.out
    );
    assert!(
        ran.out.contains("- cloudwatch: write test event: not run"),
        "{}",
        ran.out
    );
    assert!(
        ran.out.ends_with("result: OK, every step passed\n"),
        "{}",
        ran.out
    );
    assert!(
        !ran.out.contains(&external_id) && !ran.err.contains(&external_id),
        "{}",
        ran.err
    );
    let ran = binary(
        moto.url(),
        &context.table,
        &[central],
        &["doctor", &tenant, "--json"],
    )
    .await;
    assert_code(&ran, 0);
    let json: serde_json::Value = serde_json::from_str(&ran.out).expect("JSON report");
    assert_eq!(json["ok"], true);
    assert_eq!(json["steps"][0]["id"], "configs");
}

#[tokio::test]
async fn onboarding_again_keeps_the_external_id_and_the_binary_never_logs_it() {
    let moto = Moto::shared().await;
    let context = context().await;
    let (tenant, role_name) = unique_tenant("again");
    let (_, first) = onboard(&context, &tenant, &role_name, &[]).await;
    let (again, second) = onboard(&context, &tenant, &role_name, &["--enable"]).await;
    assert_eq!(first["ExternalId"], second["ExternalId"]);
    assert!(
        again.out.contains("the stored one, unchanged"),
        "{}",
        again.out
    );
    let (_, rotated) = onboard(&context, &tenant, &role_name, &["--rotate-external-id"]).await;
    assert_ne!(rotated["ExternalId"], first["ExternalId"]);

    let (other, _) = unique_tenant("binary");
    let ran = binary(
        moto.url(),
        &context.table,
        &[
            ("CENTRAL_LOG_DISTRIBUTION_ROLE_ARN", CENTRAL_ROLE_ARN),
            ("RUST_LOG", "trace"),
        ],
        &["onboard", &other, "--account", CUSTOMER_ACCOUNT],
    )
    .await;
    assert_code(&ran, 0);
    let table = TenantTable::new(&context.aws, &context.table);
    let stored = table
        .get(&other, DeliveryType::Cloudwatch)
        .await
        .expect("get")
        .expect("stored")
        .config
        .expect("readable");
    let external_id = stored.external_id.expect("generated");
    assert_eq!(
        stored.target_region.as_deref(),
        Some("us-east-1"),
        "the processor's region by default"
    );
    assert!(ran.out.contains(&external_id), "stdout is for the operator");
    assert!(ran.err.contains("tenant onboarded"), "{}", ran.err);
    assert!(
        !ran.err.contains(&external_id),
        "logs must not carry the ExternalId"
    );

    let ran = binary(
        moto.url(),
        &context.table,
        &[],
        &["onboard", &other, "--account", CUSTOMER_ACCOUNT],
    )
    .await;
    assert_code(&ran, 2);
    assert!(
        ran.err.contains("CENTRAL_LOG_DISTRIBUTION_ROLE_ARN"),
        "{}",
        ran.err
    );
}

#[tokio::test]
async fn a_wrong_region_fails_the_log_group_and_bucket_steps_with_a_region_hint() {
    let moto = Moto::shared().await;
    let context = context().await;
    let (tenant, role_name) = unique_tenant("region");
    let (_, parameters) = onboard(&context, &tenant, &role_name, &["--enable"]).await;
    let customer = moto.config(CUSTOMER_ACCOUNT).await;
    // The customer deployed the stack (and its log group) in eu-west-1 …
    deploy_customer_stack(&customer, &parameters, CENTRAL_ROLE_ARN, TARGET_REGION).await;
    let bucket = unique_name("customer-logs");
    create_bucket(&in_region(&customer, TARGET_REGION), &bucket)
        .await
        .expect("bucket");
    // … but the configs say us-west-2.
    let group = format!(
        "{}{}",
        parameters["LogGroupPrefix"], parameters["LogGroupSuffix"]
    );
    for args in [
        vec![
            "put",
            "--tenant-id",
            &tenant,
            "--type",
            "cloudwatch",
            "--target-region",
            "us-west-2",
            "--update",
        ],
        vec![
            "put",
            "--tenant-id",
            &tenant,
            "--type",
            "s3",
            "--bucket-name",
            &bucket,
            "--target-region",
            "us-west-2",
        ],
    ] {
        assert_code(&run(&context, &args).await, 0);
    }

    let report = doctor(&settings(&context, false), &tenant).await;
    assert!(!report.ok);
    assert_eq!(status(&report, "cloudwatch.assume_role"), StepStatus::Pass);
    let step = report.step("cloudwatch.log_group").expect("step");
    assert_eq!(step.status, StepStatus::Fail, "{}", report.to_text());
    assert_eq!(step.detail, format!("{group} not found in us-west-2"));
    assert!(
        step.hint
            .as_deref()
            .is_some_and(|h| h.contains("in another region than target_region (us-west-2)")),
        "{step:?}"
    );
    let step = report.step("s3.bucket").expect("step");
    assert_eq!(step.status, StepStatus::Fail, "{}", report.to_text());
    assert!(
        step.hint
            .as_deref()
            .is_some_and(|h| h.contains("target_region to eu-west-1")),
        "{step:?}"
    );
    assert_eq!(status(&report, "s3.write"), StepStatus::Skip);

    let ran = binary(
        moto.url(),
        &context.table,
        &[("CENTRAL_LOG_DISTRIBUTION_ROLE_ARN", CENTRAL_ROLE_ARN)],
        &["doctor", &tenant],
    )
    .await;
    assert_code(&ran, 1);
    assert!(
        ran.out.contains(&format!(
            "✗ cloudwatch: log group: {group} not found in us-west-2"
        )),
        "{}",
        ran.out
    );
    assert!(ran.out.contains("    hint: "), "{}", ran.out);
    assert!(
        ran.out.ends_with("result: FAILED, 2 step(s) failed\n"),
        "{}",
        ran.out
    );

    // The real binary's `--all`: the failing step's own hint is the fix; no redeploy commands.
    let ran = binary(
        moto.url(),
        &context.table,
        &[("CENTRAL_LOG_DISTRIBUTION_ROLE_ARN", CENTRAL_ROLE_ARN)],
        &["doctor", "--all", "--json"],
    )
    .await;
    assert_code(&ran, 1);
    let json: serde_json::Value = serde_json::from_str(&ran.out).expect("JSON summary");
    assert_eq!(json[0]["tenant_id"], tenant.as_str(), "{json}");
    assert_eq!(json[0]["ok"], false);
    assert_eq!(json[0]["failing_step"], "cloudwatch.log_group");
    assert!(
        json[0]["fix"]
            .as_str()
            .is_some_and(|fix| fix.contains("another region than target_region (us-west-2)")),
        "{json}"
    );
    assert!(json[0].get("commands").is_none(), "{json}");
}

#[tokio::test]
async fn doctor_reports_a_tenant_without_configs_and_an_unreachable_table() {
    let context = context().await;
    let report = doctor(&settings(&context, false), "nobody").await;
    assert!(!report.ok);
    assert_eq!(report.steps.len(), 1);
    let step = &report.steps[0];
    assert_eq!(
        (step.id.as_str(), step.status),
        ("configs", StepStatus::Fail)
    );
    assert!(
        step.hint
            .as_deref()
            .is_some_and(|h| h.contains("tenants onboard nobody")),
        "{step:?}"
    );

    let missing = DoctorSettings {
        table: "no-such-table".into(),
        ..settings(&context, false)
    };
    let report = doctor(&missing, "nobody").await;
    let step = &report.steps[0];
    assert_eq!(step.status, StepStatus::Fail);
    assert_eq!(
        step.code.as_deref(),
        Some("ResourceNotFoundException"),
        "{step:?}"
    );
    assert!(
        step.hint
            .as_deref()
            .is_some_and(|h| h.contains("TENANT_CONFIG_TABLE")),
        "{step:?}"
    );
}

/// An emulator enforcing IAM, a processor user allowed to assume the central role, the central
/// role, and a tenant table holding `tenant`'s cloudwatch config for a customer role. moto checks
/// trust policies only within one account and matches principals literally, so the customer role
/// sits in the central account and trusts `*` under the template's conditions.
struct Enforcing {
    moto: Moto,
    context: Context,
    customer_role: String,
    parameters: HashMap<String, String>,
}

async fn enforcing(tenant: &str, stored_external_id: &str, role_exists: bool) -> Enforcing {
    let mut moto = Moto::start_private().await;
    let admin = moto.config(DEFAULT_ACCOUNT_ID).await;
    let (user_arn, user_credentials) = create_user_with_access_key(
        &admin,
        "processor",
        &allow_policy(&[
            "sts:AssumeRole",
            "sts:TagSession",
            "dynamodb:*",
            "sts:GetCallerIdentity",
        ]),
    )
    .await
    .expect("user");
    let central_role = create_role(
        &admin,
        "logrelay-central",
        &logrelay_testkit::trust_policy(&user_arn, None),
        // Like a tenant's bucket policy: objects may be put, the bucket not listed.
        Some(&allow_policy(&[
            "sts:AssumeRole",
            "sts:TagSession",
            "s3:PutObject",
            "s3:PutObjectAcl",
        ])),
    )
    .await
    .expect("central role");
    let parameters = HashMap::from([
        (
            "ExternalId".to_owned(),
            "TheRightExternalId0123456789abcdef".to_owned(),
        ),
        ("TenantId".to_owned(), tenant.to_owned()),
    ]);
    let customer_role = format!("arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/CustomerLogDistribution");
    if role_exists {
        create_role(
            &admin,
            "CustomerLogDistribution",
            &template_trust_policy("*", &parameters),
            Some(&template_role_policy(DEFAULT_ACCOUNT_ID, None)),
        )
        .await
        .expect("customer role");
    }
    let table = unique_name("tenants");
    create_tenant_table(&admin, &table).await.expect("table");
    let mut config =
        logrelay_processor::admin::blank_config(tenant, DeliveryType::Cloudwatch).expect("config");
    config.log_distribution_role_arn = Some(customer_role.clone());
    config.log_group_name = Some(format!("/ROSA/cluster-logs/{tenant}"));
    config.external_id = Some(stored_external_id.to_owned());
    config.target_region = Some(TARGET_REGION.to_owned());
    TenantTable::new(&admin, &table)
        .create(&config)
        .await
        .expect("config");
    let bucket = unique_name("customer-logs");
    create_bucket(&in_region(&admin, TARGET_REGION), &bucket)
        .await
        .expect("bucket");
    let mut s3 = logrelay_processor::admin::blank_config(tenant, DeliveryType::S3).expect("config");
    s3.bucket_name = Some(bucket);
    s3.target_region = Some(TARGET_REGION.to_owned());
    TenantTable::new(&admin, &table)
        .create(&s3)
        .await
        .expect("s3 config");
    moto.enforce_from_now().await.expect("enforcement on");
    let context = Context {
        aws: static_config(moto.url(), user_credentials).await,
        table,
        central_role_arn: Some(central_role),
        default_external_id: None,
        logs_endpoint_url: None,
    };
    Enforcing {
        moto,
        context,
        customer_role,
        parameters,
    }
}

#[tokio::test]
async fn with_iam_enforced_a_wrong_external_id_fails_the_assume_role_step_with_the_external_id_hint()
 {
    let setup = enforcing("acme", "TheWrongExternalId0123456789abcdef", true).await;
    let report = doctor(&settings(&setup.context, true), "acme").await;
    assert!(!report.ok);
    assert_eq!(
        status(&report, "configs"),
        StepStatus::Pass,
        "{}",
        report.to_text()
    );
    assert_eq!(
        status(&report, "central_role"),
        StepStatus::Pass,
        "{}",
        report.to_text()
    );
    let step = report.step("cloudwatch.assume_role").expect("step");
    assert_eq!(step.status, StepStatus::Fail, "{}", report.to_text());
    assert!(
        step.code
            .as_deref()
            .is_some_and(|c| c.starts_with("AccessDenied")),
        "{step:?}"
    );
    let hint = step.hint.as_deref().expect("hint");
    assert!(hint.starts_with("The customer role refused the central role. Check, most likely first: the stack's ExternalId parameter equals this config's external_id"), "{hint}");
    assert!(
        !report.to_text().contains("TheWrongExternalId"),
        "{}",
        report.to_text()
    );
    assert_eq!(status(&report, "cloudwatch.log_group"), StepStatus::Skip);
    assert_eq!(status(&report, "cloudwatch.write"), StepStatus::Skip);

    // The same chain with the ExternalId of the customer's stack passes, enforcement and all.
    let right = &setup.parameters["ExternalId"];
    let ran = run(
        &setup.context,
        &[
            "put",
            "--tenant-id",
            "acme",
            "--type",
            "cloudwatch",
            "--external-id",
            right,
            "--update",
        ],
    )
    .await;
    assert_code(&ran, 0);
    let report = doctor(&settings(&setup.context, true), "acme").await;
    assert!(report.ok, "{}", report.to_text());
    assert_eq!(status(&report, "cloudwatch.assume_role"), StepStatus::Pass);
    assert_eq!(
        status(&report, "cloudwatch.write"),
        StepStatus::Pass,
        "{}",
        report.to_text()
    );
    // The central role may put objects but not list the bucket: the check cannot tell, the
    // test object proves delivery.
    let bucket = report.step("s3.bucket").expect("step");
    assert_eq!(bucket.status, StepStatus::Warn, "{}", report.to_text());
    assert!(
        bucket.detail.contains("the write step below decides"),
        "{bucket:?}"
    );
    assert_eq!(
        status(&report, "s3.write"),
        StepStatus::Pass,
        "{}",
        report.to_text()
    );
    drop(setup.moto);
}

#[tokio::test]
async fn with_iam_enforced_a_missing_customer_role_is_reported_at_the_failing_step() {
    let setup = enforcing("acme", "TheRightExternalId0123456789abcdef", false).await;
    let report = doctor(&settings(&setup.context, true), "acme").await;
    assert!(!report.ok, "{}", report.to_text());
    // Real STS refuses AssumeRole of a missing role (AccessDenied, whose hint names a missing
    // role); moto grants it and then fails (HTTP 500, NoSuchEntity while authorizing) every call
    // the session makes. Either way the chain passes up to the central role and fails at the
    // customer role's first use, with a code and a hint at every failed step.
    let first_failure = report
        .steps
        .iter()
        .position(|step| step.status == StepStatus::Fail)
        .expect("a failed step");
    let central = report
        .steps
        .iter()
        .position(|step| step.id == "central_role")
        .expect("central step");
    assert!(first_failure > central, "{}", report.to_text());
    assert_eq!(status(&report, "central_role"), StepStatus::Pass);
    assert!(
        report.steps[first_failure].id.starts_with("cloudwatch."),
        "{}",
        report.to_text()
    );
    for step in report
        .steps
        .iter()
        .filter(|step| step.status == StepStatus::Fail)
    {
        assert!(step.code.is_some() && step.hint.is_some(), "{step:?}");
    }
    assert_eq!(
        status(&report, "cloudwatch.write"),
        StepStatus::Fail,
        "{}",
        report.to_text()
    );
    assert!(report.to_text().contains(&setup.customer_role));
}

/// One tenant of the `--all` test: its id, the ExternalId its config sends, and its role's trust.
struct FleetTenant {
    id: &'static str,
    config_external_id: &'static str,
    trusted: &'static str,
    role_external_id: &'static str,
}

const RIGHT_ID: &str = "TheRightExternalId0123456789abcdef";
/// The proof of concept's central role: what the customer roles of migrated tenants trust.
const OLD_CENTRAL_ROLE: &str = "arn:aws:iam::123456789012:role/poc-central";

/// Creates the tenant's role (the template's trust policy for `trusted`) and its enabled config.
async fn fleet_tenant(admin: &SdkConfig, table: &TenantTable, tenant: &FleetTenant, enabled: bool) {
    let role_name = format!("CustomerLogDistribution-{}", tenant.id);
    let parameters = HashMap::from([
        ("ExternalId".to_owned(), tenant.role_external_id.to_owned()),
        ("TenantId".to_owned(), tenant.id.to_owned()),
    ]);
    let role_arn = create_role(
        admin,
        &role_name,
        &template_trust_policy(tenant.trusted, &parameters),
        Some(&template_role_policy(DEFAULT_ACCOUNT_ID, None)),
    )
    .await
    .expect("customer role");
    let mut config = logrelay_processor::admin::blank_config(tenant.id, DeliveryType::Cloudwatch)
        .expect("config");
    config.log_distribution_role_arn = Some(role_arn);
    config.log_group_name = Some(format!("/ROSA/cluster-logs/{}", tenant.id));
    config.external_id = Some(tenant.config_external_id.to_owned());
    config.target_region = Some(TARGET_REGION.to_owned());
    config.enabled = enabled;
    table.create(&config).await.expect("config");
}

#[tokio::test]
async fn doctor_all_with_iam_enforced_names_each_refusing_tenant_with_its_fix_and_exits_1() {
    let mut moto = Moto::start_private().await;
    let admin = moto.config(DEFAULT_ACCOUNT_ID).await;
    let (user_arn, user_credentials) = create_user_with_access_key(
        &admin,
        "processor",
        &allow_policy(&[
            "sts:AssumeRole",
            "sts:TagSession",
            "dynamodb:*",
            "sts:GetCallerIdentity",
        ]),
    )
    .await
    .expect("user");
    let central_role = create_role(
        &admin,
        "logrelay-central",
        &logrelay_testkit::trust_policy(&user_arn, None),
        Some(&allow_policy(&["sts:AssumeRole", "sts:TagSession"])),
    )
    .await
    .expect("central role");
    let table_name = unique_name("tenants");
    create_tenant_table(&admin, &table_name)
        .await
        .expect("table");
    let table = TenantTable::new(&admin, &table_name);
    // moto matches trust principals literally against the session ARN, so the roles that trust
    // the new central role name `*` (under the template's conditions); see `enforcing`.
    let fleet = [
        FleetTenant {
            id: "alpha",
            config_external_id: RIGHT_ID,
            trusted: "*",
            role_external_id: RIGHT_ID,
        },
        FleetTenant {
            id: "bravo",
            config_external_id: RIGHT_ID,
            trusted: "*",
            role_external_id: RIGHT_ID,
        },
        FleetTenant {
            id: "charlie",
            config_external_id: RIGHT_ID,
            trusted: OLD_CENTRAL_ROLE,
            role_external_id: RIGHT_ID,
        },
        FleetTenant {
            id: "delta",
            config_external_id: "TheWrongExternalId0123456789abcdef",
            trusted: "*",
            role_external_id: RIGHT_ID,
        },
    ];
    for tenant in &fleet {
        fleet_tenant(&admin, &table, tenant, true).await;
    }
    // Migrated with the proof of concept's shared ExternalId (the central account id), which its
    // role checks: the chain passes, but the role is not the current template.
    let shared = FleetTenant {
        id: "foxtrot",
        config_external_id: DEFAULT_ACCOUNT_ID,
        trusted: "*",
        role_external_id: DEFAULT_ACCOUNT_ID,
    };
    fleet_tenant(&admin, &table, &shared, true).await;
    // A disabled tenant whose role refuses too: not walked.
    let disabled = FleetTenant {
        id: "echo",
        config_external_id: RIGHT_ID,
        trusted: OLD_CENTRAL_ROLE,
        role_external_id: RIGHT_ID,
    };
    fleet_tenant(&admin, &table, &disabled, false).await;
    moto.enforce_from_now().await.expect("enforcement on");
    let context = Context {
        aws: static_config(moto.url(), user_credentials).await,
        table: table_name,
        central_role_arn: Some(central_role.clone()),
        default_external_id: None,
        logs_endpoint_url: None,
    };

    // A page size of 2 makes the scan take several pages.
    let ran = run(&context, &["doctor", "--all", "--page-size", "2"]).await;
    assert_code(&ran, 1);
    let out = &ran.out;
    assert!(
        out.starts_with("logrelay doctor --all: 5 enabled tenant(s) in table "),
        "{out}"
    );
    for good in ["✓ alpha\n", "✓ bravo\n"] {
        assert!(out.contains(good), "{good}: {out}");
    }
    assert!(
        !out.contains("echo"),
        "disabled tenants are not walked: {out}"
    );
    assert!(
        out.contains("result: FAILED, 2 of 5 tenant(s) fail"),
        "{out}"
    );
    assert!(out.contains("! foxtrot: shared ExternalId\n"), "{out}");
    assert!(
        out.contains("\nfoxtrot: passes, but without its own ExternalId"),
        "{out}"
    );
    for bad in ["charlie", "delta"] {
        let section = out
            .split(&format!("\n{bad}: cloudwatch.assume_role\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no section for {bad}: {out}"));
        let section = section.split("\n\n").next().unwrap_or_default();
        assert!(
            section.contains(&format!("trust principal is exactly {central_role}")),
            "{bad}: {section}"
        );
        assert!(
            section.contains("sts:ExternalId condition equals this config's external_id"),
            "{bad}: {section}"
        );
        assert!(section.contains(&format!(
            "  run: logrelay-processor tenants onboard {bad} --account {DEFAULT_ACCOUNT_ID} --role-name CustomerLogDistribution-{bad} --target-region {TARGET_REGION} --out {bad}-parameters.json\n"
        )), "{bad}: {section}");
        assert!(section.contains(&format!(
            "  run: in account {DEFAULT_ACCOUNT_ID}: aws cloudformation deploy --template-file customer-log-distribution-role.yaml --stack-name logrelay-{bad} --region {TARGET_REGION}"
        )), "{bad}: {section}");
    }
    assert!(
        !out.contains("TheWrongExternalId") && !out.contains(RIGHT_ID),
        "{out}"
    );

    let ran = run(
        &context,
        &["doctor", "--all", "--json", "--concurrency", "2"],
    )
    .await;
    assert_code(&ran, 1);
    let json: serde_json::Value = serde_json::from_str(&ran.out).expect("JSON");
    let tenants = json.as_array().expect("one object per tenant");
    let ids: Vec<&str> = tenants
        .iter()
        .filter_map(|t| t["tenant_id"].as_str())
        .collect();
    assert_eq!(ids, ["alpha", "bravo", "charlie", "delta", "foxtrot"]);
    for tenant in tenants {
        let failing = tenant["tenant_id"] == "charlie" || tenant["tenant_id"] == "delta";
        assert_eq!(tenant["ok"], !failing, "{tenant}");
        if failing {
            assert_eq!(tenant["failing_step"], "cloudwatch.assume_role", "{tenant}");
            assert_eq!(tenant["refusal"], "trust_or_external_id", "{tenant}");
            assert!(
                tenant["fix"]
                    .as_str()
                    .is_some_and(|f| f.contains(&central_role)),
                "{tenant}"
            );
            assert_eq!(
                tenant["commands"].as_array().map(Vec::len),
                Some(2),
                "{tenant}"
            );
        } else if tenant["tenant_id"] == "foxtrot" {
            assert!(tenant["note"].is_string(), "{tenant}");
            assert_eq!(
                tenant["commands"].as_array().map(Vec::len),
                Some(2),
                "{tenant}"
            );
        } else {
            assert!(
                tenant.get("fix").is_none() && tenant.get("note").is_none(),
                "{tenant}"
            );
        }
    }

    // delta's config sends the ExternalId its role checks; charlie is disabled until its
    // customer deploys the template: every enabled tenant passes, exit 0 (foxtrot still listed).
    let ran = run(
        &context,
        &[
            "put",
            "--tenant-id",
            "delta",
            "--type",
            "cloudwatch",
            "--external-id",
            RIGHT_ID,
            "--update",
        ],
    )
    .await;
    assert_code(&ran, 0);
    assert_code(
        &run(&context, &["disable", "charlie", "cloudwatch"]).await,
        0,
    );
    let ran = run(&context, &["doctor", "--all"]).await;
    assert_code(&ran, 0);
    assert!(
        ran.out.contains("result: OK, every tenant passed\n"),
        "{}",
        ran.out
    );
    assert!(
        ran.out
            .contains("\nfoxtrot: passes, but without its own ExternalId"),
        "still listed, without failing the run: {}",
        ran.out
    );
    drop(moto);
}
