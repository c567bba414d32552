//! The local directory sink: objects as files under a root, with the same key layout as S3.
//! Each object is written to a temporary file, fsynced and renamed into place (then the directory
//! is fsynced), so a reader never sees half an object and a confirmed object survives a crash.

use super::request_builder::{RequestBody, UploadRequest};
use super::retry::{ErrorClass, PutError};
use crate::internal_events::InternalEvent;
use crate::internal_events::sink::SinkRequest;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Suffix of temporary files (the tailer and `logrelay-testgen verify` skip `*.tmp`).
pub const TMP_SUFFIX: &str = ".tmp";

/// Writes objects under a root directory.
#[derive(Debug, Clone)]
pub struct DirectoryService {
    root: PathBuf,
    next_tmp: Arc<AtomicU64>,
}

impl DirectoryService {
    /// A sink writing under `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        Ok(Self {
            root,
            next_tmp: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes one object atomically.
    pub async fn put(&self, request: &UploadRequest) -> Result<(), PutError> {
        let path = self.root.join(&request.key);
        let tmp_id = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let body = request.body.clone();
        let started = Instant::now();
        // A body in the disk buffer is copied from its file, not read into memory.
        let result = tokio::task::spawn_blocking(move || write_atomically(&path, tmp_id, &body))
            .await
            .unwrap_or_else(|join| Err(std::io::Error::other(join.to_string())));
        SinkRequest {
            sink: "file",
            operation: "write_file",
            outcome: if result.is_ok() {
                "success"
            } else {
                "transient"
            },
            duration: started.elapsed(),
        }
        .emit();
        result.map_err(|err| PutError {
            class: ErrorClass::Transient,
            operation: "write_file",
            message: format!("{}: {err}", request.key),
        })
    }
}

fn write_atomically(path: &Path, tmp_id: u64, body: &RequestBody) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("object path has no parent"))?;
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.{}.{tmp_id}{TMP_SUFFIX}",
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&tmp)?;
        match body {
            RequestBody::Memory(bytes) => file.write_all(bytes)?,
            RequestBody::File { path: from, len } => {
                let copied = std::io::copy(&mut File::open(from)?.take(*len), &mut file)?;
                if copied < *len {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("{} ends before byte {len}", from.display()),
                    ));
                }
            }
        }
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchId;

    #[tokio::test]
    async fn objects_are_written_under_their_key_without_leftovers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let service = DirectoryService::new(dir.path().join("out")).expect("creates");
        let request = UploadRequest {
            batch: BatchId(1),
            key: "acme/c1/api/pod-1/20240101T000000Z-abc.json.gz".into(),
            body: RequestBody::Memory(bytes::Bytes::from_static(b"gzip bytes")),
            content_md5: String::new(),
            lines: 1,
        };
        service.put(&request).await.expect("writes");
        service.put(&request).await.expect("overwrites");
        let object_dir = service.root().join("acme/c1/api/pod-1");
        let names: Vec<String> = fs::read_dir(&object_dir)
            .expect("lists")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["20240101T000000Z-abc.json.gz".to_string()]);
        assert_eq!(
            fs::read(object_dir.join(&names[0])).expect("reads"),
            b"gzip bytes"
        );
    }
}
