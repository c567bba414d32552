//! The S3 sink against the AWS emulator (moto, through the test kit): objects land under their
//! keys as valid gzip NDJSON with the right headers; multipart above the threshold; uploads retry
//! through injected 5xx / SlowDown / resets / delays and never duplicate (same keys overwritten);
//! the `S3_WRITER_ROLE_ARN` role is assumed (IAM enforced); and the real binary ships stdin to S3
//! with the environment the proof of concept's deployment sets.

use aws_config::SdkConfig;
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use logrelay_agent::batch::buffer::DiskBuffer;
use logrelay_agent::batch::{BatchLimits, Batcher, SealReason, SealedBatch};
use logrelay_agent::checkpoint::FileRegistry;
use logrelay_agent::sink::config::S3Settings;
use logrelay_agent::sink::request_builder::RequestBody;
use logrelay_agent::sink::retry::RetryPolicy;
use logrelay_agent::sink::s3::{S3Service, WriterRole};
use logrelay_agent::sink::{ObjectService, Uploader};
use logrelay_agent::source_event::{FileId, Line, Unfinished, offset_marker};
use logrelay_common::aws::s3_client;
use logrelay_common::codec::{NdjsonGzReader, ReadLimits};
use logrelay_common::key::ObjectKey;
use logrelay_common::record::{LogRecord, Stream};
use logrelay_testkit::{
    DEFAULT_ACCOUNT_ID, FaultKind, FaultPlan, FaultProxy, Moto, allow_policy, create_bucket,
    create_role, create_user_with_access_key, static_config, test_credentials, trust_policy,
    unique_name,
};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

const AGENT: &str = env!("CARGO_BIN_EXE_logrelay-agent");

fn record(pod: &str, message: &str) -> LogRecord {
    let ts = Utc
        .timestamp_opt(1_700_000_000, 42)
        .single()
        .expect("valid time");
    LogRecord {
        timestamp: ts,
        message: message.to_string(),
        stream: Stream::Stdout,
        customer_id: "acme".into(),
        cluster_id: "c1".into(),
        namespace: "ns".into(),
        application: "api".into(),
        pod_name: pod.to_string(),
        container_name: "main".into(),
        node_name: "node-1".into(),
        ingest_timestamp: ts,
        kubernetes: None,
        extra: Default::default(),
    }
}

/// A sealed batch and its whole body.
struct Sealed {
    batch: SealedBatch,
    body: Bytes,
}

impl Sealed {
    /// The body held in memory.
    fn in_memory(&self) -> RequestBody {
        RequestBody::Memory(self.body.clone())
    }

    /// Every other body in memory, the others streamed from a file in `dir`.
    fn alternating(&self, index: usize, dir: &std::path::Path) -> RequestBody {
        if index.is_multiple_of(2) {
            self.in_memory()
        } else {
            self.in_file(dir)
        }
    }

    /// The body streamed from a file in `dir`, as the disk buffer hands it over.
    fn in_file(&self, dir: &std::path::Path) -> RequestBody {
        let path = dir.join(format!("{}.gz", self.batch.id.0));
        std::fs::write(&path, &self.body).expect("writes");
        RequestBody::File {
            path,
            len: self.body.len() as u64,
        }
    }
}

/// Seals `count` batches of `lines_each` lines (pods `pod-0..`), each from its own file.
async fn batches(count: u64, lines_each: u64, message_len: usize) -> Vec<Sealed> {
    let dir = tempfile::tempdir().expect("tempdir");
    let (buffer, _) = DiskBuffer::open(dir.path().join("buffer"), 1 << 30).expect("opens");
    let mut batcher = Batcher::new(
        BatchLimits {
            max_bytes: 1 << 30,
            ..BatchLimits::default()
        },
        "node-1",
        FileRegistry::new(),
        buffer,
    );
    let mut sealed = Vec::new();
    for b in 0..count {
        let mut offset = 0;
        for i in 0..lines_each {
            let message = format!("{b}-{i} {}", noise(b * 1_000_003 + i, message_len));
            let end = offset + message.len() as u64 + 1;
            let line = Line {
                record: record(&format!("pod-{b}"), &message),
                file: FileId(b + 1),
                start: offset,
                end,
                end_marker: offset_marker(message.as_bytes()),
                unfinished: Unfinished::NONE,
            };
            offset = end;
            sealed.extend(batcher.add(&line, Instant::now()).expect("adds").sealed);
        }
        sealed.extend(batcher.seal_all(SealReason::Shutdown).expect("seals"));
    }
    let mut loaded = Vec::new();
    for batch in sealed {
        let body = batch.body.load().await.expect("loads");
        loaded.push(Sealed { batch, body });
    }
    loaded
}

/// Printable, barely compressible text (xorshift).
fn noise(seed: u64, len: usize) -> String {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'!' + (x % 94) as u8)
        })
        .collect()
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
    }
}

async fn new_bucket(config: &SdkConfig) -> String {
    let bucket = unique_name("agent-sink");
    create_bucket(config, &bucket)
        .await
        .expect("creates bucket");
    bucket
}

async fn list_keys(config: &SdkConfig, bucket: &str) -> Vec<String> {
    let output = s3_client(config)
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("lists");
    let mut keys: Vec<String> = output
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    keys.sort();
    keys
}

async fn read_records(config: &SdkConfig, bucket: &str, key: &str) -> Vec<LogRecord> {
    let object = s3_client(config)
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("gets");
    let body = object.body.collect().await.expect("reads").into_bytes();
    let mut reader = NdjsonGzReader::new(&body[..], ReadLimits::default());
    let mut records = Vec::new();
    while let Some((_, record)) = reader
        .next_record::<LogRecord>()
        .await
        .expect("valid gzip NDJSON")
    {
        records.push(record.expect("valid record"));
    }
    records
}

#[tokio::test]
async fn objects_land_under_their_keys_as_gzip_ndjson_with_headers() {
    let moto = Moto::shared().await;
    let config = moto.config(DEFAULT_ACCOUNT_ID).await;
    let bucket = new_bucket(&config).await;
    let service = S3Service::with_config(&config, &bucket, S3Settings::default());
    let uploader = Uploader::new(ObjectService::S3(service), fast_retries(), "prod/eu");
    let sealed = batches(3, 50, 40).await;
    let files = tempfile::tempdir().expect("tempdir");
    for (i, s) in sealed.iter().enumerate() {
        // Bodies in memory and bodies streamed from the disk buffer alike.
        let body = s.alternating(i, files.path());
        assert_eq!(
            uploader.upload(&s.batch, body).await.expect("uploads"),
            1,
            "no retries needed"
        );
    }
    let mut expected: Vec<String> = sealed
        .iter()
        .map(|s| s.batch.key.to_key_with_prefix("prod/eu"))
        .collect();
    expected.sort();
    assert_eq!(list_keys(&config, &bucket).await, expected);
    for Sealed { batch, .. } in &sealed {
        let key = batch.key.to_key_with_prefix("prod/eu");
        let parsed = ObjectKey::parse_with_prefix(&key, "prod/eu").expect("parses");
        assert_eq!(parsed, batch.key);
        let records = read_records(&config, &bucket, &key).await;
        assert_eq!(records.len(), 50);
        assert!(
            records
                .iter()
                .all(|r| r.pod_name == batch.key.partition.pod_name)
        );
        let head = s3_client(&config)
            .head_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .expect("heads");
        assert_eq!(head.content_type(), Some("application/x-ndjson"));
        assert_eq!(head.content_encoding(), Some("gzip"));
    }
}

#[tokio::test]
async fn objects_above_the_threshold_use_a_multipart_upload() {
    let moto = Moto::shared().await;
    let config = moto.config(DEFAULT_ACCOUNT_ID).await;
    let bucket = new_bucket(&config).await;
    let settings = S3Settings {
        multipart_threshold: 5 << 20,
        part_size: 5 << 20,
        ..S3Settings::default()
    };
    let proxy = FaultProxy::start(moto.url()).await.expect("proxy starts");
    let via_proxy = static_config(&proxy.url(), test_credentials()).await;
    let uploader = Uploader::new(
        ObjectService::S3(S3Service::with_config(&via_proxy, &bucket, settings)),
        fast_retries(),
        "",
    );
    let sealed = batches(1, 800, 10_000).await.remove(0);
    let (batch, sent) = (&sealed.batch, sealed.body.clone());
    assert!(
        sent.len() > 5 << 20,
        "compressed body {} must exceed one part",
        sent.len()
    );
    // Parts are streamed from the file, each with its own Content-MD5.
    let files = tempfile::tempdir().expect("tempdir");
    uploader
        .upload(batch, sealed.in_file(files.path()))
        .await
        .expect("uploads");
    // create + 2 parts + complete.
    assert_eq!(proxy.requests_seen(), 4);
    let key = batch.key.to_key();
    let object = s3_client(&config)
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .expect("gets");
    let body: Bytes = object.body.collect().await.expect("reads").into_bytes();
    assert_eq!(body, sent);
    assert_eq!(read_records(&config, &bucket, &key).await.len(), 800);
}

#[tokio::test]
async fn uploads_retry_through_injected_faults_and_replays_overwrite_instead_of_duplicating() {
    let moto = Moto::shared().await;
    let config = moto.config(DEFAULT_ACCOUNT_ID).await;
    let bucket = new_bucket(&config).await;
    let proxy = FaultProxy::start(moto.url()).await.expect("proxy starts");
    let via_proxy = static_config(&proxy.url(), test_credentials()).await;
    let settings = S3Settings {
        request_timeout: Duration::from_millis(500),
        ..S3Settings::default()
    };
    let uploader = Uploader::new(
        ObjectService::S3(S3Service::with_config(&via_proxy, &bucket, settings)),
        fast_retries(),
        "",
    );
    proxy.set_plan(FaultPlan {
        error_rate: 0.5,
        kinds: vec![
            FaultKind::Status5xx,
            FaultKind::SlowDown,
            FaultKind::Reset,
            FaultKind::Delay(Duration::from_secs(2)),
        ],
        only: None,
    });
    let sealed = batches(12, 20, 30).await;
    let mut retried = 0;
    let files = tempfile::tempdir().expect("tempdir");
    for (i, s) in sealed.iter().enumerate() {
        // A body streamed from its file is opened again by every attempt.
        let body = s.alternating(i, files.path());
        retried += uploader.upload(&s.batch, body).await.expect("uploads") - 1;
    }
    assert!(
        proxy.faults_injected() > 0 && retried > 0,
        "faults were injected and retried"
    );
    // A replay after a crash seals the same source ranges again: same keys, overwritten.
    for s in &batches(12, 20, 30).await {
        uploader
            .upload(&s.batch, s.in_memory())
            .await
            .expect("uploads");
    }
    proxy.heal();
    let keys = list_keys(&config, &bucket).await;
    let mut expected: Vec<String> = sealed.iter().map(|s| s.batch.key.to_key()).collect();
    expected.sort();
    assert_eq!(keys, expected, "one object per batch, no duplicates");
    let mut total = 0;
    for key in &keys {
        total += read_records(&config, &bucket, key).await.len();
    }
    assert_eq!(total, 12 * 20);
}

#[tokio::test]
async fn writer_role_is_assumed_for_uploads_when_the_base_identity_may_not_write() {
    let mut moto = Moto::start_private().await;
    let admin = moto.config(DEFAULT_ACCOUNT_ID).await;
    let bucket = new_bucket(&admin).await;
    // The node's own identity may only assume roles; the writer role may write objects.
    let (node_arn, node_credentials) =
        create_user_with_access_key(&admin, "node", &allow_policy(&["sts:AssumeRole"]))
            .await
            .expect("user");
    let writer_arn = create_role(
        &admin,
        "logrelay-agent-writer",
        &trust_policy(&node_arn, None),
        Some(&allow_policy(&["s3:PutObject", "s3:ListBucket"])),
    )
    .await
    .expect("role");
    moto.enforce_from_now().await.expect("enforcement on");
    let base = static_config(moto.url(), node_credentials).await;
    let sealed = batches(1, 5, 10).await.remove(0);
    let (batch, body) = (&sealed.batch, sealed.in_memory());

    let as_node = S3Service::with_config(&base, &bucket, S3Settings::default());
    let refused = as_node
        .put(
            &logrelay_agent::sink::request_builder::build_request(batch, body.clone(), "")
                .await
                .expect("builds"),
        )
        .await;
    let refused = refused.expect_err("the node identity cannot write");
    assert_eq!(
        refused.class,
        logrelay_agent::sink::retry::ErrorClass::Rejected,
        "{refused}"
    );

    let role = WriterRole {
        role_arn: writer_arn.clone(),
        session_name: "logrelay-agent-node-1".into(),
    };
    let service = S3Service::connect(&base, Some(&role), &bucket, S3Settings::default())
        .await
        .expect("assumes");
    assert_eq!(
        Uploader::new(ObjectService::S3(service), fast_retries(), "")
            .upload(batch, body)
            .await
            .expect("uploads"),
        1
    );
    let as_writer = logrelay_common::aws::assume_role_chain(
        &base,
        &[logrelay_common::aws::RoleStep::new(writer_arn, "check")],
    )
    .await
    .expect("assumes");
    assert_eq!(
        list_keys(&as_writer, &bucket).await,
        vec![batch.key.to_key()]
    );
}

#[tokio::test]
async fn agent_binary_ships_stdin_to_s3_with_the_seed_environment() {
    const WRITER_ACCOUNT: &str = "333333333333";
    let moto = Moto::shared().await;
    let writer_config = moto.config(WRITER_ACCOUNT).await;
    let bucket = new_bucket(&writer_config).await;
    let credentials = test_credentials();
    let data_dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(AGENT)
        .args(["--source", "stdin", "--listen", "off"])
        .arg("--data-dir")
        .arg(data_dir.path())
        .env_remove("LOGRELAY_SINK")
        .env("S3_BUCKET_NAME", &bucket)
        .env(
            "S3_WRITER_ROLE_ARN",
            format!("arn:aws:iam::{WRITER_ACCOUNT}:role/writer"),
        )
        .env("CLUSTER_ID", "c9")
        .env("NODE_NAME", "node-9")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", moto.url())
        .env("AWS_ACCESS_KEY_ID", credentials.access_key_id())
        .env("AWS_SECRET_ACCESS_KEY", credentials.secret_access_key())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts the agent");
    {
        let mut stdin = child.stdin.take().expect("stdin pipe");
        for i in 0..100 {
            let line =
                serde_json::to_string(&record("pod-x", &format!("m{i}"))).expect("serializes");
            writeln!(stdin, "{line}").expect("writes");
        }
    }
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("joins")
        .expect("waits");
    assert!(
        output.status.success(),
        "agent failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let keys = list_keys(&writer_config, &bucket).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("acme/c1/api/pod-x/"), "{}", keys[0]);
    assert_eq!(
        read_records(&writer_config, &bucket, &keys[0]).await.len(),
        100
    );
}
