//! `tenants validate / put / get / list / delete / enable / disable` against the emulator's
//! DynamoDB, through the library and the real binary: round trips over 150 tenants with a
//! paginated scan, validation errors and exit codes, conditional create and `--update`.

mod tenants_support;

use logrelay_common::tenant::{DeliveryConfig, DeliveryType};
use logrelay_processor::admin::TenantsError;
use logrelay_processor::admin::store::TenantTable;
use logrelay_testkit::{FaultProxy, Moto, static_config, test_credentials};
use std::fmt::Write as _;
use tenants_support::{Ran, binary, context, context_with, run, run_err};

/// Number of tenants of the round-trip test (the scan must need many pages).
const TENANTS: usize = 150;
/// The ExternalId of the round-trip test's cloudwatch config.
const SECRET: &str = "tenant-000-secret-external-id";
/// An enabled cloudwatch config without an ExternalId.
const CLOUDWATCH_WITHOUT_ID: &str = "tenant_id: legacy\ntype: cloudwatch\nlog_distribution_role_arn: arn:aws:iam::222222222222:role/CustomerLogDistribution\nlog_group_name: /legacy\n";

fn s3_entry(tenant: &str, bucket: &str) -> String {
    format!("- tenant_id: {tenant}\n  type: s3\n  bucket_name: {bucket}\n")
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write file");
    path.display().to_string()
}

fn assert_code(ran: &Ran, code: u8) {
    assert_eq!(ran.code, code, "stdout:\n{}\nstderr:\n{}", ran.out, ran.err);
}

#[tokio::test]
async fn the_binary_validates_files_listing_every_problem_with_file_index_and_field() {
    let dir = tempfile::tempdir().expect("dir");
    let bad = write(
        &dir,
        "bad.yaml",
        "- tenant_id: acme\n  type: cloudwatch\n  log_group_name: 'no spaces'\n  retention_days: 2\n\
         - tenant_id: acme\n  type: ftp\n\
         ---\n\
         tenant_id: beta\ntype: s3\nbucket_name: beta-logs\nbuckt_prefix: typo/\n",
    );
    let good = write(
        &dir,
        "good.json",
        r#"[{"tenant_id": "gamma", "type": "s3", "bucket_name": "gamma-logs"}]"#,
    );

    let ran = binary(
        "http://127.0.0.1:9",
        "unused",
        &[],
        &["validate", &bad, &good],
    )
    .await;
    assert_code(&ran, 1);
    for expected in [
        &format!("{bad}[0] acme/cloudwatch: INVALID"),
        "  error: log_distribution_role_arn: required for cloudwatch delivery",
        "  error: log_group_name: character ' ' not allowed",
        "  error: retention_days: 2 is not a CloudWatch retention period",
        &format!("{bad}[1] ?: INVALID"),
        "  error: type: unknown variant `ftp`",
        &format!("{bad}[2] beta/s3: valid"),
        "  warning: buckt_prefix: unknown field",
        &format!("{good}[0] gamma/s3: valid"),
        "4 config(s): 2 valid, 2 invalid",
    ] {
        assert!(
            ran.out.contains(expected),
            "missing {expected:?} in:\n{}",
            ran.out
        );
    }

    let ran = binary(
        "http://127.0.0.1:9",
        "unused",
        &[],
        &["validate", "--json", &good],
    )
    .await;
    assert_code(&ran, 0);
    let report: serde_json::Value = serde_json::from_str(&ran.out).expect("JSON report");
    assert_eq!(report["valid"], true);
    assert_eq!(report["entries"][0]["tenant_id"], "gamma");

    let ran = binary("http://127.0.0.1:9", "unused", &[], &["validate"]).await;
    assert_code(&ran, 2);
}

#[tokio::test]
async fn validate_lists_and_reads_only_its_own_flags() {
    let help = binary("http://127.0.0.1:9", "unused", &[], &["validate", "--help"]).await;
    assert_code(&help, 0);
    for flag in [
        "--sqs-queue-url",
        "--region",
        "--max-concurrency",
        "--table",
    ] {
        assert!(
            !help.out.contains(flag),
            "validate --help lists {flag}:\n{}",
            help.out
        );
    }
    let sqs = std::process::Command::new(env!("CARGO_BIN_EXE_logrelay-processor"))
        .args(["sqs", "--help"])
        .output()
        .expect("runs");
    let sqs = String::from_utf8_lossy(&sqs.stdout);
    assert!(
        sqs.contains("--sqs-queue-url") && sqs.contains("--dlq-url"),
        "{sqs}"
    );

    // A Lambda or Deployment environment carries every run setting; validate reads none of them.
    let dir = tempfile::tempdir().expect("dir");
    let good = write(
        &dir,
        "good.json",
        r#"[{"tenant_id": "gamma", "type": "s3", "bucket_name": "gamma-logs"}]"#,
    );
    let run_settings = [
        ("EXECUTION_MODE", "sqs"),
        ("SQS_QUEUE_URL", "not a queue"),
        ("LOGRELAY_LISTEN", "nowhere"),
        ("MAX_CONCURRENCY", "many"),
        ("RETRY_ATTEMPTS", "-1"),
        ("LOGRELAY_SHUTDOWN_GRACE", "soon"),
    ];
    let ran = binary(
        "http://127.0.0.1:9",
        "unused",
        &run_settings,
        &["validate", &good],
    )
    .await;
    assert_code(&ran, 0);
}

#[tokio::test]
async fn put_get_list_delete_round_trip_150_tenants_over_a_paginated_scan() {
    let moto = Moto::shared().await;
    let proxy = FaultProxy::start(moto.url()).await.expect("proxy");
    let context = context_with(static_config(&proxy.url(), test_credentials()).await).await;
    let dir = tempfile::tempdir().expect("dir");
    let mut text = String::new();
    for i in 0..TENANTS {
        text.push_str(&s3_entry(
            &format!("tenant-{i:03}"),
            &format!("bucket-{i:03}"),
        ));
    }
    let _ = write!(
        text,
        "- tenant_id: tenant-000\n  type: cloudwatch\n  external_id: {SECRET}\n  log_distribution_role_arn: arn:aws:iam::222222222222:role/CustomerLogDistribution\n  log_group_name: /ROSA/cluster-logs/tenant-000\n"
    );
    let file = write(&dir, "tenants.yaml", &text);

    let ran = run(&context, &["put", &file]).await;
    assert_code(&ran, 0);
    assert_eq!(
        ran.out
            .lines()
            .filter(|line| line.starts_with("created "))
            .count(),
        TENANTS + 1
    );

    let before = proxy.requests_seen();
    let ran = run(&context, &["list", "--page-size", "7", "--json"]).await;
    assert_code(&ran, 0);
    let scans = proxy.requests_seen() - before;
    assert!(
        scans >= (TENANTS as u64 + 1).div_ceil(7),
        "{scans} requests: the scan must page"
    );
    let listed: Vec<DeliveryConfig> =
        serde_json::from_str(&ran.out).expect("JSON array of configs");
    assert_eq!(listed.len(), TENANTS + 1);
    assert!(!ran.out.contains(SECRET), "list --json redacts ExternalIds");
    assert!(ran.out.contains("\"external_id\":\"***\""), "{}", ran.out);
    let shown = run(&context, &["list", "--json", "--show-external-id"]).await;
    assert!(shown.out.contains(SECRET), "--show-external-id prints them");
    let mut ids: Vec<&str> = listed
        .iter()
        .filter(|c| c.delivery_type == DeliveryType::S3)
        .map(|c| c.tenant_id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), TENANTS);
    for config in &listed {
        let created = config.created_at.as_deref().expect("created_at set");
        chrono::DateTime::parse_from_rfc3339(created).expect("RFC 3339");
        assert_eq!(
            config.created_at, config.updated_at,
            "new configs: created = updated"
        );
    }

    let table = run(&context, &["list", "--page-size", "50"]).await;
    assert_code(&table, 0);
    assert!(table.out.starts_with("TENANT"), "{}", table.out);
    assert!(table.out.contains("tenant-042"), "{}", table.out);
    assert!(
        table.out.contains("s3://bucket-042/ROSA/cluster-logs/"),
        "{}",
        table.out
    );
    assert!(
        table
            .out
            .contains("222222222222 /ROSA/cluster-logs/tenant-000"),
        "{}",
        table.out
    );
    assert!(
        table.out.ends_with(&format!("{} config(s)\n", TENANTS + 1)),
        "{}",
        table.out
    );

    let got = run(&context, &["get", "tenant-042"]).await;
    assert_code(&got, 0);
    let configs = DeliveryConfig::list_from_yaml(&got.out).expect("get prints put-able YAML");
    assert_eq!(configs.len(), 1);
    assert_eq!(configs[0].bucket_name.as_deref(), Some("bucket-042"));
    let both = run(&context, &["get", "tenant-000", "--json"]).await;
    assert!(!both.out.contains(SECRET), "get redacts ExternalIds");
    let yaml = run(&context, &["get", "tenant-000"]).await;
    assert!(!yaml.out.contains(SECRET), "also in YAML: {}", yaml.out);
    let shown = run(&context, &["get", "tenant-000", "--show-external-id"]).await;
    assert!(shown.out.contains(SECRET), "--show-external-id prints it");
    let both: Vec<DeliveryConfig> = serde_json::from_str(&both.out).expect("JSON");
    assert_eq!(
        both.iter().map(|c| c.delivery_type).collect::<Vec<_>>(),
        [DeliveryType::Cloudwatch, DeliveryType::S3]
    );

    assert_code(&run(&context, &["delete", "tenant-042", "s3"]).await, 0);
    let gone = run(&context, &["get", "tenant-042", "s3"]).await;
    assert_code(&gone, 1);
    assert!(
        gone.err.contains("tenant-042/s3 does not exist"),
        "{}",
        gone.err
    );
    let again = run(&context, &["delete", "tenant-042", "s3"]).await;
    assert_code(&again, 1);
    assert!(again.err.contains("does not exist"), "{}", again.err);
    let ran = run(&context, &["list", "--json"]).await;
    let listed: Vec<DeliveryConfig> = serde_json::from_str(&ran.out).expect("JSON");
    assert_eq!(listed.len(), TENANTS);
}

#[tokio::test]
async fn put_refuses_to_overwrite_unless_update_which_keeps_created_at() {
    let context = context().await;
    let dir = tempfile::tempdir().expect("dir");
    let first = write(&dir, "first.yaml", &s3_entry("acme", "acme-logs"));
    assert_code(&run(&context, &["put", &first]).await, 0);
    let table = TenantTable::new(&context.aws, &context.table);
    let original = table
        .get("acme", DeliveryType::S3)
        .await
        .expect("get")
        .expect("stored")
        .config
        .expect("readable");

    let changed = write(&dir, "changed.yaml", &s3_entry("acme", "acme-new-logs"));
    let refused = run(&context, &["put", &changed]).await;
    assert_code(&refused, 1);
    assert!(
        refused.err.contains("acme/s3 already exists (use --update"),
        "{}",
        refused.err
    );
    let unchanged = table
        .get("acme", DeliveryType::S3)
        .await
        .expect("get")
        .expect("stored")
        .config
        .expect("readable");
    assert_eq!(unchanged.bucket_name.as_deref(), Some("acme-logs"));

    let replaced = run(&context, &["put", &changed, "--update"]).await;
    assert_code(&replaced, 0);
    assert_eq!(replaced.out.trim(), "replaced acme/s3");
    let updated = table
        .get("acme", DeliveryType::S3)
        .await
        .expect("get")
        .expect("stored")
        .config
        .expect("readable");
    assert_eq!(updated.bucket_name.as_deref(), Some("acme-new-logs"));
    assert_eq!(updated.created_at, original.created_at);
    assert_ne!(updated.updated_at, original.updated_at);

    // From flags: create, refuse, then change one field only.
    let flags = [
        "put",
        "--tenant-id",
        "beta",
        "--type",
        "s3",
        "--bucket-name",
        "beta-logs",
        "--groups",
        "API",
    ];
    assert_code(&run(&context, &flags).await, 0);
    let refused = run(&context, &flags).await;
    assert_code(&refused, 1);
    assert!(refused.err.contains("already exists"), "{}", refused.err);
    let ran = run(
        &context,
        &[
            "put",
            "--tenant-id",
            "beta",
            "--type",
            "s3",
            "--bucket-prefix",
            "logs/",
            "--update",
        ],
    )
    .await;
    assert_code(&ran, 0);
    let beta = table
        .get("beta", DeliveryType::S3)
        .await
        .expect("get")
        .expect("stored")
        .config
        .expect("readable");
    assert_eq!(beta.bucket_prefix.as_deref(), Some("logs/"));
    assert_eq!(
        beta.bucket_name.as_deref(),
        Some("beta-logs"),
        "other fields kept"
    );
    assert_eq!(beta.groups, ["API"]);

    let error = run_err(&context, &["put", &first, "--tenant-id", "x"]).await;
    assert!(matches!(error, TenantsError::Usage(_)), "{error}");
    assert_eq!(error.exit_code(), 2);
}

#[tokio::test]
async fn invalid_configs_are_not_written_and_name_their_fields() {
    let context = context().await;
    let dir = tempfile::tempdir().expect("dir");
    let file = write(
        &dir,
        "mixed.yaml",
        &format!(
            "{}- tenant_id: bad/id\n  type: s3\n",
            s3_entry("good", "good-logs")
        ),
    );
    let ran = run(&context, &["put", &file]).await;
    assert_code(&ran, 1);
    assert!(
        ran.err
            .contains("error: tenant_id: character '/' not allowed"),
        "{}",
        ran.err
    );
    assert!(
        ran.err
            .contains("error: bucket_name: required for s3 delivery"),
        "{}",
        ran.err
    );
    assert!(ran.err.contains("nothing written"), "{}", ran.err);
    assert_code(&run(&context, &["get", "good"]).await, 1);

    let ran = run(
        &context,
        &[
            "put",
            "--tenant-id",
            "acme",
            "--type",
            "cloudwatch",
            "--log-group-name",
            "/x/y",
        ],
    )
    .await;
    assert_code(&ran, 1);
    assert!(
        ran.err.contains("log_distribution_role_arn: required"),
        "{}",
        ran.err
    );
}

#[tokio::test]
async fn enable_and_disable_switch_a_config_and_an_invalid_config_is_never_enabled() {
    let context = context().await;
    let ran = run(
        &context,
        &[
            "put",
            "--tenant-id",
            "acme",
            "--type",
            "s3",
            "--bucket-name",
            "acme-logs",
            "--enabled",
            "false",
        ],
    )
    .await;
    assert_code(&ran, 0);
    let table = TenantTable::new(&context.aws, &context.table);
    let enabled = |table: TenantTable| async move {
        table
            .get("acme", DeliveryType::S3)
            .await
            .expect("get")
            .expect("stored")
            .config
            .expect("readable")
            .enabled
    };
    assert!(!enabled(table.clone()).await);

    let ran = run(&context, &["enable", "acme", "s3"]).await;
    assert_code(&ran, 0);
    assert_eq!(ran.out.trim(), "enabled acme/s3");
    assert!(enabled(table.clone()).await);
    assert_eq!(
        run(&context, &["enable", "acme", "s3"]).await.out.trim(),
        "acme/s3 is already enabled"
    );
    assert_code(&run(&context, &["disable", "acme", "s3"]).await, 0);
    assert!(!enabled(table.clone()).await);
    assert_code(&run(&context, &["disable", "nobody", "s3"]).await, 1);

    // An item written behind the tool's back with a broken field stays disabled.
    let mut broken = logrelay_processor::admin::blank_config("broken", DeliveryType::Cloudwatch)
        .expect("config");
    broken.enabled = false;
    broken.log_group_name = Some("bad name".into());
    table.create(&broken).await.expect("raw write");
    let ran = run(&context, &["enable", "broken", "cloudwatch"]).await;
    assert_code(&ran, 1);
    assert!(ran.err.contains("error: log_group_name"), "{}", ran.err);
    assert!(
        ran.err.contains("error: log_distribution_role_arn"),
        "{}",
        ran.err
    );
}

#[tokio::test]
async fn the_binary_reads_the_table_from_the_environment_or_table_flag() {
    let context = context().await;
    let moto = Moto::shared().await;
    assert_code(
        &run(
            &context,
            &[
                "put",
                "--tenant-id",
                "acme",
                "--type",
                "s3",
                "--bucket-name",
                "acme-logs",
            ],
        )
        .await,
        0,
    );
    let ran = binary(
        moto.url(),
        &context.table,
        &[],
        &["get", "acme", "s3", "--json"],
    )
    .await;
    assert_code(&ran, 0);
    assert!(
        ran.out.contains("\"bucket_name\": \"acme-logs\""),
        "{}",
        ran.out
    );
    let ran = binary(
        moto.url(),
        "no-such-table",
        &[],
        &["list", "--table", &context.table],
    )
    .await;
    assert_code(&ran, 0);
    assert!(ran.out.contains("acme"), "{}", ran.out);
    let ran = binary(moto.url(), "no-such-table", &[], &["list"]).await;
    assert_code(&ran, 3);
    assert!(ran.err.contains("no-such-table"), "{}", ran.err);
}

#[tokio::test]
async fn an_enabled_cloudwatch_config_without_external_id_is_written_or_enabled_only_when_allowed()
{
    let context = context().await;
    let table = TenantTable::new(&context.aws, &context.table);
    let dir = tempfile::tempdir().expect("dir");
    let file = write(&dir, "legacy.yaml", CLOUDWATCH_WITHOUT_ID);
    let stored = || async {
        table
            .get("legacy", DeliveryType::Cloudwatch)
            .await
            .expect("get")
    };

    let refused = run(&context, &["put", &file]).await;
    assert_code(&refused, 1);
    assert!(
        refused.err.contains("error: external_id: ") && refused.err.contains("(tenant legacy)"),
        "{}",
        refused.err
    );
    assert!(stored().await.is_none(), "nothing written");
    let flags = [
        "put",
        "--tenant-id",
        "legacy",
        "--type",
        "cloudwatch",
        "--log-distribution-role-arn",
        "arn:aws:iam::222222222222:role/CustomerLogDistribution",
        "--log-group-name",
        "/legacy",
    ];
    assert_code(&run(&context, &flags).await, 1);
    assert!(stored().await.is_none(), "nothing written from flags");

    let disabled = [&flags[..], &["--enabled", "false"]].concat();
    assert_code(&run(&context, &disabled).await, 0);
    let enable = run(&context, &["enable", "legacy", "cloudwatch"]).await;
    assert_code(&enable, 1);
    assert!(
        enable.err.contains("error: external_id: "),
        "{}",
        enable.err
    );
    let allowed = run(
        &context,
        &["enable", "legacy", "cloudwatch", "--allow-no-external-id"],
    )
    .await;
    assert_code(&allowed, 0);
    assert!(
        allowed.err.contains("warning: external_id: "),
        "{}",
        allowed.err
    );
    let config = stored().await.expect("stored").config.expect("readable");
    assert!(config.enabled && config.external_id.is_none());

    assert_code(&run(&context, &["delete", "legacy", "cloudwatch"]).await, 0);
    assert_code(
        &run(&context, &["put", "--allow-no-external-id", &file]).await,
        0,
    );
    assert!(stored().await.is_some(), "written when allowed");
}
