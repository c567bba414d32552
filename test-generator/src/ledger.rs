//! The ledger: which lines a generator wrote, per source, so `verify` knows what to expect.
//!
//! A JSON file, rewritten atomically (temporary file + rename) periodically and at the end. Each
//! source lists its owner and origin and the range of sequence numbers written: every line
//! `first_seq..=last_seq` exists exactly once (`first_seq` is always 0). A source with no lines yet
//! is not listed. The [`Book`] assigns sequence numbers while generating and produces the ledger.
//!
//! A ledger of the containerd-like writer also says whether lines carry an integrity seal
//! ([`crate::seal`]), which file held which lines and when each file was deleted ([`FileRecord`]),
//! and which lines the rotation itself lost ([`ExcusedRange`]), so a verifier can tell a line the
//! reader lost from one that was never readable.

use chrono::{DateTime, Utc};
use logrelay_common::record::Stream;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Version of the ledger format written by this build.
pub const LEDGER_VERSION: u32 = 1;

/// Largest ledger file read (ample: one source entry is ~300 bytes).
pub const MAX_LEDGER_BYTES: u64 = 256 * 1024 * 1024;

/// Reading or writing a ledger failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The file could not be read or written.
    #[error("ledger {path}: {source}")]
    Io {
        /// The ledger file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a ledger.
    #[error("ledger {path} is not valid: {source}")]
    Json {
        /// The ledger file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The file is larger than [`MAX_LEDGER_BYTES`].
    #[error("ledger {path} is larger than {MAX_LEDGER_BYTES} bytes")]
    TooLarge {
        /// The ledger file.
        path: PathBuf,
    },
    /// The file was written by an incompatible version.
    #[error("ledger {path} has version {found}, this build reads version {LEDGER_VERSION}")]
    Version {
        /// The ledger file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
}

/// The whole ledger file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// Format version ([`LEDGER_VERSION`]).
    pub version: u32,
    /// Which subcommand wrote it: `pods` or `ndjson`.
    pub generator: String,
    /// When this snapshot was written.
    pub written_at: DateTime<Utc>,
    /// True for the final snapshot (the generator stopped), false for a periodic one.
    pub complete: bool,
    /// Every source with at least one line, sorted by source id.
    pub sources: Vec<SourceEntry>,
    /// Whether every line carries an integrity seal ([`crate::seal`]): a delivered line of this
    /// ledger without an intact seal is corrupted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sealed: bool,
    /// The log files written and the lines each held (when the writer tracks them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileRecord>,
    /// Lines that were never readable as whole lines through no fault of a reader.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excused: Vec<ExcusedRange>,
}

/// Lines `first..=last` of one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineRange {
    /// The source id.
    pub source: String,
    /// First sequence number.
    pub first: u64,
    /// Last sequence number (inclusive).
    pub last: u64,
}

/// One log file's content: the whole lines it held and when it was deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path under the pods root, as the file was named last (`.gz` not included).
    pub path: String,
    /// Lines held, per source.
    pub lines: Vec<LineRange>,
    /// Bytes of those lines on disk (uncompressed).
    pub bytes: u64,
    /// Lines held.
    pub line_count: u64,
    /// When the file (or its gzipped form, or its pod's directory) was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Lines never readable whole, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExcusedRange {
    /// The lines.
    #[serde(flatten)]
    pub lines: LineRange,
    /// Why (e.g. `copytruncate`: written between the copy and the truncation).
    pub reason: String,
}

/// Where a source's lines come from and who owns them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceMeta {
    /// The source id used in the lines' sequence tokens.
    pub source: String,
    /// The tenant owning the lines.
    pub customer_id: String,
    /// The cluster id (NDJSON records carry one; the pods tree does not know it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Kubernetes namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Pod UID, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// Container name.
    pub container: String,
    /// The stream, when the source is one stream (pods tree); absent when it mixes both (NDJSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<Stream>,
    /// Application name (the pod's `app.kubernetes.io/name`).
    pub application: String,
}

/// One source in the ledger: its origin and the sequence numbers written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceEntry {
    /// Where the lines come from.
    #[serde(flatten)]
    pub meta: SourceMeta,
    /// First sequence number written (always 0).
    pub first_seq: u64,
    /// Last sequence number written.
    pub last_seq: u64,
}

impl SourceEntry {
    /// How many lines the source wrote.
    pub fn lines(&self) -> u64 {
        self.last_seq
            .saturating_sub(self.first_seq)
            .saturating_add(1)
    }
}

impl Ledger {
    /// Reads and checks a ledger file.
    pub fn read(path: &Path) -> Result<Ledger, LedgerError> {
        let io = |source| LedgerError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut text = Vec::new();
        file.take(MAX_LEDGER_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(io)?;
        if text.len() as u64 > MAX_LEDGER_BYTES {
            return Err(LedgerError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        let mut ledger: Ledger =
            serde_json::from_slice(&text).map_err(|source| LedgerError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        if ledger.version != LEDGER_VERSION {
            return Err(LedgerError::Version {
                path: path.to_path_buf(),
                found: ledger.version,
            });
        }
        ledger
            .sources
            .sort_by(|a, b| a.meta.source.cmp(&b.meta.source));
        Ok(ledger)
    }

    /// Writes the ledger to `path.tmp`, syncs it, then renames it over `path`.
    pub fn write_atomic(&self, path: &Path) -> Result<(), LedgerError> {
        let io = |source| LedgerError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        let text = serde_json::to_vec_pretty(self).map_err(|source| LedgerError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        file.write_all(&text).map_err(io)?;
        file.write_all(b"\n").map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// The entry for `source`, if the ledger lists it.
    pub fn find(&self, source: &str) -> Option<&SourceEntry> {
        self.sources
            .binary_search_by(|e| e.meta.source.as_str().cmp(source))
            .ok()
            .and_then(|i| self.sources.get(i))
    }
}

/// Handle to a registered source in a [`Book`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceHandle(usize);

/// Assigns sequence numbers per source while generating and snapshots them as a [`Ledger`].
#[derive(Debug)]
pub struct Book {
    generator: String,
    sources: Vec<(SourceMeta, u64)>,
    index: HashMap<String, usize>,
}

impl Book {
    /// An empty book for the named generator (`pods` or `ndjson`).
    pub fn new(generator: &str) -> Self {
        Self {
            generator: generator.to_string(),
            sources: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Registers a source (or finds the one with the same id) and returns its handle.
    pub fn register(&mut self, meta: SourceMeta) -> SourceHandle {
        if let Some(i) = self.index.get(&meta.source) {
            return SourceHandle(*i);
        }
        let i = self.sources.len();
        self.index.insert(meta.source.clone(), i);
        self.sources.push((meta, 0));
        SourceHandle(i)
    }

    /// The source id of a handle.
    pub fn source_id(&self, handle: SourceHandle) -> &str {
        self.sources
            .get(handle.0)
            .map(|(m, _)| m.source.as_str())
            .unwrap_or("")
    }

    /// Takes the next sequence number of a source (0, 1, 2, …).
    pub fn next_seq(&mut self, handle: SourceHandle) -> u64 {
        match self.sources.get_mut(handle.0) {
            Some((_, count)) => {
                *count += 1;
                *count - 1
            }
            None => 0,
        }
    }

    /// The ledger as of now: every source with at least one line, sorted by id.
    pub fn snapshot(&self, complete: bool, written_at: DateTime<Utc>) -> Ledger {
        let mut sources: Vec<SourceEntry> = self
            .sources
            .iter()
            .filter(|(_, count)| *count > 0)
            .map(|(meta, count)| SourceEntry {
                meta: meta.clone(),
                first_seq: 0,
                last_seq: count - 1,
            })
            .collect();
        sources.sort_by(|a, b| a.meta.source.cmp(&b.meta.source));
        Ledger {
            version: LEDGER_VERSION,
            generator: self.generator.clone(),
            written_at,
            complete,
            sources,
            sealed: false,
            files: Vec::new(),
            excused: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(source: &str, stream: Option<Stream>) -> SourceMeta {
        SourceMeta {
            source: source.into(),
            customer_id: "tenant-1".into(),
            cluster_id: None,
            namespace: "tenant-1".into(),
            pod: "api-abc".into(),
            pod_uid: Some("uid".into()),
            container: "api".into(),
            stream,
            application: "api".into(),
        }
    }

    #[test]
    fn book_numbers_each_source_from_zero_and_skips_empty_sources() {
        let mut book = Book::new("pods");
        let a = book.register(meta("b/src", Some(Stream::Stdout)));
        let b = book.register(meta("a/src", Some(Stream::Stderr)));
        book.register(meta("c/never-written", None));
        assert_eq!(
            [
                book.next_seq(a),
                book.next_seq(a),
                book.next_seq(b),
                book.next_seq(a)
            ],
            [0, 1, 0, 2]
        );
        assert_eq!(
            book.register(meta("b/src", None)),
            a,
            "same id, same handle"
        );
        let ledger = book.snapshot(true, Utc::now());
        let summary: Vec<(&str, u64, u64)> = ledger
            .sources
            .iter()
            .map(|e| (e.meta.source.as_str(), e.first_seq, e.last_seq))
            .collect();
        assert_eq!(summary, [("a/src", 0, 0), ("b/src", 0, 2)]);
        assert_eq!(ledger.find("b/src").map(SourceEntry::lines), Some(3));
        assert!(ledger.find("c/never-written").is_none());
    }

    #[test]
    fn ledger_round_trips_through_an_atomic_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.json");
        let mut book = Book::new("ndjson");
        let h = book.register(meta("acme/pod-1", None));
        for _ in 0..5 {
            book.next_seq(h);
        }
        let ledger = book.snapshot(false, Utc::now());
        ledger.write_atomic(&path).expect("write");
        assert!(!dir.path().join("ledger.json.tmp").exists());
        assert_eq!(Ledger::read(&path).expect("read"), ledger);
        let text = std::fs::read_to_string(&path).expect("read text");
        assert!(
            text.contains("\"last_seq\": 4") && text.contains("\"source\": \"acme/pod-1\""),
            "{text}"
        );
        assert!(!text.contains("\"stream\""), "absent stream is omitted");
    }

    #[test]
    fn ledger_of_another_version_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.json");
        std::fs::write(
            &path,
            r#"{"version":99,"generator":"pods","written_at":"2024-01-01T00:00:00Z","complete":true,"sources":[]}"#,
        )
        .expect("write");
        assert!(matches!(
            Ledger::read(&path),
            Err(LedgerError::Version { found: 99, .. })
        ));
    }
}
