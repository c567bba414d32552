//! The checkpoint file in `--data-dir`: a versioned JSON document written atomically
//! (tmp → fsync → rename → fsync dir), so a crash at any moment leaves either the old or the new
//! checkpoints, never a torn file.

use super::registry::FileIdentity;
use crate::source_event::Unfinished;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the checkpoint file inside the data directory.
pub const CHECKPOINT_FILE_NAME: &str = "checkpoints.json";

/// Version of the checkpoint file format this agent reads and writes.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Checkpoint files larger than this are not read (a real one holds a few hundred entries of
/// ~200 bytes; 64 MiB is far beyond any node and keeps a corrupt file from exhausting memory).
pub const MAX_CHECKPOINT_FILE_BYTES: u64 = 64 << 20;

/// Where reading a file resumes: its identity, current path and the acknowledged position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheckpoint {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub inode: u64,
    /// Fingerprint of the first bytes (as the tailer computes it).
    pub fingerprint: u64,
    /// The file's path when the checkpoint was taken.
    pub path: PathBuf,
    /// Every byte before this offset is in an acknowledged object (or produced no line).
    pub offset: u64,
    /// [`offset_marker`](crate::source_event::offset_marker) of the bytes just before `offset`.
    pub offset_marker: u64,
    /// Lines unfinished before `offset` (a partial line of one stream with entries of the other
    /// after its start): read again from their starts after a restart.
    #[serde(default, skip_serializing_if = "Unfinished::is_empty")]
    pub unfinished: Unfinished,
    /// The file's size when the entry was written, if known: after a restart that finds the file
    /// gone, `size - offset` bytes are known to be lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Since when the file has been gone (wall clock, so the retention survives restarts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone_since: Option<DateTime<Utc>>,
}

impl FileCheckpoint {
    /// The file's identity.
    pub fn identity(&self) -> FileIdentity {
        FileIdentity {
            dev: self.dev,
            inode: self.inode,
            fingerprint: self.fingerprint,
        }
    }
}

/// The on-disk document.
#[derive(Debug, Serialize, Deserialize)]
struct CheckpointDocument {
    version: u32,
    /// When the document was written: the agent ran until at least then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    saved_at: Option<DateTime<Utc>>,
    files: Vec<FileCheckpoint>,
}

/// What [`CheckpointStore::load`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The checkpoints to resume from.
    pub checkpoints: Vec<FileCheckpoint>,
    /// When the previous run last wrote them (it ran until at least then).
    pub saved_at: Option<DateTime<Utc>>,
    /// Set when an existing file could not be used and the agent starts fresh (every file is then
    /// read from its start: duplicates, never loss); the unusable file was moved to
    /// [`Self::set_aside`].
    pub fresh_start: Option<CheckpointError>,
    /// Where the unusable file was moved, if it was.
    pub set_aside: Option<PathBuf>,
}

/// Reading or writing the checkpoint file failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file system operation failed.
    #[error("checkpoint file {path}: {operation} failed: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid checkpoint document.
    #[error("checkpoint file {path} is corrupt: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The file was written by an agent with another format version.
    #[error(
        "checkpoint file {path} has version {found}; this agent reads version {CHECKPOINT_VERSION}"
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// The file is larger than [`MAX_CHECKPOINT_FILE_BYTES`].
    #[error(
        "checkpoint file {path} is {size} bytes, more than the {MAX_CHECKPOINT_FILE_BYTES} allowed"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
}

/// The checkpoint file of one data directory.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
    path: PathBuf,
}

impl CheckpointStore {
    /// Opens (creating if needed) the data directory.
    pub fn open(data_dir: &Path) -> Result<Self, CheckpointError> {
        fs::create_dir_all(data_dir).map_err(|source| CheckpointError::Io {
            operation: "create data directory",
            path: data_dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            dir: data_dir.to_path_buf(),
            path: data_dir.join(CHECKPOINT_FILE_NAME),
        })
    }

    /// Path of the checkpoint file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the checkpoints. A missing file means a first start (no checkpoints). A corrupt,
    /// oversized or other-version file is moved aside and reported in [`Loaded::fresh_start`];
    /// only failing to read or move it is an error.
    pub fn load(&self) -> Result<Loaded, CheckpointError> {
        let problem = match self.read_document() {
            Ok(None) => return Ok(Loaded::default()),
            Ok(Some(document)) => {
                return Ok(Loaded {
                    checkpoints: document.files,
                    saved_at: document.saved_at,
                    ..Loaded::default()
                });
            }
            Err(err @ CheckpointError::Io { .. }) => return Err(err),
            Err(problem) => problem,
        };
        let aside = self.dir.join(format!(
            "{CHECKPOINT_FILE_NAME}.unusable-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        ));
        fs::rename(&self.path, &aside).map_err(|source| CheckpointError::Io {
            operation: "move unusable checkpoint file aside",
            path: self.path.clone(),
            source,
        })?;
        Ok(Loaded {
            fresh_start: Some(problem),
            set_aside: Some(aside),
            ..Loaded::default()
        })
    }

    fn read_document(&self) -> Result<Option<CheckpointDocument>, CheckpointError> {
        let io = |operation| {
            let path = self.path.clone();
            move |source| CheckpointError::Io {
                operation,
                path,
                source,
            }
        };
        let size = match fs::metadata(&self.path) {
            Ok(meta) => meta.len(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(io("stat")(err)),
        };
        if size > MAX_CHECKPOINT_FILE_BYTES {
            return Err(CheckpointError::TooLarge {
                path: self.path.clone(),
                size,
            });
        }
        let bytes = fs::read(&self.path).map_err(io("read"))?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|err| CheckpointError::Corrupt {
                path: self.path.clone(),
                message: err.to_string(),
            })?;
        match value.get("version").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(CHECKPOINT_VERSION) => {}
            Some(found) => {
                return Err(CheckpointError::Version {
                    path: self.path.clone(),
                    found: u32::try_from(found).unwrap_or(u32::MAX),
                });
            }
            None => {
                return Err(CheckpointError::Corrupt {
                    path: self.path.clone(),
                    message: "no numeric \"version\" field".into(),
                });
            }
        }
        let document: CheckpointDocument =
            serde_json::from_value(value).map_err(|err| CheckpointError::Corrupt {
                path: self.path.clone(),
                message: err.to_string(),
            })?;
        Ok(Some(document))
    }

    /// Replaces the checkpoint file atomically and durably: write a temporary file, fsync it,
    /// rename it over the old one, fsync the directory.
    pub fn save(&self, checkpoints: &[FileCheckpoint]) -> Result<(), CheckpointError> {
        let document = CheckpointDocument {
            version: CHECKPOINT_VERSION,
            saved_at: Some(Utc::now()),
            files: checkpoints.to_vec(),
        };
        let bytes = serde_json::to_vec(&document).map_err(|err| CheckpointError::Corrupt {
            path: self.path.clone(),
            message: format!("cannot serialize: {err}"),
        })?;
        let tmp = self.dir.join(format!("{CHECKPOINT_FILE_NAME}.tmp"));
        let io = |operation, path: &Path| {
            let path = path.to_path_buf();
            move |source| CheckpointError::Io {
                operation,
                path,
                source,
            }
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io("create temporary file", &tmp))?;
        file.write_all(&bytes)
            .map_err(io("write temporary file", &tmp))?;
        file.sync_all().map_err(io("fsync temporary file", &tmp))?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(io("rename temporary file", &self.path))?;
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io("fsync data directory", &self.dir))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(inode: u64, offset: u64) -> FileCheckpoint {
        FileCheckpoint {
            dev: 1,
            inode,
            fingerprint: 0xfeed,
            path: PathBuf::from(format!("/var/log/pods/ns_pod_uid/c/{inode}.log")),
            offset,
            offset_marker: 42,
            ..FileCheckpoint::default()
        }
    }

    #[test]
    fn saved_checkpoints_load_back_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::open(dir.path()).expect("opens");
        let saved = vec![checkpoint(1, 10), checkpoint(2, 20)];
        store.save(&saved).expect("saves");
        store.save(&saved[..1]).expect("saves again");
        let loaded = store.load().expect("loads");
        assert_eq!(loaded.checkpoints, saved[..1]);
        assert!(loaded.fresh_start.is_none());
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("lists")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![CHECKPOINT_FILE_NAME.to_string()]);
        let text = fs::read_to_string(store.path()).expect("reads");
        assert!(text.starts_with(r#"{"version":1,"saved_at":"#), "{text}");
        let saved_at = loaded.saved_at.expect("write time");
        assert!((Utc::now() - saved_at).num_seconds() < 60);
    }

    #[test]
    fn missing_file_is_a_first_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let loaded = CheckpointStore::open(&dir.path().join("new"))
            .expect("opens")
            .load()
            .expect("loads");
        assert!(loaded.checkpoints.is_empty());
        assert!(loaded.fresh_start.is_none());
    }

    #[test]
    fn corrupt_file_is_set_aside_and_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::open(dir.path()).expect("opens");
        fs::write(store.path(), b"{\"version\":1,\"files\":[{\"dev\":").expect("writes");
        let loaded = store.load().expect("loads");
        assert!(loaded.checkpoints.is_empty());
        let problem = loaded.fresh_start.expect("reported").to_string();
        assert!(problem.contains("is corrupt"), "{problem}");
        let aside = loaded.set_aside.expect("moved aside");
        assert!(aside.exists());
        assert!(!store.path().exists());
        // The next start is a clean first start.
        assert!(store.load().expect("loads").fresh_start.is_none());
    }

    #[test]
    fn other_version_is_refused_with_its_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::open(dir.path()).expect("opens");
        fs::write(store.path(), br#"{"version":2,"files":[]}"#).expect("writes");
        let problem = store
            .load()
            .expect("loads")
            .fresh_start
            .expect("reported")
            .to_string();
        assert!(problem.contains("has version 2"), "{problem}");
    }

    #[test]
    fn interrupted_save_leaves_the_previous_checkpoints() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::open(dir.path()).expect("opens");
        store.save(&[checkpoint(1, 10)]).expect("saves");
        // A crash after writing the temporary file but before the rename.
        fs::write(
            dir.path().join(format!("{CHECKPOINT_FILE_NAME}.tmp")),
            b"{\"vers",
        )
        .expect("writes");
        assert_eq!(
            store.load().expect("loads").checkpoints,
            vec![checkpoint(1, 10)]
        );
        store
            .save(&[checkpoint(1, 11)])
            .expect("a later save replaces the stale temporary file");
        assert_eq!(
            store.load().expect("loads").checkpoints,
            vec![checkpoint(1, 11)]
        );
    }
}
