//! The file registry: the source side's answer to "which file is `FileId(n)`?".
//!
//! The tailer calls [`FileRegistry::register`] before it sends the first event of a file and again
//! whenever the file's path (rename rotation) or identity changes. Delivery reads it to write
//! checkpoints (identity + path) and to build deterministic object keys, and removes a file once it
//! is closed and fully acknowledged.

use crate::pipeline::FileId;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// What identifies a file across agent restarts: device, inode and a fingerprint of its first bytes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct FileIdentity {
    /// Device number (`st_dev`).
    pub dev: u64,
    /// Inode number (`st_ino`).
    pub inode: u64,
    /// Fingerprint of the file's first bytes, as the tailer computes it.
    pub fingerprint: u64,
}

impl FileIdentity {
    /// The identity as bytes, for hashing into object ids.
    pub fn to_bytes(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[..8].copy_from_slice(&self.dev.to_be_bytes());
        out[8..16].copy_from_slice(&self.inode.to_be_bytes());
        out[16..].copy_from_slice(&self.fingerprint.to_be_bytes());
        out
    }
}

/// One registered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredFile {
    /// Its identity.
    pub identity: FileIdentity,
    /// Its current path.
    pub path: PathBuf,
}

/// Shared map `FileId → (identity, path)`; cheap to clone (one `Arc`).
#[derive(Debug, Clone, Default)]
pub struct FileRegistry {
    files: Arc<Mutex<HashMap<FileId, RegisteredFile>>>,
}

impl FileRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a file, or updates its identity and path (after a rename).
    pub fn register(&self, file: FileId, identity: FileIdentity, path: PathBuf) {
        self.lock().insert(file, RegisteredFile { identity, path });
    }

    /// Updates a registered file's path; unknown files are ignored.
    pub fn set_path(&self, file: FileId, path: PathBuf) {
        if let Some(entry) = self.lock().get_mut(&file) {
            entry.path = path;
        }
    }

    /// The file's identity and path, if registered.
    pub fn get(&self, file: FileId) -> Option<RegisteredFile> {
        self.lock().get(&file).cloned()
    }

    /// The identities of every registered file.
    pub fn identities(&self) -> Vec<FileIdentity> {
        self.lock().values().map(|f| f.identity).collect()
    }

    /// Forgets a file (delivery calls this once a closed file is fully acknowledged).
    pub fn remove(&self, file: FileId) {
        self.lock().remove(&file);
    }

    /// Number of registered files.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no file is registered.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<FileId, RegisteredFile>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts/removes).
        self.files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
