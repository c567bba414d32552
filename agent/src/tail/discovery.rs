//! Finding log files: a listing of `<root>/*/*/*.log*` (the once-a-second fallback and the
//! source of truth), and an inotify watch (via `notify`) that wakes the tailer as soon as a file
//! appears, moves or is written. Watch events are only hints: a lost or coalesced event costs at
//! most one rescan interval, never a line.
//!
//! A listing costs one `stat` per directory: a directory whose identity and modification time
//! (which every create, rename or delete of an entry updates) are unchanged since it was last
//! read, and that had settled then ([`DIR_SETTLE`]), is not read again; its entries from the last
//! read are reused, and only the files the caller asks about are `stat`ed again. Reading
//! directories at every rescan would also flood the inotify watch with open events.

use super::path::{FileKind, classify};
use crate::internal_events::tail::DiscoveryFailed;
use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime};

/// How old a directory's last change must be when it is read for that read to be reused while
/// its modification time stays the same: 2 s, above the coarsest timestamp granularity of the
/// file systems a node may use (1 s on ext4 with 128-byte inodes, 2 s on FAT) and the kernel's
/// clock tick, so a later change can never leave the same modification time behind.
pub const DIR_SETTLE: Duration = Duration::from_secs(2);

/// How often every directory is read regardless of its modification time: once a minute, in
/// case the clock stepped back (a change could then reproduce an old modification time).
pub const FULL_LISTING_INTERVAL: Duration = Duration::from_secs(60);

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
    /// Last modification time, where the file system keeps one.
    pub modified: Option<SystemTime>,
}

impl Found {
    fn from_metadata(path: PathBuf, kind: FileKind, meta: &Metadata) -> Self {
        Self {
            path,
            kind,
            dev: meta.dev(),
            inode: meta.ino(),
            size: meta.len(),
            modified: meta.modified().ok(),
        }
    }
}

/// The result of one listing.
#[derive(Debug, Default)]
pub struct Listing {
    /// Every log file found.
    pub files: Vec<Found>,
    /// Whether every directory could be read: only then does a file's absence mean it is gone.
    pub complete: bool,
}

/// Lists `<root>/*/*/*.log*` (hidden entries and `*.tmp` excluded), reading every directory.
pub fn list(root: &Path) -> Listing {
    Lister::new(root).list(|_| true)
}

/// Lists the log files of one container directory, reading it.
pub fn list_container_dir(dir: &Path) -> Listing {
    let mut listing = Listing {
        files: Vec::new(),
        complete: true,
    };
    if let Some(read) = read_files(dir, &mut listing.complete) {
        listing.files = read.items;
    }
    listing
}

/// What a directory held when it was last read.
#[derive(Debug)]
enum Content {
    /// The root or a pod directory: its subdirectories.
    Dirs(Vec<PathBuf>),
    /// A container directory: its log files.
    Files(Vec<Found>),
}

/// A directory read at an earlier listing.
#[derive(Debug)]
struct ReadDir {
    dev: u64,
    inode: u64,
    modified: SystemTime,
    content: Content,
    /// The listing that last saw the directory (entries of directories gone are dropped).
    seen: u64,
}

/// Lists the pod log tree, reading only the directories that changed since the last listing.
#[derive(Debug)]
pub struct Lister {
    root: PathBuf,
    dirs: HashMap<PathBuf, ReadDir>,
    generation: u64,
    last_full: Option<Instant>,
}

impl Lister {
    /// A lister of the tree under `root`; its first listing reads every directory.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            dirs: HashMap::new(),
            generation: 0,
            last_full: None,
        }
    }

    /// Lists the tree. Files of a directory that was not read again keep their earlier `stat`
    /// unless `refresh` asks for a new one (the caller knows which sizes it needs: files it has
    /// no descriptor of).
    pub fn list(&mut self, refresh: impl Fn(&Found) -> bool) -> Listing {
        let now = Instant::now();
        let full = self
            .last_full
            .is_none_or(|at| now.saturating_duration_since(at) >= FULL_LISTING_INTERVAL);
        if full {
            self.last_full = Some(now);
        }
        self.generation += 1;
        let mut scan = Scan {
            full,
            generation: self.generation,
            settled_before: SystemTime::now()
                .checked_sub(DIR_SETTLE)
                .unwrap_or(SystemTime::UNIX_EPOCH),
            listing: Listing {
                files: Vec::new(),
                complete: true,
            },
        };
        let root = self.root.clone();
        // A missing root makes the listing incomplete: it must not make followed files look deleted.
        for pod_dir in self.subdirectories(&root, false, &mut scan) {
            for container_dir in self.subdirectories(&pod_dir, true, &mut scan) {
                self.files(&container_dir, &refresh, &mut scan);
            }
        }
        let generation = self.generation;
        self.dirs.retain(|_, dir| dir.seen == generation);
        scan.listing
    }

    /// The non-hidden subdirectories of `dir`; a failure to read it clears `complete`, except a
    /// `dir` removed since its parent was listed (a deleted pod) when `may_vanish`.
    fn subdirectories(&mut self, dir: &Path, may_vanish: bool, scan: &mut Scan) -> Vec<PathBuf> {
        let Some(meta) = scan.stat_dir(dir, may_vanish) else {
            return Vec::new();
        };
        if let Some(Content::Dirs(dirs)) = self.unchanged(dir, &meta, scan) {
            return dirs.clone();
        }
        let Some(read) = read_subdirectories(dir, may_vanish, &mut scan.listing.complete) else {
            return Vec::new();
        };
        let dirs = read.items.clone();
        self.remember(dir, &meta, scan, read.whole, Content::Dirs(read.items));
        dirs
    }

    /// The log files of a container directory.
    fn files(&mut self, dir: &Path, refresh: &impl Fn(&Found) -> bool, scan: &mut Scan) {
        let Some(meta) = scan.stat_dir(dir, true) else {
            return;
        };
        if let Some(Content::Files(files)) = self.unchanged(dir, &meta, scan) {
            let mut stale = false;
            for found in files.iter() {
                if !refresh(found) {
                    scan.listing.files.push(found.clone());
                    continue;
                }
                match fs::metadata(&found.path) {
                    Ok(meta) if meta.is_file() => scan.listing.files.push(Found::from_metadata(
                        found.path.clone(),
                        found.kind,
                        &meta,
                    )),
                    // Gone or replaced without the directory's time changing (same timestamp
                    // unit): read the directory again next time.
                    _ => stale = true,
                }
            }
            if stale && let Some(read) = self.dirs.get_mut(dir) {
                read.modified = SystemTime::UNIX_EPOCH;
            }
            return;
        }
        if let Some(read) = read_files(dir, &mut scan.listing.complete) {
            scan.listing.files.extend(read.items.iter().cloned());
            self.remember(dir, &meta, scan, read.whole, Content::Files(read.items));
        }
    }

    /// What `dir` held at its last read, if it is the same directory, unchanged since then, and
    /// this is not a full listing.
    fn unchanged(&mut self, dir: &Path, meta: &Metadata, scan: &Scan) -> Option<&Content> {
        let read = self.dirs.get_mut(dir)?;
        let same = !scan.full
            && (read.dev, read.inode) == (meta.dev(), meta.ino())
            && meta.modified().ok() == Some(read.modified);
        if !same {
            return None;
        }
        read.seen = scan.generation;
        Some(&read.content)
    }

    /// Keeps a directory's content for later listings if it was read whole and had settled.
    fn remember(
        &mut self,
        dir: &Path,
        meta: &Metadata,
        scan: &Scan,
        whole: bool,
        content: Content,
    ) {
        match meta.modified() {
            Ok(modified) if whole && modified < scan.settled_before => {
                let read = ReadDir {
                    dev: meta.dev(),
                    inode: meta.ino(),
                    modified,
                    content,
                    seen: scan.generation,
                };
                self.dirs.insert(dir.to_path_buf(), read);
            }
            // Changed too recently, partly read, or no timestamps: read it again next time.
            _ => {
                self.dirs.remove(dir);
            }
        }
    }
}

/// The state of one listing in progress.
struct Scan {
    full: bool,
    generation: u64,
    /// Directories last changed before this can be reused while unchanged.
    settled_before: SystemTime,
    listing: Listing,
}

impl Scan {
    /// The directory's metadata; `None` (and an incomplete listing, unless `may_vanish` and it
    /// is gone) when it cannot be read.
    fn stat_dir(&mut self, dir: &Path, may_vanish: bool) -> Option<Metadata> {
        match fs::metadata(dir) {
            Ok(meta) => Some(meta),
            Err(error) => {
                if error.kind() != io::ErrorKind::NotFound || !may_vanish {
                    self.listing.complete = false;
                }
                if error.kind() != io::ErrorKind::NotFound {
                    DiscoveryFailed {
                        path: dir,
                        error: &error,
                    }
                    .emit();
                }
                None
            }
        }
    }
}

/// What reading a directory gave: its entries, and whether every entry could be read (a partly
/// read directory is used for this listing but not kept for later ones).
struct Entries<T> {
    items: Vec<T>,
    whole: bool,
}

/// Reads the non-hidden subdirectories of `dir`; `None` when it cannot be read (which clears
/// `complete`, except for a `dir` that vanished when `may_vanish`).
fn read_subdirectories(
    dir: &Path,
    may_vanish: bool,
    complete: &mut bool,
) -> Option<Entries<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound && may_vanish => return None,
        Err(error) => {
            *complete = false;
            if error.kind() != io::ErrorKind::NotFound {
                DiscoveryFailed {
                    path: dir,
                    error: &error,
                }
                .emit();
            }
            return None;
        }
    };
    let mut read = Entries {
        items: Vec::new(),
        whole: true,
    };
    for entry in entries {
        match entry {
            Ok(entry) if !entry.file_name().as_encoded_bytes().starts_with(b".") => {
                if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    read.items.push(entry.path());
                }
            }
            Ok(_) => {}
            Err(error) => {
                read.whole = false;
                DiscoveryFailed {
                    path: dir,
                    error: &error,
                }
                .emit();
            }
        }
    }
    *complete &= read.whole;
    Some(read)
}

/// Reads the log files of a container directory (one `stat` each); `None` when it is gone or
/// cannot be read (the latter clears `complete`).
fn read_files(dir: &Path, complete: &mut bool) -> Option<Entries<Found>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return None,
        Err(error) => {
            *complete = false;
            DiscoveryFailed {
                path: dir,
                error: &error,
            }
            .emit();
            return None;
        }
    };
    let mut read = Entries {
        items: Vec::new(),
        whole: true,
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                read.whole = false;
                *complete = false;
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
            Ok(meta) if meta.is_file() => read.items.push(Found::from_metadata(path, kind, &meta)),
            Ok(_) => {}
            // Removed since the directory was read: the next read does not list it either.
            Err(error) if error.kind() == io::ErrorKind::NotFound => read.whole = false,
            Err(error) => {
                read.whole = false;
                *complete = false;
                DiscoveryFailed {
                    path: &path,
                    error: &error,
                }
                .emit();
            }
        }
    }
    Some(read)
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

    /// Sets a directory's modification time (as if its last change was at `time`).
    fn set_dir_time(dir: &Path, time: SystemTime) {
        fs::File::open(dir)
            .expect("open dir")
            .set_modified(time)
            .expect("set mtime");
    }

    fn names(listing: &Listing) -> Vec<String> {
        let mut names: Vec<String> = listing
            .files
            .iter()
            .map(|found| {
                found
                    .path
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn unchanged_settled_directories_are_not_read_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pod = dir.path().join("ns_pod_uid");
        let container = pod.join("app");
        fs::create_dir_all(&container).expect("mkdir");
        fs::write(container.join("0.log"), b"x\n").expect("write");
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        for settled in [dir.path(), &pod, &container] {
            set_dir_time(settled, long_ago);
        }
        let mut lister = Lister::new(dir.path());
        assert_eq!(names(&lister.list(|_| false)), ["0.log"]);
        // A change that left the directory's time as it was is not seen: the read was reused.
        fs::write(container.join("1.log"), b"y\n").expect("write");
        set_dir_time(&container, long_ago);
        assert_eq!(names(&lister.list(|_| false)), ["0.log"]);
        // Any change that moves the time is.
        fs::write(container.join("2.log"), b"z\n").expect("write");
        let listing = lister.list(|_| false);
        assert!(listing.complete);
        assert_eq!(names(&listing), ["0.log", "1.log", "2.log"]);
    }

    #[test]
    fn recently_changed_directories_are_read_at_every_listing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let container = dir.path().join("ns_pod_uid/app");
        fs::create_dir_all(&container).expect("mkdir");
        fs::write(container.join("0.log"), b"x\n").expect("write");
        let mut lister = Lister::new(dir.path());
        assert_eq!(names(&lister.list(|_| false)), ["0.log"]);
        // Same time as at the last read, but that read was within DIR_SETTLE of the change.
        let recent = fs::metadata(&container)
            .expect("stat")
            .modified()
            .expect("mtime");
        fs::write(container.join("1.log"), b"y\n").expect("write");
        set_dir_time(&container, recent);
        assert_eq!(names(&lister.list(|_| false)), ["0.log", "1.log"]);
    }

    #[test]
    fn reused_reads_stat_only_the_files_asked_for() {
        let dir = tempfile::tempdir().expect("temp dir");
        let container = dir.path().join("ns_pod_uid/app");
        fs::create_dir_all(&container).expect("mkdir");
        fs::write(container.join("0.log"), b"x\n").expect("write");
        fs::write(container.join("1.log"), b"x\n").expect("write");
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        for settled in [dir.path(), &dir.path().join("ns_pod_uid"), &container] {
            set_dir_time(settled, long_ago);
        }
        let mut lister = Lister::new(dir.path());
        lister.list(|_| false);
        fs::write(container.join("0.log"), b"grown\n").expect("write");
        fs::write(container.join("1.log"), b"grown\n").expect("write");
        let listing = lister.list(|found| found.path.ends_with("1.log"));
        let size = |name: &str| {
            listing
                .files
                .iter()
                .find(|found| found.path.ends_with(name))
                .map(|found| found.size)
        };
        assert_eq!((size("0.log"), size("1.log")), (Some(2), Some(6)));
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
