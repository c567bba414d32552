//! Where a newly found file starts: its checkpoint (matched by inode, or by content for rotated
//! and gzipped files), the offset reached in the file it is a copy of (copytruncate), or 0 — or,
//! with `--start-at end` on a first start, after the last complete line of a file the first
//! listing found. Also which `.gz` files are read at all (only continuations of checkpointed or
//! followed files).

use super::{COPY_SETTLE, State, TRUNCATED_MEMORY};
use crate::checkpoint::{FileCheckpoint, FileIdentity};
use crate::internal_events::tail::{
    BytesLost, CheckpointedFileMissing, CompressedFileIgnored, CompressedFileResumed, CopyDetected,
    DiscoveryFailed, ExistingFileSkipped, FileDiscovered, FileResumed, LossReason, RestartReason,
    ResumeRestarted, RotatedFileDeferred,
};
use crate::source_event::{FileId, offset_marker};
use crate::tail::discovery::Found;
use crate::tail::file::{FileStart, Halt, Resume, Source, TrackedFile};
use crate::tail::identity::{fingerprint, marker_window, read_first_bytes};
use crate::tail::path::{FileKind, PodLogPath};
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// A file that was truncated, kept for [`TRUNCATED_MEMORY`] with its read state (offset, held
/// unfinished line, pending partials) so that its copy (copytruncate) continues it under the same
/// [`crate::source_event::FileId`]: its lines not yet acknowledged stay in the same acknowledgement
/// order, and a checkpoint of the copy never passes what was acknowledged of the original.
pub(super) struct Truncated {
    pub(super) file: TrackedFile,
    pub(super) at: Instant,
}

impl Truncated {
    /// Whether this is the original of a copy with `fingerprint` in `dir`.
    fn copied_to(&self, fingerprint: u64, dir: Option<&Path>, now: Instant) -> bool {
        self.file.ident.fingerprint == Some(fingerprint)
            && self.file.ident.path.parent() == dir
            && now.saturating_duration_since(self.at) < TRUNCATED_MEMORY
    }
}

/// Where a new file starts.
enum StartPoint {
    /// Not yet: it may be a copy still being written.
    Postpone,
    /// From 0 (new file, or a checkpoint that no longer fits: `holes` after a truncation).
    Fresh { holes: bool },
    /// From a checkpoint.
    Resume(ResumeAt),
    /// From the offset reached in the file it is a copy of.
    Copy { offset: u64, before: Vec<u8> },
    /// As the continuation of the truncated file `truncations[index]`, whose copy it is.
    ContinueTruncated { index: usize },
    /// It is a copy of the followed file `original`, which shrank: handle that truncation first.
    OriginalTruncated { original: FileId },
}

impl State {
    /// A plain file not followed yet: decide where it starts and follow it.
    pub(super) fn consider_plain(&mut self, found: &Found, now: Instant) -> Result<(), Halt> {
        let descriptor = match File::open(&found.path) {
            Ok(descriptor) => descriptor,
            Err(error) => {
                // A checkpointed file that is gone may continue in its `.gz`.
                let checkpointed = self
                    .resume
                    .iter()
                    .any(|point| (point.dev, point.inode) == (found.dev, found.inode));
                if !(checkpointed && error.kind() == io::ErrorKind::NotFound) {
                    self.open_failed(found, &error);
                }
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
        let (offset, before, holes, resume) =
            match self.choose_start(found, &descriptor, fingerprint, size, now) {
                StartPoint::Postpone => return Ok(()),
                StartPoint::ContinueTruncated { index } => {
                    return self.continue_truncated(index, found, descriptor);
                }
                StartPoint::OriginalTruncated { original } => {
                    self.truncated(original)?;
                    return self.consider_plain(found, now);
                }
                StartPoint::Fresh { holes } if self.skip_existing && !self.listed_once => {
                    let (offset, before) = existing_end(&descriptor, size);
                    ExistingFileSkipped {
                        path: &found.path,
                        bytes: offset,
                    }
                    .emit();
                    (offset, before, holes, None)
                }
                StartPoint::Fresh { holes } => (0, Vec::new(), holes, None),
                StartPoint::Resume(mut at) => {
                    FileResumed {
                        path: &found.path,
                        offset: at.resume.offset,
                    }
                    .emit();
                    (
                        at.read_from,
                        std::mem::take(&mut at.before),
                        false,
                        Some(at),
                    )
                }
                StartPoint::Copy { offset, before } => {
                    CopyDetected {
                        path: &found.path,
                        offset,
                    }
                    .emit();
                    (offset, before, false, None)
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
            resume: resume.as_ref().map(|at| at.resume),
            resumed_from: resume.map(|at| at.from),
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
        // Every file with a known identity is announced before it is read: delivery checkpoints
        // it (with its size) at once, so a restart finds it (or its `.gz`) again even if it was
        // stopped before reading it, and counts its unread bytes as lost if it is gone by then.
        if file.splitter.offset() > 0 || file.is_resumed() || file.ident.fingerprint.is_some() {
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
                None => match resume_plain(file, point) {
                    Some(at) => {
                        self.claim_resume(index);
                        return StartPoint::Resume(at);
                    }
                    None => {
                        let reason = RestartReason::MarkerMismatch;
                        ResumeRestarted {
                            path: &found.path,
                            offset: point.offset,
                            reason,
                        }
                        .emit();
                        self.claim_resume(index);
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
        // Of several entries (a stale one left by an earlier identity), the furthest that fits.
        let by_content = self
            .resume
            .iter()
            .enumerate()
            .filter(|(_, point)| {
                found.kind != FileKind::Live
                    && point.fingerprint == fingerprint
                    && point.path.parent() == dir
                    && point.offset <= size
            })
            .filter_map(|(index, point)| Some((index, resume_plain(file, point)?)))
            .max_by_key(|(_, at)| at.resume.offset);
        if let Some((index, at)) = by_content {
            self.claim_resume(index);
            return StartPoint::Resume(at);
        }
        if found.kind != FileKind::Rotated {
            return StartPoint::Fresh { holes };
        }
        // A copy of a truncated file (copytruncate): continue the truncated file's read state in it.
        if let Some(index) = self
            .truncations
            .iter()
            .rposition(|truncated| truncated.copied_to(fingerprint, dir, now))
        {
            let original = &self.truncations[index].file;
            let (offset, marker) = (original.splitter.offset(), original.splitter.marker());
            if size < offset {
                return self.postpone_rotated(found, now, holes);
            }
            return match verified_window(file, offset, marker) {
                Some(_) => StartPoint::ContinueTruncated { index },
                None => StartPoint::Fresh { holes },
            };
        }
        // A copy of the live file being followed: copytruncate truncates it next.
        let original = self.files.values().find(|followed| {
            followed.kind == FileKind::Live
                && followed.source.is_some()
                && followed.ident.fingerprint == Some(fingerprint)
                && followed.ident.path.parent() == dir
        });
        let Some(original) = original else {
            return StartPoint::Fresh { holes };
        };
        let shrank = original
            .source
            .as_ref()
            .and_then(Source::file)
            .and_then(|plain| plain.metadata().ok())
            .is_some_and(|meta| meta.len() < original.splitter.offset());
        if shrank {
            return StartPoint::OriginalTruncated {
                original: original.id,
            };
        }
        let (offset, marker) = (original.splitter.offset(), original.splitter.marker());
        // Not truncated (yet): wait for the truncation while the copy is fresh; a copy that stays
        // (a backup made by hand) then starts where the original is.
        if let StartPoint::Postpone = self.postpone_rotated(found, now, holes) {
            return StartPoint::Postpone;
        }
        if size < offset {
            return StartPoint::Fresh { holes };
        }
        match verified_window(file, offset, marker) {
            Some(before) => StartPoint::Copy { offset, before },
            None => StartPoint::Fresh { holes },
        }
    }

    /// Continues the truncated file `truncations[index]` in its copy `found`, at the offset it had
    /// reached, under its own id.
    fn continue_truncated(
        &mut self,
        index: usize,
        found: &Found,
        descriptor: File,
    ) -> Result<(), Halt> {
        let Truncated { mut file, .. } = self.truncations.swap_remove(index);
        let offset = file.splitter.offset();
        match Source::plain(descriptor, offset) {
            Ok(source) => file.source = Some(source),
            Err(error) => {
                DiscoveryFailed {
                    path: &found.path,
                    error: &error,
                }
                .emit();
                self.truncations.push(Truncated {
                    file,
                    at: Instant::now(),
                });
                return Ok(());
            }
        }
        CopyDetected {
            path: &found.path,
            offset,
        }
        .emit();
        self.postponed.remove(&(found.dev, found.inode));
        file.ident.dev = found.dev;
        file.ident.inode = found.inode;
        file.ident.path = found.path.clone();
        file.kind = found.kind;
        file.size = found.size;
        file.queued = false;
        if file.ident.registered {
            file.register(&self.output);
        }
        let id = file.id;
        self.insert(file);
        self.enqueue(id);
        Ok(())
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
        if gz.claimed || gz.growing {
            return Ok(());
        }
        let dir = found.path.parent();
        // The same inode alone is not enough: while the agent was down the checkpointed file may
        // have been deleted and its inode number reused by another container's `.gz`. The entry of
        // this very file comes first; else, of the entries of its plain file, the furthest.
        let exact = self.resume.iter().position(|point| {
            (point.dev, point.inode) == key && gz.fingerprint.is_none_or(|f| f == point.fingerprint)
        });
        let point = exact.or_else(|| {
            self.resume
                .iter()
                .enumerate()
                .filter(|(_, point)| {
                    gz.fingerprint == Some(point.fingerprint) && point.path.parent() == dir
                })
                .max_by_key(|(_, point)| point.offset)
                .map(|(index, _)| index)
        });
        if let Some(fingerprint) = gz.fingerprint
            && let Some(index) = self
                .truncations
                .iter()
                .rposition(|truncated| truncated.copied_to(fingerprint, dir, Instant::now()))
        {
            return self.continue_truncated_in_gz(index, found);
        }
        if gz.reported {
            return Ok(()); // decided: only a truncated file's copy can still claim it (above)
        }
        // Made while the agent ran from a file it never saw (rotated and gzipped while it was
        // busy elsewhere): nothing of it was read.
        let unseen = gz
            .fingerprint
            .is_some_and(|fingerprint| !self.content_seen(fingerprint, dir));
        let missed = gz.appeared_in_run && unseen;
        // History on a first start with `--start-at beginning`: there at the first listing.
        let history = self.read_gz_history && !gz.appeared_in_run && unseen;
        let Some(index) = point else {
            return match (gz.recover || missed || history, gz.fingerprint) {
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
        let point = self.claim_resume(index);
        let start = match resume_gzip(&found.path, &point) {
            Ok(Some((source, before))) => {
                CompressedFileResumed {
                    path: &found.path,
                    offset: point.offset,
                }
                .emit();
                GzStart {
                    source,
                    offset: read_from(&point),
                    before,
                    resume: Some(resume_of(&point)),
                }
            }
            Ok(None) => {
                let reason = RestartReason::MarkerMismatch;
                ResumeRestarted {
                    path: &found.path,
                    offset: point.offset,
                    reason,
                }
                .emit();
                match Source::gzip(&found.path, 0) {
                    Ok(Some((source, _))) => GzStart::at_zero(source),
                    _ => return Ok(()),
                }
            }
            Err(error) => {
                self.open_failed(found, &error);
                return Ok(());
            }
        };
        self.follow_compressed(found, point.fingerprint, start, Some(point.identity()))
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
                self.follow_compressed(found, fingerprint, GzStart::at_zero(source), None)
            }
            Ok(None) => Ok(()),
            Err(error) => {
                self.open_failed(found, &error);
                Ok(())
            }
        }
    }

    /// A file to read could not be opened: deleted since it was listed (its listed size is
    /// lost; for a `.gz`, its compressed size), or another error.
    fn open_failed(&mut self, found: &Found, error: &io::Error) {
        if error.kind() == io::ErrorKind::NotFound {
            let pod = PodLogPath::from_path(&self.config.root, &found.path);
            self.pod_series.lost(BytesLost {
                namespace: &pod.namespace,
                pod: &pod.pod_name,
                path: &found.path,
                bytes: found.size,
                reason: LossReason::DeletedBeforeOpen,
            });
        } else {
            DiscoveryFailed {
                path: &found.path,
                error,
            }
            .emit();
        }
    }

    /// Whether a file with this content in `dir` is followed, waits for its copy, or was closed
    /// in this run.
    fn content_seen(&self, fingerprint: u64, dir: Option<&Path>) -> bool {
        let same = |file: &TrackedFile| {
            file.ident.fingerprint == Some(fingerprint) && file.ident.path.parent() == dir
        };
        self.files.values().any(same)
            || self
                .truncations
                .iter()
                .any(|truncated| same(&truncated.file))
            || self
                .closed_content
                .contains(&(fingerprint, dir.map(Path::to_path_buf)))
    }

    /// Continues the truncated file `truncations[index]` in the `.gz` of its copy.
    fn continue_truncated_in_gz(&mut self, index: usize, found: &Found) -> Result<(), Halt> {
        let original = &self.truncations[index].file;
        let (offset, marker) = (original.splitter.offset(), original.splitter.marker());
        let source = match Source::gzip(&found.path, offset) {
            Ok(Some((source, before))) if offset_marker(&before) == marker => source,
            Ok(_) => return Ok(()),
            Err(error) => {
                self.open_failed(found, &error);
                return Ok(());
            }
        };
        if let Some(gz) = self.compressed.get_mut(&(found.dev, found.inode)) {
            gz.claimed = true;
        }
        let Truncated { mut file, .. } = self.truncations.swap_remove(index);
        CopyDetected {
            path: &found.path,
            offset,
        }
        .emit();
        file.ident.dev = found.dev;
        file.ident.inode = found.inode;
        file.ident.path = found.path.clone();
        file.kind = FileKind::Compressed;
        file.source = Some(source);
        file.queued = false;
        if file.ident.registered {
            file.register(&self.output);
        }
        let id = file.id;
        self.insert(file);
        self.enqueue(id);
        Ok(())
    }

    /// Claims a `.gz` and follows it from `offset` of its decompressed content.
    fn follow_compressed(
        &mut self,
        found: &Found,
        fingerprint: u64,
        start: GzStart,
        resumed_from: Option<FileIdentity>,
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
            source: Some(start.source),
            size: found.size,
            offset: start.offset,
            before_offset: start.before,
            resume: start.resume,
            resumed_from,
        };
        self.follow(start, false)
    }

    /// Takes the loaded checkpoint `resume[index]` for a file found.
    fn claim_resume(&mut self, index: usize) -> FileCheckpoint {
        let point = self.resume.swap_remove(index);
        self.claimed_content.insert((
            point.fingerprint,
            point.path.parent().map(Path::to_path_buf),
        ));
        point
    }

    /// Checkpoints not matched within the grace period belong to files that are gone: the bytes
    /// known to have been written after them are counted as lost.
    pub(super) fn expire_resume_points(&mut self, now: Instant) {
        if now < self.resume_until || self.resume.is_empty() {
            return;
        }
        for point in std::mem::take(&mut self.resume) {
            let content = (
                point.fingerprint,
                point.path.parent().map(Path::to_path_buf),
            );
            if self.claimed_content.contains(&content) {
                continue; // an older entry of content another entry resumed
            }
            CheckpointedFileMissing {
                path: &point.path,
                offset: point.offset,
            }
            .emit();
            // Counted once: the entry leaves the checkpoint file with the next save.
            self.output.registry.retire_checkpoint(point.identity());
            let pod = PodLogPath::from_path(&self.config.root, &point.path);
            self.pod_series.lost(BytesLost {
                namespace: &pod.namespace,
                pod: &pod.pod_name,
                path: &point.path,
                bytes: point.size.unwrap_or(0).saturating_sub(read_from(&point)),
                reason: LossReason::DeletedWhileDown,
            });
        }
        self.claimed_content.clear();
    }
}

/// Where a file resumes from a checkpoint: the verified resume point, where reading starts (the
/// earliest unfinished line, else the offset) and the raw bytes before that.
pub(super) struct ResumeAt {
    pub(super) resume: Resume,
    pub(super) read_from: u64,
    pub(super) before: Vec<u8>,
    pub(super) from: FileIdentity,
}

/// Where a `.gz` starts: its decompressed stream positioned at `offset`.
struct GzStart {
    source: Source,
    offset: u64,
    before: Vec<u8>,
    resume: Option<Resume>,
}

impl GzStart {
    fn at_zero(source: Source) -> Self {
        Self {
            source,
            offset: 0,
            before: Vec::new(),
            resume: None,
        }
    }
}

/// Opens a `.gz` to resume at `point`: `None` when its content does not fit the checkpoint
/// (shorter, or other bytes before the offset). Positioned at the earliest unfinished line.
fn resume_gzip(path: &Path, point: &FileCheckpoint) -> io::Result<Option<(Source, Vec<u8>)>> {
    let Some((source, before)) = Source::gzip(path, point.offset)? else {
        return Ok(None);
    };
    if offset_marker(&before) != point.offset_marker {
        return Ok(None);
    }
    let from = read_from(point);
    if from == point.offset {
        return Ok(Some((source, before)));
    }
    Source::gzip(path, from)
}

/// Resumes a plain file at `point` if the bytes before its offset match its marker.
fn resume_plain(file: &File, point: &FileCheckpoint) -> Option<ResumeAt> {
    let before_offset = verified_window(file, point.offset, point.offset_marker)?;
    let read_from = read_from(point);
    let before = match read_from == point.offset {
        true => before_offset,
        false => marker_window(file, read_from).ok().flatten()?,
    };
    Some(ResumeAt {
        resume: resume_of(point),
        read_from,
        before,
        from: point.identity(),
    })
}

/// Where reading resumes for `point`: its earliest unfinished line, else its offset.
pub(super) fn read_from(point: &FileCheckpoint) -> u64 {
    point
        .unfinished
        .earliest()
        .filter(|start| *start < point.offset)
        .unwrap_or(point.offset)
}

/// The resume point a checkpoint describes.
pub(super) fn resume_of(point: &FileCheckpoint) -> Resume {
    Resume {
        offset: point.offset,
        marker: point.offset_marker,
        unfinished: point.unfinished,
    }
}

/// The raw bytes before `offset` in `file` if their marker is `marker`.
/// How far back from the end of a file [`existing_end`] looks for the end of its last complete
/// line: 256 KiB, more than a CRI entry (containerd splits lines into 16 KiB entries) or a
/// docker json-file line of the default `--max-line-bytes` quarter; a longer unfinished line is
/// started in the middle.
const EXISTING_END_WINDOW: u64 = 256 * 1024;

/// Where `--start-at end` begins in a file of `size` bytes: after its last newline (so the line
/// being written when the agent started is read whole), or at `size` when none is in the last
/// [`EXISTING_END_WINDOW`] bytes; with the bytes before that offset (the resume marker window).
fn existing_end(file: &File, size: u64) -> (u64, Vec<u8>) {
    use std::os::unix::fs::FileExt;
    let from = size.saturating_sub(EXISTING_END_WINDOW);
    let mut tail = vec![0; (size - from) as usize];
    let offset = match file.read_exact_at(&mut tail, from) {
        Ok(()) => tail
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(size, |at| from + at as u64 + 1),
        Err(_) => size,
    };
    let before = marker_window(file, offset)
        .ok()
        .flatten()
        .unwrap_or_default();
    (offset, before)
}

pub(super) fn verified_window(file: &File, offset: u64, marker: u64) -> Option<Vec<u8>> {
    let window = marker_window(file, offset).ok().flatten()?;
    (offset_marker(&window) == marker).then_some(window)
}
