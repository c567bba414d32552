//! The simulated node of `logrelay-testgen pods`: tenants' namespaces, Deployment pods with their
//! containers, and each container's log files under the kubelet layout
//! `<root>/<namespace>_<pod>_<uid>/<container>/<restart>.log`.
//!
//! It writes one logical line at a time to a random container, numbering lines per
//! (namespace, pod, container, stream) source, and simulates churn: a pod deleted (its Pod object
//! marked, its directory removed after a delay) and replaced by a new pod of the same ReplicaSet,
//! and a container restarted (the next lines go to `<restart + 1>.log`; older restarts' files are
//! kept until the pod's directory is removed).
//!
//! Two writers: [`WriterKind::Simple`] writes each logical line's CRI or Docker entries in one go
//! from the generator's thread; [`WriterKind::Containerd`] hands lines to two writer threads per
//! container like containerd ([`crate::containerd`]), seals every line ([`crate::seal`]), adds long
//! lines with multi-byte characters across the 16 KiB cuts, and records in the ledger which file
//! held which lines, when files were deleted and which lines `copytruncate` lost.

use crate::containerd::{ContainerLog, LineJob, Rotation, RotationMode, Segment, StreamRange};
use crate::content::{self, ContentGenerator};
use crate::kube_objects::{self, ContainerInfo, KubeObjectWriter, NamespaceInfo, PodInfo};
use crate::ledger::{Book, ExcusedRange, FileRecord, Ledger, LineRange, SourceHandle, SourceMeta};
use crate::rotation::{RotatingLog, RotationCounts, RotationPolicy};
use crate::seq::{self, SeqToken};
use crate::{cri, docker, seal};
use chrono::{DateTime, Utc};
use logrelay_common::record::Stream;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Application names given to each namespace's Deployments, in order.
const APPS: &[&str] = &[
    "api",
    "web",
    "worker",
    "billing",
    "auth",
    "search",
    "checkout",
    "inventory",
    "gateway",
    "notifier",
];

/// Names of the containers after the first (which is named after the application).
const SIDECARS: &[&str] = &[
    "proxy",
    "metrics-exporter",
    "config-reloader",
    "oauth-proxy",
];

/// Length of a ReplicaSet's `pod-template-hash` and of a pod name's random suffix (Kubernetes').
const TEMPLATE_HASH_LEN: usize = 10;
const POD_SUFFIX_LEN: usize = 5;

/// The on-disk line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// CRI (containerd, CRI-O): `<time> <stream> <P|F> <message>`.
    #[default]
    Cri,
    /// Docker json-file: `{"log":"…\n","stream":"…","time":"…"}`.
    Docker,
}

/// How lines reach the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum WriterKind {
    /// Each logical line's entries written at once from one thread, in CRI or Docker format.
    #[default]
    Simple,
    /// containerd's CRI logger: one writer thread per stream, entries of the two streams
    /// interleaved, sealed lines, ledger of files and of lines lost by rotation.
    Containerd,
}

/// Why the ledger excuses lines lost by `copytruncate` between its copy and its truncation.
pub const EXCUSED_COPYTRUNCATE: &str = "copytruncate";

/// A file-system operation of the simulation failed.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct ClusterIoError {
    /// What was being done.
    pub action: &'static str,
    /// The path involved.
    pub path: PathBuf,
    /// The underlying error.
    pub source: std::io::Error,
}

/// Everything the simulation needs besides the random generator.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Root of the pod log tree (`/var/log/pods` on a node).
    pub root: PathBuf,
    /// Line format on disk.
    pub format: LogFormat,
    /// Tenants, each owning `namespaces_per_tenant` namespaces.
    pub tenants: Vec<String>,
    /// Namespaces per tenant (named `<tenant>` when 1, `<tenant>-<n>` otherwise).
    pub namespaces_per_tenant: usize,
    /// Pods (one per Deployment) per namespace.
    pub pods_per_namespace: usize,
    /// Containers per pod.
    pub containers_per_pod: usize,
    /// Rotation of each container's log.
    pub rotation: RotationPolicy,
    /// Node name in Pod objects.
    pub node_name: String,
    /// Where Kubernetes objects go, if anywhere.
    pub kube_objects: Option<PathBuf>,
    /// Message text generator.
    pub content: ContentGenerator,
    /// How lines reach the files.
    pub writer: WriterKind,
    /// How the containerd-like writer's files are rotated.
    pub rotation_mode: RotationMode,
    /// Share of lines (containerd-like writer) of 16 KiB to a few hundred KiB with multi-byte
    /// characters across the 16 KiB cuts.
    pub long_line_ratio: f64,
}

/// What the simulation has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterCounts {
    /// Pods created (including the initial ones).
    pub pods_created: u64,
    /// Pods deleted by churn.
    pub pods_deleted: u64,
    /// Container restarts.
    pub restarts: u64,
    /// Pod directories removed.
    pub dirs_removed: u64,
    /// Rotation work summed over all containers.
    pub rotation: RotationCounts,
}

enum LogWriter {
    Simple(RotatingLog),
    Containerd(ContainerLog),
}

impl LogWriter {
    fn open(dir: &Path, restart: u32, config: &ClusterConfig) -> std::io::Result<Self> {
        Ok(match config.writer {
            WriterKind::Simple => {
                LogWriter::Simple(RotatingLog::open(dir, restart, config.rotation)?)
            }
            WriterKind::Containerd => LogWriter::Containerd(ContainerLog::open(
                dir,
                restart,
                config.rotation,
                config.rotation_mode,
            )?),
        })
    }

    fn counts(&self) -> RotationCounts {
        match self {
            LogWriter::Simple(log) => log.counts(),
            LogWriter::Containerd(log) => log.counts(),
        }
    }
}

struct SimContainer {
    log: LogWriter,
    dir: PathBuf,
    /// `<pod dir>/<container>` under the root, for the ledger's file records.
    rel_dir: String,
    stdout: SourceHandle,
    stderr: SourceHandle,
}

impl SimContainer {
    fn source(&self, stream: Stream) -> SourceHandle {
        match stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        }
    }
}

struct SimPod {
    info: PodInfo,
    tenant: String,
    dir: PathBuf,
    containers: Vec<SimContainer>,
}

/// The simulated node: live pods, their log files and the ledger book.
pub struct Cluster {
    rng: ChaCha8Rng,
    config: ClusterConfig,
    objects: Option<KubeObjectWriter>,
    namespaces: Vec<NamespaceInfo>,
    pods: Vec<SimPod>,
    removals: Vec<(Instant, PathBuf)>,
    book: Book,
    line: Vec<u8>,
    counts: ClusterCounts,
    files: Vec<FileRecord>,
    excused: Vec<ExcusedRange>,
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ClusterIoError {
    let path = path.to_path_buf();
    move |source| ClusterIoError {
        action,
        path,
        source,
    }
}

impl Cluster {
    /// Creates the namespaces and initial pods (directories, log files, objects).
    pub fn start(config: ClusterConfig, rng: ChaCha8Rng) -> Result<Self, ClusterIoError> {
        std::fs::create_dir_all(&config.root).map_err(io_err("creating", &config.root))?;
        let objects = match &config.kube_objects {
            Some(dir) => Some(KubeObjectWriter::create(dir).map_err(io_err("creating", dir))?),
            None => None,
        };
        let mut cluster = Cluster {
            rng,
            objects,
            namespaces: Vec::new(),
            pods: Vec::new(),
            removals: Vec::new(),
            book: Book::new("pods"),
            line: Vec::new(),
            counts: ClusterCounts::default(),
            files: Vec::new(),
            excused: Vec::new(),
            config,
        };
        let now = Utc::now();
        for tenant in cluster.config.tenants.clone() {
            for n in 1..=cluster.config.namespaces_per_tenant {
                let name = match cluster.config.namespaces_per_tenant {
                    1 => tenant.clone(),
                    _ => format!("{tenant}-{n}"),
                };
                let ns = NamespaceInfo {
                    name,
                    tenant: tenant.clone(),
                    uid: kube_objects::random_uid(&mut cluster.rng),
                    created: now,
                };
                if let Some(objects) = &cluster.objects {
                    objects
                        .write_namespace(&ns)
                        .map_err(io_err("writing", &objects.namespace_path(&ns.name)))?;
                }
                cluster.namespaces.push(ns);
            }
        }
        for ns_index in 0..cluster.namespaces.len() {
            for p in 0..cluster.config.pods_per_namespace {
                let app = match p / APPS.len() {
                    0 => APPS[p % APPS.len()].to_string(),
                    k => format!("{}-{k}", APPS[p % APPS.len()]),
                };
                let hash = kube_objects::random_suffix(&mut cluster.rng, TEMPLATE_HASH_LEN);
                let rs_uid = kube_objects::random_uid(&mut cluster.rng);
                cluster.create_pod(ns_index, &app, &hash, &rs_uid, now)?;
            }
        }
        Ok(cluster)
    }

    fn create_pod(
        &mut self,
        ns_index: usize,
        app: &str,
        template_hash: &str,
        replicaset_uid: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ClusterIoError> {
        let Some(ns) = self.namespaces.get(ns_index) else {
            return Ok(());
        };
        let (namespace, tenant) = (ns.name.clone(), ns.tenant.clone());
        let name = format!(
            "{app}-{template_hash}-{}",
            kube_objects::random_suffix(&mut self.rng, POD_SUFFIX_LEN)
        );
        let uid = kube_objects::random_uid(&mut self.rng);
        let dir = self.config.root.join(format!("{namespace}_{name}_{uid}"));
        let mut infos = Vec::new();
        let mut containers = Vec::new();
        for c in 0..self.config.containers_per_pod.max(1) {
            let container = match c {
                0 => app.to_string(),
                c if c <= SIDECARS.len() => SIDECARS[c - 1].to_string(),
                c => format!("sidecar-{c}"),
            };
            let container_dir = dir.join(&container);
            std::fs::create_dir_all(&container_dir).map_err(io_err("creating", &container_dir))?;
            let log = LogWriter::open(&container_dir, 0, &self.config)
                .map_err(io_err("opening", &container_dir.join("0.log")))?;
            let mut source = |stream: Stream| {
                self.book.register(SourceMeta {
                    source: seq::source_id(&[&namespace, &name, &container, stream.as_str()]),
                    customer_id: tenant.clone(),
                    cluster_id: None,
                    namespace: namespace.clone(),
                    pod: name.clone(),
                    pod_uid: Some(uid.clone()),
                    container: container.clone(),
                    stream: Some(stream),
                    application: app.to_string(),
                })
            };
            let (stdout, stderr) = (source(Stream::Stdout), source(Stream::Stderr));
            containers.push(SimContainer {
                log,
                rel_dir: format!("{}/{container}", relative(&self.config.root, &dir)),
                dir: container_dir,
                stdout,
                stderr,
            });
            let image_version = format!(
                "1.{}.{}",
                self.rng.random_range(0..20),
                self.rng.random_range(0..10)
            );
            infos.push(ContainerInfo {
                image: format!("registry.example.com/{container}:{image_version}"),
                name: container,
                restart_count: 0,
                container_id: random_container_id(&mut self.rng),
                started_at: now,
            });
        }
        let info = PodInfo {
            name,
            namespace,
            uid,
            app: app.to_string(),
            template_hash: template_hash.to_string(),
            replicaset_uid: replicaset_uid.to_string(),
            node_name: self.config.node_name.clone(),
            pod_ip: format!(
                "10.128.{}.{}",
                self.rng.random_range(0..=255),
                self.rng.random_range(2..=254)
            ),
            created: now,
            containers: infos,
            deleted_at: None,
        };
        self.write_pod_object(&info)?;
        self.pods.push(SimPod {
            info,
            tenant,
            dir,
            containers,
        });
        self.counts.pods_created += 1;
        Ok(())
    }

    fn write_pod_object(&self, info: &PodInfo) -> Result<(), ClusterIoError> {
        match &self.objects {
            Some(objects) => objects.write_pod(info).map_err(io_err(
                "writing",
                &objects.pod_path(&info.namespace, &info.name),
            )),
            None => Ok(()),
        }
    }

    /// Writes one logical line to a random container; returns the bytes written to disk.
    pub fn write_line(&mut self) -> Result<usize, ClusterIoError> {
        if self.pods.is_empty() {
            return Ok(0);
        }
        let pod_index = self.rng.random_range(0..self.pods.len());
        let containers = self.pods[pod_index].containers.len();
        let container_index = self.rng.random_range(0..containers);
        let level = self.config.content.pick_level(&mut self.rng);
        let long = self.config.writer == WriterKind::Containerd
            && self
                .rng
                .random_bool(self.config.long_line_ratio.clamp(0.0, 1.0));
        let stream = match long {
            // Long lines on both streams alike, so each stream's lines are cut by the other's.
            true if self.rng.random_bool(0.5) => Stream::Stderr,
            true => Stream::Stdout,
            false => self.config.content.pick_stream(&mut self.rng, level),
        };
        let handle = self.pods[pod_index].containers[container_index].source(stream);
        let seq = self.book.next_seq(handle);
        let token = SeqToken {
            source: self.book.source_id(handle),
            seq,
        };
        let now = Utc::now();
        let container = &mut self.pods[pod_index].containers[container_index];
        match &mut container.log {
            LogWriter::Simple(log) => {
                let message = self
                    .config
                    .content
                    .render(&mut self.rng, level, &token, now);
                self.line.clear();
                match self.config.format {
                    LogFormat::Cri => {
                        cri::encode_line(&mut self.line, &now, stream, message.as_bytes())
                    }
                    LogFormat::Docker => {
                        docker::encode_line(&mut self.line, &now, stream, &message)
                    }
                }
                let path = log.path();
                log.write_line(&self.line, now)
                    .map_err(io_err("writing", &path))?;
                Ok(self.line.len())
            }
            LogWriter::Containerd(log) => {
                let message = match long {
                    true => {
                        let len = content::long_line_len(&mut self.rng);
                        let mut line = content::cut_point_line(
                            &mut self.rng,
                            level,
                            &token,
                            &seal::placeholder(),
                            len,
                            cri::MAX_CHUNK_BYTES,
                            now,
                        )
                        .into_bytes();
                        seal::fill(&mut line);
                        line
                    }
                    false => {
                        let text = self
                            .config
                            .content
                            .render(&mut self.rng, level, &token, now);
                        seal::insert_after_token(&text, &token).into_bytes()
                    }
                };
                let entries = message.len().div_ceil(cri::MAX_CHUNK_BYTES).max(1);
                let bytes = message.len() + entries * CRI_ENTRY_OVERHEAD;
                log.send(stream, LineJob { seq, message });
                Ok(bytes)
            }
        }
    }

    /// Flushes every live container's log so readers see all lines written.
    pub fn flush(&mut self) -> Result<(), ClusterIoError> {
        for container in self.pods.iter_mut().flat_map(|p| p.containers.iter_mut()) {
            if let LogWriter::Simple(log) = &mut container.log {
                let path = log.path();
                log.flush().map_err(io_err("flushing", &path))?;
            }
        }
        Ok(())
    }

    /// Rotates the containerd-like writer's files that reached the size limit (the kubelet's
    /// periodic check; the simple writer rotates as it writes).
    pub fn maintain(&mut self) -> Result<(), ClusterIoError> {
        let mut rotations = Vec::new();
        for container in self.pods.iter_mut().flat_map(|p| p.containers.iter_mut()) {
            if let LogWriter::Containerd(log) = &mut container.log {
                let path = log.path();
                if let Some(rotation) = log.maintain().map_err(io_err("rotating", &path))? {
                    rotations.push((
                        container.rel_dir.clone(),
                        [container.stdout, container.stderr],
                        rotation,
                    ));
                }
            }
        }
        for (rel_dir, handles, rotation) in rotations {
            self.record_rotation(&rel_dir, handles, rotation);
        }
        Ok(())
    }

    fn record_rotation(&mut self, rel_dir: &str, handles: [SourceHandle; 2], rotation: Rotation) {
        let now = Utc::now();
        for name in &rotation.deleted {
            let name = name
                .strip_suffix(crate::rotation::COMPRESSED_SUFFIX)
                .unwrap_or(name);
            let path = format!("{rel_dir}/{name}");
            if let Some(record) = self
                .files
                .iter_mut()
                .find(|f| f.path == path && f.deleted_at.is_none())
            {
                record.deleted_at = Some(now);
            }
        }
        for range in rotation.excused {
            let lines = self.line_range(handles, range);
            self.excused.push(ExcusedRange {
                lines,
                reason: EXCUSED_COPYTRUNCATE.to_string(),
            });
        }
        if let Some(segment) = rotation.segment {
            self.record_segment(rel_dir, handles, segment);
        }
    }

    fn record_segment(&mut self, rel_dir: &str, handles: [SourceHandle; 2], segment: Segment) {
        let lines = segment
            .lines
            .iter()
            .map(|r| self.line_range(handles, *r))
            .collect();
        self.files.push(FileRecord {
            path: format!("{rel_dir}/{}", segment.name),
            lines,
            bytes: segment.bytes,
            line_count: segment.line_count,
            deleted_at: None,
        });
    }

    fn line_range(&self, [stdout, stderr]: [SourceHandle; 2], range: StreamRange) -> LineRange {
        let handle = match range.stream {
            Stream::Stdout => stdout,
            Stream::Stderr => stderr,
        };
        LineRange {
            source: self.book.source_id(handle).to_string(),
            first: range.first,
            last: range.last,
        }
    }

    /// Stops a container's writer after its last line and records what its live file holds.
    fn close_log(
        &mut self,
        log: LogWriter,
        rel_dir: &str,
        handles: [SourceHandle; 2],
    ) -> Result<(), ClusterIoError> {
        add_counts(&mut self.counts.rotation, log.counts());
        match log {
            LogWriter::Simple(mut log) => {
                let path = log.path();
                log.flush().map_err(io_err("flushing", &path))
            }
            LogWriter::Containerd(log) => {
                let segment = log.close();
                self.record_segment(rel_dir, handles, segment);
                Ok(())
            }
        }
    }

    /// Stops every container's writer after its last line (call before the final ledger).
    pub fn close(&mut self) -> Result<(), ClusterIoError> {
        for pod in std::mem::take(&mut self.pods) {
            for container in pod.containers {
                let handles = [container.stdout, container.stderr];
                self.close_log(container.log, &container.rel_dir, handles)?;
            }
        }
        Ok(())
    }

    /// One churn step: replace a random pod (deleting the old one, its directory removed at
    /// `remove_at`) and restart a random container of another random pod.
    pub fn churn(&mut self, remove_at: Instant) -> Result<(), ClusterIoError> {
        if self.pods.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let victim = self.rng.random_range(0..self.pods.len());
        let mut pod = self.pods.swap_remove(victim);
        for container in std::mem::take(&mut pod.containers) {
            let handles = [container.stdout, container.stderr];
            self.close_log(container.log, &container.rel_dir, handles)?;
        }
        pod.info.deleted_at = Some(now);
        self.write_pod_object(&pod.info)?;
        self.removals.push((remove_at, pod.dir.clone()));
        self.counts.pods_deleted += 1;
        let ns_index = self
            .namespaces
            .iter()
            .position(|n| n.name == pod.info.namespace)
            .unwrap_or(0);
        self.create_pod(
            ns_index,
            &pod.info.app,
            &pod.info.template_hash,
            &pod.info.replicaset_uid,
            now,
        )?;
        tracing::debug!(tenant = %pod.tenant, pod = %pod.info.name, "pod replaced");

        let target = self.rng.random_range(0..self.pods.len());
        let container_index = self.rng.random_range(0..self.pods[target].containers.len());
        let pod = &mut self.pods[target];
        let (container, info) = (
            &mut pod.containers[container_index],
            &mut pod.info.containers[container_index],
        );
        info.restart_count += 1;
        info.container_id = random_container_id(&mut self.rng);
        info.started_at = now;
        let new_log = LogWriter::open(&container.dir, info.restart_count, &self.config)
            .map_err(io_err("opening", &container.dir))?;
        let old_log = std::mem::replace(&mut container.log, new_log);
        let (rel_dir, handles) = (
            container.rel_dir.clone(),
            [container.stdout, container.stderr],
        );
        let info = pod.info.clone();
        self.close_log(old_log, &rel_dir, handles)?;
        self.counts.restarts += 1;
        self.write_pod_object(&info)
    }

    /// Removes the directories of deleted pods whose delay has passed.
    pub fn remove_due(&mut self, now: Instant) -> Result<(), ClusterIoError> {
        let (due, waiting): (Vec<_>, Vec<_>) =
            self.removals.drain(..).partition(|(at, _)| *at <= now);
        self.removals = waiting;
        for (_, dir) in due {
            std::fs::remove_dir_all(&dir).map_err(io_err("removing", &dir))?;
            self.counts.dirs_removed += 1;
            let prefix = format!("{}/", relative(&self.config.root, &dir));
            let deleted_at = Utc::now();
            for record in self
                .files
                .iter_mut()
                .filter(|f| f.deleted_at.is_none() && f.path.starts_with(&prefix))
            {
                record.deleted_at = Some(deleted_at);
            }
        }
        Ok(())
    }

    /// What the simulation has done so far (rotation counts include live containers).
    pub fn counts(&self) -> ClusterCounts {
        let mut counts = self.counts;
        for container in self.pods.iter().flat_map(|p| p.containers.iter()) {
            add_counts(&mut counts.rotation, container.log.counts());
        }
        counts
    }

    /// The ledger of all lines written so far.
    pub fn ledger(&self, complete: bool) -> Ledger {
        let mut ledger = self.book.snapshot(complete, Utc::now());
        if self.config.writer == WriterKind::Containerd {
            ledger.sealed = true;
            ledger.files = self.files.clone();
            ledger.excused = self.excused.clone();
        }
        ledger
    }
}

/// `path` below `root` with `/` separators (the pods root's layout).
fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.iter()
        .map(|p| p.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Bytes a CRI entry adds to its content: RFC 3339 time (up to 30), stream, tag, spaces, newline.
const CRI_ENTRY_OVERHEAD: usize = 41;

fn add_counts(total: &mut RotationCounts, more: RotationCounts) {
    total.rotations += more.rotations;
    total.compressions += more.compressions;
    total.deletions += more.deletions;
}

fn random_container_id(rng: &mut impl Rng) -> String {
    (0..4)
        .map(|_| format!("{:016x}", rng.random::<u64>()))
        .collect()
}
