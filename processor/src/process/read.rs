//! Streaming an object: gzip NDJSON lines from the S3 body (bounded memory, decompressed-size cap)
//! → records → [`Router`] → sealed batches handed to the sender through a bounded channel, so
//! reading waits while the destination is slow.

use super::records::parse_record;
use super::route::{ReadStats, RouteStats, Routed, Router};
use logrelay_common::codec::{CodecError, LineError, NdjsonGzReader, ReadLimits};
use tokio::io::AsyncBufRead;
use tokio::sync::mpsc;

/// What reading the object came to.
#[derive(Debug)]
pub struct ReadOutcome {
    /// Line and record counts.
    pub stats: ReadStats,
    /// Per-route counts.
    pub routes: Vec<RouteStats>,
    /// Why reading stopped before the end, when it did.
    pub error: Option<CodecError>,
    /// The receiver went away (every delivery gave up), so reading stopped early.
    pub abandoned: bool,
    /// Decompressed bytes read.
    pub decompressed_bytes: u64,
}

impl ReadOutcome {
    /// Whether the whole object was read.
    pub fn read_to_end(&self) -> bool {
        self.error.is_none() && !self.abandoned
    }
}

/// Reads `body` to the end (or the first object-level error), routing every record and sending
/// each sealed batch to `batches`. Open batches are sealed only at the real end of the object.
pub async fn read_object<R>(
    body: R,
    limits: ReadLimits,
    mut router: Router,
    batches: mpsc::Sender<Routed>,
) -> ReadOutcome
where
    R: AsyncBufRead + Unpin,
{
    let mut reader = NdjsonGzReader::new(body, limits);
    let mut out = Vec::new();
    let mut error = None;
    let mut abandoned = false;
    'lines: loop {
        match reader.next_line_borrowed().await {
            Ok(None) => break,
            Ok(Some((_, Ok(line)))) => match parse_record(line) {
                Ok(record) => router.route(record, &mut out),
                Err(bad) => router.stats_mut().count_bad(bad),
            },
            Ok(Some((_, Err(LineError::TooLong { .. })))) => router.stats_mut().too_long += 1,
            Ok(Some((_, Err(LineError::InvalidUtf8)))) => router.stats_mut().invalid_utf8 += 1,
            Ok(Some((_, Err(LineError::InvalidJson { .. })))) => {
                router.stats_mut().invalid_json += 1
            }
            Err(codec_error) => {
                error = Some(codec_error);
                break;
            }
        }
        for routed in out.drain(..) {
            if batches.send(routed).await.is_err() {
                abandoned = true;
                break 'lines;
            }
        }
    }
    if error.is_none() && !abandoned {
        router.finish(&mut out);
        for routed in out.drain(..) {
            if batches.send(routed).await.is_err() {
                abandoned = true;
                break;
            }
        }
    }
    ReadOutcome {
        stats: router.stats(),
        routes: router.route_stats(),
        error,
        abandoned,
        decompressed_bytes: reader.decompressed_bytes(),
    }
}
