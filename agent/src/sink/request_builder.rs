//! Turns a sealed batch into an upload request: full key (deployment prefix + object key), body
//! and its Content-MD5. A body in the disk buffer stays there: it is streamed from its file by
//! each attempt, so uploads in flight hold no object in memory.

use crate::batch::buffer::BufferError;
use crate::batch::{BatchId, SealedBatch};
use bytes::Bytes;
use md5::{Digest, Md5};
use std::io;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Bytes read at a time when hashing or copying a body from its file.
const READ_BLOCK: usize = 64 << 10;

/// The bytes of one object.
#[derive(Debug, Clone)]
pub enum RequestBody {
    /// Held in memory.
    Memory(Bytes),
    /// The first `len` bytes of a disk buffer file.
    File {
        /// The file.
        path: PathBuf,
        /// Bytes of the body.
        len: u64,
    },
}

impl RequestBody {
    /// Size of the body.
    pub fn len(&self) -> u64 {
        match self {
            RequestBody::Memory(bytes) => bytes.len() as u64,
            RequestBody::File { len, .. } => *len,
        }
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` with each block of the body's bytes in `start..start + len`, in order.
    pub async fn for_each_block(
        &self,
        start: u64,
        len: u64,
        mut f: impl FnMut(&[u8]),
    ) -> Result<(), BufferError> {
        match self {
            RequestBody::Memory(bytes) => {
                let slice = memory_range(bytes, start, len).ok_or_else(|| BufferError::Read {
                    path: PathBuf::new(),
                    source: io::Error::new(io::ErrorKind::UnexpectedEof, "range past the body"),
                })?;
                f(&slice);
                Ok(())
            }
            RequestBody::File { path, .. } => {
                read_blocks(path, start, len, f)
                    .await
                    .map_err(|source| BufferError::Read {
                        path: path.clone(),
                        source,
                    })
            }
        }
    }

    /// Base64 MD5 of the bytes in `start..start + len`.
    pub async fn content_md5_of(&self, start: u64, len: u64) -> Result<String, BufferError> {
        let mut md5 = Md5::new();
        self.for_each_block(start, len, |block| md5.update(block))
            .await?;
        Ok(aws_smithy_types::base64::encode(md5.finalize()))
    }
}

/// The bytes `start..start + len` of `bytes` (shared, not copied), if the range is inside.
pub fn memory_range(bytes: &Bytes, start: u64, len: u64) -> Option<Bytes> {
    let start = usize::try_from(start).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    (end <= bytes.len()).then(|| bytes.slice(start..end))
}

/// Calls `f` with each block of `path`'s bytes in `start..start + len`, in order.
async fn read_blocks(
    path: &Path,
    start: u64,
    len: u64,
    mut f: impl FnMut(&[u8]),
) -> io::Result<()> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(io::SeekFrom::Start(start)).await?;
    let mut left = len;
    let mut block = vec![0; READ_BLOCK.min(usize::try_from(len).unwrap_or(READ_BLOCK))];
    while left > 0 {
        let want = block.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let got = file.read(&mut block[..want]).await?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("ends before byte {}", start + len),
            ));
        }
        f(&block[..got]);
        left -= got as u64;
    }
    Ok(())
}

/// One object to store.
#[derive(Debug, Clone)]
pub struct UploadRequest {
    /// The batch it came from.
    pub batch: BatchId,
    /// Full object key, deployment prefix included.
    pub key: String,
    /// Gzip NDJSON body.
    pub body: RequestBody,
    /// Base64 MD5 of the body (the `Content-MD5` header): S3 rejects a body damaged in transit.
    pub content_md5: String,
    /// Records in the body.
    pub lines: u64,
}

/// Builds the request for `batch`, whose whole body is `body`, below the deployment `prefix`
/// (`""` = none). Reads a file body once to hash it.
pub async fn build_request(
    batch: &SealedBatch,
    body: RequestBody,
    prefix: &str,
) -> Result<UploadRequest, BufferError> {
    Ok(UploadRequest {
        batch: batch.id,
        key: batch.key.to_key_with_prefix(prefix),
        content_md5: body.content_md5_of(0, body.len()).await?,
        body,
        lines: batch.lines,
    })
}

/// Base64 of the MD5 digest of `bytes`, as the `Content-MD5` header wants it (RFC 1864).
pub fn content_md5(bytes: &[u8]) -> String {
    aws_smithy_types::base64::encode(Md5::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_md5_is_base64_of_the_digest() {
        // RFC 1321 test vector: MD5("abc") = 900150983cd24fb0d6963f7d28e17f72.
        assert_eq!(content_md5(b"abc"), "kAFQmDzST7DWlj99KOF/cg==");
    }

    #[tokio::test]
    async fn a_file_body_hashes_like_the_same_bytes_in_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("body");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        // Bytes past `len` (a torn write not yet cut) are not part of the body.
        let mut on_disk = bytes.clone();
        on_disk.extend_from_slice(b"torn");
        std::fs::write(&path, &on_disk).expect("writes");
        let file = RequestBody::File {
            path,
            len: bytes.len() as u64,
        };
        let memory = RequestBody::Memory(Bytes::from(bytes.clone()));
        let whole = content_md5(&bytes);
        assert_eq!(
            file.content_md5_of(0, file.len()).await.expect("reads"),
            whole
        );
        assert_eq!(
            memory.content_md5_of(0, memory.len()).await.expect("reads"),
            whole
        );
        let part = content_md5(&bytes[70_000..150_000]);
        assert_eq!(
            file.content_md5_of(70_000, 80_000).await.expect("reads"),
            part
        );
        assert_eq!(
            memory.content_md5_of(70_000, 80_000).await.expect("reads"),
            part
        );
    }

    #[tokio::test]
    async fn a_file_shorter_than_its_body_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("body");
        std::fs::write(&path, b"short").expect("writes");
        let file = RequestBody::File { path, len: 100 };
        assert!(file.content_md5_of(0, 100).await.is_err());
    }
}
