//! The agent's index of derived pod metadata ([`PodMeta`]), looked up by the UID in a log path.
//!
//! It outlives the API's view of a pod: a deleted pod (or one missing from a relist) is kept as
//! *gone* for at least [`DEFAULT_GONE_RETENTION`] and as long as a file of it is still being read
//! (pinned by the annotator) or its log directory still exists under the pods root, so late and
//! backlogged lines are still enriched. Entries are capped at [`MAX_INDEXED_PODS`]; beyond that the
//! oldest gone entries are evicted (counted). Every change bumps a generation that waiting lines
//! watch.

use super::derive::PodMeta;
use crate::internal_events::metadata::{CacheEvicted, IndexSize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long a gone pod's metadata is kept at least: 120 s, enough for the tailer to
/// drain a deleted pod's files and for lines held back by delivery to be read.
pub const DEFAULT_GONE_RETENTION: Duration = Duration::from_secs(120);

/// Most pods indexed at once, live and gone: 4,096. A node runs at most a few hundred pods
/// (kubelet `maxPods`, 110 by default, 250–500 on large nodes), so this leaves room for many
/// generations of short-lived pods; each entry is roughly 1 KiB (allow-listed fields only).
pub const MAX_INDEXED_PODS: usize = 4096;

/// One indexed pod.
#[derive(Debug, Clone)]
struct Entry {
    meta: Arc<PodMeta>,
    /// When the pod left the API's view (deleted, or missing from a relist, or loaded from the
    /// cache file); `None` while it is live.
    gone_since: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    /// By API UID.
    pods: HashMap<String, Entry>,
    /// Config hash → API UID, for static pods.
    aliases: HashMap<String, String>,
    /// Files being read, per path UID.
    pins: HashMap<String, usize>,
    /// Changed since the cache file was written.
    dirty: bool,
}

/// Derived metadata of the pods on this node, shared by the watchers, the annotator and the
/// selection predicate (a plain mutex: every operation is a few hash lookups).
#[derive(Debug)]
pub struct PodIndex {
    state: Mutex<State>,
    generation: watch::Sender<u64>,
    retention: Duration,
    pods_root: Option<PathBuf>,
}

impl PodIndex {
    /// An empty index keeping gone pods for `retention`, and while their directory exists under
    /// `pods_root` (when given).
    pub fn new(retention: Duration, pods_root: Option<PathBuf>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            generation: watch::Sender::new(0),
            retention,
            pods_root,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain maps behind; their content is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn bump(&self) {
        self.generation.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Watches changes: the value changes whenever a pod is added or updated.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The pod whose log path carries `path_uid` (API UID, or config hash of a static pod), if its
    /// namespace and name match too.
    pub fn lookup(&self, path_uid: &str, namespace: &str, pod_name: &str) -> Option<Arc<PodMeta>> {
        let state = self.lock();
        let uid = state.aliases.get(path_uid).map_or(path_uid, String::as_str);
        let entry = state.pods.get(uid)?;
        (entry.meta.namespace == namespace && entry.meta.name == pod_name)
            .then(|| entry.meta.clone())
    }

    /// Adds or updates a live pod.
    pub fn upsert(&self, meta: PodMeta) {
        let changed = {
            let mut state = self.lock();
            let unchanged = state
                .pods
                .get(&meta.uid)
                .is_some_and(|e| e.gone_since.is_none() && *e.meta == meta);
            if !unchanged {
                insert(&mut state, meta, None);
                state.dirty = true;
                enforce_cap(&mut state);
            }
            !unchanged
        };
        if changed {
            self.bump();
        }
    }

    /// Marks a pod gone (deleted from the API).
    pub fn mark_gone(&self, uid: &str) {
        let mut state = self.lock();
        if let Some(entry) = state.pods.get_mut(uid)
            && entry.gone_since.is_none()
        {
            entry.gone_since = Some(Instant::now());
            state.dirty = true;
        }
    }

    /// After a full relist: marks every live pod not in `listed` (API UIDs) gone.
    pub fn retain_live(&self, listed: &std::collections::HashSet<String>) {
        let now = Instant::now();
        let mut state = self.lock();
        let mut changed = false;
        for (uid, entry) in &mut state.pods {
            if entry.gone_since.is_none() && !listed.contains(uid) {
                entry.gone_since = Some(now);
                changed = true;
            }
        }
        state.dirty |= changed;
    }

    /// Adds pods loaded from the cache file as gone (since now), without replacing live entries.
    pub fn load_gone(&self, pods: Vec<PodMeta>) -> usize {
        let now = Instant::now();
        let mut loaded = 0;
        {
            let mut state = self.lock();
            for meta in pods {
                if state.pods.contains_key(&meta.uid) {
                    continue;
                }
                insert(&mut state, meta, Some(now));
                loaded += 1;
            }
            enforce_cap(&mut state);
        }
        if loaded > 0 {
            self.bump();
        }
        loaded
    }

    /// A file of the pod with `path_uid` is being read: keep its metadata while it is.
    pub fn pin_file(&self, path_uid: &str) {
        *self.lock().pins.entry(path_uid.to_owned()).or_default() += 1;
    }

    /// A file pinned with [`PodIndex::pin_file`] was closed (drained).
    pub fn unpin_file(&self, path_uid: &str) {
        let mut state = self.lock();
        if let Some(count) = state.pins.get_mut(path_uid) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.pins.remove(path_uid);
            }
        }
    }

    /// Forgets gone pods older than the retention whose files are neither pinned nor still on disk;
    /// returns how many were forgotten.
    pub fn collect_garbage(&self) -> usize {
        let now = Instant::now();
        let candidates: Vec<Arc<PodMeta>> = {
            let state = self.lock();
            state
                .pods
                .values()
                .filter(|e| {
                    e.gone_since
                        .is_some_and(|t| now.duration_since(t) >= self.retention)
                })
                .filter(|e| !e.meta.path_uids().any(|uid| state.pins.contains_key(uid)))
                .map(|e| e.meta.clone())
                .collect()
        };
        // Directory checks outside the lock (they touch the filesystem).
        let removable: Vec<String> = candidates
            .into_iter()
            .filter(|meta| !self.has_log_dir(meta))
            .map(|meta| meta.uid.clone())
            .collect();
        let mut state = self.lock();
        let mut removed = 0;
        for uid in removable {
            let still_gone = state.pods.get(&uid).is_some_and(|e| e.gone_since.is_some());
            if still_gone {
                remove(&mut state, &uid);
                removed += 1;
            }
        }
        state.dirty |= removed > 0;
        removed
    }

    fn has_log_dir(&self, meta: &PodMeta) -> bool {
        let Some(root) = &self.pods_root else {
            return false;
        };
        meta.path_uids().any(|uid| {
            root.join(pod_dir_name(&meta.namespace, &meta.name, uid))
                .is_dir()
        })
    }

    /// Every indexed pod (for the cache file), and clears the changed flag.
    pub fn take_snapshot(&self) -> Vec<PodMeta> {
        let mut state = self.lock();
        state.dirty = false;
        let mut pods: Vec<PodMeta> = state.pods.values().map(|e| (*e.meta).clone()).collect();
        pods.sort_by(|a, b| a.uid.cmp(&b.uid));
        pods
    }

    /// True when something changed since the last [`PodIndex::take_snapshot`].
    pub fn is_dirty(&self) -> bool {
        self.lock().dirty
    }

    /// Marks the index changed (e.g. after a failed save, so the next round retries).
    pub fn mark_dirty(&self) {
        self.lock().dirty = true;
    }

    /// Live and gone pods indexed.
    pub fn size(&self) -> IndexSize {
        let state = self.lock();
        let gone = state
            .pods
            .values()
            .filter(|e| e.gone_since.is_some())
            .count();
        IndexSize {
            live: state.pods.len() - gone,
            gone,
            pinned_files: state.pins.values().sum(),
        }
    }

    /// Whether the pod with this API UID is indexed as live.
    pub fn is_live(&self, uid: &str) -> bool {
        self.lock()
            .pods
            .get(uid)
            .is_some_and(|e| e.gone_since.is_none())
    }
}

/// The kubelet's pod log directory name: `<namespace>_<pod name>_<uid>`.
pub fn pod_dir_name(namespace: &str, pod_name: &str, uid: &str) -> String {
    format!("{namespace}_{pod_name}_{uid}")
}

fn insert(state: &mut State, meta: PodMeta, gone_since: Option<Instant>) {
    let uid = meta.uid.clone();
    if let Some(old) = state.pods.get(&uid)
        && let Some(hash) = old.meta.config_hash.clone()
    {
        state.aliases.remove(&hash);
    }
    if let Some(hash) = &meta.config_hash {
        state.aliases.insert(hash.clone(), uid.clone());
    }
    state.pods.insert(
        uid,
        Entry {
            meta: Arc::new(meta),
            gone_since,
        },
    );
}

fn remove(state: &mut State, uid: &str) {
    if let Some(entry) = state.pods.remove(uid)
        && let Some(hash) = &entry.meta.config_hash
        && state.aliases.get(hash).is_some_and(|u| u == uid)
    {
        state.aliases.remove(hash);
    }
}

/// Evicts the oldest gone pods while over [`MAX_INDEXED_PODS`]. Live pods are never evicted
/// (they are bounded by the node's pod capacity).
fn enforce_cap(state: &mut State) {
    let excess = state.pods.len().saturating_sub(MAX_INDEXED_PODS);
    if excess == 0 {
        return;
    }
    let mut gone: Vec<(Instant, String)> = state
        .pods
        .iter()
        .filter_map(|(uid, e)| e.gone_since.map(|t| (t, uid.clone())))
        .collect();
    gone.sort();
    let evicted = gone.len().min(excess);
    for (_, uid) in gone.into_iter().take(evicted) {
        remove(state, &uid);
    }
    if evicted > 0 {
        CacheEvicted { pods: evicted }.emit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::select::PodSelection;

    pub(crate) fn meta(uid: &str, name: &str) -> PodMeta {
        PodMeta {
            namespace: "ns".into(),
            name: name.into(),
            uid: uid.into(),
            config_hash: None,
            customer_id: "acme".into(),
            application: Some("api".into()),
            owner: None,
            node_name: None,
            labels: Default::default(),
            annotations: Default::default(),
            images: Default::default(),
            selection: PodSelection::default(),
            multiline: None,
        }
    }

    #[test]
    fn lookup_needs_matching_uid_namespace_and_name() {
        let index = PodIndex::new(DEFAULT_GONE_RETENTION, None);
        index.upsert(meta("u1", "p1"));
        assert!(index.lookup("u1", "ns", "p1").is_some());
        assert!(index.lookup("u1", "ns", "other").is_none());
        assert!(index.lookup("u1", "other", "p1").is_none());
        assert!(index.lookup("u2", "ns", "p1").is_none());
    }

    #[test]
    fn static_pods_are_found_by_config_hash() {
        let index = PodIndex::new(DEFAULT_GONE_RETENTION, None);
        index.upsert(PodMeta {
            config_hash: Some("hash".into()),
            ..meta("mirror", "etcd")
        });
        assert_eq!(
            index
                .lookup("hash", "ns", "etcd")
                .map(|m| m.uid.clone())
                .as_deref(),
            Some("mirror")
        );
        assert!(index.lookup("mirror", "ns", "etcd").is_some());
    }

    #[test]
    fn upsert_bumps_the_generation_only_on_change() {
        let index = PodIndex::new(DEFAULT_GONE_RETENTION, None);
        let rx = index.subscribe();
        index.upsert(meta("u1", "p1"));
        let first = *rx.borrow();
        index.upsert(meta("u1", "p1"));
        assert_eq!(*rx.borrow(), first);
        index.upsert(PodMeta {
            customer_id: "other".into(),
            ..meta("u1", "p1")
        });
        assert_ne!(*rx.borrow(), first);
    }

    #[tokio::test(start_paused = true)]
    async fn gone_pods_are_kept_for_the_retention_and_while_pinned() {
        let index = PodIndex::new(DEFAULT_GONE_RETENTION, None);
        index.upsert(meta("u1", "p1"));
        index.upsert(meta("u2", "p2"));
        index.pin_file("u2");
        index.mark_gone("u1");
        index.mark_gone("u2");
        tokio::time::advance(DEFAULT_GONE_RETENTION - Duration::from_secs(1)).await;
        assert_eq!(index.collect_garbage(), 0);
        assert!(
            index.lookup("u1", "ns", "p1").is_some(),
            "still within the retention"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(index.collect_garbage(), 1);
        assert!(index.lookup("u1", "ns", "p1").is_none());
        assert!(
            index.lookup("u2", "ns", "p2").is_some(),
            "pinned by an open file"
        );
        index.unpin_file("u2");
        assert_eq!(index.collect_garbage(), 1);
        assert_eq!(index.size().live + index.size().gone, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn gone_pods_with_a_log_directory_are_kept() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join(pod_dir_name("ns", "p1", "u1"))).expect("mkdir");
        let index = PodIndex::new(Duration::ZERO, Some(root.path().to_path_buf()));
        index.upsert(meta("u1", "p1"));
        index.mark_gone("u1");
        assert_eq!(index.collect_garbage(), 0);
        std::fs::remove_dir(root.path().join(pod_dir_name("ns", "p1", "u1"))).expect("rmdir");
        assert_eq!(index.collect_garbage(), 1);
    }

    #[test]
    fn relist_marks_missing_pods_gone_and_reappearing_pods_live() {
        let index = PodIndex::new(DEFAULT_GONE_RETENTION, None);
        index.upsert(meta("u1", "p1"));
        index.upsert(meta("u2", "p2"));
        index.retain_live(&["u2".to_string()].into_iter().collect());
        assert!(!index.is_live("u1"));
        assert!(index.is_live("u2"));
        index.upsert(meta("u1", "p1"));
        assert!(index.is_live("u1"));
    }

    #[test]
    fn loaded_pods_do_not_replace_live_ones_and_the_cap_evicts_gone_first() {
        let index = PodIndex::new(DEFAULT_GONE_RETENTION, None);
        index.upsert(PodMeta {
            customer_id: "live".into(),
            ..meta("u1", "p1")
        });
        assert_eq!(index.load_gone(vec![meta("u1", "p1"), meta("u2", "p2")]), 1);
        assert_eq!(
            index
                .lookup("u1", "ns", "p1")
                .map(|m| m.customer_id.clone())
                .as_deref(),
            Some("live")
        );
        let many: Vec<PodMeta> = (0..MAX_INDEXED_PODS + 10)
            .map(|i| meta(&format!("g{i}"), "p"))
            .collect();
        index.load_gone(many);
        let size = index.size();
        assert_eq!(size.live + size.gone, MAX_INDEXED_PODS);
        assert!(index.is_live("u1"), "live pods are never evicted");
    }
}
