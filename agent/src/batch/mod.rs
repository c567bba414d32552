//! Batching: one open batch per partition (`customer_id/cluster_id/application/pod_name`),
//! compressed a chunk at a time while lines are appended ([`chunked`]), sealed into an object-to-be when it reaches
//! `--batch-max-bytes`, when it is older than `--batch-timeout`, or when the memory cap or the
//! open-batch limit needs room.
//!
//! [`Batcher`] is plain synchronous state: the delivery loop ([`crate::delivery`]) feeds it lines and
//! the clock, and ships what it seals. A sealed batch carries its deterministic key
//! ([`object_key`]) and the file ranges it covers, for acknowledgement tracking.

pub mod chunked;
pub mod object_key;
#[cfg(test)]
pub(crate) mod testing;

use crate::checkpoint::FileRegistry;
use crate::internal_events::InternalEvent;
use crate::internal_events::batch::BatchSealed;
use crate::source_event::{FileId, Line};
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

/// Default `--batch-memory-limit`: 64 MiB for open batches plus sealed batches not yet
/// acknowledged. Sized for a DaemonSet with a 128–256 MiB memory limit.
pub const DEFAULT_BATCH_MEMORY_LIMIT: u64 = 64 << 20;

/// Default `--batch-max-open`: open batches (partitions) at once; bounds the map and the
/// bookkeeping per batch (an open batch costs only its pending lines, see [`chunked`]).
pub const DEFAULT_MAX_OPEN_BATCHES: usize = 256;

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
    /// Cap on open batches' memory plus sealed, unacknowledged batches' bodies.
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
    /// The memory cap needed room (largest first).
    Memory,
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
            SealReason::Memory => "memory",
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

/// A finished batch: a complete gzip NDJSON object and where its lines came from.
#[derive(Debug, Clone)]
pub struct SealedBatch {
    /// The batch.
    pub id: BatchId,
    /// Where the object goes (partition, created time, deterministic id).
    pub key: ObjectKey,
    /// The gzip NDJSON body.
    pub body: Bytes,
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
    opened_at: Instant,
    first: FirstLine,
    ranges: Vec<FileRange>,
}

impl OpenBatch {
    fn memory(&self) -> u64 {
        OPEN_BATCH_OVERHEAD_BYTES + self.body.memory()
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
    compressor: SharedCompressor,
    next_id: u64,
}

impl Batcher {
    /// A batcher for records read on `node`; `registry` gives file identities for keys.
    pub fn new(limits: BatchLimits, node: impl Into<String>, registry: FileRegistry) -> Self {
        Self {
            limits,
            node: node.into(),
            registry,
            open: HashMap::new(),
            last_partition: None,
            open_bytes: 0,
            compressor: SharedCompressor::default(),
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
                    opened_at: now,
                    first,
                    ranges: Vec::new(),
                };
                (self.open.entry(partition.clone()).or_insert(open), true)
            }
        };
        let before = batch.memory();
        let written = batch.body.write_record(record, &mut self.compressor);
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
        if batch.body.uncompressed_bytes() >= self.limits.max_bytes {
            sealed.extend(self.seal(partition, SealReason::Size)?);
        }
        Ok(Added { batch: id, sealed })
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

    /// While the open batches plus `in_flight` bytes (sealed, unacknowledged) reach the memory cap
    /// and the open batches hold more than `in_flight`, seals the largest open batch (oldest first
    /// among equals). When sealed batches hold most of the memory, sealing would only make small
    /// objects: the caller stops reading instead until uploads drain them.
    pub fn seal_for_memory(&mut self, in_flight: u64) -> Result<Vec<SealedBatch>, BatchError> {
        let mut sealed = Vec::new();
        loop {
            let open = self.open_memory();
            if open + in_flight < self.limits.memory_limit || open <= in_flight {
                break;
            }
            let Some(largest) = self
                .open
                .iter()
                .max_by(|(_, a), (_, b)| {
                    a.memory()
                        .cmp(&b.memory())
                        .then(b.opened_at.cmp(&a.opened_at))
                })
                .map(|(p, _)| p.clone())
            else {
                break;
            };
            sealed.extend(self.seal(&largest, SealReason::Memory)?);
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

    /// Memory held by open batches (pending lines, compressed chunks, bookkeeping).
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
        let Some(open) = self.open.remove(partition) else {
            return Ok(None);
        };
        self.open_bytes -= open.memory();
        let lines = open.body.lines();
        let uncompressed_bytes = open.body.uncompressed_bytes();
        let key = object_key::batch_key(
            &self.registry,
            &self.node,
            partition.clone(),
            &open.first,
            &open.ranges,
        )?;
        let body = Bytes::from(
            open.body
                .finish(&mut self.compressor)
                .map_err(BatchError::Finish)?,
        );
        BatchSealed {
            reason: reason.as_str(),
            lines,
            uncompressed_bytes,
            compressed_bytes: body.len() as u64,
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
    use super::testing::{decode, line};
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

    fn batcher(limits: BatchLimits) -> Batcher {
        Batcher::new(limits, "node-1", FileRegistry::new())
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
        let messages: Vec<String> = decode(&pod_a.body)
            .await
            .into_iter()
            .map(|r| r.message)
            .collect();
        assert_eq!(messages, ["a1", "a2"]);
        assert_eq!(b.open_batches(), 0);
    }

    /// One object of the same log-like lines (repetitive text, random ids) at `level`.
    fn object_at(level: Compression) -> SealedBatch {
        let mut b = batcher(limits()).with_compression(level);
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
        let mut sealed = b.seal_all(SealReason::Shutdown).expect("seals");
        assert_eq!(sealed.len(), 1);
        sealed.remove(0)
    }

    #[tokio::test]
    async fn best_compression_makes_smaller_objects_that_decode_the_same() {
        let fast = object_at(Compression::fast());
        let best = object_at(Compression::best());
        assert!(
            best.body.len() < fast.body.len(),
            "level 9: {} bytes, level 1: {} bytes",
            best.body.len(),
            fast.body.len()
        );
        assert_eq!(best.uncompressed_bytes, fast.uncompressed_bytes);
        assert_eq!(decode(&best.body).await, decode(&fast.body).await);
        assert_eq!(best.body[8], 2, "gzip XFL says maximum compression");
        assert_eq!(fast.body[8], 4, "gzip XFL says fastest");
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

    #[test]
    fn memory_cap_seals_the_largest_batch_first() {
        let mut b = batcher(BatchLimits {
            memory_limit: 2 << 20,
            ..limits()
        });
        let mut rng = SmallRng::seed_from_u64(7);
        let now = Instant::now();
        let mut offset = 0;
        for _ in 0..200 {
            let l = line(1, offset, "big", &noise(&mut rng, 4000));
            offset = l.end;
            b.add(&l, now).expect("adds");
        }
        b.add(&line(2, 0, "small", "tiny"), now).expect("adds");
        let open = b.open_memory();
        assert!(
            open > 2 * chunked::CHUNK_BYTES as u64,
            "the big batch holds compressed output: {open}"
        );
        // Sealed batches in flight leave room for less than both open batches.
        let in_flight = b.limits().memory_limit - open + 1;
        let sealed = b.seal_for_memory(in_flight).expect("seals");
        assert_eq!(sealed.len(), 1);
        assert_eq!(sealed[0].key.partition.pod_name, "big");
        assert_eq!(sealed[0].reason, SealReason::Memory);
        assert_eq!(b.open_batches(), 1);
        // Nothing sealed while under the cap.
        assert!(b.seal_for_memory(0).expect("seals").is_empty());
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
                b.seal_for_memory(b.limits().memory_limit).expect("seals");
            }
            let walked: u64 = b.open.values().map(OpenBatch::memory).sum();
            assert_eq!(b.open_memory(), walked, "after step {step}");
        }
        b.seal_all(SealReason::Shutdown).expect("seals");
        assert_eq!(b.open_memory(), 0);
    }

    #[test]
    fn memory_cap_leaves_open_batches_alone_when_sealed_ones_hold_most_memory() {
        let mut b = batcher(BatchLimits {
            memory_limit: 2 << 20,
            ..limits()
        });
        b.add(&line(1, 0, "pod-a", "x"), Instant::now())
            .expect("adds");
        // Over the cap, but sealing the small open batch would only make a tiny object.
        assert!(b.seal_for_memory(2 << 20).expect("seals").is_empty());
        assert_eq!(b.open_batches(), 1);
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
        let mut b = Batcher::new(limits(), "node-1", registry.clone());
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
