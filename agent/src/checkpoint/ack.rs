//! Acknowledgement tracking: turns the source's events and the sink's confirmations into each
//! file's acknowledged position.
//!
//! Per file, an ordered queue holds the batches that received its lines, each with the file
//! position just before the first line it got. A file's acknowledged position is the position
//! before the oldest batch not yet confirmed (or the last event's end when every batch is
//! confirmed): the end of the longest prefix of the file's events whose lines all sit in
//! confirmed objects. [`SourceEvent::Consumed`](crate::source_event::SourceEvent::Consumed) ranges count
//! as confirmed at once. Batches may be confirmed in any order.
//!
//! Memory: a file's queue holds each unconfirmed batch at most once, so its length is bounded by the
//! batches in flight, which the batcher's memory cap bounds.

use crate::batch::BatchId;
use crate::source_event::{FileId, Unfinished};
use std::collections::{HashMap, VecDeque};

/// A resume point in a file: an offset, the marker of the bytes before it, and the lines still
/// unfinished there (read again after a restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Byte offset.
    pub offset: u64,
    /// [`offset_marker`](crate::source_event::offset_marker) of the bytes before `offset`.
    pub marker: u64,
    /// Lines unfinished before `offset`.
    pub unfinished: Unfinished,
}

/// One batch a file's lines went into, not yet known to be confirmed together with its prefix.
#[derive(Debug)]
struct Waiting {
    batch: BatchId,
    /// The file's position just before the first line this batch got; `None` when the file had no
    /// earlier event in this run (then its previous checkpoint, which is where reading resumed,
    /// stays in force).
    before: Option<Position>,
    confirmed: bool,
}

#[derive(Debug, Default)]
struct FileAcks {
    /// End of the latest event seen.
    last: Option<Position>,
    /// Where this run's first event of the file started.
    first_start: Option<u64>,
    waiting: VecDeque<Waiting>,
    acknowledged: Option<Position>,
    closed: bool,
}

impl FileAcks {
    fn settle(&mut self) {
        while self.waiting.front().is_some_and(|w| w.confirmed) {
            self.waiting.pop_front();
        }
        self.acknowledged = match self.waiting.front() {
            None => self.last,
            Some(oldest) => oldest.before.or(self.acknowledged),
        };
    }
}

/// The acknowledged state of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileAckState {
    /// The file.
    pub file: FileId,
    /// Its acknowledged position, if any event of this run is acknowledged.
    pub acknowledged: Option<Position>,
    /// Bytes read but not yet acknowledged.
    pub unacknowledged_bytes: u64,
    /// The source closed the file and every event of it is acknowledged.
    pub finished: bool,
}

/// Acknowledged positions of every file with events in this run.
#[derive(Debug, Default)]
pub struct AckTracker {
    files: HashMap<FileId, FileAcks>,
    /// Files that got lines in each unconfirmed batch.
    batch_files: HashMap<BatchId, Vec<FileId>>,
}

impl AckTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// A line of `file` starting at `start` went into `batch`; `end` is the file's resume point
    /// after it.
    pub fn line(&mut self, file: FileId, batch: BatchId, start: u64, end: Position) {
        let acks = self.files.entry(file).or_default();
        acks.first_start.get_or_insert(start);
        let already_waiting = acks.waiting.back().is_some_and(|w| w.batch == batch)
            || acks.waiting.iter().any(|w| w.batch == batch);
        if !already_waiting {
            acks.waiting.push_back(Waiting {
                batch,
                before: acks.last,
                confirmed: false,
            });
            let files = self.batch_files.entry(batch).or_default();
            if !files.contains(&file) {
                files.push(file);
            }
        }
        acks.last = Some(end);
    }

    /// Bytes of `file` up to the resume point `end` produced no line: acknowledged once the lines
    /// before them are.
    pub fn consumed(&mut self, file: FileId, end: Position) {
        let acks = self.files.entry(file).or_default();
        acks.first_start.get_or_insert(end.offset);
        acks.last = Some(end);
        acks.settle();
    }

    /// The source will send nothing more for `file`.
    pub fn closed(&mut self, file: FileId) {
        self.files.entry(file).or_default().closed = true;
    }

    /// The sink confirmed `batch`: every line in it is stored.
    pub fn confirm(&mut self, batch: BatchId) {
        for file in self.batch_files.remove(&batch).unwrap_or_default() {
            if let Some(acks) = self.files.get_mut(&file) {
                if let Some(waiting) = acks.waiting.iter_mut().find(|w| w.batch == batch) {
                    waiting.confirmed = true;
                }
                acks.settle();
            }
        }
    }

    /// The acknowledged position of `file`, if any of this run's events of it is acknowledged.
    pub fn acknowledged(&self, file: FileId) -> Option<Position> {
        self.files.get(&file).and_then(|acks| acks.acknowledged)
    }

    /// The state of every tracked file.
    pub fn states(&self) -> Vec<FileAckState> {
        self.files
            .iter()
            .map(|(file, acks)| FileAckState {
                file: *file,
                acknowledged: acks.acknowledged,
                unacknowledged_bytes: match (acks.last, acks.acknowledged) {
                    (Some(last), Some(acked)) => last.offset.saturating_sub(acked.offset),
                    (Some(last), None) => last.offset.saturating_sub(acks.first_start.unwrap_or(0)),
                    _ => 0,
                },
                finished: acks.closed && acks.waiting.is_empty(),
            })
            .collect()
    }

    /// Stops tracking `file` (after its final checkpoint was handed to the store).
    pub fn forget(&mut self, file: FileId) {
        self.files.remove(&file);
    }

    /// Whether every line seen so far is acknowledged.
    pub fn all_acknowledged(&self) -> bool {
        self.batch_files.is_empty()
    }

    /// Number of tracked files.
    pub fn tracked_files(&self) -> usize {
        self.files.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: FileId = FileId(7);
    const G: FileId = FileId(8);

    fn at(offset: u64) -> Position {
        Position {
            offset,
            marker: offset * 10,
            unfinished: Unfinished::NONE,
        }
    }

    fn pos(offset: u64) -> Option<Position> {
        Some(at(offset))
    }

    /// A line ending at `end` of `file` into `batch` (marker = end × 10).
    fn line(t: &mut AckTracker, file: FileId, batch: u64, end: u64) {
        t.line(file, BatchId(batch), end.saturating_sub(10), at(end));
    }

    #[test]
    fn nothing_is_acknowledged_before_the_sink_confirms() {
        let mut t = AckTracker::new();
        line(&mut t, F, 1, 10);
        line(&mut t, F, 1, 20);
        assert_eq!(t.acknowledged(F), None);
        t.confirm(BatchId(1));
        assert_eq!(t.acknowledged(F), pos(20));
        assert!(t.all_acknowledged());
    }

    #[test]
    fn out_of_order_confirmation_advances_only_the_confirmed_prefix() {
        let mut t = AckTracker::new();
        line(&mut t, F, 1, 10);
        line(&mut t, F, 2, 20);
        line(&mut t, F, 3, 30);
        t.confirm(BatchId(3));
        assert_eq!(t.acknowledged(F), None, "batch 1 is still in flight");
        t.confirm(BatchId(1));
        assert_eq!(
            t.acknowledged(F),
            pos(10),
            "stops before batch 2's first line"
        );
        t.confirm(BatchId(2));
        assert_eq!(t.acknowledged(F), pos(30));
    }

    #[test]
    fn consumed_ranges_are_acknowledged_at_once_when_nothing_waits() {
        let mut t = AckTracker::new();
        t.consumed(F, at(5));
        assert_eq!(t.acknowledged(F), pos(5));
        line(&mut t, F, 1, 10);
        t.consumed(F, at(12));
        assert_eq!(
            t.acknowledged(F),
            pos(5),
            "blank bytes after an unconfirmed line wait for it"
        );
        t.confirm(BatchId(1));
        assert_eq!(t.acknowledged(F), pos(12));
    }

    #[test]
    fn a_batch_revisited_after_another_keeps_its_first_position() {
        let mut t = AckTracker::new();
        t.consumed(F, at(0));
        line(&mut t, F, 1, 10);
        line(&mut t, F, 2, 20);
        line(&mut t, F, 1, 30);
        t.confirm(BatchId(2));
        assert_eq!(
            t.acknowledged(F),
            pos(0),
            "batch 1 holds the file's first line"
        );
        t.confirm(BatchId(1));
        assert_eq!(t.acknowledged(F), pos(30));
    }

    #[test]
    fn a_batch_with_lines_of_two_files_acknowledges_both() {
        let mut t = AckTracker::new();
        line(&mut t, F, 1, 10);
        line(&mut t, G, 1, 100);
        line(&mut t, G, 2, 200);
        t.confirm(BatchId(1));
        assert_eq!(t.acknowledged(F), pos(10));
        assert_eq!(t.acknowledged(G), pos(100));
        assert!(!t.all_acknowledged());
    }

    #[test]
    fn closed_file_is_finished_only_when_everything_is_confirmed() {
        let mut t = AckTracker::new();
        line(&mut t, F, 1, 10);
        t.closed(F);
        let state = |t: &AckTracker| {
            t.states()
                .into_iter()
                .find(|s| s.file == F)
                .expect("tracked")
        };
        assert!(!state(&t).finished);
        assert_eq!(state(&t).unacknowledged_bytes, 10);
        t.confirm(BatchId(1));
        assert!(state(&t).finished);
        assert_eq!(state(&t).unacknowledged_bytes, 0);
        t.forget(F);
        assert_eq!(t.tracked_files(), 0);
    }

    #[test]
    fn queue_holds_each_unconfirmed_batch_once() {
        let mut t = AckTracker::new();
        for end in 1..=1000 {
            line(&mut t, F, end % 3, end);
        }
        assert_eq!(t.files[&F].waiting.len(), 3);
    }

    #[test]
    fn the_acknowledged_position_keeps_the_unfinished_starts_of_its_event() {
        let mut t = AckTracker::new();
        let pending = Position {
            offset: 20,
            marker: 200,
            unfinished: Unfinished {
                stdout: Some(0),
                stderr: None,
            },
        };
        t.line(F, BatchId(1), 10, pending);
        t.line(F, BatchId(2), 0, at(30));
        t.confirm(BatchId(1));
        assert_eq!(
            t.acknowledged(F),
            Some(pending),
            "the stdout line from 0 is not shipped yet"
        );
        t.confirm(BatchId(2));
        assert_eq!(t.acknowledged(F), pos(30));
    }
}
