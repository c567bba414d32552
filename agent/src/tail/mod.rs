//! The file source: follows every container log file under the pods root (`/var/log/pods`) and
//! sends its lines, in order and with their byte ranges, to delivery.
//!
//! - [`discovery`]: `<root>/*/*/*.log*` by inotify hints plus a listing every second that reads
//!   only the directories whose modification time changed.
//! - [`path`]: what a path says (pod, container, restart count; live, rotated or gzipped file).
//! - [`identity`]: device + inode + fingerprint of the first line; offset-marker windows.
//! - [`reader`]: bounded splitting of bytes into raw lines with offsets and markers.
//! - [`record`]: the record for a line ([`record::from_path`]; the metadata annotator's seam).
//! - `file`: one followed file and its split → parse → merge → record pipeline.
//! - [`tailer`]: the loop: rotation, truncation, deletion, checkpoints, the per-pod cap, fairness,
//!   and at start the `.gz` files rotated and gzipped while the agent was down.
//!
//! Guarantees: every byte read is covered by one [`crate::source_event::SourceEvent`] in file order; a
//! renamed file is drained through its open descriptor; a deleted file is drained, then closed; a
//! file that shrinks is read again from 0 (counted); a checkpoint that no longer fits its file
//! (inode reused, bytes before it changed) restarts the file at 0 (counted); bytes that become
//! unreadable before they were read are counted per pod as lost. See `docs/agent-sources.md`.

pub mod discovery;
mod file;
pub mod identity;
pub mod path;
pub mod reader;
pub mod record;
pub mod tailer;

pub use file::{LINE_FRAMING_BYTES, PodMultiline};
pub use identity::FINGERPRINT_BYTES;
pub use path::{FileKind, PodLogPath};
pub use record::{RecordContext, from_path};
pub use tailer::{
    DEFAULT_MAX_OPEN_ROTATED_PER_POD, READ_CHUNK_BYTES, RESCAN_INTERVAL, RESUME_GRACE, StartAt,
    Stopper, TailError, Tailer, TailerConfig, TailerHandle,
};

#[cfg(test)]
mod scenarios;
