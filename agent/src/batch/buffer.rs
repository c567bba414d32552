//! The disk buffer: the compressed gzip members of open batches, and the bodies of sealed batches
//! until the sink confirms them, one file per batch under `<data-dir>/buffer/`. It lets a batch
//! grow to `--batch-max-bytes` or `--batch-timeout` whatever the number of busy partitions, while
//! memory holds only each batch's pending (not yet compressed) lines and the bodies being
//! uploaded.
//!
//! Bounded by `--buffer-max-bytes`: past it the delivery loop seals the batches holding most of it
//! and stops reading until uploads free room (backpressure; the log files wait on disk).
//!
//! Not durable state: checkpoints advance only once an upload is confirmed, so after a crash or a
//! kill every line of a file here is read again from the logs. The directory is emptied at start.

use crate::batch::BatchId;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Default `--buffer-max-bytes`: 1 GiB of compressed batches on the node's disk. Room for about
/// 230 partitions with a full 10 MiB batch each at the fast level's ~45 % ratio: a node's pods at
/// the kubelet's default 110-pod limit, twice over.
pub const DEFAULT_BUFFER_MAX_BYTES: u64 = 1 << 30;

/// Smallest `--buffer-max-bytes` accepted: 16 MiB.
pub const MIN_BUFFER_MAX_BYTES: u64 = 16 << 20;

/// Name of the buffer directory under the data directory.
pub const BUFFER_DIR: &str = "buffer";

/// The disk buffer could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// The directory could not be created or emptied at start.
    #[error("cannot prepare the disk buffer directory {path} (under --data-dir): {source}")]
    Prepare {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A member could not be appended to a batch's file.
    #[error("cannot write disk buffer file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A sealed batch's file could not be read back for upload.
    #[error("cannot read disk buffer file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// One batch's file: whole gzip members, `len` bytes of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpillFile {
    path: PathBuf,
    len: u64,
}

impl SpillFile {
    /// Bytes written (whole members only).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file's members into one allocation with room for `extra` bytes after them.
    pub async fn read(&self, extra: usize) -> Result<Vec<u8>, BufferError> {
        use tokio::io::AsyncReadExt;
        let read = |source| BufferError::Read {
            path: self.path.clone(),
            source,
        };
        let file = tokio::fs::File::open(&self.path).await.map_err(read)?;
        let mut out = Vec::with_capacity(self.len as usize + extra);
        file.take(self.len)
            .read_to_end(&mut out)
            .await
            .map_err(read)?;
        if (out.len() as u64) < self.len {
            return Err(read(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} bytes, {} written", out.len(), self.len),
            )));
        }
        Ok(out)
    }
}

/// What the buffer directory held at start (an earlier run's unconfirmed batches).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Files removed.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// The buffer directory and its usage; see the module documentation.
#[derive(Debug)]
pub struct DiskBuffer {
    dir: PathBuf,
    limit: u64,
    used: u64,
    files: usize,
}

impl DiskBuffer {
    /// Creates `dir` (or empties it of an earlier run's files) for a buffer of at most `limit`
    /// bytes.
    pub fn open(dir: impl Into<PathBuf>, limit: u64) -> Result<(Self, Leftovers), BufferError> {
        let dir = dir.into();
        let prepare = |source| BufferError::Prepare {
            path: dir.clone(),
            source,
        };
        fs::create_dir_all(&dir).map_err(prepare)?;
        let mut leftovers = Leftovers::default();
        for entry in fs::read_dir(&dir).map_err(prepare)? {
            let entry = entry.map_err(prepare)?;
            let meta = entry.metadata().map_err(prepare)?;
            if meta.is_dir() {
                fs::remove_dir_all(entry.path()).map_err(prepare)?;
            } else {
                fs::remove_file(entry.path()).map_err(prepare)?;
            }
            leftovers.files += 1;
            leftovers.bytes += meta.len();
        }
        let buffer = Self {
            dir,
            limit,
            used: 0,
            files: 0,
        };
        Ok((buffer, leftovers))
    }

    /// Appends one whole member to `batch`'s file, creating it on the first one. On error the
    /// file keeps only its earlier members (a torn write is cut off) and `spill` is unchanged.
    pub fn append(
        &mut self,
        spill: &mut Option<SpillFile>,
        batch: BatchId,
        member: &[u8],
    ) -> Result<(), BufferError> {
        let path = match spill {
            Some(file) => file.path.clone(),
            None => self.dir.join(format!("{:016x}.gz", batch.0)),
        };
        let before = spill.as_ref().map_or(0, SpillFile::len);
        if let Err(source) = write_at_end(&path, before, member) {
            return Err(BufferError::Write { path, source });
        }
        if spill.is_none() {
            self.files += 1;
        }
        let file = spill.get_or_insert(SpillFile { path, len: 0 });
        file.len += member.len() as u64;
        self.used += member.len() as u64;
        Ok(())
    }

    /// Deletes a confirmed batch's file and frees its bytes.
    pub fn release(&mut self, spill: &SpillFile) {
        self.used = self.used.saturating_sub(spill.len);
        self.files = self.files.saturating_sub(1);
        if let Err(error) = fs::remove_file(&spill.path)
            && error.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %spill.path.display(), %error, "cannot delete disk buffer file");
        }
    }

    /// Bytes in the buffer's files.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Files in the buffer.
    pub fn files(&self) -> usize {
        self.files
    }

    /// `--buffer-max-bytes`.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Whether the buffer has reached its limit.
    pub fn is_full(&self) -> bool {
        self.used >= self.limit
    }

    /// The buffer directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Writes `data` at offset `len` of `path` (creating it), cutting the file back to `len` if the
/// write fails part-way.
fn write_at_end(path: &Path, len: u64, data: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    if let Err(error) = file.write_all(data) {
        let _ = file.set_len(len);
        return Err(error);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::testing::test_buffer;

    #[tokio::test]
    async fn members_append_to_one_file_per_batch_and_release_frees_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut buffer, leftovers) =
            DiskBuffer::open(dir.path().join("buffer"), 1 << 20).expect("opens");
        assert_eq!(leftovers, Leftovers::default());
        let (mut a, mut b) = (None, None);
        buffer.append(&mut a, BatchId(1), b"aaa").expect("writes");
        buffer.append(&mut b, BatchId(2), b"bb").expect("writes");
        buffer.append(&mut a, BatchId(1), b"AA").expect("writes");
        let (a, b) = (a.expect("file"), b.expect("file"));
        assert_eq!(
            (a.len(), b.len(), buffer.used(), buffer.files()),
            (5, 2, 7, 2)
        );
        let body = crate::batch::ObjectBody {
            spilled: Some(a.clone()),
            tail: bytes::Bytes::from_static(b"!"),
        }
        .load()
        .await
        .expect("reads");
        assert_eq!(&body[..], b"aaaAA!");
        buffer.release(&a);
        assert!(!a.path().exists());
        assert_eq!((buffer.used(), buffer.files()), (2, 1));
    }

    #[test]
    fn an_earlier_runs_files_are_removed_and_counted_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("buffer");
        fs::create_dir_all(path.join("stray")).expect("creates");
        fs::write(path.join("0000000000000001.gz"), b"12345").expect("writes");
        let (buffer, leftovers) = DiskBuffer::open(&path, 1 << 20).expect("opens");
        assert_eq!(leftovers.files, 2);
        assert!(leftovers.bytes >= 5, "{leftovers:?}");
        assert_eq!(fs::read_dir(&path).expect("lists").count(), 0);
        assert_eq!(buffer.used(), 0);
    }

    #[test]
    fn a_failed_write_leaves_the_batch_as_it_was() {
        let (_dir, mut buffer) = test_buffer(1 << 20);
        let mut spill = None;
        buffer
            .append(&mut spill, BatchId(1), b"first")
            .expect("writes");
        // The file's place becomes a directory: the next open fails.
        let file = spill.clone().expect("file");
        fs::remove_file(file.path()).expect("removes");
        fs::create_dir(file.path()).expect("creates");
        let error = buffer
            .append(&mut spill, BatchId(1), b"second")
            .expect_err("cannot write");
        assert!(matches!(error, BufferError::Write { .. }), "{error}");
        assert_eq!(spill, Some(file));
        assert_eq!(buffer.used(), 5);
    }

    #[tokio::test]
    async fn a_file_shorter_than_written_is_an_error_not_a_short_body() {
        let (_dir, mut buffer) = test_buffer(1 << 20);
        let mut spill = None;
        buffer
            .append(&mut spill, BatchId(1), b"0123456789")
            .expect("writes");
        let file = spill.expect("file");
        fs::write(file.path(), b"0123").expect("truncates");
        let error = file.read(0).await.expect_err("short");
        assert!(matches!(error, BufferError::Read { .. }), "{error}");
    }

    #[test]
    fn is_full_at_the_limit() {
        let (_dir, mut buffer) = test_buffer(4);
        let mut spill = None;
        buffer
            .append(&mut spill, BatchId(1), b"abc")
            .expect("writes");
        assert!(!buffer.is_full());
        buffer.append(&mut spill, BatchId(1), b"d").expect("writes");
        assert!(buffer.is_full());
    }
}
