//! Joining the lines of one multi-line record (a stack trace) into one message, per file and
//! stream, after split lines are reassembled ([`super::partial`]): opt-in with `--multiline` or
//! `--multiline-start-regex` ([`rules`]).
//!
//! The joiner rewrites what the partial merger hands on. A group being joined is held like a
//! pending partial: every resume point passed on while it is held lists the group's start among
//! the unfinished lines of its stream ([`Unfinished`]), so a checkpoint never skips bytes of a
//! group not shipped yet and a restart reads the group again from its first line. A group leaves
//! when a line starts the next record, when nothing can continue it, when it reached the line cap
//! (`--max-line-bytes`), after `--multiline-timeout` without a new line, or when its file ends.

pub mod rules;

use super::partial::{Merged, MergedLine};
use crate::internal_events::parse::MultilineJoined;
use crate::source_event::Unfinished;
use logrelay_common::record::Stream;
use rules::{MultilineRule, Phase};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default `--multiline-timeout`: 1 s. A runtime prints a whole trace at once, in milliseconds;
/// a trace that is the last output of a container must still leave within about a second.
pub const MULTILINE_TIMEOUT: Duration = Duration::from_secs(1);

/// Separator between joined lines.
const LINE_SEPARATOR: u8 = b'\n';

/// A record being joined.
#[derive(Debug)]
struct Group {
    line: MergedLine,
    phase: Phase,
    lines: u64,
    last_line_at: Instant,
}

/// The file's resume point as the partial merger last gave it.
#[derive(Debug, Clone, Copy, Default)]
struct Position {
    end: u64,
    end_marker: u64,
    unfinished: Unfinished,
}

/// Joins multi-line records of one file; see the module documentation.
#[derive(Debug)]
pub struct MultilineJoiner {
    rule: Arc<MultilineRule>,
    max_line_bytes: usize,
    timeout: Duration,
    groups: [Option<Group>; 2],
    position: Position,
}

fn slot(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

impl MultilineJoiner {
    /// A joiner by `rule`, keeping at most `max_line_bytes` of a record, shipping a group after
    /// `timeout` without a new line.
    pub fn new(rule: Arc<MultilineRule>, max_line_bytes: usize, timeout: Duration) -> Self {
        Self {
            rule,
            max_line_bytes,
            timeout,
            groups: [None, None],
            position: Position::default(),
        }
    }

    /// Rewrites `items[from..]` (what the merger just handed on): lines join or start groups,
    /// resume points also cover the groups held.
    pub fn process(&mut self, items: &mut Vec<Merged>, from: usize, now: Instant) {
        let taken: Vec<Merged> = items.drain(from..).collect();
        for item in taken {
            match item {
                Merged::Consumed {
                    end,
                    end_marker,
                    unfinished,
                } => {
                    self.position = Position {
                        end,
                        end_marker,
                        unfinished,
                    };
                    items.push(self.resume_point());
                }
                Merged::Line(line) => self.take_line(line, now, items),
            }
        }
    }

    /// Ships every group that waited `timeout` for its next line.
    pub fn flush_expired(&mut self, now: Instant, out: &mut Vec<Merged>) {
        for index in 0..self.groups.len() {
            let expired = self.groups[index]
                .as_ref()
                .is_some_and(|group| now >= group.last_line_at + self.timeout);
            if expired {
                self.ship(index, out);
            }
        }
    }

    /// Ships every group, oldest first (the file ends).
    pub fn flush(&mut self, out: &mut Vec<Merged>) {
        while let Some(index) = (0..self.groups.len())
            .filter(|index| self.groups[*index].is_some())
            .min_by_key(|index| self.groups[*index].as_ref().map(|g| g.line.start))
        {
            self.ship(index, out);
        }
    }

    /// When the next group must be shipped, if one is held.
    pub fn deadline(&self) -> Option<Instant> {
        self.groups
            .iter()
            .flatten()
            .map(|group| group.last_line_at + self.timeout)
            .min()
    }

    /// Whether a group is held.
    pub fn has_pending(&self) -> bool {
        self.groups.iter().any(Option::is_some)
    }

    fn take_line(&mut self, line: MergedLine, now: Instant, out: &mut Vec<Merged>) {
        self.position = Position {
            end: line.end,
            end_marker: line.end_marker,
            unfinished: line.unfinished,
        };
        let index = slot(line.stream);
        if let Some(group) = &mut self.groups[index] {
            let full = group.line.message.len() >= self.max_line_bytes;
            if let Some(phase) = self.rule.next(group.phase, &line.message).filter(|_| !full) {
                append(group, &line, self.max_line_bytes);
                group.phase = phase;
                group.last_line_at = now;
                return out.push(self.resume_point());
            }
        }
        let previous = self.groups[index].take();
        let phase = self.rule.start(&line.message);
        self.groups[index] = Some(Group {
            line,
            phase,
            lines: 1,
            last_line_at: now,
        });
        if let Some(previous) = previous {
            self.emit(previous, out);
        }
        if phase == Phase::Complete {
            self.ship(index, out);
        } else {
            out.push(self.resume_point());
        }
    }

    fn ship(&mut self, index: usize, out: &mut Vec<Merged>) {
        if let Some(group) = self.groups[index].take() {
            self.emit(group, out);
        }
    }

    /// Hands `group` on as one line ending at the current resume point.
    fn emit(&self, group: Group, out: &mut Vec<Merged>) {
        if group.lines > 1 {
            MultilineJoined { lines: group.lines }.emit();
        }
        let mut line = group.line;
        line.end = self.position.end;
        line.end_marker = self.position.end_marker;
        line.unfinished = self.unfinished();
        out.push(Merged::Line(line));
    }

    fn resume_point(&self) -> Merged {
        Merged::Consumed {
            end: self.position.end,
            end_marker: self.position.end_marker,
            unfinished: self.unfinished(),
        }
    }

    /// The merger's unfinished lines plus the groups held, per stream the earliest start.
    fn unfinished(&self) -> Unfinished {
        let mut unfinished = self.position.unfinished;
        for stream in [Stream::Stdout, Stream::Stderr] {
            if let Some(group) = &self.groups[slot(stream)] {
                let start = unfinished
                    .get(stream)
                    .map_or(group.line.start, |s| s.min(group.line.start));
                unfinished.set(stream, Some(start));
            }
        }
        unfinished
    }
}

/// Appends `line` to `group` after a separator, keeping at most `max` bytes; the full length
/// still counts (the cap then marks the record truncated).
fn append(group: &mut Group, line: &MergedLine, max: usize) {
    let message = &mut group.line.message;
    for bytes in [&[LINE_SEPARATOR][..], &line.message] {
        let room = max.saturating_sub(message.len());
        message.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
    group.line.message_len += 1 + line.message_len;
    group.lines += 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::partial::{Chunk, PartialMerger};
    use chrono::DateTime;

    /// A JVM's `printStackTrace` output of an exception with a cause.
    const JAVA_TRACE: &[&str] = &[
        "Exception in thread \"main\" java.lang.IllegalStateException: order 42 not found",
        "\tat com.example.shop.OrderService.load(OrderService.java:57)",
        "\tat com.example.shop.OrderController.get(OrderController.java:31)",
        "\tat java.base/java.lang.Thread.run(Thread.java:1583)",
        "Caused by: java.sql.SQLException: Connection refused",
        "\tat org.postgresql.Driver.connect(Driver.java:285)",
        "\t... 3 more",
    ];

    /// CPython 3.11's traceback of a chained exception.
    const PYTHON_TRACE: &[&str] = &[
        "Traceback (most recent call last):",
        "  File \"/app/db.py\", line 4, in connect",
        "    raise ConnectionError(\"refused\")",
        "ConnectionError: refused",
        "",
        "The above exception was the direct cause of the following exception:",
        "",
        "Traceback (most recent call last):",
        "  File \"/app/main.py\", line 9, in <module>",
        "    total = 1 / count",
        "            ~~^~~~~~~",
        "RuntimeError: database unavailable",
    ];

    /// The Go runtime's output of an unrecovered panic in an HTTP handler.
    const GO_PANIC: &[&str] = &[
        "panic: runtime error: index out of range [5] with length 3",
        "",
        "goroutine 18 [running]:",
        "main.(*Server).lookup(0xc0000a6000, {0x6b3e40, 0x5})",
        "\t/app/server.go:42 +0x1d4",
        "net/http.HandlerFunc.ServeHTTP(0xc0001b4000?, {0x7a1c28?, 0xc0001c0000?}, 0x0?)",
        "\t/usr/local/go/src/net/http/server.go:2166 +0x29",
        "created by net/http.(*Server).Serve in goroutine 1",
        "\t/usr/local/go/src/net/http/server.go:3285 +0x4b4",
    ];

    /// Feeds whole lines and CRI chunks through a merger and a joiner, as the tailer does.
    struct Rig {
        merger: PartialMerger,
        joiner: MultilineJoiner,
        offset: u64,
        out: Vec<Merged>,
        now: Instant,
    }

    impl Rig {
        fn new(rule: MultilineRule) -> Self {
            Self::with_cap(rule, 1 << 20)
        }

        fn with_cap(rule: MultilineRule, max: usize) -> Self {
            Self {
                merger: PartialMerger::new(max, Duration::from_secs(5)),
                joiner: MultilineJoiner::new(Arc::new(rule), max, MULTILINE_TIMEOUT),
                offset: 0,
                out: Vec::new(),
                now: Instant::now(),
            }
        }

        /// One log-file entry of `stream` (`partial`: a CRI `P` chunk); returns its start.
        fn entry(&mut self, stream: Stream, partial: bool, text: &str) -> u64 {
            let start = self.offset;
            self.offset += text.len() as u64 + 40;
            let chunk = Chunk {
                start,
                end: self.offset,
                end_marker: self.offset,
                timestamp: DateTime::from_timestamp(1_700_000_000, 0).expect("valid time"),
                stream,
                partial,
                message: text.as_bytes(),
                message_len: text.len() as u64,
            };
            let from = self.out.len();
            self.merger.push(chunk, self.now, &mut self.out);
            self.joiner.process(&mut self.out, from, self.now);
            start
        }

        fn lines(&mut self, stream: Stream, lines: &[&str]) {
            for line in lines {
                self.entry(stream, false, line);
            }
        }

        fn shipped(&self) -> Vec<(Stream, String)> {
            self.out
                .iter()
                .filter_map(|merged| match merged {
                    Merged::Line(line) => Some((
                        line.stream,
                        String::from_utf8_lossy(&line.message).into_owned(),
                    )),
                    Merged::Consumed { .. } => None,
                })
                .collect()
        }

        fn shipped_text(&self) -> Vec<String> {
            self.shipped().into_iter().map(|(_, text)| text).collect()
        }
    }

    #[test]
    fn a_java_stack_trace_becomes_one_record_and_the_next_log_line_another() {
        let mut rig = Rig::new(MultilineRule::Java);
        rig.lines(Stream::Stdout, &["INFO starting"]);
        rig.lines(Stream::Stdout, JAVA_TRACE);
        assert_eq!(rig.shipped_text(), ["INFO starting"]);
        rig.lines(Stream::Stdout, &["INFO next request"]);
        assert_eq!(
            rig.shipped_text(),
            ["INFO starting".to_owned(), JAVA_TRACE.join("\n")]
        );
        assert!(
            rig.joiner.has_pending(),
            "the last line waits for a continuation"
        );
    }

    #[test]
    fn a_chained_python_traceback_is_one_record_and_plain_lines_are_not_held() {
        let mut rig = Rig::new(MultilineRule::Python);
        rig.lines(Stream::Stderr, &["worker 3 started"]);
        assert_eq!(rig.shipped_text(), ["worker 3 started"], "shipped at once");
        rig.lines(Stream::Stderr, PYTHON_TRACE);
        rig.lines(Stream::Stderr, &["worker 3 stopped"]);
        assert_eq!(
            rig.shipped_text(),
            [
                "worker 3 started".to_owned(),
                PYTHON_TRACE.join("\n"),
                "worker 3 stopped".to_owned()
            ]
        );
    }

    #[test]
    fn a_go_panic_with_its_goroutine_dump_is_one_record() {
        let mut rig = Rig::new(MultilineRule::Go);
        rig.lines(Stream::Stderr, &["2024/05/01 12:00:00 listening on :8080"]);
        rig.lines(Stream::Stderr, GO_PANIC);
        rig.joiner.flush(&mut rig.out);
        assert_eq!(
            rig.shipped_text(),
            [
                "2024/05/01 12:00:00 listening on :8080".to_owned(),
                GO_PANIC.join("\n")
            ]
        );
    }

    #[test]
    fn start_regex_starts_a_record_at_each_matching_line() {
        let rule = MultilineRule::start_regex(r"^\d{4}-\d{2}-\d{2} ").expect("valid");
        let mut rig = Rig::new(rule);
        rig.lines(
            Stream::Stdout,
            &[
                "2024-05-01 12:00:00 ERROR query failed:",
                "  SELECT * FROM orders",
                "  WHERE id = 42",
                "2024-05-01 12:00:01 INFO retrying",
            ],
        );
        assert_eq!(
            rig.shipped_text(),
            ["2024-05-01 12:00:00 ERROR query failed:\n  SELECT * FROM orders\n  WHERE id = 42"]
        );
    }

    #[test]
    fn a_trace_with_split_lines_and_the_other_stream_between_them_stays_whole() {
        let mut rig = Rig::new(MultilineRule::Java);
        rig.entry(Stream::Stdout, false, JAVA_TRACE[0]);
        rig.entry(
            Stream::Stdout,
            true,
            "\tat com.example.shop.OrderService.lo",
        );
        rig.entry(Stream::Stderr, false, "GC pause 3ms");
        rig.entry(Stream::Stdout, false, "ad(OrderService.java:57)");
        rig.entry(Stream::Stderr, false, "GC pause 2ms");
        rig.lines(Stream::Stdout, &JAVA_TRACE[2..]);
        rig.lines(Stream::Stdout, &["INFO next"]);
        rig.joiner.flush(&mut rig.out);
        assert_eq!(
            rig.shipped(),
            [
                (Stream::Stderr, "GC pause 3ms".to_owned()),
                (Stream::Stdout, JAVA_TRACE.join("\n")),
                (Stream::Stderr, "GC pause 2ms".to_owned()),
                (Stream::Stdout, "INFO next".to_owned()),
            ]
        );
    }

    #[test]
    fn resume_points_never_pass_the_start_of_a_held_record() {
        let mut rig = Rig::new(MultilineRule::Java);
        let trace_start = rig.entry(Stream::Stdout, false, JAVA_TRACE[0]);
        rig.entry(Stream::Stdout, false, JAVA_TRACE[1]);
        rig.entry(Stream::Stderr, false, "other stream");
        let held_until = rig.out.len();
        let next_start = rig.entry(Stream::Stdout, false, "INFO next");
        for merged in &rig.out[..held_until] {
            let unfinished = match merged {
                Merged::Line(line) => line.unfinished,
                Merged::Consumed { unfinished, .. } => *unfinished,
            };
            assert_eq!(unfinished.stdout, Some(trace_start), "{merged:?}");
        }
        let Some(Merged::Line(trace)) = rig
            .out
            .iter()
            .find(|m| matches!(m, Merged::Line(l) if l.stream == Stream::Stdout))
        else {
            panic!("the trace was shipped");
        };
        assert_eq!(trace.start, trace_start);
        assert_eq!(trace.end, rig.offset, "ends where the next record was read");
        assert_eq!(
            trace.unfinished.stdout,
            Some(next_start),
            "the next record is still held"
        );
    }

    #[test]
    fn a_trailing_trace_is_shipped_after_the_timeout() {
        let mut rig = Rig::new(MultilineRule::Java);
        rig.lines(Stream::Stdout, &JAVA_TRACE[..3]);
        let deadline = rig.joiner.deadline().expect("a record is held");
        assert_eq!(deadline, rig.now + MULTILINE_TIMEOUT);
        rig.joiner
            .flush_expired(deadline - Duration::from_millis(1), &mut rig.out);
        assert!(rig.shipped().is_empty());
        rig.joiner.flush_expired(deadline, &mut rig.out);
        assert_eq!(rig.shipped_text(), [JAVA_TRACE[..3].join("\n")]);
        assert!(!rig.joiner.has_pending());
        let Some(Merged::Line(line)) = rig.out.last() else {
            panic!("a line");
        };
        assert_eq!(line.unfinished, Unfinished::NONE);
        assert_eq!(line.end, rig.offset);
    }

    #[test]
    fn a_record_stops_growing_at_the_line_cap_and_counts_its_full_length() {
        let mut rig = Rig::with_cap(MultilineRule::Java, 100);
        let at_line = "\tat com.example.Deep.recurse(Deep.java:10)";
        rig.entry(Stream::Stdout, false, "java.lang.StackOverflowError");
        for _ in 0..2 {
            rig.entry(Stream::Stdout, false, at_line);
        }
        rig.entry(Stream::Stdout, false, at_line);
        rig.joiner.flush(&mut rig.out);
        let lines: Vec<&MergedLine> = rig
            .out
            .iter()
            .filter_map(|m| match m {
                Merged::Line(line) => Some(line),
                Merged::Consumed { .. } => None,
            })
            .collect();
        assert_eq!(lines.len(), 2, "the line after the cap starts a new record");
        assert_eq!(lines[0].message.len(), 100);
        assert_eq!(lines[0].message_len, 28 + 2 * (1 + at_line.len() as u64));
    }
}
