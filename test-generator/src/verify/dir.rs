//! Delivered objects in a local directory laid out like the bucket:
//! `<dir>/<customer>/<cluster>/<app>/<pod>/<file>.json.gz`.

use super::tally::Tally;
use super::{VerifyError, read_object};
use logrelay_common::key::ObjectKey;
use std::path::{Path, PathBuf};

/// Suffix of the objects read; other files are ignored.
const OBJECT_SUFFIX: &str = ".json.gz";

/// Reads every object under `root` into `tally`, in key order.
pub async fn read(root: &Path, tally: &mut Tally<'_>) -> Result<(), VerifyError> {
    for path in object_files(root).await? {
        read_file(root, &path, tally).await;
    }
    Ok(())
}

/// Reads one object file below `root` into `tally`; an unreadable one is counted and skipped.
pub async fn read_file(root: &Path, path: &Path, tally: &mut Tally<'_>) {
    let key = relative_key(root, path);
    let partition_customer = match ObjectKey::parse(&key) {
        Ok(parsed) => parsed.partition.customer_id,
        Err(error) => {
            tracing::warn!(%key, %error, "object key does not parse; skipped");
            tally.object_unreadable();
            return;
        }
    };
    let file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot open object; skipped");
            tally.object_unreadable();
            return;
        }
    };
    tally.object_read();
    if let Err(error) =
        read_object(tokio::io::BufReader::new(file), &partition_customer, tally).await
    {
        tracing::warn!(%key, %error, "object is broken; lines after the error are not counted");
        tally.object_unreadable();
    }
}

/// The key of `path` below `root`, with `/` separators.
fn relative_key(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.iter()
        .map(|p| p.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// All `*.json.gz` files below `root`, sorted.
pub async fn object_files(root: &Path) -> Result<Vec<PathBuf>, VerifyError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| VerifyError::Io { path, source }
    };
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries = tokio::fs::read_dir(&dir).await.map_err(io(&dir))?;
        while let Some(entry) = entries.next_entry().await.map_err(io(&dir))? {
            let path = entry.path();
            let kind = entry.file_type().await.map_err(io(&path))?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() && path.to_string_lossy().ends_with(OBJECT_SUFFIX) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}
