//! Splitting a file's bytes into raw lines with their byte ranges and offset markers, in bounded
//! memory: a line longer than the cap keeps its first bytes and only counts the rest, so a 100 MiB
//! line without a newline costs the cap, not 100 MiB.

use crate::source_event::{MARKER_BYTES, offset_marker};

/// The last [`MARKER_BYTES`] raw bytes consumed, for offset markers.
#[derive(Debug, Clone, Default)]
pub struct MarkerWindow {
    bytes: Vec<u8>,
}

impl MarkerWindow {
    /// A window holding the bytes just before the starting offset.
    pub fn new(before_start: &[u8]) -> Self {
        let mut window = Self {
            bytes: Vec::with_capacity(2 * MARKER_BYTES),
        };
        window.push(before_start);
        window
    }

    /// Records consumed bytes.
    pub fn push(&mut self, data: &[u8]) {
        if data.len() >= MARKER_BYTES {
            self.bytes.clear();
            self.bytes
                .extend_from_slice(&data[data.len() - MARKER_BYTES..]);
        } else {
            self.bytes.extend_from_slice(data);
            let excess = self.bytes.len().saturating_sub(MARKER_BYTES);
            self.bytes.drain(..excess);
        }
    }

    /// The offset marker of everything consumed so far.
    pub fn marker(&self) -> u64 {
        offset_marker(&self.bytes)
    }
}

/// One raw line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawLine<'a> {
    /// Offset of its first byte.
    pub start: u64,
    /// Offset just past it (including the newline, if any).
    pub end: u64,
    /// Offset marker at `end`.
    pub end_marker: u64,
    /// Its bytes without the newline, at most the cap.
    pub bytes: &'a [u8],
    /// Bytes of the line past the cap, counted but not kept.
    pub cut_bytes: u64,
}

/// What the splitter produces, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitItem<'a> {
    /// A line.
    Line(RawLine<'a>),
    /// NUL bytes skipped at the start of a file restarted after truncation: the hole a writer
    /// without `O_APPEND` leaves when it keeps writing at its old offset.
    Hole {
        /// Offset just past the skipped bytes.
        end: u64,
        /// Offset marker at `end`.
        end_marker: u64,
        /// How many bytes were skipped.
        bytes: u64,
    },
}

/// Capacity above which an emptied line buffer is released. The buffer only holds a line that
/// spans two reads, one per file at a time, so a node with 1,000 busy files keeps the tails in
/// flight rather than each file's longest line so far.
const KEEP_LINE_CAPACITY: usize = 4 * 1024;

/// Splits a file's bytes into lines; see the module documentation.
#[derive(Debug)]
pub struct LineSplitter {
    offset: u64,
    line_start: u64,
    line: Vec<u8>,
    cut: u64,
    window: MarkerWindow,
    max_line_bytes: usize,
    skip_holes: bool,
}

impl LineSplitter {
    /// A splitter starting at `offset`, with the raw bytes just before it (for markers), keeping
    /// at most `max_line_bytes` of each line.
    pub fn new(offset: u64, before_start: &[u8], max_line_bytes: usize) -> Self {
        Self {
            offset,
            line_start: offset,
            line: Vec::new(),
            cut: 0,
            window: MarkerWindow::new(before_start),
            max_line_bytes,
            skip_holes: false,
        }
    }

    /// Skips NUL bytes before the first line (see [`SplitItem::Hole`]).
    pub fn skip_leading_holes(&mut self) {
        self.skip_holes = true;
    }

    /// Offset of the next byte to read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Offset of the first byte not yet handed out in a line or hole.
    pub fn line_start(&self) -> u64 {
        self.line_start
    }

    /// The offset marker at [`Self::offset`].
    pub fn marker(&self) -> u64 {
        self.window.marker()
    }

    /// Whether bytes of an unfinished line are held.
    pub fn has_incomplete_line(&self) -> bool {
        self.line_start < self.offset
    }

    /// Consumes `data` (the bytes at [`Self::offset`]), handing out each completed line.
    pub fn feed<E>(
        &mut self,
        data: &[u8],
        emit: &mut impl FnMut(SplitItem<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut rest = data;
        if self.skip_holes {
            let holes = rest.iter().take_while(|byte| **byte == 0).count();
            if holes > 0 {
                self.consume(&rest[..holes]);
                self.line_start = self.offset;
                emit(SplitItem::Hole {
                    end: self.offset,
                    end_marker: self.window.marker(),
                    bytes: holes as u64,
                })?;
                rest = &rest[holes..];
            }
            if !rest.is_empty() {
                self.skip_holes = false;
            }
        }
        while let Some(newline) = memchr::memchr(b'\n', rest) {
            let (line, after) = (&rest[..newline], &rest[newline + 1..]);
            self.consume(&rest[..=newline]);
            if self.line.is_empty() && self.cut == 0 {
                // The whole line is in `data`: hand it out without copying.
                let kept = line.len().min(self.max_line_bytes);
                let cut_bytes = (line.len() - kept) as u64;
                self.emit_line(&line[..kept], cut_bytes, emit)?;
            } else {
                self.keep(line);
                let held = std::mem::take(&mut self.line);
                let result = self.emit_line(&held, self.cut, emit);
                self.line = held;
                self.reset_line();
                result?;
            }
            rest = after;
        }
        if !rest.is_empty() {
            self.consume(rest);
            self.keep(rest);
        }
        Ok(())
    }

    /// Hands out the unfinished line, if any, as a line without newline (the file ended).
    pub fn finish<E>(
        &mut self,
        emit: &mut impl FnMut(SplitItem<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if !self.has_incomplete_line() {
            return Ok(());
        }
        let held = std::mem::take(&mut self.line);
        let result = self.emit_line(&held, self.cut, emit);
        self.line = held;
        self.reset_line();
        result
    }

    fn emit_line<E>(
        &mut self,
        bytes: &[u8],
        cut_bytes: u64,
        emit: &mut impl FnMut(SplitItem<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let line = RawLine {
            start: self.line_start,
            end: self.offset,
            end_marker: self.window.marker(),
            bytes,
            cut_bytes,
        };
        self.line_start = self.offset;
        self.cut = 0;
        emit(SplitItem::Line(line))
    }

    /// Advances the offset over `bytes` and records them for markers.
    fn consume(&mut self, bytes: &[u8]) {
        self.offset += bytes.len() as u64;
        self.window.push(bytes);
    }

    /// Keeps what fits of a piece of the current line; counts the rest.
    fn keep(&mut self, piece: &[u8]) {
        let room = self.max_line_bytes.saturating_sub(self.line.len());
        let kept = piece.len().min(room);
        self.line.extend_from_slice(&piece[..kept]);
        self.cut += (piece.len() - kept) as u64;
    }

    fn reset_line(&mut self) {
        self.line.clear();
        self.cut = 0;
        self.line_start = self.offset;
        if self.line.capacity() > KEEP_LINE_CAPACITY {
            self.line = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    #[derive(Debug, PartialEq, Eq)]
    enum Item {
        Line {
            start: u64,
            end: u64,
            marker: u64,
            bytes: Vec<u8>,
            cut: u64,
        },
        Hole {
            end: u64,
            bytes: u64,
        },
    }

    fn collect(splitter: &mut LineSplitter, pieces: &[&[u8]]) -> Vec<Item> {
        let mut items = Vec::new();
        let mut emit = |item: SplitItem<'_>| -> Result<(), Infallible> {
            items.push(match item {
                SplitItem::Line(line) => Item::Line {
                    start: line.start,
                    end: line.end,
                    marker: line.end_marker,
                    bytes: line.bytes.to_vec(),
                    cut: line.cut_bytes,
                },
                SplitItem::Hole { end, bytes, .. } => Item::Hole { end, bytes },
            });
            Ok(())
        };
        for piece in pieces {
            splitter.feed(piece, &mut emit).expect("infallible");
        }
        items
    }

    fn line(start: u64, end: u64, all: &[u8], bytes: &[u8], cut: u64) -> Item {
        Item::Line {
            start,
            end,
            marker: offset_marker(&all[..end as usize]),
            bytes: bytes.to_vec(),
            cut,
        }
    }

    #[test]
    fn lines_split_across_reads_keep_their_ranges_and_markers() {
        let all = b"one\ntwo-long\n\nthree\n";
        let mut splitter = LineSplitter::new(0, b"", 100);
        let items = collect(&mut splitter, &[b"one\ntwo", b"-lo", b"ng\n\nthr", b"ee\n"]);
        assert_eq!(
            items,
            vec![
                line(0, 4, all, b"one", 0),
                line(4, 13, all, b"two-long", 0),
                line(13, 14, all, b"", 0),
                line(14, 20, all, b"three", 0),
            ]
        );
        assert!(!splitter.has_incomplete_line());
        assert_eq!(splitter.marker(), offset_marker(all));
    }

    #[test]
    fn long_line_keeps_the_cap_and_counts_the_rest() {
        let mut splitter = LineSplitter::new(0, b"", 4);
        let items = collect(&mut splitter, &[b"abcdefgh", b"ijkl", b"mn\nok\n"]);
        let all = b"abcdefghijklmn\nok\n";
        assert_eq!(
            items,
            vec![line(0, 15, all, b"abcd", 10), line(15, 18, all, b"ok", 0)]
        );
        let single = collect(&mut LineSplitter::new(0, b"", 4), &[b"abcdefgh\n"]);
        assert_eq!(single, vec![line(0, 9, b"abcdefgh\n", b"abcd", 4)]);
    }

    #[test]
    fn a_long_line_spanning_two_reads_leaves_no_buffer_behind() {
        let mut splitter = LineSplitter::new(0, b"", 1 << 20);
        let long = vec![b'y'; 16 * 1024];
        assert!(
            collect(&mut splitter, &[&long]).is_empty(),
            "no newline yet"
        );
        assert!(splitter.line.capacity() >= 16 * 1024);
        let items = collect(&mut splitter, &[b"\nshort"]);
        assert_eq!(items.len(), 1);
        // The short tail is held; the long line's buffer is gone.
        assert!(
            splitter.line.capacity() < long.len(),
            "{} bytes kept",
            splitter.line.capacity()
        );
    }

    #[test]
    fn huge_line_without_newline_holds_only_the_cap() {
        let mut splitter = LineSplitter::new(0, b"", 1024);
        let chunk = vec![b'z'; 64 * 1024];
        for _ in 0..64 {
            assert!(collect(&mut splitter, &[&chunk]).is_empty());
        }
        assert_eq!(splitter.line.len(), 1024);
        assert!(splitter.line.capacity() < 64 * 1024);
        assert_eq!(splitter.offset(), 64 * 64 * 1024);
        let mut items = Vec::new();
        splitter
            .finish(&mut |item: SplitItem<'_>| -> Result<(), Infallible> {
                if let SplitItem::Line(line) = item {
                    items.push((line.start, line.end, line.bytes.len(), line.cut_bytes));
                }
                Ok(())
            })
            .expect("infallible");
        assert_eq!(items, vec![(0, 4 << 20, 1024, (4 << 20) - 1024)]);
    }

    #[test]
    fn resumed_splitter_counts_offsets_from_the_resume_point() {
        let all = b"old line\nnew\n";
        let mut splitter = LineSplitter::new(9, &all[..9], 100);
        assert_eq!(
            collect(&mut splitter, &[b"new\n"]),
            vec![line(9, 13, all, b"new", 0)]
        );
    }

    #[test]
    fn leading_nul_hole_after_truncation_is_skipped() {
        let mut splitter = LineSplitter::new(0, b"", 100);
        splitter.skip_leading_holes();
        let items = collect(&mut splitter, &[b"\0\0\0", b"\0x\0\n"]);
        let all = b"\0\0\0\0x\0\n";
        assert_eq!(
            items,
            vec![
                Item::Hole { end: 3, bytes: 3 },
                Item::Hole { end: 4, bytes: 1 },
                line(4, 7, all, b"x\0", 0)
            ]
        );
    }
}
