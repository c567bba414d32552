//! The object format: gzip-compressed NDJSON (one JSON value per line). [`NdjsonGzWriter`]
//! compresses while records are appended; [`NdjsonGzReader`] reads one or more gzip members line
//! by line with memory bounded by [`ReadLimits::max_line_bytes`] plus fixed buffers, whatever the
//! input, and reports a bad line without stopping the stream.

use async_compression::tokio::bufread::GzipDecoder;
use flate2::write::GzEncoder;
use serde::{Serialize, de::DeserializeOwned};
use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncBufRead, AsyncRead, AsyncReadExt, ReadBuf};

/// Compression level for writing: fast, since the agent compresses on the node and log text
/// compresses well even at level 1 (deflate level 1: roughly 5-10× on typical logs).
pub const WRITE_COMPRESSION: flate2::Compression = flate2::Compression::fast();
/// Names accepted by [`parse_compression_level`] besides the numbers 1–9.
pub const COMPRESSION_LEVEL_NAMES: &str = "fast (1), default (6), best (9) or a number 1-9";

/// Parses a deflate level as operators write it: `fast` (1, [`WRITE_COMPRESSION`]), `default`
/// (6, zlib's default), `best` (9) or a number 1–9 (0, stored without compression, is refused:
/// it would multiply the bytes stored and sent).
pub fn parse_compression_level(value: &str) -> Result<flate2::Compression, String> {
    let level = match value.trim().to_ascii_lowercase().as_str() {
        "fast" => 1,
        "default" => 6,
        "best" => 9,
        number => number
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=9).contains(n))
            .ok_or_else(|| format!("{value:?} is not {COMPRESSION_LEVEL_NAMES}"))?,
    };
    Ok(flate2::Compression::new(level))
}
/// Default limit on an object's decompressed size (1 GiB). Agent objects are a few MiB; the limit
/// only stops a hostile or broken object (a gzip bomb) from keeping a processor busy for long.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: u64 = 1 << 30;
/// Default limit on one line (8 MiB): a record carries one container log line of at most the
/// agent's 1 MiB line cap, which JSON escaping can grow up to six times (a control character is
/// written `\u0001`); 8 MiB leaves room for that and for metadata while bounding the memory one
/// line can take.
pub const DEFAULT_MAX_LINE_BYTES: usize = 8 << 20;
/// Size of the reader's decompressed-data buffer (64 KiB: amortizes polls, bounded memory).
pub const READ_BUFFER_BYTES: usize = 64 << 10;
/// A writer's serialization buffer above this capacity is freed after the record (1 MiB), so one
/// huge record does not pin memory for the rest of the object.
const WRITE_BUFFER_KEEP_BYTES: usize = 1 << 20;

/// Writes records as gzip NDJSON, compressing as it goes.
///
/// After an error the gzip stream is incomplete; drop the writer and its output.
pub struct NdjsonGzWriter<W: Write> {
    encoder: GzEncoder<CountingWriter<W>>,
    line: Vec<u8>,
    lines: u64,
    uncompressed: u64,
}

impl<W: Write> NdjsonGzWriter<W> {
    /// Starts a gzip stream on `inner` at [`WRITE_COMPRESSION`].
    pub fn new(inner: W) -> Self {
        Self {
            encoder: GzEncoder::new(CountingWriter { inner, count: 0 }, WRITE_COMPRESSION),
            line: Vec::new(),
            lines: 0,
            uncompressed: 0,
        }
    }

    /// Appends one record as one JSON line.
    pub fn write_record<T: Serialize>(&mut self, record: &T) -> Result<(), CodecError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, record).map_err(CodecError::Json)?;
        let result = if self.line.contains(&b'\n') {
            Err(CodecError::LineHasNewline)
        } else {
            self.line.push(b'\n');
            self.encoder.write_all(&self.line).map_err(CodecError::Io)
        };
        let written = self.line.len() as u64;
        if self.line.capacity() > WRITE_BUFFER_KEEP_BYTES {
            self.line = Vec::new();
        }
        result?;
        self.lines += 1;
        self.uncompressed += written;
        Ok(())
    }

    /// Appends one already-serialized line; `line` must not contain `\n` (the newline is added).
    pub fn write_raw_line(&mut self, line: &[u8]) -> Result<(), CodecError> {
        if line.contains(&b'\n') {
            return Err(CodecError::LineHasNewline);
        }
        self.encoder.write_all(line).map_err(CodecError::Io)?;
        self.encoder.write_all(b"\n").map_err(CodecError::Io)?;
        self.lines += 1;
        self.uncompressed += line.len() as u64 + 1;
        Ok(())
    }

    /// Lines written so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Uncompressed bytes written so far, newlines included.
    pub fn uncompressed_bytes(&self) -> u64 {
        self.uncompressed
    }

    /// Compressed bytes handed to `inner` so far (the encoder holds back up to a block).
    pub fn compressed_bytes_so_far(&self) -> u64 {
        self.encoder.get_ref().count
    }

    /// Ends the gzip stream (flushing the trailer) and returns `inner`.
    pub fn finish(self) -> Result<W, CodecError> {
        let mut counting = self.encoder.finish().map_err(CodecError::Io)?;
        counting.inner.flush().map_err(CodecError::Io)?;
        Ok(counting.inner)
    }
}

/// Counts the bytes written through it.
struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.count += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Encodes records into one gzip NDJSON object in memory.
pub fn encode_records<T: Serialize>(records: &[T]) -> Result<Vec<u8>, CodecError> {
    let mut writer = NdjsonGzWriter::new(Vec::new());
    for record in records {
        writer.write_record(record)?;
    }
    writer.finish()
}

/// Limits that keep reading bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Stop with [`CodecError::TooLarge`] after this many decompressed bytes.
    pub max_decompressed_bytes: u64,
    /// Lines longer than this (newline excluded) are skipped with [`LineError::TooLong`].
    pub max_line_bytes: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

/// Reads gzip NDJSON line by line: one or more concatenated gzip members (zero bytes is not
/// gzip and is an error), lines separated by `\n` (a trailing `\r` is JSON whitespace), blank
/// lines skipped, the last line may lack its newline. Memory stays within `max_line_bytes` plus
/// [`READ_BUFFER_BYTES`] and the inflate window, whatever the input.
///
/// A bad line is reported as a [`LineError`] item and reading goes on. A [`CodecError`] ends the
/// stream; later calls return an error again.
pub struct NdjsonGzReader<R: AsyncBufRead + Unpin> {
    decoder: GzipDecoder<Source<R>>,
    limits: ReadLimits,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// The current line when it had to be assembled (it crossed the end of `buf`).
    line: Vec<u8>,
    /// The current line's range in `buf` when it lies there whole (lent, not copied).
    lent: Option<(usize, usize)>,
    line_number: u64,
    decompressed: u64,
    skipped_empty: u64,
    state: ReadState,
}

/// Where the reader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    Reading,
    Eof,
    Failed,
}

impl<R: AsyncBufRead + Unpin> NdjsonGzReader<R> {
    /// Starts reading `inner` (one or more gzip members).
    pub fn new(inner: R, limits: ReadLimits) -> Self {
        let mut decoder = GzipDecoder::new(Source {
            inner,
            failed: false,
        });
        decoder.multiple_members(true);
        Self {
            decoder,
            limits,
            buf: vec![0; READ_BUFFER_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            line: Vec::new(),
            lent: None,
            line_number: 0,
            decompressed: 0,
            skipped_empty: 0,
            state: ReadState::Reading,
        }
    }

    /// The next non-blank line with its 1-based line number (blank lines count), or `None` at the
    /// end. The bytes are not checked for UTF-8; an over-long line is skipped and reported as
    /// [`LineError::TooLong`] without being buffered.
    pub async fn next_line(
        &mut self,
    ) -> Result<Option<(u64, Result<Vec<u8>, LineError>)>, CodecError> {
        Ok(self
            .read_line()
            .await?
            .map(|(number, result)| (number, result.map(|()| self.current().to_vec()))))
    }

    /// Like [`next_line`](Self::next_line), but lends the line instead of copying it (no
    /// allocation per line); the slice is valid until the next call.
    pub async fn next_line_borrowed(
        &mut self,
    ) -> Result<Option<(u64, Result<&[u8], LineError>)>, CodecError> {
        Ok(self
            .read_line()
            .await?
            .map(|(number, result)| (number, result.map(|()| self.current()))))
    }

    /// The next non-blank line parsed as JSON into `T`, with its 1-based line number, or `None`
    /// at the end. Bad UTF-8, bad JSON and over-long lines are per-line errors.
    pub async fn next_record<T: DeserializeOwned>(
        &mut self,
    ) -> Result<Option<(u64, Result<T, LineError>)>, CodecError> {
        let Some((number, result)) = self.read_line().await? else {
            return Ok(None);
        };
        let parsed = result.and_then(|()| {
            let line = self.current();
            std::str::from_utf8(line).map_err(|_| LineError::InvalidUtf8)?;
            serde_json::from_slice(line).map_err(|e| LineError::InvalidJson {
                message: e.to_string(),
            })
        });
        Ok(Some((number, parsed)))
    }

    /// Decompressed bytes read so far.
    pub fn decompressed_bytes(&self) -> u64 {
        self.decompressed
    }

    /// Blank lines skipped so far.
    pub fn skipped_empty_lines(&self) -> u64 {
        self.skipped_empty
    }

    /// Lines seen so far, blank ones included (the number of the last line returned or skipped).
    pub fn lines_read(&self) -> u64 {
        self.line_number
    }

    /// The line [`read_line`](Self::read_line) found last.
    fn current(&self) -> &[u8] {
        match self.lent {
            Some((start, end)) => self.buf.get(start..end).unwrap_or_default(),
            None => &self.line,
        }
    }

    /// Finds the next non-blank line: lent from the buffer when it lies there whole (most lines),
    /// otherwise assembled into `self.line`.
    async fn read_line(&mut self) -> Result<Option<(u64, Result<(), LineError>)>, CodecError> {
        loop {
            self.line.clear();
            self.lent = None;
            let chunk = &self.buf[self.start..self.end];
            if let Some(at) = memchr::memchr(b'\n', chunk)
                && at <= self.limits.max_line_bytes
            {
                let (start, end) = (self.start, self.start + at);
                self.start = end + 1;
                self.line_number += 1;
                if self.buf[start..end].iter().all(u8::is_ascii_whitespace) {
                    self.skipped_empty += 1;
                    continue;
                }
                self.lent = Some((start, end));
                return Ok(Some((self.line_number, Ok(()))));
            }
            let mut too_long: Option<u64> = None;
            let mut saw_bytes = false;
            loop {
                if self.start == self.end && !self.fill().await? {
                    if !saw_bytes {
                        return Ok(None);
                    }
                    break;
                }
                saw_bytes = true;
                let chunk = &self.buf[self.start..self.end];
                let newline = memchr::memchr(b'\n', chunk);
                let part = &chunk[..newline.unwrap_or(chunk.len())];
                append_bounded(
                    &mut self.line,
                    &mut too_long,
                    self.limits.max_line_bytes,
                    part,
                );
                match newline {
                    Some(at) => {
                        self.start += at + 1;
                        break;
                    }
                    None => self.start = self.end,
                }
            }
            self.line_number += 1;
            if let Some(len) = too_long {
                let limit = self.limits.max_line_bytes;
                return Ok(Some((
                    self.line_number,
                    Err(LineError::TooLong { len, limit }),
                )));
            }
            if self.line.iter().all(u8::is_ascii_whitespace) {
                self.skipped_empty += 1;
                continue;
            }
            return Ok(Some((self.line_number, Ok(()))));
        }
    }

    /// Refills the buffer; `false` at the end of the data.
    async fn fill(&mut self) -> Result<bool, CodecError> {
        match self.state {
            ReadState::Reading => {}
            ReadState::Eof => return Ok(false),
            ReadState::Failed => {
                return Err(CodecError::Io(io::Error::other(
                    "reader already failed; it cannot be read further",
                )));
            }
        }
        // Never decompress more than one byte past the limit.
        let room = self
            .limits
            .max_decompressed_bytes
            .saturating_sub(self.decompressed)
            .saturating_add(1);
        let want = usize::try_from(room).map_or(self.buf.len(), |room| room.min(self.buf.len()));
        let read = self.decoder.read(&mut self.buf[..want]).await;
        let n = match read {
            Ok(n) => n,
            Err(error) => {
                self.state = ReadState::Failed;
                return Err(if self.decoder.get_ref().failed {
                    CodecError::Io(error)
                } else {
                    CodecError::Gzip(error)
                });
            }
        };
        if n == 0 {
            self.state = ReadState::Eof;
            return Ok(false);
        }
        self.decompressed += n as u64;
        if self.decompressed > self.limits.max_decompressed_bytes {
            self.state = ReadState::Failed;
            return Err(CodecError::TooLarge {
                limit: self.limits.max_decompressed_bytes,
            });
        }
        self.start = 0;
        self.end = n;
        Ok(true)
    }
}

/// Appends `part` to `line` unless the line would pass `max`; then only its length is counted.
fn append_bounded(line: &mut Vec<u8>, too_long: &mut Option<u64>, max: usize, part: &[u8]) {
    if let Some(len) = too_long {
        *len += part.len() as u64;
        return;
    }
    let needed = line.len() + part.len();
    if needed > max {
        *too_long = Some(needed as u64);
        line.clear();
        return;
    }
    if line.capacity() < needed {
        // Grow geometrically, but never past `max`.
        let target = needed.max(line.capacity() * 2).min(max);
        line.reserve_exact(target - line.len());
    }
    line.extend_from_slice(part);
}

/// The compressed input; remembers whether an error came from it rather than from the decoder.
struct Source<R> {
    inner: R,
    failed: bool,
}

impl<R: AsyncRead + Unpin> AsyncRead for Source<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Err(_)) = &result {
            this.failed = true;
        }
        result
    }
}

impl<R: AsyncBufRead + Unpin> AsyncBufRead for Source<R> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_fill_buf(cx) {
            Poll::Ready(Err(error)) => {
                this.failed = true;
                Poll::Ready(Err(error))
            }
            other => other,
        }
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        Pin::new(&mut self.get_mut().inner).consume(amt);
    }
}

/// The object cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Reading or writing the underlying stream failed.
    #[error("i/o error: {0}")]
    Io(#[source] io::Error),
    /// The data is not valid gzip (corrupt, truncated or not gzip at all).
    #[error("invalid gzip data: {0}")]
    Gzip(#[source] io::Error),
    /// The object decompresses to more than the limit (a gzip bomb or a broken object).
    #[error("object decompresses to more than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// A record could not be serialized.
    #[error("cannot serialize record: {0}")]
    Json(#[source] serde_json::Error),
    /// A line to write contained a newline.
    #[error("line to write contains a newline")]
    LineHasNewline,
}

/// One line cannot be used; the stream goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line is not valid JSON for the expected type.
    #[error("invalid JSON: {message}")]
    InvalidJson {
        /// The parser's message.
        message: String,
    },
    /// The line is not valid UTF-8.
    #[error("line is not valid UTF-8")]
    InvalidUtf8,
    /// The line is longer than the limit; it was skipped.
    #[error("line is {len} bytes, more than the {limit} allowed")]
    TooLong {
        /// Length of the line (newline excluded).
        len: u64,
        /// The limit.
        limit: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::LogRecord;
    use flate2::read::GzDecoder;
    use serde::Deserialize;
    use std::io::Read;
    use std::time::{Duration, Instant};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Rec {
        n: u64,
        text: String,
    }

    fn rec(n: u64) -> Rec {
        Rec {
            n,
            text: format!("line {n} with \"quotes\", a\nnewline and é"),
        }
    }

    #[test]
    fn compression_levels_parse_by_name_and_number() {
        for (value, level) in [
            ("fast", 1),
            ("Default", 6),
            ("best", 9),
            ("1", 1),
            (" 9 ", 9),
        ] {
            let parsed = parse_compression_level(value).expect("valid level");
            assert_eq!(parsed.level(), level, "{value:?}");
        }
        for bad in ["0", "10", "-1", "fastest", ""] {
            let err = parse_compression_level(bad).expect_err("refused");
            assert!(err.contains("best (9)"), "{bad:?}: {err}");
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).expect("in-memory write");
        encoder.finish().expect("in-memory finish")
    }

    fn reader(data: &[u8], limits: ReadLimits) -> NdjsonGzReader<&[u8]> {
        NdjsonGzReader::new(data, limits)
    }

    async fn read_all<T: DeserializeOwned>(
        data: &[u8],
        limits: ReadLimits,
    ) -> Result<Vec<(u64, Result<T, LineError>)>, CodecError> {
        let mut reader = reader(data, limits);
        let mut out = Vec::new();
        while let Some(item) = reader.next_record().await? {
            out.push(item);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn records_round_trip() {
        let records: Vec<Rec> = (1..=1000).map(rec).collect();
        let mut writer = NdjsonGzWriter::new(Vec::new());
        for r in &records {
            writer.write_record(r).expect("writes");
        }
        assert_eq!(writer.lines(), 1000);
        let expected_bytes: usize = records
            .iter()
            .map(|r| serde_json::to_vec(r).expect("serializes").len() + 1)
            .sum();
        assert_eq!(writer.uncompressed_bytes(), expected_bytes as u64);
        let compressed = writer.finish().expect("finishes");
        assert!(compressed.len() < expected_bytes / 4, "compresses");
        let read = read_all::<Rec>(&compressed, ReadLimits::default())
            .await
            .expect("reads");
        let back: Vec<Rec> = read
            .into_iter()
            .map(|(_, r)| r.expect("valid line"))
            .collect();
        assert_eq!(back, records);
        assert_eq!(encode_records(&records).expect("encodes"), compressed);
    }

    #[tokio::test]
    async fn log_records_round_trip() {
        let line = r#"{"timestamp":"2023-11-14T22:13:20.123456789Z","message":"hi","stream":"stdout","customer_id":"acme","cluster_id":"c1","namespace":"ns","application":"api","pod_name":"p","container_name":"main","node_name":"n1","ingest_timestamp":"2023-11-14T22:13:20.123456789Z","future":1}"#;
        let record: LogRecord = serde_json::from_str(line).expect("valid record");
        let data = encode_records(std::slice::from_ref(&record)).expect("encodes");
        let mut reader = reader(&data, ReadLimits::default());
        let (number, raw) = reader.next_line().await.expect("reads").expect("one line");
        assert_eq!(
            (number, raw),
            (1, Ok(line.as_bytes().to_vec())),
            "byte-exact"
        );
        assert_eq!(reader.next_line().await.expect("reads"), None);
        let mut lender = self::reader(&data, ReadLimits::default());
        let (number, lent) = lender
            .next_line_borrowed()
            .await
            .expect("reads")
            .expect("one line");
        assert_eq!((number, lent), (1, Ok(line.as_bytes())), "lent byte-exact");
        assert_eq!(lender.next_line_borrowed().await.expect("reads"), None);
        let read = read_all::<LogRecord>(&data, ReadLimits::default())
            .await
            .expect("reads");
        assert_eq!(read, [(1, Ok(record))]);
    }

    #[test]
    fn written_object_is_plain_gzip() {
        let mut writer = NdjsonGzWriter::new(Vec::new());
        writer.write_raw_line(br#"{"a":1}"#).expect("writes");
        writer
            .write_record(&serde_json::json!({"b": "x\ny"}))
            .expect("writes");
        let data = writer.finish().expect("finishes");
        let mut text = String::new();
        GzDecoder::new(&data[..])
            .read_to_string(&mut text)
            .expect("standard gzip");
        assert_eq!(text, "{\"a\":1}\n{\"b\":\"x\\ny\"}\n");
    }

    #[test]
    fn raw_lines_with_newlines_are_refused() {
        let mut writer = NdjsonGzWriter::new(Vec::new());
        assert!(matches!(
            writer.write_raw_line(b"a\nb"),
            Err(CodecError::LineHasNewline)
        ));
        assert_eq!((writer.lines(), writer.uncompressed_bytes()), (0, 0));
    }

    #[test]
    fn compressed_bytes_are_counted_as_they_leave() {
        let mut writer = NdjsonGzWriter::new(Vec::new());
        let mut state = 1u64;
        for _ in 0..20_000 {
            // Pseudo-random text compresses poorly, so output leaves the encoder early.
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            writer.write_record(&format!("{state:x}")).expect("writes");
        }
        let so_far = writer.compressed_bytes_so_far();
        assert!(so_far > 0);
        let data = writer.finish().expect("finishes");
        assert!(data.len() as u64 >= so_far);
    }

    #[tokio::test]
    async fn multiple_members_are_read_in_order() {
        let mut data = encode_records(&[rec(1), rec(2)]).expect("encodes");
        data.extend(encode_records(&[rec(3)]).expect("encodes"));
        data.extend(gzip(b"")); // an empty member in between
        data.extend(encode_records(&[rec(4)]).expect("encodes"));
        let read = read_all::<Rec>(&data, ReadLimits::default())
            .await
            .expect("reads");
        let numbers: Vec<(u64, u64)> = read
            .into_iter()
            .map(|(line, r)| (line, r.expect("valid").n))
            .collect();
        assert_eq!(numbers, [(1, 1), (2, 2), (3, 3), (4, 4)]);
    }

    #[tokio::test]
    async fn bad_lines_are_reported_and_reading_goes_on() {
        let text = b"{\"n\":1,\"text\":\"a\"}\nnot json\n\n  \r\n{\"n\":2}\n\xff\xfe\n{\"n\":3,\"text\":\"c\"}";
        let data = gzip(text);
        let mut reader = reader(&data, ReadLimits::default());
        let mut items = Vec::new();
        while let Some(item) = reader.next_record::<Rec>().await.expect("stream is fine") {
            items.push(item);
        }
        assert_eq!(items.len(), 5);
        assert_eq!(
            items[0],
            (
                1,
                Ok(Rec {
                    n: 1,
                    text: "a".into()
                })
            )
        );
        assert!(matches!(&items[1], (2, Err(LineError::InvalidJson { .. }))));
        assert!(
            matches!(&items[2], (5, Err(LineError::InvalidJson { message })) if message.contains("text"))
        );
        assert_eq!(items[3], (6, Err(LineError::InvalidUtf8)));
        assert_eq!(
            items[4],
            (
                7,
                Ok(Rec {
                    n: 3,
                    text: "c".into()
                })
            ),
            "last line without newline"
        );
        assert_eq!(reader.skipped_empty_lines(), 2);
        assert_eq!(reader.lines_read(), 7);
        assert_eq!(reader.decompressed_bytes(), text.len() as u64);
    }

    #[tokio::test]
    async fn lines_across_buffer_ends_read_like_a_plain_split() {
        // Lines of many lengths (blank, whitespace-only, over the limit, longer than the read
        // buffer, one ending exactly at a buffer end) so that some lie whole in the buffer and
        // others cross one or several of its ends; the last has no newline.
        let limits = ReadLimits {
            max_line_bytes: READ_BUFFER_BYTES + 100,
            ..ReadLimits::default()
        };
        let mut lines: Vec<String> = Vec::new();
        let mut length = 1;
        while lines.iter().map(|l| l.len() + 1).sum::<usize>() < 5 * READ_BUFFER_BYTES {
            length = (length * 7 + 13) % 3001;
            lines.push(format!("{{\"n\":{}}}{}", lines.len(), "x".repeat(length)));
            if lines.len().is_multiple_of(17) {
                lines.push(String::new());
                lines.push(" \t\r".to_owned());
            }
        }
        let used: usize = lines.iter().map(|l| l.len() + 1).sum();
        let fill = READ_BUFFER_BYTES - used % READ_BUFFER_BYTES - 1;
        lines.push("e".repeat(fill)); // ends exactly at the end of a buffer
        lines.push("b".repeat(READ_BUFFER_BYTES + 50)); // longer than the buffer, under the limit
        lines.push("t".repeat(READ_BUFFER_BYTES + 101)); // over the limit
        lines.push("é€ last".to_owned());
        let text = lines.join("\n");
        let data = gzip(text.as_bytes());
        let mut reader = reader(&data, limits);
        let mut read = Vec::new();
        while let Some((number, line)) = reader.next_line_borrowed().await.expect("reads") {
            read.push((number, line.map(<[u8]>::to_vec)));
        }
        let expected: Vec<(u64, Result<Vec<u8>, LineError>)> = (1u64..)
            .zip(&lines)
            .filter(|(_, line)| !line.bytes().all(|b| b.is_ascii_whitespace()))
            .map(|(number, line)| {
                let result = if line.len() > limits.max_line_bytes {
                    Err(LineError::TooLong {
                        len: line.len() as u64,
                        limit: limits.max_line_bytes,
                    })
                } else {
                    Ok(line.as_bytes().to_vec())
                };
                (number, result)
            })
            .collect();
        assert_eq!(read.len(), expected.len());
        assert!(read == expected, "every line, numbered, in order");
        assert_eq!(reader.lines_read(), lines.len() as u64);
        assert_eq!(reader.decompressed_bytes(), text.len() as u64);
    }

    #[tokio::test]
    async fn over_long_line_is_skipped_and_the_next_line_read() {
        let limits = ReadLimits {
            max_line_bytes: 1000,
            ..ReadLimits::default()
        };
        let long = format!("{{\"n\":1,\"text\":\"{}\"}}", "x".repeat(300_000));
        let exact = format!("{{\"n\":2,\"text\":\"{}\"}}", "y".repeat(1000 - 17));
        assert_eq!(exact.len(), 1000);
        let text = format!(
            "{long}\n{exact}\n{}\n{long}",
            serde_json::to_string(&rec(3)).expect("serializes")
        );
        let data = gzip(text.as_bytes());
        let mut reader = reader(&data, limits);
        let first = reader
            .next_record::<Rec>()
            .await
            .expect("reads")
            .expect("item");
        assert_eq!(
            first,
            (
                1,
                Err(LineError::TooLong {
                    len: long.len() as u64,
                    limit: 1000
                })
            )
        );
        assert!(
            reader.line.capacity() <= 1000,
            "the long line was not buffered"
        );
        let second = reader
            .next_record::<Rec>()
            .await
            .expect("reads")
            .expect("item");
        assert_eq!(second.0, 2);
        assert_eq!(
            second.1.map(|r| r.n),
            Ok(2),
            "a line of exactly the limit is read"
        );
        assert_eq!(
            reader.next_record::<Rec>().await.expect("reads"),
            Some((3, Ok(rec(3))))
        );
        let last = reader.next_line().await.expect("reads").expect("item");
        assert!(
            matches!(last, (4, Err(LineError::TooLong { .. }))),
            "unterminated last line"
        );
        assert_eq!(reader.next_line().await.expect("reads"), None);
    }

    #[tokio::test]
    async fn gzip_bomb_stops_at_the_limit() {
        // 200 members of 1 MiB of zeros: 200 MiB decompressed from ~200 KiB.
        let member = gzip(&vec![0u8; 1 << 20]);
        let bomb = member.repeat(200);
        assert!(bomb.len() < 1 << 20);
        let limits = ReadLimits {
            max_decompressed_bytes: 1 << 20,
            max_line_bytes: 1 << 20,
        };
        let started = Instant::now();
        let mut reader = reader(&bomb, limits);
        let error = reader.next_line().await.expect_err("too large");
        assert!(
            matches!(error, CodecError::TooLarge { limit } if limit == 1 << 20),
            "{error}"
        );
        assert_eq!(
            reader.decompressed_bytes(),
            (1 << 20) + 1,
            "stops one byte past the limit"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(reader.next_line().await.is_err(), "stays failed");
    }

    #[tokio::test]
    async fn single_member_bomb_stops_at_the_limit() {
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..16 {
            encoder.write_all(&zeros).expect("in-memory write");
        }
        let bomb = encoder.finish().expect("in-memory finish");
        let limits = ReadLimits {
            max_decompressed_bytes: 1 << 20,
            ..ReadLimits::default()
        };
        let error = read_all::<Rec>(&bomb, limits).await.expect_err("too large");
        assert!(matches!(error, CodecError::TooLarge { .. }), "{error}");
        // The same object is fine under a limit it fits.
        let limits = ReadLimits {
            max_decompressed_bytes: 16 << 20,
            max_line_bytes: 1024,
        };
        let read = read_all::<Rec>(&bomb, limits).await.expect("fits");
        assert!(
            matches!(read.as_slice(), [(1, Err(LineError::TooLong { len, .. }))] if *len == 16 << 20)
        );
    }

    #[tokio::test]
    async fn truncated_gzip_is_an_error() {
        let data = encode_records(&(0..100).map(rec).collect::<Vec<_>>()).expect("encodes");
        for cut in [data.len() - 1, data.len() - 8, data.len() / 2, 5] {
            let error = read_all::<Rec>(&data[..cut], ReadLimits::default())
                .await
                .expect_err("truncated");
            assert!(
                matches!(error, CodecError::Gzip(_)),
                "cut at {cut}: {error}"
            );
        }
    }

    #[tokio::test]
    async fn corrupt_gzip_is_an_error() {
        let mut data = encode_records(&(0..100).map(rec).collect::<Vec<_>>()).expect("encodes");
        let crc_at = data.len() - 8;
        data[crc_at] ^= 0xFF;
        let error = read_all::<Rec>(&data, ReadLimits::default())
            .await
            .expect_err("bad CRC");
        assert!(matches!(error, CodecError::Gzip(_)), "{error}");
        let mut garbage_after = encode_records(&[rec(1)]).expect("encodes");
        garbage_after.extend_from_slice(b"trailing garbage");
        let error = read_all::<Rec>(&garbage_after, ReadLimits::default())
            .await
            .expect_err("garbage");
        assert!(matches!(error, CodecError::Gzip(_)), "{error}");
    }

    #[tokio::test]
    async fn plain_text_is_not_gzip() {
        let error = read_all::<Rec>(b"{\"n\":1,\"text\":\"a\"}\n", ReadLimits::default())
            .await
            .expect_err("not gzip");
        assert!(matches!(error, CodecError::Gzip(_)), "{error}");
    }

    #[tokio::test]
    async fn empty_member_has_no_lines_but_empty_input_is_not_gzip() {
        let read = read_all::<Rec>(&gzip(b""), ReadLimits::default())
            .await
            .expect("reads");
        assert!(read.is_empty());
        let error = read_all::<Rec>(b"", ReadLimits::default())
            .await
            .expect_err("zero bytes");
        assert!(matches!(error, CodecError::Gzip(_)), "{error}");
    }

    #[tokio::test]
    async fn input_errors_are_io_errors() {
        let data = encode_records(&[rec(1)]).expect("encodes");
        let failing = tokio::io::BufReader::new(tokio_test_reader(&data[..10]));
        let mut reader = NdjsonGzReader::new(failing, ReadLimits::default());
        let error = reader.next_line().await.expect_err("input fails");
        assert!(matches!(error, CodecError::Io(_)), "{error}");
    }

    /// A reader that yields `head` and then fails.
    fn tokio_test_reader(head: &[u8]) -> impl AsyncRead + Unpin {
        tokio::io::AsyncReadExt::chain(std::io::Cursor::new(head.to_vec()), FailingReader)
    }

    struct FailingReader;

    impl AsyncRead for FailingReader {
        fn poll_read(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            _buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "network down",
            )))
        }
    }
}
