//! Acknowledged checkpoints: which byte of which file is safely in an uploaded object.
//!
//! [`ack`] turns source events and sink confirmations into per-file acknowledged offsets;
//! [`store`] persists them atomically in `--data-dir`; [`saver`] runs the once-a-second save loop;
//! [`registry`] is where the source side tells delivery which file a [`FileId`] is (identity and
//! current path), so checkpoints survive restarts and object keys are deterministic.
//!
//! [`FileId`]: crate::source_event::FileId

pub mod ack;
pub mod registry;
pub mod saver;
pub mod store;

pub use ack::{AckTracker, Position};
pub use registry::{FileIdentity, FileRegistry, RegisteredFile};
pub use store::{CheckpointStore, FileCheckpoint};
