//! A container's log written the way containerd's CRI logger writes it, rotated by a kubelet-like
//! rename or by logrotate's `copytruncate`.
//!
//! containerd (`internal/cri/io/logger.go` `redirectLogs`, and `createContainerLoggers`) opens
//! `<restart>.log` once with `O_APPEND` and starts one goroutine per stream. Each reads its pipe
//! and writes every CRI entry with a single `write()` through a mutex shared by both streams; a
//! line longer than `max_container_log_line_size` (16 KiB) becomes `P` entries cut at byte offsets
//! (a cut can fall inside a UTF-8 character) and a final `F` entry, each stamped with the time it
//! is written. Because the two streams are written independently, entries of one stream land
//! between the `P` entries of the other. [`ContainerLog`] does the same with one thread per stream
//! and a mutex around each entry's `write()`.
//!
//! Rotation runs on the caller's thread while the writers keep writing:
//! - [`RotationMode::Rename`]: the kubelet's order (delete the oldest rotated files, gzip the
//!   others, rename `<n>.log` to `<n>.log.<stamp>`), then the runtime reopens `<n>.log`. The
//!   rename waits for a moment when neither stream is inside a split line, so every line lies whole
//!   in one file (containerd's reopen could leave a `P` entry at the end of the old file; that
//!   case is not produced here).
//! - [`RotationMode::Copytruncate`]: logrotate's `copytruncate`: copy `<n>.log` to
//!   `<n>.log.<stamp>` while the writers append, then truncate `<n>.log` to 0. Entries written
//!   between the end of the copy and the truncation are in neither file; lines with such an entry,
//!   and lines unfinished at the truncation (their head is in the copy, their tail in the
//!   truncated file), are lost by `copytruncate` itself. The writer knows their offsets exactly
//!   and reports them as excused ([`Rotation::excused`]); every other line is whole in one file.

use crate::cri::{self, MAX_CHUNK_BYTES};
use crate::rotation::{self, RotationCounts, RotationPolicy};
use chrono::{NaiveDateTime, Utc};
use logrelay_common::record::Stream;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Pause between the entries of one split line (the time to read the next chunk from the pipe).
const BETWEEN_CHUNKS: std::time::Duration = std::time::Duration::from_millis(1);

/// How rotated files are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RotationMode {
    /// The kubelet's rename of `<n>.log` followed by a reopen.
    #[default]
    Rename,
    /// logrotate's `copytruncate`: copy, then truncate the live file while it is written.
    Copytruncate,
}

/// One logical line for a stream's writer thread.
#[derive(Debug)]
pub struct LineJob {
    /// The line's sequence number in its source.
    pub seq: u64,
    /// The line without its newline.
    pub message: Vec<u8>,
}

/// The lines of one stream in one file: sequence numbers `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRange {
    /// The stream.
    pub stream: Stream,
    /// First sequence number.
    pub first: u64,
    /// Last sequence number (inclusive).
    pub last: u64,
}

/// A file's content as one generation of the live file left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The file name in the container directory (`0.log`, `0.log.20240101-000000`).
    pub name: String,
    /// The whole lines it holds, per stream.
    pub lines: Vec<StreamRange>,
    /// Lines it holds.
    pub line_count: u64,
    /// Bytes of those lines on disk (CRI headers included).
    pub bytes: u64,
}

/// What one rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rotation {
    /// The rotated file's content (its name is the rotated name).
    pub segment: Option<Segment>,
    /// Lines lost by `copytruncate` itself (see the module comment).
    pub excused: Vec<StreamRange>,
    /// Rotated files deleted to stay within `max_files` (names in the container directory).
    pub deleted: Vec<String>,
}

/// Where one CRI entry ended in the live file.
#[derive(Debug, Clone, Copy)]
struct Mark {
    stream: Stream,
    seq: u64,
    start: u64,
    end: u64,
    is_final: bool,
}

/// State shared by the two writer threads and the rotator, behind one mutex (containerd's
/// serial writer).
#[derive(Debug)]
struct Shared {
    file: File,
    size: u64,
    marks: Vec<Mark>,
    /// Per stream (stdout, stderr): whether a split line is unfinished.
    open: [bool; 2],
    /// Per stream: a line excused by a truncation whose remaining entries are still to come.
    excused_tail: [Option<u64>; 2],
    write_errors: u64,
}

fn slot(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The live `<restart>.log` of one container, its two writer threads and its rotation.
#[derive(Debug)]
pub struct ContainerLog {
    dir: PathBuf,
    name: String,
    shared: Arc<Mutex<Shared>>,
    senders: Vec<Sender<LineJob>>,
    threads: Vec<JoinHandle<()>>,
    policy: RotationPolicy,
    mode: RotationMode,
    last_stamp: Option<NaiveDateTime>,
    counts: RotationCounts,
}

impl ContainerLog {
    /// Opens (creating or appending to) `dir/<restart>.log` and starts the stdout and stderr writers.
    pub fn open(
        dir: &Path,
        restart: u32,
        policy: RotationPolicy,
        mode: RotationMode,
    ) -> io::Result<Self> {
        let name = format!("{restart}.log");
        let file = open_append(&dir.join(&name))?;
        let size = file.metadata()?.len();
        let shared = Arc::new(Mutex::new(Shared {
            file,
            size,
            marks: Vec::new(),
            open: [false; 2],
            excused_tail: [None; 2],
            write_errors: 0,
        }));
        let mut senders = Vec::new();
        let mut threads = Vec::new();
        for stream in [Stream::Stdout, Stream::Stderr] {
            let (tx, rx) = channel();
            let shared = Arc::clone(&shared);
            let thread = std::thread::Builder::new()
                .name(format!("cri-{}", stream.as_str()))
                .spawn(move || write_stream(stream, &rx, &shared))?;
            senders.push(tx);
            threads.push(thread);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            name,
            shared,
            senders,
            threads,
            policy,
            mode,
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

    /// Failed `write()` calls so far (the writers go on, like containerd's).
    pub fn write_errors(&self) -> u64 {
        lock(&self.shared).write_errors
    }

    /// Hands one line to `stream`'s writer thread.
    pub fn send(&self, stream: Stream, job: LineJob) {
        if let Some(tx) = self.senders.get(slot(stream)) {
            // A writer only stops when its sender is dropped; a send cannot fail before.
            let _ = tx.send(job);
        }
    }

    /// Rotates when the live file has reached the size limit (call it regularly, as the kubelet
    /// checks every few seconds). `None` when nothing was rotated.
    pub fn maintain(&mut self) -> io::Result<Option<Rotation>> {
        if self.policy.max_size == 0 || lock(&self.shared).size < self.policy.max_size {
            return Ok(None);
        }
        match self.mode {
            RotationMode::Rename => self.rotate_by_rename(),
            RotationMode::Copytruncate => self.rotate_by_copytruncate().map(Some),
        }
    }

    fn rotate_by_rename(&mut self) -> io::Result<Option<Rotation>> {
        if lock(&self.shared).open.iter().any(|o| *o) {
            return Ok(None);
        }
        let (deleted, compressed) =
            rotation::prune_and_compress(&self.dir, &self.name, self.policy)?;
        self.count_pruning(&deleted, compressed);
        let mut shared = lock(&self.shared);
        if shared.open.iter().any(|o| *o) {
            return Ok(Some(Rotation {
                deleted,
                ..Rotation::default()
            }));
        }
        let target = rotation::rotated_name(&self.name, &mut self.last_stamp, Utc::now());
        std::fs::rename(self.path(), self.dir.join(&target))?;
        shared.file = open_append(&self.path())?;
        let marks = std::mem::take(&mut shared.marks);
        shared.size = 0;
        drop(shared);
        self.counts.rotations += 1;
        let (segment, _) = summarise(&target, &marks, u64::MAX, [None; 2]);
        Ok(Some(Rotation {
            segment: Some(segment),
            excused: Vec::new(),
            deleted,
        }))
    }

    fn rotate_by_copytruncate(&mut self) -> io::Result<Rotation> {
        let (deleted, compressed) =
            rotation::prune_and_compress(&self.dir, &self.name, self.policy)?;
        self.count_pruning(&deleted, compressed);
        let target = rotation::rotated_name(&self.name, &mut self.last_stamp, Utc::now());
        let mut source = File::open(self.path())?;
        let mut copy = File::create(self.dir.join(&target))?;
        let copied = io::copy(&mut source, &mut copy)?;
        copy.flush()?;
        let mut shared = lock(&self.shared);
        shared.file.set_len(0)?;
        let marks = std::mem::take(&mut shared.marks);
        let carried = shared.excused_tail;
        let (segment, excused) = summarise(&target, &marks, copied, carried);
        // Lines unfinished now continue in the truncated file; they are excused as a whole.
        for stream in [Stream::Stdout, Stream::Stderr] {
            let s = slot(stream);
            shared.excused_tail[s] = match shared.open[s] {
                true => marks
                    .iter()
                    .rev()
                    .find(|m| m.stream == stream)
                    .map(|m| m.seq),
                false => None,
            };
        }
        shared.size = 0;
        drop(shared);
        self.counts.rotations += 1;
        Ok(Rotation {
            segment: Some(segment),
            excused,
            deleted,
        })
    }

    fn count_pruning(&mut self, deleted: &[String], compressed: u64) {
        self.counts.deletions += deleted.len() as u64;
        self.counts.compressions += compressed;
    }

    /// Stops the writers once they have written every line handed to them, and returns what the
    /// live file holds.
    pub fn close(mut self) -> Segment {
        self.senders.clear();
        for thread in self.threads.drain(..) {
            // A writer thread does not panic; a panicked one has nothing more to write.
            let _ = thread.join();
        }
        let shared = lock(&self.shared);
        summarise(&self.name, &shared.marks, u64::MAX, shared.excused_tail).0
    }
}

/// Splits the entries of one file generation into whole lines at or below `kept` bytes (the
/// segment) and lines with an entry past `kept` or unfinished (excused), skipping the rest of
/// lines already excused (`carried`, per stream).
fn summarise(
    name: &str,
    marks: &[Mark],
    kept: u64,
    carried: [Option<u64>; 2],
) -> (Segment, Vec<StreamRange>) {
    // Per (stream, seq): (bytes, every entry kept, finished).
    let mut lines: BTreeMap<(usize, u64), (u64, bool, bool)> = BTreeMap::new();
    for mark in marks {
        if carried[slot(mark.stream)] == Some(mark.seq) {
            continue;
        }
        let entry = lines
            .entry((slot(mark.stream), mark.seq))
            .or_insert((0, true, false));
        entry.0 += mark.end - mark.start;
        entry.1 &= mark.end <= kept;
        entry.2 |= mark.is_final;
    }
    let mut segment = Segment {
        name: name.to_string(),
        lines: Vec::new(),
        line_count: 0,
        bytes: 0,
    };
    let mut excused = Vec::new();
    for ((s, seq), (bytes, all_kept, finished)) in lines {
        let stream = [Stream::Stdout, Stream::Stderr][s];
        if all_kept && finished {
            segment.line_count += 1;
            segment.bytes += bytes;
            extend(&mut segment.lines, stream, seq);
        } else {
            extend(&mut excused, stream, seq);
        }
    }
    (segment, excused)
}

/// Adds `seq` to the last range of `stream` when it follows it, else starts a new range.
fn extend(ranges: &mut Vec<StreamRange>, stream: Stream, seq: u64) {
    match ranges
        .iter_mut()
        .rev()
        .find(|r| r.stream == stream)
        .filter(|r| r.last + 1 == seq)
    {
        Some(range) => range.last = seq,
        None => ranges.push(StreamRange {
            stream,
            first: seq,
            last: seq,
        }),
    }
}

/// A stream's writer: every line becomes `P` entries of [`MAX_CHUNK_BYTES`] and a final `F`
/// entry, each written with one `write()` under the shared mutex.
fn write_stream(stream: Stream, jobs: &Receiver<LineJob>, shared: &Mutex<Shared>) {
    let mut entry = Vec::with_capacity(MAX_CHUNK_BYTES + 64);
    while let Ok(job) = jobs.recv() {
        let chunks: Vec<&[u8]> = match job.message.is_empty() {
            true => vec![&[][..]],
            false => job.message.chunks(MAX_CHUNK_BYTES).collect(),
        };
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let is_final = i == last;
            entry.clear();
            cri::push_entry(&mut entry, &Utc::now(), stream, is_final, chunk);
            let mut state = lock(shared);
            match state.file.write_all(&entry) {
                Ok(()) => {
                    let start = state.size;
                    state.size += entry.len() as u64;
                    let end = state.size;
                    state.marks.push(Mark {
                        stream,
                        seq: job.seq,
                        start,
                        end,
                        is_final,
                    });
                }
                Err(error) => {
                    state.write_errors += 1;
                    tracing::debug!(%error, "log write failed");
                }
            }
            state.open[slot(stream)] = !is_final;
            drop(state);
            if !is_final {
                // containerd reads the next 16 KiB of the line from the pipe meanwhile; the other
                // stream's writer gets the file in between.
                std::thread::sleep(BETWEEN_CHUNKS);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_entries(path: &Path) -> Vec<(String, bool, Vec<u8>)> {
        std::fs::read(path)
            .expect("read")
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let e = cri::parse_line(l).expect("CRI entry");
                (e.stream.to_string(), e.is_final, e.content.to_vec())
            })
            .collect()
    }

    #[test]
    fn two_writers_interleave_entries_and_each_stream_joins_to_its_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = ContainerLog::open(
            dir.path(),
            0,
            RotationPolicy {
                max_size: 0,
                max_files: 5,
            },
            RotationMode::Rename,
        )
        .expect("open");
        let long = "日".repeat(12_000).into_bytes();
        for seq in 0..20 {
            log.send(
                Stream::Stdout,
                LineJob {
                    seq,
                    message: long.clone(),
                },
            );
            log.send(
                Stream::Stderr,
                LineJob {
                    seq,
                    message: format!("short {seq}").into_bytes(),
                },
            );
        }
        let segment = log.close();
        assert_eq!(segment.line_count, 40);
        let entries = read_entries(&dir.path().join("0.log"));
        let mut joined: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut stdout_lines = 0;
        for (stream, is_final, content) in &entries {
            let buf = joined.entry(stream.clone()).or_default();
            buf.extend_from_slice(content);
            if *is_final {
                if stream == "stdout" {
                    assert_eq!(buf, &long);
                    stdout_lines += 1;
                }
                buf.clear();
            }
        }
        assert_eq!(stdout_lines, 20);
        let cut_inside_char = entries
            .iter()
            .any(|(_, is_final, c)| !is_final && std::str::from_utf8(c).is_err());
        assert!(cut_inside_char, "16 KiB cuts fall inside a character");
    }

    #[test]
    fn copytruncate_keeps_whole_lines_in_the_copy_and_excuses_the_window() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = ContainerLog::open(
            dir.path(),
            0,
            RotationPolicy {
                max_size: 1,
                max_files: 5,
            },
            RotationMode::Copytruncate,
        )
        .expect("open");
        for seq in 0..5 {
            log.send(
                Stream::Stdout,
                LineJob {
                    seq,
                    message: b"line".to_vec(),
                },
            );
        }
        while lock(&log.shared).marks.len() < 5 {
            std::thread::yield_now();
        }
        let rotation = log.maintain().expect("rotates").expect("rotated");
        let segment = rotation.segment.expect("copy");
        assert_eq!(segment.line_count, 5);
        assert!(rotation.excused.is_empty());
        log.send(
            Stream::Stdout,
            LineJob {
                seq: 5,
                message: b"after".to_vec(),
            },
        );
        let live = log.close();
        assert_eq!(
            live.lines,
            [StreamRange {
                stream: Stream::Stdout,
                first: 5,
                last: 5
            }]
        );
        assert_eq!(read_entries(&dir.path().join("0.log")).len(), 1);
        assert_eq!(
            read_entries(&dir.path().join(&segment.name)).len(),
            5,
            "the copy holds the lines written before the truncation"
        );
    }

    #[test]
    fn summary_excuses_lines_past_the_copy_and_unfinished_ones() {
        let mark = |seq, start, end, is_final| Mark {
            stream: Stream::Stdout,
            seq,
            start,
            end,
            is_final,
        };
        let marks = [
            mark(0, 0, 10, true),
            mark(1, 10, 20, false),
            mark(1, 20, 30, true),
            mark(2, 30, 40, true),
            mark(3, 40, 50, false),
        ];
        let (segment, excused) = summarise("f", &marks, 25, [None; 2]);
        assert_eq!(segment.line_count, 1);
        assert_eq!(
            excused,
            [StreamRange {
                stream: Stream::Stdout,
                first: 1,
                last: 3
            }]
        );
        let (segment, _) = summarise("f", &marks, u64::MAX, [Some(0), None]);
        assert_eq!(segment.lines[0].first, 1, "a carried line is skipped");
    }
}
