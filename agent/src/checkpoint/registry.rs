//! The file registry: the source side's answer to "which file is `FileId(n)`?".
//!
//! The tailer calls [`FileRegistry::register`] before it sends the first event of a file and again
//! whenever the file's path (rename rotation) or identity changes. Delivery reads it to write
//! checkpoints (identity + path) and to build deterministic object keys, and removes a file once it
//! is closed and fully acknowledged.

use crate::source_event::FileId;
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
    /// Its size at the tailer's last look, if known.
    pub size: Option<u64>,
    /// Checkpoint entries this file's position supersedes: identities it had before (continued
    /// in its `.gz`, or in the copy of a truncated file) and the entry it resumed from.
    pub replaces: Vec<FileIdentity>,
}

/// Shared map `FileId → (identity, path)`; cheap to clone (one `Arc`).
#[derive(Debug, Clone, Default)]
pub struct FileRegistry {
    files: Arc<Mutex<HashMap<FileId, RegisteredFile>>>,
    /// Checkpoint entries of files found gone (their loss counted): dropped at the next save.
    retired: Arc<Mutex<Vec<FileIdentity>>>,
}

impl FileRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a file, or updates its identity and path (after a rename); an identity it had
    /// before is remembered as replaced.
    pub fn register(&self, file: FileId, identity: FileIdentity, path: PathBuf) {
        let mut files = self.lock();
        let entry = files.entry(file).or_insert_with(|| RegisteredFile {
            identity,
            path: path.clone(),
            size: None,
            replaces: Vec::new(),
        });
        if entry.identity != identity && !entry.replaces.contains(&entry.identity) {
            let old = entry.identity;
            entry.replaces.push(old);
        }
        entry.replaces.retain(|replaced| *replaced != identity);
        entry.identity = identity;
        entry.path = path;
    }

    /// Records that `file` continues the checkpoint entry of `identity` (resumed from it).
    pub fn replaces(&self, file: FileId, identity: FileIdentity) {
        if let Some(entry) = self.lock().get_mut(&file)
            && entry.identity != identity
            && !entry.replaces.contains(&identity)
        {
            entry.replaces.push(identity);
        }
    }

    /// Asks the saver to drop the checkpoint entry of a file that is gone.
    pub fn retire_checkpoint(&self, identity: FileIdentity) {
        lock(&self.retired).push(identity);
    }

    /// The entries to drop since the last call.
    pub fn take_retired(&self) -> Vec<FileIdentity> {
        std::mem::take(&mut *lock(&self.retired))
    }

    /// Records a registered file's current size.
    pub fn set_size(&self, file: FileId, size: u64) {
        if let Some(entry) = self.lock().get_mut(&file) {
            entry.size = Some(size);
        }
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
        lock(&self.files)
    }
}

/// A panic while holding one of the registry's locks cannot leave its data inconsistent (single
/// inserts and removes), so a poisoned lock is used as is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(inode: u64) -> FileIdentity {
        FileIdentity {
            dev: 1,
            inode,
            fingerprint: 9,
        }
    }

    #[test]
    fn a_new_identity_remembers_the_one_it_replaces() {
        let registry = FileRegistry::new();
        registry.register(FileId(1), identity(10), "/p/0.log.1".into());
        registry.register(FileId(1), identity(10), "/p/0.log.2".into());
        assert!(registry.get(FileId(1)).expect("known").replaces.is_empty());
        registry.register(FileId(1), identity(11), "/p/0.log.2.gz".into());
        registry.replaces(FileId(1), identity(7));
        registry.set_size(FileId(1), 500);
        let file = registry.get(FileId(1)).expect("known");
        assert_eq!(file.replaces, vec![identity(10), identity(7)]);
        assert_eq!(file.size, Some(500));
        assert_eq!(file.path, PathBuf::from("/p/0.log.2.gz"));
    }
}
