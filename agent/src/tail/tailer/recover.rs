//! Which `.gz` files found at start were rotated *and* gzipped while the agent was down, from
//! files it never checkpointed: those are read from their start instead of being ignored.
//!
//! The kubelet renames `<dir>/<stem>` (`<stem>` = `<restart count>.log`) to
//! `<stem>.<YYYYMMDD-HHMMSS>` (the rotation time, [`ROTATION_TIME_LEN`] characters), starts a new
//! `<stem>`, and later gzips the rotated file to `<stem>.<time>.gz`. A `.gz` whose content matches
//! no checkpoint is either *history* (read while plain, its checkpoint dropped a minute after it
//! was gzipped, or older than the agent) or *new* (its plain file was created after the last
//! checkpoint save, so none of its lines was ever checkpointed). The loaded checkpoints of its
//! directory tell them apart:
//!
//! - a checkpoint saved under the live path `<dir>/<stem>` names the file that was live at the
//!   last save. If it is still live, nothing of that stem rotated since. Otherwise its rotation
//!   time is where it is now (a rotated plain file with its inode and content, or a `.gz` with its
//!   fingerprint); if it is nowhere (the kubelet deleted it after more rotations), every rotated
//!   file of the stem left is newer than it;
//! - a checkpoint saved under a rotated path gives that rotation time directly.
//!
//! A `.gz` rotated later than every time known for its stem is new. A stem without checkpoints in
//! a known directory is new when its restart count is above every checkpointed one (the container
//! restarted while the agent was down). A directory without any checkpoint is a container the
//! previous run never saw: its `.gz` files rotated after that run's last checkpoint save (the
//! save time is in the checkpoint file, rewritten at least every 30 s) were made while no agent
//! ran, and are read; older ones are ignored. A first start (no checkpoint file) marks nothing here:
//! with `--start-at beginning` its `.gz` history is read anyway (`start.rs`), with `end` ignored.
//! Names not in the kubelet's format are ignored: their order is unknown. The rotation
//! time in a name is read as UTC (the kubelet formats the node's local time, UTC on the usual
//! node images).

use super::State;
use crate::checkpoint::FileCheckpoint;
use crate::tail::discovery::{self, Found};
use crate::tail::identity::{final_fingerprint, read_first_bytes};
use crate::tail::path::FileKind;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Length of the kubelet's rotation time suffix `YYYYMMDD-HHMMSS` (its `timestampFormat`, in
/// `pkg/kubelet/logs/container_log_manager.go`); in that format text order is time order.
const ROTATION_TIME_LEN: usize = 15;

/// What a log file's name says: `<stem>[.<suffix>][.gz]`, `<stem>` = `<restart count>.log`.
#[derive(Debug, PartialEq, Eq)]
struct LogName<'a> {
    stem: &'a str,
    /// The rotation suffix (without `.gz`); `None` for the live file.
    suffix: Option<&'a str>,
}

impl<'a> LogName<'a> {
    fn parse(path: &'a Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?;
        let end = name.find(".log")? + ".log".len();
        let (stem, rest) = name.split_at(end);
        let suffix = match rest {
            "" => None,
            rest => {
                let rest = rest.strip_prefix('.').unwrap_or(rest);
                Some(rest.strip_suffix(".gz").unwrap_or(rest))
            }
        };
        Some(Self { stem, suffix })
    }

    /// The kubelet's rotation time, if the suffix is one.
    fn rotation_time(&self) -> Option<&'a str> {
        self.suffix.filter(|suffix| {
            suffix.len() == ROTATION_TIME_LEN
                && suffix.bytes().enumerate().all(|(i, byte)| {
                    if i == 8 {
                        byte == b'-'
                    } else {
                        byte.is_ascii_digit()
                    }
                })
        })
    }

    fn restart_count(&self) -> Option<u32> {
        self.stem.strip_suffix(".log")?.parse().ok()
    }
}

/// How far a stem's rotations are known from the checkpoints.
#[derive(Debug, PartialEq, Eq)]
enum Known {
    /// The file live at the last save still is: nothing of the stem is new.
    Everything,
    /// Files rotated up to this time are known (read or older than the agent).
    Until(String),
    /// No rotation of the stem is known: every rotated file of it is new.
    Nothing,
}

/// Where a checkpointed file is now.
enum Location {
    Live,
    Rotated(Option<String>),
    Unknown,
}

/// Seconds subtracted from the previous run's last save when telling what was rotated after it.
const DOWN_SINCE_MARGIN_SECONDS: i64 = 2;

impl State {
    /// The kubelet rotation stamp (`YYYYMMDD-HHMMSS`, UTC) from which files of containers the
    /// previous run never saw were rotated while no agent ran: its last save, less a margin for
    /// the stamp's one-second resolution.
    fn down_since(&self) -> Option<String> {
        let until = self.config.previous_run_until?;
        let since = until - chrono::TimeDelta::seconds(DOWN_SINCE_MARGIN_SECONDS);
        Some(since.format("%Y%m%d-%H%M%S").to_string())
    }

    /// Marks the `.gz` files of the first listing that were made while the agent was down from
    /// files it never checkpointed (see the module documentation). Run once, after the plain
    /// files of that listing are followed and before the `.gz` files are considered.
    pub(super) fn mark_recoverable(&mut self, listing: &[Found]) {
        let loaded = std::mem::take(&mut self.loaded);
        let mut by_dir: HashMap<&Path, Vec<&FileCheckpoint>> = HashMap::new();
        for point in &loaded {
            if let Some(dir) = point.path.parent() {
                by_dir.entry(dir).or_default().push(point);
            }
        }
        let candidates: Vec<((u64, u64), PathBuf, u64)> = self
            .compressed
            .iter()
            .filter(|(_, gz)| !gz.claimed)
            .filter_map(|(key, gz)| Some((*key, gz.path.clone(), gz.fingerprint?)))
            .collect();
        let mut known: HashMap<(PathBuf, String), Known> = HashMap::new();
        for (key, path, fingerprint) in candidates {
            let (Some(dir), Some(name)) = (path.parent(), LogName::parse(&path)) else {
                continue;
            };
            let Some(time) = name.rotation_time() else {
                continue;
            };
            let Some(points) = by_dir.get(dir) else {
                // A container the previous run never saw: new when rotated after that run ended.
                let new = self
                    .down_since()
                    .is_some_and(|since| time >= since.as_str());
                if new && let Some(gz) = self.compressed.get_mut(&key) {
                    gz.recover = true;
                }
                continue;
            };
            let checkpointed = points.iter().any(|point| point.fingerprint == fingerprint);
            let followed = self.files.values().any(|file| {
                file.ident.fingerprint == Some(fingerprint) && file.ident.path.parent() == Some(dir)
            });
            if checkpointed || followed {
                continue; // continues a checkpoint, or a copy of a file being read
            }
            let stem_points: Vec<&FileCheckpoint> = points
                .iter()
                .copied()
                .filter(|point| {
                    LogName::parse(&point.path).is_some_and(|other| other.stem == name.stem)
                })
                .collect();
            let new = if stem_points.is_empty() {
                let newest_restart = points
                    .iter()
                    .filter_map(|point| LogName::parse(&point.path)?.restart_count())
                    .max();
                matches!((name.restart_count(), newest_restart), (Some(this), Some(newest)) if this > newest)
            } else {
                let bound = known
                    .entry((dir.to_path_buf(), name.stem.to_string()))
                    .or_insert_with(|| self.known_rotations(dir, &stem_points, listing));
                match bound {
                    Known::Everything => false,
                    Known::Until(until) => time > until.as_str(),
                    Known::Nothing => true,
                }
            };
            if new && let Some(gz) = self.compressed.get_mut(&key) {
                gz.recover = true;
            }
        }
    }

    /// How far the rotations of one stem in `dir` are known from its checkpoints.
    fn known_rotations(&self, dir: &Path, points: &[&FileCheckpoint], listing: &[Found]) -> Known {
        let mut until: Option<String> = None;
        for point in points {
            let saved_live = LogName::parse(&point.path).is_some_and(|name| name.suffix.is_none());
            let mut location = self.locate(point, dir, listing);
            if matches!(location, Location::Unknown) && saved_live {
                // A rotation racing the listing: look again before concluding it is gone.
                let again = discovery::list_container_dir(dir);
                location = self.locate(point, dir, &again.files);
            }
            let time = match location {
                Location::Live => return Known::Everything,
                Location::Rotated(time) => time,
                Location::Unknown if saved_live => continue, // rotated and deleted since
                Location::Unknown => LogName::parse(&point.path)
                    .and_then(|name| name.rotation_time().map(str::to_string)),
            };
            // A rotated name not in the kubelet's format cannot be ordered: recover nothing.
            let Some(time) = time else {
                return Known::Everything;
            };
            if until.as_ref().is_none_or(|until| time > *until) {
                until = Some(time);
            }
        }
        until.map_or(Known::Nothing, Known::Until)
    }

    /// Where a checkpointed file is now: a plain file of `dir` with its inode and content, or a
    /// `.gz` of `dir` with its content.
    fn locate(&self, point: &FileCheckpoint, dir: &Path, listing: &[Found]) -> Location {
        let plain = listing.iter().find(|found| {
            found.kind != FileKind::Compressed
                && (found.dev, found.inode) == (point.dev, point.inode)
                && found.path.parent() == Some(dir)
                && File::open(&found.path)
                    .and_then(|file| read_first_bytes(&file))
                    .is_ok_and(|first| final_fingerprint(&first) == point.fingerprint)
        });
        let path = plain.map(|found| found.path.as_path()).or_else(|| {
            self.compressed
                .values()
                .find(|gz| {
                    gz.fingerprint == Some(point.fingerprint) && gz.path.parent() == Some(dir)
                })
                .map(|gz| gz.path.as_path())
        });
        let Some(name) = path.and_then(LogName::parse) else {
            return Location::Unknown;
        };
        match name.suffix {
            None => Location::Live,
            Some(_) => Location::Rotated(name.rotation_time().map(str::to_string)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> LogName<'_> {
        LogName::parse(Path::new(text)).expect("a log name")
    }

    #[test]
    fn kubelet_names_give_stem_rotation_time_and_restart_count() {
        let live = name("/p/c/3.log");
        assert_eq!((live.stem, live.suffix), ("3.log", None));
        assert_eq!(live.restart_count(), Some(3));
        let gz = name("/p/c/0.log.20240101-120000.gz");
        assert_eq!(
            (gz.stem, gz.rotation_time()),
            ("0.log", Some("20240101-120000"))
        );
        let rotated = name("/p/c/0.log.20240101-120001");
        assert_eq!(rotated.rotation_time(), Some("20240101-120001"));
        assert!(
            rotated.rotation_time() > gz.rotation_time(),
            "text order is time order"
        );
    }

    #[test]
    fn other_rotation_names_have_no_rotation_time() {
        assert_eq!(name("/p/c/0.log.1").rotation_time(), None);
        assert_eq!(name("/p/c/0.log.2.gz").rotation_time(), None);
        assert_eq!(name("/p/c/0.log-20240101").rotation_time(), None);
        assert_eq!(name("/p/c/0.log.20240101x120000").rotation_time(), None);
        assert_eq!(name("/p/c/app.log").restart_count(), None);
    }
}
