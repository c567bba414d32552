//! Reconciling a listing of the pods root with the followed files: renames (rotation), files
//! gone (drained, then closed), files that shrank (truncation: read again from 0 under a new id),
//! and files without a descriptor that vanished (continued in their `.gz`, or counted as lost).

use super::start::Truncated;
use super::{CompressedFile, State, TRUNCATED_MEMORY, WATCH_RETRY_INTERVAL};
use crate::internal_events::tail::{
    BytesLost, CompressedFileResumed, FileClosed, FileRotated, FileTruncated, LossReason,
    ReadFailed, WatchFailed,
};
use crate::source_event::{FileId, offset_marker};
use crate::tail::discovery::{self, Found};
use crate::tail::file::{FileStart, Halt, Source, TrackedFile};
use crate::tail::identity::{
    final_fingerprint, fingerprint, read_first_bytes, read_gz_first_bytes,
};
use crate::tail::path::{FileKind, PodLogPath};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

impl State {
    pub(super) fn scan(&mut self) -> Result<(), Halt> {
        let now = Instant::now();
        self.last_scan = Some(now);
        self.scan_wanted = false;
        self.ensure_watch(now);
        // Files with an open descriptor are checked with `fstat` below; others need a fresh `stat`.
        let (files, by_inode) = (&self.files, &self.by_inode);
        let listing = self.lister.list(|found| {
            found.kind != FileKind::Compressed
                && by_inode
                    .get(&(found.dev, found.inode))
                    .and_then(|id| files.get(id))
                    .is_none_or(|file| file.source.is_none())
        });
        self.note_compressed(&listing.files, listing.complete);
        let found_by_inode: HashMap<(u64, u64), &Found> = listing
            .files
            .iter()
            .map(|found| ((found.dev, found.inode), found))
            .collect();
        let ids: Vec<FileId> = self.files.keys().copied().collect();
        for id in ids {
            self.check_followed(id, &found_by_inode, listing.complete)?;
        }
        // Plain files first: a checkpoint is claimed by its own file before a `.gz` copy of it.
        let (plain, gzipped): (Vec<&Found>, Vec<&Found>) = listing
            .files
            .iter()
            .partition(|found| found.kind != FileKind::Compressed);
        for found in plain {
            if !self.by_inode.contains_key(&(found.dev, found.inode)) {
                self.consider_plain(found, now)?;
            }
        }
        if !self.loaded.is_empty() {
            // The first listing: which `.gz` files were made while the agent was down.
            self.mark_recoverable(&listing.files);
        }
        for found in gzipped {
            if !self.by_inode.contains_key(&(found.dev, found.inode)) {
                self.consider_compressed(found)?;
            }
        }
        self.postponed
            .retain(|key, _| found_by_inode.contains_key(key));
        self.expire_resume_points(now);
        self.expire_truncations(now)?;
        if listing.complete {
            self.keep_pod_series(&listing.files);
        }
        self.listed_once |= listing.complete;
        self.balance_slots()?;
        self.emit_gauges();
        Ok(())
    }

    /// Keeps the per-pod series of the pods with files in a complete listing; the others expire.
    fn keep_pod_series(&mut self, files: &[Found]) {
        if self.pod_series.is_empty() {
            return;
        }
        let pods: Vec<PodLogPath> = files
            .iter()
            .map(|found| PodLogPath::from_path(&self.config.root, &found.path))
            .collect();
        let listed: HashSet<(&str, &str)> = pods
            .iter()
            .map(|pod| (pod.namespace.as_str(), pod.pod_name.as_str()))
            .collect();
        self.pod_series.keep_listed(&listed);
    }

    fn ensure_watch(&mut self, now: Instant) {
        if self.watcher.is_some() || now < self.watch_retry_at || !self.config.root.is_dir() {
            return;
        }
        match discovery::watch(
            &self.config.root,
            self.wake_tx.clone(),
            self.overflow.clone(),
        ) {
            Ok(watcher) => self.watcher = Some(watcher),
            Err(error) => {
                WatchFailed {
                    root: &self.config.root,
                    error: &error,
                }
                .emit();
                self.watch_retry_at = now + WATCH_RETRY_INTERVAL;
            }
        }
    }

    /// Keeps the table of `.gz` files current (their fingerprints are read once).
    fn note_compressed(&mut self, found: &[Found], complete: bool) {
        let mut present = HashSet::new();
        for gz in found
            .iter()
            .filter(|found| found.kind == FileKind::Compressed)
        {
            let key = (gz.dev, gz.inode);
            present.insert(key);
            let entry = self
                .compressed
                .entry(key)
                .or_insert_with(|| CompressedFile {
                    path: gz.path.clone(),
                    fingerprint: None,
                    size: None,
                    growing: true,
                    claimed: false,
                    recover: false,
                    reported: false,
                    appeared_in_run: self.listed_once,
                });
            entry.path = gz.path.clone();
            // A finished `.gz` never grows; one still being written (gzip writing in place) is
            // fingerprinted again once its size holds. A content shorter than a line is
            // fingerprinted whole, as the checkpoint of its plain file was.
            entry.growing = entry.size != Some(gz.size);
            if entry.growing || entry.fingerprint.is_none() {
                entry.size = Some(gz.size);
                entry.fingerprint = read_gz_first_bytes(&gz.path)
                    .ok()
                    .map(|first| final_fingerprint(&first));
            }
        }
        if complete {
            self.compressed.retain(|key, _| present.contains(key));
        }
    }

    /// Updates a followed file from the listing: moved, gone, grown, truncated.
    fn check_followed(
        &mut self,
        id: FileId,
        found: &HashMap<(u64, u64), &Found>,
        complete: bool,
    ) -> Result<(), Halt> {
        let Some(file) = self.files.get_mut(&id) else {
            return Ok(());
        };
        let key = (file.ident.dev, file.ident.inode);
        match found.get(&key) {
            Some(found) => {
                if file.source.is_none() && !same_content(&found.path, file.ident.fingerprint) {
                    // Not open, and its inode now holds another file: ours is gone.
                    return self.vanished(id);
                }
                file.size = found.size;
                if found.path != file.ident.path {
                    self.moved(id, found.path.clone(), found.kind);
                }
            }
            None if file.source.is_none() && complete && !still_at(&file.ident.path, key) => {
                return self.vanished(id);
            }
            None => {}
        }
        let Some(file) = self.files.get_mut(&id) else {
            return Ok(());
        };
        if let Some(plain) = file.source.as_ref().and_then(Source::file)
            && let Ok(meta) = plain.metadata()
        {
            if file.size != meta.len() && file.ident.registered {
                self.output.registry.set_size(id, meta.len());
            }
            file.size = meta.len();
            if meta.len() < file.splitter.offset() {
                return self.truncated(id);
            }
            // Only an unlinked file is gone: a listing racing a rename may miss a file.
            file.gone |= meta.nlink() == 0;
            if meta.len() > file.splitter.offset() || file.gone {
                self.enqueue(id);
            }
        }
        Ok(())
    }

    /// A followed file has a new path (rename rotation, or further renames).
    fn moved(&mut self, id: FileId, path: PathBuf, kind: FileKind) {
        let Some(file) = self.files.get_mut(&id) else {
            return;
        };
        if self.by_path.get(&file.ident.path) == Some(&id) {
            self.by_path.remove(&file.ident.path);
        }
        self.by_path.insert(path.clone(), id);
        if file.kind == FileKind::Live && kind != FileKind::Live {
            FileRotated { path: &path }.emit();
        }
        file.ident.path = path;
        file.kind = kind;
        if file.ident.registered {
            self.output.registry.set_path(id, file.ident.path.clone());
        }
    }

    /// A followed file without an open descriptor is no longer in the tree: continue it in its
    /// `.gz` if one exists, else count its unread bytes as lost.
    fn vanished(&mut self, id: FileId) -> Result<(), Halt> {
        let Some(mut file) = self.remove(id) else {
            return Ok(());
        };
        let unread = file.size > file.splitter.offset();
        if unread && self.gz_being_written(&file) {
            self.insert(file); // looked at again once its `.gz` is complete
            return Ok(());
        }
        if unread && self.continue_in_gz(&mut file) {
            self.insert(file);
            self.enqueue(id);
            return Ok(());
        }
        self.retire(file, Some(LossReason::RemovedUnread))
    }

    /// Whether a `.gz` in the file's directory with its content is still being written.
    fn gz_being_written(&self, file: &TrackedFile) -> bool {
        let dir = file.ident.path.parent();
        file.ident.fingerprint.is_some_and(|fingerprint| {
            self.compressed.values().any(|gz| {
                !gz.claimed
                    && gz.growing
                    && gz.fingerprint == Some(fingerprint)
                    && gz.path.parent() == dir
            })
        })
    }

    /// Ends a file: ships what it held, reports it closed, and counts its unread bytes as lost
    /// for `reason` (when some are).
    fn retire(&mut self, mut file: TrackedFile, reason: Option<LossReason>) -> Result<(), Halt> {
        if let Some(fingerprint) = file.ident.fingerprint {
            let dir = file.ident.path.parent().map(Path::to_path_buf);
            self.closed_content.insert((fingerprint, dir));
        }
        let unread = file.size.saturating_sub(file.splitter.offset());
        if let Some(reason) = reason {
            self.pod_series.lost(BytesLost {
                namespace: &file.pod.namespace,
                pod: &file.pod.pod_name,
                path: &file.ident.path,
                bytes: unread,
                reason,
            });
        }
        file.end_of_life(&self.settings, &self.output)?;
        FileClosed {
            path: &file.ident.path,
            offset: file.splitter.offset(),
        }
        .emit();
        Ok(())
    }

    /// Switches `file` to the unclaimed `.gz` in its directory with the same first line, if the
    /// bytes before its offset match.
    fn continue_in_gz(&mut self, file: &mut TrackedFile) -> bool {
        let Some(fingerprint) = file.ident.fingerprint else {
            return false;
        };
        let dir = file.ident.path.parent();
        let candidate = self.compressed.iter_mut().find(|(_, gz)| {
            !gz.claimed
                && !gz.growing
                && gz.fingerprint == Some(fingerprint)
                && gz.path.parent() == dir
        });
        let Some((&(dev, inode), gz)) = candidate else {
            return false;
        };
        let offset = file.splitter.offset();
        let Ok(Some((source, before))) = Source::gzip(&gz.path, offset) else {
            return false;
        };
        if offset_marker(&before) != file.splitter.marker() {
            return false;
        }
        gz.claimed = true;
        CompressedFileResumed {
            path: &gz.path,
            offset,
        }
        .emit();
        file.ident.dev = dev;
        file.ident.inode = inode;
        file.ident.path = gz.path.clone();
        file.kind = FileKind::Compressed;
        file.source = Some(source);
        if file.ident.registered {
            file.register(&self.output);
        }
        true
    }

    /// A file shrank below the offset read (truncation, copytruncate): its read state waits for
    /// a copy to continue in (see [`Truncated`]), and the same descriptor is followed from 0 under
    /// a new id.
    pub(super) fn truncated(&mut self, id: FileId) -> Result<(), Halt> {
        let Some(mut file) = self.remove(id) else {
            return Ok(());
        };
        FileTruncated {
            path: &file.ident.path,
            offset: file.splitter.offset(),
            size: file.size,
        }
        .emit();
        let descriptor = file.source.take();
        file.queued = false;
        let (path, kind, pod) = (file.ident.path.clone(), file.kind, file.pod.clone());
        if file.ident.fingerprint.is_some() {
            self.truncations.push(Truncated {
                file,
                at: Instant::now(),
            });
        } else {
            file.end_of_life(&self.settings, &self.output)?;
        }
        let Some(Source::Plain(descriptor)) = descriptor else {
            return Ok(());
        };
        let Ok(meta) = descriptor.metadata() else {
            return Ok(());
        };
        let source = match Source::plain(descriptor, 0) {
            Ok(source) => source,
            Err(error) => {
                ReadFailed {
                    path: &path,
                    error: &error,
                }
                .emit();
                return Ok(());
            }
        };
        let start = FileStart {
            id: self.alloc_id(),
            dev: meta.dev(),
            inode: meta.ino(),
            fingerprint: None,
            path,
            kind,
            pod,
            source: Some(source),
            size: meta.len(),
            offset: 0,
            before_offset: Vec::new(),
            resume: None,
            resumed_from: None,
        };
        let mut restarted = TrackedFile::new(start, &self.settings, self.merger());
        restarted.splitter.skip_leading_holes();
        let new_id = restarted.id;
        self.insert(restarted);
        self.enqueue(new_id);
        Ok(())
    }

    /// Ends truncated files whose copy did not appear in time: what they held is shipped, and the
    /// bytes they had not read when the file shrank are counted as lost.
    pub(super) fn expire_truncations(&mut self, now: Instant) -> Result<(), Halt> {
        while let Some(index) = self
            .truncations
            .iter()
            .position(|truncated| now.saturating_duration_since(truncated.at) >= TRUNCATED_MEMORY)
        {
            let Truncated { file, .. } = self.truncations.swap_remove(index);
            self.retire(file, Some(LossReason::TruncatedUnread))?;
        }
        Ok(())
    }

    /// A followed file reached its end of life (drained after deletion, or a `.gz` read to the end).
    pub(super) fn close(&mut self, id: FileId) -> Result<(), Halt> {
        match self.remove(id) {
            Some(file) => self.retire(file, None),
            None => Ok(()),
        }
    }
}

/// Whether the file at `path` starts with the content `fingerprint` describes (unknown: yes).
fn same_content(path: &Path, expected: Option<u64>) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    let first = File::open(path).and_then(|file| read_first_bytes(&file));
    first.map_or(true, |first| fingerprint(&first) == Some(expected))
}

/// Whether `path` still is the file `key` (a listing racing a rename may have missed it).
fn still_at(path: &Path, key: (u64, u64)) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| (meta.dev(), meta.ino()) == key)
}
