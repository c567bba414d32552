//! Where a newly found file starts: its checkpoint (matched by inode, or by content for rotated
//! and gzipped files), the offset reached in the file it is a copy of (copytruncate), or 0. Also
//! which `.gz` files are read at all (only continuations of checkpointed or followed files).

use super::{COPY_SETTLE, State, TRUNCATED_MEMORY};
use crate::internal_events::tail::{
    BytesLost, CheckpointedFileMissing, CompressedFileIgnored, CompressedFileResumed, CopyDetected,
    DiscoveryFailed, FileDiscovered, FileResumed, RestartReason, ResumeRestarted,
    RotatedFileDeferred,
};
use crate::pipeline::offset_marker;
use crate::tail::discovery::Found;
use crate::tail::file::{FileStart, Halt, Source, TrackedFile};
use crate::tail::identity::{fingerprint, marker_window, read_first_bytes};
use crate::tail::path::{FileKind, PodLogPath};
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// The state a file had when it was truncated (see [`TRUNCATED_MEMORY`]).
#[derive(Debug)]
pub(super) struct Truncation {
    pub(super) dir: Option<PathBuf>,
    pub(super) fingerprint: u64,
    pub(super) offset: u64,
    pub(super) marker: u64,
    pub(super) at: Instant,
}

/// Where a new file starts.
enum StartPoint {
    /// Not yet: it may be a copy still being written.
    Postpone,
    /// From 0 (new file, or a checkpoint that no longer fits: `holes` after a truncation).
    Fresh { holes: bool },
    /// From a checkpoint.
    Resume { offset: u64, before: Vec<u8> },
    /// From the offset reached in the file it is a copy of.
    Copy { offset: u64, before: Vec<u8> },
}

impl State {
    /// A plain file not followed yet: decide where it starts and follow it.
    pub(super) fn consider_plain(&mut self, found: &Found, now: Instant) -> Result<(), Halt> {
        let descriptor = match File::open(&found.path) {
            Ok(descriptor) => descriptor,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                // A checkpointed file may continue in its `.gz`; anything else is lost.
                let checkpointed = self
                    .resume
                    .iter()
                    .any(|point| (point.dev, point.inode) == (found.dev, found.inode));
                if found.size > 0 && !checkpointed {
                    let pod = PodLogPath::from_path(&self.config.root, &found.path);
                    BytesLost {
                        namespace: &pod.namespace,
                        pod: &pod.pod_name,
                        path: &found.path,
                        bytes: found.size,
                        reason: "deleted_before_open",
                    }
                    .emit();
                }
                return Ok(());
            }
            Err(error) => {
                DiscoveryFailed {
                    path: &found.path,
                    error: &error,
                }
                .emit();
                return Ok(());
            }
        };
        let Ok(meta) = descriptor.metadata() else {
            return Ok(());
        };
        if (meta.dev(), meta.ino()) != (found.dev, found.inode) {
            return Ok(()); // replaced since the listing; the next scan sees the new one
        }
        let size = meta.len();
        let fingerprint = read_first_bytes(&descriptor)
            .ok()
            .and_then(|first| fingerprint(&first));
        let (offset, before, holes) =
            match self.choose_start(found, &descriptor, fingerprint, size, now) {
                StartPoint::Postpone => return Ok(()),
                StartPoint::Fresh { holes } => (0, Vec::new(), holes),
                StartPoint::Resume { offset, before } => {
                    FileResumed {
                        path: &found.path,
                        offset,
                    }
                    .emit();
                    (offset, before, false)
                }
                StartPoint::Copy { offset, before } => {
                    CopyDetected {
                        path: &found.path,
                        offset,
                    }
                    .emit();
                    (offset, before, false)
                }
            };
        self.postponed.remove(&(found.dev, found.inode));
        let pod = Arc::new(PodLogPath::from_path(&self.config.root, &found.path));
        let cap = self.config.max_open_rotated_per_pod.max(1);
        let deferred = found.kind != FileKind::Live && self.open_rotated(&pod.pod_dir) >= cap;
        let source = if deferred {
            None
        } else {
            match Source::plain(descriptor, offset) {
                Ok(source) => Some(source),
                Err(error) => {
                    DiscoveryFailed {
                        path: &found.path,
                        error: &error,
                    }
                    .emit();
                    return Ok(());
                }
            }
        };
        let start = FileStart {
            id: self.alloc_id(),
            dev: found.dev,
            inode: found.inode,
            fingerprint,
            path: found.path.clone(),
            kind: found.kind,
            pod,
            source,
            size,
            offset,
            before_offset: before,
        };
        self.follow(start, holes)?;
        if deferred {
            RotatedFileDeferred {
                path: &found.path,
                cap,
            }
            .emit();
        }
        Ok(())
    }

    /// Starts following a file.
    fn follow(&mut self, start: FileStart, holes: bool) -> Result<(), Halt> {
        FileDiscovered {
            path: &start.path,
            kind: start.kind.as_str(),
            offset: start.offset,
        }
        .emit();
        let mut file = TrackedFile::new(start, &self.settings, self.merger());
        if holes {
            file.splitter.skip_leading_holes();
        }
        let id = file.id;
        // A file resumed mid-way, and every rotated or gzipped file (the kubelet gzips or deletes
        // those next), is announced before it is read: delivery checkpoints it at once, so a
        // restart finds it (or its `.gz`) again even if it was stopped before reading it.
        if file.splitter.offset() > 0
            || (file.kind != FileKind::Live && file.ident.fingerprint.is_some())
        {
            file.announce_start(&self.output)?;
        }
        self.insert(file);
        self.enqueue(id);
        Ok(())
    }

    /// Where a new plain file starts: its checkpoint (by inode, or by content in the same
    /// directory), the offset reached in the file it copies, or 0.
    fn choose_start(
        &mut self,
        found: &Found,
        file: &File,
        fingerprint: Option<u64>,
        size: u64,
        now: Instant,
    ) -> StartPoint {
        let mut restart = None;
        let start = self.pick_start(found, file, fingerprint, size, now, &mut restart);
        // A postponed file is looked at again at every scan: its restart is reported once, when
        // it is finally started, not at each look.
        if let Some((reason, offset)) = restart
            && !matches!(start, StartPoint::Postpone)
        {
            ResumeRestarted {
                path: &found.path,
                offset,
                reason,
            }
            .emit();
        }
        start
    }

    /// [`Self::choose_start`] without reporting a restart from a checkpoint: that goes to
    /// `restart` (reason, checkpoint offset).
    fn pick_start(
        &mut self,
        found: &Found,
        file: &File,
        fingerprint: Option<u64>,
        size: u64,
        now: Instant,
        restart: &mut Option<(RestartReason, u64)>,
    ) -> StartPoint {
        let key = (found.dev, found.inode);
        let mut holes = false;
        // Several checkpoints can name one (dev, inode) after inode reuse: prefer the one whose
        // fingerprint matches this content, then any (to detect truncation or reuse).
        let same_content = self.resume.iter().position(|point| {
            (point.dev, point.inode) == key && Some(point.fingerprint) == fingerprint
        });
        if let Some(index) = same_content.or_else(|| {
            self.resume
                .iter()
                .position(|point| (point.dev, point.inode) == key)
        }) {
            let point = &self.resume[index];
            let reason = if fingerprint != Some(point.fingerprint) {
                Some(if size < point.offset {
                    RestartReason::Truncated
                } else {
                    RestartReason::InodeReused
                })
            } else if size < point.offset {
                Some(RestartReason::Truncated)
            } else {
                None
            };
            match reason {
                Some(reason) => {
                    // The checkpoint stays: a copy of the old content may still claim it.
                    *restart = Some((reason, point.offset));
                    holes = reason == RestartReason::Truncated;
                }
                None => match verified_window(file, point.offset, point.offset_marker) {
                    Some(before) => {
                        let offset = self.resume.swap_remove(index).offset;
                        return StartPoint::Resume { offset, before };
                    }
                    None => {
                        let reason = RestartReason::MarkerMismatch;
                        ResumeRestarted {
                            path: &found.path,
                            offset: point.offset,
                            reason,
                        }
                        .emit();
                        self.resume.swap_remove(index);
                        return StartPoint::Fresh { holes: false };
                    }
                },
            }
        }
        let Some(fingerprint) = fingerprint else {
            return self.postpone_rotated(found, now, holes);
        };
        let dir = found.path.parent();
        // A checkpointed file copied to a rotated name in its directory (copytruncate while
        // stopped). A live file is only ever matched by inode: a new one is new content.
        let by_content = self.resume.iter().position(|point| {
            found.kind != FileKind::Live
                && point.fingerprint == fingerprint
                && point.path.parent() == dir
                && point.offset <= size
        });
        if let Some(index) = by_content {
            let point = &self.resume[index];
            if let Some(before) = verified_window(file, point.offset, point.offset_marker) {
                let offset = self.resume.swap_remove(index).offset;
                return StartPoint::Resume { offset, before };
            }
        }
        if found.kind != FileKind::Rotated {
            return StartPoint::Fresh { holes };
        }
        // A copy of the live file being followed, or of its state just before it was truncated
        // (copytruncate): continue at the offset reached in it.
        let original = self
            .files
            .values()
            .find(|followed| {
                followed.kind == FileKind::Live
                    && followed.source.is_some()
                    && followed.ident.fingerprint == Some(fingerprint)
                    && followed.ident.path.parent() == dir
            })
            .map(|followed| (followed.splitter.offset(), followed.splitter.marker()))
            .or_else(|| {
                self.truncations
                    .iter()
                    .rev()
                    .find(|truncation| {
                        truncation.fingerprint == fingerprint
                            && truncation.dir.as_deref() == dir
                            && now.saturating_duration_since(truncation.at) < TRUNCATED_MEMORY
                    })
                    .map(|truncation| (truncation.offset, truncation.marker))
            });
        let Some((offset, marker)) = original else {
            return StartPoint::Fresh { holes };
        };
        if size < offset {
            return self.postpone_rotated(found, now, holes);
        }
        match verified_window(file, offset, marker) {
            Some(before) => StartPoint::Copy { offset, before },
            None => StartPoint::Fresh { holes },
        }
    }

    /// Leaves a new rotated file unread until it was not written for [`COPY_SETTLE`] (it may be
    /// a copy in progress). The time counts from its last write, so restarts do not extend it.
    fn postpone_rotated(&mut self, found: &Found, now: Instant, holes: bool) -> StartPoint {
        if found.kind != FileKind::Rotated {
            return StartPoint::Fresh { holes };
        }
        let first_seen = *self
            .postponed
            .entry((found.dev, found.inode))
            .or_insert(now);
        let untouched = found
            .modified
            .and_then(|modified| SystemTime::now().duration_since(modified).ok())
            .is_some_and(|age| age >= COPY_SETTLE);
        if !untouched && now.saturating_duration_since(first_seen) < COPY_SETTLE {
            self.scan_wanted = true;
            StartPoint::Postpone
        } else {
            StartPoint::Fresh { holes }
        }
    }

    /// A `.gz` file not followed: read it only if it continues a checkpoint, or (from its start)
    /// if it was made while the agent was down from a file it never checkpointed (`recover`).
    pub(super) fn consider_compressed(&mut self, found: &Found) -> Result<(), Halt> {
        let key = (found.dev, found.inode);
        let Some(gz) = self.compressed.get(&key) else {
            return Ok(());
        };
        if gz.claimed {
            return Ok(());
        }
        let dir = found.path.parent();
        // The same inode alone is not enough: while the agent was down the checkpointed file may
        // have been deleted and its inode number reused by another container's `.gz`.
        let point = self.resume.iter().position(|point| {
            ((point.dev, point.inode) == key
                && gz.fingerprint.is_none_or(|f| f == point.fingerprint))
                || (gz.fingerprint == Some(point.fingerprint) && point.path.parent() == dir)
        });
        let Some(index) = point else {
            return match (gz.recover, gz.fingerprint) {
                (true, Some(fingerprint)) => self.recover_compressed(found, fingerprint),
                _ => {
                    if let Some(gz) = self.compressed.get_mut(&key)
                        && !gz.reported
                    {
                        gz.reported = true;
                        CompressedFileIgnored { path: &found.path }.emit();
                    }
                    Ok(())
                }
            };
        };
        let point = self.resume.swap_remove(index);
        let (offset, source, before) = match Source::gzip(&found.path, point.offset) {
            Ok(Some((source, before))) if offset_marker(&before) == point.offset_marker => {
                CompressedFileResumed {
                    path: &found.path,
                    offset: point.offset,
                }
                .emit();
                (point.offset, source, before)
            }
            Ok(_) => {
                let reason = RestartReason::MarkerMismatch;
                ResumeRestarted {
                    path: &found.path,
                    offset: point.offset,
                    reason,
                }
                .emit();
                match Source::gzip(&found.path, 0) {
                    Ok(Some((source, _))) => (0, source, Vec::new()),
                    _ => return Ok(()),
                }
            }
            Err(error) => {
                DiscoveryFailed {
                    path: &found.path,
                    error: &error,
                }
                .emit();
                return Ok(());
            }
        };
        self.follow_compressed(found, point.fingerprint, source, offset, before)
    }

    /// Reads a `.gz` made while the agent was down from its start (see `recover`).
    fn recover_compressed(&mut self, found: &Found, fingerprint: u64) -> Result<(), Halt> {
        match Source::gzip(&found.path, 0) {
            Ok(Some((source, _))) => {
                CompressedFileResumed {
                    path: &found.path,
                    offset: 0,
                }
                .emit();
                self.follow_compressed(found, fingerprint, source, 0, Vec::new())
            }
            Ok(None) => Ok(()),
            Err(error) => {
                DiscoveryFailed {
                    path: &found.path,
                    error: &error,
                }
                .emit();
                Ok(())
            }
        }
    }

    /// Claims a `.gz` and follows it from `offset` of its decompressed content.
    fn follow_compressed(
        &mut self,
        found: &Found,
        fingerprint: u64,
        source: Source,
        offset: u64,
        before: Vec<u8>,
    ) -> Result<(), Halt> {
        if let Some(gz) = self.compressed.get_mut(&(found.dev, found.inode)) {
            gz.claimed = true;
        }
        let start = FileStart {
            id: self.alloc_id(),
            dev: found.dev,
            inode: found.inode,
            fingerprint: Some(fingerprint),
            path: found.path.clone(),
            kind: FileKind::Compressed,
            pod: Arc::new(PodLogPath::from_path(&self.config.root, &found.path)),
            source: Some(source),
            size: found.size,
            offset,
            before_offset: before,
        };
        self.follow(start, false)
    }

    /// Checkpoints not matched within the grace period belong to files that are gone.
    pub(super) fn expire_resume_points(&mut self, now: Instant) {
        if now < self.resume_until || self.resume.is_empty() {
            return;
        }
        for point in self.resume.drain(..) {
            CheckpointedFileMissing {
                path: &point.path,
                offset: point.offset,
            }
            .emit();
        }
    }
}

/// The raw bytes before `offset` in `file` if their marker is `marker`.
pub(super) fn verified_window(file: &File, offset: u64, marker: u64) -> Option<Vec<u8>> {
    let window = marker_window(file, offset).ok().flatten()?;
    (offset_marker(&window) == marker).then_some(window)
}
