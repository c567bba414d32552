//! Kubernetes objects of the simulated cluster, as JSON files a fake API server or a test can serve.
//!
//! Layout under the `--kube-objects` directory, one object per file, each written atomically:
//! `namespaces/<name>.json` (a `v1/Namespace`) and `pods/<namespace>_<name>.json` (a `v1/Pod`).
//! A pod that goes away is rewritten with `metadata.deletionTimestamp` set and `status.phase`
//! `Succeeded`; its file is kept so late readers can still resolve its metadata.

use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{Value, json};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Namespace label naming the tenant that owns the namespace.
pub const CUSTOMER_LABEL: &str = "logrelay.io/customer-id";

/// Namespace label HyperShift puts on hosted control-plane namespaces.
pub const HOSTED_CONTROL_PLANE_LABEL: &str = "hypershift.openshift.io/hosted-control-plane";

/// Pod label the agent takes the application name from.
pub const APP_LABEL: &str = "app.kubernetes.io/name";

/// Characters Kubernetes uses in generated name suffixes (`k8s.io/apimachinery` rand.String).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A random RFC 4122 version-4 UUID, as Kubernetes UIDs look.
pub fn random_uid(rng: &mut impl Rng) -> String {
    let mut b: [u8; 16] = rng.random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A random name suffix of `len` characters like those in `api-5d8f9c7b6d-x2x9k`.
pub fn random_suffix(rng: &mut impl Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())]))
        .collect()
}

/// A namespace owned by a tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceInfo {
    /// Namespace name.
    pub name: String,
    /// Tenant (customer id) owning it.
    pub tenant: String,
    /// Object UID.
    pub uid: String,
    /// Creation time.
    pub created: DateTime<Utc>,
}

/// One container of a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    /// Container name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Restarts so far (the live log file is `<restart_count>.log`).
    pub restart_count: u32,
    /// Runtime container id (64 hex digits).
    pub container_id: String,
    /// When the current instance started.
    pub started_at: DateTime<Utc>,
}

/// A pod of a Deployment (owned by a ReplicaSet).
#[derive(Debug, Clone, PartialEq)]
pub struct PodInfo {
    /// Pod name (`<app>-<template hash>-<suffix>`).
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Pod UID.
    pub uid: String,
    /// Application (the `app.kubernetes.io/name` label and the Deployment's name).
    pub app: String,
    /// The ReplicaSet's `pod-template-hash`.
    pub template_hash: String,
    /// UID of the owning ReplicaSet.
    pub replicaset_uid: String,
    /// Node the pod runs on.
    pub node_name: String,
    /// Pod IP.
    pub pod_ip: String,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// Containers, in spec order.
    pub containers: Vec<ContainerInfo>,
    /// When the pod was deleted, if it was.
    pub deleted_at: Option<DateTime<Utc>>,
}

fn time(ts: &DateTime<Utc>) -> String {
    ts.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The `v1/Namespace` object of `ns`.
pub fn namespace_object(ns: &NamespaceInfo) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": ns.name,
            "uid": ns.uid,
            "creationTimestamp": time(&ns.created),
            "labels": {
                "kubernetes.io/metadata.name": ns.name,
                CUSTOMER_LABEL: ns.tenant,
                HOSTED_CONTROL_PLANE_LABEL: "true",
            },
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

/// The `v1/Pod` object of `pod`.
pub fn pod_object(pod: &PodInfo) -> Value {
    let replicaset = format!("{}-{}", pod.app, pod.template_hash);
    let mut metadata = json!({
        "name": pod.name,
        "namespace": pod.namespace,
        "uid": pod.uid,
        "creationTimestamp": time(&pod.created),
        "generateName": format!("{replicaset}-"),
        "labels": {
            APP_LABEL: pod.app,
            "pod-template-hash": pod.template_hash,
        },
        "ownerReferences": [{
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": replicaset,
            "uid": pod.replicaset_uid,
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    });
    if let Some(deleted) = &pod.deleted_at {
        metadata["deletionTimestamp"] = json!(time(deleted));
        metadata["deletionGracePeriodSeconds"] = json!(30);
    }
    let containers: Vec<Value> = pod
        .containers
        .iter()
        .map(|c| json!({"name": c.name, "image": c.image, "imagePullPolicy": "IfNotPresent"}))
        .collect();
    let statuses: Vec<Value> = pod
        .containers
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "image": c.image,
                "imageID": format!("{}@sha256:{}", c.image.split(':').next().unwrap_or(""), &c.container_id),
                "containerID": format!("containerd://{}", c.container_id),
                "ready": pod.deleted_at.is_none(),
                "started": pod.deleted_at.is_none(),
                "restartCount": c.restart_count,
                "state": {"running": {"startedAt": time(&c.started_at)}},
            })
        })
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "nodeName": pod.node_name,
            "containers": containers,
            "restartPolicy": "Always",
        },
        "status": {
            "phase": if pod.deleted_at.is_some() { "Succeeded" } else { "Running" },
            "podIP": pod.pod_ip,
            "startTime": time(&pod.created),
            "containerStatuses": statuses,
        },
    })
}

/// Writes objects under a directory (`namespaces/`, `pods/`).
#[derive(Debug, Clone)]
pub struct KubeObjectWriter {
    dir: PathBuf,
}

impl KubeObjectWriter {
    /// Creates `dir/namespaces` and `dir/pods`.
    pub fn create(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir.join("namespaces"))?;
        std::fs::create_dir_all(dir.join("pods"))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Path of a namespace's file.
    pub fn namespace_path(&self, name: &str) -> PathBuf {
        self.dir.join("namespaces").join(format!("{name}.json"))
    }

    /// Path of a pod's file.
    pub fn pod_path(&self, namespace: &str, name: &str) -> PathBuf {
        self.dir
            .join("pods")
            .join(format!("{namespace}_{name}.json"))
    }

    /// Writes (or rewrites) a namespace's file.
    pub fn write_namespace(&self, ns: &NamespaceInfo) -> io::Result<()> {
        write_atomic(&self.namespace_path(&ns.name), &namespace_object(ns))
    }

    /// Writes (or rewrites) a pod's file.
    pub fn write_pod(&self, pod: &PodInfo) -> io::Result<()> {
        write_atomic(&self.pod_path(&pod.namespace, &pod.name), &pod_object(pod))
    }
}

fn write_atomic(path: &Path, value: &Value) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let mut file = std::fs::File::create(&tmp)?;
    let text = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    file.write_all(&text)?;
    file.write_all(b"\n")?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn pod(deleted: bool) -> PodInfo {
        let now = Utc::now();
        PodInfo {
            name: "api-5d8f9c7b6d-x2x9k".into(),
            namespace: "tenant-1".into(),
            uid: "uid-1".into(),
            app: "api".into(),
            template_hash: "5d8f9c7b6d".into(),
            replicaset_uid: "rs-uid".into(),
            node_name: "node-1".into(),
            pod_ip: "10.0.0.5".into(),
            created: now,
            containers: vec![ContainerInfo {
                name: "api".into(),
                image: "registry.example.com/api:1.4.2".into(),
                restart_count: 2,
                container_id: "ab".repeat(32),
                started_at: now,
            }],
            deleted_at: deleted.then_some(now),
        }
    }

    #[test]
    fn uids_look_like_uuid_v4() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let uid = random_uid(&mut rng);
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
        assert_eq!(uid.matches('-').count(), 4);
        assert_ne!(uid, random_uid(&mut rng));
    }

    #[test]
    fn pod_object_carries_labels_owner_node_and_restarts() {
        let value = pod_object(&pod(false));
        assert_eq!(value["metadata"]["labels"][APP_LABEL], "api");
        assert_eq!(
            value["metadata"]["ownerReferences"][0]["kind"],
            "ReplicaSet"
        );
        assert_eq!(
            value["metadata"]["ownerReferences"][0]["name"],
            "api-5d8f9c7b6d"
        );
        assert_eq!(value["spec"]["nodeName"], "node-1");
        assert_eq!(value["spec"]["containers"][0]["name"], "api");
        assert_eq!(value["status"]["containerStatuses"][0]["restartCount"], 2);
        assert!(value["metadata"].get("deletionTimestamp").is_none());
        assert!(pod_object(&pod(true))["metadata"]["deletionTimestamp"].is_string());
    }

    #[test]
    fn objects_are_written_one_per_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = KubeObjectWriter::create(dir.path()).expect("create");
        let ns = NamespaceInfo {
            name: "tenant-1".into(),
            tenant: "tenant-1".into(),
            uid: "ns-uid".into(),
            created: Utc::now(),
        };
        writer.write_namespace(&ns).expect("namespace");
        writer.write_pod(&pod(false)).expect("pod");
        let read = |p: PathBuf| -> Value {
            serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json")
        };
        let ns_value = read(dir.path().join("namespaces/tenant-1.json"));
        assert_eq!(ns_value["metadata"]["labels"][CUSTOMER_LABEL], "tenant-1");
        assert_eq!(
            ns_value["metadata"]["labels"][HOSTED_CONTROL_PLANE_LABEL],
            "true"
        );
        let pod_value = read(dir.path().join("pods/tenant-1_api-5d8f9c7b6d-x2x9k.json"));
        assert_eq!(pod_value["kind"], "Pod");
        assert!(
            !dir.path()
                .join("pods/tenant-1_api-5d8f9c7b6d-x2x9k.json.tmp")
                .exists()
        );
    }
}
