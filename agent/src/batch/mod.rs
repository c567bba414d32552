//! Batching: one open batch per partition (`customer_id/cluster_id/application/pod_name`),
//! compressed a chunk at a time while lines are appended ([`chunked`]) into the batch's file in
//! the disk buffer ([`buffer`]), sealed into an object-to-be when it reaches `--batch-max-bytes`,
//! when it is older than `--batch-timeout`, when the disk buffer is full, or when the open-batch
//! limit needs room.
//!
//! Memory holds only each open batch's pending lines: when they reach the memory cap, the largest
//! are compressed to disk early ([`Batcher::relieve_memory`]) and their batches stay open, so the
//! size of an object does not depend on how many partitions are busy.
//!
//! [`Batcher`] is plain synchronous state: the delivery loop ([`crate::delivery`]) feeds it lines and
//! the clock, and ships what it seals. A sealed batch carries its deterministic key
//! ([`object_key`]) and the file ranges it covers, for acknowledgement tracking.

pub mod buffer;
pub mod chunked;
pub mod object_key;
#[cfg(test)]
pub(crate) mod testing;

use crate::checkpoint::FileRegistry;
use crate::internal_events::InternalEvent;
use crate::internal_events::batch::{BatchSealed, BufferWriteFailed};
use crate::source_event::{FileId, Line};
use buffer::{BufferError, DiskBuffer, SpillFile};
use bytes::Bytes;
use chunked::{ChunkedGzBody, SharedCompressor};
use flate2::Compression;
use logrelay_common::codec::CodecError;
#[cfg(doc)]
use logrelay_common::codec::WRITE_COMPRESSION;
use logrelay_common::key::{KeyError, ObjectKey, Partition};
use logrelay_common::record::LogRecord;
use object_key::FirstLine;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// Default `--batch-max-bytes`: 10 MiB of uncompressed NDJSON per object, like the Vector
/// `aws_s3` sink of the proof of concept logrelay replaces (`batch.max_bytes = 10485760`).
pub const DEFAULT_BATCH_MAX_BYTES: u64 = 10 << 20;

/// Default `--batch-timeout`: 300 s, like the proof of concept's Vector sink
/// (`batch.timeout_secs = 300`).
pub const DEFAULT_BATCH_TIMEOUT: Duration = Duration::from_secs(300);

/// Default `--batch-memory-limit`: 16 MiB for open batches' pending lines plus the sealed bodies
/// held in memory (those that never needed the disk buffer). With the runtime, read buffers and
/// channels the agent stays under 64 MiB of RSS at 1,000 busy files (BENCHMARKS.md).
pub const DEFAULT_BATCH_MEMORY_LIMIT: u64 = 16 << 20;

/// Default `--batch-max-open`: open batches (partitions) at once; bounds the map and the
/// bookkeeping per batch. An open batch costs only its pending lines (see [`chunked`]), which the
/// memory cap moves to disk, so the limit is far above a node's pod count (the kubelet's
/// `maxPods` defaults to 110, 250 on large ROSA nodes).
pub const DEFAULT_MAX_OPEN_BATCHES: usize = 1024;

/// Pending lines smaller than this are not compressed early for memory while sealed bodies hold
/// most of it (tiny members compress poorly; uploads will free memory anyway).
pub const MIN_SPILL_BYTES: usize = 16 << 10;

/// Fraction of the memory cap, in eighths, that relieving memory brings the batcher back under,
/// so that one relief compresses several batches rather than one per line.
const RELIEVE_TO_EIGHTHS: u64 = 7;

/// Memory counted for an open batch besides its buffers: the map entry, its key and its file
/// ranges (a rounded-up estimate, so that many tiny batches still add up against the cap).
pub const OPEN_BATCH_OVERHEAD_BYTES: u64 = 1 << 10;

/// Limits of the batcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Seal a batch when its uncompressed NDJSON reaches this many bytes.
    pub max_bytes: u64,
    /// Seal a batch this long after its first line.
    pub timeout: Duration,
    /// Cap on open batches' pending lines plus the sealed bodies held in memory.
    pub memory_limit: u64,
    /// Cap on open batches.
    pub max_open: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_BATCH_MAX_BYTES,
            timeout: DEFAULT_BATCH_TIMEOUT,
            memory_limit: DEFAULT_BATCH_MEMORY_LIMIT,
            max_open: DEFAULT_MAX_OPEN_BATCHES,
        }
    }
}

/// Identifies a batch within this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId(pub u64);

/// Why a batch was sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SealReason {
    /// It reached `--batch-max-bytes`.
    Size,
    /// It was open for `--batch-timeout`.
    Timeout,
    /// The disk buffer was full (the batch holding most of it first).
    BufferFull,
    /// The disk buffer could not be written; the batch is kept in memory and shipped at once.
    BufferError,
    /// Another partition needed a slot under `--batch-max-open` (oldest first).
    OpenLimit,
    /// The agent is shutting down.
    Shutdown,
}

impl SealReason {
    /// The reason as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SealReason::Size => "size",
            SealReason::Timeout => "timeout",
            SealReason::BufferFull => "buffer_full",
            SealReason::BufferError => "buffer_error",
            SealReason::OpenLimit => "open_limit",
            SealReason::Shutdown => "shutdown",
        }
    }
}

/// The lines of one file in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRange {
    /// The file.
    pub file: FileId,
    /// Start of the first line.
    pub start: u64,
    /// End of the last line.
    pub end: u64,
    /// End marker of the last line.
    pub end_marker: u64,
    /// Lines of this file in the batch.
    pub lines: u64,
}

/// A sealed batch's gzip NDJSON body: its members in the disk buffer, if any, followed by those
/// held in memory.
#[derive(Debug, Clone)]
pub struct ObjectBody {
    /// Members in the disk buffer.
    pub spilled: Option<SpillFile>,
    /// Members in memory (the whole body of a batch that never needed the disk, or what the disk
    /// buffer could not take).
    pub tail: Bytes,
}

impl ObjectBody {
    /// Size of the whole body.
    pub fn len(&self) -> u64 {
        self.on_disk() + self.tail.len() as u64
    }

    /// Whether the body is empty (never: a sealed body is at least one gzip member).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held in memory while the batch waits for upload.
    pub fn memory(&self) -> u64 {
        self.tail.len() as u64
    }

    /// Bytes in the disk buffer.
    pub fn on_disk(&self) -> u64 {
        self.spilled.as_ref().map_or(0, SpillFile::len)
    }

    /// The whole body, read from the disk buffer when needed.
    pub async fn load(&self) -> Result<Bytes, BufferError> {
        match &self.spilled {
            None => Ok(self.tail.clone()),
            Some(file) => {
                let mut body = file.read(self.tail.len()).await?;
                body.extend_from_slice(&self.tail);
                Ok(Bytes::from(body))
            }
        }
    }
}

/// A finished batch: a complete gzip NDJSON object and where its lines came from.
#[derive(Debug, Clone)]
pub struct SealedBatch {
    /// The batch.
    pub id: BatchId,
    /// Where the object goes (partition, created time, deterministic id).
    pub key: ObjectKey,
    /// The gzip NDJSON body.
    pub body: ObjectBody,
    /// Records in the body.
    pub lines: u64,
    /// Uncompressed size of the body.
    pub uncompressed_bytes: u64,
    /// Per-file ranges covered.
    pub ranges: Vec<FileRange>,
    /// Why it was sealed.
    pub reason: SealReason,
}

/// Batching failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The record could not be encoded; only this line is affected (the caller drops and counts
    /// it), the batch is intact.
    #[error("cannot encode record: {0}")]
    Encode(#[source] CodecError),
    /// A batch could not be finished into an object (an internal error: its lines stay
    /// unacknowledged, so the agent must stop and re-read them after a restart).
    #[error("cannot finish object: {0}")]
    Finish(#[source] CodecError),
    /// A batch's object key could not be built (internal error, as for [`Self::Finish`]).
    #[error("cannot build object key: {0}")]
    Key(#[from] KeyError),
}

impl BatchError {
    /// Whether only the one line is lost to this error (the batcher can go on).
    pub fn is_line_only(&self) -> bool {
        matches!(self, BatchError::Encode(_))
    }
}

/// One partition's batch being filled.
struct OpenBatch {
    id: BatchId,
    body: ChunkedGzBody,
    spill: Option<SpillFile>,
    opened_at: Instant,
    first: FirstLine,
    ranges: Vec<FileRange>,
}

impl OpenBatch {
    fn memory(&self) -> u64 {
        OPEN_BATCH_OVERHEAD_BYTES + self.body.memory()
    }

    fn spilled(&self) -> u64 {
        self.spill.as_ref().map_or(0, SpillFile::len)
    }

    fn note_line(&mut self, line: &Line) {
        match self.ranges.iter_mut().find(|r| r.file == line.file) {
            Some(range) => {
                range.start = range.start.min(line.start);
                range.end = range.end.max(line.end);
                range.end_marker = line.end_marker;
                range.lines += 1;
            }
            None => self.ranges.push(FileRange {
                file: line.file,
                start: line.start,
                end: line.end,
                end_marker: line.end_marker,
                lines: 1,
            }),
        }
    }
}

/// What [`Batcher::add`] did with a line.
#[derive(Debug)]
pub struct Added {
    /// The batch the line went into.
    pub batch: BatchId,
    /// Batches sealed while adding (a full one, or the oldest to free a slot).
    pub sealed: Vec<SealedBatch>,
}

/// The open batches of all partitions.
pub struct Batcher {
    limits: BatchLimits,
    node: String,
    registry: FileRegistry,
    open: HashMap<Partition, OpenBatch>,
    last_partition: Option<Partition>,
    /// Sum of the open batches' [`OpenBatch::memory`], kept current on every change (checked
    /// per line, so it must not cost a walk over hundreds of batches).
    open_bytes: u64,
    /// Sum of the open batches' bytes in the disk buffer.
    open_spilled: u64,
    buffer: DiskBuffer,
    compressor: SharedCompressor,
    /// One member being compressed (reused).
    scratch: Vec<u8>,
    next_id: u64,
}

impl Batcher {
    /// A batcher for records read on `node`, compressing into `buffer`; `registry` gives file
    /// identities for keys.
    pub fn new(
        limits: BatchLimits,
        node: impl Into<String>,
        registry: FileRegistry,
        buffer: DiskBuffer,
    ) -> Self {
        Self {
            limits,
            node: node.into(),
            registry,
            open: HashMap::new(),
            last_partition: None,
            open_bytes: 0,
            open_spilled: 0,
            buffer,
            compressor: SharedCompressor::default(),
            scratch: Vec::new(),
            next_id: 1,
        }
    }

    /// The same batcher compressing objects at `level` (default [`WRITE_COMPRESSION`]).
    pub fn with_compression(mut self, level: Compression) -> Self {
        self.compressor = SharedCompressor::new(level);
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> BatchLimits {
        self.limits
    }

    /// Appends a line to its partition's batch, opening one (and sealing the oldest when
    /// `max_open` batches are open) if needed; seals the batch when it reaches `max_bytes`.
    pub fn add(&mut self, line: &Line, now: Instant) -> Result<Added, BatchError> {
        let partition = self.partition_of(&line.record);
        let added = self.add_to(&partition, line, now);
        self.last_partition = Some(partition);
        added
    }

    /// The record's partition. Consecutive lines mostly share one: the last is reused rather than
    /// allocating four strings per line.
    fn partition_of(&mut self, record: &LogRecord) -> Partition {
        match self.last_partition.take() {
            Some(last)
                if last.customer_id == record.customer_id
                    && last.cluster_id == record.cluster_id
                    && last.application == record.application
                    && last.pod_name == record.pod_name =>
            {
                last
            }
            _ => Partition::new(
                record.customer_id.as_str(),
                record.cluster_id.as_str(),
                record.application.as_str(),
                record.pod_name.as_str(),
            ),
        }
    }

    fn add_to(
        &mut self,
        partition: &Partition,
        line: &Line,
        now: Instant,
    ) -> Result<Added, BatchError> {
        let record = &line.record;
        let mut sealed = Vec::new();
        if !self.open.contains_key(partition)
            && self.open.len() >= self.limits.max_open
            && let Some(oldest) = self.oldest()
        {
            sealed.extend(self.seal(&oldest, SealReason::OpenLimit)?);
        }
        let (batch, is_new) = match self.open.get_mut(partition) {
            Some(batch) => (batch, false),
            None => {
                let id = BatchId(self.next_id);
                self.next_id += 1;
                let first = FirstLine {
                    file: line.file,
                    start: line.start,
                    end_marker: line.end_marker,
                    timestamp: record.timestamp,
                    ingest_timestamp: record.ingest_timestamp,
                };
                let open = OpenBatch {
                    id,
                    body: ChunkedGzBody::new(),
                    spill: None,
                    opened_at: now,
                    first,
                    ranges: Vec::new(),
                };
                (self.open.entry(partition.clone()).or_insert(open), true)
            }
        };
        let before = batch.memory();
        let written = batch.body.write_record(record);
        let after = batch.memory();
        if !is_new {
            self.open_bytes -= before;
        }
        self.open_bytes += after;
        if let Err(err) = written {
            // A failed record leaves nothing in the body, which stays intact; a batch this line
            // would have opened is dropped.
            if batch.body.lines() == 0 {
                self.open_bytes -= after;
                self.open.remove(partition);
            }
            return Err(BatchError::Encode(err));
        }
        batch.note_line(line);
        let id = batch.id;
        let full = batch.body.uncompressed_bytes() >= self.limits.max_bytes;
        if full {
            sealed.extend(self.seal(partition, SealReason::Size)?);
        } else if batch.body.chunk_is_full() {
            sealed.extend(self.spill(partition)?);
        }
        Ok(Added { batch: id, sealed })
    }

    /// Compresses `partition`'s pending lines into a member in the disk buffer. When the buffer
    /// cannot be written the batch is sealed at once with the member in memory (returned).
    fn spill(&mut self, partition: &Partition) -> Result<Option<SealedBatch>, BatchError> {
        let Some(batch) = self.open.get_mut(partition) else {
            return Ok(None);
        };
        self.scratch.clear();
        let before = batch.memory();
        batch
            .body
            .compress_into(&mut self.compressor, &mut self.scratch)
            .map_err(BatchError::Finish)?;
        self.open_bytes = self.open_bytes - before + batch.memory();
        match self
            .buffer
            .append(&mut batch.spill, batch.id, &self.scratch)
        {
            Ok(()) => {
                self.open_spilled += self.scratch.len() as u64;
                Ok(None)
            }
            Err(error) => {
                BufferWriteFailed { error: &error }.emit();
                let in_memory = std::mem::take(&mut self.scratch);
                self.seal_after(partition, SealReason::BufferError, in_memory)
            }
        }
    }

    /// While open batches' pending lines plus `sealed_memory` (sealed bodies held in memory)
    /// reach the memory cap, compresses the largest pending lines to disk (their batches stay
    /// open), down to 7/8 of the cap. When sealed bodies hold most of the memory, batches with
    /// less than [`MIN_SPILL_BYTES`] pending are left (the caller stops reading until uploads
    /// free memory). Returns batches sealed because the disk buffer could not be written.
    pub fn relieve_memory(&mut self, sealed_memory: u64) -> Result<Vec<SealedBatch>, BatchError> {
        let mut sealed = Vec::new();
        if self.open_bytes + sealed_memory < self.limits.memory_limit {
            return Ok(sealed);
        }
        let target = self.limits.memory_limit / 8 * RELIEVE_TO_EIGHTHS;
        while self.open_bytes + sealed_memory > target {
            // Small members only when pending lines hold most of the memory: reading would
            // otherwise stop until a timeout.
            let min = if self.open_bytes > sealed_memory {
                1
            } else {
                MIN_SPILL_BYTES
            };
            let Some(largest) = self.largest_pending(min) else {
                break;
            };
            sealed.extend(self.spill(&largest)?);
        }
        Ok(sealed)
    }

    /// The partition with the most pending bytes, if it has at least `min`.
    fn largest_pending(&self, min: usize) -> Option<Partition> {
        self.open
            .iter()
            .map(|(p, b)| (p, b.body.pending_bytes()))
            .filter(|(_, pending)| *pending >= min)
            .max_by_key(|(_, pending)| *pending)
            .map(|(p, _)| p.clone())
    }

    /// While the disk buffer is full and open batches hold more of it than sealed ones, seals the
    /// open batch holding the most. When sealed batches hold most of it, sealing would only make
    /// small objects: the caller stops reading instead until uploads free room.
    pub fn relieve_buffer(&mut self) -> Result<Vec<SealedBatch>, BatchError> {
        let mut sealed = Vec::new();
        while self.buffer.is_full()
            && self.open_spilled > self.buffer.used().saturating_sub(self.open_spilled)
        {
            let Some(largest) = self
                .open
                .iter()
                .max_by_key(|(_, b)| b.spilled())
                .map(|(p, _)| p.clone())
            else {
                break;
            };
            sealed.extend(self.seal(&largest, SealReason::BufferFull)?);
        }
        Ok(sealed)
    }

    /// Frees a confirmed body's disk buffer file.
    pub fn release(&mut self, body: &ObjectBody) {
        if let Some(spill) = &body.spilled {
            self.buffer.release(spill);
        }
    }

    /// The disk buffer.
    pub fn buffer(&self) -> &DiskBuffer {
        &self.buffer
    }

    /// Disk buffer bytes of open batches.
    pub fn open_spilled(&self) -> u64 {
        self.open_spilled
    }

    /// When the next open batch times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.open
            .values()
            .map(|b| b.opened_at + self.limits.timeout)
            .min()
    }

    /// Seals every batch open for `timeout` or longer at `now`.
    pub fn seal_expired(&mut self, now: Instant) -> Result<Vec<SealedBatch>, BatchError> {
        let expired: Vec<Partition> = self
            .open
            .iter()
            .filter(|(_, b)| b.opened_at + self.limits.timeout <= now)
            .map(|(p, _)| p.clone())
            .collect();
        let mut sealed = Vec::with_capacity(expired.len());
        for partition in expired {
            sealed.extend(self.seal(&partition, SealReason::Timeout)?);
        }
        Ok(sealed)
    }

    /// Seals every open batch.
    pub fn seal_all(&mut self, reason: SealReason) -> Result<Vec<SealedBatch>, BatchError> {
        let all: Vec<Partition> = self.open.keys().cloned().collect();
        let mut sealed = Vec::with_capacity(all.len());
        for partition in all {
            sealed.extend(self.seal(&partition, reason)?);
        }
        Ok(sealed)
    }

    /// Memory held by open batches (pending lines, bookkeeping).
    pub fn open_memory(&self) -> u64 {
        self.open_bytes
    }

    /// Number of open batches.
    pub fn open_batches(&self) -> usize {
        self.open.len()
    }

    fn oldest(&self) -> Option<Partition> {
        self.open
            .iter()
            .min_by_key(|(_, b)| b.opened_at)
            .map(|(p, _)| p.clone())
    }

    fn seal(
        &mut self,
        partition: &Partition,
        reason: SealReason,
    ) -> Result<Option<SealedBatch>, BatchError> {
        self.seal_after(partition, reason, Vec::new())
    }

    /// Seals `partition`'s batch: its members in the disk buffer, then `in_memory` (members the
    /// buffer could not take), then its pending lines as the last member.
    fn seal_after(
        &mut self,
        partition: &Partition,
        reason: SealReason,
        mut in_memory: Vec<u8>,
    ) -> Result<Option<SealedBatch>, BatchError> {
        let Some(mut open) = self.open.remove(partition) else {
            return Ok(None);
        };
        self.open_bytes -= open.memory();
        self.open_spilled -= open.spilled();
        let lines = open.body.lines();
        let uncompressed_bytes = open.body.uncompressed_bytes();
        let key = object_key::batch_key(
            &self.registry,
            &self.node,
            partition.clone(),
            &open.first,
            &open.ranges,
        )?;
        let last_to_disk = in_memory.is_empty() && open.spill.is_some();
        if last_to_disk {
            self.scratch.clear();
            open.body
                .compress_into(&mut self.compressor, &mut self.scratch)
                .map_err(BatchError::Finish)?;
            if !self.scratch.is_empty()
                && let Err(error) = self.buffer.append(&mut open.spill, open.id, &self.scratch)
            {
                BufferWriteFailed { error: &error }.emit();
                in_memory = std::mem::take(&mut self.scratch);
            }
        } else {
            open.body
                .compress_into(&mut self.compressor, &mut in_memory)
                .map_err(BatchError::Finish)?;
        }
        // The tail is held until the upload is confirmed: no spare capacity.
        in_memory.shrink_to_fit();
        let body = ObjectBody {
            spilled: open.spill,
            tail: Bytes::from(in_memory),
        };
        BatchSealed {
            reason: reason.as_str(),
            lines,
            uncompressed_bytes,
            compressed_bytes: body.len(),
        }
        .emit();
        Ok(Some(SealedBatch {
            id: open.id,
            key,
            body,
            lines,
            uncompressed_bytes,
            ranges: open.ranges,
            reason,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{decode, line, test_buffer};
    use super::*;
    use crate::checkpoint::FileIdentity;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    fn limits() -> BatchLimits {
        BatchLimits {
            max_bytes: 1 << 20,
            timeout: Duration::from_secs(10),
            memory_limit: 64 << 20,
            max_open: 8,
        }
    }

    /// A batcher over a disk buffer in a temporary directory.
    struct Rig {
        _dir: tempfile::TempDir,
        b: Batcher,
    }

    impl std::ops::Deref for Rig {
        type Target = Batcher;
        fn deref(&self) -> &Batcher {
            &self.b
        }
    }

    impl std::ops::DerefMut for Rig {
        fn deref_mut(&mut self) -> &mut Batcher {
            &mut self.b
        }
    }

    fn batcher(limits: BatchLimits) -> Rig {
        batcher_with(limits, FileRegistry::new(), 1 << 30)
    }

    fn batcher_with(limits: BatchLimits, registry: FileRegistry, buffer_limit: u64) -> Rig {
        let (dir, buffer) = test_buffer(buffer_limit);
        Rig {
            _dir: dir,
            b: Batcher::new(limits, "node-1", registry, buffer),
        }
    }

    async fn load(batch: &SealedBatch) -> Bytes {
        batch.body.load().await.expect("loads")
    }

    fn noise(rng: &mut SmallRng, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/";
        (0..len)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    }

    #[tokio::test]
    async fn each_partition_gets_its_own_object_with_its_records_in_order() {
        let mut b = batcher(limits());
        let now = Instant::now();
        let a1 = b.add(&line(1, 0, "pod-a", "a1"), now).expect("adds");
        let b1 = b.add(&line(2, 0, "pod-b", "b1"), now).expect("adds");
        let a2 = b.add(&line(1, 3, "pod-a", "a2"), now).expect("adds");
        assert_eq!(a1.batch, a2.batch);
        assert_ne!(a1.batch, b1.batch);
        assert_eq!(b.open_batches(), 2);
        let mut sealed = b.seal_all(SealReason::Shutdown).expect("seals");
        sealed.sort_by_key(|s| s.id);
        let pod_a = &sealed[0];
        assert_eq!(pod_a.key.partition.pod_name, "pod-a");
        assert_eq!(pod_a.lines, 2);
        assert_eq!(
            pod_a.ranges,
            vec![FileRange {
                file: FileId(1),
                start: 0,
                end: 6,
                end_marker: line(1, 3, "pod-a", "a2").end_marker,
                lines: 2
            }]
        );
        let messages: Vec<String> = decode(&load(pod_a).await)
            .await
            .into_iter()
            .map(|r| r.message)
            .collect();
        assert_eq!(messages, ["a1", "a2"]);
        assert_eq!(b.open_batches(), 0);
    }

    /// One object of the same log-like lines (repetitive text, random ids) at `level`.
    async fn object_at(level: Compression) -> (u64, Bytes) {
        let (_dir, buffer) = test_buffer(1 << 30);
        let mut b =
            Batcher::new(limits(), "node-1", FileRegistry::new(), buffer).with_compression(level);
        let mut rng = SmallRng::seed_from_u64(14);
        let now = Instant::now();
        let mut offset = 0;
        for i in 0..5_000 {
            let message = format!(
                "GET /api/v1/orders/{i} 200 {}ms request_id={}",
                i % 300,
                noise(&mut rng, 16)
            );
            let l = line(1, offset, "pod-a", &message);
            offset = l.end;
            b.add(&l, now).expect("adds");
        }
        let sealed = b.seal_all(SealReason::Shutdown).expect("seals");
        assert_eq!(sealed.len(), 1);
        (sealed[0].uncompressed_bytes, load(&sealed[0]).await)
    }

    #[tokio::test]
    async fn best_compression_makes_smaller_objects_that_decode_the_same() {
        let (fast_size, fast) = object_at(Compression::fast()).await;
        let (best_size, best) = object_at(Compression::best()).await;
        assert!(
            best.len() < fast.len(),
            "level 9: {} bytes, level 1: {} bytes",
            best.len(),
            fast.len()
        );
        assert_eq!(best_size, fast_size);
        assert_eq!(decode(&best).await, decode(&fast).await);
        assert_eq!(best[8], 2, "gzip XFL says maximum compression");
        assert_eq!(fast[8], 4, "gzip XFL says fastest");
    }

    #[test]
    fn batch_is_sealed_when_it_reaches_max_bytes() {
        let mut b = batcher(BatchLimits {
            max_bytes: 1000,
            ..limits()
        });
        let now = Instant::now();
        let mut offset = 0;
        let mut sealed = Vec::new();
        for i in 0..20 {
            let l = line(
                1,
                offset,
                "pod-a",
                &format!("message number {i:04} with some padding"),
            );
            offset = l.end;
            sealed.extend(b.add(&l, now).expect("adds").sealed);
        }
        assert!(!sealed.is_empty());
        for batch in &sealed {
            assert_eq!(batch.reason, SealReason::Size);
            assert!(batch.uncompressed_bytes >= 1000);
            assert!(
                batch.uncompressed_bytes < 1000 + 600,
                "sealed right after crossing the limit"
            );
        }
    }

    #[test]
    fn batch_is_sealed_once_its_timeout_passes() {
        let mut b = batcher(limits());
        let start = Instant::now();
        b.add(&line(1, 0, "pod-a", "x"), start).expect("adds");
        b.add(&line(2, 0, "pod-b", "y"), start + Duration::from_secs(5))
            .expect("adds");
        assert_eq!(b.next_deadline(), Some(start + Duration::from_secs(10)));
        assert!(
            b.seal_expired(start + Duration::from_secs(9))
                .expect("seals")
                .is_empty()
        );
        let sealed = b
            .seal_expired(start + Duration::from_secs(10))
            .expect("seals");
        assert_eq!(sealed.len(), 1);
        assert_eq!(
            (sealed[0].key.partition.pod_name.as_str(), sealed[0].reason),
            ("pod-a", SealReason::Timeout)
        );
        assert_eq!(b.next_deadline(), Some(start + Duration::from_secs(15)));
    }

    /// Adds `count` lines of `len` random bytes to `pod`'s file `file` from `offset`; returns
    /// the next offset and what was sealed.
    fn fill(
        b: &mut Batcher,
        rng: &mut SmallRng,
        (file, pod): (u64, &str),
        offset: u64,
        (count, len): (usize, usize),
    ) -> (u64, Vec<SealedBatch>) {
        let mut offset = offset;
        let mut sealed = Vec::new();
        for _ in 0..count {
            let l = line(file, offset, pod, &noise(rng, len));
            offset = l.end;
            sealed.extend(b.add(&l, Instant::now()).expect("adds").sealed);
        }
        (offset, sealed)
    }

    #[tokio::test]
    async fn memory_cap_moves_the_largest_pending_lines_to_disk_and_keeps_the_batch_open() {
        let mut b = batcher(BatchLimits {
            memory_limit: 1 << 20,
            ..limits()
        });
        let mut rng = SmallRng::seed_from_u64(7);
        let (_, sealed) = fill(&mut b, &mut rng, (1, "big"), 0, (40, 4000));
        assert!(sealed.is_empty());
        fill(&mut b, &mut rng, (2, "small"), 0, (1, 10));
        let before = b.open_memory();
        assert!(before > 150 << 10, "pending lines in memory: {before}");
        assert_eq!(b.buffer().used(), 0);
        // Sealed bodies in memory leave less room than the open batches need.
        let sealed_memory = b.limits().memory_limit - before + 1;
        let sealed = b.relieve_memory(sealed_memory).expect("relieves");
        assert!(sealed.is_empty(), "nothing sealed, only moved to disk");
        assert_eq!(b.open_batches(), 2);
        assert!(b.open_memory() < 8 << 10, "{} bytes left", b.open_memory());
        assert!(b.buffer().used() > 0);
        assert_eq!(b.open_spilled(), b.buffer().used());
        // The batch goes on filling and reads back whole.
        fill(&mut b, &mut rng, (1, "big"), 0, (5, 100));
        let mut sealed = b.seal_all(SealReason::Shutdown).expect("seals");
        sealed.sort_by_key(|s| s.id);
        assert_eq!(sealed[0].lines, 45);
        assert_eq!(decode(&load(&sealed[0]).await).await.len(), 45);
        // Nothing moved while under the cap.
        assert!(b.relieve_memory(0).expect("relieves").is_empty());
    }

    #[test]
    fn memory_cap_leaves_small_pending_lines_while_sealed_bodies_hold_the_memory() {
        let mut b = batcher(BatchLimits {
            memory_limit: 2 << 20,
            ..limits()
        });
        b.add(&line(1, 0, "pod-a", "x"), Instant::now())
            .expect("adds");
        // Over the cap, but a member of one line would compress poorly and uploads will free
        // memory: the caller stops reading.
        assert!(b.relieve_memory(2 << 20).expect("relieves").is_empty());
        assert_eq!(b.buffer().used(), 0);
        assert_eq!(b.open_batches(), 1);
    }

    #[test]
    fn memory_cap_moves_small_pending_lines_when_they_hold_the_memory() {
        let mut b = batcher(BatchLimits {
            memory_limit: 1 << 20,
            max_open: 1024,
            ..limits()
        });
        let mut rng = SmallRng::seed_from_u64(9);
        // 200 batches of ~8 KiB each: over the cap, none reaching MIN_SPILL_BYTES.
        for pod in 0..200u64 {
            fill(
                &mut b,
                &mut rng,
                (pod + 1, &format!("p{pod}")),
                0,
                (2, 4000),
            );
        }
        assert!(b.open_memory() > 1 << 20);
        assert!(b.relieve_memory(0).expect("relieves").is_empty());
        assert!(b.open_memory() <= (1 << 20) / 8 * 7, "{}", b.open_memory());
        assert_eq!(b.open_batches(), 200);
    }

    #[tokio::test]
    async fn a_thousand_busy_partitions_under_a_small_memory_cap_make_full_size_objects() {
        let max_bytes = 48 << 10;
        let memory_limit = 20 << 20;
        let mut b = batcher(BatchLimits {
            max_bytes,
            memory_limit,
            max_open: 1024,
            ..limits()
        });
        let mut rng = SmallRng::seed_from_u64(21);
        let mut offsets = vec![0u64; 1000];
        let mut sealed = Vec::new();
        let mut peak = 0;
        // Round-robin over 1,000 partitions: each gets ~60 KiB of NDJSON, 40 MiB of pending
        // lines in all if none went to disk.
        for _round in 0..50 {
            for (pod, offset) in offsets.iter_mut().enumerate() {
                let file = (pod as u64 + 1, format!("p{pod}"));
                let (next, done) = fill(&mut b, &mut rng, (file.0, &file.1), *offset, (1, 1_000));
                *offset = next;
                sealed.extend(done);
                sealed.extend(b.relieve_memory(0).expect("relieves"));
                peak = peak.max(b.open_memory());
            }
        }
        assert!(peak <= memory_limit, "open memory peaked at {peak}");
        assert!(b.buffer().used() > 0);
        assert_eq!(sealed.len(), 1000, "one full object per partition");
        for batch in &sealed {
            assert_eq!(batch.reason, SealReason::Size);
            assert!(batch.uncompressed_bytes >= max_bytes);
        }
        let one = decode(&load(&sealed[0]).await).await;
        assert_eq!(one.len() as u64, sealed[0].lines);
    }

    #[test]
    fn a_full_disk_buffer_seals_the_batch_holding_most_of_it() {
        let mut b = batcher_with(
            BatchLimits {
                max_bytes: 64 << 20,
                memory_limit: 1 << 20,
                ..limits()
            },
            FileRegistry::new(),
            1 << 20,
        );
        let mut rng = SmallRng::seed_from_u64(3);
        // Random text barely compresses: ~1 MiB of members fills the 1 MiB buffer.
        fill(&mut b, &mut rng, (1, "small"), 0, (80, 4000));
        fill(&mut b, &mut rng, (2, "big"), 0, (300, 4000));
        assert!(b.buffer().is_full(), "{} bytes", b.buffer().used());
        let sealed = b.relieve_buffer().expect("relieves");
        assert_eq!(sealed.len(), 1);
        assert_eq!(sealed[0].key.partition.pod_name, "big");
        assert_eq!(sealed[0].reason, SealReason::BufferFull);
        // The sealed batch now holds most of the buffer: sealing more would make small objects.
        assert!(b.relieve_buffer().expect("relieves").is_empty());
        assert_eq!(b.open_batches(), 1);
        b.release(&sealed[0].body);
        assert!(!b.buffer().is_full());
    }

    #[tokio::test]
    async fn a_batch_the_disk_buffer_cannot_take_is_sealed_at_once_from_memory() {
        let mut b = batcher(limits());
        // The buffer directory is replaced by a file: no member can be written.
        let dir = b.buffer().dir().to_path_buf();
        std::fs::remove_dir(&dir).expect("removes");
        std::fs::write(&dir, b"not a directory").expect("blocks");
        let mut rng = SmallRng::seed_from_u64(5);
        let (_, sealed) = fill(&mut b, &mut rng, (1, "pod-a"), 0, (80, 4000));
        assert_eq!(sealed.len(), 1);
        let batch = &sealed[0];
        assert_eq!(batch.reason, SealReason::BufferError);
        assert_eq!(batch.body.on_disk(), 0);
        assert_eq!(batch.body.memory(), batch.body.len());
        let records = decode(&load(batch).await).await;
        assert_eq!(records.len() as u64, batch.lines);
        assert_eq!(b.buffer().used(), 0);
    }

    #[test]
    fn open_memory_stays_equal_to_the_sum_over_open_batches() {
        let mut b = batcher(BatchLimits {
            max_bytes: 300 << 10,
            max_open: 5,
            ..limits()
        });
        let mut rng = SmallRng::seed_from_u64(11);
        let now = Instant::now();
        let mut offsets = [0u64; 8];
        for step in 0..3_000 {
            let pod = rng.random_range(0..8usize);
            let len = rng.random_range(1..3_000);
            let text = noise(&mut rng, len);
            let l = line(pod as u64 + 1, offsets[pod], &format!("pod-{pod}"), &text);
            offsets[pod] = l.end;
            b.add(&l, now).expect("adds");
            if step % 500 == 499 {
                let cap = b.limits().memory_limit;
                b.relieve_memory(cap).expect("relieves");
            }
            let walked: u64 = b.open.values().map(OpenBatch::memory).sum();
            assert_eq!(b.open_memory(), walked, "after step {step}");
        }
        b.seal_all(SealReason::Shutdown).expect("seals");
        assert_eq!(b.open_memory(), 0);
    }

    #[test]
    fn opening_one_batch_too_many_seals_the_oldest() {
        let mut b = batcher(BatchLimits {
            max_open: 2,
            ..limits()
        });
        let start = Instant::now();
        b.add(&line(1, 0, "p1", "x"), start).expect("adds");
        b.add(&line(2, 0, "p2", "x"), start + Duration::from_secs(1))
            .expect("adds");
        let added = b
            .add(&line(3, 0, "p3", "x"), start + Duration::from_secs(2))
            .expect("adds");
        assert_eq!(added.sealed.len(), 1);
        assert_eq!(added.sealed[0].key.partition.pod_name, "p1");
        assert_eq!(added.sealed[0].reason, SealReason::OpenLimit);
        assert_eq!(b.open_batches(), 2);
    }

    fn key_of(registry: &FileRegistry, lines: &[Line]) -> String {
        let mut b = batcher_with(limits(), registry.clone(), 1 << 30);
        for l in lines {
            b.add(l, Instant::now()).expect("adds");
        }
        b.seal_all(SealReason::Shutdown)
            .expect("seals")
            .remove(0)
            .key
            .to_key()
    }

    #[test]
    fn same_source_range_gets_the_same_key() {
        let registry = FileRegistry::new();
        registry.register(
            FileId(1),
            FileIdentity {
                dev: 1,
                inode: 2,
                fingerprint: 3,
            },
            "/p/0.log".into(),
        );
        let first = line(1, 100, "pod-a", "first");
        let second = line(1, first.end, "pod-a", "second");
        let key = key_of(&registry, &[first.clone(), second.clone()]);
        assert_eq!(
            key,
            key_of(&registry, &[first.clone(), second]),
            "replay of the same lines"
        );
        assert_eq!(
            key,
            key_of(&registry, std::slice::from_ref(&first)),
            "replay starting at the same line"
        );
        // After a restart the file has another FileId but the same identity.
        let restarted = FileRegistry::new();
        restarted.register(
            FileId(9),
            FileIdentity {
                dev: 1,
                inode: 2,
                fingerprint: 3,
            },
            "/p/0.log.1".into(),
        );
        let mut moved = first.clone();
        moved.file = FileId(9);
        assert_eq!(key, key_of(&restarted, &[moved]));
        assert!(
            key.starts_with("acme/c1/api/pod-a/20231114T221320Z-"),
            "{key}"
        );
    }

    #[test]
    fn other_source_ranges_get_other_keys() {
        let registry = FileRegistry::new();
        registry.register(
            FileId(1),
            FileIdentity {
                dev: 1,
                inode: 2,
                fingerprint: 3,
            },
            "/p/0.log".into(),
        );
        registry.register(
            FileId(2),
            FileIdentity {
                dev: 1,
                inode: 4,
                fingerprint: 5,
            },
            "/p/1.log".into(),
        );
        let base = key_of(&registry, &[line(1, 100, "pod-a", "first")]);
        assert_ne!(
            base,
            key_of(&registry, &[line(1, 101, "pod-a", "first")]),
            "other offset"
        );
        assert_ne!(
            base,
            key_of(&registry, &[line(2, 100, "pod-a", "first")]),
            "other file"
        );
        assert_ne!(
            base,
            key_of(&registry, &[line(1, 100, "pod-a", "other")]),
            "other bytes (truncated file)"
        );
        // Several files: the key covers every range, so a batch with more lines of file 2 differs.
        let multi = key_of(
            &registry,
            &[line(1, 100, "pod-a", "first"), line(2, 0, "pod-a", "x")],
        );
        assert_ne!(base, multi);
        let more = key_of(
            &registry,
            &[
                line(1, 100, "pod-a", "first"),
                line(2, 0, "pod-a", "x"),
                line(2, 2, "pod-a", "y"),
            ],
        );
        assert_ne!(multi, more);
    }
}
