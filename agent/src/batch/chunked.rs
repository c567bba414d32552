//! An open batch's body: NDJSON lines buffered uncompressed and compressed a chunk at a time, each
//! chunk into its own gzip member, by one compressor that all batches share.
//!
//! A streaming gzip encoder per open batch costs ~350 KiB of deflate state before the first byte,
//! so a node with a few hundred pods would spend most of its memory on idle compressors. Here a
//! quiet batch costs only its pending lines, and the deflate state exists once. A gzip file may
//! hold any number of members (RFC 1952 §2.2; `gzip -d`, the processor's reader and every common
//! tool read them as one stream), and at [`CHUNK_BYTES`] per member the ratio is within a few
//! percent of one long stream.

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use logrelay_common::codec::{CodecError, WRITE_COMPRESSION};
use serde::Serialize;
use std::io;

/// Uncompressed bytes gathered before they are compressed into a member (256 KiB: large enough
/// that per-member overhead and the lost dictionary cost ~1 % of ratio, small enough that
/// hundreds of quiet batches stay cheap).
pub const CHUNK_BYTES: usize = 256 << 10;

/// gzip member header: magic, deflate, no flags, no mtime, XFL (set per level), OS 255 (unknown).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// Index of the header's XFL byte: 2 = slowest/best, 4 = fastest, 0 = other (RFC 1952 §2.3.1).
const GZIP_XFL: usize = 8;

/// Output reserved per compression step when the input gives no better estimate.
const MIN_OUTPUT_STEP: usize = 16 << 10;

/// The deflate state shared by every open batch (one per batcher).
pub struct SharedCompressor {
    compress: Compress,
    header: [u8; 10],
}

impl Default for SharedCompressor {
    fn default() -> Self {
        Self::new(WRITE_COMPRESSION)
    }
}

impl SharedCompressor {
    /// A raw-deflate compressor at `level`.
    pub fn new(level: Compression) -> Self {
        let mut header = GZIP_HEADER;
        header[GZIP_XFL] = match level.level() {
            9 => 2,
            1 => 4,
            _ => 0,
        };
        Self {
            compress: Compress::new(level, false),
            header,
        }
    }

    /// Appends `input` to `out` as one complete gzip member.
    pub fn write_member(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        self.compress.reset();
        out.extend_from_slice(&self.header);
        loop {
            let consumed = usize::try_from(self.compress.total_in()).unwrap_or(input.len());
            let rest = input.get(consumed..).unwrap_or_default();
            out.reserve((rest.len() / 2).max(MIN_OUTPUT_STEP));
            let status = self
                .compress
                .compress_vec(rest, out, FlushCompress::Finish)
                .map_err(io::Error::other)?;
            if status == Status::StreamEnd {
                break;
            }
        }
        let mut crc = Crc::new();
        crc.update(input);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        // ISIZE is the input size modulo 2^32 (RFC 1952).
        out.extend_from_slice(&(input.len() as u32).to_le_bytes());
        Ok(())
    }
}

/// One batch's pending lines: NDJSON not yet compressed, and what was written so far. The
/// batcher compresses the pending lines into a member ([`Self::compress_into`]) when they reach
/// [`CHUNK_BYTES`], when memory needs room, and at the seal; the members go to the disk buffer.
#[derive(Default)]
pub struct ChunkedGzBody {
    pending: Vec<u8>,
    lines: u64,
    uncompressed: u64,
    members: u64,
}

impl ChunkedGzBody {
    /// An empty body (allocates nothing until the first line).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one record as one JSON line. On error nothing of the record is kept and the body
    /// stays valid.
    pub fn write_record<T: Serialize>(&mut self, record: &T) -> Result<(), CodecError> {
        let start = self.pending.len();
        if let Err(err) = serde_json::to_writer(&mut self.pending, record) {
            self.pending.truncate(start);
            return Err(CodecError::Json(err));
        }
        if memchr::memchr(b'\n', &self.pending[start..]).is_some() {
            self.pending.truncate(start);
            return Err(CodecError::LineHasNewline);
        }
        self.pending.push(b'\n');
        self.lines += 1;
        self.uncompressed += (self.pending.len() - start) as u64;
        Ok(())
    }

    /// Lines written so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Uncompressed NDJSON bytes written so far, newlines included.
    pub fn uncompressed_bytes(&self) -> u64 {
        self.uncompressed
    }

    /// Bytes pending compression.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    /// Whether the pending lines fill a chunk.
    pub fn chunk_is_full(&self) -> bool {
        self.pending.len() >= CHUNK_BYTES
    }

    /// Members compressed so far.
    pub fn members(&self) -> u64 {
        self.members
    }

    /// Memory held: the pending buffer's capacity.
    pub fn memory(&self) -> u64 {
        self.pending.capacity() as u64
    }

    /// Compresses the pending lines into one gzip member appended to `out` and releases them.
    /// With nothing pending and no member yet it writes an empty member, so that a finished body
    /// is always a valid gzip file.
    pub fn compress_into(
        &mut self,
        compressor: &mut SharedCompressor,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        if self.pending.is_empty() && self.members > 0 {
            return Ok(());
        }
        compressor
            .write_member(&self.pending, out)
            .map_err(CodecError::Io)?;
        self.members += 1;
        // A quiet partition keeps no buffer between chunks: the memory of many open batches is
        // only what they have pending.
        self.pending = Vec::new();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder;
    use std::io::Read;

    fn gunzip(body: &[u8]) -> String {
        let mut text = String::new();
        MultiGzDecoder::new(body)
            .read_to_string(&mut text)
            .expect("valid gzip");
        text
    }

    /// Writes `record`, compressing a member into `out` whenever a chunk is full.
    fn write(
        body: &mut ChunkedGzBody,
        record: &str,
        compressor: &mut SharedCompressor,
        out: &mut Vec<u8>,
    ) {
        body.write_record(&record).expect("writes");
        if body.chunk_is_full() {
            body.compress_into(compressor, out).expect("compresses");
        }
    }

    #[test]
    fn lines_spanning_many_chunks_read_back_exactly_with_any_gzip_reader() {
        let mut compressor = SharedCompressor::default();
        let mut body = ChunkedGzBody::new();
        let mut object = Vec::new();
        let mut expected = String::new();
        for i in 0..20_000u32 {
            let value = format!("line {i} {}", "x".repeat((i % 97) as usize));
            write(&mut body, &value, &mut compressor, &mut object);
            expected.push_str(&serde_json::to_string(&value).expect("json"));
            expected.push('\n');
        }
        assert_eq!(body.lines(), 20_000);
        assert_eq!(body.uncompressed_bytes(), expected.len() as u64);
        assert!(body.members() >= 4, "spans several members");
        body.compress_into(&mut compressor, &mut object)
            .expect("finishes");
        assert_eq!(gunzip(&object), expected);
    }

    #[test]
    fn interleaved_batches_sharing_one_compressor_stay_separate() {
        let mut compressor = SharedCompressor::default();
        let (mut a, mut b) = (ChunkedGzBody::new(), ChunkedGzBody::new());
        let (mut a_out, mut b_out) = (Vec::new(), Vec::new());
        let line = "y".repeat(1000);
        for _ in 0..600 {
            write(&mut a, &format!("a{line}"), &mut compressor, &mut a_out);
            write(&mut b, &format!("b{line}"), &mut compressor, &mut b_out);
        }
        a.compress_into(&mut compressor, &mut a_out)
            .expect("finishes");
        b.compress_into(&mut compressor, &mut b_out)
            .expect("finishes");
        let (a, b) = (gunzip(&a_out), gunzip(&b_out));
        assert_eq!(a.lines().count(), 600);
        assert!(a.lines().all(|l| l.starts_with("\"ay")));
        assert!(b.lines().all(|l| l.starts_with("\"by")));
    }

    #[test]
    fn empty_body_is_a_valid_empty_gzip_object() {
        let mut compressor = SharedCompressor::default();
        let mut object = Vec::new();
        ChunkedGzBody::new()
            .compress_into(&mut compressor, &mut object)
            .expect("finishes");
        assert_eq!(gunzip(&object), "");
    }

    #[test]
    fn nothing_pending_after_a_member_adds_nothing() {
        let mut compressor = SharedCompressor::default();
        let mut body = ChunkedGzBody::new();
        let mut object = Vec::new();
        body.write_record(&"one").expect("writes");
        body.compress_into(&mut compressor, &mut object)
            .expect("compresses");
        let len = object.len();
        body.compress_into(&mut compressor, &mut object)
            .expect("compresses");
        assert_eq!(object.len(), len);
        assert_eq!(gunzip(&object), "\"one\"\n");
    }

    #[test]
    fn a_record_that_fails_to_serialize_leaves_nothing_behind() {
        use std::collections::HashMap;
        let mut compressor = SharedCompressor::default();
        let mut body = ChunkedGzBody::new();
        body.write_record(&"before").expect("writes");
        // JSON object keys must be strings: a map keyed by a tuple fails mid-serialization.
        let bad: HashMap<(u8, u8), u8> = HashMap::from([((1, 2), 3)]);
        assert!(matches!(body.write_record(&bad), Err(CodecError::Json(_))));
        body.write_record(&"after").expect("writes");
        assert_eq!(body.lines(), 2);
        let mut object = Vec::new();
        body.compress_into(&mut compressor, &mut object)
            .expect("finishes");
        assert_eq!(gunzip(&object), "\"before\"\n\"after\"\n");
    }

    #[test]
    fn a_compressed_body_holds_no_memory() {
        let mut compressor = SharedCompressor::default();
        let mut body = ChunkedGzBody::new();
        body.write_record(&"h".repeat(4 << 20)).expect("writes");
        assert!(body.memory() >= 4 << 20);
        body.compress_into(&mut compressor, &mut Vec::new())
            .expect("compresses");
        assert_eq!(body.memory(), 0);
    }
}
