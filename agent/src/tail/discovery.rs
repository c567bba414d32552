//! Finding log files: a full listing of `<root>/*/*/*.log*` (the once-a-second fallback and the
//! source of truth), and an inotify watch (via `notify`) that wakes the tailer as soon as a file
//! appears, moves or is written. Watch events are only hints: a lost or coalesced event costs at
//! most one rescan interval, never a line.

use super::path::{FileKind, classify};
use crate::internal_events::tail::DiscoveryFailed;
use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};

/// A log file found by a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its path.
    pub path: PathBuf,
    /// What its name says it is.
    pub kind: FileKind,
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub inode: u64,
    /// Size in bytes.
    pub size: u64,
}

/// The result of one listing.
#[derive(Debug, Default)]
pub struct Listing {
    /// Every log file found.
    pub files: Vec<Found>,
    /// Whether every directory could be read: only then does a file's absence mean it is gone.
    pub complete: bool,
}

/// Lists `<root>/*/*/*.log*` (hidden entries and `*.tmp` excluded).
pub fn list(root: &Path) -> Listing {
    let mut listing = Listing {
        files: Vec::new(),
        complete: true,
    };
    // A missing root makes the listing incomplete: it must not make followed files look deleted.
    for pod_dir in subdirectories(root, false, &mut listing.complete) {
        for container_dir in subdirectories(&pod_dir, true, &mut listing.complete) {
            list_files(&container_dir, &mut listing);
        }
    }
    listing
}

/// The non-hidden subdirectories of `dir`; a failure to read it clears `complete`, except a
/// `dir` removed since its parent was listed (a deleted pod) when `may_vanish`.
fn subdirectories(dir: &Path, may_vanish: bool, complete: &mut bool) -> Vec<PathBuf> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound && may_vanish => return Vec::new(),
        Err(error) => {
            *complete = false;
            if error.kind() != io::ErrorKind::NotFound {
                DiscoveryFailed {
                    path: dir,
                    error: &error,
                }
                .emit();
            }
            return Vec::new();
        }
    };
    let mut dirs = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) if !entry.file_name().as_encoded_bytes().starts_with(b".") => {
                if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    dirs.push(entry.path());
                }
            }
            Ok(_) => {}
            Err(error) => {
                *complete = false;
                DiscoveryFailed {
                    path: dir,
                    error: &error,
                }
                .emit();
            }
        }
    }
    dirs
}

fn list_files(dir: &Path, listing: &mut Listing) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return,
        Err(error) => {
            listing.complete = false;
            DiscoveryFailed {
                path: dir,
                error: &error,
            }
            .emit();
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                listing.complete = false;
                DiscoveryFailed {
                    path: dir,
                    error: &error,
                }
                .emit();
                continue;
            }
        };
        let Some(kind) = entry.file_name().to_str().and_then(classify) else {
            continue;
        };
        let path = entry.path();
        match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => listing.files.push(Found {
                path,
                kind,
                dev: meta.dev(),
                inode: meta.ino(),
                size: meta.len(),
            }),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => {
                listing.complete = false;
                DiscoveryFailed {
                    path: &path,
                    error: &error,
                }
                .emit();
            }
        }
    }
}

/// What wakes the tailer's loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// A file was written.
    Modified(PathBuf),
    /// Something in the tree was created, moved or removed: rescan.
    Changed,
    /// Stop.
    Stop,
}

/// Watches `root` recursively; events become [`Wake`]s. When the bounded wake channel is full,
/// `overflow` is set instead (the tailer then rescans).
pub fn watch(
    root: &Path,
    wake: SyncSender<Wake>,
    overflow: Arc<AtomicBool>,
) -> notify::Result<RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
        let wakes: Vec<Wake> = match result {
            Ok(event) => match event.kind {
                EventKind::Access(_) => Vec::new(),
                EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => {
                    event.paths.into_iter().map(Wake::Modified).collect()
                }
                _ => vec![Wake::Changed],
            },
            Err(_) => vec![Wake::Changed],
        };
        for item in wakes {
            match wake.try_send(item) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(_)) => overflow.store(true, Ordering::Relaxed),
            }
        }
    })?;
    watcher.watch(root, RecursiveMode::Recursive)?;
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_finds_log_files_three_levels_down_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let container = dir.path().join("ns_pod_uid/app");
        fs::create_dir_all(&container).expect("mkdir");
        for name in [
            "0.log",
            "0.log.20240101-000000",
            "0.log.20240101-000000.gz",
            "0.log.x.gz.tmp",
            "notes.txt",
            ".0.log",
        ] {
            fs::write(container.join(name), b"x\n").expect("write");
        }
        fs::write(dir.path().join("ns_pod_uid/stray.log"), b"x\n").expect("write");
        fs::create_dir_all(dir.path().join(".hidden_pod_uid/app")).expect("mkdir");
        fs::write(dir.path().join(".hidden_pod_uid/app/0.log"), b"x\n").expect("write");
        let listing = list(dir.path());
        assert!(listing.complete);
        let mut names: Vec<(String, FileKind)> = listing
            .files
            .iter()
            .map(|found| {
                (
                    found
                        .path
                        .file_name()
                        .expect("name")
                        .to_string_lossy()
                        .into_owned(),
                    found.kind,
                )
            })
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            names,
            vec![
                ("0.log".into(), FileKind::Live),
                ("0.log.20240101-000000".into(), FileKind::Rotated),
                ("0.log.20240101-000000.gz".into(), FileKind::Compressed),
            ]
        );
        assert!(listing.files.iter().all(|found| found.size == 2));
    }

    #[test]
    fn missing_root_is_an_incomplete_listing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let listing = list(&dir.path().join("absent"));
        assert!(listing.files.is_empty());
        assert!(
            !listing.complete,
            "a missing root must not make followed files look deleted"
        );
    }
}
