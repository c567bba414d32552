//! `verify` against the AWS emulator: objects in an S3 prefix (library and binary, the binary
//! reaching the emulator through `AWS_ENDPOINT_URL`) and events in a CloudWatch Logs group.

use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use chrono::Utc;
use logrelay_common::codec;
use logrelay_common::key::{self, ObjectKey, Partition};
use logrelay_common::record::{LogRecord, Stream};
use logrelay_testgen::ledger::{Book, SourceMeta};
use logrelay_testgen::verify::{self, VerifyArgs, s3::S3Location};
use logrelay_testkit::moto::{DEFAULT_ACCOUNT_ID, Moto};
use logrelay_testkit::resources::{create_bucket, put_object, unique_name};
use std::path::{Path, PathBuf};

const ACME_LINES: u64 = 100;
const GLOBEX_LINES: u64 = 50;

/// Writes a ledger with `acme/pod-a` (ACME_LINES lines) and `globex/pod-b` (GLOBEX_LINES lines).
fn write_ledger(dir: &Path) -> PathBuf {
    let mut book = Book::new("ndjson");
    for (tenant, pod, lines) in [
        ("acme", "pod-a", ACME_LINES),
        ("globex", "pod-b", GLOBEX_LINES),
    ] {
        let handle = book.register(SourceMeta {
            source: format!("{tenant}/{pod}"),
            customer_id: tenant.into(),
            cluster_id: Some("c1".into()),
            namespace: tenant.into(),
            pod: pod.into(),
            pod_uid: None,
            container: "api".into(),
            stream: None,
            application: "api".into(),
        });
        for _ in 0..lines {
            book.next_seq(handle);
        }
    }
    let path = dir.join("ledger.json");
    book.snapshot(true, Utc::now())
        .write_atomic(&path)
        .expect("ledger written");
    path
}

fn record(tenant: &str, pod: &str, seq: u64) -> LogRecord {
    let now = Utc::now();
    LogRecord {
        timestamp: now,
        message: format!(
            "2024-01-01T00:00:00Z INFO [http] lrseq={tenant}/{pod}#{seq} request completed"
        ),
        stream: Stream::Stdout,
        customer_id: tenant.into(),
        cluster_id: "c1".into(),
        namespace: tenant.into(),
        application: "api".into(),
        pod_name: pod.into(),
        container_name: "api".into(),
        node_name: "node-1".into(),
        ingest_timestamp: now,
        kubernetes: None,
        extra: Default::default(),
    }
}

fn object_key(prefix: &str, partition_tenant: &str, pod: &str, part: u8) -> String {
    let partition = Partition::new(partition_tenant, "c1", "api", pod);
    let id = key::object_id(&[pod.as_bytes(), &[part]]);
    ObjectKey::new(partition, Utc::now(), id)
        .expect("valid key")
        .to_key_with_prefix(prefix)
}

#[tokio::test]
async fn s3_objects_are_verified_with_missing_and_misrouted_lines_found() {
    let moto = Moto::shared().await;
    let config = moto.config(DEFAULT_ACCOUNT_ID).await;
    let bucket = unique_name("testgen-verify");
    create_bucket(&config, &bucket).await.expect("bucket");
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = write_ledger(dir.path());

    // acme's line 10 is stored under globex's partition; everything else where it belongs.
    let acme: Vec<LogRecord> = (0..ACME_LINES)
        .filter(|n| *n != 10)
        .map(|n| record("acme", "pod-a", n))
        .collect();
    let globex: Vec<LogRecord> = (0..GLOBEX_LINES)
        .map(|n| record("globex", "pod-b", n))
        .collect();
    let uploads = [
        (
            object_key("deliv", "acme", "pod-a", 0),
            codec::encode_records(&acme[..60]).expect("encodes"),
        ),
        (
            object_key("deliv", "acme", "pod-a", 1),
            codec::encode_records(&acme[60..]).expect("encodes"),
        ),
        (
            object_key("deliv", "globex", "pod-b", 0),
            codec::encode_records(&globex).expect("encodes"),
        ),
        (
            object_key("deliv", "globex", "pod-a", 9),
            codec::encode_records(&[record("acme", "pod-a", 10)]).expect("encodes"),
        ),
        (
            "deliv/not-a-layout-key.json.gz".to_string(),
            codec::encode_records(&globex[..1]).expect("encodes"),
        ),
    ];
    for (key, body) in uploads {
        put_object(&config, &bucket, &key, body).await.expect("put");
    }

    let args = VerifyArgs {
        s3: Some(
            format!("s3://{bucket}/deliv")
                .parse::<S3Location>()
                .expect("location"),
        ),
        ..VerifyArgs::new(&ledger)
    };
    let report = verify::run_with_aws(&args, Some(&config))
        .await
        .expect("verify runs");
    let t = &report.totals;
    assert_eq!(
        (t.expected, t.delivered),
        (ACME_LINES + GLOBEX_LINES, ACME_LINES + GLOBEX_LINES - 1)
    );
    assert_eq!(
        (t.missing, t.misrouted, t.unreadable_objects, t.objects_read),
        (1, 1, 1, 4)
    );
    let acme = report
        .sources
        .iter()
        .find(|s| s.source == "acme/pod-a")
        .expect("acme row");
    assert_eq!(acme.missing_ranges[0].first, 10);

    // The binary finds the emulator through AWS_ENDPOINT_URL.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_logrelay-testgen"))
        .args([
            "verify",
            "--json",
            "--s3",
            &format!("s3://{bucket}/deliv"),
            "--ledger",
        ])
        .arg(&ledger)
        .env("AWS_ENDPOINT_URL", moto.url())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("binary runs");
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(json["totals"]["missing"], 1);
    assert_eq!(json["totals"]["misrouted"], 1);
}

#[tokio::test]
async fn cloudwatch_events_of_a_tenant_group_are_verified_and_foreign_lines_misrouted() {
    let moto = Moto::shared().await;
    let config = moto.config(DEFAULT_ACCOUNT_ID).await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    let group = unique_name("testgen-verify");
    logs.create_log_group()
        .log_group_name(&group)
        .send()
        .await
        .expect("group");
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = write_ledger(dir.path());

    // Stream 1: globex's lines as whole records; stream 2: the same tenant's bare lines for the
    // second half, then one acme line that must not be there.
    let now = Utc::now().timestamp_millis();
    let event = |i: u64, message: String| {
        InputLogEvent::builder()
            .timestamp(now + i as i64)
            .message(message)
            .build()
            .expect("event")
    };
    let half = GLOBEX_LINES / 2;
    let streams = [
        (
            "records",
            (0..half)
                .map(|n| {
                    event(
                        n,
                        serde_json::to_string(&record("globex", "pod-b", n)).expect("json"),
                    )
                })
                .collect::<Vec<_>>(),
        ),
        (
            "bare",
            (half..GLOBEX_LINES)
                .map(|n| event(n, record("globex", "pod-b", n).message))
                .chain([event(GLOBEX_LINES, record("acme", "pod-a", 3).message)])
                .collect(),
        ),
    ];
    for (stream, events) in streams {
        logs.create_log_stream()
            .log_group_name(&group)
            .log_stream_name(stream)
            .send()
            .await
            .expect("stream");
        logs.put_log_events()
            .log_group_name(&group)
            .log_stream_name(stream)
            .set_log_events(Some(events))
            .send()
            .await
            .expect("put events");
    }

    let args = VerifyArgs {
        cloudwatch_group: Some(group),
        tenant: Some("globex".into()),
        ..VerifyArgs::new(&ledger)
    };
    let report = verify::run_with_aws(&args, Some(&config))
        .await
        .expect("verify runs");
    let t = &report.totals;
    assert_eq!(
        (t.sources, t.expected, t.delivered, t.missing),
        (1, GLOBEX_LINES, GLOBEX_LINES, 0)
    );
    assert_eq!(t.misrouted, 1);
    assert!(!report.passed(false));
}
