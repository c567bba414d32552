//! The per-pod cap on open rotated files: files beyond it wait without a descriptor; idle rotated
//! files (read to their end, nothing held) are parked to make room, and reopened when they grow.

use super::State;
use super::start::verified_window;
use crate::internal_events::tail::ReadFailed;
use crate::source_event::FileId;
use crate::tail::file::{Halt, Source};
use crate::tail::path::FileKind;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;

impl State {
    /// Enforces the per-pod cap on open rotated files: parks idle rotated files (at their end,
    /// nothing held) to make room, and opens waiting files in order.
    pub(super) fn balance_slots(&mut self) -> Result<(), Halt> {
        let cap = self.config.max_open_rotated_per_pod.max(1);
        let mut pods: HashMap<&str, (Vec<FileId>, Vec<FileId>)> = HashMap::new();
        for (id, file) in &self.files {
            if file.kind == FileKind::Live || file.gone {
                continue;
            }
            let (open, waiting) = pods.entry(file.pod.pod_dir.as_str()).or_default();
            if file.source.is_some() {
                open.push(*id);
            } else if file.size > file.splitter.offset() {
                waiting.push(*id);
            }
        }
        let mut to_park = Vec::new();
        let mut to_open = Vec::new();
        for (open, waiting) in pods.into_values() {
            // Park idle files until at most `cap` are open and, when files wait, room is made for them.
            let target = cap - waiting.len().min(cap);
            let mut count = open.len();
            let mut idle = open.iter().filter(|id| {
                self.files
                    .get(id)
                    .is_some_and(|file| !file.queued && !file.holds_unfinished_line())
            });
            while count > target {
                match idle.next() {
                    Some(id) => {
                        to_park.push(*id);
                        count -= 1;
                    }
                    None => break,
                }
            }
            to_open.extend(waiting.into_iter().take(cap.saturating_sub(count)));
        }
        for id in to_park {
            if let Some(file) = self.files.get_mut(&id) {
                file.source = None;
            }
        }
        for id in to_open {
            self.reopen(id)?;
        }
        Ok(())
    }

    /// Opens a followed file that waited for a slot or was parked, at its offset.
    fn reopen(&mut self, id: FileId) -> Result<(), Halt> {
        let Some(file) = self.files.get_mut(&id) else {
            return Ok(());
        };
        let Ok(descriptor) = File::open(&file.ident.path) else {
            return Ok(());
        };
        let Ok(meta) = descriptor.metadata() else {
            return Ok(());
        };
        if (meta.dev(), meta.ino()) != (file.ident.dev, file.ident.inode) {
            return Ok(()); // the next scan sorts out where it went
        }
        let offset = file.splitter.offset();
        let rewritten = verified_window(&descriptor, offset, file.splitter.marker()).is_none();
        match Source::plain(descriptor, offset) {
            Ok(source) => file.source = Some(source),
            Err(error) => {
                ReadFailed {
                    path: &file.ident.path,
                    error: &error,
                }
                .emit();
                return Ok(());
            }
        }
        if rewritten {
            return self.truncated(id);
        }
        self.enqueue(id);
        Ok(())
    }

    /// Open rotated files of a pod.
    pub(super) fn open_rotated(&self, pod_dir: &str) -> usize {
        self.files
            .values()
            .filter(|file| {
                file.kind != FileKind::Live && file.source.is_some() && file.pod.pod_dir == pod_dir
            })
            .count()
    }
}
