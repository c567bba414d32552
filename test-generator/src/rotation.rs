//! A container log file rotated the way the kubelet rotates CRI logs.
//!
//! Mirrors `pkg/kubelet/logs/container_log_manager.go`: when `<n>.log` reaches the size limit, first
//! delete the oldest rotated files so at most `max_files - 2` remain, then gzip every uncompressed
//! rotated file (to `<file>.tmp`, renamed to `<file>.gz`, the original removed), then rename
//! `<n>.log` to `<n>.log.<YYYYMMDD-HHMMSS>` and reopen `<n>.log`. At most `max_files` files exist per
//! container afterwards, the newest rotated one uncompressed. Differences from the kubelet: the size
//! is checked after every logical line (never between the chunks of a split line) instead of every
//! 10 s, and the rotation stamp is in UTC and moved forward a second when two rotations fall in the
//! same second, so names stay unique and sort by age.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// `strftime` form of the kubelet's rotation stamp (Go layout `20060102-150405`).
pub const ROTATED_STAMP_FORMAT: &str = "%Y%m%d-%H%M%S";

/// Length of a formatted rotation stamp.
const STAMP_LEN: usize = 15;

/// Suffix of compressed rotated files.
pub const COMPRESSED_SUFFIX: &str = ".gz";

/// Suffix of a compressed file being written.
pub const TMP_SUFFIX: &str = ".tmp";

/// Kubelet default for `containerLogMaxSize` (10 MiB).
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;

/// Kubelet default for `containerLogMaxFiles`.
pub const DEFAULT_MAX_FILES: usize = 5;

/// The kubelet rejects `containerLogMaxFiles` below 2 (the live file plus the newest rotated one).
pub const MIN_MAX_FILES: usize = 2;

/// When to rotate and how many files to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Rotate once the live file reaches this many bytes; 0 never rotates.
    pub max_size: u64,
    /// Most files kept per container, the live one included (at least [`MIN_MAX_FILES`]).
    pub max_files: usize,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        Self {
            max_size: DEFAULT_MAX_SIZE,
            max_files: DEFAULT_MAX_FILES,
        }
    }
}

/// What rotation has done to one file so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationCounts {
    /// Times the live file was renamed and reopened.
    pub rotations: u64,
    /// Rotated files gzipped.
    pub compressions: u64,
    /// Rotated files deleted to stay within `max_files`.
    pub deletions: u64,
}

/// The live `<restart>.log` of one container and its rotated predecessors.
#[derive(Debug)]
pub struct RotatingLog {
    dir: PathBuf,
    name: String,
    writer: BufWriter<File>,
    size: u64,
    policy: RotationPolicy,
    last_stamp: Option<NaiveDateTime>,
    counts: RotationCounts,
}

impl RotatingLog {
    /// Opens (creating or appending to) `dir/<restart>.log`.
    pub fn open(dir: &Path, restart: u32, policy: RotationPolicy) -> io::Result<Self> {
        let name = format!("{restart}.log");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(&name))?;
        let size = file.metadata()?.len();
        Ok(Self {
            dir: dir.to_path_buf(),
            name,
            writer: BufWriter::new(file),
            size,
            policy,
            last_stamp: None,
            counts: RotationCounts::default(),
        })
    }

    /// Path of the live file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// What rotation has done so far.
    pub fn counts(&self) -> RotationCounts {
        self.counts
    }

    /// Appends the encoded bytes of one logical line, then rotates if the size limit is reached.
    pub fn write_line(&mut self, bytes: &[u8], now: DateTime<Utc>) -> io::Result<()> {
        self.writer.write_all(bytes)?;
        self.size += bytes.len() as u64;
        if self.policy.max_size > 0 && self.size >= self.policy.max_size {
            self.rotate(now)?;
        }
        Ok(())
    }

    /// Flushes buffered lines to the live file so readers see them.
    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    fn rotate(&mut self, now: DateTime<Utc>) -> io::Result<()> {
        self.writer.flush()?;
        let (deleted, compressed) = prune_and_compress(&self.dir, &self.name, self.policy)?;
        self.counts.deletions += deleted.len() as u64;
        self.counts.compressions += compressed;
        let target = self
            .dir
            .join(rotated_name(&self.name, &mut self.last_stamp, now));
        fs::rename(self.path(), target)?;
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(self.path())?;
        self.writer = BufWriter::new(file);
        self.size = 0;
        self.counts.rotations += 1;
        Ok(())
    }
}

/// The kubelet's steps before a rotation of `dir/<name>`: deletes the oldest rotated files so at
/// most `max_files - 2` remain, then gzips every uncompressed one. Returns the names deleted and
/// the number of files compressed.
pub fn prune_and_compress(
    dir: &Path,
    name: &str,
    policy: RotationPolicy,
) -> io::Result<(Vec<String>, u64)> {
    let mut rotated = rotated_files(dir, name)?;
    let keep = policy.max_files.max(MIN_MAX_FILES) - MIN_MAX_FILES;
    let excess = rotated.len().saturating_sub(keep);
    let mut deleted = Vec::new();
    for old in rotated.drain(..excess) {
        fs::remove_file(dir.join(&old))?;
        deleted.push(old);
    }
    let mut compressed = 0;
    for file in rotated.iter().filter(|f| !f.ends_with(COMPRESSED_SUFFIX)) {
        compress(&dir.join(file))?;
        compressed += 1;
    }
    Ok((deleted, compressed))
}

/// The name a rotation at `now` gives `<name>`: `<name>.<YYYYMMDD-HHMMSS>` in UTC, moved a second
/// past `last` when it would not sort after it (recorded in `last`).
pub fn rotated_name(name: &str, last: &mut Option<NaiveDateTime>, now: DateTime<Utc>) -> String {
    let mut stamp = now.naive_utc().with_nanosecond_zero();
    if let Some(previous) = last.filter(|previous| stamp <= *previous) {
        stamp = previous + Duration::seconds(1);
    }
    *last = Some(stamp);
    format!("{name}.{}", stamp.format(ROTATED_STAMP_FORMAT))
}

/// Rotated files of `<name>` in `dir` (`<name>.<stamp>` and `<name>.<stamp>.gz`), oldest first.
fn rotated_files(dir: &Path, name: &str) -> io::Result<Vec<String>> {
    let prefix = format!("{name}.");
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let file = entry?.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        let stamp = rest.strip_suffix(COMPRESSED_SUFFIX).unwrap_or(rest);
        if is_rotation_stamp(stamp) {
            files.push(file);
        }
    }
    files.sort();
    Ok(files)
}

/// Whether `s` looks like `YYYYMMDD-HHMMSS`.
pub fn is_rotation_stamp(s: &str) -> bool {
    s.len() == STAMP_LEN
        && s.char_indices()
            .all(|(i, c)| if i == 8 { c == '-' } else { c.is_ascii_digit() })
}

/// Gzips `path` to `<path>.tmp`, renames that to `<path>.gz` and removes `path` (the kubelet's order).
fn compress(path: &Path) -> io::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(TMP_SUFFIX);
    let mut gz_name = path.as_os_str().to_owned();
    gz_name.push(COMPRESSED_SUFFIX);
    let mut input = File::open(path)?;
    let mut encoder = GzEncoder::new(
        BufWriter::new(File::create(&tmp_name)?),
        Compression::default(),
    );
    io::copy(&mut input, &mut encoder)?;
    encoder
        .finish()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    fs::rename(&tmp_name, &gz_name)?;
    fs::remove_file(path)
}

trait ZeroNanos {
    fn with_nanosecond_zero(self) -> Self;
}

impl ZeroNanos for NaiveDateTime {
    fn with_nanosecond_zero(self) -> Self {
        use chrono::Timelike;
        self.with_nanosecond(0).unwrap_or(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use flate2::read::GzDecoder;
    use std::io::Read;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
            .single()
            .expect("valid time")
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn read_all(path: &Path) -> String {
        let bytes = fs::read(path).expect("read");
        if path.to_string_lossy().ends_with(".gz") {
            let mut text = String::new();
            GzDecoder::new(&bytes[..])
                .read_to_string(&mut text)
                .expect("gunzip");
            text
        } else {
            String::from_utf8(bytes).expect("utf-8")
        }
    }

    #[test]
    fn rotation_renames_then_compresses_the_previous_and_keeps_max_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = RotationPolicy {
            max_size: 10,
            max_files: 3,
        };
        let mut log = RotatingLog::open(dir.path(), 0, policy).expect("open");
        log.write_line(b"line-0 ...\n", now()).expect("write");
        assert_eq!(names(dir.path()), ["0.log", "0.log.20240101-000000"]);

        log.write_line(b"line-1 ...\n", now()).expect("write");
        // Same second: the stamp moves forward; the previous rotated file is gzipped.
        assert_eq!(
            names(dir.path()),
            ["0.log", "0.log.20240101-000000.gz", "0.log.20240101-000001"]
        );

        log.write_line(b"line-2 ...\n", now()).expect("write");
        log.write_line(b"tail\n", now()).expect("write");
        log.flush().expect("flush");
        // max_files 3: the live file, one uncompressed and one compressed rotated file.
        assert_eq!(
            names(dir.path()),
            ["0.log", "0.log.20240101-000001.gz", "0.log.20240101-000002"]
        );
        assert_eq!(
            read_all(&dir.path().join("0.log.20240101-000001.gz")),
            "line-1 ...\n"
        );
        assert_eq!(
            read_all(&dir.path().join("0.log.20240101-000002")),
            "line-2 ...\n"
        );
        assert_eq!(read_all(&dir.path().join("0.log")), "tail\n");
        assert_eq!(
            log.counts(),
            RotationCounts {
                rotations: 3,
                compressions: 2,
                deletions: 1
            }
        );
    }

    #[test]
    fn no_rotation_below_the_size_limit_or_when_disabled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = RotatingLog::open(
            dir.path(),
            1,
            RotationPolicy {
                max_size: 0,
                max_files: 2,
            },
        )
        .expect("open");
        for _ in 0..100 {
            log.write_line(b"0123456789\n", now()).expect("write");
        }
        log.flush().expect("flush");
        assert_eq!(names(dir.path()), ["1.log"]);
        assert_eq!(read_all(&log.path()).len(), 1_100);
    }

    #[test]
    fn other_restarts_files_are_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("0.log"), "old").expect("write");
        fs::write(dir.path().join("0.log.20230101-000000.gz"), "old").expect("write");
        let policy = RotationPolicy {
            max_size: 1,
            max_files: 2,
        };
        let mut log = RotatingLog::open(dir.path(), 1, policy).expect("open");
        log.write_line(b"a\n", now()).expect("write");
        log.write_line(b"b\n", now()).expect("write");
        assert_eq!(
            names(dir.path()),
            [
                "0.log",
                "0.log.20230101-000000.gz",
                "1.log",
                "1.log.20240101-000001"
            ]
        );
    }

    #[test]
    fn rotation_stamps_are_recognised() {
        assert!(is_rotation_stamp("20240101-235959"));
        assert!(!is_rotation_stamp("20240101-23595"));
        assert!(!is_rotation_stamp("20240101T235959"));
        assert!(!is_rotation_stamp("2024010a-235959"));
    }
}
