//! The metadata cache file (`<data dir>/metadata-cache.json`): the derived metadata of the pods
//! indexed, written atomically (temporary file, fsync, rename, fsync of the directory) so a restart
//! can still enrich lines of pods the API no longer knows. A missing, oversized or unreadable file
//! is ignored (logged and counted); it is a cache, never a source of truth for live pods.

use super::derive::PodMeta;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The cache file's name in the data directory.
pub const CACHE_FILE_NAME: &str = "metadata-cache.json";

/// Largest cache file read: 16 MiB ([`super::index::MAX_INDEXED_PODS`] entries of a few KiB).
pub const MAX_CACHE_FILE_BYTES: u64 = 16 << 20;

/// Version of the file format.
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct CacheFile {
    version: u32,
    #[serde(with = "logrelay_common::record::rfc3339_nanos")]
    saved_at: chrono::DateTime<chrono::Utc>,
    pods: Vec<PodMeta>,
}

/// Why the cache file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CacheFileError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file is larger than [`MAX_CACHE_FILE_BYTES`].
    #[error("{path}: {len} bytes is more than the {MAX_CACHE_FILE_BYTES} allowed")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        len: u64,
    },
    /// The content is not a cache file of this version.
    #[error("{path}: not a metadata cache file: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Reads the cache file; `Ok(vec![])` when it does not exist.
pub fn load(path: &Path) -> Result<Vec<PodMeta>, CacheFileError> {
    let io_error = |source| CacheFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io_error(err)),
    };
    if len > MAX_CACHE_FILE_BYTES {
        return Err(CacheFileError::TooLarge {
            path: path.to_path_buf(),
            len,
        });
    }
    let bytes = std::fs::read(path).map_err(io_error)?;
    let file: CacheFile =
        serde_json::from_slice(&bytes).map_err(|err| CacheFileError::Invalid {
            path: path.to_path_buf(),
            reason: err.to_string(),
        })?;
    if file.version != FORMAT_VERSION {
        return Err(CacheFileError::Invalid {
            path: path.to_path_buf(),
            reason: format!("version {} (expected {FORMAT_VERSION})", file.version),
        });
    }
    Ok(file.pods)
}

/// Writes the cache file atomically.
pub fn save(path: &Path, pods: Vec<PodMeta>) -> Result<(), CacheFileError> {
    let io_error = |source| CacheFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = CacheFile {
        version: FORMAT_VERSION,
        saved_at: chrono::Utc::now(),
        pods,
    };
    let bytes = serde_json::to_vec(&file).map_err(|err| io_error(io::Error::other(err)))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_error)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut out = std::fs::File::create(&tmp).map_err(io_error)?;
    out.write_all(&bytes).map_err(io_error)?;
    out.sync_all().map_err(io_error)?;
    drop(out);
    std::fs::rename(&tmp, path).map_err(io_error)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::select::PodSelection;

    fn meta(uid: &str) -> PodMeta {
        PodMeta {
            namespace: "ns".into(),
            name: "p".into(),
            uid: uid.into(),
            config_hash: Some("h".into()),
            customer_id: "../x/é".into(),
            application: None,
            owner: Some("Deployment/api".into()),
            node_name: Some("n".into()),
            labels: [("a".to_string(), "b".to_string())].into(),
            annotations: Default::default(),
            images: [("c".to_string(), "img".to_string())].into(),
            selection: PodSelection::default(),
            multiline: None,
        }
    }

    #[test]
    fn cache_file_round_trips_and_replaces_atomically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join(CACHE_FILE_NAME);
        assert!(load(&path).expect("missing is empty").is_empty());
        save(&path, vec![meta("u1")]).expect("saves");
        save(&path, vec![meta("u1"), meta("u2")]).expect("saves again");
        assert_eq!(load(&path).expect("loads"), vec![meta("u1"), meta("u2")]);
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn bad_cache_files_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(CACHE_FILE_NAME);
        std::fs::write(&path, b"{not json").expect("writes");
        assert!(matches!(load(&path), Err(CacheFileError::Invalid { .. })));
        std::fs::write(
            &path,
            br#"{"version":99,"saved_at":"2024-01-01T00:00:00Z","pods":[]}"#,
        )
        .expect("writes");
        let err = load(&path).expect_err("wrong version");
        assert!(err.to_string().contains("version 99"), "{err}");
    }
}
