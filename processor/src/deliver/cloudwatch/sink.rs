//! Sending an object's sealed batches: skips batches an earlier attempt delivered, drops events
//! CloudWatch would reject, sends with bounded parallelism (per object and per tenant), and records
//! progress after every accepted batch but the config's last: once the object is read and nothing
//! else of the config is pending, the attempt's end (completion, or a release that saves the
//! state) writes it, so an object sent in one request costs two progress writes (claim and
//! completion). Stops sending for a config at its first failure.
//!
//! Batches of one log stream are sent one after another, in the order they were sealed: CloudWatch
//! keeps events of equal timestamps in arrival order, and the pieces of a split message share one
//! timestamp, so concurrent requests to one stream could store a message's tail before its head.
//! Parallelism comes from different streams (and targets, and objects).

use super::CloudWatchTarget;
use super::batch::{SealedBatch, drop_out_of_window};
use super::request_builder::Routed;
use super::service::PutOutcome;
use crate::error::DeliveryError;
use crate::progress::ProgressStore;
use std::collections::{HashMap, HashSet, VecDeque};
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

/// A sent batch's route, sequence number, stream and result.
type Done = (usize, u64, String, Result<PutOutcome, DeliveryError>);

/// The route and stream of a batch: its batches are sent one at a time, in order.
type Lane = (usize, String);

/// Batches in flight, and those waiting for their lane's batch in flight to finish.
#[derive(Default)]
struct Lanes {
    in_flight: JoinSet<Done>,
    running: HashMap<tokio::task::Id, (usize, u64, String)>,
    busy: HashSet<Lane>,
    waiting: HashMap<Lane, VecDeque<Routed>>,
    waiting_batches: usize,
    /// The reader sent its last batch.
    input_done: bool,
}

impl Lanes {
    /// Batches held here (sending or waiting).
    fn held(&self) -> usize {
        self.in_flight.len() + self.waiting_batches
    }

    /// Whether a batch of `route` is still sending or waiting.
    fn holds_route(&self, route: usize) -> bool {
        self.running.values().any(|(r, _, _)| *r == route)
            || self.waiting.keys().any(|(r, _)| *r == route)
    }

    /// Starts `routed`, or queues it behind its lane's batch in flight.
    async fn submit(
        &mut self,
        targets: &mut [CloudWatchTarget],
        routed: Routed,
        context: &DispatchContext,
    ) {
        let lane = (routed.route, routed.batch.stream.clone());
        if self.busy.contains(&lane) {
            self.waiting.entry(lane).or_default().push_back(routed);
            self.waiting_batches += 1;
            return;
        }
        self.start_in_lane(targets, lane, routed, context).await;
    }

    /// Starts `routed`; when it needed no request, the lane's next waiting batch is tried.
    async fn start_in_lane(
        &mut self,
        targets: &mut [CloudWatchTarget],
        lane: Lane,
        mut routed: Routed,
        context: &DispatchContext,
    ) {
        loop {
            if start(targets, self, routed, context).await {
                self.busy.insert(lane);
                return;
            }
            match self.next_waiting(&lane) {
                Some(next) => routed = next,
                None => return,
            }
        }
    }

    fn next_waiting(&mut self, lane: &Lane) -> Option<Routed> {
        let queue = self.waiting.get_mut(lane)?;
        let next = queue.pop_front();
        if queue.is_empty() {
            self.waiting.remove(lane);
        }
        if next.is_some() {
            self.waiting_batches -= 1;
        }
        next
    }

    /// Waits for one batch in flight to finish, then [`Self::finished`].
    async fn finish_one(&mut self, targets: &mut [CloudWatchTarget], context: &DispatchContext) {
        if let Some(done) = self.in_flight.join_next_with_id().await {
            self.finished(targets, done, context).await;
        }
    }

    /// Records a batch that finished and starts its lane's next batch.
    async fn finished(
        &mut self,
        targets: &mut [CloudWatchTarget],
        done: Result<(tokio::task::Id, Done), tokio::task::JoinError>,
        context: &DispatchContext,
    ) {
        let Some(lane) = finish(targets, self, done, context).await else {
            return;
        };
        self.busy.remove(&lane);
        if let Some(next) = self.next_waiting(&lane) {
            self.start_in_lane(targets, lane, next, context).await;
        }
    }
}

/// Sends every batch from `batches` to its target until the channel closes or every target has
/// failed (then, unless `read_to_end` is set, the receiver is dropped, which stops the reader).
pub async fn dispatch(
    targets: &mut [CloudWatchTarget],
    mut batches: mpsc::Receiver<Routed>,
    context: &DispatchContext,
) {
    let mut lanes = Lanes::default();
    let max_in_flight = context.max_in_flight.max(1);
    loop {
        if !context.read_to_end && targets.iter().all(|target| target.failure.is_some()) {
            break;
        }
        tokio::select! {
            biased;
            // Only the join is raced (it is cancel-safe); recording runs to completion.
            Some(done) = lanes.in_flight.join_next_with_id(), if !lanes.in_flight.is_empty() => {
                lanes.finished(targets, done, context).await;
            }
            routed = batches.recv(), if lanes.held() < max_in_flight => {
                let Some(routed) = routed else {
                    lanes.input_done = true;
                    break;
                };
                // Keep the out-of-order window bounded: wait for older batches first.
                while running_ahead(targets, &routed) && !lanes.in_flight.is_empty() {
                    lanes.finish_one(targets, context).await;
                }
                lanes.submit(targets, routed, context).await;
            }
        }
    }
    drop(batches);
    lanes.input_done = true;
    while !lanes.in_flight.is_empty() {
        lanes.finish_one(targets, context).await;
    }
}

fn running_ahead(targets: &[CloudWatchTarget], routed: &Routed) -> bool {
    targets
        .get(routed.route)
        .is_some_and(|target| routed.batch.seq >= target.state.cursor.next() + MAX_BATCHES_AHEAD)
}

/// Sends `routed` on its own task; false when no request was needed (target failed, batch done
/// earlier, or every event outside CloudWatch's window).
async fn start(
    targets: &mut [CloudWatchTarget],
    lanes: &mut Lanes,
    routed: Routed,
    context: &DispatchContext,
) -> bool {
    let Routed { route, mut batch } = routed;
    let Some(target) = targets.get_mut(route) else {
        return false;
    };
    if target.failure.is_some() {
        return false;
    }
    if target.state.cursor.is_done(batch.seq) {
        target.batches_resumed += 1;
        return false;
    }
    let dropped = drop_out_of_window(&mut batch.events, now_ms(), target.config.retention_days);
    target.counts.dropped_too_old += dropped.too_old;
    target.counts.dropped_too_new += dropped.too_new;
    if batch.events.is_empty() {
        // Nothing left to send: the batch is done as it is.
        record(target, batch.seq, &PutOutcome::default(), context).await;
        return false;
    }
    let service = target.service.clone();
    let permits = context.tenant_permits.clone();
    let seq = batch.seq;
    let stream = batch.stream.clone();
    let handle = lanes.in_flight.spawn(crate::retry::in_tally(async move {
        let SealedBatch { stream, events, .. } = batch;
        let result = match permits.acquire_owned().await {
            Ok(_permit) => service.deliver(&stream, events).await,
            Err(_) => Err(DeliveryError::transient(
                "shutting_down",
                "request permits closed",
            )),
        };
        (route, seq, stream, result)
    }));
    lanes.running.insert(handle.id(), (route, seq, stream));
    true
}

/// Records a finished batch; returns its lane.
async fn finish(
    targets: &mut [CloudWatchTarget],
    lanes: &mut Lanes,
    done: Result<(tokio::task::Id, Done), tokio::task::JoinError>,
    context: &DispatchContext,
) -> Option<Lane> {
    let (route, seq, stream, result) = match done {
        Ok((id, done)) => {
            lanes.running.remove(&id);
            done
        }
        Err(join_error) => {
            let (route, seq, stream) = lanes.running.remove(&join_error.id())?;
            let error = DeliveryError::transient(
                "internal",
                format!("sending a batch failed: {join_error}"),
            );
            (route, seq, stream, Err(error))
        }
    };
    let last = lanes.input_done && !lanes.holds_route(route);
    if let Some(target) = targets.get_mut(route) {
        match result {
            Ok(outcome) if last => accept(target, seq, &outcome),
            Ok(outcome) => record(target, seq, &outcome, context).await,
            Err(error) => {
                if target.failure.is_none() {
                    target.failure = Some(error);
                }
            }
        }
    }
    Some((route, stream))
}

/// Counts an accepted batch in the target's state (written at the attempt's end).
fn accept(target: &mut CloudWatchTarget, seq: u64, outcome: &PutOutcome) {
    target.counts.add(outcome);
    target.state.cursor.mark_done(seq);
    target.state.events_delivered += outcome.accepted;
}

/// Counts an accepted batch and writes the progress that makes a redelivery skip it.
async fn record(
    target: &mut CloudWatchTarget,
    seq: u64,
    outcome: &PutOutcome,
    context: &DispatchContext,
) {
    accept(target, seq, outcome);
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
