//! Path helpers: which files under the pods root are container logs, what kind (live, rotated,
//! compressed), and the pod metadata the kubelet encodes in the path:
//! `<root>/<namespace>_<pod name>_<pod uid>/<container>/<restart count>.log[.<rotation suffix>[.gz]]`.
//!
//! Layout: the kubelet's `BuildPodLogsDirectory` / `BuildContainerLogsDirectory`
//! (<https://github.com/kubernetes/kubernetes/blob/master/pkg/kubelet/kuberuntime/helpers.go>) and its
//! log rotation (`pkg/kubelet/logs/container_log_manager.go`: `0.log` → `0.log.YYYYMMDD-HHMMSS`, older
//! ones gzipped via a `.tmp` file). Namespaces, pod names and UIDs cannot contain `_`.

use std::path::Path;

/// Stands in for metadata the path does not give (a file outside the kubelet's layout).
pub const UNKNOWN: &str = "_unknown";

/// What a log file is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// The file the container is writing: `N.log`.
    Live,
    /// A rotated file, still plain text: `N.log.<suffix>`. The kubelet gzips or deletes it next.
    Rotated,
    /// A gzipped rotated file: `N.log.<suffix>.gz`.
    Compressed,
}

impl FileKind {
    /// The name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Live => "live",
            FileKind::Rotated => "rotated",
            FileKind::Compressed => "compressed",
        }
    }
}

/// Classifies a file name matching `*.log*`; `None` for anything else, hidden files and `*.tmp`
/// (the kubelet's half-written `.gz`).
pub fn classify(name: &str) -> Option<FileKind> {
    if name.starts_with('.') || name.ends_with(".tmp") || !name.contains(".log") {
        return None;
    }
    Some(if name.ends_with(".log") {
        FileKind::Live
    } else if name.ends_with(".gz") {
        FileKind::Compressed
    } else {
        FileKind::Rotated
    })
}

/// The pod metadata a log file's path carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodLogPath {
    /// The pod directory's name (`<namespace>_<pod>_<uid>`): unique per pod on the node.
    pub pod_dir: String,
    /// Kubernetes namespace, or [`UNKNOWN`].
    pub namespace: String,
    /// Pod name, or [`UNKNOWN`].
    pub pod_name: String,
    /// Pod UID, when the directory name has one.
    pub pod_uid: Option<String>,
    /// Container name (the container directory's name).
    pub container_name: String,
    /// How often the container restarted before writing this file (the `N` in `N.log`).
    pub restart_count: Option<u32>,
}

impl PodLogPath {
    /// Reads the metadata from `path`, a file three levels below `root`; parts that do not fit the
    /// kubelet's layout become [`UNKNOWN`].
    pub fn from_path(root: &Path, path: &Path) -> Self {
        let parts: Vec<String> = path
            .strip_prefix(root)
            .unwrap_or(path)
            .components()
            .map(|part| part.as_os_str().to_string_lossy().into_owned())
            .collect();
        let (pod_dir, container_name, file_name) = match parts.as_slice() {
            [.., pod, container, file] => (pod.clone(), container.clone(), file.as_str()),
            _ => (
                UNKNOWN.to_string(),
                UNKNOWN.to_string(),
                parts.last().map_or("", String::as_str),
            ),
        };
        let (namespace, pod_name, pod_uid) = split_pod_dir(&pod_dir);
        let restart_count = file_name
            .split_once(".log")
            .and_then(|(count, _)| count.parse().ok());
        Self {
            pod_dir,
            namespace,
            pod_name,
            pod_uid,
            container_name,
            restart_count,
        }
    }
}

/// Splits `<namespace>_<pod>_<uid>`; the pod name may not contain `_` either, but the UID is taken
/// from the right so that a stray `_` lands in the pod name rather than losing the UID.
fn split_pod_dir(dir: &str) -> (String, String, Option<String>) {
    let parsed = dir.split_once('_').and_then(|(namespace, rest)| {
        let (pod, uid) = rest.rsplit_once('_')?;
        (!namespace.is_empty() && !pod.is_empty() && !uid.is_empty())
            .then_some((namespace, pod, uid))
    });
    match parsed {
        Some((namespace, pod, uid)) => (namespace.into(), pod.into(), Some(uid.into())),
        None => (UNKNOWN.into(), UNKNOWN.into(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn kubelet_names_are_classified() {
        assert_eq!(classify("0.log"), Some(FileKind::Live));
        assert_eq!(classify("12.log"), Some(FileKind::Live));
        assert_eq!(classify("0.log.20240101-120000"), Some(FileKind::Rotated));
        assert_eq!(classify("0.log-20240101"), Some(FileKind::Rotated));
        assert_eq!(classify("0.log.1"), Some(FileKind::Rotated));
        assert_eq!(
            classify("0.log.20240101-120000.gz"),
            Some(FileKind::Compressed)
        );
        assert_eq!(classify("0.log.20240101-120000.gz.tmp"), None);
        assert_eq!(classify("0.log.tmp"), None);
        assert_eq!(classify(".0.log.swp"), None);
        assert_eq!(classify("README"), None);
    }

    #[test]
    fn metadata_is_read_from_the_kubelet_layout() {
        let root = PathBuf::from("/var/log/pods");
        let path = root.join(
            "shop_api-7d9f-x2_0a1b2c3d-1111-2222-3333-444455556666/server/3.log.20240101-120000",
        );
        let meta = PodLogPath::from_path(&root, &path);
        assert_eq!(
            meta.pod_dir,
            "shop_api-7d9f-x2_0a1b2c3d-1111-2222-3333-444455556666"
        );
        assert_eq!(meta.namespace, "shop");
        assert_eq!(meta.pod_name, "api-7d9f-x2");
        assert_eq!(
            meta.pod_uid.as_deref(),
            Some("0a1b2c3d-1111-2222-3333-444455556666")
        );
        assert_eq!(meta.container_name, "server");
        assert_eq!(meta.restart_count, Some(3));
    }

    #[test]
    fn paths_outside_the_layout_get_unknown_metadata() {
        let root = PathBuf::from("/logs");
        let meta = PodLogPath::from_path(&root, &root.join("not-a-pod-dir/c/app.log"));
        assert_eq!(
            (
                meta.namespace.as_str(),
                meta.pod_name.as_str(),
                meta.pod_uid
            ),
            (UNKNOWN, UNKNOWN, None)
        );
        assert_eq!(meta.container_name, "c");
        assert_eq!(meta.restart_count, None);
        let shallow = PodLogPath::from_path(&root, &root.join("0.log"));
        assert_eq!(
            (shallow.pod_dir.as_str(), shallow.container_name.as_str()),
            (UNKNOWN, UNKNOWN)
        );
        assert_eq!(shallow.restart_count, Some(0));
    }
}
