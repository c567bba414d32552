//! One file the tailer follows: its identity, where its bytes come from (a plain file descriptor
//! or a gzip stream), and its line pipeline — split ([`super::reader`]) → parse ([`crate::parse`])
//! → merge partials → record ([`super::record`]) — whose output are [`SourceEvent`]s.

use super::identity::{final_fingerprint, fingerprint, marker_window, read_first_bytes};
use super::path::{FileKind, PodLogPath};
use super::reader::{LineSplitter, SplitItem};
use super::record::{RecordContext, from_path};
use crate::checkpoint::{FileIdentity, FileRegistry};
use crate::internal_events::parse::{
    EmptyLine, MultilineAnnotationInvalid, ParseError, PartialFlushReason,
};
use crate::internal_events::tail::{HoleBytesSkipped, LinesRead};
use crate::parse::multiline::MultilineJoiner;
use crate::parse::multiline::rules::MultilineRule;
use crate::parse::partial::{Chunk, Merged, MergedLine, PartialMerger};
use crate::parse::{Format, finish_message};
use crate::source_event::{FileId, Line, MARKER_BYTES, SourceEvent, Unfinished, offset_marker};
use chrono::Utc;
use flate2::read::MultiGzDecoder;
use logrelay_common::record::Stream;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Room for a format's framing around a message at the line cap: CRI's ~50-byte prefix, or the
/// JSON escaping of one 16 KiB json-file chunk (up to 6 bytes per byte), so raw lines of a message
/// at the cap still parse.
pub const LINE_FRAMING_BYTES: usize = 128 * 1024;

/// Why the tailer stops sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Halt {
    /// It was told to stop.
    Stopped,
    /// Delivery dropped the receiving end.
    ChannelClosed,
}

/// Where events go: the bounded channel to delivery, and the registry delivery reads.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    pub sender: mpsc::Sender<SourceEvent>,
    pub registry: FileRegistry,
    pub stop: Arc<AtomicBool>,
}

/// When the channel to delivery is full, the tailer waits until `1 / RESUME_FREE_DIVISOR` of it is
/// free again before it sends more. Waiting for single freed slots would wake it for every line
/// delivery takes: a futex wake and two context switches per line, a visible share of the agent's
/// CPU whenever delivery is the slower half.
const RESUME_FREE_DIVISOR: usize = 4;
/// First pause while waiting for room; doubles up to [`FULL_PAUSE_MAX`].
const FULL_PAUSE_MIN: Duration = Duration::from_micros(100);
/// Longest pause while waiting for room: bounds wake-ups during a long sink outage (50/s) and
/// how late a stop request is noticed.
const FULL_PAUSE_MAX: Duration = Duration::from_millis(20);

impl Output {
    /// Sends one event if the channel has room at once; gives it back otherwise.
    fn try_send(&self, event: SourceEvent) -> Result<Option<SourceEvent>, Halt> {
        match self.sender.try_send(event) {
            Ok(()) => Ok(None),
            Err(mpsc::error::TrySendError::Full(event)) => Ok(Some(event)),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Halt::ChannelClosed),
        }
    }

    /// Sends one event, waiting while the channel is full (backpressure).
    fn send(&self, event: SourceEvent) -> Result<(), Halt> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(Halt::Stopped);
        }
        if self.sender.capacity() == 0 {
            self.wait_for_room()?;
        }
        self.sender
            .blocking_send(event)
            .map_err(|_| Halt::ChannelClosed)
    }

    /// Waits until a good part of the full channel is free again (see [`RESUME_FREE_DIVISOR`]).
    fn wait_for_room(&self) -> Result<(), Halt> {
        let wanted = (self.sender.max_capacity() / RESUME_FREE_DIVISOR).max(1);
        let mut pause = FULL_PAUSE_MIN;
        while self.sender.capacity() < wanted {
            if self.stop.load(Ordering::Relaxed) {
                return Err(Halt::Stopped);
            }
            if self.sender.is_closed() {
                return Err(Halt::ChannelClosed);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(FULL_PAUSE_MAX);
        }
        Ok(())
    }
}

/// The settings every file's pipeline shares.
#[derive(Debug, Clone)]
pub(crate) struct LineSettings {
    pub record: RecordContext,
    pub max_line_bytes: usize,
    /// How multi-line records are joined (`None`: every line is a record).
    pub multiline: Option<Arc<MultilineRule>>,
    /// How long a multi-line record waits for its next line.
    pub multiline_timeout: Duration,
    /// A pod's own multi-line setting, when the metadata stage knows the pod.
    pub pod_multiline: Option<PodMultiline>,
}

/// The annotation lookup behind [`PodMultiline`].
pub type PodAnnotationLookup = dyn Fn(&PodLogPath) -> Option<String> + Send + Sync;

/// Looks up a pod's `logrelay.io/multiline` annotation (`None`: unknown pod or not set).
#[derive(Clone)]
pub struct PodMultiline(pub Arc<PodAnnotationLookup>);

impl std::fmt::Debug for PodMultiline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PodMultiline")
    }
}

impl LineSettings {
    /// The multi-line rule of `pod`'s files: its annotation when the pod is known and has one
    /// (an invalid value is reported and ignored), else the flags'.
    fn multiline_rule(&self, pod: &PodLogPath) -> Option<Arc<MultilineRule>> {
        let Some(value) = self
            .pod_multiline
            .as_ref()
            .and_then(|lookup| (lookup.0)(pod))
        else {
            return self.multiline.clone();
        };
        match MultilineRule::parse_setting(&value) {
            Ok(rule) => rule.map(Arc::new),
            Err(error) => {
                MultilineAnnotationInvalid {
                    namespace: &pod.namespace,
                    pod: &pod.pod_name,
                    value: &value,
                    error: &error,
                }
                .emit();
                self.multiline.clone()
            }
        }
    }
}

/// Where a file's bytes come from.
pub(crate) enum Source {
    /// A plain file, read at its current position.
    Plain(File),
    /// A gzipped rotated file, read through its decompressed stream.
    Gzip(Box<MultiGzDecoder<BufReader<File>>>),
}

impl Source {
    /// Opens a plain file positioned at `offset`.
    pub fn plain(mut file: File, offset: u64) -> io::Result<Self> {
        file.seek(SeekFrom::Start(offset))?;
        Ok(Source::Plain(file))
    }

    /// Opens a gzipped file and skips `offset` decompressed bytes; also returns the raw bytes just
    /// before `offset` (for the marker). `None` when the content is shorter than `offset`.
    pub fn gzip(path: &Path, offset: u64) -> io::Result<Option<(Self, Vec<u8>)>> {
        let mut decoder = MultiGzDecoder::new(BufReader::new(File::open(path)?));
        let window_start = offset.saturating_sub(MARKER_BYTES as u64);
        let skipped = io::copy(&mut (&mut decoder).take(window_start), &mut io::sink())?;
        let mut window = Vec::with_capacity(MARKER_BYTES);
        (&mut decoder)
            .take(offset - window_start)
            .read_to_end(&mut window)?;
        if skipped < window_start || (window.len() as u64) < offset - window_start {
            return Ok(None);
        }
        Ok(Some((Source::Gzip(Box::new(decoder)), window)))
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let result = match self {
                Source::Plain(file) => file.read(buf),
                Source::Gzip(decoder) => decoder.read(buf),
            };
            match result {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    /// The plain file, if this is one.
    pub fn file(&self) -> Option<&File> {
        match self {
            Source::Plain(file) => Some(file),
            Source::Gzip(_) => None,
        }
    }
}

/// The result of one read.
pub(crate) enum ReadOutcome {
    /// Bytes were read and processed.
    Data,
    /// Nothing more to read for now.
    Eof,
    /// The bytes before the read offset are not the ones read (the file was truncated and
    /// written again, perhaps past the offset): it must be read again from 0.
    Rewritten,
    /// The read failed.
    Error(io::Error),
}

/// Which file on disk a [`TrackedFile`] is, and whether the registry knows it.
pub(crate) struct Ident {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub inode: u64,
    /// Fingerprint of the first bytes, once known for good.
    pub fingerprint: Option<u64>,
    /// Current path.
    pub path: PathBuf,
    /// Whether the registry knows it (it does before the file's first event).
    pub registered: bool,
    /// The checkpoint entry this file resumed from.
    pub resumed_from: Option<FileIdentity>,
}

impl Ident {
    /// The fingerprint if it is known for good, reading the file's first bytes if needed.
    fn stable_fingerprint(&mut self, source: Option<&Source>) -> Option<u64> {
        if self.fingerprint.is_none() {
            let file = source.and_then(Source::file)?;
            self.fingerprint = read_first_bytes(file)
                .ok()
                .and_then(|first| fingerprint(&first));
        }
        self.fingerprint
    }

    /// The identity delivery checkpoints under. A file without a stable fingerprint (shorter than
    /// its first line: only at its end of life) gets the fingerprint of what it holds.
    fn identity(&mut self, source: Option<&Source>) -> FileIdentity {
        let fingerprint = self.stable_fingerprint(source).unwrap_or_else(|| {
            let first = source
                .and_then(Source::file)
                .and_then(|file| read_first_bytes(file).ok());
            final_fingerprint(&first.unwrap_or_default())
        });
        FileIdentity {
            dev: self.dev,
            inode: self.inode,
            fingerprint,
        }
    }

    /// Tells the registry about the file (again, after its identity or path changed).
    fn register(&mut self, id: FileId, source: Option<&Source>, output: &Output) {
        let identity = self.identity(source);
        output.registry.register(id, identity, self.path.clone());
        if let Some(resumed_from) = self.resumed_from {
            output.registry.replaces(id, resumed_from);
        }
        self.registered = true;
    }
}

/// A file the tailer follows (open, waiting for a slot under the per-pod cap, or parked at EOF).
pub(crate) struct TrackedFile {
    /// The id events carry.
    pub id: FileId,
    /// Which file on disk it is.
    pub ident: Ident,
    /// What the path says it is.
    pub kind: FileKind,
    /// Metadata from the path.
    pub pod: Arc<PodLogPath>,
    /// Where bytes come from; `None` while waiting for a slot or parked.
    pub source: Option<Source>,
    /// Size at the last look (plain files).
    pub size: u64,
    /// Deleted or moved out of the tree: drain, then close.
    pub gone: bool,
    /// In the tailer's run queue.
    pub queued: bool,
    /// The line splitter (its offset is the file position).
    pub splitter: LineSplitter,
    lines: LinePipeline,
    /// Reached its end since the last read with data: before reading on, check that the bytes
    /// before the offset are still the ones read (a truncated file can grow past the offset
    /// before anyone looks at its size).
    idle: bool,
    /// The latest resume point not sent yet (bytes that produced no line), sent as one event
    /// before the next line.
    consumed: Option<Resume>,
    /// Where a file resumed from a checkpoint continues (announced before it is read).
    resumed_at: Option<Resume>,
    /// The announcement of where the file starts, when the channel had no room for it: sent
    /// before anything else of the file.
    announcement: Option<SourceEvent>,
}

/// A resume point: offset, marker of the bytes before it, and the lines unfinished there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resume {
    pub offset: u64,
    pub marker: u64,
    pub unfinished: Unfinished,
}

/// What a new [`TrackedFile`] starts from.
pub(crate) struct FileStart {
    pub id: FileId,
    pub dev: u64,
    pub inode: u64,
    pub fingerprint: Option<u64>,
    pub path: PathBuf,
    pub kind: FileKind,
    pub pod: Arc<PodLogPath>,
    pub source: Option<Source>,
    pub size: u64,
    /// Where reading starts (a resumed file with unfinished lines: the earliest of them).
    pub offset: u64,
    /// The raw bytes before `offset`.
    pub before_offset: Vec<u8>,
    /// The checkpoint resumed from, when it is not simply `offset`.
    pub resume: Option<Resume>,
    /// The identity of the checkpoint entry resumed from (superseded by this file's entry).
    pub resumed_from: Option<FileIdentity>,
}

impl TrackedFile {
    /// A file starting at `start.offset`.
    pub fn new(start: FileStart, settings: &LineSettings, mut merger: PartialMerger) -> Self {
        let max_raw = settings.max_line_bytes.saturating_add(LINE_FRAMING_BYTES);
        if let Some(resume) = start.resume {
            merger.replay(resume.offset, resume.unfinished);
        }
        let joiner = settings.multiline_rule(&start.pod).map(|rule| {
            MultilineJoiner::new(rule, settings.max_line_bytes, settings.multiline_timeout)
        });
        Self {
            id: start.id,
            ident: Ident {
                dev: start.dev,
                inode: start.inode,
                fingerprint: start.fingerprint,
                path: start.path,
                registered: false,
                resumed_from: start.resumed_from,
            },
            kind: start.kind,
            pod: start.pod,
            source: start.source,
            size: start.size,
            gone: false,
            queued: false,
            splitter: LineSplitter::new(start.offset, &start.before_offset, max_raw),
            lines: LinePipeline {
                format: None,
                merger,
                joiner,
                scratch: Vec::new(),
            },
            idle: false,
            consumed: None,
            resumed_at: start.resume,
            announcement: None,
        }
    }

    /// Whether a partial line or an unfinished line is held in memory.
    pub fn holds_unfinished_line(&self) -> bool {
        self.splitter.has_incomplete_line()
            || self.lines.merger.has_pending()
            || self
                .lines
                .joiner
                .as_ref()
                .is_some_and(MultilineJoiner::has_pending)
            || self.consumed.is_some()
    }

    /// When the pending partial line or multi-line record must be flushed, if there is one.
    pub fn partial_deadline(&self) -> Option<Instant> {
        let joiner = self
            .lines
            .joiner
            .as_ref()
            .and_then(MultilineJoiner::deadline);
        match (self.lines.merger.deadline(), joiner) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Tells the registry about the file (again, after its identity or path changed).
    pub fn register(&mut self, output: &Output) {
        self.ident.register(self.id, self.source.as_ref(), output);
        output.registry.set_size(self.id, self.size);
    }

    /// Reads and processes up to `buf.len()` bytes, sending events as lines complete.
    pub fn read_chunk(
        &mut self,
        buf: &mut [u8],
        settings: &LineSettings,
        output: &Output,
    ) -> Result<ReadOutcome, Halt> {
        self.send_announcement(output)?;
        if std::mem::take(&mut self.idle) && !self.offset_intact() {
            return Ok(ReadOutcome::Rewritten);
        }
        let Some(source) = self.source.as_mut() else {
            return Ok(ReadOutcome::Eof);
        };
        let read = match source.read(buf) {
            Ok(0) => {
                self.idle = true;
                return Ok(ReadOutcome::Eof);
            }
            Ok(read) => read,
            Err(error) => return Ok(ReadOutcome::Error(error)),
        };
        let now = Instant::now();
        let Self {
            id,
            ident,
            pod,
            source,
            splitter,
            lines,
            consumed,
            ..
        } = self;
        let mut emitter = Emitter {
            id: *id,
            ident,
            source: source.as_ref(),
            pod,
            settings,
            output,
            consumed,
            lines_sent: 0,
        };
        splitter.feed(&buf[..read], &mut |item| {
            lines.take(item, now);
            lines
                .scratch
                .drain(..)
                .try_for_each(|merged| emitter.emit(merged))
        })?;
        emitter.flush_consumed_if_stable()?;
        LinesRead {
            lines: emitter.lines_sent,
            bytes: read as u64,
        }
        .emit();
        Ok(ReadOutcome::Data)
    }

    /// Whether the raw bytes before the read offset of a plain file still match its marker.
    fn offset_intact(&self) -> bool {
        let offset = self.splitter.offset();
        let Some(plain) = self.source.as_ref().and_then(Source::file) else {
            return true;
        };
        if offset == 0 {
            return true;
        }
        marker_window(plain, offset)
            .ok()
            .flatten()
            .is_some_and(|window| offset_marker(&window) == self.splitter.marker())
    }

    /// Ships a partial line that waited past its deadline.
    pub fn flush_expired(
        &mut self,
        now: Instant,
        settings: &LineSettings,
        output: &Output,
    ) -> Result<(), Halt> {
        let mut scratch = std::mem::take(&mut self.lines.scratch);
        self.lines.merger.flush_expired(now, &mut scratch);
        if let Some(joiner) = &mut self.lines.joiner {
            joiner.process(&mut scratch, 0, now);
            joiner.flush_expired(now, &mut scratch);
        }
        self.send_flushed(scratch, settings, output)
    }

    fn send_flushed(
        &mut self,
        mut scratch: Vec<Merged>,
        settings: &LineSettings,
        output: &Output,
    ) -> Result<(), Halt> {
        let mut emitter = self.emitter(settings, output);
        let result = scratch
            .drain(..)
            .try_for_each(|merged| emitter.emit(merged));
        let result = result.and_then(|()| emitter.flush_consumed_if_stable());
        self.lines.scratch = scratch;
        result
    }

    /// Ships everything held (unfinished line, pending partial) and reports the file closed.
    pub fn end_of_life(&mut self, settings: &LineSettings, output: &Output) -> Result<(), Halt> {
        self.send_announcement(output)?;
        let now = Instant::now();
        let Self {
            splitter, lines, ..
        } = self;
        splitter.finish(&mut |item| {
            lines.take(item, now);
            Ok::<(), Halt>(())
        })?;
        let from = self.lines.scratch.len();
        self.lines
            .merger
            .flush(PartialFlushReason::EndOfFile, &mut self.lines.scratch);
        if let Some(joiner) = &mut self.lines.joiner {
            joiner.process(&mut self.lines.scratch, from, now);
            joiner.flush(&mut self.lines.scratch);
        }
        let Self {
            id,
            ident,
            pod,
            source,
            lines,
            consumed,
            ..
        } = self;
        let mut emitter = Emitter {
            id: *id,
            ident,
            source: source.as_ref(),
            pod,
            settings,
            output,
            consumed,
            lines_sent: 0,
        };
        lines
            .scratch
            .drain(..)
            .try_for_each(|merged| emitter.emit(merged))?;
        if emitter.consumed.is_some() {
            emitter.flush_consumed()?;
        }
        if self.ident.registered {
            output.send(SourceEvent::Closed { file: self.id })?;
        }
        Ok(())
    }

    /// Tells delivery where a file resumed mid-way starts, so it keeps checkpointing it even
    /// before new lines come.
    /// Never waits for room in the channel: a listing of many files must open them all (a file
    /// held open can be read after it is deleted) before delivery has caught up; without room the
    /// announcement goes before the file's first read.
    pub fn announce_start(&mut self, output: &Output) -> Result<(), Halt> {
        self.register(output);
        let at = self.resumed_at.unwrap_or(Resume {
            offset: self.splitter.offset(),
            marker: self.splitter.marker(),
            unfinished: Unfinished::NONE,
        });
        self.announcement = output.try_send(SourceEvent::Consumed {
            file: self.id,
            end: at.offset,
            end_marker: at.marker,
            unfinished: at.unfinished,
        })?;
        Ok(())
    }

    /// Sends the announcement the channel had no room for.
    fn send_announcement(&mut self, output: &Output) -> Result<(), Halt> {
        match self.announcement.take() {
            Some(event) => output.send(event),
            None => Ok(()),
        }
    }

    /// Whether the file resumed from a checkpoint.
    pub fn is_resumed(&self) -> bool {
        self.resumed_at.is_some()
    }

    fn emitter<'a>(&'a mut self, settings: &'a LineSettings, output: &'a Output) -> Emitter<'a> {
        Emitter {
            id: self.id,
            ident: &mut self.ident,
            source: self.source.as_ref(),
            pod: &self.pod,
            settings,
            output,
            consumed: &mut self.consumed,
            lines_sent: 0,
        }
    }
}

/// Turns merged lines of one file into events and sends them, registering the file first.
struct Emitter<'a> {
    id: FileId,
    ident: &'a mut Ident,
    source: Option<&'a Source>,
    pod: &'a PodLogPath,
    settings: &'a LineSettings,
    output: &'a Output,
    consumed: &'a mut Option<Resume>,
    lines_sent: u64,
}

impl Emitter<'_> {
    fn emit(&mut self, merged: Merged) -> Result<(), Halt> {
        match merged {
            Merged::Consumed {
                end,
                end_marker,
                unfinished,
            } => {
                *self.consumed = Some(Resume {
                    offset: end,
                    marker: end_marker,
                    unfinished,
                });
                Ok(())
            }
            Merged::Line(line) => {
                self.flush_consumed()?;
                let message =
                    finish_message(line.message, line.message_len, self.settings.max_line_bytes);
                let record = from_path(
                    self.pod,
                    &self.settings.record,
                    line.timestamp,
                    line.stream,
                    message,
                );
                let event = Line {
                    record,
                    file: self.id,
                    start: line.start,
                    end: line.end,
                    end_marker: line.end_marker,
                    unfinished: line.unfinished,
                };
                self.lines_sent += 1;
                self.send(SourceEvent::Line(event))
            }
        }
    }

    /// Sends held consumed bytes, unless the file's identity could still change (a file that does
    /// not yet hold a whole first line): they go with the next line instead.
    fn flush_consumed_if_stable(&mut self) -> Result<(), Halt> {
        if self.consumed.is_some()
            && (self.ident.registered || self.ident.stable_fingerprint(self.source).is_some())
        {
            self.flush_consumed()?;
        }
        Ok(())
    }

    fn flush_consumed(&mut self) -> Result<(), Halt> {
        match self.consumed.take() {
            Some(at) => self.send(SourceEvent::Consumed {
                file: self.id,
                end: at.offset,
                end_marker: at.marker,
                unfinished: at.unfinished,
            }),
            None => Ok(()),
        }
    }

    fn send(&mut self, event: SourceEvent) -> Result<(), Halt> {
        if !self.ident.registered {
            self.ident.register(self.id, self.source, self.output);
        }
        self.output.send(event)
    }
}

/// Parse and merge state of one file.
struct LinePipeline {
    format: Option<Format>,
    merger: PartialMerger,
    /// Joins multi-line records after the merger, when configured.
    joiner: Option<MultilineJoiner>,
    scratch: Vec<Merged>,
}

impl LinePipeline {
    /// Parses one split item into the merger and the joiner; what completes lands in `scratch`.
    fn take(&mut self, item: SplitItem<'_>, now: Instant) {
        let from = self.scratch.len();
        self.merge(item, now);
        if let Some(joiner) = &mut self.joiner {
            joiner.process(&mut self.scratch, from, now);
        }
    }

    /// Parses one split item into the merger.
    fn merge(&mut self, item: SplitItem<'_>, now: Instant) {
        match item {
            SplitItem::Hole {
                end,
                end_marker,
                bytes,
            } => {
                HoleBytesSkipped { bytes }.emit();
                self.merger
                    .push_consumed(end, end_marker, &mut self.scratch);
            }
            SplitItem::Line(raw) if raw.bytes.is_empty() && raw.cut_bytes == 0 => {
                EmptyLine.emit();
                self.merger
                    .push_consumed(raw.end, raw.end_marker, &mut self.scratch);
            }
            SplitItem::Line(raw) => {
                let format = *self.format.get_or_insert_with(|| Format::detect(raw.bytes));
                match format.parse(raw.bytes) {
                    Ok(parsed) => {
                        let chunk = Chunk {
                            start: raw.start,
                            end: raw.end,
                            end_marker: raw.end_marker,
                            timestamp: parsed.timestamp,
                            stream: parsed.stream,
                            partial: parsed.partial,
                            message: &parsed.message,
                            message_len: parsed.message.len() as u64 + raw.cut_bytes,
                        };
                        self.merger.push(chunk, now, &mut self.scratch);
                    }
                    Err(reason) => {
                        ParseError {
                            format: format.as_str(),
                            reason: reason.as_str(),
                        }
                        .emit();
                        let line = MergedLine {
                            start: raw.start,
                            end: raw.end,
                            end_marker: raw.end_marker,
                            unfinished: Unfinished::NONE,
                            timestamp: Utc::now(),
                            stream: Stream::Stdout,
                            message: raw.bytes.to_vec(),
                            message_len: raw.bytes.len() as u64 + raw.cut_bytes,
                        };
                        self.merger.push_standalone(line, &mut self.scratch);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(capacity: usize) -> (Output, mpsc::Receiver<SourceEvent>) {
        let (sender, receiver) = mpsc::channel(capacity);
        let output = Output {
            sender,
            registry: FileRegistry::new(),
            stop: Arc::new(AtomicBool::new(false)),
        };
        (output, receiver)
    }

    fn closed(n: u64) -> SourceEvent {
        SourceEvent::Closed { file: FileId(n) }
    }

    #[test]
    fn a_full_channel_is_refilled_only_once_a_quarter_is_free() {
        let (output, mut receiver) = output(8);
        for n in 0..8 {
            output.send(closed(n)).expect("room");
        }
        let sender = output.clone();
        let thread = std::thread::spawn(move || sender.send(closed(8)));
        // Let the sender find the channel full and start waiting.
        std::thread::sleep(Duration::from_millis(50));
        receiver.try_recv().expect("queued");
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            receiver.len(),
            7,
            "one free slot of 8 is not enough to resume"
        );
        receiver.try_recv().expect("queued");
        thread.join().expect("no panic").expect("sent");
        assert_eq!(receiver.len(), 7);
    }

    #[test]
    fn a_stop_request_ends_the_wait_for_room() {
        let (output, _receiver) = output(2);
        output.send(closed(0)).expect("room");
        output.send(closed(1)).expect("room");
        let sender = output.clone();
        let thread = std::thread::spawn(move || sender.send(closed(2)));
        std::thread::sleep(Duration::from_millis(50));
        output.stop.store(true, Ordering::Relaxed);
        assert!(matches!(
            thread.join().expect("no panic"),
            Err(Halt::Stopped)
        ));
    }
}
