//! The delivery loop: takes [`SourceEvent`]s from the bounded channel, batches lines, uploads
//! sealed batches with bounded concurrency, and tells the acknowledgement tracker what the sink
//! confirmed.
//!
//! Backpressure: while the memory held by batching reaches the memory cap with nothing left to
//! move to disk, or the disk buffer is full, the loop stops taking events; the channel fills and
//! the sources stop reading (the log files wait on disk). Uploads keep retrying meanwhile. A
//! sealed body in the disk buffer is streamed from its file by the upload; the rare body split
//! between file and memory is read whole, and its upload starts only while it fits under the
//! memory cap (one always may). Shutdown: when the input channel closes (sources
//! stopped) every open batch is sealed and uploads are awaited until done or until the grace
//! period after the shutdown signal ends; unfinished uploads are abandoned and their lines stay
//! unacknowledged (read again on the next start).

use crate::batch::ObjectBody;
use crate::batch::buffer::{BufferError, DiskBuffer};
use crate::batch::{BatchError, BatchLimits, Batcher, SealReason, SealedBatch};
use crate::checkpoint::saver::{SharedAcks, lock_acks};
use crate::checkpoint::{FileRegistry, Position};
use crate::internal_events::InternalEvent;
use crate::internal_events::batch::{Backpressure, BatchMemory, LineEncodeFailed};
use crate::internal_events::sink::UploadsAbandoned;
use crate::sink::Uploader;
use crate::sink::request_builder::RequestBody;
use crate::source_event::{Line, SourceEvent};
use crate::timer::sleep_until_opt;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Events taken from the channel per wake-up before uploads and timers get a look (amortizes
/// locking and bookkeeping without starving them).
const EVENTS_PER_WAKEUP: usize = 256;

/// Settings of the delivery loop.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Batching limits (including the memory cap).
    pub limits: BatchLimits,
    /// This node's name (part of every object id).
    pub node_name: String,
    /// Deflate level of the objects (`--compression-level`).
    pub compression: flate2::Compression,
    /// Uploads in flight at once.
    pub upload_concurrency: usize,
    /// How long uploads may go on after the shutdown signal.
    pub shutdown_grace: Duration,
}

/// How delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Every line received was stored and confirmed.
    Complete,
    /// The grace period ended first; these were not stored (their lines are unacknowledged and
    /// will be read again on the next start).
    Abandoned {
        /// Batches not stored.
        batches: usize,
        /// Lines in them.
        lines: u64,
    },
}

/// Delivery failed in a way that must stop the agent (its lines stay unacknowledged).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// A batch could not be sealed.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// An upload task panicked.
    #[error("upload task failed: {0}")]
    UploadTask(#[from] tokio::task::JoinError),
    /// A sealed body could not be read back from the disk buffer.
    #[error(transparent)]
    Buffer(#[from] BufferError),
}

/// A sealed batch waiting for or in upload.
struct Pending {
    batch: Arc<SealedBatch>,
}

/// What an upload task hands back: the batch, once stored.
type Uploaded = Result<Arc<SealedBatch>, BufferError>;

/// The state of the delivery loop.
pub struct Delivery {
    config: DeliveryConfig,
    batcher: Batcher,
    acks: SharedAcks,
    uploader: Arc<Uploader>,
    queue: VecDeque<Pending>,
    uploading: JoinSet<Uploaded>,
    /// Sealed bodies in memory until confirmed: queued ones' in-memory members and uploading ones'
    /// whole bodies.
    sealed_bytes: u64,
    sealed_batches: usize,
    sealed_lines: u64,
    backpressure: bool,
}

impl Delivery {
    /// A delivery loop over `uploader`, updating `acks`.
    pub fn new(
        config: DeliveryConfig,
        registry: FileRegistry,
        acks: SharedAcks,
        uploader: Uploader,
        buffer: DiskBuffer,
    ) -> Self {
        let batcher = Batcher::new(config.limits, config.node_name.clone(), registry, buffer)
            .with_compression(config.compression);
        Self {
            config,
            batcher,
            acks,
            uploader: Arc::new(uploader),
            queue: VecDeque::new(),
            uploading: JoinSet::new(),
            sealed_bytes: 0,
            sealed_batches: 0,
            sealed_lines: 0,
            backpressure: false,
        }
    }

    /// Runs until the input channel closes and everything is uploaded, or until the grace period
    /// after `shutdown` ends.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<SourceEvent>,
        shutdown: CancellationToken,
    ) -> Result<DeliveryOutcome, DeliveryError> {
        let mut input_open = true;
        let mut grace_deadline: Option<Instant> = None;
        loop {
            if !input_open && self.queue.is_empty() && self.uploading.is_empty() {
                self.report_memory();
                return Ok(DeliveryOutcome::Complete);
            }
            // Checked here as well as by the timer below: under a constant stream the channel is
            // ready on every poll and the runtime's timers are serviced late, and a batch must
            // still be sealed at its timeout.
            let mut batch_deadline = self.batcher.next_deadline();
            if batch_deadline.is_some_and(|deadline| deadline <= Instant::now()) {
                let sealed = self.batcher.seal_expired(Instant::now())?;
                self.enqueue(sealed);
                self.start_uploads();
                batch_deadline = self.batcher.next_deadline();
            }
            let below_cap = self.can_take();
            self.set_backpressure(input_open && !below_cap);
            tokio::select! {
                biased;
                Some(joined) = self.uploading.join_next(), if !self.uploading.is_empty() => {
                    let stored = joined??;
                    self.confirm(&stored);
                }
                () = shutdown.cancelled(), if grace_deadline.is_none() => {
                    grace_deadline = Some(Instant::now() + self.config.shutdown_grace);
                }
                () = sleep_until_opt(grace_deadline), if grace_deadline.is_some() => {
                    return Ok(self.abandon());
                }
                () = sleep_until_opt(batch_deadline), if batch_deadline.is_some() => {
                    let sealed = self.batcher.seal_expired(Instant::now())?;
                    self.enqueue(sealed);
                }
                event = events.recv(), if input_open && below_cap => match event {
                    Some(event) => self.take_events(event, &mut events)?,
                    None => {
                        input_open = false;
                        let sealed = self.batcher.seal_all(SealReason::Shutdown)?;
                        self.enqueue(sealed);
                    }
                },
            }
            self.start_uploads();
            self.report_memory();
        }
    }

    /// Handles `first` and whatever else is ready, up to [`EVENTS_PER_WAKEUP`] or the memory cap.
    fn take_events(
        &mut self,
        first: SourceEvent,
        events: &mut mpsc::Receiver<SourceEvent>,
    ) -> Result<(), DeliveryError> {
        let now = Instant::now();
        let acks = self.acks.clone();
        let mut acks = lock_acks(&acks);
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(event) = next.take() {
            match event {
                SourceEvent::Line(line) => match self.batcher.add(&line, now) {
                    Ok(added) => {
                        acks.line(line.file, added.batch, line.start, resume_point(&line));
                        self.enqueue(added.sealed);
                    }
                    Err(error) if error.is_line_only() => {
                        LineEncodeFailed { error: &error }.emit();
                        acks.consumed(line.file, resume_point(&line));
                    }
                    Err(error) => return Err(error.into()),
                },
                SourceEvent::Consumed {
                    file,
                    end,
                    end_marker,
                    unfinished,
                } => acks.consumed(
                    file,
                    Position {
                        offset: end,
                        marker: end_marker,
                        unfinished,
                    },
                ),
                SourceEvent::Closed { file } => acks.closed(file),
            }
            let sealed = self.batcher.relieve_memory(self.sealed_bytes)?;
            self.enqueue(sealed);
            let sealed = self.batcher.relieve_buffer()?;
            self.enqueue(sealed);
            taken += 1;
            if taken < EVENTS_PER_WAKEUP && self.can_take() {
                next = events.try_recv().ok();
            }
        }
        Ok(())
    }

    fn enqueue(&mut self, sealed: Vec<SealedBatch>) {
        for batch in sealed {
            self.sealed_bytes += batch.body.memory();
            self.sealed_batches += 1;
            self.sealed_lines += batch.lines;
            self.queue.push_back(Pending {
                batch: Arc::new(batch),
            });
        }
    }

    /// Starts queued uploads up to the concurrency, each only while its body (read from the disk
    /// buffer) fits under the memory cap; one may always run.
    fn start_uploads(&mut self) {
        while self.uploading.len() < self.config.upload_concurrency.max(1) {
            let Some(front) = self.queue.front() else {
                break;
            };
            let loaded = upload_memory(&front.batch.body);
            if !self.uploading.is_empty()
                && self.memory_used() + loaded > self.config.limits.memory_limit
            {
                break;
            }
            let Some(pending) = self.queue.pop_front() else {
                break;
            };
            self.sealed_bytes += loaded;
            let uploader = Arc::clone(&self.uploader);
            self.uploading.spawn(async move {
                let body = request_body(&pending.batch.body).await?;
                uploader.upload(&pending.batch, body).await?;
                Ok(pending.batch)
            });
        }
    }

    /// Records a stored batch: its lines are confirmed and its memory and disk buffer freed.
    fn confirm(&mut self, batch: &SealedBatch) {
        self.acks.confirm(batch.id);
        self.batcher.release(&batch.body);
        let held = batch.body.memory() + upload_memory(&batch.body);
        self.sealed_bytes = self.sealed_bytes.saturating_sub(held);
        self.sealed_batches = self.sealed_batches.saturating_sub(1);
        self.sealed_lines = self.sealed_lines.saturating_sub(batch.lines);
    }

    fn abandon(mut self) -> DeliveryOutcome {
        self.uploading.abort_all();
        let outcome = if self.sealed_batches == 0 {
            DeliveryOutcome::Complete
        } else {
            UploadsAbandoned {
                batches: self.sealed_batches,
                lines: self.sealed_lines,
            }
            .emit();
            DeliveryOutcome::Abandoned {
                batches: self.sealed_batches,
                lines: self.sealed_lines,
            }
        };
        let open = self.batcher.open_batches();
        if open > 0 {
            tracing::warn!(
                open,
                "shutdown grace period over with batches still open (sources did not stop)"
            );
        }
        outcome
    }

    fn memory_used(&self) -> u64 {
        self.batcher.open_memory() + self.sealed_bytes
    }

    /// Whether events may be taken: under the memory cap and the disk buffer limit.
    fn can_take(&self) -> bool {
        self.memory_used() < self.config.limits.memory_limit && !self.batcher.buffer().is_full()
    }

    fn set_backpressure(&mut self, active: bool) {
        if active != self.backpressure {
            self.backpressure = active;
            Backpressure {
                active,
                memory_bytes: self.memory_used(),
                buffer_bytes: self.batcher.buffer().used(),
            }
            .emit();
        }
    }

    fn report_memory(&self) {
        let buffer_open_bytes = self.batcher.open_spilled();
        BatchMemory {
            open_batches: self.batcher.open_batches(),
            open_bytes: self.batcher.open_memory(),
            sealed_bytes: self.sealed_bytes,
            sealed_batches: self.sealed_batches,
            buffer_open_bytes,
            buffer_sealed_bytes: self
                .batcher
                .buffer()
                .used()
                .saturating_sub(buffer_open_bytes),
        }
        .emit();
    }
}

/// The body as its upload takes it: streamed from its disk buffer file, or in memory. A body
/// whose file and memory both hold members (a write the buffer refused) is read into memory.
async fn request_body(body: &ObjectBody) -> Result<RequestBody, BufferError> {
    Ok(match &body.spilled {
        None => RequestBody::Memory(body.tail.clone()),
        Some(file) if body.tail.is_empty() => RequestBody::File {
            path: file.path().to_path_buf(),
            len: file.len(),
        },
        Some(_) => RequestBody::Memory(body.load().await?),
    })
}

/// Memory an upload of `body` takes beyond the body's own in-memory members.
fn upload_memory(body: &ObjectBody) -> u64 {
    if body.spilled.is_some() && !body.tail.is_empty() {
        body.on_disk()
    } else {
        0
    }
}

/// The file's resume point after `line`.
fn resume_point(line: &Line) -> Position {
    Position {
        offset: line.end,
        marker: line.end_marker,
        unfinished: line.unfinished,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::testing::{decode, lines};
    use crate::sink::directory::DirectoryService;
    use crate::sink::retry::RetryPolicy;
    use crate::sink::{ObjectService, Uploader};
    use crate::source_event::FileId;
    use logrelay_common::record::LogRecord;
    use std::path::{Path, PathBuf};

    struct Rig {
        _dir: tempfile::TempDir,
        out: PathBuf,
        buffer: PathBuf,
        acks: SharedAcks,
        uploader: Uploader,
    }

    fn rig() -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let service = ObjectService::Directory(DirectoryService::new(&out).expect("creates"));
        let retry = RetryPolicy {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        };
        Rig {
            buffer: dir.path().join("buffer"),
            _dir: dir,
            out,
            acks: SharedAcks::default(),
            uploader: Uploader::new(service, retry, ""),
        }
    }

    fn config(limits: BatchLimits) -> DeliveryConfig {
        DeliveryConfig {
            limits,
            node_name: "node-1".into(),
            compression: logrelay_common::codec::WRITE_COMPRESSION,
            upload_concurrency: 2,
            shutdown_grace: Duration::from_secs(5),
        }
    }

    fn limits() -> BatchLimits {
        BatchLimits {
            max_bytes: 1 << 20,
            timeout: Duration::from_secs(30),
            memory_limit: 64 << 20,
            max_open: 16,
        }
    }

    type Started = (
        mpsc::Sender<SourceEvent>,
        CancellationToken,
        tokio::task::JoinHandle<Result<DeliveryOutcome, DeliveryError>>,
    );

    fn start(rig: &Rig, limits: BatchLimits) -> Started {
        start_with_buffer(rig, limits, 1 << 30)
    }

    /// A delivery loop over the rig's sink and a disk buffer of `buffer_limit` bytes.
    fn delivery(rig: &Rig, limits: BatchLimits, buffer_limit: u64) -> Delivery {
        let (buffer, _) = DiskBuffer::open(&rig.buffer, buffer_limit).expect("opens");
        Delivery::new(
            config(limits),
            FileRegistry::new(),
            rig.acks.clone(),
            rig.uploader.clone(),
            buffer,
        )
    }

    fn start_with_buffer(rig: &Rig, limits: BatchLimits, buffer_limit: u64) -> Started {
        let (tx, rx) = mpsc::channel(64);
        let shutdown = CancellationToken::new();
        let delivery = delivery(rig, limits, buffer_limit);
        let task = tokio::spawn(delivery.run(rx, shutdown.clone()));
        (tx, shutdown, task)
    }

    /// Every object file under `root`, in path order.
    fn stored_objects(root: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        files.sort();
        files
    }

    /// Every stored record under `root`, objects in path order.
    async fn stored(root: &Path) -> Vec<LogRecord> {
        let mut records = Vec::new();
        for file in stored_objects(root) {
            assert!(
                file.to_string_lossy().ends_with(".json.gz"),
                "only whole objects: {file:?}"
            );
            records.extend(decode(&std::fs::read(&file).expect("reads")).await);
        }
        records
    }

    /// Blocks the directory sink: its root becomes a regular file, so every write fails.
    fn break_sink(out: &Path) {
        std::fs::remove_dir_all(out).expect("removes");
        std::fs::write(out, b"not a directory").expect("writes");
    }

    fn repair_sink(out: &Path) {
        std::fs::remove_file(out).expect("removes");
        std::fs::create_dir(out).expect("creates");
    }

    #[tokio::test]
    async fn every_line_is_stored_and_acknowledged_when_the_input_ends() {
        let rig = rig();
        let (tx, _shutdown, task) = start(&rig, limits());
        for event in lines(1, "pod-a", "a", 50)
            .into_iter()
            .chain(lines(2, "pod-b", "b", 30))
        {
            tx.send(event).await.expect("sends");
        }
        tx.send(SourceEvent::Consumed {
            file: FileId(2),
            end: 1000,
            end_marker: 5,
            unfinished: crate::source_event::Unfinished::NONE,
        })
        .await
        .expect("sends");
        drop(tx);
        assert_eq!(
            task.await.expect("joins").expect("delivers"),
            DeliveryOutcome::Complete
        );
        let records = stored(&rig.out).await;
        assert_eq!(records.len(), 80);
        let pod_a: Vec<&str> = records
            .iter()
            .filter(|r| r.pod_name == "pod-a")
            .map(|r| r.message.as_str())
            .collect();
        assert_eq!(pod_a, (0..50).map(|i| format!("a{i}")).collect::<Vec<_>>());
        let acks = lock_acks(&rig.acks);
        assert!(acks.all_acknowledged());
        assert_eq!(acks.acknowledged(FileId(2)).map(|p| p.offset), Some(1000));
        assert!(acks.acknowledged(FileId(1)).is_some_and(|p| p.offset > 0));
    }

    #[tokio::test(start_paused = true)]
    async fn open_batch_is_stored_once_the_batch_timeout_passes() {
        let rig = rig();
        let (tx, _shutdown, _task) = start(&rig, limits());
        for event in lines(1, "pod-a", "a", 3) {
            tx.send(event).await.expect("sends");
        }
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert!(stored(&rig.out).await.is_empty(), "not before the timeout");
        assert_eq!(lock_acks(&rig.acks).acknowledged(FileId(1)), None);
        tokio::time::sleep(Duration::from_secs(2)).await;
        // The upload runs on the blocking pool: give it real time.
        for _ in 0..200 {
            if lock_acks(&rig.acks).acknowledged(FileId(1)).is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(stored(&rig.out).await.len(), 3);
        assert!(lock_acks(&rig.acks).acknowledged(FileId(1)).is_some());
    }

    #[tokio::test]
    async fn batches_are_sealed_at_their_timeout_while_events_never_stop_coming() {
        const EVENTS: usize = 100_000;
        let rig = rig();
        // A backlog the loop cannot take in one turn: the channel is ready on every poll.
        let (tx, rx) = mpsc::channel(EVENTS);
        for event in lines(1, "pod-a", "a", EVENTS) {
            tx.try_send(event).expect("room");
        }
        drop(tx);
        let limits = BatchLimits {
            timeout: Duration::from_millis(20),
            ..limits()
        };
        let started = Instant::now();
        let outcome = delivery(&rig, limits, 1 << 30)
            .run(rx, CancellationToken::new())
            .await
            .expect("delivers");
        assert_eq!(outcome, DeliveryOutcome::Complete);
        let took = started.elapsed();
        let objects = stored_objects(&rig.out).len();
        assert_eq!(stored(&rig.out).await.len(), EVENTS);
        // One object per timeout while the backlog lasted (minus scheduling slack), not one at
        // the end.
        let expected = (took.as_millis() / 20 / 4) as usize;
        assert!(objects >= expected.max(2), "{objects} objects in {took:?}");
    }

    /// Bytes in the disk buffer's files.
    fn buffered_bytes(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .expect("lists")
            .map(|e| e.expect("entry").metadata().expect("stat").len())
            .sum()
    }

    /// `count` incompressible lines (~400 bytes) of `pod`'s file `file`, numbered from `first`.
    fn noisy_lines(file: u64, pod: &str, first: u64, count: u64) -> Vec<SourceEvent> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(file);
        let mut offset = 0;
        (first..first + count)
            .map(|i| {
                let noise: String = (0..50)
                    .flat_map(|_| rng.random::<u64>().to_le_bytes())
                    .map(|b| char::from(b'!' + b % 94))
                    .collect();
                let l = crate::batch::testing::line(file, offset, pod, &format!("{i:08} {noise}"));
                offset = l.end;
                SourceEvent::Line(l)
            })
            .collect()
    }

    #[tokio::test]
    async fn failing_sink_stops_reading_at_the_disk_buffer_limit_and_nothing_is_lost() {
        use std::sync::atomic::{AtomicU64, Ordering};
        const PER_POD: u64 = 10_000;
        const BUFFER_LIMIT: u64 = 2 << 20;
        let rig = rig();
        let limits = BatchLimits {
            max_bytes: 4 << 20,
            timeout: Duration::from_secs(30),
            memory_limit: crate::config::MIN_BATCH_MEMORY_LIMIT,
            max_open: 4,
        };
        break_sink(&rig.out);
        let (tx, _shutdown, task) = start_with_buffer(&rig, limits, BUFFER_LIMIT);
        let sent = Arc::new(AtomicU64::new(0));
        let progress = Arc::clone(&sent);
        let producer = tokio::spawn(async move {
            let a = noisy_lines(1, "pod-a", 0, PER_POD);
            let b = noisy_lines(2, "pod-b", PER_POD, PER_POD);
            for (x, y) in a.into_iter().zip(b) {
                for event in [x, y] {
                    tx.send(event).await.expect("delivery is running");
                    progress.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        // Wait until the source has been blocked for a second (a slow machine takes a while to
        // fill the buffer).
        let mut blocked_at = sent.load(Ordering::Relaxed);
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            let now = sent.load(Ordering::Relaxed);
            if now == blocked_at {
                break;
            }
            blocked_at = now;
        }
        assert!(
            blocked_at < 2 * PER_POD,
            "the source is blocked while the sink fails: {blocked_at} lines taken"
        );
        // Held on disk: the limit plus at most one member per batch past it.
        let on_disk = buffered_bytes(&rig.buffer);
        assert!(on_disk >= BUFFER_LIMIT, "{on_disk} bytes buffered");
        assert!(
            on_disk < BUFFER_LIMIT + (600 << 10),
            "{on_disk} bytes buffered"
        );
        repair_sink(&rig.out);
        producer
            .await
            .expect("producer finishes once the sink works");
        let outcome = task.await.expect("joins").expect("delivers");
        assert_eq!(outcome, DeliveryOutcome::Complete);
        let mut seen: Vec<u64> = stored(&rig.out)
            .await
            .iter()
            .map(|r| r.message[..8].parse().expect("number"))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len() as u64, 2 * PER_POD, "every line stored");
        assert_eq!(
            buffered_bytes(&rig.buffer),
            0,
            "confirmed batches leave the disk"
        );
        // ~8 MiB of NDJSON in 4 MiB batches: the buffer limit seals batches of ~1 MiB at the
        // smallest, never line by line.
        let objects = stored_objects(&rig.out).len();
        assert!(objects <= 12, "{objects} objects");
    }

    #[tokio::test(start_paused = true)]
    async fn uploads_unfinished_at_the_end_of_the_grace_period_are_abandoned_unacknowledged() {
        let rig = rig();
        break_sink(&rig.out);
        let (tx, shutdown, task) = start(&rig, limits());
        for event in lines(1, "pod-a", "a", 5) {
            tx.send(event).await.expect("sends");
        }
        drop(tx);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(
            !task.is_finished(),
            "uploads keep retrying without a shutdown signal"
        );
        shutdown.cancel();
        let outcome = task.await.expect("joins").expect("ends");
        assert_eq!(
            outcome,
            DeliveryOutcome::Abandoned {
                batches: 1,
                lines: 5
            }
        );
        assert_eq!(lock_acks(&rig.acks).acknowledged(FileId(1)), None);
    }
}
