//! Turns a sealed batch into an upload request: full key (deployment prefix + object key), body
//! and its Content-MD5.

use crate::batch::{BatchId, SealedBatch};
use bytes::Bytes;
use md5::{Digest, Md5};

/// One object to store.
#[derive(Debug, Clone)]
pub struct UploadRequest {
    /// The batch it came from.
    pub batch: BatchId,
    /// Full object key, deployment prefix included.
    pub key: String,
    /// Gzip NDJSON body.
    pub body: Bytes,
    /// Base64 MD5 of the body (the `Content-MD5` header): S3 rejects a body damaged in transit.
    pub content_md5: String,
    /// Records in the body.
    pub lines: u64,
}

/// Builds the request for `batch`, whose whole body is `body`, below the deployment `prefix`
/// (`""` = none).
pub fn build_request(batch: &SealedBatch, body: Bytes, prefix: &str) -> UploadRequest {
    UploadRequest {
        batch: batch.id,
        key: batch.key.to_key_with_prefix(prefix),
        content_md5: content_md5(&body),
        body,
        lines: batch.lines,
    }
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
}
