//! The operator modes of the processor binary against the AWS emulator: `manual` (bodies and
//! `s3://` lines on stdin, exit code by outcome), `replay` (one tenant's prefix, a time range) and
//! configuration errors (exit code 2 naming the field).

mod intake_support;

use std::process::{Output, Stdio};

use chrono::{Duration, SecondsFormat, Utc};
use intake_support::{ACCOUNT_A, Central, expected_lines, messages, processor_command};
use logrelay_common::key::Partition;
use logrelay_testkit::unique_name;

/// Runs the binary with `args`, `env` and `stdin`; waits for it.
fn run(central: Option<&Central>, args: &[&str], stdin: &str) -> Output {
    let env = central
        .map(|c| c.processor_env(&c.moto_url))
        .unwrap_or_default();
    intake_support::run_processor(&env, args, stdin)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_mode_delivers_bodies_and_urls_and_exits_nonzero_on_any_failure() {
    let central = Central::new().await;
    let (tenant, group) = central.new_cloudwatch_tenant(ACCOUNT_A).await;
    let now = Utc::now();
    central
        .put_object(
            &Partition::new(&tenant, "c1", "api", "from-sns"),
            now,
            4,
            "sns",
        )
        .await;
    let bodies = central.take_bodies().await;
    let by_url = central
        .put_object(
            &Partition::new(&tenant, "c1", "api", "from-url"),
            now,
            3,
            "url",
        )
        .await;
    let stranger = central
        .put_object(
            &Partition::new(unique_name("nobody"), "c1", "api", "p"),
            now,
            1,
            "x",
        )
        .await;

    // Bodies straight from the queue (the test event and an SNS envelope) and an s3:// line: all good.
    let ok = run(
        Some(&central),
        &["manual"],
        &format!("{}\ns3://{}/{by_url}\n", bodies.join("\n"), central.bucket),
    );
    let report = stderr(&ok);
    assert_eq!(ok.status.code(), Some(0), "{report}");
    assert!(
        report.contains(" 3 entries; objects 2 (delivered 2"),
        "{report}"
    );
    let mut want = [expected_lines("sns", 4), expected_lines("url", 3)].concat();
    want.sort();
    assert_eq!(messages(ACCOUNT_A, &group).await, want);

    // An unconfigured tenant and a garbage line make the run fail, after processing the rest.
    let input = format!("s3://{}/{stranger}\nnot a notification\n", central.bucket);
    let failed = run(Some(&central), &["manual"], &input);
    let report = stderr(&failed);
    assert_eq!(failed.status.code(), Some(1), "{report}");
    assert!(report.contains("tenant_not_configured"), "{report}");
    assert!(
        report.contains("unreadable (unknown_input_line)"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_lists_only_the_tenants_prefix_and_delivers_the_time_range() {
    let central = Central::new().await;
    let tenant = unique_name("acme");
    // A tenant whose id extends the first one's: its prefix must not be listed.
    let sibling = format!("{tenant}-b");
    let group = format!("/logrelay/{tenant}");
    let sibling_group = format!("/logrelay/{sibling}");
    central
        .add_cloudwatch_tenant(&tenant, ACCOUNT_A, &group)
        .await;
    central
        .add_cloudwatch_tenant(&sibling, ACCOUNT_A, &sibling_group)
        .await;
    let now = Utc::now();
    central
        .put_object(
            &Partition::new(&tenant, "c1", "api", "p1"),
            now - Duration::hours(1),
            3,
            "recent",
        )
        .await;
    central
        .put_object(
            &Partition::new(&tenant, "c2", "web", "p2"),
            now - Duration::hours(2),
            2,
            "older",
        )
        .await;
    central
        .put_object(
            &Partition::new(&tenant, "c1", "api", "p1"),
            now - Duration::days(3),
            2,
            "ancient",
        )
        .await;
    central
        .put_object(
            &Partition::new(&sibling, "c1", "api", "p1"),
            now - Duration::hours(1),
            2,
            "sibling",
        )
        .await;
    let since = (now - Duration::days(1)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let args = [
        "replay",
        "--bucket",
        central.bucket.as_str(),
        "--tenant",
        tenant.as_str(),
        "--since",
        since.as_str(),
    ];

    let dry = run(Some(&central), &[&args[..], &["--dry-run"]].concat(), "");
    let report = stderr(&dry);
    assert_eq!(dry.status.code(), Some(0), "{report}");
    assert_eq!(report.matches("would replay").count(), 2, "{report}");
    assert!(
        messages(ACCOUNT_A, &group).await.is_empty(),
        "a dry run delivers nothing"
    );

    let replayed = run(Some(&central), &args, "");
    let report = stderr(&replayed);
    assert_eq!(replayed.status.code(), Some(0), "{report}");
    assert!(
        report.contains("listed 3, in range 2, delivered 2"),
        "{report}"
    );
    let mut want = [expected_lines("recent", 3), expected_lines("older", 2)].concat();
    want.sort();
    assert_eq!(messages(ACCOUNT_A, &group).await, want);
    assert!(
        messages(ACCOUNT_A, &sibling_group).await.is_empty(),
        "the sibling tenant is not replayed"
    );

    let narrowed = run(
        Some(&central),
        &[&args[..], &["--cluster", "c2"]].concat(),
        "",
    );
    assert!(
        stderr(&narrowed).contains("listed 1, in range 1"),
        "{}",
        stderr(&narrowed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_force_delivers_already_delivered_objects_again_and_warns() {
    let central = Central::new().await;
    let (tenant, group) = central.new_cloudwatch_tenant(ACCOUNT_A).await;
    central
        .put_object(
            &Partition::new(&tenant, "c1", "api", "p1"),
            Utc::now() - Duration::minutes(5),
            3,
            "again",
        )
        .await;
    let args = [
        "replay",
        "--bucket",
        central.bucket.as_str(),
        "--tenant",
        tenant.as_str(),
    ];
    let once = expected_lines("again", 3);

    let first = run(Some(&central), &args, "");
    assert!(stderr(&first).contains("delivered 1"), "{}", stderr(&first));
    let second = run(Some(&central), &args, "");
    let report = stderr(&second);
    assert!(report.contains("delivered 0, skipped 1"), "{report}");
    assert!(!report.contains("WARNING"), "{report}");
    assert_eq!(messages(ACCOUNT_A, &group).await, once, "a replay skips");

    // Off a terminal --force needs --yes: refused before anything is listed or delivered.
    let refused = run(Some(&central), &[&args[..], &["--force"]].concat(), "yes\n");
    let refusal = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{refusal}");
    assert!(refusal.contains("--yes"), "{refusal}");
    assert!(!refusal.contains("listing"), "nothing listed: {refusal}");
    assert_eq!(messages(ACCOUNT_A, &group).await, once, "nothing delivered");

    let forced = run(
        Some(&central),
        &[&args[..], &["--force", "--yes"]].concat(),
        "",
    );
    let report = stderr(&forced);
    assert_eq!(forced.status.code(), Some(0), "{report}");
    assert!(
        report.contains("--force delivers objects again") && report.contains("twice"),
        "{report}"
    );
    assert!(report.contains("delivered 1, skipped 0"), "{report}");
    assert!(
        report.contains("forced redelivery"),
        "logged per object: {report}"
    );
    let mut twice = [once.clone(), once].concat();
    twice.sort();
    assert_eq!(
        messages(ACCOUNT_A, &group).await,
        twice,
        "--force duplicates what was delivered"
    );
}

#[test]
fn invalid_configuration_exits_2_naming_the_field() {
    let output = run(None, &["sqs"], "");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("SQS_QUEUE_URL"),
        "{}",
        stderr(&output)
    );
    let output = run(None, &["manual", "--central-role-arn", "role"], "");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("CENTRAL_LOG_DISTRIBUTION_ROLE_ARN"),
        "{}",
        stderr(&output)
    );
    let output = run(None, &[], "");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("EXECUTION_MODE"),
        "{}",
        stderr(&output)
    );
}

/// `--check-config` with `env` only; the parsed JSON report and the exit code.
fn check_config(env: &[(&'static str, &str)]) -> (serde_json::Value, Option<i32>) {
    let env = env.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let output = processor_command(&env)
        .arg("--check-config")
        .output()
        .expect("runs");
    let report = serde_json::from_slice(&output.stdout).expect("one JSON report on stdout");
    (report, output.status.code())
}

#[test]
fn check_config_reports_serving_paths_deprecated_names_and_refuses_unknown_settings() {
    let sqs = [
        ("EXECUTION_MODE", "sqs"),
        (
            "SQS_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/123456789012/q",
        ),
    ];
    let (report, code) = check_config(&sqs);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["listen"], "0.0.0.0:9090");
    assert_eq!(
        report["http_paths"],
        serde_json::json!(["/metrics", "/healthz", "/readyz"])
    );

    let (report, code) = check_config(&[sqs[0], sqs[1], ("MAX_BATCH_SIZE", "10")]);
    assert_eq!(code, Some(0), "a deprecated name still works: {report}");
    assert!(
        report["deprecated"][0]
            .as_str()
            .is_some_and(|d| d.contains("LOGRELAY_PUT_LOG_EVENTS_MAX_EVENTS")),
        "{report}"
    );

    let (report, code) = check_config(&[sqs[0], sqs[1], ("LOGRELAY_KEY_PREFX", "p")]);
    assert_eq!(code, Some(2), "{report}");
    assert_eq!(
        report["unknown_env"],
        serde_json::json!(["LOGRELAY_KEY_PREFX"])
    );

    let (report, code) = check_config(&[sqs[0], sqs[1], ("RETRY_ATTEMPTS", "0")]);
    assert_eq!(code, Some(2), "{report}");
    assert!(
        report["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("RETRY_ATTEMPTS")),
        "{report}"
    );
}

#[test]
fn a_subcommand_reads_no_setting_of_other_modes_from_the_environment() {
    // One environment for every mode (a Lambda function's or a Deployment's), with values only
    // sqs and lambda mode would read, and those invalid.
    let env = [
        ("LOGRELAY_LISTEN", "nowhere"),
        ("SQS_QUEUE_URL", "not a queue"),
        ("DLQ_URL", "not a queue"),
        ("LOGRELAY_METRICS_NAMESPACE", ""),
    ]
    .iter()
    .map(|(k, v)| (*k, v.to_string()))
    .collect();
    let output = processor_command(&env)
        .args(["manual", "--check-config"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = processor_command(&env)
        .args(["sqs", "--check-config"])
        .output()
        .expect("runs");
    assert_eq!(
        output.status.code(),
        Some(2),
        "sqs reads them: {}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_tenant_table_stops_the_poller_at_start_naming_table_and_setting() {
    let central = Central::new().await;
    let mut env = central.processor_env(&central.moto_url);
    env.insert("TENANT_CONFIG_TABLE", "no-such-tenant-table".to_owned());
    env.insert("SQS_QUEUE_URL", central.queue.url.clone());
    env.insert("LOGRELAY_LISTEN", "127.0.0.1:0".to_owned());
    let output = tokio::task::spawn_blocking(move || {
        processor_command(&env)
            .arg("sqs")
            .stdin(Stdio::null())
            .output()
            .expect("runs")
    })
    .await
    .expect("joins");
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let log = stderr(&output);
    assert!(
        log.contains("no-such-tenant-table") && log.contains("TENANT_CONFIG_TABLE"),
        "{log}"
    );
    assert_eq!(log.matches("fatal error").count(), 1, "logged once:\n{log}");
}
