//! The metadata stage against the fake Kubernetes API, through the real kube client (kubeconfig →
//! HTTP list and watch): late pods, deleted pods, dropped watches, 410 relists, namespace label
//! changes, hostile values, wait expiry and the cache file across a restart. The fake enforces the RBAC
//! the shipped manifests grant the agent's ServiceAccount (`k8s/agent/base/rbac.yaml`): the agent uses
//! exactly those grants, and a request outside them is refused and reported.
//!
//! Lines are synthetic `SourceEvent`s built exactly as the tailer builds them
//! (`tail::record::from_path` from a kubelet log path).

use chrono::Utc;
use logrelay_agent::metadata::Metadata;
use logrelay_agent::metadata::annotator::{AnnotatorError, MISSING_FIELD};
use logrelay_agent::metadata::config::{KubeSource, MetadataConfig};
use logrelay_agent::metadata::index::PodIndex;
use logrelay_agent::metadata::persist::CACHE_FILE_NAME;
use logrelay_agent::metadata::select::LabelSelector;
use logrelay_agent::parse::Message;
use logrelay_agent::source_event::{FileId, Line, SourceEvent, Unfinished};
use logrelay_agent::tail::{PodLogPath, RecordContext, from_path};
use logrelay_common::key::{self, ObjectKey, Partition, QUARANTINE_CUSTOMER};
use logrelay_common::record::{LogRecord, Stream};
use logrelay_testkit::fake_kube::FakeKube;
use logrelay_testkit::rbac::RbacPolicy;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const NODE: &str = "node-1";
const HCP_LABEL: &str = "hypershift.openshift.io/hosted-control-plane";
const HCP_LABEL_SELECTOR: &str = "hypershift.openshift.io/hosted-control-plane=true";
const CUSTOMER_KEY: &str = "logrelay.io/customer-id";
/// Generous bound for anything that should happen "soon" (watch reconnects back off ~1 s).
const SOON: Duration = Duration::from_secs(15);

/// The fake API, authorizing every request as the agent's ServiceAccount with the RBAC the shipped
/// manifests grant it: a request the manifests do not allow fails the test.
async fn agent_fake() -> FakeKube {
    let fake = FakeKube::start().await.expect("fake");
    let (policy, _) = RbacPolicy::agent().expect("the agent's RBAC renders");
    fake.enforce_rbac(policy);
    fake
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn tenant_namespace(name: &str, tenant: &str) -> Value {
    namespace(name, json!({HCP_LABEL: "true", CUSTOMER_KEY: tenant}))
}

fn pod_on(node: &str, ns: &str, name: &str, uid: &str, labels: Value, annotations: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": ns, "uid": uid, "labels": labels, "annotations": annotations,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-5d8f",
                                 "uid": "rs", "controller": true}],
        },
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "registry/api:1"},
                                                  {"name": "sidecar", "image": "registry/proxy:2"}]},
        "status": {"phase": "Running"},
    })
}

fn pod(ns: &str, name: &str, uid: &str) -> Value {
    pod_on(
        NODE,
        ns,
        name,
        uid,
        json!({"pod-template-hash": "5d8f"}),
        json!({}),
    )
}

/// A line of `<ns>_<pod>_<uid>/<container>/0.log`, as the tailer makes it.
fn line(file: u64, n: u64, ns: &str, pod: &str, uid: &str, container: &str) -> SourceEvent {
    let root = Path::new("/var/log/pods");
    let path = root.join(format!("{ns}_{pod}_{uid}/{container}/0.log"));
    let context = RecordContext {
        cluster_id: "c1".into(),
        node_name: NODE.into(),
    };
    let message = Message {
        text: format!("{pod}-{n}"),
        truncated_from: None,
    };
    let record = from_path(
        &PodLogPath::from_path(root, &path),
        &context,
        Utc::now(),
        Stream::Stdout,
        message,
    );
    SourceEvent::Line(Line {
        record,
        file: FileId(file),
        start: n * 100,
        end: n * 100 + 100,
        end_marker: n,
        unfinished: Unfinished::NONE,
    })
}

struct Rig {
    fake: FakeKube,
    metadata: Metadata,
    tx: mpsc::Sender<SourceEvent>,
    rx: mpsc::Receiver<SourceEvent>,
    task: JoinHandle<Result<(), AnnotatorError>>,
}

async fn start(fake: FakeKube, data_dir: &Path, wait: Duration, selector: &str) -> Rig {
    let kubeconfig = fake.kubeconfig_path().expect("kubeconfig written");
    let config = MetadataConfig::new(KubeSource::Kubeconfig(kubeconfig), NODE, data_dir, None);
    start_with(fake, config, wait, selector).await
}

async fn start_with(
    fake: FakeKube,
    mut config: MetadataConfig,
    wait: Duration,
    selector: &str,
) -> Rig {
    config.annotator.wait = wait;
    config.watch.rules.selection.namespace_selector =
        LabelSelector::parse(selector).expect("valid selector");
    let metadata = Metadata::start(config).await.expect("metadata starts");
    let (tx, input) = mpsc::channel(1024);
    let (output, rx) = mpsc::channel(1024);
    let task = tokio::spawn(metadata.annotator().run(input, output));
    Rig {
        fake,
        metadata,
        tx,
        rx,
        task,
    }
}

impl Rig {
    async fn send(&self, event: SourceEvent) {
        self.tx.send(event).await.expect("annotator receives");
    }

    async fn next(&mut self) -> SourceEvent {
        tokio::time::timeout(SOON, self.rx.recv())
            .await
            .expect("an event in time")
            .expect("stage running")
    }

    async fn next_record(&mut self) -> LogRecord {
        match self.next().await {
            SourceEvent::Line(line) => line.record,
            other => panic!("expected a line, got {other:?}"),
        }
    }

    fn nothing_yet(&mut self) -> bool {
        self.rx.try_recv().is_err()
    }

    async fn ready(&self) {
        tokio::time::timeout(SOON, self.metadata.wait_until_ready())
            .await
            .expect("initial lists complete");
    }

    async fn stop(self) -> FakeKube {
        drop(self.tx);
        self.task.await.expect("joins").expect("runs");
        self.metadata.shutdown().await;
        self.fake
    }
}

/// Whether lines of `container` in the pod `namespace/pod_name` (`uid` as in its log path) are
/// excluded, by the metadata the agent holds: `None` while the pod is not known.
fn excludes(
    index: &PodIndex,
    namespace: &str,
    pod_name: &str,
    uid: &str,
    container: &str,
) -> Option<bool> {
    let meta = index.lookup(uid, namespace, pod_name)?;
    Some(meta.selection.excludes(container).is_some())
}

async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + SOON;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn is_enriched(record: &LogRecord) -> bool {
    !record.extra.contains_key(MISSING_FIELD)
}

#[tokio::test]
async fn pod_created_after_its_log_file_is_held_then_enriched() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut rig = start(agent_fake().await, data.path(), Duration::from_secs(30), "").await;
    rig.ready().await;
    for n in 0..3 {
        rig.send(line(1, n, "hcp-a", "api-5d8f-x1", "uid-1", "main"))
            .await;
    }
    rig.send(SourceEvent::Consumed {
        file: FileId(1),
        end: 350,
        end_marker: 9,
        unfinished: Unfinished::NONE,
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(rig.nothing_yet(), "lines of an unknown pod are held");

    rig.fake
        .upsert_namespace(tenant_namespace("hcp-a", "tenant-a"));
    rig.fake.upsert_pod(pod("hcp-a", "api-5d8f-x1", "uid-1"));
    for n in 0..3 {
        let record = rig.next_record().await;
        assert_eq!(record.message, format!("api-5d8f-x1-{n}"), "in order");
        assert!(is_enriched(&record));
        assert_eq!(record.customer_id, "tenant-a");
        assert_eq!(
            record.application, "api",
            "ReplicaSet api-5d8f → Deployment api"
        );
        let k = record.kubernetes.as_ref().expect("kubernetes");
        assert_eq!(k.owner.as_deref(), Some("Deployment/api"));
        assert_eq!(k.container_image.as_deref(), Some("registry/api:1"));
        assert_eq!(k.pod_uid.as_deref(), Some("uid-1"));
    }
    assert!(
        matches!(rig.next().await, SourceEvent::Consumed { end: 350, .. }),
        "trailing event after the lines"
    );
    rig.stop().await;
}

#[tokio::test]
async fn pod_deleted_before_its_file_is_drained_is_still_enriched() {
    let data = tempfile::tempdir().expect("tempdir");
    let fake = agent_fake().await;
    fake.upsert_namespace(tenant_namespace("hcp-a", "tenant-a"));
    fake.upsert_pod(pod("hcp-a", "short-1", "uid-1"));
    let mut rig = start(fake, data.path(), Duration::from_secs(30), "").await;
    rig.ready().await;
    let index = rig.metadata.index().clone();
    eventually("pod indexed", || index.is_live("uid-1")).await;

    assert!(rig.fake.delete_pod("hcp-a", "short-1"));
    eventually("pod marked gone", || !index.is_live("uid-1")).await;
    let started = Instant::now();
    rig.send(line(1, 0, "hcp-a", "short-1", "uid-1", "main"))
        .await;
    let record = rig.next_record().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "not held: the gone pod is still known"
    );
    assert!(is_enriched(&record));
    assert_eq!(record.customer_id, "tenant-a");
    rig.stop().await;
}

#[tokio::test]
async fn dropped_watch_reconnects_without_losing_updates() {
    let data = tempfile::tempdir().expect("tempdir");
    let fake = agent_fake().await;
    fake.upsert_namespace(tenant_namespace("hcp-a", "tenant-a"));
    fake.upsert_pod(pod("hcp-a", "api-1", "uid-1"));
    let mut rig = start(fake, data.path(), Duration::from_secs(30), "").await;
    rig.ready().await;
    assert!(
        rig.fake.wait_for_watches(2, SOON).await,
        "pods and namespaces are watched"
    );
    let lists_before = rig.fake.stats().pod_lists;

    // Reset mid-stream: the watches come back.
    let watches_before = rig.fake.stats().pod_watches;
    rig.fake.drop_watches();
    let fake = &rig.fake;
    eventually("pod watch re-established", || {
        fake.stats().pod_watches > watches_before && fake.active_watches() == 2
    })
    .await;

    // Reset again and keep the API away for a while; changes made meanwhile must arrive.
    rig.fake.set_unavailable(true);
    rig.fake.upsert_pod(pod("hcp-a", "api-2", "uid-2"));
    rig.fake.upsert_pod(pod_on(
        NODE,
        "hcp-a",
        "api-1",
        "uid-1",
        json!({"app": "renamed"}),
        json!({}),
    ));
    rig.fake.upsert_pod(pod_on(
        "node-2",
        "hcp-a",
        "elsewhere",
        "uid-9",
        json!({}),
        json!({}),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    rig.fake.set_unavailable(false);

    rig.send(line(2, 0, "hcp-a", "api-2", "uid-2", "main"))
        .await;
    let record = rig.next_record().await;
    assert!(
        is_enriched(&record),
        "the pod created during the outage arrives after the reconnect"
    );
    let index = rig.metadata.index().clone();
    eventually("modification seen", || {
        index
            .lookup("uid-1", "hcp-a", "api-1")
            .is_some_and(|m| m.application.as_deref() == Some("renamed"))
    })
    .await;
    assert!(
        index.lookup("uid-9", "hcp-a", "elsewhere").is_none(),
        "other nodes' pods are not watched"
    );
    let stats = rig.fake.stats();
    assert_eq!(
        stats.pod_lists, lists_before,
        "resumed from the last resourceVersion, no relist"
    );
    assert!(stats.pod_watches >= 2, "{stats:?}");
    rig.stop().await;
}

#[tokio::test]
async fn gone_410_forces_a_relist_that_catches_up() {
    let data = tempfile::tempdir().expect("tempdir");
    let fake = agent_fake().await;
    fake.upsert_namespace(tenant_namespace("hcp-a", "tenant-a"));
    fake.upsert_pod(pod("hcp-a", "old", "uid-old"));
    let mut rig = start(fake, data.path(), Duration::from_secs(30), "").await;
    rig.ready().await;
    let index = rig.metadata.index().clone();
    eventually("old pod indexed", || index.is_live("uid-old")).await;

    // An outage during which the pod is replaced and the history is compacted.
    rig.fake.set_unavailable(true);
    rig.fake.delete_pod("hcp-a", "old");
    rig.fake.upsert_pod(pod("hcp-a", "new", "uid-new"));
    rig.fake.expire_resource_versions();
    rig.fake.set_unavailable(false);

    eventually("new pod listed", || index.is_live("uid-new")).await;
    eventually("old pod gone after the relist", || {
        !index.is_live("uid-old")
    })
    .await;
    let stats = rig.fake.stats();
    assert!(stats.gone >= 1, "a watch got 410: {stats:?}");
    assert!(stats.pod_lists >= 2, "relisted: {stats:?}");
    // The vanished pod is kept (gone) for its late lines.
    rig.send(line(1, 0, "hcp-a", "old", "uid-old", "main"))
        .await;
    assert!(is_enriched(&rig.next_record().await));
    rig.stop().await;
}

#[tokio::test]
async fn namespace_label_change_changes_selection() {
    let data = tempfile::tempdir().expect("tempdir");
    let fake = agent_fake().await;
    fake.upsert_namespace(namespace("plain", json!({})));
    fake.upsert_pod(pod("plain", "api-1", "uid-1"));
    // Default selector: hosted control planes only.
    let mut rig = start(
        fake,
        data.path(),
        Duration::from_secs(30),
        HCP_LABEL_SELECTOR,
    )
    .await;
    rig.ready().await;
    let selector = rig.metadata.index().clone();
    eventually("pod known", || {
        excludes(&selector, "plain", "api-1", "uid-1", "main").is_some()
    })
    .await;
    assert_eq!(
        excludes(&selector, "plain", "api-1", "uid-1", "main"),
        Some(true)
    );
    rig.send(line(1, 0, "plain", "api-1", "uid-1", "main"))
        .await;
    assert!(
        matches!(rig.next().await, SourceEvent::Consumed { end: 100, .. }),
        "excluded line is consumed"
    );

    rig.fake
        .upsert_namespace(namespace("plain", json!({HCP_LABEL: "true"})));
    eventually("namespace selected", || {
        excludes(&selector, "plain", "api-1", "uid-1", "main") == Some(false)
    })
    .await;
    rig.send(line(1, 1, "plain", "api-1", "uid-1", "main"))
        .await;
    let record = rig.next_record().await;
    assert!(is_enriched(&record));
    assert_eq!(
        record.customer_id, "plain",
        "no label or annotation: the namespace name"
    );

    // Opting the pod and one container out.
    let annotations = json!({"logrelay.io/exclude-containers": "sidecar"});
    rig.fake.upsert_pod(pod_on(
        NODE,
        "plain",
        "api-1",
        "uid-1",
        json!({}),
        annotations,
    ));
    eventually("container excluded", || {
        excludes(&selector, "plain", "api-1", "uid-1", "sidecar") == Some(true)
    })
    .await;
    assert_eq!(
        excludes(&selector, "plain", "api-1", "uid-1", "main"),
        Some(false)
    );
    rig.fake.upsert_pod(pod_on(
        NODE,
        "plain",
        "api-1",
        "uid-1",
        json!({"logrelay.io/exclude": "true"}),
        json!({}),
    ));
    eventually("pod opted out", || {
        excludes(&selector, "plain", "api-1", "uid-1", "main") == Some(true)
    })
    .await;
    assert_eq!(
        excludes(&selector, "plain", "unknown", "uid-x", "main"),
        None,
        "unknown pods: read them"
    );
    rig.stop().await;
}

#[tokio::test]
async fn by_default_a_pods_customer_id_annotation_does_not_choose_its_tenant() {
    let data = tempfile::tempdir().expect("tempdir");
    let fake = agent_fake().await;
    fake.upsert_namespace(tenant_namespace("hcp-a", "tenant-a"));
    fake.upsert_pod(pod_on(
        NODE,
        "hcp-a",
        "sneaky",
        "uid-s",
        json!({}),
        json!({CUSTOMER_KEY: "tenant-b"}),
    ));
    let mut rig = start(fake, data.path(), Duration::from_secs(30), "").await;
    rig.ready().await;
    rig.send(line(1, 0, "hcp-a", "sneaky", "uid-s", "main"))
        .await;
    let record = rig.next_record().await;
    assert!(is_enriched(&record));
    assert_eq!(
        record.customer_id, "tenant-a",
        "the namespace label decides, not the pod's annotation"
    );
}

#[tokio::test]
async fn hostile_values_stay_inside_their_tenant_segment() {
    let data = tempfile::tempdir().expect("tempdir");
    let fake = agent_fake().await;
    fake.upsert_namespace(tenant_namespace("hcp-a", "tenant-a"));
    let hostile = [
        "../x".to_string(),
        "../../tenant-b/c1".to_string(),
        "a/b".to_string(),
        "%2F".to_string(),
        "tenant-b%2Fc1".to_string(),
        "..".to_string(),
        "ünïcödé/😀".to_string(),
        "line\nbreak".to_string(),
        "x".repeat(1000),
    ];
    for (i, value) in hostile.iter().enumerate() {
        fake.upsert_pod(pod_on(
            NODE,
            "hcp-a",
            &format!("p{i}"),
            &format!("uid-{i}"),
            json!({"app.kubernetes.io/name": value}),
            json!({CUSTOMER_KEY: value}),
        ));
    }
    let kubeconfig = fake.kubeconfig_path().expect("kubeconfig written");
    let mut config =
        MetadataConfig::new(KubeSource::Kubeconfig(kubeconfig), NODE, data.path(), None);
    config.watch.rules.customer_annotation = Some(CUSTOMER_KEY.to_owned());
    let mut rig = start_with(fake, config, Duration::from_secs(30), "").await;
    rig.ready().await;
    for (i, value) in hostile.iter().enumerate() {
        rig.send(line(
            i as u64 + 1,
            0,
            "hcp-a",
            &format!("p{i}"),
            &format!("uid-{i}"),
            "main",
        ))
        .await;
        let record = rig.next_record().await;
        assert!(is_enriched(&record));
        assert_eq!(
            &record.customer_id, value,
            "the derived value is carried as it is"
        );
        assert_eq!(&record.application, value);
        // The key the batcher builds from the record.
        let partition = Partition::new(
            &record.customer_id,
            &record.cluster_id,
            &record.application,
            &record.pod_name,
        );
        let object = ObjectKey::new(partition, Utc::now(), "id").expect("valid key");
        let text = object.to_key();
        let segments: Vec<&str> = text.split('/').collect();
        assert_eq!(segments.len(), 5, "{text}");
        assert_eq!(
            segments[0],
            key::encode_segment(value),
            "tenant segment encodes exactly the customer id"
        );
        assert!(text.starts_with(&Partition::customer_prefix(value)));
        assert!(
            !text.starts_with("tenant-b/") && !text.starts_with("x/"),
            "{text}"
        );
        assert!(
            segments
                .iter()
                .all(|s| !s.is_empty() && *s != "." && *s != ".."),
            "{text}"
        );
        let parsed = ObjectKey::parse(&text).expect("own keys parse");
        if value.len() < 100 {
            assert_eq!(
                &parsed.partition.customer_id, value,
                "decodes to the same tenant"
            );
        } else {
            assert!(
                parsed.partition.customer_id.starts_with(&value[..50]),
                "long values are cut and hashed"
            );
            assert_eq!(
                key::encode_segment(&parsed.partition.customer_id),
                segments[0]
            );
        }
    }
    rig.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn metadata_wait_expiry_ships_to_quarantine_with_a_counted_marker() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let data = tempfile::tempdir().expect("tempdir");
    let wait = Duration::from_millis(400);
    let mut rig = start(agent_fake().await, data.path(), wait, "").await;
    rig.ready().await;
    let started = Instant::now();
    rig.send(line(1, 0, "hcp-z", "ghost", "uid-ghost", "main"))
        .await;
    rig.send(line(1, 1, "hcp-z", "ghost", "uid-ghost", "main"))
        .await;
    let first = rig.next_record().await;
    assert!(started.elapsed() >= wait, "held for the wait first");
    assert_eq!(first.extra[MISSING_FIELD], json!(true));
    assert_eq!(
        first.customer_id, QUARANTINE_CUSTOMER,
        "no tenant is guessed from the namespace name"
    );
    assert_eq!(
        first.application, "hcp-z",
        "the namespace, for the operator"
    );
    assert_eq!(
        (first.namespace.as_str(), first.container_name.as_str()),
        ("hcp-z", "main")
    );
    assert_eq!(first.message, "ghost-0");
    assert_eq!(rig.next_record().await.message, "ghost-1", "never dropped");
    rig.stop().await;
    let missing: u64 = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "logrelay_agent_metadata_missing_total")
        .filter(|(key, ..)| {
            key.key()
                .labels()
                .any(|l| l.key() == "reason" && l.value() == "wait_expired")
        })
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => n,
            _ => 0,
        })
        .sum();
    assert_eq!(missing, 2);
}

#[tokio::test]
async fn restart_with_the_cache_file_enriches_a_pod_that_is_gone() {
    let data = tempfile::tempdir().expect("tempdir");
    let fake = agent_fake().await;
    fake.upsert_namespace(tenant_namespace("hcp-a", "tenant-a"));
    fake.upsert_pod(pod("hcp-a", "finished", "uid-f"));
    let rig = start(fake, data.path(), Duration::from_secs(30), "").await;
    rig.ready().await;
    let index = rig.metadata.index().clone();
    eventually("pod indexed", || index.is_live("uid-f")).await;
    let fake = rig.stop().await;
    assert!(
        data.path().join(CACHE_FILE_NAME).exists(),
        "cache written at shutdown"
    );

    // While the agent is down the pod finishes and disappears from the API.
    fake.delete_pod("hcp-a", "finished");
    let mut rig = start(fake, data.path(), Duration::from_secs(30), "").await;
    rig.ready().await;
    let started = Instant::now();
    rig.send(line(1, 0, "hcp-a", "finished", "uid-f", "main"))
        .await;
    let record = rig.next_record().await;
    assert!(started.elapsed() < Duration::from_secs(5), "not held");
    assert!(is_enriched(&record));
    assert_eq!(record.customer_id, "tenant-a");
    assert!(
        !rig.metadata.index().is_live("uid-f"),
        "known from the cache only"
    );
    rig.stop().await;
}

#[tokio::test]
async fn a_new_pod_is_in_the_cache_file_within_seconds_not_only_at_shutdown() {
    let data = tempfile::tempdir().expect("tempdir");
    let fake = agent_fake().await;
    fake.upsert_namespace(tenant_namespace("hcp-a", "tenant-a"));
    let rig = start(fake, data.path(), Duration::from_secs(30), "").await;
    rig.ready().await;
    rig.fake.upsert_pod(pod("hcp-a", "short", "uid-short"));
    let index = rig.metadata.index().clone();
    eventually("pod indexed", || index.is_live("uid-short")).await;
    let cache = data.path().join(CACHE_FILE_NAME);
    let started = Instant::now();
    // A SIGKILL now must not forget the pod: the file is written soon after the change.
    eventually("pod in the cache file", || {
        std::fs::read_to_string(&cache).is_ok_and(|text| text.contains("uid-short"))
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "written within the save delay, not the 10 s maintenance tick: {:?}",
        started.elapsed()
    );
    rig.stop().await;
}

#[tokio::test]
async fn slow_api_delays_lines_but_never_loses_them() {
    let data = tempfile::tempdir().expect("tempdir");
    let fake = agent_fake().await;
    fake.upsert_namespace(tenant_namespace("hcp-a", "tenant-a"));
    fake.upsert_pod(pod("hcp-a", "api-1", "uid-1"));
    fake.set_delay(Duration::from_millis(1500));
    let mut rig = start(fake, data.path(), Duration::from_secs(10), "").await;
    rig.send(line(1, 0, "hcp-a", "api-1", "uid-1", "main"))
        .await;
    let record = rig.next_record().await;
    assert!(is_enriched(&record), "held until the slow list answered");
    rig.fake.set_delay(Duration::ZERO);
    rig.stop().await;
}

#[tokio::test]
async fn static_pod_lines_are_found_by_the_config_hash_in_their_path() {
    let data = tempfile::tempdir().expect("tempdir");
    let fake = agent_fake().await;
    fake.upsert_namespace(namespace("kube-system", json!({})));
    // The mirror pod the kubelet creates: its own UID, the config hash in annotations.
    fake.upsert_pod(json!({
        "metadata": {
            "name": "etcd-node-1", "namespace": "kube-system", "uid": "mirror-uid",
            "annotations": {"kubernetes.io/config.hash": "0123abcd", "kubernetes.io/config.mirror": "0123abcd"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": "n", "controller": true}],
        },
        "spec": {"nodeName": NODE, "containers": [{"name": "etcd", "image": "registry/etcd:3"}]},
    }));
    let mut rig = start(fake, data.path(), Duration::from_secs(30), "").await;
    rig.ready().await;
    rig.send(line(1, 0, "kube-system", "etcd-node-1", "0123abcd", "etcd"))
        .await;
    let record = rig.next_record().await;
    assert!(is_enriched(&record));
    assert_eq!(record.application, "etcd", "a Node owner is no application");
    let k = record.kubernetes.as_ref().expect("kubernetes");
    assert_eq!(k.pod_uid.as_deref(), Some("mirror-uid"));
    assert_eq!(k.extra["config_hash"], json!("0123abcd"));
    assert_eq!(k.container_image.as_deref(), Some("registry/etcd:3"));
    rig.stop().await;
}

#[tokio::test]
async fn the_agent_uses_exactly_what_the_shipped_rbac_grants() {
    let data = tempfile::tempdir().expect("tempdir");
    let (policy, rendered_by) = RbacPolicy::agent().expect("the agent's RBAC renders");
    let fake = agent_fake().await;
    fake.upsert_namespace(tenant_namespace("hcp-a", "tenant-a"));
    fake.upsert_pod(pod("hcp-a", "api-5d8f-x1", "uid-1"));
    let mut rig = start(fake, data.path(), Duration::from_secs(30), "").await;
    rig.ready().await;
    assert!(
        rig.fake.wait_for_watches(2, SOON).await,
        "both watches open"
    );
    // A dropped watch and an expired resourceVersion: the agent resumes and relists.
    rig.fake.drop_watches();
    rig.fake.expire_resource_versions();
    rig.fake.upsert_pod(pod("hcp-a", "api-5d8f-x2", "uid-2"));
    rig.send(line(1, 0, "hcp-a", "api-5d8f-x2", "uid-2", "main"))
        .await;
    assert!(is_enriched(&rig.next_record().await));
    let fake = rig.stop().await;
    assert_eq!(fake.stats().forbidden, 0, "nothing refused");
    assert_eq!(
        fake.access(),
        policy.cluster_grants(),
        "every grant is used and nothing else is requested (manifests rendered by {rendered_by:?})"
    );
    assert_eq!(
        fake.access(),
        BTreeSet::from(
            [
                "list namespaces",
                "list pods",
                "watch namespaces",
                "watch pods"
            ]
            .map(str::to_owned)
        )
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_role_without_namespaces_is_refused_and_reported() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let data = tempfile::tempdir().expect("tempdir");
    let fake = FakeKube::start().await.expect("fake");
    let pods_only = "
kind: ClusterRole
metadata: {name: logrelay-agent}
rules: [{apiGroups: [''], resources: [pods], verbs: [list, watch]}]
---
kind: ClusterRoleBinding
metadata: {name: logrelay-agent}
roleRef: {kind: ClusterRole, name: logrelay-agent}
subjects: [{kind: ServiceAccount, name: logrelay-agent, namespace: logrelay}]
";
    fake.enforce_rbac(
        RbacPolicy::from_manifests(pods_only, "logrelay", "logrelay-agent").expect("policy"),
    );
    fake.upsert_namespace(tenant_namespace("hcp-a", "tenant-a"));
    fake.upsert_pod(pod("hcp-a", "api-5d8f-x1", "uid-1"));
    let wait = Duration::from_millis(400);
    let mut rig = start(fake, data.path(), wait, "").await;
    rig.send(line(1, 0, "hcp-a", "api-5d8f-x1", "uid-1", "main"))
        .await;
    let record = rig.next_record().await;
    assert!(
        !is_enriched(&record),
        "without its namespace a pod's lines ship unenriched"
    );
    assert_eq!(record.customer_id, QUARANTINE_CUSTOMER);
    let fake = rig.stop().await;
    assert!(
        fake.stats().forbidden >= 1,
        "the namespace list was refused"
    );
    assert_eq!(fake.stats().namespace_lists, 0);
    let restarts: u64 = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "logrelay_agent_metadata_watch_restarts_total")
        .filter(|(key, ..)| {
            key.key()
                .labels()
                .any(|l| l.key() == "resource" && l.value() == "namespaces")
        })
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => n,
            _ => 0,
        })
        .sum();
    assert!(restarts >= 1, "the refused watch is counted");
}
