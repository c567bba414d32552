//! The save loop: soon after every acknowledgement (at most every [`MIN_SAVE_SPACING`]), once a
//! second for everything else, and at shutdown, collects every file's acknowledged position, merges it into the entries loaded at start, drops entries of files gone
//! for over [`GONE_RETENTION`], and writes the checkpoint file. A tick where no position changed
//! and every entry's file is open does no I/O and starts no blocking task (an idle agent).

use super::ack::AckTracker;
use super::registry::{FileIdentity, FileRegistry};
use super::store::{CheckpointError, CheckpointStore, FileCheckpoint};
use crate::batch::BatchId;
use crate::internal_events::InternalEvent;
use crate::internal_events::checkpoint::{
    CheckpointAge, CheckpointEntriesDropped, CheckpointSaveFailed, CheckpointSaved, Unacknowledged,
};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// Positions that change without an acknowledgement (files opened, gone, retired) are saved on
/// this tick.
pub const SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// An acknowledgement is saved this long after the previous save at the latest: what a crash
/// re-sends is what was acknowledged in the last tenth of a second (plus the save itself), at
/// no more than ten small fsync'd writes a second.
pub const MIN_SAVE_SPACING: Duration = Duration::from_millis(100);

/// An idle agent still rewrites the checkpoint file this often, so its `saved_at` bounds how
/// long a later start finds the agent was down (to within this interval).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);

/// Entries of files that are gone (not open, path missing or another inode) are kept this long,
/// then dropped: a minute covers the kubelet's gzip of a rotated file (its `.gz` continues the
/// entry) and keeps the file small on nodes with pod churn.
pub const GONE_RETENTION: Duration = Duration::from_secs(60);

/// The acknowledgement tracker, shared by the delivery loop (writer) and the saver (reader), with
/// the signal that wakes the saver when a batch is acknowledged.
#[derive(Clone, Default)]
pub struct SharedAcks {
    tracker: Arc<Mutex<AckTracker>>,
    acknowledged: Arc<Notify>,
}

impl SharedAcks {
    /// Records that `batch` was acknowledged and wakes the saver.
    pub fn confirm(&self, batch: BatchId) {
        lock_acks(self).confirm(batch);
        self.acknowledged.notify_one();
    }

    /// Resolves after the next acknowledgement (at once if one came since the last call).
    async fn acknowledged(&self) {
        self.acknowledged.notified().await;
    }
}

/// Locks the shared tracker; a panic elsewhere cannot leave it half-updated in a way that matters
/// more than stopping would, so a poisoned lock is used as is.
pub fn lock_acks(acks: &SharedAcks) -> MutexGuard<'_, AckTracker> {
    acks.tracker
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug)]
struct Entry {
    checkpoint: FileCheckpoint,
    /// When the entry last changed (a counter): newer entries are written first.
    updated: u64,
}

/// The entries to persist, keyed by the full identity (device, inode, fingerprint). Keying by
/// inode alone would let a new file that reuses a deleted file's inode overwrite that file's entry
/// while its `.gz` continuation still needs it.
#[derive(Debug, Default)]
pub struct CheckpointSet {
    entries: HashMap<FileIdentity, Entry>,
    changed: bool,
    clock: u64,
}

impl CheckpointSet {
    /// Starts from the checkpoints loaded at start.
    pub fn new(loaded: Vec<FileCheckpoint>) -> Self {
        let count = loaded.len() as u64;
        let entries = loaded
            .into_iter()
            .enumerate()
            // The file lists newest first; keep that order.
            .map(|(i, cp)| {
                (
                    cp.identity(),
                    Entry {
                        checkpoint: cp,
                        updated: count - i as u64,
                    },
                )
            })
            .collect();
        Self {
            entries,
            changed: false,
            clock: count,
        }
    }

    /// Records a file's acknowledged position (replacing the entry of the same file, and the
    /// entries of the identities it `replaces`).
    pub fn upsert(&mut self, checkpoint: FileCheckpoint, replaces: &[FileIdentity]) {
        let key = checkpoint.identity();
        for replaced in replaces.iter().filter(|replaced| **replaced != key) {
            self.changed |= self.entries.remove(replaced).is_some();
        }
        match self.entries.get_mut(&key) {
            Some(entry) if entry.checkpoint == checkpoint => {}
            _ => {
                self.clock += 1;
                self.entries.insert(
                    key,
                    Entry {
                        checkpoint,
                        updated: self.clock,
                    },
                );
                self.changed = true;
            }
        }
    }

    /// Drops the entry of a file that is gone (its loss already counted).
    pub fn remove(&mut self, identity: &FileIdentity) {
        self.changed |= self.entries.remove(identity).is_some();
    }

    /// Updates the path of an entry whose file is open (after a rename).
    pub fn set_path(&mut self, identity: FileIdentity, path: &Path) {
        if let Some(entry) = self.entries.get_mut(&identity) {
            if entry.checkpoint.gone_since.take().is_some() {
                self.changed = true;
            }
            if entry.checkpoint.path != path {
                entry.checkpoint.path = path.to_path_buf();
                self.changed = true;
            }
        }
    }

    /// Drops entries gone for [`GONE_RETENTION`]. An entry's file is present while it is in `open`
    /// (full identity), or while no open file holds its inode and `exists` says its path still
    /// holds the inode; otherwise it is gone (an inode held by another open file means the old
    /// file was deleted). Returns how many were dropped.
    pub fn expire(
        &mut self,
        now: DateTime<Utc>,
        open: &HashSet<FileIdentity>,
        exists: impl Fn(&FileCheckpoint) -> bool,
    ) -> usize {
        let open_inodes: HashSet<(u64, u64)> = open.iter().map(|i| (i.dev, i.inode)).collect();
        let before = self.entries.len();
        let mut changed = false;
        self.entries.retain(|identity, entry| {
            let present = open.contains(identity)
                || (!open_inodes.contains(&(identity.dev, identity.inode))
                    && exists(&entry.checkpoint));
            let gone_since = &mut entry.checkpoint.gone_since;
            if present {
                changed |= gone_since.take().is_some();
                return true;
            }
            let since = *gone_since.get_or_insert_with(|| {
                changed = true;
                now
            });
            (now - since).to_std().unwrap_or_default() < GONE_RETENTION
        });
        let dropped = before - self.entries.len();
        self.changed |= changed || dropped > 0;
        dropped
    }

    /// Whether anything changed since the last [`Self::take_changed`].
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Whether a save would find nothing to do: nothing changed, and every entry's file is in
    /// `open` and was not gone before (so [`Self::expire`] would neither `stat` nor drop).
    pub fn is_current(&self, open: &HashSet<FileIdentity>) -> bool {
        !self.changed
            && self.entries.iter().all(|(identity, entry)| {
                entry.checkpoint.gone_since.is_none() && open.contains(identity)
            })
    }

    /// The entries, most recently updated first (so a reader matching by inode alone meets the
    /// newest file holding that inode first).
    pub fn checkpoints(&self) -> Vec<FileCheckpoint> {
        let mut all: Vec<&Entry> = self.entries.values().collect();
        all.sort_by_key(|entry| std::cmp::Reverse(entry.updated));
        all.into_iter().map(|e| e.checkpoint.clone()).collect()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Whether `checkpoint`'s path still holds its inode.
pub fn path_holds_inode(checkpoint: &FileCheckpoint) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(&checkpoint.path)
        .is_ok_and(|meta| meta.dev() == checkpoint.dev && meta.ino() == checkpoint.inode)
}

/// Collects acknowledged positions and writes the checkpoint file.
pub struct Saver {
    store: CheckpointStore,
    set: CheckpointSet,
    acks: SharedAcks,
    registry: FileRegistry,
    last_saved: Instant,
    /// When the file was last written.
    last_written: Instant,
}

impl Saver {
    /// A saver starting from `loaded` checkpoints.
    pub fn new(
        store: CheckpointStore,
        loaded: Vec<FileCheckpoint>,
        acks: SharedAcks,
        registry: FileRegistry,
    ) -> Self {
        Self {
            store,
            set: CheckpointSet::new(loaded),
            acks,
            registry,
            last_saved: Instant::now(),
            last_written: Instant::now(),
        }
    }

    /// Saves after acknowledgements and once a second until `shutdown`, then returns (call
    /// [`Self::save_now`] for the final save once delivery has stopped).
    pub async fn run(&mut self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(SAVE_INTERVAL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.acks.acknowledged() => {
                    let spaced = tokio::time::sleep_until(self.last_saved + MIN_SAVE_SPACING);
                    tokio::select! {
                        () = spaced => {}
                        () = shutdown.cancelled() => return,
                    }
                }
                () = shutdown.cancelled() => return,
            }
            if let Err(error) = self.save_now().await {
                CheckpointSaveFailed { error: &error }.emit();
            }
        }
    }

    /// Collects the current positions and writes the file if anything changed.
    pub async fn save_now(&mut self) -> Result<(), CheckpointError> {
        let finished = self.collect();
        let open: HashSet<FileIdentity> = self.registry.identities().into_iter().collect();
        let heartbeat = self.last_written.elapsed() >= HEARTBEAT_INTERVAL;
        if self.set.is_current(&open) && !heartbeat {
            // The file on disk is current: nothing to write, no file to look for.
            self.saved(finished);
            return Ok(());
        }
        let set = std::mem::take(&mut self.set);
        let store = self.store.clone();
        let started = Instant::now();
        let (set, result) = tokio::task::spawn_blocking(move || {
            let mut set = set;
            let dropped = set.expire(Utc::now(), &open, path_holds_inode);
            if dropped > 0 {
                CheckpointEntriesDropped { count: dropped }.emit();
            }
            let result = if set.take_changed() || heartbeat {
                store.save(&set.checkpoints()).map(|()| true)
            } else {
                Ok(false)
            };
            (set, result)
        })
        .await
        .map_err(|join| CheckpointError::Io {
            operation: "run save task",
            path: self.store.path().to_path_buf(),
            source: std::io::Error::other(join.to_string()),
        })?;
        self.set = set;
        match result {
            Ok(wrote) => {
                if wrote {
                    self.last_written = Instant::now();
                    CheckpointSaved {
                        entries: self.set.len(),
                        duration: started.elapsed(),
                    }
                    .emit();
                }
                self.saved(finished);
                Ok(())
            }
            Err(error) => {
                // Changes are kept: mark the set changed so the next tick retries.
                self.set.changed = true;
                CheckpointAge {
                    age: self.last_saved.elapsed(),
                }
                .emit();
                Err(error)
            }
        }
    }

    /// The checkpoint file is current: finished files' final positions are on disk, so stop
    /// tracking them.
    fn saved(&mut self, finished: Vec<crate::source_event::FileId>) {
        self.last_saved = Instant::now();
        if !finished.is_empty() {
            let mut acks = lock_acks(&self.acks);
            for file in finished {
                acks.forget(file);
                self.registry.remove(file);
            }
        }
        CheckpointAge {
            age: Duration::ZERO,
        }
        .emit();
    }

    /// Merges the tracker's positions into the set; returns the files that are finished.
    fn collect(&mut self) -> Vec<crate::source_event::FileId> {
        for retired in self.registry.take_retired() {
            self.set.remove(&retired);
        }
        let states = lock_acks(&self.acks).states();
        let mut finished = Vec::new();
        let mut unacknowledged = 0;
        for state in &states {
            unacknowledged += state.unacknowledged_bytes;
            let Some(registered) = self.registry.get(state.file) else {
                continue;
            };
            let identity = registered.identity;
            match state.acknowledged {
                Some(position) => self.set.upsert(
                    FileCheckpoint {
                        dev: identity.dev,
                        inode: identity.inode,
                        fingerprint: identity.fingerprint,
                        path: registered.path,
                        offset: position.offset,
                        offset_marker: position.marker,
                        unfinished: position.unfinished,
                        size: registered.size,
                        gone_since: None,
                    },
                    &registered.replaces,
                ),
                None => self.set.set_path(identity, &registered.path),
            }
            if state.finished {
                finished.push(state.file);
            }
        }
        Unacknowledged {
            bytes: unacknowledged,
            files: states.len(),
        }
        .emit();
        finished
    }

    /// The checkpoints as they would be saved now (for tests and diagnostics).
    pub fn checkpoints(&self) -> Vec<FileCheckpoint> {
        self.set.checkpoints()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchId;
    use crate::source_event::FileId;
    use std::path::PathBuf;

    fn cp(inode: u64, offset: u64) -> FileCheckpoint {
        FileCheckpoint {
            dev: 1,
            inode,
            fingerprint: 9,
            path: PathBuf::from(format!("/logs/{inode}.log")),
            offset,
            offset_marker: 0,
            ..FileCheckpoint::default()
        }
    }

    fn later(start: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
        start + chrono::TimeDelta::from_std(by).expect("small duration")
    }

    #[test]
    fn gone_entries_are_dropped_after_the_retention_only() {
        let mut set = CheckpointSet::new(vec![cp(1, 10), cp(2, 20)]);
        let start = Utc::now();
        let open = HashSet::from([cp(1, 0).identity()]);
        assert_eq!(set.expire(start, &open, |_| false), 0);
        assert_eq!(
            set.expire(later(start, GONE_RETENTION / 2), &open, |_| false),
            0
        );
        assert_eq!(
            set.expire(later(start, GONE_RETENTION), &open, |_| false),
            1
        );
        assert_eq!(set.checkpoints(), vec![cp(1, 10)]);
        assert!(set.take_changed());
    }

    #[test]
    fn a_file_reusing_an_inode_gets_its_own_entry_listed_first() {
        let mut set = CheckpointSet::new(vec![cp(1, 10)]);
        let reused = FileCheckpoint {
            fingerprint: 99,
            offset: 3,
            ..cp(1, 0)
        };
        set.upsert(reused.clone(), &[]);
        assert_eq!(
            set.checkpoints(),
            vec![reused, cp(1, 10)],
            "the old file's entry survives, after the new one"
        );
    }

    #[test]
    fn an_entry_whose_file_reappears_is_kept() {
        let mut set = CheckpointSet::new(vec![cp(2, 20)]);
        let start = Utc::now();
        let none = HashSet::new();
        set.expire(start, &none, |_| false);
        set.expire(later(start, GONE_RETENTION / 2), &none, |_| true);
        assert_eq!(
            set.expire(later(start, GONE_RETENTION * 2), &none, |_| false),
            0,
            "clock restarted"
        );
    }

    #[test]
    fn an_open_file_reusing_an_inode_does_not_keep_the_old_entry() {
        let mut set = CheckpointSet::new(vec![cp(1, 10)]);
        let reused = FileIdentity {
            fingerprint: 99,
            ..cp(1, 0).identity()
        };
        let open = HashSet::from([reused]);
        let start = Utc::now();
        // The path still holds the inode, but another file owns it now.
        set.expire(start, &open, |_| true);
        assert_eq!(set.expire(later(start, GONE_RETENTION), &open, |_| true), 1);
    }

    #[test]
    fn set_is_current_only_when_unchanged_and_every_file_is_open() {
        let mut set = CheckpointSet::new(vec![cp(1, 10), cp(2, 20)]);
        let both = HashSet::from([cp(1, 0).identity(), cp(2, 0).identity()]);
        assert!(
            set.is_current(&both),
            "an idle agent: nothing to write or stat"
        );
        assert!(
            !set.is_current(&HashSet::from([cp(1, 0).identity()])),
            "a closed file must be looked for"
        );
        set.upsert(cp(1, 11), &[]);
        assert!(!set.is_current(&both), "a new position must be written");
        set.take_changed();
        assert!(set.is_current(&both));
        // A file seen gone once must be seen present again before the tick can be skipped.
        set.expire(Utc::now(), &HashSet::new(), |_| false);
        set.take_changed();
        assert!(!set.is_current(&both));
        set.expire(Utc::now(), &both, |_| false);
        assert!(
            set.take_changed(),
            "the cleared gone marks are written once"
        );
        assert!(set.is_current(&both));
    }

    #[test]
    fn the_gone_time_survives_a_restart() {
        let mut set = CheckpointSet::new(vec![cp(1, 10)]);
        let start = Utc::now();
        set.expire(start, &HashSet::new(), |_| false);
        let saved = set.checkpoints();
        assert_eq!(saved[0].gone_since, Some(start));
        // An agent restarted within the retention keeps counting from the first time.
        let mut restarted = CheckpointSet::new(saved);
        assert_eq!(
            restarted.expire(later(start, GONE_RETENTION), &HashSet::new(), |_| false),
            1
        );
    }

    #[test]
    fn an_entry_replaced_by_a_new_identity_of_its_file_is_dropped() {
        let plain = cp(1, 10);
        let mut set = CheckpointSet::new(vec![plain.clone(), cp(2, 5)]);
        set.take_changed();
        let gz = FileCheckpoint {
            inode: 3,
            offset: 40,
            ..plain.clone()
        };
        set.upsert(gz.clone(), &[plain.identity()]);
        assert!(set.take_changed());
        assert_eq!(set.checkpoints(), vec![gz, cp(2, 5)]);
    }

    #[test]
    fn upsert_marks_changed_only_on_a_new_position() {
        let mut set = CheckpointSet::new(vec![cp(1, 10)]);
        set.upsert(cp(1, 10), &[]);
        assert!(!set.take_changed());
        set.upsert(cp(1, 11), &[]);
        assert!(set.take_changed());
        assert_eq!(set.checkpoints(), vec![cp(1, 11)]);
    }

    #[tokio::test]
    async fn saver_writes_acknowledged_positions_and_retires_finished_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::open(dir.path()).expect("opens");
        let registry = FileRegistry::new();
        let file_path = dir.path().join("0.log");
        std::fs::write(&file_path, b"x").expect("writes");
        let identity = FileIdentity {
            dev: 3,
            inode: 4,
            fingerprint: 5,
        };
        registry.register(FileId(1), identity, file_path.clone());
        let acks = SharedAcks::default();
        let mut saver = Saver::new(store.clone(), Vec::new(), acks.clone(), registry.clone());
        {
            let mut t = lock_acks(&acks);
            t.line(
                FileId(1),
                BatchId(1),
                0,
                crate::checkpoint::Position {
                    offset: 100,
                    marker: 77,
                    unfinished: crate::source_event::Unfinished::NONE,
                },
            );
            t.closed(FileId(1));
        }
        saver.save_now().await.expect("saves");
        assert!(
            store.load().expect("loads").checkpoints.is_empty(),
            "nothing acknowledged yet"
        );
        lock_acks(&acks).confirm(BatchId(1));
        saver.save_now().await.expect("saves");
        let saved = store.load().expect("loads").checkpoints;
        assert_eq!(saved.len(), 1);
        assert_eq!(
            (saved[0].inode, saved[0].offset, saved[0].offset_marker),
            (4, 100, 77)
        );
        assert_eq!(saved[0].path, file_path);
        assert_eq!(lock_acks(&acks).tracked_files(), 0, "finished file retired");
        assert!(registry.get(FileId(1)).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn an_acknowledgement_is_saved_well_before_the_next_tick() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::open(dir.path()).expect("opens");
        let registry = FileRegistry::new();
        let identity = FileIdentity {
            dev: 3,
            inode: 4,
            fingerprint: 5,
        };
        registry.register(FileId(1), identity, dir.path().join("0.log"));
        let acks = SharedAcks::default();
        let mut saver = Saver::new(store.clone(), Vec::new(), acks.clone(), registry);
        let shutdown = CancellationToken::new();
        let running = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { saver.run(shutdown).await }
        });
        // Past the first tick, so the next one is a full interval away.
        tokio::time::sleep(SAVE_INTERVAL / 10).await;
        let position = crate::checkpoint::Position {
            offset: 100,
            marker: 77,
            unfinished: crate::source_event::Unfinished::NONE,
        };
        lock_acks(&acks).line(FileId(1), BatchId(1), 0, position);
        let acknowledged_at = Instant::now();
        acks.confirm(BatchId(1));
        let saved_after = loop {
            let saved = store.load().expect("loads").checkpoints;
            if saved.first().is_some_and(|entry| entry.offset == 100) {
                break acknowledged_at.elapsed();
            }
            assert!(acknowledged_at.elapsed() < SAVE_INTERVAL * 2, "never saved");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(
            saved_after <= MIN_SAVE_SPACING + Duration::from_millis(20),
            "saved {saved_after:?} after the acknowledgement"
        );
        shutdown.cancel();
        running.await.expect("saver stops");
    }
}
