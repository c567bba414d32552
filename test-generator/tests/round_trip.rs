//! Round trip through the real file formats: the `pods` generator writes a rotated, churned tree;
//! this test reads it back naively (every `*.log`, `*.log.<stamp>`, `*.log.<stamp>.gz`, CRI parsed,
//! `P` chunks joined up to their `F`), stores the records as gzip NDJSON objects in the bucket key
//! layout, and runs `verify` (the library and the binary) against the generator's ledger.

use chrono::{DateTime, Utc};
use flate2::read::GzDecoder;
use logrelay_common::codec;
use logrelay_common::key::{self, ObjectKey, Partition};
use logrelay_common::record::{LogRecord, Stream};
use logrelay_testgen::ledger::Ledger;
use logrelay_testgen::pods::{self, PodsArgs, PodsSummary};
use logrelay_testgen::seq;
use logrelay_testgen::verify::{self, VerifyArgs, report::Report};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

const CLUSTER: &str = "cluster-1";
const RECORDS_PER_OBJECT: usize = 400;

struct Fixture {
    dir: tempfile::TempDir,
    summary: PodsSummary,
    records: Vec<LogRecord>,
    saw: Seen,
}

/// What the naive reader came across, to prove the run exercised every file kind.
#[derive(Debug, Default)]
struct Seen {
    live: usize,
    rotated: usize,
    gzipped: usize,
    restarted: usize,
    partial_chunks: usize,
}

impl Fixture {
    fn ledger(&self) -> PathBuf {
        self.dir.path().join("ledger.json")
    }

    async fn generate(seed: u64) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = PodsArgs {
            rate: 3_000.0,
            duration: 1.0,
            seed: Some(seed),
            tenants: "acme,globex".parse().expect("tenants"),
            pods_per_namespace: 2,
            containers_per_pod: 2,
            max_size: 32 * 1024,
            max_files: 1_000,
            churn_interval: 0.3,
            removal_delay: 600.0,
            large_line_ratio: 0.03,
            kube_objects: Some(dir.path().join("objects")),
            ledger: Some(dir.path().join("ledger.json")),
            stats_interval: 0.0,
            ..PodsArgs::with_root(dir.path().join("pods"))
        };
        let summary = pods::run(&args, CancellationToken::new())
            .await
            .expect("generator runs");
        let (records, saw) =
            read_tree_naively(&dir.path().join("pods"), &dir.path().join("objects"));
        Fixture {
            dir,
            summary,
            records,
            saw,
        }
    }

    /// Stores `records` as objects in the key layout under a fresh directory.
    fn deliver(&self, name: &str, records: &[(Partition, LogRecord)]) -> PathBuf {
        let out = self.dir.path().join(name);
        let mut by_partition: BTreeMap<Partition, Vec<&LogRecord>> = BTreeMap::new();
        for (partition, record) in records {
            by_partition
                .entry(partition.clone())
                .or_default()
                .push(record);
        }
        for (partition, records) in by_partition {
            for (n, chunk) in records.chunks(RECORDS_PER_OBJECT).enumerate() {
                let id = key::object_id(&[partition.pod_name.as_bytes(), &n.to_be_bytes()]);
                let object =
                    ObjectKey::new(partition.clone(), chunk[0].timestamp, id).expect("valid key");
                let path = out.join(object.to_key());
                std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
                std::fs::write(&path, codec::encode_records(chunk).expect("encodes"))
                    .expect("write object");
            }
        }
        out
    }

    fn partitioned(&self) -> Vec<(Partition, LogRecord)> {
        self.records
            .iter()
            .map(|r| (partition_of(r), r.clone()))
            .collect()
    }
}

fn partition_of(record: &LogRecord) -> Partition {
    Partition::new(
        &record.customer_id,
        &record.cluster_id,
        &record.application,
        &record.pod_name,
    )
}

async fn verify_dir(ledger: &Path, dir: &Path) -> Report {
    verify::run(&VerifyArgs::for_dir(ledger, dir))
        .await
        .expect("verify runs")
}

fn verify_binary(ledger: &Path, dir: &Path) -> (i32, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_logrelay-testgen"))
        .arg("verify")
        .arg("--ledger")
        .arg(ledger)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("binary runs");
    (
        output.status.code().expect("exit code"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("read object")).expect("json object")
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect()
}

/// Is `name` one of `N.log`, `N.log.YYYYMMDD-HHMMSS`, `N.log.YYYYMMDD-HHMMSS.gz`? Returns (restart, kind).
fn classify(name: &str) -> Option<(u32, &'static str)> {
    let (restart, rest) = name.split_once(".log")?;
    let restart: u32 = restart.parse().ok()?;
    let stamp_ok = |s: &str| s.len() == 15 && s.as_bytes()[8] == b'-';
    match rest {
        "" => Some((restart, "live")),
        r if r.starts_with('.') && r.ends_with(".gz") && stamp_ok(&r[1..r.len() - 3]) => {
            Some((restart, "gz"))
        }
        r if r.starts_with('.') && stamp_ok(&r[1..]) => Some((restart, "rotated")),
        _ => None,
    }
}

fn read_tree_naively(root: &Path, objects: &Path) -> (Vec<LogRecord>, Seen) {
    let mut tenant_of_namespace = HashMap::new();
    for path in json_files(&objects.join("namespaces")) {
        let ns = read_json(&path);
        let name = ns["metadata"]["name"].as_str().expect("name").to_string();
        let tenant = ns["metadata"]["labels"]["logrelay.io/customer-id"]
            .as_str()
            .expect("tenant label");
        tenant_of_namespace.insert(name, tenant.to_string());
    }
    let mut app_of_pod = HashMap::new();
    for path in json_files(&objects.join("pods")) {
        let pod = read_json(&path);
        let key = (
            pod["metadata"]["namespace"]
                .as_str()
                .expect("namespace")
                .to_string(),
            pod["metadata"]["name"].as_str().expect("name").to_string(),
        );
        let app = pod["metadata"]["labels"]["app.kubernetes.io/name"]
            .as_str()
            .expect("app label");
        app_of_pod.insert(key, app.to_string());
    }

    let mut records = Vec::new();
    let mut seen = Seen::default();
    for pod_dir in std::fs::read_dir(root)
        .expect("root")
        .map(|e| e.expect("entry").path())
    {
        let dir_name = pod_dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let [namespace, pod, _uid] = dir_name.split('_').collect::<Vec<_>>()[..] else {
            panic!("unexpected pod directory {dir_name}");
        };
        let tenant = &tenant_of_namespace[namespace];
        let app = &app_of_pod[&(namespace.to_string(), pod.to_string())];
        for container_dir in std::fs::read_dir(&pod_dir)
            .expect("pod dir")
            .map(|e| e.expect("entry").path())
        {
            let container = container_dir
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            for file in std::fs::read_dir(&container_dir)
                .expect("container dir")
                .map(|e| e.expect("entry").path())
            {
                let name = file
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned();
                let (restart, kind) =
                    classify(&name).unwrap_or_else(|| panic!("unexpected file {name}"));
                match kind {
                    "live" => seen.live += 1,
                    "rotated" => seen.rotated += 1,
                    _ => seen.gzipped += 1,
                }
                seen.restarted += usize::from(restart > 0 && kind == "live");
                let raw = std::fs::read(&file).expect("read log");
                let bytes = if kind == "gz" {
                    let mut out = Vec::new();
                    GzDecoder::new(&raw[..])
                        .read_to_end(&mut out)
                        .expect("gunzip");
                    out
                } else {
                    raw
                };
                let mut partial: HashMap<Stream, Vec<u8>> = HashMap::new();
                for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    let mut fields = line.splitn(4, |b| *b == b' ');
                    let time =
                        std::str::from_utf8(fields.next().expect("time")).expect("ascii time");
                    let stream = match fields.next().expect("stream") {
                        b"stdout" => Stream::Stdout,
                        b"stderr" => Stream::Stderr,
                        other => panic!("bad stream {other:?}"),
                    };
                    let tag = fields.next().expect("tag");
                    let content = fields.next().unwrap_or(b"");
                    let buffer = partial.entry(stream).or_default();
                    buffer.extend_from_slice(content);
                    if tag == b"P" {
                        seen.partial_chunks += 1;
                        continue;
                    }
                    assert_eq!(tag, b"F");
                    let message =
                        String::from_utf8(std::mem::take(buffer)).expect("joined line is UTF-8");
                    let timestamp: DateTime<Utc> =
                        DateTime::parse_from_rfc3339(time).expect("RFC 3339").into();
                    records.push(LogRecord {
                        timestamp,
                        message,
                        stream,
                        customer_id: tenant.clone(),
                        cluster_id: CLUSTER.into(),
                        namespace: namespace.into(),
                        application: app.clone(),
                        pod_name: pod.into(),
                        container_name: container.clone(),
                        node_name: "node-1".into(),
                        ingest_timestamp: Utc::now(),
                        kubernetes: None,
                        extra: Default::default(),
                    });
                }
                assert!(
                    partial.values().all(Vec::is_empty),
                    "no dangling partial line in {name}"
                );
            }
        }
    }
    records.sort_by_key(|r| r.timestamp);
    (records, seen)
}

#[tokio::test]
async fn every_generated_line_is_read_back_and_verified_once() {
    let fixture = Fixture::generate(42).await;
    let counts = fixture.summary.counts;
    assert!(counts.rotation.rotations >= 5, "{counts:?}");
    assert!(counts.rotation.compressions >= 1, "{counts:?}");
    assert!(
        counts.restarts >= 1 && counts.pods_deleted >= 1,
        "{counts:?}"
    );
    let saw = &fixture.saw;
    assert!(
        saw.live > 0 && saw.rotated > 0 && saw.gzipped > 0,
        "{saw:?}"
    );
    assert!(
        saw.restarted > 0,
        "a restarted container's N.log was read: {saw:?}"
    );
    assert!(
        saw.partial_chunks > 0,
        "lines over 16 KiB were split: {saw:?}"
    );
    assert_eq!(fixture.records.len() as u64, fixture.summary.stats.lines);

    let delivered = fixture.deliver("all", &fixture.partitioned());
    let report = verify_dir(&fixture.ledger(), &delivered).await;
    let totals = &report.totals;
    assert_eq!(totals.expected, fixture.summary.stats.lines);
    assert_eq!(
        (totals.delivered, totals.missing, totals.misrouted),
        (totals.expected, 0, 0)
    );
    assert_eq!(
        (
            totals.duplicated,
            totals.untokened,
            totals.bad_lines,
            totals.unreadable_objects
        ),
        (0, 0, 0, 0)
    );
    assert!(report.passed(true));
    let (code, table) = verify_binary(&fixture.ledger(), &delivered);
    assert_eq!(code, 0, "{table}");
    assert!(table.contains("TOTAL"), "{table}");
}

#[tokio::test]
async fn one_line_left_out_is_reported_missing_and_fails() {
    let fixture = Fixture::generate(7).await;
    let mut records = fixture.partitioned();
    let (_, dropped) = records.remove(records.len() / 2);
    let token = seq::parse(&dropped.message).expect("token");
    let delivered = fixture.deliver("one-missing", &records);

    let report = verify_dir(&fixture.ledger(), &delivered).await;
    assert_eq!((report.totals.missing, report.totals.misrouted), (1, 0));
    let incomplete: Vec<_> = report.sources.iter().filter(|s| s.missing > 0).collect();
    assert_eq!(incomplete.len(), 1);
    assert_eq!(incomplete[0].source, token.source);
    assert_eq!(incomplete[0].missing_ranges.len(), 1);
    assert_eq!(
        (
            incomplete[0].missing_ranges[0].first,
            incomplete[0].missing_ranges[0].last
        ),
        (token.seq, token.seq)
    );
    assert!(!report.passed(false));

    let (code, table) = verify_binary(&fixture.ledger(), &delivered);
    assert_eq!(code, 1, "{table}");
    assert!(
        table.contains(&format!("  missing: {}", token.seq)),
        "{table}"
    );
}

#[tokio::test]
async fn a_record_under_another_tenants_partition_is_misrouted() {
    let fixture = Fixture::generate(9).await;
    let mut records = fixture.partitioned();
    let victim = records
        .iter()
        .position(|(p, _)| p.customer_id == "acme")
        .expect("an acme record");
    records[victim].0.customer_id = "globex".into();
    let delivered = fixture.deliver("misrouted", &records);

    let report = verify_dir(&fixture.ledger(), &delivered).await;
    assert_eq!(report.totals.misrouted, 1);
    assert_eq!(
        report.totals.missing, 1,
        "it did not reach acme's partition either"
    );
    assert!(!report.passed(false));

    // Read as globex's own destination, every acme line found there is misrouted.
    let args = VerifyArgs {
        tenant: Some("globex".into()),
        ..VerifyArgs::for_dir(fixture.ledger(), &delivered)
    };
    let report = verify::run(&args).await.expect("verify runs");
    let ledger = Ledger::read(&fixture.ledger()).expect("ledger");
    let acme_lines: u64 = ledger
        .sources
        .iter()
        .filter(|s| s.meta.customer_id == "acme")
        .map(|s| s.lines())
        .sum();
    assert_eq!(report.totals.misrouted, acme_lines);
    assert!(
        report
            .sources
            .iter()
            .filter(|s| s.expected > 0)
            .all(|s| s.customer_id == "globex")
    );
}

/// Runs `logrelay-testgen verify ARGS`; its exit code and stderr.
fn verify_with(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_logrelay-testgen"))
        .arg("verify")
        .args(args)
        .output()
        .expect("binary runs");
    (
        output.status.code().expect("exit code"),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn verify_that_cannot_run_exits_3_and_without_a_source_exits_2() {
    let fixture = Fixture::generate(11).await;
    let ledger = fixture.ledger();
    let empty = tempfile::tempdir().expect("dir");
    let missing_dir = empty.path().join("not-delivered");
    let (code, err) = verify_with(&[
        "--ledger".as_ref(),
        ledger.as_os_str(),
        "--dir".as_ref(),
        missing_dir.as_os_str(),
    ]);
    assert_eq!(
        code, 3,
        "a missing delivery directory cannot be read: {err}"
    );
    assert!(err.contains("not-delivered"), "{err}");

    let missing_ledger = empty.path().join("no-ledger.json");
    let (code, err) = verify_with(&[
        "--ledger".as_ref(),
        missing_ledger.as_os_str(),
        "--dir".as_ref(),
        empty.path().as_os_str(),
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no-ledger.json"), "{err}");

    let (code, err) = verify_with(&["--ledger".as_ref(), ledger.as_os_str()]);
    assert_eq!(code, 2, "no source is invalid configuration: {err}");
    assert!(err.contains("--dir"), "{err}");
}
