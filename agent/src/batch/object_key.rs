//! Deterministic object keys: the same source range always gets the same key, so an upload that is
//! retried, or replayed after a crash, overwrites its earlier copy instead of adding a duplicate.
//!
//! Two forms, chosen so that an overwrite can never destroy lines that are not written again:
//! - **One file** in the batch: the id hashes the node, the file's identity and the first line
//!   (start offset, end marker, timestamp). A replay that starts at the same line re-reads the
//!   file from there (its checkpoint is at or before that line), so every line of the overwritten
//!   object is shipped again, in this object or the next ones.
//! - **Several files**: the id hashes every file's identity and exact range. Only a batch with
//!   exactly the same lines gets the same key. (Hashing only the first line here could let a replay
//!   overwrite an object whose lines of *another* file were already acknowledged and will not be
//!   read again.)
//!
//! The first line's end marker and timestamp are in the id so that a file truncated in place (same
//! identity, same offsets, new bytes) does not reproduce an old key.

use super::FileRange;
use crate::checkpoint::FileRegistry;
use crate::source_event::FileId;
use chrono::{DateTime, Utc};
use logrelay_common::key::{self, KeyError, ObjectKey, Partition};

/// The first line of a batch: what its key is derived from.
#[derive(Debug, Clone)]
pub struct FirstLine {
    /// Its file.
    pub file: FileId,
    /// Its start offset.
    pub start: u64,
    /// Its end marker.
    pub end_marker: u64,
    /// The record's timestamp (the key's `created`).
    pub timestamp: DateTime<Utc>,
    /// When the agent read it (fallback `created` when `timestamp` cannot be in a key).
    pub ingest_timestamp: DateTime<Utc>,
}

/// The bytes that identify `file` across restarts: its registered identity, `stdin` for the stdin
/// stream, or (for a file the source never registered) its per-run id.
fn file_identity_bytes(registry: &FileRegistry, file: FileId) -> Vec<u8> {
    if file == FileId::STDIN {
        return b"stdin".to_vec();
    }
    match registry.get(file) {
        Some(registered) => registered.identity.to_bytes().to_vec(),
        None => format!("unregistered-{}", file.0).into_bytes(),
    }
}

/// Builds the key of a batch of `partition` from its first line and per-file ranges.
pub fn batch_key(
    registry: &FileRegistry,
    node: &str,
    partition: Partition,
    first: &FirstLine,
    ranges: &[FileRange],
) -> Result<ObjectKey, KeyError> {
    let timestamp_nanos = first
        .timestamp
        .timestamp_nanos_opt()
        .unwrap_or_default()
        .to_be_bytes();
    let id = if ranges.len() <= 1 {
        let identity = file_identity_bytes(registry, first.file);
        key::object_id(&[
            b"single-file",
            node.as_bytes(),
            &identity,
            &first.start.to_be_bytes(),
            &first.end_marker.to_be_bytes(),
            &timestamp_nanos,
        ])
    } else {
        let mut parts: Vec<Vec<u8>> = vec![b"multi-file".to_vec(), node.as_bytes().to_vec()];
        parts.push(timestamp_nanos.to_vec());
        for range in ranges {
            parts.push(file_identity_bytes(registry, range.file));
            parts.push(range.start.to_be_bytes().to_vec());
            parts.push(range.end.to_be_bytes().to_vec());
            parts.push(range.end_marker.to_be_bytes().to_vec());
        }
        let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        key::object_id(&slices)
    };
    ObjectKey::new(partition.clone(), first.timestamp, id.clone())
        .or_else(|_| ObjectKey::new(partition, first.ingest_timestamp, id))
}
