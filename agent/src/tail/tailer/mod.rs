//! The tailer: its public face ([`Tailer`], [`TailerConfig`], [`TailerHandle`]) and its loop —
//! inotify hints and a listing at least every [`RESCAN_INTERVAL`] (reconciled with the
//! followed files in `reconcile`: rotation, truncation, deletion), where new files start
//! (`start`: checkpoints, copies, gzipped files, `--start-at`), which `.gz` files found at start were made
//! while the agent was down (`recover`), the per-pod cap on open rotated files (`slots`), and fair
//! reading.
//!
//! It runs on a thread of its own (file reads block) and hands events to delivery through the
//! bounded channel with `blocking_send`: when delivery is behind, the tailer waits and the files
//! stay the buffer. Reading is round-robin, one [`READ_CHUNK_BYTES`] read per file per turn, so a
//! hot file cannot starve the others; an idle file costs one `fstat` per rescan.

use super::discovery::{Lister, Wake};
use super::file::{Halt, LineSettings, Output, PodMultiline, ReadOutcome, Source, TrackedFile};
use super::path::{FileKind, classify};
use super::record::RecordContext;
use crate::checkpoint::{FileCheckpoint, FileRegistry};
use crate::internal_events::pod_series::PodSeries;
use crate::internal_events::tail::{ReadFailed, TailerGauges};
use crate::parse::DEFAULT_MAX_LINE_BYTES;
use crate::parse::multiline::MULTILINE_TIMEOUT;
use crate::parse::multiline::rules::MultilineRule;
use crate::parse::partial::{PARTIAL_FLUSH_TIMEOUT, PartialMerger};
use crate::source_event::{FileId, SourceEvent};
use notify::RecommendedWatcher;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

mod reconcile;
mod recover;
mod slots;
mod start;

use start::Truncated;

/// How often the whole pods root is listed even without inotify events: 1 s, so a new file is
/// read within a second when inotify misses it, and cheap: one `stat` per directory (only directories that changed
/// are read again, see [`super::discovery::Lister`]) and one `fstat` per open file.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(1);

/// Bytes read from one file per turn: 64 KiB, large enough for efficient reads, small enough that
/// one busy file delays the others by microseconds.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Default cap on rotated files held open per pod: 8. The kubelet keeps one plain rotated file per
/// container (older ones are gzipped), so 8 covers pods with several containers rotating at once
/// while bounding descriptors when a pod's directory fills with rotated files.
pub const DEFAULT_MAX_OPEN_ROTATED_PER_POD: usize = 8;

/// How long checkpoints not matched to a file yet are kept after start before their file counts
/// as gone: 5 s, several listings. The kubelet removes a rotated file only once its `.gz` is
/// complete, and logrotate copies before it truncates, so a checkpointed file's content is always
/// in some listed file unless it was deleted.
pub const RESUME_GRACE: Duration = Duration::from_secs(5);

/// Most (fingerprint, directory) pairs of files closed in this run remembered, so a `.gz` made of
/// a file already read is not read again (oldest forgotten first; a kubelet keeps at most
/// `containerLogMaxFiles` per container).
const CLOSED_CONTENT_MEMORY: usize = 65_536;

/// Shortest time between two listings triggered by inotify events, so a burst of file creations
/// costs one listing, not hundreds.
const EVENT_RESCAN_MIN_INTERVAL: Duration = Duration::from_millis(50);

/// How long a new rotated file whose first line is incomplete, or that is a shorter copy of a
/// followed file, is left unread after its last write (or, lacking a modification time, after
/// this run first saw it): a copy being written (copytruncate) settles within this time.
const COPY_SETTLE: Duration = Duration::from_secs(2);

/// How long the last state of a truncated file is remembered to recognise its copy: copytruncate
/// copies first and truncates right after, and the copy may be listed only after the truncation.
const TRUNCATED_MEMORY: Duration = Duration::from_secs(10);

/// Capacity of the channel carrying inotify hints to the loop; when full, the loop rescans.
const WAKE_CHANNEL_CAPACITY: usize = 1024;

/// How long to wait before retrying a failed inotify watch.
const WATCH_RETRY_INTERVAL: Duration = Duration::from_secs(60);

/// What the tailer needs to know.
#[derive(Debug, Clone)]
pub struct TailerConfig {
    /// Root of the pod log tree (`/var/log/pods`).
    pub root: PathBuf,
    /// Cluster id and node name for every record.
    pub record: RecordContext,
    /// Cap on a message after partial lines are merged (`--max-line-bytes`).
    pub max_line_bytes: usize,
    /// Cap on rotated files held open per pod (`--max-open-rotated-per-pod`); at least 1.
    pub max_open_rotated_per_pod: usize,
    /// How often the whole tree is listed.
    pub rescan_interval: Duration,
    /// How long a partial line waits for its next chunk.
    pub partial_flush_timeout: Duration,
    /// How multi-line records are joined (`--multiline`; `None`: every line is a record).
    pub multiline: Option<Arc<MultilineRule>>,
    /// How long a multi-line record waits for its next line (`--multiline-timeout`).
    pub multiline_timeout: Duration,
    /// A pod's own multi-line setting (its annotation), from the metadata stage.
    pub pod_multiline: Option<PodMultiline>,
    /// How long loaded checkpoints may wait for their file before it counts as gone.
    pub resume_grace: Duration,
    /// Until when the previous run on this node ran (its last checkpoint save): containers it
    /// never saw whose files were rotated after that were rotated while no agent ran.
    pub previous_run_until: Option<chrono::DateTime<chrono::Utc>>,
    /// Where files found by the first listing of a first start (no checkpoints) begin
    /// (`--start-at`).
    pub start_at: StartAt,
}

/// Where a file without a checkpoint begins on the agent's first start on a node
/// (`--start-at`, `LOGRELAY_START_AT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum StartAt {
    /// From its first byte: every line still on the node is shipped.
    #[default]
    Beginning,
    /// After its last complete line: only lines written from now on (for nodes where another
    /// collector, such as Vector, already shipped what is there). Files that appear later, and
    /// every file on later starts (a checkpoint file exists), still begin at their first byte.
    End,
}

impl TailerConfig {
    /// A config with the default limits.
    pub fn new(root: impl Into<PathBuf>, record: RecordContext) -> Self {
        Self {
            root: root.into(),
            record,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_open_rotated_per_pod: DEFAULT_MAX_OPEN_ROTATED_PER_POD,
            rescan_interval: RESCAN_INTERVAL,
            partial_flush_timeout: PARTIAL_FLUSH_TIMEOUT,
            multiline: None,
            multiline_timeout: MULTILINE_TIMEOUT,
            pod_multiline: None,
            resume_grace: RESUME_GRACE,
            previous_run_until: None,
            start_at: StartAt::Beginning,
        }
    }
}

/// Why the tailer ended on its own.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// Delivery dropped its receiver while the tailer was still running.
    #[error("delivery stopped receiving source events before the tailer was stopped")]
    ChannelClosed,
    /// The tailer's thread could not be started.
    #[error("could not start the tailer thread: {0}")]
    Spawn(#[source] io::Error),
    /// The tailer's thread panicked.
    #[error("the tailer thread panicked")]
    Panicked,
}

/// Follows every container log file under the pods root; see the module documentation.
pub struct Tailer {
    config: TailerConfig,
    resume: Vec<FileCheckpoint>,
    output: Output,
    wake_tx: SyncSender<Wake>,
    wake_rx: Receiver<Wake>,
}

/// Tells a running tailer to stop; cheap to clone.
#[derive(Debug, Clone)]
pub struct Stopper {
    stop: Arc<AtomicBool>,
    wake: SyncSender<Wake>,
}

impl Stopper {
    /// Asks the tailer to stop. It stops within one event send (sooner when idle) and sends
    /// nothing after; bytes it read but did not ship (a pending partial line) are read again
    /// after a restart, from the checkpoint.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.wake.try_send(Wake::Stop);
    }
}

/// A tailer running on its own thread.
#[derive(Debug)]
pub struct TailerHandle {
    stopper: Stopper,
    done: oneshot::Receiver<Result<(), TailError>>,
}

impl TailerHandle {
    /// A handle to stop the tailer from elsewhere.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Stops the tailer and waits for its thread to end. While the channel is full the thread
    /// waits for delivery to take one event (or drop the receiver) before it sees the stop.
    pub async fn stop(self) -> Result<(), TailError> {
        self.stopper.stop();
        self.finished().await
    }

    /// Waits for the tailer to end (after a stop, or on its own with an error).
    pub async fn finished(self) -> Result<(), TailError> {
        self.done.await.unwrap_or(Err(TailError::Panicked))
    }
}

impl Tailer {
    /// A tailer reading the tree under `config.root`, resuming files from `resume` (the loaded
    /// checkpoints), registering each file in `registry` before its first event, and sending
    /// events to `sender` (capacity [`crate::source_event::SOURCE_CHANNEL_CAPACITY`]).
    pub fn new(
        config: TailerConfig,
        resume: Vec<FileCheckpoint>,
        registry: FileRegistry,
        sender: mpsc::Sender<SourceEvent>,
    ) -> Self {
        let (wake_tx, wake_rx) = sync_channel(WAKE_CHANNEL_CAPACITY);
        let output = Output {
            sender,
            registry,
            stop: Arc::new(AtomicBool::new(false)),
        };
        Self {
            config,
            resume,
            output,
            wake_tx,
            wake_rx,
        }
    }

    /// A handle to stop the tailer.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            stop: self.output.stop.clone(),
            wake: self.wake_tx.clone(),
        }
    }

    /// Starts the tailer on a thread of its own.
    pub fn spawn(self) -> Result<TailerHandle, TailError> {
        let stopper = self.stopper();
        let (done_tx, done) = oneshot::channel();
        std::thread::Builder::new()
            .name("logrelay-tailer".into())
            .spawn(move || {
                let _ = done_tx.send(self.run_blocking());
            })
            .map_err(TailError::Spawn)?;
        Ok(TailerHandle { stopper, done })
    }

    /// Runs the tailer on the calling thread until it is stopped (blocking; not on an async
    /// runtime's thread).
    pub fn run_blocking(self) -> Result<(), TailError> {
        let stop = self.output.stop.clone();
        let mut max_line_bytes = self.config.max_line_bytes;
        if max_line_bytes == 0 {
            max_line_bytes = DEFAULT_MAX_LINE_BYTES;
        }
        let settings = LineSettings {
            record: self.config.record.clone(),
            max_line_bytes,
            multiline: self.config.multiline.clone(),
            multiline_timeout: self.config.multiline_timeout,
            pod_multiline: self.config.pod_multiline.clone(),
        };
        let now = Instant::now();
        let first_start = self.resume.is_empty() && self.config.previous_run_until.is_none();
        let skip_existing = first_start && self.config.start_at == StartAt::End;
        let read_gz_history = first_start && self.config.start_at == StartAt::Beginning;
        let mut state = State {
            settings,
            output: self.output,
            wake_tx: self.wake_tx,
            wake_rx: self.wake_rx,
            overflow: Arc::new(AtomicBool::new(false)),
            watcher: None,
            watch_retry_at: now,
            lister: Lister::new(&self.config.root),
            files: BTreeMap::new(),
            by_inode: HashMap::new(),
            by_path: HashMap::new(),
            compressed: HashMap::new(),
            postponed: HashMap::new(),
            truncations: Vec::new(),
            loaded: self.resume.clone(),
            resume: self.resume,
            claimed_content: HashSet::new(),
            closed_content: RecentSet::new(CLOSED_CONTENT_MEMORY),
            listed_once: false,
            skip_existing,
            read_gz_history,
            resume_until: now + self.config.resume_grace,
            next_id: FileId::STDIN.0 + 1,
            run_queue: VecDeque::new(),
            buf: vec![0; READ_CHUNK_BYTES],
            last_scan: None,
            scan_wanted: false,
            pod_series: PodSeries::default(),
            config: self.config,
        };
        match state.run() {
            Ok(()) | Err(Halt::Stopped) => Ok(()),
            Err(Halt::ChannelClosed) if stop.load(Ordering::Relaxed) => Ok(()),
            Err(Halt::ChannelClosed) => Err(TailError::ChannelClosed),
        }
    }
}

/// A `.gz` file seen in the tree.
#[derive(Debug)]
struct CompressedFile {
    path: PathBuf,
    /// Fingerprint of the decompressed content (`None`: unreadable).
    fingerprint: Option<u64>,
    /// Compressed size at the last listing.
    size: Option<u64>,
    /// Its size changed since the listing before (still being written): not read yet.
    growing: bool,
    /// Being read (or read) as the continuation of a followed or checkpointed file.
    claimed: bool,
    /// Rotated and compressed while the agent was down, from a file it never checkpointed: read
    /// from its start (see `recover`).
    recover: bool,
    /// Reported as ignored already.
    reported: bool,
    /// First listed after the agent's first listing: made while the agent ran.
    appeared_in_run: bool,
}

struct State {
    config: TailerConfig,
    settings: LineSettings,
    output: Output,
    wake_tx: SyncSender<Wake>,
    wake_rx: Receiver<Wake>,
    overflow: Arc<AtomicBool>,
    watcher: Option<RecommendedWatcher>,
    watch_retry_at: Instant,
    lister: Lister,
    files: BTreeMap<FileId, TrackedFile>,
    by_inode: HashMap<(u64, u64), FileId>,
    by_path: HashMap<PathBuf, FileId>,
    compressed: HashMap<(u64, u64), CompressedFile>,
    postponed: HashMap<(u64, u64), Instant>,
    /// Truncated files waiting for their copy (see [`Truncated`]).
    truncations: Vec<Truncated>,
    /// The checkpoints loaded at start, untouched, until the first listing decided which `.gz`
    /// files to recover (emptied then).
    loaded: Vec<FileCheckpoint>,
    /// Loaded checkpoints not matched to a file yet.
    resume: Vec<FileCheckpoint>,
    /// Content (fingerprint, directory) of the loaded checkpoints already matched: an older entry
    /// of the same content (left by an earlier identity of the file) is not a missing file.
    claimed_content: HashSet<(u64, Option<PathBuf>)>,
    /// Content (fingerprint, directory) of files closed in this run, oldest first (bounded by
    /// [`CLOSED_CONTENT_MEMORY`]).
    closed_content: RecentSet<(u64, Option<PathBuf>)>,
    /// Whether the first listing is done: `.gz` files listed later were made while the agent ran.
    listed_once: bool,
    /// `--start-at end` on a first start: files of the first listing without a checkpoint begin
    /// after their last complete line.
    skip_existing: bool,
    /// `--start-at beginning` on a first start: the rotated `.gz` files of the first listing are
    /// history still on the node and are read from their start (with `end` they are ignored).
    read_gz_history: bool,
    resume_until: Instant,
    next_id: u64,
    run_queue: VecDeque<FileId>,
    buf: Vec<u8>,
    last_scan: Option<Instant>,
    scan_wanted: bool,
    /// Per-pod metric series created, kept alive while their pod is listed.
    pod_series: PodSeries,
}

impl State {
    fn run(&mut self) -> Result<(), Halt> {
        loop {
            if self.output.stop.load(Ordering::Relaxed) {
                return Err(Halt::Stopped);
            }
            for _ in 0..WAKE_CHANNEL_CAPACITY {
                match self.wake_rx.try_recv() {
                    Ok(wake) => self.on_wake(wake),
                    Err(_) => break,
                }
            }
            if self.scan_due(Instant::now()) {
                self.scan()?;
            }
            self.flush_expired_partials()?;
            if !self.run_queue.is_empty() {
                self.read_round()?;
                continue;
            }
            match self.wake_rx.recv_timeout(self.idle_timeout(Instant::now())) {
                Ok(wake) => self.on_wake(wake),
                Err(RecvTimeoutError::Timeout) => {}
                // Unreachable (the state holds a sender), but never spin.
                Err(RecvTimeoutError::Disconnected) => return Err(Halt::Stopped),
            }
        }
    }

    fn on_wake(&mut self, wake: Wake) {
        match wake {
            Wake::Modified(path) => match self.by_path.get(&path) {
                Some(&id) => self.enqueue(id),
                // A plain log file not followed yet; writes to `.gz`/`.tmp` files need no scan.
                None => {
                    let name = path
                        .file_name()
                        .and_then(|name| name.to_str())
                        .and_then(classify);
                    self.scan_wanted |= matches!(name, Some(FileKind::Live | FileKind::Rotated));
                }
            },
            Wake::Changed => self.scan_wanted = true,
            Wake::Stop => {}
        }
    }

    fn scan_due(&mut self, now: Instant) -> bool {
        let Some(last) = self.last_scan else {
            return true;
        };
        let since = now.saturating_duration_since(last);
        self.overflow.swap(false, Ordering::Relaxed)
            || since >= self.config.rescan_interval
            || (self.scan_wanted && since >= EVENT_RESCAN_MIN_INTERVAL)
    }

    fn idle_timeout(&self, now: Instant) -> Duration {
        let last = self.last_scan.unwrap_or(now);
        let mut deadline = last + self.config.rescan_interval;
        if self.scan_wanted {
            deadline = deadline.min(last + EVENT_RESCAN_MIN_INTERVAL);
        }
        if let Some(partial) = self
            .files
            .values()
            .filter_map(TrackedFile::partial_deadline)
            .min()
        {
            deadline = deadline.min(partial);
        }
        deadline
            .saturating_duration_since(now)
            .max(Duration::from_millis(1))
    }

    fn enqueue(&mut self, id: FileId) {
        if let Some(file) = self.files.get_mut(&id)
            && file.source.is_some()
            && !file.queued
        {
            file.queued = true;
            self.run_queue.push_back(id);
        }
    }

    fn alloc_id(&mut self) -> FileId {
        let id = FileId(self.next_id);
        self.next_id += 1;
        id
    }

    /// One turn: one read for every file that has data.
    fn read_round(&mut self) -> Result<(), Halt> {
        for _ in 0..self.run_queue.len() {
            let Some(id) = self.run_queue.pop_front() else {
                break;
            };
            let Some(file) = self.files.get_mut(&id) else {
                continue;
            };
            match file.read_chunk(&mut self.buf, &self.settings, &self.output)? {
                ReadOutcome::Data => self.run_queue.push_back(id),
                ReadOutcome::Eof => {
                    file.queued = false;
                    self.at_eof(id)?;
                }
                ReadOutcome::Rewritten => {
                    file.queued = false;
                    self.truncated(id)?;
                }
                ReadOutcome::Error(error) => {
                    file.queued = false;
                    ReadFailed {
                        path: &file.ident.path,
                        error: &error,
                    }
                    .emit();
                    // A plain file is retried at the next scan; a corrupt gzip stream never heals.
                    if file.kind == FileKind::Compressed {
                        self.close(id)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A file was read to its current end: check for truncation and deletion.
    fn at_eof(&mut self, id: FileId) -> Result<(), Halt> {
        let Some(file) = self.files.get_mut(&id) else {
            return Ok(());
        };
        if let Some(plain) = file.source.as_ref().and_then(Source::file)
            && let Ok(meta) = plain.metadata()
        {
            file.size = meta.len();
            if meta.len() < file.splitter.offset() {
                return self.truncated(id);
            }
            if meta.nlink() == 0 {
                file.gone = true;
            }
        }
        // A gzipped file never grows: at its end it is done.
        if file.gone || file.kind == FileKind::Compressed {
            return self.close(id);
        }
        Ok(())
    }

    fn flush_expired_partials(&mut self) -> Result<(), Halt> {
        let now = Instant::now();
        let due: Vec<FileId> = self
            .files
            .iter()
            // A file still queued has unread bytes that may continue what it holds: its
            // partials and multi-line records wait until it is read to its end.
            .filter(|(_, file)| {
                !file.queued
                    && file
                        .partial_deadline()
                        .is_some_and(|deadline| deadline <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(file) = self.files.get_mut(&id) {
                file.flush_expired(now, &self.settings, &self.output)?;
            }
        }
        Ok(())
    }

    fn emit_gauges(&self) {
        let open_files = self
            .files
            .values()
            .filter(|file| file.source.is_some())
            .count();
        let bytes_at_risk = self
            .files
            .values()
            .filter(|file| file.kind == FileKind::Rotated)
            .map(|file| file.size.saturating_sub(file.splitter.offset()))
            .sum();
        TailerGauges {
            open_files,
            followed_files: self.files.len(),
            bytes_at_risk,
        }
        .emit();
    }

    fn merger(&self) -> PartialMerger {
        PartialMerger::new(
            self.settings.max_line_bytes,
            self.config.partial_flush_timeout,
        )
    }

    fn insert(&mut self, file: TrackedFile) {
        self.by_inode
            .insert((file.ident.dev, file.ident.inode), file.id);
        self.by_path.insert(file.ident.path.clone(), file.id);
        self.files.insert(file.id, file);
    }

    fn remove(&mut self, id: FileId) -> Option<TrackedFile> {
        let file = self.files.remove(&id)?;
        let key = (file.ident.dev, file.ident.inode);
        if self.by_inode.get(&key) == Some(&id) {
            self.by_inode.remove(&key);
        }
        if self.by_path.get(&file.ident.path) == Some(&id) {
            self.by_path.remove(&file.ident.path);
        }
        Some(file)
    }
}

/// A set that forgets its oldest entries beyond a capacity: O(1) inserts and look-ups.
#[derive(Debug)]
struct RecentSet<T> {
    capacity: usize,
    members: HashSet<T>,
    order: VecDeque<T>,
}

impl<T: Clone + Eq + std::hash::Hash> RecentSet<T> {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            members: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    fn insert(&mut self, value: T) {
        if !self.members.insert(value.clone()) {
            return;
        }
        self.order.push_back(value);
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.members.remove(&oldest);
            }
        }
    }

    fn contains(&self, value: &T) -> bool {
        self.members.contains(value)
    }
}

#[cfg(test)]
mod tests {
    use super::RecentSet;

    #[test]
    fn a_recent_set_forgets_its_oldest_entries_beyond_its_capacity() {
        let mut set = RecentSet::new(2);
        set.insert(1);
        set.insert(2);
        set.insert(2);
        set.insert(3);
        assert!(!set.contains(&1));
        assert!(set.contains(&2) && set.contains(&3));
    }
}
