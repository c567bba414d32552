//! Two-second pods started at 10 per second lose nothing: the real file tailer reads a kubelet-like
//! pod log tree, the annotator enriches from the fake Kubernetes API (real kube client), and pods
//! appear in the API before or up to a second after their log file, and are deleted from the API
//! while their files still get lines.

use logrelay_agent::checkpoint::FileRegistry;
use logrelay_agent::metadata::Metadata;
use logrelay_agent::metadata::annotator::MISSING_FIELD;
use logrelay_agent::metadata::config::{KubeSource, MetadataConfig};
use logrelay_agent::source_event::{FileId, SourceEvent};
use logrelay_agent::tail::{RecordContext, Tailer, TailerConfig};
use logrelay_testkit::fake_kube::FakeKube;
use logrelay_testkit::rbac::RbacPolicy;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

const NODE: &str = "node-1";
const PODS: usize = 30;
/// Pod starts per second.
const RATE: u64 = 10;
/// Lines per pod while it runs (one every 100 ms: two seconds).
const LINES_WHILE_RUNNING: usize = 20;
/// Lines written after the pod was deleted from the API (its last output, read late).
const LINES_AFTER_DELETE: usize = 3;

fn pod_object(i: usize) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("job-{i}"), "namespace": "hcp-a", "uid": format!("uid-{i}"),
            "labels": {"app.kubernetes.io/name": "batch"},
        },
        "spec": {"nodeName": NODE, "containers": [{"name": "main", "image": "registry/batch:1"}]},
    })
}

fn pod_dir(root: &Path, i: usize) -> PathBuf {
    root.join(format!("hcp-a_job-{i}_uid-{i}"))
}

fn write_line(file: &mut std::fs::File, i: usize, n: usize) {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    writeln!(file, "{now} stdout F job-{i} line {n}").expect("writes");
    file.flush().expect("flushes");
}

/// One pod's life: log file and API object in the order `i % 3` picks, lines for two seconds,
/// deletion from the API, then a few more lines.
async fn run_pod(fake: Arc<FakeKube>, root: PathBuf, i: usize) {
    let api_first = i.is_multiple_of(3);
    let api_delay = Duration::from_millis(if i % 3 == 1 { 300 } else { 1000 });
    if api_first {
        fake.upsert_pod(pod_object(i));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dir = pod_dir(&root, i).join("main");
    std::fs::create_dir_all(&dir).expect("creates pod dir");
    let mut file = std::fs::File::create(dir.join("0.log")).expect("creates log");
    let started = Instant::now();
    let mut created = api_first;
    for n in 0..LINES_WHILE_RUNNING {
        if !created && started.elapsed() >= api_delay {
            fake.upsert_pod(pod_object(i));
            created = true;
        }
        write_line(&mut file, i, n);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !created {
        fake.upsert_pod(pod_object(i));
    }
    assert!(fake.delete_pod("hcp-a", &format!("job-{i}")));
    for n in LINES_WHILE_RUNNING..LINES_WHILE_RUNNING + LINES_AFTER_DELETE {
        tokio::time::sleep(Duration::from_millis(50)).await;
        write_line(&mut file, i, n);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_second_pods_at_ten_per_second_lose_nothing() {
    let logs = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    let root = logs.path().to_path_buf();
    let fake = Arc::new(FakeKube::start().await.expect("fake"));
    // Requests as the agent's ServiceAccount, with the RBAC the shipped manifests grant it.
    let (policy, _) = RbacPolicy::agent().expect("the agent's RBAC renders");
    fake.enforce_rbac(policy);
    fake.upsert_namespace(json!({"metadata": {"name": "hcp-a", "labels": {
        "hypershift.openshift.io/hosted-control-plane": "true", "logrelay.io/customer-id": "tenant-a"}}}));

    let config = MetadataConfig::new(
        KubeSource::Kubeconfig(fake.kubeconfig_path().expect("kubeconfig")),
        NODE,
        data.path(),
        Some(root.clone()),
    );
    let metadata = Metadata::start(config).await.expect("metadata starts");
    let (source_tx, source_rx) = mpsc::channel(1024);
    let (out_tx, mut out_rx) = mpsc::channel(1024);
    let annotator = tokio::spawn(metadata.annotator().run(source_rx, out_tx));
    let context = RecordContext {
        cluster_id: "c1".into(),
        node_name: NODE.into(),
    };
    let tailer = Tailer::new(
        TailerConfig::new(&root, context),
        Vec::new(),
        FileRegistry::new(),
        source_tx,
    )
    .spawn()
    .expect("tailer starts");

    let events: Arc<Mutex<Vec<SourceEvent>>> = Arc::default();
    let collector = {
        let events = events.clone();
        tokio::spawn(async move {
            while let Some(event) = out_rx.recv().await {
                events.lock().expect("events").push(event);
            }
        })
    };

    let mut pods = Vec::new();
    for i in 0..PODS {
        pods.push(tokio::spawn(run_pod(fake.clone(), root.clone(), i)));
        tokio::time::sleep(Duration::from_millis(1000 / RATE)).await;
    }
    for pod in pods {
        pod.await.expect("pod ran");
    }

    let expected = PODS * (LINES_WHILE_RUNNING + LINES_AFTER_DELETE);
    let lines = |events: &[SourceEvent]| {
        events
            .iter()
            .filter(|e| matches!(e, SourceEvent::Line(_)))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines(&events.lock().expect("events")) < expected {
        assert!(
            Instant::now() < deadline,
            "timed out: {} of {expected} lines",
            lines(&events.lock().expect("events"))
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The kubelet removes the pod directories later; the tailer then closes the files.
    for i in 0..PODS {
        std::fs::remove_dir_all(pod_dir(&root, i)).expect("removes pod dir");
    }
    let closed = |events: &[SourceEvent]| {
        events
            .iter()
            .filter(|e| matches!(e, SourceEvent::Closed { .. }))
            .count()
    };
    while closed(&events.lock().expect("events")) < PODS {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for Closed events"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        metadata.index().size().pinned_files,
        0,
        "closed files unpin their pods"
    );

    tailer.stop().await.expect("tailer stops");
    annotator.await.expect("joins").expect("annotator ran");
    collector.await.expect("collector ran");
    metadata.shutdown().await;

    let events = events.lock().expect("events");
    let mut per_file: HashMap<FileId, Vec<String>> = HashMap::new();
    let mut seen = BTreeSet::new();
    let mut problems = BTreeMap::new();
    for event in events.iter() {
        let SourceEvent::Line(line) = event else {
            continue;
        };
        let record = &line.record;
        if record.extra.contains_key(MISSING_FIELD) {
            problems.insert(record.message.clone(), "metadata missing");
        }
        if record.customer_id != "tenant-a" || record.application != "batch" {
            problems.insert(record.message.clone(), "wrong tenant or application");
        }
        assert!(
            seen.insert(record.message.clone()),
            "duplicate {}",
            record.message
        );
        per_file
            .entry(line.file)
            .or_default()
            .push(record.message.clone());
    }
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(seen.len(), expected);
    assert_eq!(per_file.len(), PODS);
    for messages in per_file.values() {
        let numbers: Vec<usize> = messages
            .iter()
            .filter_map(|m| m.rsplit(' ').next()?.parse().ok())
            .collect();
        let sorted: Vec<usize> = (0..LINES_WHILE_RUNNING + LINES_AFTER_DELETE).collect();
        assert_eq!(numbers, sorted, "in order per file: {messages:?}");
    }
}
