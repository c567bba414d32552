//! Objects as the proof of concept's Vector wrote them, through the processor binary against the
//! AWS emulator: its documented manual-mode test body (an envelope with only `Message`, a record
//! with only `s3`, the file name `20240101-test.json.gz`) and an object named by Vector's `aws_s3`
//! sink (`%Y%m%d-%H%M%S-{uuid}.json.gz`) announced through S3 → SNS → SQS. Both hold gzip NDJSON
//! lines shaped as that Vector configuration wrote them (`json` codec, fields in Vector's order).

mod intake_support;

use std::io::Write;
use std::process::Output;

use chrono::{DateTime, Duration, Utc};
use intake_support::{ACCOUNT_A, Central};
use logrelay_testkit::{Moto, unique_name};

/// The proof of concept's manual-mode test, as `echo '…'` writes it to stdin.
const POC_MANUAL_INPUT: &str = "{\"Message\": \"{\\\"Records\\\": [{\\\"s3\\\": {\\\"bucket\\\": {\\\"name\\\": \\\"test-bucket\\\"}, \\\"object\\\": {\\\"key\\\": \\\"test-customer/test-cluster/test-app/test-pod/20240101-test.json.gz\\\"}}}]}\"}\n";

/// Vector's `timestamp` format (RFC 3339, nanoseconds, `Z`).
fn vector_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// One line as the proof of concept's Vector wrote it (after its `enrich_metadata` remap).
fn vector_line(customer: &str, pod: &str, message: &str, time: DateTime<Utc>) -> String {
    let line = serde_json::json!({
        "application": "test-app",
        "cluster_id": "test-cluster",
        "customer_id": customer,
        "environment": "development",
        "file": format!("/var/log/pods/clusters-test_{pod}_5f0c9d2e-1b7a-4c1e-9f3d-2a8b7c6d5e4f/main/0.log"),
        "kubernetes": {
            "container_name": "main",
            "namespace": "clusters-test",
            "node_name": "ip-10-0-1-5.ec2.internal",
            "pod_name": pod,
        },
        "log_level": "INFO",
        "message": message,
        "pod_name": pod,
        "source_type": "kubernetes_logs",
        "stream": "stdout",
        "timestamp": vector_time(time),
    });
    line.to_string()
}

/// A gzip NDJSON object of `lines` (Vector's `newline_delimited` framing: one `\n` after each).
fn vector_object(lines: &[String]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for line in lines {
        encoder.write_all(line.as_bytes()).expect("gzip");
        encoder.write_all(b"\n").expect("gzip");
    }
    encoder.finish().expect("gzip")
}

/// Gives `tenant` a CloudWatch config into `group` of account A whose stream names use the
/// namespace and container (which Vector-written lines carry only in `kubernetes`).
async fn add_tenant(central: &Central, tenant: &str, group: &str) {
    central
        .add_cloudwatch_tenant_with(
            tenant,
            ACCOUNT_A,
            group,
            Some("{cluster_id}/{namespace}/{pod_name}/{container_name}"),
        )
        .await;
}

/// Every event of `group` in account A: (stream, timestamp ms, message), sorted.
async fn events(group: &str) -> Vec<(String, i64, String)> {
    let client = aws_sdk_cloudwatchlogs::Client::new(&Moto::shared().await.config(ACCOUNT_A).await);
    let page = client
        .filter_log_events()
        .log_group_name(group)
        .send()
        .await
        .expect("filter log events");
    let mut out: Vec<(String, i64, String)> = page
        .events()
        .iter()
        .map(|e| {
            (
                e.log_stream_name().unwrap_or_default().to_owned(),
                e.timestamp().unwrap_or_default(),
                e.message().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Runs `logrelay-processor <args>` (a manual-mode invocation) with `stdin`.
fn run_manual(central: &Central, args: &[&str], stdin: &str) -> Output {
    intake_support::run_processor(&central.processor_env(&central.moto_url), args, stdin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_manual_test_body_delivers_a_vector_written_object() {
    let central = Central::new().await;
    logrelay_testkit::create_bucket(&central.aws, "test-bucket")
        .await
        .expect("test-bucket");
    let group = "/logrelay/test-customer";
    add_tenant(&central, "test-customer", group).await;
    let start = Utc::now() - Duration::minutes(20);
    let times: Vec<DateTime<Utc>> = (0..3)
        .map(|i| start + Duration::nanoseconds(1_000_123_456 * i))
        .collect();
    let lines: Vec<String> = times
        .iter()
        .enumerate()
        .map(|(i, &t)| vector_line("test-customer", "test-pod", &format!("vector line {i}"), t))
        .collect();
    logrelay_testkit::put_object(
        &central.aws,
        "test-bucket",
        "test-customer/test-cluster/test-app/test-pod/20240101-test.json.gz",
        vector_object(&lines),
    )
    .await
    .expect("put object");

    // Invoked as the proof of concept's processor was: `--mode manual`.
    let output = run_manual(&central, &["--mode", "manual"], POC_MANUAL_INPUT);
    let report = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{report}");
    assert!(report.contains("objects 1 (delivered 1"), "{report}");
    let stream = "test-cluster/clusters-test/test-pod/main";
    let want: Vec<(String, i64, String)> = times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                stream.to_owned(),
                t.timestamp_millis(),
                format!("vector line {i}"),
            )
        })
        .collect();
    assert_eq!(events(group).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_named_by_the_vector_s3_sink_is_delivered_from_its_notification() {
    let central = Central::new().await;
    let tenant = unique_name("acme");
    let group = format!("/logrelay/{tenant}");
    add_tenant(&central, &tenant, &group).await;
    // Drop the s3:TestEvent of the new bucket.
    central.take_bodies().await;
    let time = Utc::now() - Duration::minutes(5);
    let key = format!(
        "{tenant}/test-cluster/test-app/api-7d9f8-x2k4l/{}-0b9d1c4e-6f2a-4c3e-9a7b-2f1e0d9c8b7a.json.gz",
        time.format("%Y%m%d-%H%M%S")
    );
    let lines = [vector_line(
        &tenant,
        "api-7d9f8-x2k4l",
        "from the sink",
        time,
    )];
    logrelay_testkit::put_object(&central.aws, &central.bucket, &key, vector_object(&lines))
        .await
        .expect("put object");
    let bodies = central.take_bodies().await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");

    let output = run_manual(&central, &["manual"], &bodies.join("\n"));
    let report = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{report}");
    assert_eq!(
        events(&group).await,
        [(
            "test-cluster/clusters-test/api-7d9f8-x2k4l/main".to_owned(),
            time.timestamp_millis(),
            "from the sink".to_owned()
        )]
    );
}
