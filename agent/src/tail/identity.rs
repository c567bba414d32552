//! File identity: device and inode (which file on disk) plus a fingerprint of the first bytes
//! (which *content*: tells a reused inode from the file it replaced, and finds a rotated file again
//! after it was copied or gzipped). Also reads the bytes an offset marker covers.
//!
//! The fingerprint is FNV-1a (64-bit) of the file's first line including its newline, or of its
//! first [`FINGERPRINT_BYTES`] if the first line is longer. It is known as soon as the file holds a
//! newline or that many bytes, and never changes afterwards; container log lines start with a
//! nanosecond timestamp, so first lines are as good as unique.

use crate::fnv::fnv1a;
use crate::source_event::MARKER_BYTES;
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// How many leading bytes at most the fingerprint covers: 1 KiB, enough for any first line's
/// timestamp and a good part of its message, small enough to read for every new file.
pub const FINGERPRINT_BYTES: usize = 1024;

/// The fingerprint of a file starting with `first_bytes`; `None` while it has neither a newline
/// nor [`FINGERPRINT_BYTES`] bytes (it would still change).
pub fn fingerprint(first_bytes: &[u8]) -> Option<u64> {
    let window = &first_bytes[..first_bytes.len().min(FINGERPRINT_BYTES)];
    match memchr::memchr(b'\n', window) {
        Some(newline) => Some(fnv1a(&window[..=newline])),
        None if window.len() == FINGERPRINT_BYTES => Some(fnv1a(window)),
        None => None,
    }
}

/// The fingerprint of a file that will not grow any more (its end of life): as [`fingerprint`],
/// or of all its bytes when it is shorter than a line.
pub fn final_fingerprint(first_bytes: &[u8]) -> u64 {
    fingerprint(first_bytes).unwrap_or_else(|| fnv1a(first_bytes))
}

/// Reads up to [`FINGERPRINT_BYTES`] from the start of a plain file (without moving its position).
pub fn read_first_bytes(file: &File) -> io::Result<Vec<u8>> {
    read_at_most(file, 0, FINGERPRINT_BYTES)
}

/// Reads up to [`FINGERPRINT_BYTES`] of a gzipped file's decompressed content.
pub fn read_gz_first_bytes(path: &Path) -> io::Result<Vec<u8>> {
    let mut first = Vec::with_capacity(FINGERPRINT_BYTES);
    MultiGzDecoder::new(BufReader::new(File::open(path)?))
        .take(FINGERPRINT_BYTES as u64)
        .read_to_end(&mut first)?;
    Ok(first)
}

/// The raw bytes an offset marker at `offset` covers (at most [`MARKER_BYTES`] before it); `None`
/// when the file is shorter than `offset`.
pub fn marker_window(file: &File, offset: u64) -> io::Result<Option<Vec<u8>>> {
    let start = offset.saturating_sub(MARKER_BYTES as u64);
    let len = (offset - start) as usize;
    let window = read_at_most(file, start, len)?;
    Ok((window.len() == len).then_some(window))
}

/// Reads up to `len` bytes at `offset` (fewer at end of file).
fn read_at_most(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source_event::offset_marker;
    use std::io::Write;

    #[test]
    fn fingerprint_covers_the_first_line_only() {
        let a = fingerprint(b"first line\nsecond").expect("has a newline");
        assert_eq!(Some(a), fingerprint(b"first line\nother content entirely"));
        assert_ne!(Some(a), fingerprint(b"first lime\nsecond"));
    }

    #[test]
    fn fingerprint_waits_for_a_newline_or_enough_bytes() {
        assert_eq!(fingerprint(b""), None);
        assert_eq!(fingerprint(b"no newline yet"), None);
        let long = vec![b'x'; FINGERPRINT_BYTES + 10];
        let fp = fingerprint(&long).expect("enough bytes");
        assert_eq!(
            Some(fp),
            fingerprint(&long[..FINGERPRINT_BYTES]),
            "bytes past the window do not count"
        );
        assert_eq!(final_fingerprint(b"short"), fnv1a(b"short"));
        assert_eq!(
            final_fingerprint(b"a\nb"),
            fingerprint(b"a\n").expect("line")
        );
    }

    #[test]
    fn marker_window_reads_the_bytes_before_an_offset() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        let content: Vec<u8> = (0..200u8).collect();
        std::fs::write(&path, &content).expect("write");
        let file = File::open(&path).expect("open");
        let window = marker_window(&file, 150)
            .expect("read")
            .expect("long enough");
        assert_eq!(offset_marker(&window), offset_marker(&content[..150]));
        assert_eq!(
            marker_window(&file, 10).expect("read"),
            Some(content[..10].to_vec())
        );
        assert_eq!(marker_window(&file, 201).expect("read"), None);
        assert_eq!(marker_window(&file, 0).expect("read"), Some(Vec::new()));
    }

    #[test]
    fn gz_first_bytes_are_the_decompressed_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f.gz");
        let mut encoder = flate2::write::GzEncoder::new(
            File::create(&path).expect("create"),
            flate2::Compression::fast(),
        );
        encoder.write_all(b"hello\nworld\n").expect("write");
        encoder.finish().expect("finish");
        let first = read_gz_first_bytes(&path).expect("read");
        assert_eq!(first, b"hello\nworld\n");
        assert_eq!(fingerprint(&first), fingerprint(b"hello\n"));
    }
}
