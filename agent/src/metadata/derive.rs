//! Derivation: from a Pod and its Namespace to what a record carries ([`PodMeta`]): the tenant
//! (`customer_id`), the application, allow-listed labels and annotations, container images, the
//! owning workload, and the selection decision.
//!
//! Defaults (each key configurable):
//! - `customer_id`: namespace label `logrelay.io/customer-id` → namespace name; the pod annotation
//!   `logrelay.io/customer-id` comes first only when opted in (a pod creator could otherwise pick
//!   any tenant).
//! - `application`: pod label `app.kubernetes.io/name` → pod label `app` → owning workload name
//!   (ReplicaSet → Deployment by removing the `pod-template-hash` suffix, StatefulSet, DaemonSet,
//!   Job → CronJob by removing the scheduled-time suffix; not a Node, the owner of static pods)
//!   → container name (per line).
//!
//! Values are arbitrary strings: they reach S3 keys only through `logrelay_common::key`, whose
//! encoding keeps every value inside its own segment.

use super::select::{PodSelection, SelectionRules};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use std::collections::BTreeMap;

/// Default pod annotation (and namespace label) naming the tenant.
pub const CUSTOMER_ID_KEY: &str = "logrelay.io/customer-id";

/// Pod annotation choosing how the pod's containers' multi-line records are joined: `java`,
/// `python`, `go`, `start-regex=<expression>` or `off` (overrides `--multiline` for the pod).
pub const MULTILINE_ANNOTATION: &str = "logrelay.io/multiline";

/// Default pod labels naming the application, in order of preference.
pub const DEFAULT_APPLICATION_LABELS: [&str; 2] = ["app.kubernetes.io/name", "app"];

/// Default allow-list of pod labels copied into records (`*` at the end matches a prefix).
pub const DEFAULT_LABEL_ALLOWLIST: [&str; 2] = ["app.kubernetes.io/*", "app"];

/// The kubelet's annotation on static pods (and their mirror pods) holding the config hash, which
/// is the UID in the static pod's log path (`k8s.io/kubernetes/pkg/kubelet/types`: `ConfigHashAnnotationKey`).
pub const CONFIG_HASH_ANNOTATION: &str = "kubernetes.io/config.hash";

/// The kubelet's annotation on mirror pods, also holding the config hash (`ConfigMirrorAnnotationKey`).
pub const CONFIG_MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The label the ReplicaSet controller adds to its pods; the ReplicaSet's name is
/// `<deployment>-<hash>` (`k8s.io/api/apps/v1`: `DefaultDeploymentUniqueLabelKey`).
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// Fewest digits of the suffix the CronJob controller appends to Job names: the scheduled time in
/// minutes since the epoch (`getTimeHashInMinutes`), 8 digits since 1970-03 and until 2160.
pub const CRONJOB_SUFFIX_MIN_DIGITS: usize = 8;

/// A list of label or annotation keys; an entry ending in `*` matches every key with that prefix.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyAllowList {
    entries: Vec<String>,
}

impl KeyAllowList {
    /// A list from entries (blank ones are ignored).
    pub fn new<I, S>(entries: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let entries = entries
            .into_iter()
            .map(|e| e.as_ref().trim().to_owned())
            .filter(|e| !e.is_empty())
            .collect();
        Self { entries }
    }

    /// True when `key` is allowed.
    pub fn allows(&self, key: &str) -> bool {
        self.entries
            .iter()
            .any(|entry| match entry.strip_suffix('*') {
                Some(prefix) => key.starts_with(prefix),
                None => entry == key,
            })
    }

    fn filter(&self, map: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        map.iter()
            .filter(|(k, _)| self.allows(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The configurable parts of derivation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeriveRules {
    /// Pod annotation naming the tenant (`None`, the default: not consulted).
    pub customer_annotation: Option<String>,
    /// Namespace label naming the tenant (`None`: not consulted).
    pub customer_namespace_label: Option<String>,
    /// Pod labels naming the application, in order.
    pub application_labels: Vec<String>,
    /// Pod labels copied into records.
    pub label_allowlist: KeyAllowList,
    /// Pod annotations copied into records.
    pub annotation_allowlist: KeyAllowList,
    /// Which pods and containers are shipped.
    pub selection: SelectionRules,
}

impl Default for DeriveRules {
    fn default() -> Self {
        Self {
            customer_annotation: None,
            customer_namespace_label: Some(CUSTOMER_ID_KEY.into()),
            application_labels: DEFAULT_APPLICATION_LABELS.map(String::from).to_vec(),
            label_allowlist: KeyAllowList::new(DEFAULT_LABEL_ALLOWLIST),
            annotation_allowlist: KeyAllowList::default(),
            selection: SelectionRules::default(),
        }
    }
}

/// What the agent knows about one pod: everything a record needs, derived once per change of the
/// pod or its namespace. Serialized into the metadata cache file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PodMeta {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// The API's UID of the pod (a mirror pod's own UID for static pods).
    pub uid: String,
    /// For static pods: the config hash, which is the UID in the pod's log path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// Tenant.
    pub customer_id: String,
    /// Application from labels or owner; `None`: the container name is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// Owning workload, `Kind/name` (after ReplicaSet → Deployment, Job → CronJob).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// `spec.nodeName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Allow-listed labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Allow-listed annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Image of each container (init and ephemeral containers included), by container name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, String>,
    /// Which of its lines are shipped.
    #[serde(default)]
    pub selection: PodSelection,
    /// The [`MULTILINE_ANNOTATION`], when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiline: Option<String>,
}

impl PodMeta {
    /// The UIDs a log path of this pod can carry: the API UID and, for static pods, the config hash.
    pub fn path_uids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.uid.as_str()).chain(self.config_hash.as_deref())
    }

    /// The application of lines from `container`.
    pub fn application_for<'a>(&'a self, container: &'a str) -> &'a str {
        self.application.as_deref().unwrap_or(container)
    }
}

/// Derives a pod's metadata, or `None` when the pod has no name, namespace or UID.
pub fn derive(pod: &Pod, namespace: &Namespace, rules: &DeriveRules) -> Option<PodMeta> {
    let meta = &pod.metadata;
    let (name, ns, uid) = (
        meta.name.clone()?,
        meta.namespace.clone()?,
        meta.uid.clone()?,
    );
    let empty = BTreeMap::new();
    let labels = meta.labels.as_ref().unwrap_or(&empty);
    let annotations = meta.annotations.as_ref().unwrap_or(&empty);
    let ns_labels = namespace.metadata.labels.as_ref().unwrap_or(&empty);
    let non_empty = |v: &String| !v.trim().is_empty();

    let customer_id = rules
        .customer_annotation
        .as_ref()
        .and_then(|key| annotations.get(key))
        .filter(|v| non_empty(v))
        .or_else(|| {
            let key = rules.customer_namespace_label.as_ref()?;
            ns_labels.get(key).filter(|v| non_empty(v))
        })
        .cloned()
        .unwrap_or_else(|| ns.clone());

    let owner = owner_workload(pod);
    let application = rules
        .application_labels
        .iter()
        .find_map(|key| labels.get(key).filter(|v| non_empty(v)).cloned())
        .or_else(|| {
            // A static pod's mirror is owned by its Node, which is no application.
            owner
                .as_ref()
                .filter(|(kind, _)| kind != "Node")
                .map(|(_, name)| name.clone())
        });

    let config_hash = [CONFIG_HASH_ANNOTATION, CONFIG_MIRROR_ANNOTATION]
        .iter()
        .find_map(|key| annotations.get(*key).filter(|v| non_empty(v)).cloned())
        .filter(|hash| *hash != uid);

    let mut images = BTreeMap::new();
    if let Some(spec) = &pod.spec {
        let containers = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten());
        for c in containers {
            if let Some(image) = &c.image {
                images.insert(c.name.clone(), image.clone());
            }
        }
        for c in spec.ephemeral_containers.iter().flatten() {
            if let Some(image) = &c.image {
                images.insert(c.name.clone(), image.clone());
            }
        }
    }

    Some(PodMeta {
        selection: rules.selection.evaluate(labels, annotations, ns_labels),
        namespace: ns,
        name,
        uid,
        config_hash,
        customer_id,
        application,
        owner: owner.map(|(kind, name)| format!("{kind}/{name}")),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        labels: rules.label_allowlist.filter(labels),
        annotations: rules.annotation_allowlist.filter(annotations),
        images,
        multiline: annotations
            .get(MULTILINE_ANNOTATION)
            .filter(|v| non_empty(v))
            .cloned(),
    })
}

/// The workload owning `pod`, as (kind, name): the controller owner reference (or the first one),
/// with ReplicaSet → Deployment and Job → CronJob resolved from names.
pub fn owner_workload(pod: &Pod) -> Option<(String, String)> {
    let refs = pod.metadata.owner_references.as_ref()?;
    let owner = refs
        .iter()
        .find(|r| r.controller == Some(true))
        .or_else(|| refs.first())?;
    let name = owner.name.as_str();
    let resolved = match owner.kind.as_str() {
        "ReplicaSet" => pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
            .and_then(|hash| name.strip_suffix(hash.as_str())?.strip_suffix('-'))
            .filter(|deployment| !deployment.is_empty())
            .map(|deployment| ("Deployment", deployment)),
        "Job" => name
            .rsplit_once('-')
            .filter(|(cron, suffix)| {
                !cron.is_empty()
                    && suffix.len() >= CRONJOB_SUFFIX_MIN_DIGITS
                    && suffix.bytes().all(|b| b.is_ascii_digit())
            })
            .map(|(cron, _)| ("CronJob", cron)),
        _ => None,
    };
    let (kind, name) = resolved.unwrap_or((owner.kind.as_str(), name));
    Some((kind.to_owned(), name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::select::{ExcludeReason, LabelSelector};
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).expect("valid pod")
    }

    fn namespace(name: &str, labels: serde_json::Value) -> Namespace {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
            .expect("valid namespace")
    }

    fn base_pod(
        labels: serde_json::Value,
        annotations: serde_json::Value,
        owner: serde_json::Value,
    ) -> Pod {
        pod(json!({
            "metadata": {
                "name": "api-5d8f9c7b6d-x2x9k", "namespace": "tenant-ns", "uid": "uid-1",
                "labels": labels, "annotations": annotations, "ownerReferences": owner,
            },
            "spec": {
                "nodeName": "node-1",
                "containers": [{"name": "api", "image": "registry/api:1"}],
                "initContainers": [{"name": "init", "image": "registry/init:1"}],
            },
        }))
    }

    #[test]
    fn the_multiline_annotation_is_kept_whatever_the_allow_list() {
        let ns = namespace("tenant-ns", json!({}));
        let annotated = base_pod(json!({}), json!({MULTILINE_ANNOTATION: "java"}), json!([]));
        let meta = derive(&annotated, &ns, &all_namespaces()).expect("derived");
        assert_eq!(meta.multiline.as_deref(), Some("java"));
        assert!(meta.annotations.is_empty(), "not copied into records");
        let plain = base_pod(json!({}), json!({}), json!([]));
        let meta = derive(&plain, &ns, &all_namespaces()).expect("derived");
        assert_eq!(meta.multiline, None);
    }

    fn all_namespaces() -> DeriveRules {
        DeriveRules {
            selection: SelectionRules {
                namespace_selector: LabelSelector::default(),
            },
            ..DeriveRules::default()
        }
    }

    fn rs_owner(name: &str) -> serde_json::Value {
        json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name, "uid": "rs", "controller": true}])
    }

    #[test]
    fn by_default_a_pods_annotation_does_not_choose_its_tenant() {
        let rules = all_namespaces();
        let annotated = base_pod(
            json!({}),
            json!({CUSTOMER_ID_KEY: "other-tenant"}),
            json!([]),
        );
        let labelled = namespace("tenant-ns", json!({CUSTOMER_ID_KEY: "from-ns"}));
        let plain = namespace("tenant-ns", json!({}));
        let id = |ns: &Namespace| derive(&annotated, ns, &rules).expect("derives").customer_id;
        assert_eq!(id(&labelled), "from-ns");
        assert_eq!(id(&plain), "tenant-ns");
    }

    #[test]
    fn customer_id_prefers_pod_annotation_then_namespace_label_then_namespace_name() {
        let rules = DeriveRules {
            customer_annotation: Some(CUSTOMER_ID_KEY.into()),
            ..all_namespaces()
        };
        let ns_plain = namespace("tenant-ns", json!({}));
        let ns_labelled = namespace("tenant-ns", json!({CUSTOMER_ID_KEY: "from-ns"}));
        let annotated = base_pod(json!({}), json!({CUSTOMER_ID_KEY: "from-pod"}), json!([]));
        let plain = base_pod(json!({}), json!({}), json!([]));
        let blank = base_pod(json!({}), json!({CUSTOMER_ID_KEY: " "}), json!([]));
        let id = |p: &Pod, ns: &Namespace| derive(p, ns, &rules).expect("derives").customer_id;
        assert_eq!(id(&annotated, &ns_labelled), "from-pod");
        assert_eq!(id(&plain, &ns_labelled), "from-ns");
        assert_eq!(id(&blank, &ns_labelled), "from-ns");
        assert_eq!(id(&plain, &ns_plain), "tenant-ns");
        let no_annotation = DeriveRules {
            customer_annotation: None,
            ..all_namespaces()
        };
        assert_eq!(
            derive(&annotated, &ns_labelled, &no_annotation)
                .expect("derives")
                .customer_id,
            "from-ns"
        );
    }

    #[test]
    fn application_prefers_labels_then_owner_then_container() {
        let rules = all_namespaces();
        let ns = namespace("tenant-ns", json!({}));
        let app = |p: Pod| derive(&p, &ns, &rules).expect("derives");
        let both = base_pod(
            json!({"app.kubernetes.io/name": "n", "app": "a"}),
            json!({}),
            json!([]),
        );
        assert_eq!(app(both).application.as_deref(), Some("n"));
        let legacy = base_pod(json!({"app": "a"}), json!({}), json!([]));
        assert_eq!(app(legacy).application.as_deref(), Some("a"));
        let owned = base_pod(
            json!({"pod-template-hash": "5d8f9c7b6d"}),
            json!({}),
            rs_owner("api-5d8f9c7b6d"),
        );
        let meta = app(owned);
        assert_eq!(meta.application.as_deref(), Some("api"));
        assert_eq!(meta.owner.as_deref(), Some("Deployment/api"));
        let bare = app(base_pod(json!({}), json!({}), json!([])));
        assert_eq!(bare.application, None);
        assert_eq!(bare.application_for("api"), "api");
    }

    #[test]
    fn owners_resolve_to_workloads() {
        let owner = |kind: &str, name: &str, labels: serde_json::Value| {
            let p = base_pod(
                labels,
                json!({}),
                json!([{"apiVersion": "v1", "kind": kind, "name": name, "uid": "o", "controller": true}]),
            );
            owner_workload(&p).map(|(k, n)| format!("{k}/{n}"))
        };
        let hash = json!({"pod-template-hash": "7c9d"});
        assert_eq!(
            owner("ReplicaSet", "web-7c9d", hash.clone()).as_deref(),
            Some("Deployment/web")
        );
        assert_eq!(
            owner("ReplicaSet", "web-other", hash).as_deref(),
            Some("ReplicaSet/web-other")
        );
        assert_eq!(
            owner("ReplicaSet", "web-7c9d", json!({})).as_deref(),
            Some("ReplicaSet/web-7c9d")
        );
        assert_eq!(
            owner("StatefulSet", "db", json!({})).as_deref(),
            Some("StatefulSet/db")
        );
        assert_eq!(
            owner("DaemonSet", "agent", json!({})).as_deref(),
            Some("DaemonSet/agent")
        );
        assert_eq!(
            owner("Job", "backup-29412345", json!({})).as_deref(),
            Some("CronJob/backup")
        );
        assert_eq!(
            owner("Job", "migrate-2", json!({})).as_deref(),
            Some("Job/migrate-2")
        );
        assert_eq!(
            owner("Node", "node-1", json!({})).as_deref(),
            Some("Node/node-1")
        );
        assert_eq!(
            owner_workload(&base_pod(json!({}), json!({}), json!([]))),
            None
        );
    }

    #[test]
    fn allow_lists_images_node_and_selection_are_kept() {
        let rules = DeriveRules {
            annotation_allowlist: KeyAllowList::new(["team", "ci/*"]),
            ..DeriveRules::default()
        };
        let p = base_pod(
            json!({"app.kubernetes.io/name": "api", "app.kubernetes.io/version": "1", "secret-ish": "x"}),
            json!({"team": "blue", "ci/run": "7", "other": "no"}),
            json!([]),
        );
        let system = namespace(
            "kube-system",
            json!({"kubernetes.io/metadata.name": "kube-system"}),
        );
        let unselected = derive(&p, &system, &rules).expect("derives");
        assert_eq!(
            unselected.selection.excluded,
            Some(ExcludeReason::NamespaceNotSelected)
        );
        let ns = namespace(
            "tenant-ns",
            json!({"kubernetes.io/metadata.name": "tenant-ns"}),
        );
        let meta = derive(&p, &ns, &rules).expect("derives");
        assert_eq!(meta.selection.excluded, None);
        assert_eq!(
            meta.labels.keys().collect::<Vec<_>>(),
            ["app.kubernetes.io/name", "app.kubernetes.io/version"]
        );
        assert_eq!(
            meta.annotations.keys().collect::<Vec<_>>(),
            ["ci/run", "team"]
        );
        assert_eq!(meta.images["api"], "registry/api:1");
        assert_eq!(meta.images["init"], "registry/init:1");
        assert_eq!(meta.node_name.as_deref(), Some("node-1"));
    }

    #[test]
    fn static_pods_are_found_by_their_config_hash() {
        let ns = namespace("kube-system", json!({}));
        let mirror = pod(json!({
            "metadata": {
                "name": "etcd-node-1", "namespace": "kube-system", "uid": "mirror-uid",
                "annotations": {CONFIG_HASH_ANNOTATION: "abc123", CONFIG_MIRROR_ANNOTATION: "abc123"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "node-1", "uid": "n", "controller": true}],
            },
            "spec": {"containers": [{"name": "etcd"}]},
        }));
        let meta = derive(&mirror, &ns, &all_namespaces()).expect("derives");
        assert_eq!(
            meta.path_uids().collect::<Vec<_>>(),
            ["mirror-uid", "abc123"]
        );
        assert_eq!(meta.owner.as_deref(), Some("Node/node-1"));
        assert_eq!(
            meta.application_for("etcd"),
            "etcd",
            "a Node is no application"
        );
        let plain = base_pod(json!({}), json!({}), json!([]));
        let meta = derive(&plain, &ns, &all_namespaces()).expect("derives");
        assert_eq!(meta.path_uids().collect::<Vec<_>>(), ["uid-1"]);
    }

    #[test]
    fn pods_without_identity_are_not_derived() {
        let p = pod(json!({"metadata": {"name": "x", "namespace": "y"}}));
        assert_eq!(
            derive(&p, &namespace("y", json!({})), &DeriveRules::default()),
            None
        );
    }
}
