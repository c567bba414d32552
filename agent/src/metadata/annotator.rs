//! The pipeline stage between the sources and the batcher: enriches each line with its pod's
//! metadata, drops excluded lines as `Consumed` events (so checkpoints advance, counted), and holds
//! lines of pods not known yet.
//!
//! Timing: a line of an unknown pod is held (per file, in order) until its pod appears in the
//! index or `--metadata-wait` passes; then it is shipped to the quarantine prefix
//! ([`QUARANTINE_CUSTOMER`]) with the [`MISSING_FIELD`] marker — never dropped, and never routed
//! to a tenant guessed from the namespace name. Held lines are bounded ([`AnnotatorConfig`]): at
//! the cap the stage stops taking input (backpressure on the tailer, whose files are the buffer)
//! until held lines are resolved or their wait ends. Events of one file keep their order: a
//! `Consumed` or `Closed` behind held lines waits for them. Files being read pin their pod's
//! metadata in the index until their `Closed` event.
//!
//! Shutdown (input closed): held lines whose pod is known by then are shipped; the others are not
//! sent at all (counted). Nothing after them was sent either, so their file's checkpoint stays
//! before them and the next run reads them again — with the cache file's or the API's metadata.

use super::derive::PodMeta;
use super::index::PodIndex;
use crate::internal_events::metadata::{
    HeldLines, LineExcluded, LinesEnriched, MetadataMissing, MissingReason, UnsentAtShutdown,
};
use crate::source_event::{FileId, Line, SourceEvent};
use crate::tail::path::UNKNOWN;
use crate::timer::sleep_until_opt;
use logrelay_common::key::QUARANTINE_CUSTOMER;
use logrelay_common::record::LogRecord;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Record field (`true`) marking a line shipped without Kubernetes metadata.
pub const MISSING_FIELD: &str = "logrelay_metadata_missing";

/// Key in the record's `kubernetes` object for the pod's `spec.nodeName`.
pub const NODE_NAME_FIELD: &str = "node_name";

/// Key in the record's `kubernetes` object for a static pod's config hash (the UID in its path).
pub const CONFIG_HASH_FIELD: &str = "config_hash";

/// Default `--metadata-wait`: 5 s. A pod's API object normally appears within a second of
/// its sandbox starting; the wait covers a slow apiserver without delaying lines for long.
pub const DEFAULT_METADATA_WAIT: Duration = Duration::from_secs(5);

/// Default cap on held lines: 10,000, five seconds of a busy node (2,000 lines/s) whose pods are
/// all unknown. A held line costs its message plus roughly 0.5 KiB of record.
pub const DEFAULT_MAX_HELD_LINES: usize = 10_000;

/// Default cap on message bytes of held lines: 8 MiB (with [`DEFAULT_MAX_HELD_LINES`], at most
/// about 13 MiB held in all, beside the batcher's own memory limit).
pub const DEFAULT_MAX_HELD_BYTES: usize = 8 << 20;

/// Pods remembered as quarantined (for logging each once); the set is cleared when full.
const MAX_REMEMBERED_QUARANTINED_PODS: usize = 1024;

/// Settings of the annotator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnotatorConfig {
    /// How long a line waits for its pod's metadata.
    pub wait: Duration,
    /// Most lines held at once.
    pub max_held_lines: usize,
    /// Most message bytes held at once.
    pub max_held_bytes: usize,
}

impl Default for AnnotatorConfig {
    fn default() -> Self {
        Self {
            wait: DEFAULT_METADATA_WAIT,
            max_held_lines: DEFAULT_MAX_HELD_LINES,
            max_held_bytes: DEFAULT_MAX_HELD_BYTES,
        }
    }
}

/// Why the annotator stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnnotatorError {
    /// Delivery dropped its receiver.
    #[error("delivery stopped receiving events before the sources ended")]
    OutputClosed,
}

/// The metadata stage; see the module documentation.
#[derive(Debug, Clone)]
pub struct Annotator {
    index: Arc<PodIndex>,
    config: AnnotatorConfig,
}

/// One event waiting behind an unresolved line.
#[derive(Debug)]
struct Held {
    seq: u64,
    bytes: usize,
    event: SourceEvent,
}

/// A file seen by the stage.
#[derive(Debug, Default)]
struct FileState {
    /// The pod UID of the file's path (pinned in the index), when it has one.
    path_uid: Option<String>,
    held: VecDeque<Held>,
}

/// What is known about a line's pod.
enum Resolution {
    Known(Arc<PodMeta>),
    Wait,
    Never,
}

/// The running state.
struct Stage {
    index: Arc<PodIndex>,
    config: AnnotatorConfig,
    output: mpsc::Sender<SourceEvent>,
    files: HashMap<FileId, FileState>,
    /// Files with held events.
    holding: HashSet<FileId>,
    /// Held lines in arrival order with their deadlines; entries of lines released early stay
    /// until they reach the front (or a compaction) and are skipped then.
    order: VecDeque<(u64, FileId, Instant)>,
    next_seq: u64,
    held_lines: usize,
    held_bytes: usize,
    enriched: u64,
    /// Pods whose lines were quarantined lately (namespace, name): each is logged once.
    quarantined_pods: HashSet<(String, String)>,
}

impl Annotator {
    /// A stage enriching from `index`.
    pub fn new(index: Arc<PodIndex>, config: AnnotatorConfig) -> Self {
        Self { index, config }
    }

    /// Runs until `input` closes (then releases everything held and returns) or `output` closes.
    pub async fn run(
        self,
        mut input: mpsc::Receiver<SourceEvent>,
        output: mpsc::Sender<SourceEvent>,
    ) -> Result<(), AnnotatorError> {
        let mut generation = self.index.subscribe();
        let mut stage = Stage {
            index: self.index,
            config: self.config,
            output,
            files: HashMap::new(),
            holding: HashSet::new(),
            order: VecDeque::new(),
            next_seq: 0,
            held_lines: 0,
            held_bytes: 0,
            enriched: 0,
            quarantined_pods: HashSet::new(),
        };
        loop {
            let deadline = stage.order.front().map(|(_, _, deadline)| *deadline);
            tokio::select! {
                biased;
                changed = generation.changed(), if !stage.holding.is_empty() => {
                    if changed.is_ok() {
                        generation.borrow_and_update();
                        stage.retry_all().await?;
                    }
                }
                () = sleep_until_opt(deadline), if deadline.is_some() => {
                    stage.expire(Instant::now()).await?;
                }
                // At the cap the stage stops reading: the sources wait (their files are the
                // buffer) until held lines are resolved or their wait ends.
                event = input.recv(), if !stage.at_cap() => match event {
                    Some(event) => stage.handle(event).await?,
                    None => {
                        stage.flush_all().await?;
                        stage.report();
                        return Ok(());
                    }
                },
            }
            stage.report();
        }
    }
}

impl Stage {
    fn report(&mut self) {
        LinesEnriched {
            lines: std::mem::take(&mut self.enriched),
        }
        .emit();
        HeldLines {
            lines: self.held_lines,
            bytes: self.held_bytes,
        }
        .emit();
    }

    async fn handle(&mut self, event: SourceEvent) -> Result<(), AnnotatorError> {
        let file = event.file();
        let line = match event {
            SourceEvent::Line(line) => line,
            other => {
                if self.files.get(&file).is_some_and(|s| !s.held.is_empty()) {
                    self.hold(file, other);
                    return Ok(());
                }
                return self.forward(other).await;
            }
        };
        let index = &self.index;
        let state = self.files.entry(file).or_insert_with(|| {
            let path_uid = path_uid(&line);
            if let Some(uid) = &path_uid {
                index.pin_file(uid);
            }
            FileState {
                path_uid,
                held: VecDeque::new(),
            }
        });
        if !state.held.is_empty() {
            self.hold(file, SourceEvent::Line(line));
            return Ok(());
        }
        match self.resolve(&line) {
            Resolution::Known(meta) => self.emit_known(line, &meta).await,
            Resolution::Never => self.emit_missing(line, MissingReason::NoPodInPath).await,
            Resolution::Wait if self.config.wait.is_zero() => {
                self.emit_missing(line, MissingReason::WaitExpired).await
            }
            Resolution::Wait => {
                self.hold(file, SourceEvent::Line(line));
                Ok(())
            }
        }
    }

    fn resolve(&self, line: &Line) -> Resolution {
        let Some(uid) = path_uid(line) else {
            return Resolution::Never;
        };
        match self
            .index
            .lookup(&uid, &line.record.namespace, &line.record.pod_name)
        {
            Some(meta) => Resolution::Known(meta),
            None => Resolution::Wait,
        }
    }

    fn hold(&mut self, file: FileId, event: SourceEvent) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let bytes = match &event {
            SourceEvent::Line(line) => {
                self.order
                    .push_back((seq, file, Instant::now() + self.config.wait));
                self.held_lines += 1;
                line.record.message.len()
            }
            _ => 0,
        };
        self.held_bytes += bytes;
        self.files
            .entry(file)
            .or_default()
            .held
            .push_back(Held { seq, bytes, event });
        self.holding.insert(file);
        self.compact_order();
    }

    /// Drops skipped entries from `order` when they outnumber the held lines (bounds its memory
    /// when many lines are released early).
    fn compact_order(&mut self) {
        if self.order.len() > 2 * self.config.max_held_lines.max(self.held_lines) + 1024 {
            let files = &self.files;
            self.order.retain(|(seq, file, _)| {
                // Held events are in `seq` order: a binary search finds the entry's line.
                files
                    .get(file)
                    .is_some_and(|s| s.held.binary_search_by_key(seq, |h| h.seq).is_ok())
            });
        }
    }

    /// The file whose head line is the oldest held line, popping skipped entries.
    fn oldest_held(&mut self) -> Option<(FileId, Instant)> {
        while let Some(&(seq, file, deadline)) = self.order.front() {
            let head = self
                .files
                .get(&file)
                .and_then(|s| s.held.front())
                .map(|h| h.seq);
            if head == Some(seq) {
                return Some((file, deadline));
            }
            self.order.pop_front();
        }
        None
    }

    /// Releases lines whose wait ended.
    async fn expire(&mut self, now: Instant) -> Result<(), AnnotatorError> {
        while let Some((file, deadline)) = self.oldest_held() {
            if deadline > now {
                break;
            }
            self.order.pop_front();
            self.release_head(file, MissingReason::WaitExpired).await?;
        }
        Ok(())
    }

    /// Whether held lines reached a cap (then no more input is taken). Never true with nothing
    /// held, so one line larger than the byte cap still passes.
    fn at_cap(&self) -> bool {
        self.held_lines > 0
            && (self.held_lines >= self.config.max_held_lines
                || self.held_bytes >= self.config.max_held_bytes)
    }

    /// Releases every held file whose pod is now known.
    async fn retry_all(&mut self) -> Result<(), AnnotatorError> {
        let files: Vec<FileId> = self.holding.iter().copied().collect();
        for file in files {
            let known = self
                .files
                .get(&file)
                .and_then(|s| s.held.front())
                .is_some_and(|h| matches!(&h.event, SourceEvent::Line(l) if matches!(self.resolve(l), Resolution::Known(_))));
            if known {
                while self.files.get(&file).is_some_and(|s| !s.held.is_empty()) {
                    self.release_head(file, MissingReason::WaitExpired).await?;
                }
            }
        }
        Ok(())
    }

    /// Input ended: ships held lines whose pod is known now; leaves the rest unsent (they are
    /// read again after a restart, their checkpoint being before them).
    async fn flush_all(&mut self) -> Result<(), AnnotatorError> {
        self.retry_all().await?;
        let unsent: usize = self.files.values().map(|s| s.held.len()).sum();
        if unsent > 0 {
            UnsentAtShutdown {
                events: unsent,
                files: self.holding.len(),
            }
            .emit();
        }
        for state in self.files.values_mut() {
            state.held.clear();
        }
        self.holding.clear();
        self.held_lines = 0;
        self.held_bytes = 0;
        Ok(())
    }

    /// Ships the file's head line (enriched if its pod is known now, else marked with `reason`)
    /// and the non-line events right behind it.
    async fn release_head(
        &mut self,
        file: FileId,
        reason: MissingReason,
    ) -> Result<(), AnnotatorError> {
        let Some(state) = self.files.get_mut(&file) else {
            return Ok(());
        };
        let Some(head) = state.held.pop_front() else {
            return Ok(());
        };
        let mut trailing = Vec::new();
        while state
            .held
            .front()
            .is_some_and(|h| !matches!(h.event, SourceEvent::Line(_)))
        {
            trailing.extend(state.held.pop_front());
        }
        if state.held.is_empty() {
            self.holding.remove(&file);
        }
        self.held_bytes -= head.bytes;
        match head.event {
            SourceEvent::Line(line) => {
                self.held_lines -= 1;
                match self.resolve(&line) {
                    Resolution::Known(meta) => self.emit_known(line, &meta).await?,
                    Resolution::Never => {
                        self.emit_missing(line, MissingReason::NoPodInPath).await?
                    }
                    Resolution::Wait => self.emit_missing(line, reason).await?,
                }
            }
            other => self.forward(other).await?,
        }
        for held in trailing {
            self.forward(held.event).await?;
        }
        Ok(())
    }

    /// Sends a line of a known pod: enriched, or as consumed bytes when selection excludes it.
    async fn emit_known(&mut self, mut line: Line, meta: &PodMeta) -> Result<(), AnnotatorError> {
        if let Some(reason) = meta.selection.excludes(&line.record.container_name) {
            LineExcluded {
                namespace: &meta.namespace,
                pod_name: &meta.name,
                reason: reason.as_str(),
            }
            .emit();
            let consumed = SourceEvent::Consumed {
                file: line.file,
                end: line.end,
                end_marker: line.end_marker,
                unfinished: line.unfinished,
            };
            return self.send(consumed).await;
        }
        enrich(&mut line.record, meta);
        self.enriched += 1;
        self.send(SourceEvent::Line(line)).await
    }

    async fn emit_missing(
        &mut self,
        mut line: Line,
        reason: MissingReason,
    ) -> Result<(), AnnotatorError> {
        let pod = (line.record.namespace.clone(), line.record.pod_name.clone());
        if self.quarantined_pods.len() >= MAX_REMEMBERED_QUARANTINED_PODS {
            self.quarantined_pods.clear();
        }
        MetadataMissing {
            namespace: &line.record.namespace,
            pod_name: &line.record.pod_name,
            reason,
            first_of_pod: self.quarantined_pods.insert(pod),
        }
        .emit();
        quarantine(&mut line.record);
        self.send(SourceEvent::Line(line)).await
    }

    /// Sends a non-line event; `Closed` ends the file (unpins its pod).
    async fn forward(&mut self, event: SourceEvent) -> Result<(), AnnotatorError> {
        if let SourceEvent::Closed { file } = &event
            && let Some(state) = self.files.remove(file)
        {
            if let Some(uid) = &state.path_uid {
                self.index.unpin_file(uid);
            }
            self.holding.remove(file);
        }
        self.send(event).await
    }

    async fn send(&mut self, event: SourceEvent) -> Result<(), AnnotatorError> {
        self.output
            .send(event)
            .await
            .map_err(|_| AnnotatorError::OutputClosed)
    }
}

/// Routes a line whose pod is unknown to the quarantine prefix: never to a tenant guessed from
/// its path. The application segment holds the namespace (what an operator assigns by); the
/// record keeps its path-derived namespace, pod and container, marked with [`MISSING_FIELD`].
fn quarantine(record: &mut LogRecord) {
    record.customer_id = QUARANTINE_CUSTOMER.to_owned();
    record.application.clone_from(&record.namespace);
    record
        .extra
        .insert(MISSING_FIELD.into(), serde_json::Value::Bool(true));
}

/// The pod UID in the line's path (`record.kubernetes.pod_uid` as the tailer sets it), when the
/// path follows the kubelet's layout.
fn path_uid(line: &Line) -> Option<String> {
    if line.record.namespace == UNKNOWN || line.record.pod_name == UNKNOWN {
        return None;
    }
    line.record
        .kubernetes
        .as_ref()
        .and_then(|k| k.pod_uid.clone())
        .filter(|uid| !uid.is_empty())
}

/// Writes the pod's metadata into a record (tenant, application, `kubernetes` object). Values are
/// copied as they are: they reach S3 keys only through `logrelay_common::key` encoding.
pub fn enrich(record: &mut logrelay_common::record::LogRecord, meta: &PodMeta) {
    record.customer_id.clone_from(&meta.customer_id);
    record.application = meta.application_for(&record.container_name).to_owned();
    let kubernetes = record.kubernetes.get_or_insert_with(Default::default);
    kubernetes.pod_uid = Some(meta.uid.clone());
    kubernetes.labels.clone_from(&meta.labels);
    kubernetes.annotations.clone_from(&meta.annotations);
    kubernetes.container_image = meta.images.get(&record.container_name).cloned();
    kubernetes.owner.clone_from(&meta.owner);
    if let Some(node) = &meta.node_name {
        kubernetes
            .extra
            .insert(NODE_NAME_FIELD.into(), node.clone().into());
    }
    if let Some(hash) = &meta.config_hash {
        kubernetes
            .extra
            .insert(CONFIG_HASH_FIELD.into(), hash.clone().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::index::DEFAULT_GONE_RETENTION;
    use crate::metadata::select::{ExcludeReason, PodSelection};
    use logrelay_common::record::{KubernetesMeta, LogRecord, Stream};

    fn meta(uid: &str, pod: &str) -> PodMeta {
        PodMeta {
            namespace: "ns".into(),
            name: pod.into(),
            uid: uid.into(),
            config_hash: None,
            customer_id: "tenant-a".into(),
            application: Some("api".into()),
            owner: Some("Deployment/api".into()),
            node_name: Some("node-1".into()),
            labels: [("app".to_string(), "api".to_string())].into(),
            annotations: Default::default(),
            images: [("main".to_string(), "img:1".to_string())].into(),
            selection: PodSelection::default(),
            multiline: None,
        }
    }

    fn record(pod: &str, uid: &str, message: &str) -> LogRecord {
        LogRecord {
            timestamp: chrono::Utc::now(),
            message: message.into(),
            stream: Stream::Stdout,
            customer_id: "ns".into(),
            cluster_id: "c1".into(),
            namespace: "ns".into(),
            application: "main".into(),
            pod_name: pod.into(),
            container_name: "main".into(),
            node_name: "node-1".into(),
            ingest_timestamp: chrono::Utc::now(),
            kubernetes: Some(KubernetesMeta {
                pod_uid: Some(uid.into()),
                ..Default::default()
            }),
            extra: Default::default(),
        }
    }

    fn line(file: u64, n: u64, pod: &str, uid: &str) -> SourceEvent {
        SourceEvent::Line(Line {
            record: record(pod, uid, &format!("{pod}-{n}")),
            file: FileId(file),
            start: n * 10,
            end: n * 10 + 10,
            end_marker: n,
            unfinished: crate::source_event::Unfinished::NONE,
        })
    }

    struct Rig {
        index: Arc<PodIndex>,
        tx: mpsc::Sender<SourceEvent>,
        rx: mpsc::Receiver<SourceEvent>,
        task: tokio::task::JoinHandle<Result<(), AnnotatorError>>,
    }

    fn rig(config: AnnotatorConfig) -> Rig {
        let index = Arc::new(PodIndex::new(DEFAULT_GONE_RETENTION, None));
        let (tx, input) = mpsc::channel(1024);
        let (output, rx) = mpsc::channel(1024);
        let task = tokio::spawn(Annotator::new(index.clone(), config).run(input, output));
        Rig {
            index,
            tx,
            rx,
            task,
        }
    }

    fn describe(event: &SourceEvent) -> String {
        match event {
            SourceEvent::Line(l) => {
                let missing = l.record.extra.contains_key(MISSING_FIELD);
                format!(
                    "{}:{}:{}",
                    l.record.message,
                    l.record.customer_id,
                    if missing { "missing" } else { "ok" }
                )
            }
            SourceEvent::Consumed { file, end, .. } => format!("consumed:{}:{end}", file.0),
            SourceEvent::Closed { file } => format!("closed:{}", file.0),
        }
    }

    async fn drain(rig: Rig) -> Vec<String> {
        let Rig {
            tx, mut rx, task, ..
        } = rig;
        drop(tx);
        task.await.expect("joins").expect("runs");
        let mut out = Vec::new();
        while let Some(event) = rx.recv().await {
            out.push(describe(&event));
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn known_pods_are_enriched_at_once() {
        let rig = rig(AnnotatorConfig::default());
        rig.index.upsert(meta("u1", "p1"));
        rig.tx.send(line(1, 0, "p1", "u1")).await.expect("sends");
        let mut rig = rig;
        let SourceEvent::Line(out) = rig.rx.recv().await.expect("an event") else {
            panic!("a line")
        };
        assert_eq!(out.record.customer_id, "tenant-a");
        assert_eq!(out.record.application, "api");
        let k = out.record.kubernetes.as_ref().expect("kubernetes");
        assert_eq!(k.container_image.as_deref(), Some("img:1"));
        assert_eq!(k.owner.as_deref(), Some("Deployment/api"));
        assert_eq!(k.labels["app"], "api");
        assert_eq!(k.extra[NODE_NAME_FIELD], "node-1");
        assert!(!out.record.extra.contains_key(MISSING_FIELD));
    }

    #[tokio::test(start_paused = true)]
    async fn lines_wait_for_their_pod_in_order_with_trailing_events() {
        let rig = rig(AnnotatorConfig::default());
        for n in 0..3 {
            rig.tx.send(line(1, n, "p1", "u1")).await.expect("sends");
        }
        rig.tx
            .send(SourceEvent::Consumed {
                file: FileId(1),
                end: 35,
                end_marker: 0,
                unfinished: crate::source_event::Unfinished::NONE,
            })
            .await
            .expect("sends");
        rig.tx
            .send(SourceEvent::Closed { file: FileId(1) })
            .await
            .expect("sends");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut rig = rig;
        assert!(rig.rx.try_recv().is_err(), "held while the pod is unknown");
        rig.index.upsert(meta("u1", "p1"));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            drain(rig).await,
            [
                "p1-0:tenant-a:ok",
                "p1-1:tenant-a:ok",
                "p1-2:tenant-a:ok",
                "consumed:1:35",
                "closed:1"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn wait_expiry_ships_to_quarantine_never_to_the_namespace_name() {
        let rig = rig(AnnotatorConfig::default());
        rig.index.upsert(meta("u2", "p2"));
        rig.tx.send(line(1, 0, "p1", "u1")).await.expect("sends");
        rig.tx.send(line(2, 0, "p2", "u2")).await.expect("sends");
        tokio::time::sleep(DEFAULT_METADATA_WAIT - Duration::from_millis(100)).await;
        let mut rig = rig;
        assert_eq!(
            rig.rx.try_recv().map(|e| describe(&e)).ok().as_deref(),
            Some("p2-0:tenant-a:ok")
        );
        assert!(rig.rx.try_recv().is_err(), "p1 still held");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok(SourceEvent::Line(out)) = rig.rx.try_recv() else {
            panic!("p1's line after its wait")
        };
        assert_eq!(
            describe(&SourceEvent::Line(out.clone())),
            "p1-0:.quarantine:missing"
        );
        assert_eq!(
            (
                out.record.application.as_str(),
                out.record.namespace.as_str()
            ),
            ("ns", "ns"),
            "the application segment names the namespace; the namespace field is kept"
        );
        assert_eq!(
            (
                out.record.pod_name.as_str(),
                out.record.container_name.as_str()
            ),
            ("p1", "main")
        );
        assert!(drain(rig).await.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_input_waits_and_nothing_is_released_early() {
        let config = AnnotatorConfig {
            max_held_lines: 2,
            ..AnnotatorConfig::default()
        };
        let rig = rig(config);
        rig.tx.send(line(1, 0, "p1", "u1")).await.expect("sends");
        rig.tx.send(line(2, 0, "p2", "u2")).await.expect("sends");
        rig.tx.send(line(1, 1, "p1", "u1")).await.expect("sends");
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut rig = rig;
        assert!(rig.rx.try_recv().is_err(), "nothing released at the cap");
        assert_eq!(rig.tx.capacity(), 1023, "the third line waits in the input");
        rig.index.upsert(meta("u1", "p1"));
        rig.index.upsert(meta("u2", "p2"));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut rest = drain(rig).await;
        rest.sort();
        assert_eq!(
            rest,
            ["p1-0:tenant-a:ok", "p1-1:tenant-a:ok", "p2-0:tenant-a:ok"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_input_resumes_when_the_wait_ends() {
        let config = AnnotatorConfig {
            max_held_lines: 1,
            ..AnnotatorConfig::default()
        };
        let rig = rig(config);
        rig.index.upsert(meta("u2", "p2"));
        rig.tx.send(line(1, 0, "p1", "u1")).await.expect("sends");
        rig.tx.send(line(2, 0, "p2", "u2")).await.expect("sends");
        tokio::time::sleep(DEFAULT_METADATA_WAIT - Duration::from_millis(100)).await;
        let mut rig = rig;
        assert!(
            rig.rx.try_recv().is_err(),
            "a known pod's line waits behind the cap"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            drain(rig).await,
            ["p1-0:.quarantine:missing", "p2-0:tenant-a:ok"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn excluded_lines_become_consumed_events() {
        let rig = rig(AnnotatorConfig::default());
        let mut opted_out = meta("u1", "p1");
        opted_out.selection.excluded = Some(ExcludeReason::PodOptedOut);
        rig.index.upsert(opted_out);
        let mut sidecar = meta("u2", "p2");
        sidecar.selection.excluded_containers.insert("main".into());
        rig.index.upsert(sidecar);
        rig.tx.send(line(1, 0, "p1", "u1")).await.expect("sends");
        rig.tx.send(line(2, 3, "p2", "u2")).await.expect("sends");
        assert_eq!(drain(rig).await, ["consumed:1:10", "consumed:2:40"]);
    }

    #[tokio::test(start_paused = true)]
    async fn paths_without_a_pod_go_to_quarantine_at_once() {
        let rig = rig(AnnotatorConfig::default());
        let SourceEvent::Line(mut odd) = line(1, 0, "p1", "u1") else {
            unreachable!()
        };
        odd.record.namespace = UNKNOWN.into();
        rig.tx.send(SourceEvent::Line(odd)).await.expect("sends");
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut rig = rig;
        assert_eq!(
            rig.rx.try_recv().map(|e| describe(&e)).ok().as_deref(),
            Some("p1-0:.quarantine:missing")
        );
        drain(rig).await;
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ships_known_held_lines_and_leaves_unknown_ones_unsent() {
        let rig = rig(AnnotatorConfig::default());
        rig.tx.send(line(1, 0, "p1", "u1")).await.expect("sends");
        rig.tx.send(line(2, 0, "p2", "u2")).await.expect("sends");
        rig.tx
            .send(SourceEvent::Closed { file: FileId(2) })
            .await
            .expect("sends");
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Known by now, without a wake-up having run yet: the final retry finds it.
        rig.index.upsert(meta("u1", "p1"));
        assert_eq!(drain(rig).await, ["p1-0:tenant-a:ok"]);
    }

    #[tokio::test(start_paused = true)]
    async fn skipped_order_entries_are_compacted_and_live_ones_kept() {
        let (output, _rx) = mpsc::channel(1);
        let config = AnnotatorConfig {
            max_held_lines: 10,
            ..AnnotatorConfig::default()
        };
        let mut stage = Stage {
            index: Arc::new(PodIndex::new(DEFAULT_GONE_RETENTION, None)),
            config,
            output,
            files: HashMap::new(),
            holding: HashSet::new(),
            order: VecDeque::new(),
            next_seq: 0,
            held_lines: 0,
            held_bytes: 0,
            enriched: 0,
            quarantined_pods: HashSet::new(),
        };
        for n in 0..1100 {
            stage.hold(FileId(1), line(1, n, "p1", "u1"));
        }
        // As if file 1's pod became known and its lines were shipped.
        stage.files.remove(&FileId(1));
        stage.holding.remove(&FileId(1));
        stage.held_lines = 0;
        stage.hold(FileId(2), line(2, 0, "p2", "u2"));
        assert_eq!(stage.order.len(), 1, "only the live entry is left");
        assert_eq!(stage.oldest_held().map(|(file, _)| file), Some(FileId(2)));
    }

    #[tokio::test(start_paused = true)]
    async fn closed_files_unpin_their_pod() {
        let rig = rig(AnnotatorConfig::default());
        rig.index.upsert(meta("u1", "p1"));
        rig.tx.send(line(1, 0, "p1", "u1")).await.expect("sends");
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(rig.index.size().pinned_files, 1);
        rig.tx
            .send(SourceEvent::Closed { file: FileId(1) })
            .await
            .expect("sends");
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(rig.index.size().pinned_files, 0);
        drain(rig).await;
    }
}
