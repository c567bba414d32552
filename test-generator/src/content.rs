//! Realistic log-line text: weighted levels, modules, request ids, users, durations, JSON and
//! plain-text lines in the timestamp styles real programs print, non-ASCII text, and occasional
//! multi-KiB and >16 KiB lines. Everything is drawn from the caller's random generator, so a seeded
//! generator gives the same text every time.

use crate::seq::SeqToken;
use chrono::{DateTime, Utc};
use logrelay_common::record::Stream;
use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::{Map, Value, json};

/// Relative weights of the levels, in the order of [`Level::ALL`]: INFO most, DEBUG, WARN, ERROR rare.
const LEVEL_WEIGHTS: [u32; 4] = [15, 75, 8, 2];

/// Size range of "multi-KiB" lines (large JSON documents, dumped requests).
const MULTI_KIB_BYTES: (usize, usize) = (2 * 1024, 12 * 1024);

/// Size range of huge lines: above the 16 KiB at which containerd and Docker split lines.
const HUGE_BYTES: (usize, usize) = (16 * 1024 + 1, 64 * 1024);

/// Share of the large lines that are huge (the rest are multi-KiB).
const HUGE_SHARE: f64 = 0.25;

/// Chance that a line carries a non-ASCII note (accents, CJK, Cyrillic, emoji).
const NON_ASCII_NOTE_CHANCE: f64 = 0.05;

/// Chance that a line is written to the other stream than its level suggests.
const STREAM_NOISE: f64 = 0.05;

/// Modules (loggers) a line can come from.
const MODULES: &[&str] = &[
    "http",
    "db",
    "cache",
    "auth",
    "billing",
    "scheduler",
    "grpc",
    "kafka",
    "worker",
    "metrics",
];

/// User names, some of them non-ASCII.
const USERS: &[&str] = &[
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "José",
    "Zoë",
    "Søren",
    "田中太郎",
    "Мария",
    "李雷",
];

/// Non-ASCII notes, including characters outside the Basic Multilingual Plane.
const NOTES: &[&str] = &[
    "✅ terminé",
    "🚀 déployé en production",
    "日本語のログメッセージ",
    "größe überschritten",
    "ошибка сети",
    "emoji 🎉🔥 in der Nachricht",
    "naïve café résumé",
];

/// Words used to pad lines to their target size.
const FILLER_WORDS: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "tenant",
    "shard",
    "replica",
    "payload",
    "segment",
    "offset",
    "commit",
    "région",
    "über",
    "データ",
];

const PATHS: &[&str] = &[
    "/api/v1/orders",
    "/api/v1/users/me",
    "/api/v1/cart",
    "/healthz",
    "/api/v2/search?q=shoes",
    "/login",
];

const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE"];

const ERRORS: &[&str] = &[
    "connection reset by peer",
    "dial tcp 10.0.3.7:5432: i/o timeout",
    "context deadline exceeded",
    "upstream returned 503 Service Unavailable",
    "index out of range [5] with length 3",
];

/// Severity of a generated line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Debug detail.
    Debug,
    /// Normal operation (the most common).
    Info,
    /// Something unusual.
    Warn,
    /// A failure (rare).
    Error,
}

impl Level {
    /// All levels, in the order of the weights table.
    pub const ALL: [Level; 4] = [Level::Debug, Level::Info, Level::Warn, Level::Error];

    fn upper(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }

    fn lower(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    fn klog_letter(self) -> char {
        match self {
            Level::Debug | Level::Info => 'I',
            Level::Warn => 'W',
            Level::Error => 'E',
        }
    }
}

/// The format of the timestamp (and the line around it) inside the message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum TimestampFormat {
    /// zap-style JSON with `"ts"` as float epoch seconds.
    JsonTs,
    /// slog/logrus-style JSON with `"time"` as RFC 3339.
    JsonTime,
    /// Plain text starting with an ISO 8601 timestamp.
    Iso,
    /// klog header: `I0102 15:04:05.123456    1 file.go:42] ...`.
    Klog,
    /// Go's standard `log` package: `2009/11/10 23:00:00 ...`.
    Go,
    /// A different one of the above for each line.
    #[default]
    Mixed,
}

/// How long lines are: a uniform range plus occasional large lines.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizeModel {
    /// Smallest typical line, in bytes (lines are padded up to a size drawn from the range).
    pub min_bytes: usize,
    /// Largest typical line, in bytes (a line is never cut below its natural length).
    pub max_bytes: usize,
    /// Share of lines (0..=1) that are multi-KiB or larger than 16 KiB instead.
    pub large_ratio: f64,
}

impl Default for SizeModel {
    fn default() -> Self {
        Self {
            min_bytes: 80,
            max_bytes: 400,
            large_ratio: 0.01,
        }
    }
}

/// Produces log-line text in one timestamp format with one size model.
#[derive(Debug, Clone)]
pub struct ContentGenerator {
    format: TimestampFormat,
    size: SizeModel,
}

impl ContentGenerator {
    /// A generator for `format` lines sized by `size`.
    pub fn new(format: TimestampFormat, size: SizeModel) -> Self {
        Self { format, size }
    }

    /// Draws the level of the next line (INFO most, ERROR rare).
    pub fn pick_level(&self, rng: &mut impl Rng) -> Level {
        let total: u32 = LEVEL_WEIGHTS.iter().sum();
        let mut pick = rng.random_range(0..total);
        for (level, weight) in Level::ALL.iter().zip(LEVEL_WEIGHTS) {
            if pick < weight {
                return *level;
            }
            pick -= weight;
        }
        Level::Info
    }

    /// Draws the stream a line of `level` goes to: mostly stderr for WARN/ERROR, stdout otherwise.
    pub fn pick_stream(&self, rng: &mut impl Rng, level: Level) -> Stream {
        let usual = match level {
            Level::Warn | Level::Error => Stream::Stderr,
            Level::Debug | Level::Info => Stream::Stdout,
        };
        match (rng.random_bool(STREAM_NOISE), usual) {
            (false, s) => s,
            (true, Stream::Stdout) => Stream::Stderr,
            (true, Stream::Stderr) => Stream::Stdout,
        }
    }

    /// Renders one line (without newline) with `token` near its start.
    pub fn render(
        &self,
        rng: &mut impl Rng,
        level: Level,
        token: &SeqToken<'_>,
        ts: DateTime<Utc>,
    ) -> String {
        let format = match self.format {
            TimestampFormat::Mixed => *[
                TimestampFormat::JsonTs,
                TimestampFormat::JsonTime,
                TimestampFormat::Iso,
                TimestampFormat::Klog,
                TimestampFormat::Go,
            ]
            .choose(rng)
            .unwrap_or(&TimestampFormat::Iso),
            f => f,
        };
        let module = pick(rng, MODULES);
        let event = Event::draw(rng, level);
        let target = self.target_len(rng);
        let token = token.to_string();
        match format {
            TimestampFormat::JsonTs | TimestampFormat::JsonTime => {
                let mut map = Map::new();
                if format == TimestampFormat::JsonTs {
                    map.insert("level".into(), json!(level.lower()));
                    let micros = ts.timestamp_micros() as f64 / 1e6;
                    map.insert("ts".into(), json!(micros));
                    map.insert(
                        "caller".into(),
                        json!(format!("{module}/handler.go:{}", rng.random_range(20..400))),
                    );
                } else {
                    map.insert(
                        "time".into(),
                        json!(logrelay_common::record::format_timestamp(&ts)),
                    );
                    map.insert("level".into(), json!(level.upper()));
                }
                map.insert("seq".into(), json!(token));
                map.insert("msg".into(), json!(event.msg));
                if format == TimestampFormat::JsonTime {
                    map.insert("module".into(), json!(module));
                }
                for (key, value) in event.fields {
                    map.insert(key.into(), value);
                }
                let line = Value::Object(map.clone()).to_string();
                let overhead = r#","payload":"""#.len();
                match target.checked_sub(line.len() + overhead) {
                    Some(need) if need > 0 => {
                        map.insert("payload".into(), json!(filler(rng, need)));
                        Value::Object(map).to_string()
                    }
                    _ => line,
                }
            }
            TimestampFormat::Iso
            | TimestampFormat::Klog
            | TimestampFormat::Go
            | TimestampFormat::Mixed => {
                let mut line = match format {
                    TimestampFormat::Klog => format!(
                        "{}{} {:>7} {module}.go:{}] {token} \"{}\"",
                        level.klog_letter(),
                        ts.format("%m%d %H:%M:%S%.6f"),
                        rng.random_range(1..40_000),
                        rng.random_range(20..400),
                        event.msg
                    ),
                    TimestampFormat::Go => {
                        format!(
                            "{} [{}] {token} {}",
                            ts.format("%Y/%m/%d %H:%M:%S"),
                            level.upper(),
                            event.msg
                        )
                    }
                    _ => format!(
                        "{} {:<5} [{module}] {token} {}",
                        ts.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                        level.upper(),
                        event.msg
                    ),
                };
                let quote_all = format == TimestampFormat::Klog;
                for (key, value) in &event.fields {
                    line.push(' ');
                    line.push_str(key);
                    line.push('=');
                    push_plain_value(&mut line, value, quote_all);
                }
                let overhead = r#" payload="""#.len();
                if let Some(need) = target.checked_sub(line.len() + overhead).filter(|n| *n > 0) {
                    line.push_str(" payload=\"");
                    line.push_str(&filler(rng, need));
                    line.push('"');
                }
                line
            }
        }
    }

    /// Draws the size a line should reach.
    fn target_len(&self, rng: &mut impl Rng) -> usize {
        if self.size.large_ratio > 0.0 && rng.random_bool(self.size.large_ratio.min(1.0)) {
            let (lo, hi) = if rng.random_bool(HUGE_SHARE) {
                HUGE_BYTES
            } else {
                MULTI_KIB_BYTES
            };
            return rng.random_range(lo..=hi);
        }
        let lo = self.size.min_bytes.min(self.size.max_bytes);
        rng.random_range(lo..=self.size.max_bytes.max(lo))
    }
}

/// What happened, before it is formatted: a message and structured fields.
struct Event {
    msg: String,
    fields: Vec<(&'static str, Value)>,
}

impl Event {
    fn draw(rng: &mut impl Rng, level: Level) -> Event {
        let request_id = format!("req-{:012x}", rng.random::<u64>() & 0xffff_ffff_ffff);
        let user = pick(rng, USERS);
        let method = pick(rng, METHODS);
        let path = pick(rng, PATHS);
        let error = pick(rng, ERRORS);
        let variant = rng.random_range(0..3);
        let mut fields: Vec<(&'static str, Value)>;
        let msg = match (level, variant) {
            (Level::Debug, 0) => {
                fields = vec![
                    ("key", json!(format!("session:{user}"))),
                    ("hit", json!(rng.random_bool(0.8))),
                ];
                "cache lookup"
            }
            (Level::Debug, 1) => {
                fields = vec![
                    ("query", json!("SELECT id, name FROM users WHERE id = $1")),
                    (
                        "duration_ms",
                        json!(rng.random_range(0.1..15.0_f64).round()),
                    ),
                ];
                "executing query"
            }
            (Level::Debug, _) => {
                fields = vec![
                    ("topic", json!("orders")),
                    ("partition", json!(rng.random_range(0..12))),
                    ("offset", json!(rng.random_range(1_000..9_000_000))),
                ];
                "received message"
            }
            (Level::Info, 0) => {
                fields = vec![
                    ("method", json!(method)),
                    ("path", json!(path)),
                    (
                        "status",
                        json!(*[200, 200, 201, 204, 304].choose(rng).unwrap_or(&200)),
                    ),
                    ("duration_ms", json!(rng.random_range(1..900))),
                    ("user", json!(user)),
                    ("request_id", json!(request_id)),
                ];
                "request completed"
            }
            (Level::Info, 1) => {
                fields = vec![("user", json!(user)), ("request_id", json!(request_id))];
                "user signed in"
            }
            (Level::Info, _) => {
                fields = vec![
                    ("batch_size", json!(rng.random_range(1..500))),
                    ("duration_ms", json!(rng.random_range(5..3_000))),
                    ("queue", json!("default")),
                ];
                "processed batch"
            }
            (Level::Warn, 0) => {
                fields = vec![
                    ("method", json!(method)),
                    ("path", json!(path)),
                    ("duration_ms", json!(rng.random_range(1_000..30_000))),
                    ("request_id", json!(request_id)),
                ];
                "slow request"
            }
            (Level::Warn, 1) => {
                fields = vec![
                    ("upstream", json!("payments.svc:8443")),
                    ("attempt", json!(rng.random_range(1..5))),
                    ("error", json!(error)),
                ];
                "retrying upstream call"
            }
            (Level::Warn, _) => {
                fields = vec![
                    ("client", json!("mobile-ios")),
                    ("api_version", json!("v1beta1")),
                ];
                "deprecated API version used"
            }
            (Level::Error, 0) => {
                fields = vec![
                    ("method", json!(method)),
                    ("path", json!(path)),
                    (
                        "status",
                        json!(*[500, 502, 503].choose(rng).unwrap_or(&500)),
                    ),
                    ("error", json!(error)),
                    ("request_id", json!(request_id)),
                ];
                "request failed"
            }
            (Level::Error, 1) => {
                fields = vec![
                    ("error", json!(error)),
                    ("retry_in_ms", json!(rng.random_range(100..5_000))),
                ];
                "database connection lost"
            }
            (Level::Error, _) => {
                fields = vec![("error", json!(error)), ("user", json!(user))];
                "panic recovered"
            }
        };
        if rng.random_bool(NON_ASCII_NOTE_CHANCE) {
            fields.push(("note", json!(pick(rng, NOTES))));
        }
        Event {
            msg: msg.to_string(),
            fields,
        }
    }
}

/// Multi-byte characters placed across the 16 KiB cuts of long lines (2, 3 and 4 bytes).
const CUT_CHARS: &[char] = &['é', 'ж', '日', '€', '🚀', '🎉'];

/// Longest filler word in bytes (the words of [`FILLER_WORDS`] and a space).
const MAX_FILLER_WORD: usize = 16;

/// Size ranges of long lines and their weights: most just above 16 KiB, some of a few hundred KiB.
const LONG_LINE_BYTES: [((usize, usize), u32); 3] = [
    ((16 * 1024 + 1, 64 * 1024), 6),
    ((64 * 1024, 160 * 1024), 3),
    ((160 * 1024, 320 * 1024), 1),
];

/// Draws the length of a long line from [`LONG_LINE_BYTES`].
pub fn long_line_len(rng: &mut impl Rng) -> usize {
    let total: u32 = LONG_LINE_BYTES.iter().map(|(_, w)| w).sum();
    let mut pick = rng.random_range(0..total);
    for ((low, high), weight) in LONG_LINE_BYTES {
        if pick < weight {
            return rng.random_range(low..high);
        }
        pick -= weight;
    }
    LONG_LINE_BYTES[0].0.0
}

/// A line of at least `len` bytes whose every multiple of `cut` bytes falls inside a multi-byte
/// character (where containerd cuts its 16 KiB entries), with `token` followed by `after_token`
/// near the start.
pub fn cut_point_line(
    rng: &mut impl Rng,
    level: Level,
    token: &SeqToken<'_>,
    after_token: &str,
    len: usize,
    cut: usize,
    ts: DateTime<Utc>,
) -> String {
    let mut line = format!(
        "{} {:<5} [bulk] {token}{after_token} dump of {len} bytes:",
        ts.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        level.upper()
    );
    let mut boundary = cut;
    while boundary <= line.len() {
        boundary += cut;
    }
    while line.len() < len {
        if line.len() + MAX_FILLER_WORD + 8 < boundary {
            line.push(' ');
            line.push_str(pick(rng, FILLER_WORDS));
            continue;
        }
        let ch = *CUT_CHARS.choose(rng).unwrap_or(&'日');
        let before = rng.random_range(1..ch.len_utf8());
        while line.len() + before < boundary {
            line.push('.');
        }
        line.push(ch);
        boundary += cut;
    }
    line
}

fn pick<'a>(rng: &mut impl Rng, items: &[&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or("")
}

/// Writes a field value the way text loggers do: bare when simple, quoted otherwise.
fn push_plain_value(line: &mut String, value: &Value, quote_all: bool) {
    match value {
        Value::String(s) if quote_all || s.is_empty() || s.contains([' ', '"', '=']) => {
            line.push('"');
            line.push_str(&s.replace('"', "\\\""));
            line.push('"');
        }
        Value::String(s) => line.push_str(s),
        other => line.push_str(&other.to_string()),
    }
}

/// Filler text of at most `len` bytes (at least `len - 3`: a character is never split).
fn filler(rng: &mut impl Rng, len: usize) -> String {
    let mut out = String::with_capacity(len + 16);
    while out.len() < len {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(pick(rng, FILLER_WORDS));
    }
    let mut cut = len.min(out.len());
    while !out.is_char_boundary(cut) {
        cut -= 1;
    }
    out.truncate(cut);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seq;
    use chrono::TimeZone;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn ts() -> DateTime<Utc> {
        Utc.timestamp_opt(1_704_067_200, 123_456_789)
            .single()
            .expect("valid time")
    }

    fn token() -> SeqToken<'static> {
        SeqToken {
            source: "tenant-1/api-abc/api/stdout",
            seq: 17,
        }
    }

    fn lines(format: TimestampFormat, size: SizeModel, n: usize, seed: u64) -> Vec<String> {
        let generator = ContentGenerator::new(format, size);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let level = generator.pick_level(&mut rng);
                generator.render(&mut rng, level, &token(), ts())
            })
            .collect()
    }

    #[test]
    fn every_format_carries_the_token_in_the_first_200_bytes() {
        for format in [
            TimestampFormat::JsonTs,
            TimestampFormat::JsonTime,
            TimestampFormat::Iso,
            TimestampFormat::Klog,
            TimestampFormat::Go,
        ] {
            for line in lines(format, SizeModel::default(), 50, 1) {
                let head: String = line.chars().take(200).collect();
                assert_eq!(seq::parse(&head), Some(token()), "{format:?}: {line}");
                assert!(!line.contains('\n'), "{line}");
            }
        }
    }

    #[test]
    fn timestamps_are_printed_in_the_requested_style() {
        let first = |f| lines(f, SizeModel::default(), 1, 3).remove(0);
        assert!(first(TimestampFormat::Iso).starts_with("2024-01-01T00:00:00.123Z "));
        assert!(first(TimestampFormat::Go).starts_with("2024/01/01 00:00:00 ["));
        let klog = first(TimestampFormat::Klog);
        assert!(klog[1..].starts_with("0101 00:00:00.123456 "), "{klog}");
        let zap: Value = serde_json::from_str(&first(TimestampFormat::JsonTs)).expect("json");
        assert_eq!(zap["ts"], json!(1_704_067_200.123456));
        let slog: Value = serde_json::from_str(&first(TimestampFormat::JsonTime)).expect("json");
        assert_eq!(slog["time"], json!("2024-01-01T00:00:00.123456789Z"));
    }

    #[test]
    fn json_lines_are_valid_json_even_when_padded() {
        let size = SizeModel {
            min_bytes: 1000,
            max_bytes: 2000,
            large_ratio: 0.0,
        };
        for line in lines(TimestampFormat::JsonTime, size, 50, 2) {
            let value: Value = serde_json::from_str(&line).expect("valid JSON");
            assert!(value["payload"].is_string());
            assert!((990..=2000).contains(&line.len()), "{}", line.len());
        }
    }

    #[test]
    fn plain_lines_reach_their_target_size() {
        let size = SizeModel {
            min_bytes: 500,
            max_bytes: 500,
            large_ratio: 0.0,
        };
        for line in lines(TimestampFormat::Iso, size, 30, 4) {
            assert!((497..=500).contains(&line.len()), "{}", line.len());
        }
    }

    #[test]
    fn levels_are_weighted_with_info_most_and_error_rarest() {
        let generator = ContentGenerator::new(TimestampFormat::Iso, SizeModel::default());
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut counts = [0usize; 4];
        for _ in 0..10_000 {
            let level = generator.pick_level(&mut rng);
            counts[Level::ALL
                .iter()
                .position(|l| *l == level)
                .expect("known level")] += 1;
        }
        let [debug, info, warn, error] = counts;
        assert!(
            info > debug && debug > warn && warn > error && error > 0,
            "{counts:?}"
        );
    }

    #[test]
    fn large_lines_include_some_above_16_kib_and_non_ascii_text_appears() {
        let size = SizeModel {
            large_ratio: 0.2,
            ..SizeModel::default()
        };
        let all = lines(TimestampFormat::Mixed, size, 2_000, 6);
        assert!(all.iter().any(|l| l.len() > 16 * 1024));
        assert!(all.iter().any(|l| (2048..16 * 1024).contains(&l.len())));
        assert!(
            all.iter()
                .any(|l| l.contains('é') || l.contains('日') || l.contains('🚀'))
        );
        assert!(all.iter().any(|l| l.starts_with('{')) && all.iter().any(|l| !l.starts_with('{')));
    }

    #[test]
    fn cut_point_lines_put_a_multi_byte_character_across_every_cut() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for _ in 0..20 {
            let len = long_line_len(&mut rng);
            let line = cut_point_line(&mut rng, Level::Info, &token(), "", len, 16 * 1024, ts());
            assert!(line.len() >= len && line.len() < len + 32, "{}", line.len());
            assert_eq!(crate::seq::parse(&line), Some(token()));
            let mut cut = 16 * 1024;
            while cut < line.len() {
                assert!(
                    !line.is_char_boundary(cut),
                    "cut at {cut} splits a character"
                );
                cut += 16 * 1024;
            }
        }
    }

    #[test]
    fn same_seed_gives_the_same_lines() {
        let a = lines(TimestampFormat::Mixed, SizeModel::default(), 100, 9);
        let b = lines(TimestampFormat::Mixed, SizeModel::default(), 100, 9);
        let c = lines(TimestampFormat::Mixed, SizeModel::default(), 100, 10);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
