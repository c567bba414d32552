//! Watching the Kubernetes API with kube-rs: `watcher` → `default_backoff` → `reflect` into a
//! `Store`, for the Pods on this node (`fieldSelector=spec.nodeName=$NODE_NAME`) and for all
//! Namespaces. Each change re-derives the affected pods into the [`PodIndex`].
//!
//! The watcher lists, then watches from the list's resourceVersion; it resumes after a dropped
//! connection, relists after `410 Gone`, and after every error waits (800 ms doubling to 30 s,
//! reset after 120 s without errors) and retries, forever. Watch failures are counted and never
//! reach the file tailer: lines of unknown pods are held, then shipped without metadata.

use super::derive::{DeriveRules, derive};
use super::index::PodIndex;
use crate::internal_events::metadata::{Relisted, WatchRestarted};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

/// Annotation `kubectl apply` writes (a full copy of the object); dropped from stored objects.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What the watchers need.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// This node's name: only its pods are watched.
    pub node_name: String,
    /// List with `resourceVersion=0` (served from the apiserver's cache; may be slightly stale,
    /// which the following watch corrects).
    pub list_from_cache: bool,
    /// Derivation and selection.
    pub rules: DeriveRules,
}

/// Derives pods from the two stores into the index. Derivation of a pod reads both stores; the
/// lock makes "read stores, derive, update index" atomic between the two watch tasks, so a pod
/// update can never overwrite the result of a newer namespace update with an older one.
struct Deriver {
    pods: Store<Pod>,
    namespaces: Store<Namespace>,
    rules: DeriveRules,
    index: Arc<PodIndex>,
    lock: Mutex<()>,
}

impl Deriver {
    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Re-derives one pod (when its namespace is known).
    fn pod_changed(&self, pod: &Pod) {
        let _guard = self.guard();
        self.derive_one(pod);
    }

    fn derive_one(&self, pod: &Pod) {
        let Some(ns_name) = pod.namespace() else {
            return;
        };
        let Some(namespace) = self.namespaces.get(&ObjectRef::new(&ns_name)) else {
            tracing::debug!(namespace = %ns_name, pod = %pod.name_any(), "namespace not known yet");
            return;
        };
        if let Some(meta) = derive(pod, &namespace, &self.rules) {
            self.index.upsert(meta);
        }
    }

    /// A pod was deleted: keep its last state, marked gone.
    fn pod_deleted(&self, pod: &Pod) {
        let _guard = self.guard();
        self.derive_one(pod);
        if let Some(uid) = pod.uid() {
            self.index.mark_gone(&uid);
        }
    }

    /// A full pod list ended: pods not listed are gone.
    fn pods_relisted(&self) {
        let _guard = self.guard();
        let listed = self.pods.state();
        let uids: HashSet<String> = listed.iter().filter_map(|p| p.uid()).collect();
        for pod in &listed {
            self.derive_one(pod);
        }
        self.index.retain_live(&uids);
        Relisted {
            resource: "pods",
            objects: listed.len(),
        }
        .emit();
    }

    /// A namespace changed: re-derive its pods (labels decide tenant and selection).
    fn namespace_changed(&self, name: &str) {
        let _guard = self.guard();
        for pod in self
            .pods
            .state_filter(|p| p.namespace().as_deref() == Some(name))
        {
            self.derive_one(&pod);
        }
    }

    /// A full namespace list ended: re-derive every pod.
    fn namespaces_relisted(&self) {
        let _guard = self.guard();
        for pod in self.pods.state() {
            self.derive_one(&pod);
        }
        Relisted {
            resource: "namespaces",
            objects: self.namespaces.len(),
        }
        .emit();
    }
}

/// The running watchers; dropping this stops them.
#[derive(Debug)]
pub struct Watchers {
    pods: Store<Pod>,
    namespaces: Store<Namespace>,
    tasks: Vec<JoinHandle<()>>,
}

impl Watchers {
    /// Starts watching pods on `settings.node_name` and all namespaces, updating `index`.
    pub fn spawn(client: Client, settings: WatchSettings, index: Arc<PodIndex>) -> Self {
        let (pod_store, pod_writer) = reflector::store::<Pod>();
        let (ns_store, ns_writer) = reflector::store::<Namespace>();
        let deriver = Arc::new(Deriver {
            pods: pod_store.clone(),
            namespaces: ns_store.clone(),
            rules: settings.rules.clone(),
            index,
            lock: Mutex::new(()),
        });

        let mut pod_config =
            watcher::Config::default().fields(&format!("spec.nodeName={}", settings.node_name));
        let mut ns_config = watcher::Config::default();
        if settings.list_from_cache {
            pod_config = pod_config.any_semantic();
            ns_config = ns_config.any_semantic();
        }

        let pods = watcher(Api::<Pod>::all(client.clone()), pod_config)
            .default_backoff()
            .modify(slim_pod)
            .reflect(pod_writer);
        let pod_deriver = deriver.clone();
        let pod_task = tokio::spawn(pods.for_each(move |event| {
            let deriver = pod_deriver.clone();
            async move {
                match event {
                    Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                        deriver.pod_changed(&pod);
                    }
                    Ok(watcher::Event::Delete(pod)) => deriver.pod_deleted(&pod),
                    Ok(watcher::Event::InitDone) => deriver.pods_relisted(),
                    Ok(watcher::Event::Init) => {}
                    Err(error) => WatchRestarted {
                        resource: "pods",
                        error: &error,
                    }
                    .emit(),
                }
            }
        }));

        let namespaces = watcher(Api::<Namespace>::all(client), ns_config)
            .default_backoff()
            .modify(slim_namespace)
            .reflect(ns_writer);
        let ns_task = tokio::spawn(namespaces.for_each(move |event| {
            let deriver = deriver.clone();
            async move {
                match event {
                    Ok(watcher::Event::Apply(ns) | watcher::Event::InitApply(ns)) => {
                        deriver.namespace_changed(&ns.name_any());
                    }
                    Ok(watcher::Event::InitDone) => deriver.namespaces_relisted(),
                    Ok(watcher::Event::Delete(_) | watcher::Event::Init) => {}
                    Err(error) => WatchRestarted {
                        resource: "namespaces",
                        error: &error,
                    }
                    .emit(),
                }
            }
        }));

        Self {
            pods: pod_store,
            namespaces: ns_store,
            tasks: vec![pod_task, ns_task],
        }
    }

    /// Pods in the watch store.
    pub fn pods(&self) -> usize {
        self.pods.len()
    }

    /// Namespaces in the watch store.
    pub fn namespaces(&self) -> usize {
        self.namespaces.len()
    }

    /// Waits until both initial lists completed.
    pub async fn wait_until_ready(&self) {
        // Errors only mean the writer was dropped (the watchers stopped): nothing to wait for then.
        let _ = self.pods.wait_until_ready().await;
        let _ = self.namespaces.wait_until_ready().await;
    }

    /// Stops the watchers.
    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for Watchers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Drops what derivation never reads from a stored pod (managed fields, status, the
/// last-applied copy): the store holds every pod of the node.
fn slim_pod(pod: &mut Pod) {
    pod.managed_fields_mut().clear();
    pod.annotations_mut().remove(LAST_APPLIED_ANNOTATION);
    pod.status = None;
}

/// Keeps only a namespace's identity and labels.
fn slim_namespace(ns: &mut Namespace) {
    ns.managed_fields_mut().clear();
    ns.annotations_mut().clear();
    ns.spec = None;
    ns.status = None;
}
