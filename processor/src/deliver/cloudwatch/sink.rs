//! Sending an object's sealed batches: skips batches an earlier attempt delivered, drops events
//! CloudWatch would reject, sends with bounded parallelism (per object and per tenant), and records
//! progress after every accepted batch. Stops sending for a config at its first failure.

use super::CloudWatchTarget;
use super::batch::{SealedBatch, drop_out_of_window};
use super::request_builder::Routed;
use super::service::PutOutcome;
use crate::error::DeliveryError;
use crate::progress::ProgressStore;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

/// Default bound on batches of one object in flight at once.
pub const DEFAULT_MAX_IN_FLIGHT_PER_OBJECT: usize = 4;
/// Batches a config may run ahead of its oldest undelivered one; bounds the out-of-order part of
/// the progress item (kept well under DynamoDB's 400 KB item limit).
pub const MAX_BATCHES_AHEAD: u64 = 64;

/// What dispatching needs besides the targets.
#[derive(Debug, Clone)]
pub struct DispatchContext {
    /// Progress table.
    pub progress: ProgressStore,
    /// This attempt's lease owner id.
    pub owner: String,
    /// The tenant's request permits.
    pub tenant_permits: Arc<Semaphore>,
    /// Bound on this object's batches in flight.
    pub max_in_flight: usize,
    /// Keep receiving (and discarding) batches after every target failed, because the whole
    /// object must still be read (S3 copies need a complete check of its records).
    pub read_to_end: bool,
}

type Done = (usize, u64, Result<PutOutcome, DeliveryError>);

/// Sends every batch from `batches` to its target until the channel closes or every target has
/// failed (then, unless `read_to_end` is set, the receiver is dropped, which stops the reader).
pub async fn dispatch(
    targets: &mut [CloudWatchTarget],
    mut batches: mpsc::Receiver<Routed>,
    context: &DispatchContext,
) {
    let mut in_flight: JoinSet<Done> = JoinSet::new();
    let mut running: HashMap<tokio::task::Id, (usize, u64)> = HashMap::new();
    let max_in_flight = context.max_in_flight.max(1);
    loop {
        if !context.read_to_end && targets.iter().all(|target| target.failure.is_some()) {
            break;
        }
        tokio::select! {
            biased;
            Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                finish(targets, &mut running, done, context).await;
            }
            routed = batches.recv(), if in_flight.len() < max_in_flight => {
                let Some(routed) = routed else { break };
                // Keep the out-of-order window bounded: wait for older batches first.
                while running_ahead(targets, &routed) && !in_flight.is_empty() {
                    if let Some(done) = in_flight.join_next_with_id().await {
                        finish(targets, &mut running, done, context).await;
                    }
                }
                start(targets, &mut in_flight, &mut running, routed, context).await;
            }
        }
    }
    drop(batches);
    while let Some(done) = in_flight.join_next_with_id().await {
        finish(targets, &mut running, done, context).await;
    }
}

fn running_ahead(targets: &[CloudWatchTarget], routed: &Routed) -> bool {
    targets
        .get(routed.route)
        .is_some_and(|target| routed.batch.seq >= target.state.cursor.next() + MAX_BATCHES_AHEAD)
}

async fn start(
    targets: &mut [CloudWatchTarget],
    in_flight: &mut JoinSet<Done>,
    running: &mut HashMap<tokio::task::Id, (usize, u64)>,
    routed: Routed,
    context: &DispatchContext,
) {
    let Routed { route, mut batch } = routed;
    let Some(target) = targets.get_mut(route) else {
        return;
    };
    if target.failure.is_some() {
        return;
    }
    if target.state.cursor.is_done(batch.seq) {
        target.batches_resumed += 1;
        return;
    }
    let dropped = drop_out_of_window(&mut batch.events, now_ms(), target.config.retention_days);
    target.counts.dropped_too_old += dropped.too_old;
    target.counts.dropped_too_new += dropped.too_new;
    if batch.events.is_empty() {
        // Nothing left to send: the batch is done as it is.
        record(target, batch.seq, &PutOutcome::default(), context).await;
        return;
    }
    let service = target.service.clone();
    let permits = context.tenant_permits.clone();
    let seq = batch.seq;
    let handle = in_flight.spawn(async move {
        let SealedBatch { stream, events, .. } = batch;
        let result = match permits.acquire_owned().await {
            Ok(_permit) => service.deliver(&stream, events).await,
            Err(_) => Err(DeliveryError::transient(
                "shutting_down",
                "request permits closed",
            )),
        };
        (route, seq, result)
    });
    running.insert(handle.id(), (route, seq));
}

async fn finish(
    targets: &mut [CloudWatchTarget],
    running: &mut HashMap<tokio::task::Id, (usize, u64)>,
    done: Result<(tokio::task::Id, Done), tokio::task::JoinError>,
    context: &DispatchContext,
) {
    let (route, seq, result) = match done {
        Ok((id, done)) => {
            running.remove(&id);
            done
        }
        Err(join_error) => {
            let Some((route, seq)) = running.remove(&join_error.id()) else {
                return;
            };
            let error = DeliveryError::transient(
                "internal",
                format!("sending a batch failed: {join_error}"),
            );
            (route, seq, Err(error))
        }
    };
    let Some(target) = targets.get_mut(route) else {
        return;
    };
    match result {
        Ok(outcome) => record(target, seq, &outcome, context).await,
        Err(error) => {
            if target.failure.is_none() {
                target.failure = Some(error);
            }
        }
    }
}

/// Counts an accepted batch and writes the progress that makes a redelivery skip it.
async fn record(
    target: &mut CloudWatchTarget,
    seq: u64,
    outcome: &PutOutcome,
    context: &DispatchContext,
) {
    target.counts.add(outcome);
    target.state.cursor.mark_done(seq);
    target.state.events_delivered += outcome.accepted;
    if let Err(error) = context
        .progress
        .record(&target.progress_key, &context.owner, &target.state)
        .await
        && target.failure.is_none()
    {
        target.failure = Some(error.into());
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
