//! Property tests of the agent's parsing entry points, the stable-Rust stand-in for fuzzing
//! (cargo-fuzz needs nightly; see `docs/reliability.md`): the CRI and docker json-file parsers,
//! the RFC 3339 timestamp parser, the partial-line merger, the whole split → parse → merge →
//! finish path of one file, and the stdin NDJSON source.
//!
//! Properties: nothing panics on arbitrary input; messages stay within the line cap; byte ranges
//! cover the input contiguously; and what `logrelay-testgen` encodes (CRI with 16 KiB `P` chunks,
//! docker json-file with 16 KiB parts) comes out as the same message bytes.
//!
//! Default case counts keep the whole file to a few seconds in debug; `PROPTEST_CASES=N` raises
//! every property to N cases (see `docs/reliability.md` for a longer campaign).

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use logrelay_agent::internal_events::parse::PartialFlushReason;
use logrelay_agent::parse::partial::{
    Chunk, Merged, MergedLine, PARTIAL_FLUSH_TIMEOUT, PartialMerger,
};
use logrelay_agent::parse::timestamp::parse_rfc3339;
use logrelay_agent::parse::{DEFAULT_MAX_LINE_BYTES, Format, Message, cri, docker, finish_message};
use logrelay_agent::source_event::{FileId, SourceEvent, Unfinished, offset_marker};
use logrelay_agent::stdin;
use logrelay_agent::tail::path::{PodLogPath, UNKNOWN};
use logrelay_agent::tail::reader::{LineSplitter, SplitItem};
use logrelay_agent::tail::{LINE_FRAMING_BYTES, RecordContext, from_path};
use logrelay_common::record::{LogRecord, Stream};
use logrelay_testgen::cri::MAX_CHUNK_BYTES;
use proptest::collection::vec;
use proptest::prelude::*;
use std::convert::Infallible;
use std::time::Instant;

/// `cases` unless `PROPTEST_CASES` is set (then proptest's own default reads it).
fn cases(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Any instant a runtime could write (years 0000–9999), with nanoseconds.
fn timestamp() -> impl Strategy<Value = DateTime<Utc>> {
    (-62_167_219_200i64..253_402_300_799, 0u32..1_000_000_000).prop_map(|(secs, nanos)| {
        DateTime::from_timestamp(secs, nanos).expect("seconds are in chrono's range")
    })
}

fn stream() -> impl Strategy<Value = Stream> {
    prop_oneof![Just(Stream::Stdout), Just(Stream::Stderr)]
}

/// Lengths around the runtimes' 16 KiB split points, and anything below three chunks.
fn long_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(MAX_CHUNK_BYTES - 1),
        Just(MAX_CHUNK_BYTES),
        Just(MAX_CHUNK_BYTES + 1),
        Just(2 * MAX_CHUNK_BYTES),
        Just(2 * MAX_CHUNK_BYTES + 1),
        0..3 * MAX_CHUNK_BYTES,
    ]
}

/// A long line of multi-byte text cut to `len` bytes (so chunk edges fall inside characters).
fn long_text(len: usize, unit: &str) -> String {
    let mut text = unit.repeat(len / unit.len().max(1) + 1);
    while text.len() > len {
        text.pop();
    }
    text
}

/// One logical line's text (no newline): short unicode, hostile ASCII, or long multi-byte text.
fn text_message() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[^\n]{0,80}",
        2 => "[ {}\"\\\\:/%~.PF\r\t<>&\u{2028}\u{0}a-z]{0,40}",
        1 => (long_len(), "[^\n]{1,4}").prop_map(|(len, unit)| long_text(len, &unit)),
    ]
}

/// One CRI message: any bytes but `\n` (CRI carries raw bytes), or text.
fn cri_message() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => vec(any::<u8>(), 0..120).prop_map(|mut bytes| {
            bytes.iter_mut().filter(|b| **b == b'\n').for_each(|b| *b = b' ');
            bytes
        }),
        3 => text_message().prop_map(String::into_bytes),
    ]
}

/// Read sizes the tailer might see (a slow writer, a 64 KiB read, one byte at a time).
fn read_sizes() -> impl Strategy<Value = Vec<usize>> {
    vec(prop_oneof![1usize..8, 8usize..4096, Just(64 * 1024)], 1..6)
}

// ---------------------------------------------------------------------------------------------
// The per-file path, assembled from the public pieces the way `tail/file.rs` does
// ---------------------------------------------------------------------------------------------

/// What leaves one file's line pipeline.
#[derive(Debug)]
enum Out {
    Line {
        start: u64,
        end: u64,
        end_marker: u64,
        unfinished: Unfinished,
        timestamp: DateTime<Utc>,
        stream: Stream,
        message: Message,
    },
    Consumed {
        end: u64,
        end_marker: u64,
        unfinished: Unfinished,
    },
}

/// Split → detect/parse → merge → finish, as `tail::file::LinePipeline` and its emitter do it.
struct FilePipeline {
    format: Option<Format>,
    merger: PartialMerger,
    scratch: Vec<Merged>,
    max_line_bytes: usize,
    out: Vec<Out>,
}

impl FilePipeline {
    fn new(max_line_bytes: usize) -> Self {
        Self {
            format: None,
            merger: PartialMerger::new(max_line_bytes, PARTIAL_FLUSH_TIMEOUT),
            scratch: Vec::new(),
            max_line_bytes,
            out: Vec::new(),
        }
    }

    fn take(&mut self, item: SplitItem<'_>) {
        let now = Instant::now();
        match item {
            SplitItem::Hole {
                end, end_marker, ..
            } => self
                .merger
                .push_consumed(end, end_marker, &mut self.scratch),
            SplitItem::Line(raw) if raw.bytes.is_empty() && raw.cut_bytes == 0 => self
                .merger
                .push_consumed(raw.end, raw.end_marker, &mut self.scratch),
            SplitItem::Line(raw) => {
                let format = *self.format.get_or_insert_with(|| Format::detect(raw.bytes));
                match format.parse(raw.bytes) {
                    Ok(parsed) => self.merger.push(
                        Chunk {
                            start: raw.start,
                            end: raw.end,
                            end_marker: raw.end_marker,
                            timestamp: parsed.timestamp,
                            stream: parsed.stream,
                            partial: parsed.partial,
                            message: &parsed.message,
                            message_len: parsed.message.len() as u64 + raw.cut_bytes,
                        },
                        now,
                        &mut self.scratch,
                    ),
                    Err(_) => self.merger.push_standalone(
                        MergedLine {
                            start: raw.start,
                            end: raw.end,
                            end_marker: raw.end_marker,
                            unfinished: Unfinished::NONE,
                            timestamp: Utc::now(),
                            stream: Stream::Stdout,
                            message: raw.bytes.to_vec(),
                            message_len: raw.bytes.len() as u64 + raw.cut_bytes,
                        },
                        &mut self.scratch,
                    ),
                }
            }
        }
        self.drain();
    }

    fn drain(&mut self) {
        for merged in self.scratch.drain(..) {
            self.out.push(match merged {
                Merged::Line(line) => Out::Line {
                    start: line.start,
                    end: line.end,
                    end_marker: line.end_marker,
                    unfinished: line.unfinished,
                    timestamp: line.timestamp,
                    stream: line.stream,
                    message: finish_message(line.message, line.message_len, self.max_line_bytes),
                },
                Merged::Consumed {
                    end,
                    end_marker,
                    unfinished,
                } => Out::Consumed {
                    end,
                    end_marker,
                    unfinished,
                },
            });
        }
    }
}

/// Runs a whole file through the pipeline in reads of `read_sizes` (cycled), then ends it.
fn run_file(file: &[u8], read_sizes: &[usize], max_line_bytes: usize) -> Vec<Out> {
    let mut splitter = LineSplitter::new(0, b"", max_line_bytes.saturating_add(LINE_FRAMING_BYTES));
    let mut pipeline = FilePipeline::new(max_line_bytes);
    let mut sizes = read_sizes.iter().copied().cycle();
    let mut rest = file;
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(4096).clamp(1, rest.len());
        splitter
            .feed(&rest[..n], &mut |item| {
                pipeline.take(item);
                Ok::<(), Infallible>(())
            })
            .expect("infallible");
        rest = &rest[n..];
    }
    splitter
        .finish(&mut |item| {
            pipeline.take(item);
            Ok::<(), Infallible>(())
        })
        .expect("infallible");
    pipeline
        .merger
        .flush(PartialFlushReason::EndOfFile, &mut pipeline.scratch);
    pipeline.drain();
    assert!(
        !pipeline.merger.has_pending(),
        "nothing pending after end of file"
    );
    pipeline.out
}

/// Checks that the output covers `file` contiguously, with the right markers, and that each
/// message respects the cap (lossy repair may triple the cap: one byte → U+FFFD).
fn check_coverage(file: &[u8], out: &[Out], max_line_bytes: usize) -> Result<(), TestCaseError> {
    let mut covered = 0u64;
    let mut pending = Unfinished::NONE;
    for event in out {
        let (end, end_marker, unfinished) = match event {
            Out::Line {
                start,
                end,
                end_marker,
                unfinished,
                message,
                ..
            } => {
                prop_assert!(
                    *start >= covered || [pending.stdout, pending.stderr].contains(&Some(*start)),
                    "a line starts at the previous resume point or at a line unfinished there"
                );
                prop_assert!(message.text.len() <= 3 * max_line_bytes);
                if let Some(original) = message.truncated_from {
                    prop_assert!(original > max_line_bytes as u64);
                }
                (*end, *end_marker, *unfinished)
            }
            Out::Consumed {
                end,
                end_marker,
                unfinished,
            } => (*end, *end_marker, *unfinished),
        };
        prop_assert!(end >= covered, "resume points move forward");
        prop_assert_eq!(end_marker, offset_marker(&file[..end as usize]));
        covered = end;
        pending = unfinished;
    }
    prop_assert!(pending.is_empty(), "nothing unfinished after the end");
    prop_assert_eq!(
        covered,
        file.len() as u64,
        "every byte is covered by an event"
    );
    Ok(())
}

fn lines(out: &[Out]) -> Vec<(DateTime<Utc>, Stream, &Message)> {
    out.iter()
        .filter_map(|event| match event {
            Out::Line {
                timestamp,
                stream,
                message,
                ..
            } => Some((*timestamp, *stream, message)),
            Out::Consumed { .. } => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cases(256))]

    /// The CRI parser never panics, and a line it accepts carries its message as the line's tail.
    #[test]
    fn cri_parser_never_panics_and_keeps_the_message_bytes(
        line in prop_oneof![
            vec(any::<u8>(), 0..200),
            (
                prop_oneof![Just("2024-01-01T00:00:00Z".to_owned()), "[0-9T:.Z+-]{0,40}", "\\PC{0,10}"],
                prop_oneof![Just("stdout"), Just("stderr"), Just(""), Just("stdin")],
                prop_oneof![Just("F"), Just("P"), Just("P:x"), Just(""), Just("FP")],
                vec(any::<u8>(), 0..40),
                prop_oneof![Just(" "), Just("  "), Just("")],
            ).prop_map(|(time, stream, tag, message, sep)| {
                let mut line = format!("{time}{sep}{stream} {tag} ").into_bytes();
                line.extend_from_slice(&message);
                line
            }),
        ],
    ) {
        if let Ok(parsed) = cri::parse(&line) {
            prop_assert!(line.ends_with(&parsed.message));
            let tags = line.split(|b| *b == b' ').nth(2).expect("an accepted line has tags");
            prop_assert_eq!(parsed.partial, tags.starts_with(b"P"));
        }
        let _ = Format::detect(&line).parse(&line);
    }

    /// The docker json-file parser never panics on bytes or on JSON of the wrong shape; an entry
    /// it accepts gives `log` without its newline, partial exactly when the newline is missing.
    #[test]
    fn docker_parser_never_panics_and_reads_log_exactly(
        raw in vec(any::<u8>(), 0..200),
        log in prop_oneof![
            "[^\u{0}]{0,30}".prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
            any::<i64>().prop_map(serde_json::Value::from),
            Just(serde_json::json!({"nested": [1, 2]})),
        ],
        stream in prop_oneof![Just("stdout"), Just("stderr"), Just("tty"), Just("")],
        time in prop_oneof![Just("2024-01-01T00:00:00.5Z".to_owned()), "[0-9T:.Z+-]{0,35}"],
    ) {
        let _ = docker::parse(&raw);
        let entry = serde_json::json!({"log": log, "stream": stream, "time": time, "attrs": {"a": "b"}});
        let line = serde_json::to_vec(&entry).expect("json");
        if let Ok(parsed) = docker::parse(&line) {
            let text = log.as_str().expect("accepted entries have a string log");
            prop_assert_eq!(parsed.partial, !text.ends_with('\n'));
            prop_assert_eq!(&*parsed.message, text.strip_suffix('\n').unwrap_or(text).as_bytes());
        }
    }

    /// The timestamp parser never panics, and reads back what Go's RFC3339Nano writes, in UTC or
    /// with an offset.
    #[test]
    fn timestamps_never_panic_and_round_trip(
        raw in prop_oneof![vec(any::<u8>(), 0..40), "[0-9T:.Zz+-]{18,40}".prop_map(String::into_bytes)],
        ts in (-62_167_132_800i64..253_402_214_399, 0u32..1_000_000_000)
            .prop_map(|(s, n)| DateTime::from_timestamp(s, n).expect("in range")),
        offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59i32),
    ) {
        let _ = parse_rfc3339(&raw);
        let utc = logrelay_testgen::cri::format_time(&ts);
        prop_assert_eq!(parse_rfc3339(utc.as_bytes()), Some(ts));
        let offset = FixedOffset::east_opt(offset_minutes * 60).expect("valid offset");
        let local = ts.with_timezone(&offset).to_rfc3339_opts(SecondsFormat::AutoSi, false);
        prop_assert_eq!(parse_rfc3339(local.as_bytes()), Some(ts));
    }
}

proptest! {
    #![proptest_config(cases(256))]

    /// The merger, fed any sequence of chunks, standalone lines and blank bytes, keeps at most the
    /// cap of each message, loses no byte count, never lets a resume point pass an unfinished
    /// line, and merges exactly the runs the module documentation describes (per stream, `P`…
    /// then `F`; neither the other stream nor a standalone line interrupts a run).
    #[test]
    fn merger_merges_runs_and_conserves_lengths(
        items in vec(
            prop_oneof![
                6 => (any::<bool>(), any::<bool>(), vec(any::<u8>(), 0..24), 0u64..4)
                    .prop_map(|(stderr, partial, message, cut)| Item::Chunk { stderr, partial, message, cut }),
                1 => vec(any::<u8>(), 0..10).prop_map(Item::Standalone),
                1 => Just(Item::Blank),
            ],
            0..40,
        ),
        cap in 0usize..48,
    ) {
        let mut merger = PartialMerger::new(cap, PARTIAL_FLUSH_TIMEOUT);
        let mut out = Vec::new();
        let mut offset = 0u64;
        let now = Instant::now();
        let mut total_len = 0u64;
        // The documented model: one pending run per stream; nothing else interrupts it.
        let mut pending: [Option<(u64, Vec<u8>)>; 2] = [None, None];
        let mut expected: Vec<Vec<u8>> = Vec::new();
        for item in &items {
            let start = offset;
            match item {
                Item::Chunk { stderr, partial, message, cut } => {
                    offset += message.len() as u64 + 1;
                    total_len += message.len() as u64 + cut;
                    let stream = if *stderr { Stream::Stderr } else { Stream::Stdout };
                    merger.push(Chunk {
                        start, end: offset, end_marker: offset, timestamp: Utc::now(), stream,
                        partial: *partial, message, message_len: message.len() as u64 + cut,
                    }, now, &mut out);
                    let slot = &mut pending[usize::from(*stderr)];
                    let run = slot.get_or_insert_with(|| (start, Vec::new()));
                    run.1.extend_from_slice(message);
                    if !*partial {
                        expected.extend(slot.take().map(|(_, run)| run));
                    }
                }
                Item::Standalone(message) => {
                    offset += message.len() as u64 + 1;
                    total_len += message.len() as u64;
                    merger.push_standalone(MergedLine {
                        start, end: offset, end_marker: offset, unfinished: Unfinished::NONE, timestamp: Utc::now(),
                        stream: Stream::Stdout, message: message.clone(), message_len: message.len() as u64,
                    }, &mut out);
                    expected.push(message.clone());
                }
                Item::Blank => {
                    offset += 1;
                    merger.push_consumed(offset, offset, &mut out);
                }
            }
        }
        merger.flush(PartialFlushReason::EndOfFile, &mut out);
        let mut left: Vec<(u64, Vec<u8>)> = pending.into_iter().flatten().collect();
        left.sort_by_key(|(start, _)| *start);
        expected.extend(left.into_iter().map(|(_, run)| run));
        prop_assert!(!merger.has_pending());

        let mut covered = 0u64;
        let mut unfinished = Unfinished::NONE;
        let mut merged_len = 0u64;
        let mut messages = Vec::new();
        for event in &out {
            let (end, now_unfinished) = match event {
                Merged::Line(line) => {
                    prop_assert!(
                        line.start >= covered
                            || [unfinished.stdout, unfinished.stderr].contains(&Some(line.start))
                    );
                    prop_assert!(line.message.len() <= cap);
                    merged_len += line.message_len;
                    messages.push(line.message.clone());
                    (line.end, line.unfinished)
                }
                Merged::Consumed { end, unfinished, .. } => (*end, *unfinished),
            };
            prop_assert!(end >= covered, "resume points move forward");
            prop_assert!(now_unfinished.earliest().is_none_or(|start| start < end));
            covered = end;
            unfinished = now_unfinished;
        }
        prop_assert_eq!(covered, offset);
        prop_assert_eq!(merged_len, total_len);
        let expected: Vec<Vec<u8>> = expected.into_iter().map(|mut m| { m.truncate(cap); m }).collect();
        prop_assert_eq!(messages, expected);
    }
}

/// One input of the merger property.
#[derive(Debug, Clone)]
enum Item {
    Chunk {
        stderr: bool,
        partial: bool,
        message: Vec<u8>,
        cut: u64,
    },
    Standalone(Vec<u8>),
    Blank,
}

proptest! {
    #![proptest_config(cases(128))]

    /// CRI as containerd writes it (16 KiB `P` chunks then `F`, cut at byte boundaries) comes out
    /// of split → parse → merge → finish as the same message bytes, stream and time, whatever the
    /// read sizes; ranges and markers cover the file.
    #[test]
    fn cri_lines_round_trip_through_split_and_merge(
        lines in vec((timestamp(), stream(), cri_message()), 1..6),
        sizes in read_sizes(),
    ) {
        let mut file = Vec::new();
        for (ts, stream, message) in &lines {
            logrelay_testgen::cri::encode_line(&mut file, ts, *stream, message);
        }
        let out = run_file(&file, &sizes, DEFAULT_MAX_LINE_BYTES);
        check_coverage(&file, &out, DEFAULT_MAX_LINE_BYTES)?;
        let got = self::lines(&out);
        prop_assert_eq!(got.len(), lines.len());
        for ((ts, stream, message), (got_ts, got_stream, got_message)) in lines.iter().zip(got) {
            prop_assert_eq!(got_ts, *ts);
            prop_assert_eq!(got_stream, *stream);
            prop_assert_eq!(&got_message.text, &String::from_utf8_lossy(message));
            prop_assert_eq!(got_message.truncated_from, None);
        }
    }

    /// Docker json-file (16 KiB parts, Go's HTML escapes) round-trips the same way.
    #[test]
    fn docker_lines_round_trip_through_split_and_merge(
        lines in vec((timestamp(), stream(), text_message()), 1..6),
        sizes in read_sizes(),
    ) {
        let mut file = Vec::new();
        for (ts, stream, message) in &lines {
            logrelay_testgen::docker::encode_line(&mut file, ts, *stream, message);
        }
        let out = run_file(&file, &sizes, DEFAULT_MAX_LINE_BYTES);
        check_coverage(&file, &out, DEFAULT_MAX_LINE_BYTES)?;
        let got = self::lines(&out);
        prop_assert_eq!(got.len(), lines.len());
        for ((ts, stream, message), (got_ts, got_stream, got_message)) in lines.iter().zip(got) {
            prop_assert_eq!(got_ts, *ts);
            prop_assert_eq!(got_stream, *stream);
            prop_assert_eq!(&got_message.text, message);
        }
    }

    /// With a small line cap, a merged line keeps a character-aligned prefix of at most the cap
    /// (dropping at most one cut character), marked with its full length.
    #[test]
    fn capped_lines_keep_a_prefix_and_their_full_length(
        lines in vec((timestamp(), stream(), text_message()), 1..5),
        docker_format in any::<bool>(),
        cap in 1usize..20_000,
        sizes in read_sizes(),
    ) {
        let mut file = Vec::new();
        for (ts, stream, message) in &lines {
            if docker_format {
                logrelay_testgen::docker::encode_line(&mut file, ts, *stream, message);
            } else {
                logrelay_testgen::cri::encode_line(&mut file, ts, *stream, message.as_bytes());
            }
        }
        let out = run_file(&file, &sizes, cap);
        check_coverage(&file, &out, cap)?;
        let got = self::lines(&out);
        prop_assert_eq!(got.len(), lines.len());
        for ((_, _, message), (_, _, got)) in lines.iter().zip(got) {
            if message.len() <= cap {
                prop_assert_eq!(&got.text, message);
                prop_assert_eq!(got.truncated_from, None);
            } else {
                prop_assert!(message.starts_with(got.text.as_str()));
                prop_assert!(got.text.len() <= cap && got.text.len() + 4 > cap);
                prop_assert_eq!(got.truncated_from, Some(message.len() as u64));
            }
        }
    }

    /// Arbitrary bytes in a log file (either format's first byte, binary garbage, blank lines,
    /// no final newline) never panic the path, and every byte is still covered by an event.
    #[test]
    fn arbitrary_file_bytes_are_covered_without_panicking(
        head in prop_oneof![Just(b"{".to_vec()), Just(b"2024-01-01T00:00:00Z stdout P ".to_vec()), Just(Vec::new())],
        body in vec(prop_oneof![4 => any::<u8>(), 1 => Just(b'\n'), 1 => Just(b' ')], 0..600),
        cap in prop_oneof![1usize..64, Just(DEFAULT_MAX_LINE_BYTES)],
        sizes in read_sizes(),
    ) {
        let mut file = head;
        file.extend_from_slice(&body);
        let out = run_file(&file, &sizes, cap);
        check_coverage(&file, &out, cap)?;
    }
}

proptest! {
    #![proptest_config(cases(128))]

    /// Log content never decides the tenant: whatever a container writes (text shaped like a
    /// record that claims another tenant included), the record built for its line carries the
    /// tenant of the file's pod path, and the content only as its message.
    #[test]
    fn log_content_never_changes_the_records_tenant(
        namespace in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?",
        message in prop_oneof![
            text_message(),
            Just(r#"{"customer_id":"victim","cluster_id":"c","application":"a","pod_name":"p"}"#.to_owned()),
            hostile_record().prop_map(|record| serde_json::to_string(&record).expect("json")),
        ],
        docker_format in any::<bool>(),
        ts in timestamp(),
    ) {
        let mut file = Vec::new();
        if docker_format {
            logrelay_testgen::docker::encode_line(&mut file, &ts, Stream::Stdout, &message);
        } else {
            logrelay_testgen::cri::encode_line(&mut file, &ts, Stream::Stdout, message.as_bytes());
        }
        let root = std::path::Path::new("/var/log/pods");
        let pod = PodLogPath::from_path(root, &root.join(format!("{namespace}_api-1_uid-1/main/0.log")));
        let context = RecordContext { cluster_id: "c1".into(), node_name: "n1".into() };
        let out = run_file(&file, &[4096], DEFAULT_MAX_LINE_BYTES);
        let got = self::lines(&out);
        prop_assert_eq!(got.len(), 1);
        let (timestamp, stream, text) = got[0];
        let record = from_path(&pod, &context, timestamp, stream, text.clone());
        prop_assert_eq!(&record.customer_id, &namespace);
        prop_assert_eq!(&record.message, &message);
        prop_assert_eq!(record.pod_name.as_str(), "api-1");
    }
}

proptest! {
    #![proptest_config(cases(12))]

    /// A line the agent keeps whole (up to its line cap) becomes a record the processor reads
    /// under its default line cap, whatever the bytes: JSON escaping of control characters
    /// (`\u0001`: 6 bytes per byte) and lossy repair of invalid bytes (U+FFFD: 3 bytes per byte)
    /// must not push the record over it. Regression: the processor's 4 MiB default skipped (and
    /// counted as `too_long`) records of 1 MiB lines of control characters.
    #[test]
    fn records_of_capped_lines_fit_the_processors_line_cap(
        byte in prop_oneof![Just(0x01u8), Just(0x1f), Just(0xff), Just(b'"'), Just(b'\\'), Just(b'a')],
        len in (DEFAULT_MAX_LINE_BYTES - 16)..=(DEFAULT_MAX_LINE_BYTES + 16),
        labels in 0usize..4,
    ) {
        let root = std::path::Path::new("/var/log/pods");
        let pod = PodLogPath::from_path(root, &root.join("tenant-ns_api-1_uid-1/main/0.log"));
        let context = RecordContext { cluster_id: "c1".into(), node_name: "n1".into() };
        let message = finish_message(vec![byte; len], len as u64, DEFAULT_MAX_LINE_BYTES);
        let mut record = from_path(&pod, &context, Utc::now(), Stream::Stdout, message);
        if let Some(kubernetes) = record.kubernetes.as_mut() {
            for i in 0..labels {
                kubernetes.labels.insert(format!("app.kubernetes.io/l{i}"), "v".repeat(63));
            }
        }
        let line = serde_json::to_vec(&record).expect("json");
        prop_assert!(
            line.len() <= logrelay_common::codec::DEFAULT_MAX_LINE_BYTES,
            "a record of {} bytes is over the processor's {} byte line cap",
            line.len(),
            logrelay_common::codec::DEFAULT_MAX_LINE_BYTES
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The stdin NDJSON source
// ---------------------------------------------------------------------------------------------

/// Runs the stdin source over `input` read `read_size` bytes at a time; returns its events.
fn run_stdin(
    input: &[u8],
    read_size: usize,
    max_line_bytes: usize,
) -> (Vec<SourceEvent>, stdin::StdinSummary) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // Room for every event, so the source never waits for a reader.
        let (sender, mut receiver) = tokio::sync::mpsc::channel(input.len() + 2);
        let reader = tokio::io::BufReader::with_capacity(read_size, input);
        let summary = stdin::run(reader, max_line_bytes, sender)
            .await
            .expect("stdin source runs");
        let mut events = Vec::new();
        while let Some(event) = receiver.recv().await {
            events.push(event);
        }
        (events, summary)
    })
}

/// A record with hostile metadata values (separators, escapes, unicode, control characters).
fn hostile_record() -> impl Strategy<Value = LogRecord> {
    let value = || {
        prop_oneof![
            "\\PC{1,20}",
            "[./%~+ \u{0}\u{7f}a-z-]{1,12}",
            Just("../x".to_owned())
        ]
    };
    (
        timestamp(),
        "[^\n]{0,60}",
        stream(),
        value(),
        value(),
        value(),
        value(),
        value(),
    )
        .prop_map(
            |(timestamp, message, stream, customer_id, cluster_id, application, pod_name, node)| {
                LogRecord {
                    timestamp,
                    message,
                    stream,
                    customer_id,
                    cluster_id,
                    namespace: "ns".into(),
                    application,
                    pod_name,
                    container_name: "c".into(),
                    node_name: node,
                    ingest_timestamp: timestamp,
                    kubernetes: None,
                    extra: serde_json::Map::new(),
                }
            },
        )
}

proptest! {
    #![proptest_config(cases(128))]

    /// Arbitrary stdin bytes never panic the source: events cover the stream contiguously, every
    /// line becomes a record (raw text in `_unknown` when it is not one), messages respect the cap,
    /// and `Closed` comes last.
    #[test]
    fn stdin_covers_arbitrary_input_within_the_cap(
        input in prop_oneof![
            vec(prop_oneof![4 => any::<u8>(), 1 => Just(b'\n')], 0..400),
            vec(prop_oneof![Just(&b"{\"message\":\"m\",\"customer_id\":\"a\"}"[..]), Just(&b"[1]"[..]),
                Just(&b"  "[..]), Just(&b"{\"customer_id\":5}"[..]), Just(&b"\xff\xfe"[..])], 0..12)
                .prop_map(|parts| parts.join(&b'\n')),
        ],
        read_size in prop_oneof![1usize..8, 8usize..512],
        cap in prop_oneof![1usize..40, Just(DEFAULT_MAX_LINE_BYTES)],
    ) {
        let (events, summary) = run_stdin(&input, read_size, cap);
        let closed_last = matches!(events.last(), Some(SourceEvent::Closed { file: FileId::STDIN }));
        prop_assert!(closed_last, "Closed comes last");
        let mut covered = 0u64;
        let mut records = 0u64;
        for event in &events[..events.len() - 1] {
            match event {
                SourceEvent::Line(line) => {
                    prop_assert_eq!(line.start, covered);
                    prop_assert!(line.record.message.len() <= 3 * cap);
                    prop_assert!(!line.record.customer_id.is_empty());
                    prop_assert_eq!(line.end_marker, offset_marker(&input[..line.end as usize]));
                    covered = line.end;
                    records += 1;
                }
                SourceEvent::Consumed { end, .. } => covered = *end,
                SourceEvent::Closed { .. } => prop_assert!(false, "Closed only at the end"),
            }
        }
        prop_assert_eq!(covered, input.len() as u64);
        prop_assert_eq!(summary.bytes, input.len() as u64);
        prop_assert_eq!(summary.lines, records);
    }

    /// A valid record on stdin keeps its tenant and partition values exactly, whatever they hold:
    /// the stdin source never moves a record to another tenant.
    #[test]
    fn stdin_keeps_each_records_customer_id(
        records in vec(hostile_record(), 1..6),
        read_size in 1usize..300,
    ) {
        let mut input = Vec::new();
        for record in &records {
            serde_json::to_writer(&mut input, record).expect("json");
            input.push(b'\n');
        }
        let (events, _) = run_stdin(&input, read_size, DEFAULT_MAX_LINE_BYTES);
        let got: Vec<&LogRecord> = events.iter().filter_map(|event| match event {
            SourceEvent::Line(line) => Some(&line.record),
            _ => None,
        }).collect();
        prop_assert_eq!(got.len(), records.len());
        for (sent, got) in records.iter().zip(got) {
            prop_assert_eq!(&got.customer_id, &sent.customer_id);
            prop_assert_ne!(got.customer_id.as_str(), UNKNOWN);
            prop_assert_eq!(&got.cluster_id, &sent.cluster_id);
            prop_assert_eq!(&got.application, &sent.application);
            prop_assert_eq!(&got.pod_name, &sent.pod_name);
            prop_assert_eq!(&got.message, &sent.message);
        }
    }
}
