//! Scenario tests of the tailer against real files in a temp directory (after Fluent Bit's in_tail
//! list): rotation in its forms, truncation, deletion, partial lines, gzip catch-up, resume, many
//! files, hostile input, fairness and backpressure. Every test checks the invariant: each written
//! line arrives exactly once, in order per writer, with contiguous byte ranges per file.

use super::*;
use crate::checkpoint::{FileCheckpoint, FileRegistry};
use crate::parse::{ORIGINAL_BYTES_FIELD, TRUNCATED_FIELD};
use crate::source_event::{
    FileId, SOURCE_CHANNEL_CAPACITY, SourceEvent, Unfinished, offset_marker,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long a test waits for the tailer before failing.
const WAIT: Duration = Duration::from_secs(30);

/// A running tailer over a temp directory, with its events and metrics collected.
struct Harness {
    _dir: tempfile::TempDir,
    root: PathBuf,
    events: Arc<Mutex<Vec<SourceEvent>>>,
    registry: FileRegistry,
    stopper: Stopper,
    thread: Option<std::thread::JoinHandle<Result<(), TailError>>>,
    collector: Option<tokio::task::JoinHandle<()>>,
    metrics: Snapshotter,
    counters: Mutex<HashMap<String, u64>>,
}

impl Harness {
    /// A temp directory with an empty pods root.
    fn dir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("pods");
        fs::create_dir_all(&root).expect("pods root");
        (dir, root)
    }

    fn start(
        dir: (tempfile::TempDir, PathBuf),
        resume: Vec<FileCheckpoint>,
        configure: impl FnOnce(&mut TailerConfig),
    ) -> Self {
        Self::start_with_capacity(dir, resume, SOURCE_CHANNEL_CAPACITY, configure)
    }

    fn start_with_capacity(
        (dir, root): (tempfile::TempDir, PathBuf),
        resume: Vec<FileCheckpoint>,
        capacity: usize,
        configure: impl FnOnce(&mut TailerConfig),
    ) -> Self {
        let record = RecordContext {
            cluster_id: "c1".into(),
            node_name: "node-1".into(),
        };
        let mut config = TailerConfig::new(&root, record);
        configure(&mut config);
        let (sender, receiver) = mpsc::channel(capacity);
        let registry = FileRegistry::new();
        let tailer = Tailer::new(config, resume, registry.clone(), sender);
        let stopper = tailer.stopper();
        let recorder = DebuggingRecorder::new();
        let metrics = recorder.snapshotter();
        let thread = std::thread::spawn(move || {
            metrics::with_local_recorder(&recorder, || tailer.run_blocking())
        });
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut harness = Self {
            _dir: dir,
            root,
            events,
            registry,
            stopper,
            thread: Some(thread),
            collector: None,
            metrics,
            counters: Mutex::new(HashMap::new()),
        };
        harness.collect(receiver);
        harness
    }

    fn collect(&mut self, mut receiver: mpsc::Receiver<SourceEvent>) {
        let sink = self.events.clone();
        self.collector = Some(tokio::spawn(async move {
            while let Some(event) = receiver.recv().await {
                sink.lock().expect("events lock").push(event);
            }
        }));
    }

    fn events(&self) -> Vec<SourceEvent> {
        self.events.lock().expect("events lock").clone()
    }

    /// Waits until `done` holds for the events so far.
    async fn wait_for(&self, what: &str, done: impl Fn(&[SourceEvent]) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(&self.events.lock().expect("events lock")) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; got {} messages",
                messages(&self.events()).len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until at least `count` lines arrived, then a little longer to catch duplicates.
    async fn wait_lines(&self, count: usize) {
        let is_line = |event: &&SourceEvent| matches!(event, SourceEvent::Line(_));
        self.wait_for(&format!("{count} lines"), |events| {
            events.iter().filter(is_line).count() >= count
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    /// Waits until a counter reaches `value`.
    async fn wait_counter(&self, name: &str, value: u64) {
        let deadline = Instant::now() + WAIT;
        while self.counter(name, &[]) < value {
            assert!(Instant::now() < deadline, "timed out waiting for {name}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A counter's value, summed over label sets containing `labels`.
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let mut counters = self.counters.lock().expect("counters lock");
        for (key, _, _, value) in self.metrics.snapshot().into_vec() {
            if let DebugValue::Counter(delta) = value {
                let key = key.key();
                let mut id = key.name().to_string();
                for label in key.labels() {
                    id.push_str(&format!("|{}={}", label.key(), label.value()));
                }
                *counters.entry(id).or_default() += delta;
            }
        }
        counters
            .iter()
            .filter(|(id, _)| {
                id.split('|').next() == Some(name)
                    && labels
                        .iter()
                        .all(|(k, v)| id.split('|').any(|part| part == format!("{k}={v}")))
            })
            .map(|(_, value)| value)
            .sum()
    }

    /// Stops the tailer and returns every event it sent, keeping the tree for a restart.
    async fn stop_keeping_dir(mut self) -> (Vec<SourceEvent>, (tempfile::TempDir, PathBuf)) {
        let events = self.stop_running().await;
        (events, (self._dir, self.root))
    }

    /// Stops the tailer and returns every event it sent.
    async fn stop(mut self) -> Vec<SourceEvent> {
        self.stop_running().await
    }

    async fn stop_running(&mut self) -> Vec<SourceEvent> {
        self.stopper.stop();
        let thread = self.thread.take().expect("running");
        let result = tokio::task::spawn_blocking(move || thread.join())
            .await
            .expect("join task")
            .expect("no panic");
        result.expect("tailer ends cleanly");
        if let Some(collector) = self.collector.take() {
            collector.await.expect("collector");
        }
        self.events()
    }

    /// A container log directory under the root.
    fn container(&self, namespace: &str, pod: &str, container: &str) -> PathBuf {
        container_dir(&self.root, namespace, pod, container)
    }
}

fn container_dir(root: &Path, namespace: &str, pod: &str, container: &str) -> PathBuf {
    let dir = root
        .join(format!("{namespace}_{pod}_uid-{pod}"))
        .join(container);
    fs::create_dir_all(&dir).expect("container dir");
    dir
}

/// One CRI line with a timestamp unique to `seq`.
fn cri(seq: u64, stream: &str, tag: &str, message: &str) -> String {
    format!(
        "2024-01-01T00:00:{:02}.{:09}Z {stream} {tag} {message}\n",
        (seq / 1_000_000_000) % 60,
        seq % 1_000_000_000
    )
}

/// `count` CRI lines `<prefix>-<n>` (stdout), starting at sequence `first`.
fn cri_lines(prefix: &str, first: u64, count: u64) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut expected = Vec::new();
    for n in first..first + count {
        let message = format!("{prefix}-{n:05}");
        text.push_str(&cri(n, "stdout", "F", &message));
        expected.push(message);
    }
    (text, expected)
}

fn append(path: &Path, text: &str) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    file.write_all(text.as_bytes()).expect("append");
}

fn messages(events: &[SourceEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            SourceEvent::Line(line) => Some(line.record.message.clone()),
            _ => None,
        })
        .collect()
}

/// Every expected message arrives exactly once and in its sequence's order; nothing else arrives.
fn assert_exactly_once(events: &[SourceEvent], sequences: &[&[String]]) {
    let got = messages(events);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for message in &got {
        *counts.entry(message.as_str()).or_default() += 1;
    }
    let expected_total: usize = sequences.iter().map(|sequence| sequence.len()).sum();
    for sequence in sequences {
        for message in *sequence {
            assert_eq!(
                counts.get(message.as_str()),
                Some(&1),
                "{message:?} must arrive exactly once"
            );
        }
        let members: std::collections::HashSet<&String> = sequence.iter().collect();
        let order: Vec<&String> = got
            .iter()
            .filter(|message| members.contains(message))
            .collect();
        assert!(
            order.iter().copied().eq(sequence.iter()),
            "messages out of order"
        );
    }
    assert_eq!(
        got.len(),
        expected_total,
        "no message may be invented: {:?}",
        &got[..got.len().min(20)]
    );
    assert_ranges_contiguous(events);
}

/// Per file: resume points never go backwards, a line starts where the previous event's resume
/// point ends or at one of its unfinished lines, and nothing comes after Closed.
fn assert_ranges_contiguous(events: &[SourceEvent]) {
    let mut last: HashMap<FileId, (u64, Unfinished)> = HashMap::new();
    let mut closed: Vec<FileId> = Vec::new();
    for event in events {
        let file = event.file();
        assert!(
            !closed.contains(&file),
            "{file:?} sent an event after Closed"
        );
        let (end, unfinished) = match event {
            SourceEvent::Line(line) => {
                let (previous, pending) = last.get(&file).copied().unwrap_or_default();
                let starts_a_pending_line =
                    [pending.stdout, pending.stderr].contains(&Some(line.start));
                assert!(
                    line.start >= previous || starts_a_pending_line,
                    "{file:?}: line at {} starts before the previous resume point {previous} \
                     ({pending:?})",
                    line.start
                );
                assert!(line.end > line.start, "{file:?}: empty range");
                (line.end, line.unfinished)
            }
            SourceEvent::Consumed {
                end, unfinished, ..
            } => (*end, *unfinished),
            SourceEvent::Closed { .. } => {
                closed.push(file);
                continue;
            }
        };
        let (previous, _) = last.get(&file).copied().unwrap_or_default();
        assert!(end >= previous, "{file:?}: resume point went backwards");
        assert!(
            unfinished.earliest().is_none_or(|start| start < end),
            "{file:?}: unfinished line after its resume point"
        );
        last.insert(file, (end, unfinished));
    }
}

fn closed_files(events: &[SourceEvent]) -> Vec<FileId> {
    events
        .iter()
        .filter_map(|event| match event {
            SourceEvent::Closed { file } => Some(*file),
            _ => None,
        })
        .collect()
}

fn checkpoint_at(path: &Path, offset: u64) -> FileCheckpoint {
    let content = fs::read(path).expect("read file");
    let meta = fs::metadata(path).expect("stat");
    FileCheckpoint {
        dev: meta.dev(),
        inode: meta.ino(),
        fingerprint: identity::fingerprint(&content).expect("has a first line"),
        path: path.to_path_buf(),
        offset,
        offset_marker: offset_marker(&content[..offset as usize]),
        ..FileCheckpoint::default()
    }
}

fn gzip(path: &Path) -> PathBuf {
    let target = PathBuf::from(format!("{}.gz", path.display()));
    let tmp = PathBuf::from(format!("{}.gz.tmp", path.display()));
    let mut encoder = flate2::write::GzEncoder::new(
        File::create(&tmp).expect("create"),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(&fs::read(path).expect("read"))
        .expect("compress");
    encoder.finish().expect("finish");
    fs::rename(&tmp, &target).expect("rename into place");
    fs::remove_file(path).expect("remove plain");
    target
}

#[tokio::test]
async fn rename_rotation_with_writes_to_both_files_loses_nothing() {
    let tail = Harness::start(Harness::dir(), Vec::new(), |_| {});
    let dir = tail.container("shop", "api-1", "server");
    let live = dir.join("0.log");
    let (first, first_expected) = cri_lines("gen1", 0, 100);
    let mut stale_writer = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&live)
        .expect("open");
    stale_writer.write_all(first.as_bytes()).expect("write");
    let rotated = dir.join("0.log.20240101-000000");
    fs::rename(&live, &rotated).expect("rotate");
    // The runtime keeps writing to the renamed file until it reopens, then writes to a new 0.log.
    let (late, late_expected) = cri_lines("gen1", 100, 50);
    stale_writer.write_all(late.as_bytes()).expect("write");
    let (second, second_expected) = cri_lines("gen2", 0, 100);
    append(&live, &second);
    let (later, later_expected) = cri_lines("gen1", 150, 10);
    stale_writer.write_all(later.as_bytes()).expect("write");
    tail.wait_lines(260).await;
    let rotations = tail.counter("logrelay_agent_rotations_total", &[]);
    let registered_paths: Vec<PathBuf> = (1..10)
        .filter_map(|id| tail.registry.get(FileId(id)))
        .map(|file| file.path)
        .collect();
    let events = tail.stop().await;
    let gen1: Vec<String> = [first_expected, late_expected, later_expected].concat();
    assert_exactly_once(&events, &[&gen1, &second_expected]);
    assert!(
        registered_paths.contains(&rotated) && registered_paths.contains(&live),
        "{registered_paths:?}"
    );
    // Whether the tailer saw 0.log before the rename is a race; if it did, the rotation counts.
    assert!(rotations <= 1);
    let line = events.iter().find_map(|event| match event {
        SourceEvent::Line(line) => Some(line.clone()),
        _ => None,
    });
    let record = line.expect("a line").record;
    assert_eq!(
        (
            record.namespace.as_str(),
            record.pod_name.as_str(),
            record.container_name.as_str()
        ),
        ("shop", "api-1", "server")
    );
    assert_eq!(
        (record.cluster_id.as_str(), record.node_name.as_str()),
        ("c1", "node-1")
    );
    assert_eq!(
        record.kubernetes.and_then(|k| k.pod_uid).as_deref(),
        Some("uid-api-1")
    );
}

#[tokio::test]
async fn repeated_rotation_reads_every_generation_and_closes_deleted_ones() {
    let tail = Harness::start(Harness::dir(), Vec::new(), |_| {});
    let dir = tail.container("ns", "busy", "app");
    let live = dir.join("0.log");
    let mut generations = Vec::new();
    for generation in 0..6u64 {
        let (text, lines) = cri_lines(&format!("g{generation}"), generation * 1000, 40);
        append(&live, &text);
        generations.push(lines);
        if generation < 5 {
            // Each generation is read while live, so every rename is seen as a rotation.
            tail.wait_for("the generation", |events| {
                messages(events).len() == 40 * (generation as usize + 1)
            })
            .await;
            fs::rename(&live, dir.join(format!("0.log.2024010{generation}-000000")))
                .expect("rotate");
        }
    }
    tail.wait_lines(6 * 40).await;
    // The kubelet deletes old rotated files; the tailer drains and closes them.
    for generation in 0..5 {
        fs::remove_file(dir.join(format!("0.log.2024010{generation}-000000"))).expect("delete");
    }
    tail.wait_for("5 closed files", |events| closed_files(events).len() == 5)
        .await;
    let rotations = tail.counter("logrelay_agent_rotations_total", &[]);
    let events = tail.stop().await;
    let refs: Vec<&[String]> = generations.iter().map(Vec::as_slice).collect();
    assert_exactly_once(&events, &refs);
    assert_eq!(rotations, 5);
}

#[tokio::test]
async fn copytruncate_with_a_stale_writer_skips_the_hole_and_the_copy() {
    let tail = Harness::start(Harness::dir(), Vec::new(), |_| {});
    let dir = tail.container("ns", "legacy", "app");
    let live = dir.join("0.log");
    // A writer without O_APPEND keeps its offset across the truncation.
    let mut writer = File::create(&live).expect("create");
    let (before, before_expected) = cri_lines("before", 0, 30);
    writer.write_all(before.as_bytes()).expect("write");
    tail.wait_lines(30).await;
    fs::copy(&live, dir.join("0.log.1")).expect("copy");
    OpenOptions::new()
        .write(true)
        .open(&live)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    tail.wait_counter("logrelay_agent_truncation_restarts_total", 1)
        .await;
    let (after, after_expected) = cri_lines("after", 100, 30);
    writer
        .write_all(after.as_bytes())
        .expect("write at the old offset");
    tail.wait_lines(60).await;
    let truncations = tail.counter("logrelay_agent_truncation_restarts_total", &[]);
    let holes = tail.counter("logrelay_agent_hole_bytes_skipped_total", &[]);
    let copies = tail.counter("logrelay_agent_copied_files_total", &[]);
    let events = tail.stop().await;
    assert_exactly_once(&events, &[&before_expected, &after_expected]);
    assert_eq!(truncations, 1);
    assert_eq!(
        holes,
        before.len() as u64,
        "the stale writer's hole is skipped, not shipped"
    );
    assert_eq!(
        copies, 1,
        "the copy continues at the original's offset instead of repeating it"
    );
}

#[tokio::test]
async fn truncated_file_is_read_again_from_zero_under_a_new_id() {
    let tail = Harness::start(Harness::dir(), Vec::new(), |_| {});
    let live = tail.container("ns", "p", "c").join("0.log");
    let (first, first_expected) = cri_lines("first", 0, 20);
    append(&live, &first);
    tail.wait_lines(20).await;
    OpenOptions::new()
        .write(true)
        .open(&live)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    tail.wait_for("the old id to close", |events| {
        closed_files(events).len() == 1
    })
    .await;
    let (second, second_expected) = cri_lines("second", 50, 5);
    append(&live, &second);
    tail.wait_lines(25).await;
    let truncations = tail.counter("logrelay_agent_truncation_restarts_total", &[]);
    let events = tail.stop().await;
    assert_exactly_once(&events, &[&first_expected, &second_expected]);
    assert_eq!(truncations, 1);
    let files: Vec<FileId> = events
        .iter()
        .filter(|event| matches!(event, SourceEvent::Line(_)))
        .map(SourceEvent::file)
        .collect();
    assert_ne!(
        files.first(),
        files.last(),
        "lines after the truncation carry a new file id"
    );
}

#[tokio::test]
async fn delete_and_recreate_same_path_reads_both_files() {
    let tail = Harness::start(Harness::dir(), Vec::new(), |_| {});
    let live = tail.container("ns", "p", "c").join("0.log");
    let (first, first_expected) = cri_lines("old", 0, 30);
    append(&live, &first);
    tail.wait_lines(30).await;
    fs::remove_file(&live).expect("delete");
    let (second, second_expected) = cri_lines("new", 100, 30);
    append(&live, &second);
    tail.wait_lines(60).await;
    tail.wait_for("the deleted file to close", |events| {
        closed_files(events).len() == 1
    })
    .await;
    let events = tail.stop().await;
    assert_exactly_once(&events, &[&first_expected, &second_expected]);
}

#[tokio::test]
async fn partial_line_at_eof_is_completed_later() {
    let tail = Harness::start(Harness::dir(), Vec::new(), |_| {});
    let live = tail.container("ns", "p", "c").join("0.log");
    let head = cri(1, "stdout", "P", "first half, ");
    append(&live, &head);
    // An unfinished raw line (no newline yet) must wait too.
    append(&live, "2024-01-01T00:00:00.000000002Z stderr F unfin");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        messages(&tail.events()).is_empty(),
        "nothing ships before the line is complete"
    );
    append(&live, "ished\n");
    append(&live, &cri(3, "stdout", "F", "second half"));
    tail.wait_lines(2).await;
    let events = tail.stop().await;
    // The stderr line between the chunks of the stdout line does not split it.
    assert_eq!(messages(&events), ["unfinished", "first half, second half"]);
    assert_ranges_contiguous(&events);
}

#[tokio::test]
async fn split_lines_merge_across_reads_and_keep_their_whole_range() {
    let tail = Harness::start(Harness::dir(), Vec::new(), |_| {});
    let live = tail.container("ns", "p", "c").join("0.log");
    let chunk = "é".repeat(9000); // 18,000 bytes per chunk: chunks span several 64 KiB reads
    let mut text = String::new();
    for _ in 0..8 {
        text.push_str(&cri(7, "stdout", "P", &chunk));
    }
    text.push_str(&cri(7, "stdout", "F", "end"));
    text.push_str(&cri(8, "stderr", "F", "next"));
    append(&live, &text);
    tail.wait_lines(2).await;
    let events = tail.stop().await;
    let lines: Vec<_> = events
        .iter()
        .filter_map(|event| match event {
            SourceEvent::Line(line) => Some(line.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].record.message, format!("{}end", chunk.repeat(8)));
    assert_eq!(lines[0].start, 0);
    assert_eq!(lines[1].record.message, "next");
    assert_eq!(lines[1].end, text.len() as u64);
    assert_eq!(lines[1].end_marker, offset_marker(text.as_bytes()));
    assert_ranges_contiguous(&events);
}

#[tokio::test]
async fn dangling_partial_is_flushed_after_the_timeout() {
    let tail = Harness::start(Harness::dir(), Vec::new(), |config| {
        config.partial_flush_timeout = Duration::from_millis(300)
    });
    let live = tail.container("ns", "p", "c").join("0.log");
    append(&live, &cri(1, "stdout", "P", "never finished"));
    tail.wait_lines(1).await;
    append(&live, &cri(2, "stdout", "F", "late end"));
    tail.wait_lines(2).await;
    let flushed = tail.counter(
        "logrelay_agent_partial_lines_flushed_total",
        &[("reason", "timeout")],
    );
    let events = tail.stop().await;
    assert_eq!(messages(&events), ["never finished", "late end"]);
    assert_eq!(flushed, 1);
    assert_ranges_contiguous(&events);
}

#[tokio::test]
async fn multi_file_rapid_rotation_loses_nothing() {
    let tail = Harness::start(Harness::dir(), Vec::new(), |_| {});
    let mut sequences: Vec<Vec<String>> = Vec::new();
    let dirs: Vec<PathBuf> = (0..10)
        .map(|n| tail.container("ns", &format!("pod-{n}"), "c"))
        .collect();
    for (n, dir) in dirs.iter().enumerate() {
        for generation in 0..5u64 {
            let (text, lines) = cri_lines(&format!("p{n}-g{generation}"), generation * 100, 20);
            append(&dir.join("0.log"), &text);
            sequences.push(lines);
            fs::rename(
                dir.join("0.log"),
                dir.join(format!("0.log.2024010{generation}-000000")),
            )
            .expect("rotate");
        }
    }
    tail.wait_lines(10 * 5 * 20).await;
    let events = tail.stop().await;
    let refs: Vec<&[String]> = sequences.iter().map(Vec::as_slice).collect();
    assert_exactly_once(&events, &refs);
}

#[tokio::test]
async fn gzip_catch_up_resumes_inside_the_compressed_file() {
    let (dir, root) = Harness::dir();
    let container = container_dir(&root, "ns", "p", "c");
    let rotated = container.join("0.log.20240101-000000");
    let (text, expected) = cri_lines("gz", 0, 100);
    fs::write(&rotated, &text).expect("write");
    // Checkpointed after 40 lines, then gzipped by the kubelet while the agent was down.
    let offset: u64 = text
        .lines()
        .take(40)
        .map(|line| line.len() as u64 + 1)
        .sum();
    let checkpoint = checkpoint_at(&rotated, offset);
    gzip(&rotated);
    let (live_text, live_expected) = cri_lines("live", 1000, 5);
    fs::write(container.join("0.log"), &live_text).expect("write");
    let tail = Harness::start((dir, root), vec![checkpoint], |_| {});
    tail.wait_lines(65).await;
    tail.wait_for("the gz to close", |events| closed_files(events).len() == 1)
        .await;
    let resumed = tail.counter("logrelay_agent_compressed_files_resumed_total", &[]);
    let events = tail.stop().await;
    assert_exactly_once(&events, &[&expected[40..], &live_expected]);
    assert_eq!(resumed, 1);
}

/// The bytes of the first `lines` lines of `text`.
fn lines_len(text: &str, lines: usize) -> u64 {
    text.lines()
        .take(lines)
        .map(|line| line.len() as u64 + 1)
        .sum()
}

/// What the kubelet does at a rotation: rename the live file to its rotated name, then gzip it.
fn rotate_and_gzip(container: &Path, time: &str) -> PathBuf {
    let rotated = container.join(format!("0.log.{time}"));
    fs::rename(container.join("0.log"), &rotated).expect("rotate");
    gzip(&rotated)
}

#[tokio::test]
async fn agent_down_across_rotate_and_gzip_reads_the_rest_from_the_gz_files() {
    let (dir, root) = Harness::dir();
    let container = container_dir(&root, "ns", "p", "c");
    let live = container.join("0.log");
    // History: read while plain long ago, gzipped since; its checkpoint was dropped.
    fs::write(&live, cri_lines("old", 0, 30).0).expect("write");
    rotate_and_gzip(&container, "20240101-000000");
    // The live file at the last save, checkpointed after 40 of its 100 lines.
    let (text, expected) = cri_lines("known", 100, 100);
    fs::write(&live, &text).expect("write");
    let checkpoint = checkpoint_at(&live, lines_len(&text, 40));
    // While the agent is down: that file rotates and is gzipped; a whole new generation is
    // written, rotated and gzipped; a third one is live.
    rotate_and_gzip(&container, "20240101-010000");
    let (unseen_text, unseen_expected) = cri_lines("unseen", 300, 50);
    fs::write(&live, &unseen_text).expect("write");
    rotate_and_gzip(&container, "20240101-020000");
    let (live_text, live_expected) = cri_lines("live", 500, 5);
    fs::write(&live, &live_text).expect("write");
    let tail = Harness::start((dir, root), vec![checkpoint], |_| {});
    tail.wait_lines(60 + 50 + 5).await;
    tail.wait_for("both .gz files to close", |events| {
        closed_files(events).len() == 2
    })
    .await;
    let resumed = tail.counter("logrelay_agent_compressed_files_resumed_total", &[]);
    let ignored = tail.counter("logrelay_agent_compressed_files_ignored_total", &[]);
    let events = tail.stop().await;
    assert_exactly_once(
        &events,
        &[&expected[40..], &unseen_expected, &live_expected],
    );
    assert_eq!(
        (resumed, ignored),
        (2, 1),
        "the checkpointed file and the unseen generation are read, the history is not"
    );
}

#[tokio::test]
async fn file_read_to_the_end_then_gzipped_while_down_is_not_read_again() {
    let (dir, root) = Harness::dir();
    let container = container_dir(&root, "ns", "p", "c");
    let live = container.join("0.log");
    let (text, _) = cri_lines("done", 0, 30);
    fs::write(&live, &text).expect("write");
    let checkpoint = checkpoint_at(&live, text.len() as u64);
    rotate_and_gzip(&container, "20240101-010000");
    let (live_text, live_expected) = cri_lines("live", 100, 5);
    fs::write(&live, &live_text).expect("write");
    let tail = Harness::start((dir, root), vec![checkpoint], |_| {});
    tail.wait_lines(5).await;
    tail.wait_for("the .gz to close at its end", |events| {
        closed_files(events).len() == 1
    })
    .await;
    let ignored = tail.counter("logrelay_agent_compressed_files_ignored_total", &[]);
    let events = tail.stop().await;
    assert_exactly_once(&events, &[&live_expected]);
    assert_eq!(ignored, 0);
}

#[tokio::test]
async fn gz_of_a_container_never_seen_is_ignored_and_counted() {
    let (dir, root) = Harness::dir();
    let known = container_dir(&root, "ns", "known", "c").join("0.log");
    let (known_text, known_expected) = cri_lines("known", 0, 10);
    fs::write(&known, &known_text).expect("write");
    let checkpoint = checkpoint_at(&known, lines_len(&known_text, 4));
    // Gzipped before the agent ever saw this container (e.g. before it was installed).
    let unknown = container_dir(&root, "ns", "unknown", "c");
    fs::write(unknown.join("0.log"), cri_lines("history", 0, 20).0).expect("write");
    rotate_and_gzip(&unknown, "20240101-010000");
    let (live_text, live_expected) = cri_lines("new", 100, 5);
    fs::write(unknown.join("0.log"), &live_text).expect("write");
    let tail = Harness::start((dir, root), vec![checkpoint], |_| {});
    tail.wait_lines(6 + 5).await;
    tail.wait_counter("logrelay_agent_compressed_files_ignored_total", 1)
        .await;
    let ignored = tail.counter("logrelay_agent_compressed_files_ignored_total", &[]);
    let resumed = tail.counter("logrelay_agent_compressed_files_resumed_total", &[]);
    let events = tail.stop().await;
    assert_exactly_once(&events, &[&known_expected[4..], &live_expected]);
    assert_eq!((ignored, resumed), (1, 0));
}

#[tokio::test]
async fn container_restarted_while_down_has_its_new_gz_files_read() {
    let (dir, root) = Harness::dir();
    let container = container_dir(&root, "ns", "p", "c");
    let (old_text, _) = cri_lines("restart0", 0, 10);
    fs::write(container.join("0.log"), &old_text).expect("write");
    let checkpoint = checkpoint_at(&container.join("0.log"), old_text.len() as u64);
    // While the agent is down the container restarts: 1.log is written, rotated and gzipped.
    let (new_text, new_expected) = cri_lines("restart1", 100, 20);
    let rotated = container.join("1.log.20240101-010000");
    fs::write(&rotated, &new_text).expect("write");
    gzip(&rotated);
    let (live_text, live_expected) = cri_lines("live", 200, 5);
    fs::write(container.join("1.log"), &live_text).expect("write");
    let tail = Harness::start((dir, root), vec![checkpoint], |_| {});
    tail.wait_lines(25).await;
    let events = tail.stop().await;
    assert_exactly_once(&events, &[&new_expected, &live_expected]);
}

#[tokio::test]
async fn unread_rotated_file_gzipped_while_waiting_for_a_slot_is_read_from_the_gz() {
    let (dir, root) = Harness::dir();
    let container = container_dir(&root, "ns", "p", "c");
    let mut all = HashMap::new();
    for name in ["a", "b"] {
        let (text, expected) = cri_lines(name, 0, 50);
        // A dangling partial at the end keeps the opened file busy, so the other one must wait.
        let text = format!("{text}{}", cri(99, "stdout", "P", &format!("{name}-tail")));
        fs::write(
            container.join(format!(
                "0.log.2024010{}-000000",
                if name == "a" { 1 } else { 2 }
            )),
            text,
        )
        .expect("write");
        all.insert(name, expected);
    }
    let tail = Harness::start((dir, root), Vec::new(), |config| {
        config.max_open_rotated_per_pod = 1;
        config.partial_flush_timeout = Duration::from_secs(600);
    });
    tail.wait_lines(50).await;
    let first = messages(&tail.events())[0]
        .split('-')
        .next()
        .expect("prefix")
        .to_string();
    let waiting = if first == "a" { "b" } else { "a" };
    let waiting_path = container.join(format!(
        "0.log.2024010{}-000000",
        if waiting == "a" { 1 } else { 2 }
    ));
    let announced = (1..10)
        .filter_map(|id| tail.registry.get(FileId(id)))
        .any(|file| file.path == waiting_path);
    assert!(
        announced,
        "a rotated file waiting for a slot is registered (and checkpointed) before it is read"
    );
    gzip(&waiting_path);
    tail.wait_lines(101).await;
    let resumed = tail.counter("logrelay_agent_compressed_files_resumed_total", &[]);
    let deferred = tail.counter("logrelay_agent_rotated_files_deferred_total", &[]);
    let events = tail.stop().await;
    let waiting_expected = [all[waiting].clone(), vec![format!("{waiting}-tail")]].concat();
    assert_exactly_once(&events, &[&all[first.as_str()], &waiting_expected]);
    assert_eq!((resumed, deferred), (1, 1));
}

#[tokio::test]
async fn rotated_file_deleted_while_waiting_for_a_slot_counts_lost_bytes_for_its_pod() {
    let (dir, root) = Harness::dir();
    let container = container_dir(&root, "shop", "api-9", "c");
    let mut sizes = HashMap::new();
    let mut all = HashMap::new();
    for name in ["a", "b"] {
        let (text, expected) = cri_lines(name, 0, 20);
        let text = format!("{text}{}", cri(99, "stdout", "P", "tail"));
        let path = container.join(format!("0.log.{name}"));
        fs::write(&path, &text).expect("write");
        sizes.insert(name, text.len() as u64);
        all.insert(name, expected);
    }
    let tail = Harness::start((dir, root), Vec::new(), |config| {
        config.max_open_rotated_per_pod = 1;
        config.partial_flush_timeout = Duration::from_secs(600);
    });
    tail.wait_lines(20).await;
    let first = messages(&tail.events())[0]
        .split('-')
        .next()
        .expect("prefix")
        .to_string();
    let waiting = if first == "a" { "b" } else { "a" };
    fs::remove_file(container.join(format!("0.log.{waiting}"))).expect("delete");
    let labels = [
        ("namespace", "shop"),
        ("pod", "api-9"),
        ("reason", "removed_unread"),
    ];
    let deadline = Instant::now() + WAIT;
    while tail.counter("logrelay_agent_lost_bytes_total", &labels) == 0 {
        assert!(Instant::now() < deadline, "lost bytes were never counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lost = tail.counter("logrelay_agent_lost_bytes_total", &labels);
    let events = tail.stop().await;
    assert_eq!(lost, sizes[waiting]);
    assert_exactly_once(&events, &[&all[first.as_str()]]);
}

#[tokio::test]
async fn resumed_file_continues_after_its_checkpoint() {
    let (dir, root) = Harness::dir();
    let live = container_dir(&root, "ns", "p", "c").join("0.log");
    let (text, expected) = cri_lines("r", 0, 10);
    fs::write(&live, &text).expect("write");
    let offset: u64 = text.lines().take(4).map(|line| line.len() as u64 + 1).sum();
    let tail = Harness::start((dir, root), vec![checkpoint_at(&live, offset)], |_| {});
    tail.wait_lines(6).await;
    let resumed = tail.counter("logrelay_agent_files_resumed_total", &[]);
    let events = tail.stop().await;
    assert_exactly_once(&events, &[&expected[4..]]);
    assert!(
        matches!(events[0], SourceEvent::Consumed { end, .. } if end == offset),
        "the resume point is announced first"
    );
    assert_eq!(resumed, 1);
}

#[tokio::test]
async fn resume_prefers_the_checkpoint_whose_fingerprint_matches_the_inode() {
    let (dir, root) = Harness::dir();
    let live = container_dir(&root, "ns", "p", "c").join("0.log");
    let (text, expected) = cri_lines("r", 0, 10);
    fs::write(&live, &text).expect("write");
    let offset: u64 = text.lines().take(4).map(|line| line.len() as u64 + 1).sum();
    // An older entry for the same inode (another file's content, at another offset) comes first.
    let mut stale = checkpoint_at(&live, 0);
    stale.fingerprint ^= 1;
    let tail = Harness::start(
        (dir, root),
        vec![stale, checkpoint_at(&live, offset)],
        |_| {},
    );
    tail.wait_lines(6).await;
    let restarts = tail.counter(
        "logrelay_agent_inode_reuse_restarts_total",
        &[("reason", "inode_reused")],
    );
    let events = tail.stop().await;
    assert_exactly_once(&events, &[&expected[4..]]);
    assert_eq!(
        restarts, 0,
        "the matching checkpoint was used, not the stale one"
    );
}

#[tokio::test]
async fn checkpoint_that_no_longer_fits_restarts_the_file_at_zero() {
    let (dir, root) = Harness::dir();
    let container = container_dir(&root, "ns", "p", "c");
    let (reused_text, reused_expected) = cri_lines("reused", 0, 10);
    let reused = container.join("0.log");
    fs::write(&reused, &reused_text).expect("write");
    let mut inode_reused = checkpoint_at(&reused, 100);
    inode_reused.fingerprint ^= 1; // the inode held another file when it was checkpointed
    let (changed_text, changed_expected) = cri_lines("changed", 100, 10);
    let changed = container.join("1.log");
    fs::write(&changed, &changed_text).expect("write");
    let mut marker_mismatch = checkpoint_at(&changed, 100);
    marker_mismatch.offset_marker ^= 1;
    let tail = Harness::start((dir, root), vec![inode_reused, marker_mismatch], |_| {});
    tail.wait_lines(20).await;
    let reuse = tail.counter(
        "logrelay_agent_inode_reuse_restarts_total",
        &[("reason", "inode_reused")],
    );
    let mismatch = tail.counter(
        "logrelay_agent_inode_reuse_restarts_total",
        &[("reason", "marker_mismatch")],
    );
    let events = tail.stop().await;
    assert_exactly_once(&events, &[&reused_expected, &changed_expected]);
    assert_eq!((reuse, mismatch), (1, 1));
}

#[tokio::test]
async fn many_files_are_all_read_and_followed() {
    let tail = Harness::start(Harness::dir(), Vec::new(), |_| {});
    let mut sequences = Vec::new();
    let mut paths = Vec::new();
    for pod in 0..110 {
        for container in ["main", "sidecar"] {
            let path = tail
                .container("ns", &format!("pod-{pod}"), container)
                .join("0.log");
            let (text, expected) = cri_lines(&format!("{pod}-{container}"), 0, 10);
            append(&path, &text);
            sequences.push(expected);
            paths.push(path);
        }
    }
    tail.wait_lines(220 * 10).await;
    for (n, path) in paths.iter().enumerate() {
        let (text, expected) = cri_lines(&format!("more-{n}"), 500, 1);
        append(path, &text);
        sequences.push(expected);
    }
    tail.wait_lines(220 * 11).await;
    let events = tail.stop().await;
    let refs: Vec<&[String]> = sequences.iter().map(Vec::as_slice).collect();
    assert_exactly_once(&events, &refs);
}

#[tokio::test]
async fn hostile_input_is_counted_and_the_tailer_keeps_running() {
    let tail = Harness::start(Harness::dir(), Vec::new(), |_| {});
    let dir = tail.container("ns", "evil", "c");
    let mut garbage: Vec<u8> = (0..20_000u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    garbage.push(b'\n');
    let garbage_path = dir.join("1.log");
    fs::write(&garbage_path, &garbage).expect("write garbage");
    let bad = [
        "yesterday stdout F bad timestamp\n",
        "2024-01-01T00:00:00Z stdout X unknown tag\n",
        "2024-01-01T00:00:00Z stdin F unknown stream\n",
        "\n",
        "2024-01-01T00:00:00Z stdout\n",
        "2024-01-01T00:00:00Z stdout F ok \u{00ff}\n",
    ];
    let live = dir.join("0.log");
    append(&live, &cri(0, "stdout", "F", "first"));
    let mut file = OpenOptions::new().append(true).open(&live).expect("open");
    file.write_all(b"2024-01-01T00:00:00Z stdout F invalid \xff\xfe utf8\n")
        .expect("write");
    for line in bad {
        file.write_all(line.as_bytes()).expect("write");
    }
    // A 100 MiB line without a newline, streamed (never held in memory here either).
    let block = vec![b'x'; 1 << 20];
    file.write_all(b"2024-01-01T00:00:00Z stdout F ")
        .expect("write");
    for _ in 0..100 {
        file.write_all(&block).expect("write");
    }
    file.write_all(b"\n").expect("write");
    file.write_all(cri(1, "stdout", "F", "after the storm").as_bytes())
        .expect("write");
    tail.wait_for("the line after the 100 MiB line", |events| {
        messages(events).iter().any(|m| m == "after the storm")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let parse_errors =
        |reason| tail.counter("logrelay_agent_parse_errors_total", &[("reason", reason)]);
    let counts = (
        parse_errors("bad_timestamp"),
        parse_errors("unknown_tag"),
        parse_errors("unknown_stream"),
        parse_errors("missing_fields"),
    );
    let empty = tail.counter("logrelay_agent_empty_lines_total", &[]);
    let invalid_utf8 = tail.counter("logrelay_agent_invalid_utf8_lines_total", &[]);
    let truncated = tail.counter("logrelay_agent_lines_truncated_total", &[]);
    let garbage_ids: Vec<FileId> = (1..10)
        .map(FileId)
        .filter(|id| {
            tail.registry
                .get(*id)
                .is_some_and(|file| file.path == garbage_path)
        })
        .collect();
    let events = tail.stop().await;
    assert_ranges_contiguous(&events);
    let lines: Vec<_> = events
        .iter()
        .filter_map(|event| match event {
            SourceEvent::Line(line) => Some(line.record.clone()),
            _ => None,
        })
        .collect();
    let live_messages: Vec<&str> = lines
        .iter()
        .filter(|record| record.container_name == "c" && !record.message.starts_with('x'))
        .map(|record| record.message.as_str())
        .collect();
    assert!(live_messages.contains(&"invalid \u{FFFD}\u{FFFD} utf8"));
    assert!(
        live_messages.contains(&"yesterday stdout F bad timestamp"),
        "a bad line ships its raw text"
    );
    assert!(live_messages.contains(&"ok \u{00ff}"));
    let huge = lines
        .iter()
        .find(|record| record.message.starts_with("xxxx"))
        .expect("the 100 MiB line ships, cut");
    assert_eq!(huge.message.len(), crate::parse::DEFAULT_MAX_LINE_BYTES);
    assert_eq!(huge.extra[TRUNCATED_FIELD], serde_json::json!(true));
    assert_eq!(
        huge.extra[ORIGINAL_BYTES_FIELD],
        serde_json::json!(100u64 << 20)
    );
    assert!(
        counts.0 >= 1 && counts.1 == 1 && counts.2 == 1 && counts.3 >= 1,
        "{counts:?}"
    );
    assert!(empty >= 1);
    assert!(invalid_utf8 >= 2, "the invalid line and the garbage file");
    assert!(truncated >= 1);
    // Every garbage byte is covered by an event of its file.
    let garbage_end = events
        .iter()
        .filter(|event| garbage_ids.contains(&event.file()))
        .filter_map(end_offset)
        .max();
    assert_eq!(garbage_end, Some(garbage.len() as u64));
}

fn end_offset(event: &SourceEvent) -> Option<u64> {
    match event {
        SourceEvent::Line(line) => Some(line.end),
        SourceEvent::Consumed { end, .. } => Some(*end),
        SourceEvent::Closed { .. } => None,
    }
}

#[tokio::test]
async fn a_hot_file_does_not_starve_a_quiet_one() {
    let (dir, root) = Harness::dir();
    let hot = container_dir(&root, "ns", "hot", "c").join("0.log");
    let quiet = container_dir(&root, "ns", "quiet", "c").join("0.log");
    let (hot_text, hot_expected) = cri_lines("hot", 0, 100_000);
    fs::write(&hot, &hot_text).expect("write");
    let (quiet_text, quiet_expected) = cri_lines("quiet", 0, 10);
    fs::write(&quiet, &quiet_text).expect("write");
    let tail = Harness::start((dir, root), Vec::new(), |_| {});
    tail.wait_lines(100_010).await;
    let events = tail.stop().await;
    assert_exactly_once(&events, &[&hot_expected, &quiet_expected]);
    let got = messages(&events);
    let last_quiet = got
        .iter()
        .position(|m| m == "quiet-00009")
        .expect("quiet lines");
    assert!(
        last_quiet < got.len() / 2,
        "the quiet file's lines came at {last_quiet} of {}",
        got.len()
    );
}

#[tokio::test]
async fn full_channel_stops_reading_until_delivery_catches_up() {
    let (_dir, root) = Harness::dir();
    let live = container_dir(&root, "ns", "p", "c").join("0.log");
    let (text, expected) = cri_lines("bp", 0, 20_000);
    fs::write(&live, &text).expect("write");
    let record = RecordContext {
        cluster_id: "c1".into(),
        node_name: "node-1".into(),
    };
    let (sender, mut receiver) = mpsc::channel(16);
    let tailer = Tailer::new(
        TailerConfig::new(&root, record),
        Vec::new(),
        FileRegistry::new(),
        sender,
    );
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let stopper = tailer.stopper();
    let thread = std::thread::spawn(move || {
        metrics::with_local_recorder(&recorder, || tailer.run_blocking())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let read: u64 = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "logrelay_agent_bytes_read_total")
        .map(|(.., value)| {
            if let DebugValue::Counter(n) = value {
                n
            } else {
                0
            }
        })
        .sum();
    assert!(
        read <= 2 * READ_CHUNK_BYTES as u64,
        "read {read} bytes of {} with nobody receiving",
        text.len()
    );
    let mut got = Vec::new();
    let is_line = |event: &&SourceEvent| matches!(event, SourceEvent::Line(_));
    while got.iter().filter(is_line).count() < expected.len() {
        match tokio::time::timeout(WAIT, receiver.recv())
            .await
            .expect("events keep coming")
        {
            Some(event) => got.push(event),
            None => break,
        }
    }
    stopper.stop();
    drop(receiver);
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .expect("join")
        .expect("no panic")
        .expect("clean end");
    assert_exactly_once(&got, &[&expected]);
}

#[tokio::test]
async fn docker_json_files_are_parsed_and_partials_merged() {
    let tail = Harness::start(Harness::dir(), Vec::new(), |_| {});
    let live = tail.container("ns", "p", "c").join("0.log");
    let text = concat!(
        r#"{"log":"one\n","stream":"stdout","time":"2024-01-01T00:00:00.1Z"}"#,
        "\n",
        r#"{"log":"tw","stream":"stderr","time":"2024-01-01T00:00:00.2Z"}"#,
        "\n",
        r#"{"log":"o\n","stream":"stderr","time":"2024-01-01T00:00:00.2Z"}"#,
        "\n"
    );
    append(&live, text);
    tail.wait_lines(2).await;
    let events = tail.stop().await;
    assert_eq!(messages(&events), ["one", "two"]);
    assert_ranges_contiguous(&events);
}

#[tokio::test]
async fn registry_knows_every_file_before_its_first_event() {
    let tail = Harness::start(Harness::dir(), Vec::new(), |_| {});
    let live = tail.container("ns", "p", "c").join("0.log");
    let (text, _) = cri_lines("reg", 0, 5);
    append(&live, &text);
    tail.wait_lines(5).await;
    let file = tail.events()[0].file();
    let registered = tail.registry.get(file).expect("registered");
    let meta = fs::metadata(&live).expect("stat");
    assert_eq!(registered.path, live);
    assert_eq!(
        (registered.identity.dev, registered.identity.inode),
        (meta.dev(), meta.ino())
    );
    assert_eq!(
        Some(registered.identity.fingerprint),
        identity::fingerprint(text.as_bytes())
    );
    tail.stop().await;
}

/// Not a timed test: `cargo test --release -- --ignored tailer_throughput --nocapture` prints how
/// fast the tailer turns CRI files into events (no delivery behind it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, run in release by hand"]
async fn tailer_throughput() {
    let (dir, root) = Harness::dir();
    let files = 16;
    let lines_per_file = 400_000u64;
    let mut total_bytes = 0;
    for n in 0..files {
        let path = container_dir(&root, "ns", &format!("pod-{n}"), "c").join("0.log");
        let mut text = String::new();
        for seq in 0..lines_per_file {
            let message = format!(
                "{seq:08} GET /api/v1/items?page={seq} 200 {} ms user-agent=curl/8.5 trace={seq:032x}",
                seq % 997
            );
            text.push_str(&cri(seq, "stdout", "F", &message));
        }
        total_bytes += text.len();
        fs::write(path, text).expect("write");
    }
    let record = RecordContext {
        cluster_id: "c1".into(),
        node_name: "node-1".into(),
    };
    let (sender, mut receiver) = mpsc::channel(SOURCE_CHANNEL_CAPACITY);
    let tailer = Tailer::new(
        TailerConfig::new(&root, record),
        Vec::new(),
        FileRegistry::new(),
        sender,
    );
    let started = Instant::now();
    let handle = tailer.spawn().expect("spawn");
    let expected = files as u64 * lines_per_file;
    let mut lines = 0;
    while lines < expected {
        if let Some(SourceEvent::Line(_)) = receiver.recv().await {
            lines += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    handle.stop().await.expect("stops");
    drop(dir);
    println!(
        "tailer: {:.1} MiB in {elapsed:.2} s = {:.1} MiB/s, {:.0} lines/s",
        total_bytes as f64 / 1048576.0,
        total_bytes as f64 / 1048576.0 / elapsed,
        lines as f64 / elapsed
    );
}

#[tokio::test]
async fn a_settling_rotated_file_reports_its_checkpoint_restart_once() {
    let (dir, root) = Harness::dir();
    let container = container_dir(&root, "ns", "p", "c");
    fs::create_dir_all(&container).expect("mkdir");
    let rotated = container.join("0.log.20240101-000000");
    let (old, _) = cri_lines("old", 0, 10);
    append(&rotated, &old);
    let point = checkpoint_at(&rotated, old.len() as u64);
    // Same inode, shorter, and no whole first line yet: the tailer waits for it to settle
    // (COPY_SETTLE) and looks at it again at every scan meanwhile.
    OpenOptions::new()
        .write(true)
        .open(&rotated)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    let line = cri(1, "stdout", "F", "new content");
    append(&rotated, line.trim_end_matches('\n'));
    let tail = Harness::start((dir, root), vec![point], |_| {});
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    append(&rotated, "\n");
    tail.wait_lines(1).await;
    let restarts = tail.counter("logrelay_agent_truncation_restarts_total", &[]);
    let events = tail.stop().await;
    assert_eq!(messages(&events), ["new content"]);
    assert_eq!(restarts, 1, "one restart, not one per scan");
}

#[tokio::test]
async fn a_gz_that_reuses_a_checkpointed_inode_does_not_take_its_checkpoint() {
    let (dir, root) = Harness::dir();
    // Container a's file was checkpointed, then rotated and gzipped while the agent was down.
    let a = container_dir(&root, "ns", "pa", "a");
    fs::create_dir_all(&a).expect("mkdir");
    let a_live = a.join("0.log");
    let (a_text, a_expected) = cri_lines("a", 0, 10);
    fs::write(&a_live, &a_text).expect("write");
    let mut checkpoint = checkpoint_at(&a_live, lines_len(&a_text, 4));
    let a_rotated = a.join("0.log.20240101-000000");
    fs::rename(&a_live, &a_rotated).expect("rotate");
    gzip(&a_rotated);
    // Container b (never seen) got a .gz whose inode number is the one a's checkpoint names:
    // the old file was deleted and the filesystem reused its inode.
    let b = container_dir(&root, "ns", "pb", "b");
    fs::create_dir_all(&b).expect("mkdir");
    let b_rotated = b.join("0.log.20240101-000000");
    fs::write(&b_rotated, cri_lines("b", 0, 5).0).expect("write");
    let b_gz = gzip(&b_rotated);
    let b_meta = fs::metadata(&b_gz).expect("stat");
    (checkpoint.dev, checkpoint.inode) = (b_meta.dev(), b_meta.ino());
    let tail = Harness::start((dir, root), vec![checkpoint], |_| {});
    tail.wait_lines(6).await;
    tail.wait_for("a's .gz to close", |events| {
        !closed_files(events).is_empty()
    })
    .await;
    // Give a wrongly matched b a chance to show up.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let events = tail.stop().await;
    assert_exactly_once(&events, &[&a_expected[4..]]);
}

/// The checkpoint a delivery that acknowledged every event of `file` would save.
fn checkpoint_after(events: &[SourceEvent], path: &Path) -> FileCheckpoint {
    let (end, end_marker, unfinished) = events
        .iter()
        .filter_map(|event| match event {
            SourceEvent::Line(line) => Some((line.end, line.end_marker, line.unfinished)),
            SourceEvent::Consumed {
                end,
                end_marker,
                unfinished,
                ..
            } => Some((*end, *end_marker, *unfinished)),
            SourceEvent::Closed { .. } => None,
        })
        .next_back()
        .expect("an event");
    FileCheckpoint {
        offset: end,
        offset_marker: end_marker,
        unfinished,
        size: Some(fs::metadata(path).expect("stat").len()),
        ..checkpoint_at(path, 0)
    }
}

#[tokio::test]
async fn a_long_line_interleaved_with_the_other_stream_survives_a_restart_whole() {
    let (dir, root) = Harness::dir();
    let live = container_dir(&root, "ns", "p", "c").join("0.log");
    // containerd's two writers: stdout's long line is cut at a byte inside "€", and stderr
    // entries land between its chunks.
    let long = format!("{}€{}", "a".repeat(20), "b".repeat(20));
    let cut = 21; // inside the three bytes of "€"
    let (head, tail_part) = long.as_bytes().split_at(cut);
    let mut text = Vec::new();
    text.extend_from_slice(b"2024-01-01T00:00:01Z stdout P ");
    text.extend_from_slice(head);
    text.push(b'\n');
    text.extend_from_slice(cri(2, "stderr", "F", "err-1").as_bytes());
    fs::write(&live, &text).expect("write");
    let tail = Harness::start((dir, root), Vec::new(), |_| {});
    tail.wait_lines(1).await;
    let (first, dir) = tail.stop_keeping_dir().await;
    assert_eq!(messages(&first), ["err-1"]);
    let checkpoint = checkpoint_after(&first, &live);
    assert_eq!(checkpoint.unfinished.stdout, Some(0), "{checkpoint:?}");
    assert_eq!(checkpoint.offset, text.len() as u64);
    // The rest of the line arrives while the agent is down.
    let mut rest = b"2024-01-01T00:00:03Z stdout F ".to_vec();
    rest.extend_from_slice(tail_part);
    rest.push(b'\n');
    let mut file = OpenOptions::new().append(true).open(&live).expect("open");
    file.write_all(&rest).expect("write");
    file.write_all(cri(4, "stderr", "F", "err-2").as_bytes())
        .expect("write");
    let tail = Harness::start(dir, vec![checkpoint], |_| {});
    tail.wait_lines(2).await;
    let invalid = tail.counter("logrelay_agent_invalid_utf8_lines_total", &[]);
    let events = tail.stop().await;
    assert_eq!(
        messages(&events),
        [long.as_str(), "err-2"],
        "the line is whole and err-1 is not shipped again"
    );
    assert_eq!(invalid, 0, "the character cut between chunks is intact");
    assert_ranges_contiguous(&events);
}

#[tokio::test]
async fn a_copytruncated_file_continues_in_its_copy_under_the_same_id() {
    let tail = Harness::start(Harness::dir(), Vec::new(), |_| {});
    let dir = tail.container("ns", "rotated", "app");
    let live = dir.join("0.log");
    let (before, before_expected) = cri_lines("before", 0, 30);
    append(&live, &before);
    tail.wait_lines(30).await;
    // A line held unfinished (its writer is mid-write) when the file is copied and truncated.
    append(&live, "2024-01-01T00:00:05Z stdout F held-");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (more, more_expected) = cri_lines("more", 100, 20);
    append(&live, &format!("line\n{more}"));
    fs::copy(&live, dir.join("0.log.1")).expect("copy");
    OpenOptions::new()
        .write(true)
        .open(&live)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    let (after, after_expected) = cri_lines("after", 200, 10);
    append(&live, &after);
    tail.wait_lines(61).await;
    let parse_errors = tail.counter("logrelay_agent_parse_errors_total", &[]);
    let events = tail.stop().await;
    let held = vec!["held-line".to_string()];
    assert_exactly_once(
        &events,
        &[&before_expected, &held, &more_expected, &after_expected],
    );
    assert_eq!(parse_errors, 0, "no tail of a line is parsed on its own");
    let id_of = |wanted: &str| {
        events.iter().find_map(|event| match event {
            SourceEvent::Line(line) if line.record.message == wanted => Some(line.file),
            _ => None,
        })
    };
    assert_eq!(
        id_of("held-line"),
        id_of("before-00000"),
        "what the copy adds is acknowledged in the original's order"
    );
    assert_eq!(id_of("more-00119"), id_of("before-00000"));
}

#[tokio::test]
async fn a_stale_entry_of_a_gz_continuation_does_not_make_it_read_again() {
    let (dir, root) = Harness::dir();
    let container = container_dir(&root, "ns", "p", "c");
    let live = container.join("0.log");
    let (text, _) = cri_lines("old", 0, 30);
    fs::write(&live, &text).expect("write");
    // The entry the plain rotated file had mid-way, left over from before its `.gz` took over.
    let stale = checkpoint_at(&live, lines_len(&text, 10));
    let rotated = container.join("0.log.20240101-010000");
    fs::rename(&live, &rotated).expect("rotate");
    let gz = gzip(&rotated);
    let meta = fs::metadata(&gz).expect("stat");
    let done = FileCheckpoint {
        inode: meta.ino(),
        path: gz.clone(),
        offset: text.len() as u64,
        offset_marker: offset_marker(text.as_bytes()),
        ..stale.clone()
    };
    let stale = FileCheckpoint {
        path: rotated,
        size: Some(text.len() as u64),
        ..stale
    };
    let (live_text, live_expected) = cri_lines("live", 100, 5);
    fs::write(&live, &live_text).expect("write");
    let tail = Harness::start((dir, root), vec![stale, done], |config| {
        config.resume_grace = Duration::from_millis(300);
    });
    tail.wait_lines(5).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let lost = tail.counter("logrelay_agent_lost_bytes_total", &[]);
    let events = tail.stop().await;
    assert_exactly_once(&events, &[&live_expected]);
    assert_eq!(lost, 0, "the stale entry's content was read to its end");
}

#[tokio::test]
async fn a_checkpointed_file_deleted_while_down_counts_its_unread_bytes_as_lost() {
    let (dir, root) = Harness::dir();
    let live = container_dir(&root, "ns", "gone-pod", "c").join("0.log");
    let (text, _) = cri_lines("x", 0, 10);
    fs::write(&live, &text).expect("write");
    let read = lines_len(&text, 4);
    let checkpoint = FileCheckpoint {
        size: Some(text.len() as u64),
        ..checkpoint_at(&live, read)
    };
    fs::remove_file(&live).expect("delete");
    let tail = Harness::start((dir, root), vec![checkpoint], |config| {
        config.resume_grace = Duration::from_millis(200);
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let lost = tail.counter(
        "logrelay_agent_lost_bytes_total",
        &[("pod", "gone-pod"), ("reason", "deleted_while_down")],
    );
    let missing = tail.counter("logrelay_agent_checkpointed_files_missing_total", &[]);
    tail.stop().await;
    assert_eq!(lost, text.len() as u64 - read);
    assert_eq!(missing, 1);
}

/// Writes `text` gzipped at `path` (a `.gz` made by someone else than this test's rotation).
fn write_gz(path: &Path, text: &str) {
    let mut encoder = flate2::write::GzEncoder::new(
        File::create(path).expect("create"),
        flate2::Compression::fast(),
    );
    encoder.write_all(text.as_bytes()).expect("write");
    encoder.finish().expect("finish");
}

#[tokio::test]
async fn a_gz_made_while_running_from_a_file_never_seen_is_read_from_its_start() {
    let tail = Harness::start(Harness::dir(), Vec::new(), |_| {});
    let dir = tail.container("ns", "busy", "c");
    let (live, live_expected) = cri_lines("live", 0, 5);
    append(&dir.join("0.log"), &live);
    tail.wait_lines(5).await;
    // Created, rotated and gzipped between two looks of a busy tailer.
    let (missed, missed_expected) = cri_lines("missed", 100, 40);
    write_gz(&dir.join("0.log.20240101-000001.gz"), &missed);
    tail.wait_lines(45).await;
    let events = tail.stop().await;
    assert_exactly_once(&events, &[&live_expected, &missed_expected]);
}

#[tokio::test]
async fn a_gz_of_a_file_already_read_is_not_read_again() {
    let tail = Harness::start(Harness::dir(), Vec::new(), |_| {});
    let dir = tail.container("ns", "p", "c");
    let live = dir.join("0.log");
    let (text, expected) = cri_lines("once", 0, 20);
    append(&live, &text);
    tail.wait_lines(20).await;
    let rotated = dir.join("0.log.20240101-000001");
    fs::rename(&live, &rotated).expect("rotate");
    gzip(&rotated);
    tail.wait_for("the rotated file to close", |events| {
        !closed_files(events).is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let events = tail.stop().await;
    assert_exactly_once(&events, &[&expected]);
}

#[tokio::test]
async fn a_copy_gzipped_before_it_was_seen_continues_the_truncated_file() {
    let tail = Harness::start(Harness::dir(), Vec::new(), |_| {});
    let dir = tail.container("ns", "p", "c");
    let live = dir.join("0.log");
    let (before, before_expected) = cri_lines("before", 0, 30);
    append(&live, &before);
    tail.wait_lines(30).await;
    let (more, more_expected) = cri_lines("more", 100, 20);
    append(&live, &more);
    // logrotate with copytruncate and compress: the copy exists only as a `.gz` when listed.
    write_gz(
        &dir.join("0.log.20240101-000001.gz"),
        &format!("{before}{more}"),
    );
    OpenOptions::new()
        .write(true)
        .open(&live)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    let (after, after_expected) = cri_lines("after", 200, 10);
    append(&live, &after);
    tail.wait_lines(60).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let lost = tail.counter("logrelay_agent_lost_bytes_total", &[]);
    let events = tail.stop().await;
    assert_exactly_once(
        &events,
        &[&before_expected, &more_expected, &after_expected],
    );
    assert_eq!(lost, 0);
}

#[tokio::test]
async fn a_container_started_and_rotated_while_the_agent_was_down_has_its_gz_read() {
    let (dir, root) = Harness::dir();
    // A container the previous run read (so the node has checkpoints) ...
    let known = container_dir(&root, "ns", "old", "c").join("0.log");
    let (old_text, _) = cri_lines("old", 0, 3);
    fs::write(&known, &old_text).expect("write");
    let checkpoint = checkpoint_at(&known, old_text.len() as u64);
    let last_save = chrono::Utc::now() - chrono::TimeDelta::seconds(30);
    // ... and one it never saw: created after its last save, rotated and gzipped meanwhile.
    let new_dir = container_dir(&root, "ns", "new", "c");
    let (missed, missed_expected) = cri_lines("missed", 100, 10);
    let stamp = (last_save + chrono::TimeDelta::seconds(10)).format("%Y%m%d-%H%M%S");
    write_gz(&new_dir.join(format!("0.log.{stamp}.gz")), &missed);
    // A `.gz` of that container rotated long before the last save is history: not read.
    let (history, _) = cri_lines("history", 200, 4);
    let old_stamp = (last_save - chrono::TimeDelta::hours(1)).format("%Y%m%d-%H%M%S");
    write_gz(&new_dir.join(format!("0.log.{old_stamp}.gz")), &history);
    let tail = Harness::start((dir, root), vec![checkpoint], |config| {
        config.previous_run_until = Some(last_save);
    });
    tail.wait_lines(10).await;
    let ignored = tail.counter("logrelay_agent_compressed_files_ignored_total", &[]);
    let events = tail.stop().await;
    assert_exactly_once(&events, &[&missed_expected]);
    assert_eq!(ignored, 1);
}

fn java_lines(config: &mut TailerConfig) {
    config.multiline = Some(Arc::new(
        crate::parse::multiline::rules::MultilineRule::Java,
    ));
    config.multiline_timeout = Duration::from_secs(600);
}

#[tokio::test]
async fn a_java_trace_held_at_a_restart_is_shipped_whole_once() {
    let (dir, root) = Harness::dir();
    let live = container_dir(&root, "ns", "p", "c").join("0.log");
    let trace = [
        "java.lang.IllegalStateException: order 42 not found",
        "\tat com.example.shop.OrderService.load(OrderService.java:57)",
        "\tat com.example.shop.OrderController.get(OrderController.java:31)",
        "Caused by: java.sql.SQLException: Connection refused",
        "\t... 3 more",
    ];
    // containerd splits one frame into `P` + `F` and stderr lands between the trace's lines.
    let mut text = cri(1, "stdout", "F", "INFO before");
    text.push_str(&cri(2, "stdout", "F", trace[0]));
    text.push_str(&cri(3, "stdout", "P", "\tat com.example.shop.OrderSe"));
    text.push_str(&cri(4, "stderr", "F", "err-1"));
    text.push_str(&cri(5, "stdout", "F", "rvice.load(OrderService.java:57)"));
    fs::write(&live, &text).expect("write");
    let tail = Harness::start((dir, root), Vec::new(), java_lines);
    tail.wait_lines(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (first, dir) = tail.stop_keeping_dir().await;
    assert_eq!(messages(&first), ["INFO before"], "the trace is held");
    let checkpoint = checkpoint_after(&first, &live);
    let trace_start = cri(1, "stdout", "F", "INFO before").len() as u64;
    assert_eq!(checkpoint.unfinished.stdout, Some(trace_start));
    assert!(checkpoint.unfinished.stderr.is_some(), "err-1 is held too");
    // The rest of the trace and the next lines arrive while the agent is down.
    let mut rest = String::new();
    for (n, line) in trace[2..].iter().enumerate() {
        rest.push_str(&cri(6 + n as u64, "stdout", "F", line));
    }
    rest.push_str(&cri(10, "stdout", "F", "INFO after"));
    rest.push_str(&cri(11, "stderr", "F", "err-2"));
    append(&live, &rest);
    let tail = Harness::start(dir, vec![checkpoint], java_lines);
    tail.wait_lines(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let joined = tail.counter("logrelay_agent_multiline_records_total", &[]);
    let events = tail.stop().await;
    assert_eq!(
        messages(&events),
        [trace.join("\n").as_str(), "err-1"],
        "the trace is whole and INFO before is not shipped again"
    );
    assert_eq!(joined, 1);
}

#[tokio::test]
async fn a_trace_at_the_end_of_the_output_is_shipped_after_the_multiline_timeout() {
    let tail = Harness::start(Harness::dir(), Vec::new(), |config| {
        java_lines(config);
        config.multiline_timeout = Duration::from_millis(300);
    });
    let live = tail.container("ns", "p", "c").join("0.log");
    append(
        &live,
        &cri(
            1,
            "stderr",
            "F",
            "java.lang.OutOfMemoryError: Java heap space",
        ),
    );
    append(
        &live,
        &cri(
            2,
            "stderr",
            "F",
            "\tat java.util.Arrays.copyOf(Arrays.java:3512)",
        ),
    );
    tail.wait_lines(1).await;
    let events = tail.stop().await;
    assert_eq!(
        messages(&events),
        [
            "java.lang.OutOfMemoryError: Java heap space\n\tat java.util.Arrays.copyOf(Arrays.java:3512)"
        ]
    );
    assert_ranges_contiguous(&events);
}

/// Two rotated files in `container`, read one at a time (cap 1): deleting both loses the unread one.
fn two_rotated_files(container: &Path) {
    for name in ["a", "b"] {
        let (text, _) = cri_lines(name, 0, 20);
        fs::write(container.join(format!("0.log.{name}")), text).expect("write");
    }
}

#[tokio::test]
async fn lost_bytes_series_of_a_pod_whose_files_are_gone_expire_and_a_listed_pods_stay() {
    use crate::server::recorder::SplitRecorder;
    use logrelay_common::http_endpoint::MetricsText;
    let (_dir, root) = Harness::dir();
    let listed = container_dir(&root, "shop", "api-9", "c");
    let gone = container_dir(&root, "shop", "gone-1", "c");
    two_rotated_files(&listed);
    two_rotated_files(&gone);
    append(&listed.join("0.log"), &cri(1, "stdout", "F", "still here"));
    let idle = Duration::from_millis(2_500);
    let recorder = SplitRecorder::new(idle);
    let metrics = recorder.handle();
    let record = RecordContext {
        cluster_id: "c1".into(),
        node_name: "node-1".into(),
    };
    let mut config = TailerConfig::new(&root, record);
    config.max_open_rotated_per_pod = 1;
    let (sender, mut receiver) = mpsc::channel(1024);
    let tailer = Tailer::new(config, Vec::new(), FileRegistry::new(), sender);
    let stopper = tailer.stopper();
    let thread = std::thread::spawn(move || {
        metrics::with_local_recorder(&recorder, || tailer.run_blocking())
    });
    let drain = tokio::spawn(async move { while receiver.recv().await.is_some() {} });
    // Delete as soon as the four rotated files are found: with one open rotated file per pod, each
    // pod's second one is still waiting for its slot then, however fast the reader is.
    let deadline = Instant::now() + WAIT;
    while !metrics
        .render()
        .contains("logrelay_agent_files_discovered_total{kind=\"rotated\"} 4")
    {
        assert!(Instant::now() < deadline, "{}", metrics.render());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for name in ["a", "b"] {
        fs::remove_file(listed.join(format!("0.log.{name}"))).expect("delete");
    }
    fs::remove_dir_all(gone.parent().expect("pod dir")).expect("delete pod");
    let deadline = Instant::now() + WAIT;
    while !(metrics.render().contains("pod=\"api-9\"")
        && metrics.render().contains("pod=\"gone-1\""))
    {
        assert!(Instant::now() < deadline, "{}", metrics.render());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Rescans (every second) go on for longer than the idle timeout.
    let expired_by = Instant::now() + idle * 2;
    while Instant::now() < expired_by {
        metrics.render();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let text = metrics.render();
    stopper.stop();
    thread
        .join()
        .expect("tailer thread")
        .expect("tailer ends cleanly");
    drain.await.expect("drain");
    assert!(!text.contains("gone-1"), "{text}");
    assert!(
        text.contains("pod=\"api-9\",reason=\"removed_unread\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn a_pods_multiline_annotation_joins_its_traces_and_overrides_the_flag() {
    let tail = Harness::start(Harness::dir(), Vec::new(), |config| {
        java_lines(config);
        config.multiline_timeout = Duration::from_millis(300);
        // What the metadata index answers: `python` for pod "py", `off` for "raw", nothing else.
        config.pod_multiline = Some(super::PodMultiline(Arc::new(|pod: &PodLogPath| match pod
            .pod_name
            .as_str()
        {
            "py" => Some("python".to_owned()),
            "raw" => Some("off".to_owned()),
            _ => None,
        })));
    });
    let traceback = [
        "Traceback (most recent call last):",
        "  File \"/app/main.py\", line 9, in <module>",
        "    total = 1 / count",
        "ZeroDivisionError: division by zero",
    ];
    let java = ["java.lang.Error: boom", "\tat A.b(A.java:1)"];
    for pod in ["py", "raw", "jvm"] {
        let live = tail.container("ns", pod, "c").join("0.log");
        let lines: &[&str] = if pod == "py" { &traceback } else { &java };
        for (n, line) in lines.iter().enumerate() {
            append(&live, &cri(n as u64, "stderr", "F", line));
        }
    }
    tail.wait_lines(1 + 2 + 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = tail.stop().await;
    let mut got = messages(&events);
    got.sort();
    let mut expected = vec![
        traceback.join("\n"),
        java[0].to_owned(),
        java[1].to_owned(),
        java.join("\n"),
    ];
    expected.sort();
    assert_eq!(got, expected, "py: python; raw: off; jvm: the flag's java");
}

#[tokio::test]
async fn a_partial_line_of_a_backlogged_file_is_not_flushed_before_its_next_chunk_is_read() {
    let (_dir, root) = Harness::dir();
    let live = container_dir(&root, "ns", "p", "c").join("0.log");
    // Filler, then a `P` chunk inside the first read and its `F` chunk past it.
    let mut text = String::new();
    let mut n = 0;
    while text.len() < READ_CHUNK_BYTES - 6_000 {
        text.push_str(&cri(n, "stdout", "F", &format!("filler-{n:05}")));
        n += 1;
    }
    let (head, tail_part) = ("h".repeat(4_000), "t".repeat(8_000));
    text.push_str(&cri(n, "stdout", "P", &head));
    text.push_str(&cri(n + 1, "stdout", "F", &tail_part));
    assert!(
        text.len() > READ_CHUNK_BYTES,
        "the F chunk is past the first read"
    );
    fs::write(&live, &text).expect("write");
    let mut config = TailerConfig::new(
        &root,
        RecordContext {
            cluster_id: "c1".into(),
            node_name: "node-1".into(),
        },
    );
    config.partial_flush_timeout = Duration::from_millis(200);
    let (sender, mut receiver) = mpsc::channel(16);
    let tailer = Tailer::new(config, Vec::new(), FileRegistry::new(), sender);
    let stopper = tailer.stopper();
    let thread = std::thread::spawn(move || tailer.run_blocking());
    // Delivery is slow: the tailer waits in the middle of the first read for longer than the
    // partial timeout.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut got = Vec::new();
    while got.len() < n as usize + 1 {
        match tokio::time::timeout(WAIT, receiver.recv()).await {
            Ok(Some(SourceEvent::Line(line))) => got.push(line.record.message),
            Ok(Some(_)) => {}
            other => panic!("lines stopped after {}: {other:?}", got.len()),
        }
    }
    stopper.stop();
    drop(receiver);
    let _ = thread.join();
    let whole = got.last() == Some(&format!("{head}{tail_part}"));
    assert!(whole, "one whole line, not two: {} lines", got.len());
}

#[tokio::test]
async fn start_at_end_skips_existing_lines_on_a_first_start_and_reads_new_files_whole() {
    let (dir, root) = Harness::dir();
    let live = container_dir(&root, "ns", "old", "c").join("0.log");
    let (history, _) = cri_lines("history", 0, 20);
    // The line being written when the agent starts: its first part is already there.
    let unfinished = cri(20, "stdout", "F", "in-flight");
    let (head, rest) = unfinished.split_at(30);
    fs::write(&live, format!("{history}{head}")).expect("write");
    let rotated = container_dir(&root, "ns", "old", "c").join("0.log.20240101-000000");
    fs::write(&rotated, cri_lines("rotated", 0, 5).0).expect("write");
    let tail = Harness::start((dir, root), Vec::new(), |config| {
        config.start_at = StartAt::End;
    });
    tail.wait_counter("logrelay_agent_files_started_at_end_total", 2)
        .await;
    append(&live, rest);
    let (more, more_expected) = cri_lines("live", 21, 3);
    append(&live, &more);
    // A pod that appears after the start is read from its first line.
    let new_pod = tail.container("ns", "new", "c").join("0.log");
    let (new_text, new_expected) = cri_lines("new", 0, 4);
    fs::write(&new_pod, &new_text).expect("write");
    tail.wait_lines(1 + 3 + 4).await;
    let skipped = tail.counter("logrelay_agent_bytes_skipped_at_start_total", &[]);
    let events = tail.stop().await;
    let mut live_expected = vec!["in-flight".to_owned()];
    live_expected.extend(more_expected);
    assert_exactly_once(&events, &[&live_expected, &new_expected]);
    assert_eq!(
        skipped,
        history.len() as u64 + cri_lines("rotated", 0, 5).0.len() as u64
    );
}

#[tokio::test]
async fn start_at_beginning_reads_existing_lines_and_end_does_not_apply_after_a_checkpoint() {
    let (dir, root) = Harness::dir();
    let live = container_dir(&root, "ns", "old", "c").join("0.log");
    let (history, expected) = cri_lines("history", 0, 6);
    fs::write(&live, &history).expect("write");
    let tail = Harness::start((dir, root), Vec::new(), |_| {});
    tail.wait_lines(6).await;
    let (events, (dir, root)) = tail.stop_keeping_dir().await;
    assert_exactly_once(&events, &[&expected]);

    // A later start (checkpoints exist): a file without one is read whole even with `end`.
    let other = container_dir(&root, "ns", "other", "c").join("0.log");
    let (other_text, other_expected) = cri_lines("other", 0, 3);
    fs::write(&other, &other_text).expect("write");
    let tail = Harness::start(
        (dir, root),
        vec![checkpoint_at(&live, history.len() as u64)],
        |config| config.start_at = StartAt::End,
    );
    tail.wait_lines(3).await;
    let events = tail.stop().await;
    assert_exactly_once(&events, &[&other_expected]);
}

#[tokio::test]
async fn a_first_start_reads_the_gz_history_with_beginning_and_ignores_it_with_end() {
    for start_at in [StartAt::Beginning, StartAt::End] {
        let (dir, root) = Harness::dir();
        let container = container_dir(&root, "ns", "old", "c");
        let (older, older_expected) = cri_lines("older", 0, 4);
        write_gz(&container.join("0.log.20240101-000000.gz"), &older);
        let (old, old_expected) = cri_lines("old", 4, 3);
        write_gz(&container.join("0.log.20240101-010000.gz"), &old);
        let (live, live_expected) = cri_lines("live", 7, 2);
        fs::write(container.join("0.log"), &live).expect("write");
        let tail = Harness::start((dir, root), Vec::new(), |config| {
            config.start_at = start_at;
        });
        if start_at == StartAt::Beginning {
            tail.wait_lines(4 + 3 + 2).await;
            let events = tail.stop().await;
            assert_exactly_once(&events, &[&older_expected, &old_expected, &live_expected]);
        } else {
            tail.wait_counter("logrelay_agent_compressed_files_ignored_total", 2)
                .await;
            let (more, more_expected) = cri_lines("more", 9, 2);
            append(&container.join("0.log"), &more);
            tail.wait_lines(2).await;
            let events = tail.stop().await;
            assert_exactly_once(&events, &[&more_expected]);
        }
    }
}
