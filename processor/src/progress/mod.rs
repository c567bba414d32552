//! Per-object delivery progress, so a redelivered notification resumes instead of re-sending and a
//! duplicate notification of a delivered object version is skipped.
//!
//! One DynamoDB item per (object version, tenant config) — keyed by bucket, key, ETag, tenant and
//! delivery type — holds the delivered batches ([`BatchCursor`]), whether the config is complete, a
//! lease naming the attempt working on it, and a TTL. Writes are conditional on holding the lease.
//! The exact guarantee is in `docs/processor-delivery.md`.

mod cursor;
mod store;

pub use cursor::BatchCursor;
pub use store::{Claim, DEFAULT_LEASE, MAX_LEASE, MIN_LEASE, ProgressSettings, ProgressStore};

use crate::object::FailureKind;
use logrelay_common::tenant::DeliveryType;
use sha2::{Digest, Sha256};

/// Version of the item key and of the batching rules; bump it when batch boundaries change, so old
/// progress is not applied to differently cut batches.
pub const PROGRESS_VERSION: &str = "v1";

/// Identifies the progress of one config for one object version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressKey {
    /// Central bucket.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// The object version's ETag (content identity).
    pub etag: String,
    /// Tenant.
    pub tenant_id: String,
    /// Which of the tenant's configs.
    pub delivery_type: DeliveryType,
}

impl ProgressKey {
    /// The item's partition key: a hash of the parts (keys can be 1 KiB; the hash keeps items small
    /// and the parts cannot run into each other).
    pub fn pk(&self) -> String {
        let mut hash = Sha256::new();
        for part in [
            self.bucket.as_str(),
            self.key.as_str(),
            self.etag.as_str(),
            self.tenant_id.as_str(),
            self.delivery_type.as_str(),
        ] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        format!("{PROGRESS_VERSION}#{}", hex::encode(hash.finalize()))
    }
}

/// What an earlier attempt achieved for one config of one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProgressState {
    /// Every batch is delivered.
    pub complete: bool,
    /// Delivered batches.
    pub cursor: BatchCursor,
    /// Fingerprint of the config as it batched (see [`fingerprint`]); progress made under another
    /// fingerprint is discarded.
    pub fingerprint: Option<String>,
    /// Events delivered so far (for reports).
    pub events_delivered: u64,
}

/// A fingerprint of everything that decides how a config cuts an object into batches.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    hash.update(PROGRESS_VERSION.as_bytes());
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hex::encode(&hash.finalize()[..16])
}

/// The progress table could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProgressError {
    /// Transient (DynamoDB unavailable, throttled) or permanent (table missing, access denied).
    pub kind: FailureKind,
    /// Stable label: `progress_store`, `lease_lost`.
    pub reason: &'static str,
    /// Human-readable detail.
    pub message: String,
}

impl From<ProgressError> for crate::error::ProcessError {
    fn from(error: ProgressError) -> Self {
        crate::error::ProcessError::Progress {
            kind: error.kind,
            reason: error.reason,
            message: error.message,
        }
    }
}

impl From<ProgressError> for crate::error::DeliveryError {
    fn from(error: ProgressError) -> Self {
        crate::error::DeliveryError {
            kind: error.kind,
            reason: error.reason,
            message: error.message,
            cause: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ProgressKey {
        ProgressKey {
            bucket: "central".into(),
            key: "acme/c1/api/pod/20240101T000000Z-abc.json.gz".into(),
            etag: "e1".into(),
            tenant_id: "acme".into(),
            delivery_type: DeliveryType::Cloudwatch,
        }
    }

    #[test]
    fn each_part_of_the_key_changes_the_item() {
        let base = key().pk();
        assert!(base.starts_with("v1#"));
        let variants = [
            ProgressKey {
                etag: "e2".into(),
                ..key()
            },
            ProgressKey {
                delivery_type: DeliveryType::S3,
                ..key()
            },
            ProgressKey {
                tenant_id: "other".into(),
                ..key()
            },
            ProgressKey {
                bucket: "centra".into(),
                key: format!("l{}", key().key),
                ..key()
            },
        ];
        for variant in variants {
            assert_ne!(variant.pk(), base, "{variant:?}");
        }
        assert_eq!(key().pk(), base);
    }

    #[test]
    fn fingerprints_separate_their_parts() {
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
        assert_eq!(fingerprint(&["x"]), fingerprint(&["x"]));
    }
}
