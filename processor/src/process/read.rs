//! Reading an object once: gzip NDJSON lines from the S3 body (bounded memory, decompressed-size
//! cap) → records → [`Router`] → sealed batches handed through a bounded channel to the CloudWatch
//! sink, which sends them while reading goes on (reading waits while the destination is slow).

use super::attempt::{Attempt, Headers};
use super::targets::Targets;
use crate::deliver::cloudwatch::request_builder::{ReadStats, RouteStats, Routed, Router};
use crate::deliver::cloudwatch::sink::{self, DispatchContext};
use crate::error::ProcessError;
use crate::object::FailureKind;
use crate::record::parse_record;
use aws_sdk_s3::primitives::ByteStream;
use logrelay_common::codec::{CodecError, LineError, NdjsonGzReader, ReadLimits};
use logrelay_common::key::ObjectKey;
use logrelay_common::tenant::DeliveryConfig;
use std::sync::Arc;
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

impl Attempt<'_> {
    /// Reads the object once while its CloudWatch batches are sent; S3 copies wait for the outcome
    /// (a clean read: no other tenant's records, no corrupt data). An error means the reading task
    /// itself failed.
    pub(super) async fn read_and_dispatch(
        &self,
        key: &ObjectKey,
        headers: &Headers,
        body: ByteStream,
        targets: &mut Targets,
    ) -> Result<ReadOutcome, ProcessError> {
        let fallback_ms = headers
            .last_modified
            .or(self.object.event_time)
            .unwrap_or(key.created)
            .timestamp_millis();
        let route_configs: Vec<Arc<DeliveryConfig>> = targets
            .cloudwatch
            .iter()
            .map(|target| target.config.clone())
            .collect();
        let router = Router::new(
            key.partition.clone(),
            fallback_ms,
            &route_configs,
            self.inner.batch_limits,
        );
        let (sender, receiver) =
            mpsc::channel(self.inner.limits.max_in_flight_per_object.max(1) * 2);
        let reader = tokio::spawn(read_object(
            Box::pin(body.into_async_read()),
            self.inner.limits.read,
            router,
            sender,
        ));
        let context = DispatchContext {
            progress: self.inner.progress.clone(),
            owner: self.owner.clone(),
            tenant_permits: self
                .inner
                .tenant_permits
                .for_tenant(&key.partition.customer_id),
            max_in_flight: self.inner.limits.max_in_flight_per_object,
            read_to_end: !targets.s3.is_empty(),
        };
        sink::dispatch(&mut targets.cloudwatch, receiver, &context).await;
        reader.await.map_err(|join_error| ProcessError::Other {
            kind: FailureKind::Transient,
            reason: "internal",
            message: format!("reading the object failed: {join_error}"),
        })
    }
}
