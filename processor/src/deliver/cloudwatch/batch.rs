//! Building PutLogEvents requests under every CloudWatch Logs limit: events per request, bytes per
//! request, the 24-hour span, the per-event size (oversized messages are split losslessly), the
//! age/future window checked just before sending, and the arithmetic of `rejectedLogEventsInfo`.
//!
//! Batch boundaries depend only on the object's records and the limits — never on the clock — so
//! the same object always batches the same way; delivery progress counts on that (see
//! `docs/processor-delivery.md`). Source of every limit: the PutLogEvents API reference,
//! <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html>.

use aws_sdk_cloudwatchlogs::types::RejectedLogEventsInfo;
use std::collections::BTreeMap;

/// Bytes added to each event's UTF-8 message length when sizing a request ("the sum of all event
/// messages in UTF-8, plus 26 bytes for each log event").
pub const EVENT_OVERHEAD_BYTES: usize = 26;
/// Largest request: "The maximum batch size is 1,048,576 bytes."
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// Most events per request: "The maximum number of log events in a batch is 10,000."
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// Longest span from first to last event of a request: "A batch of log events in a single request
/// cannot span more than 24 hours."
pub const MAX_BATCH_SPAN_MS: i64 = 24 * 60 * 60 * 1000;
/// Longest message of one event: a single event must fit a request on its own (1 MiB − 26 bytes).
pub const MAX_EVENT_MESSAGE_BYTES: usize = MAX_BATCH_BYTES - EVENT_OVERHEAD_BYTES;
/// Oldest accepted event: "None of the log events in the batch can be older than 14 days or older
/// than the retention period of the log group."
pub const MAX_EVENT_AGE_MS: i64 = 14 * 24 * 60 * 60 * 1000;
/// Furthest accepted future: "None of the log events in the batch can be more than 2 hours in the
/// future."
pub const MAX_EVENT_FUTURE_MS: i64 = 2 * 60 * 60 * 1000;
/// Bytes of open batches one config may hold while reading an object before the largest is sent
/// early (bounds memory when a template fans an object out to many streams).
pub const MAX_BUFFERED_BYTES: usize = 8 * MAX_BATCH_BYTES;
/// Streams one config may have open batches for at once (same purpose).
pub const MAX_OPEN_STREAMS: usize = 64;

/// One log event: milliseconds since the epoch and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Event time, ms since 1970-01-01 UTC.
    pub timestamp_ms: i64,
    /// The message, at most [`MAX_EVENT_MESSAGE_BYTES`] UTF-8 bytes.
    pub message: String,
}

impl LogEvent {
    /// Bytes this event counts against a request's size limit.
    pub fn request_bytes(&self) -> usize {
        self.message.len() + EVENT_OVERHEAD_BYTES
    }
}

/// Limits one batch must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Events per request (≤ [`MAX_BATCH_EVENTS`]; lower via `LOGRELAY_PUT_LOG_EVENTS_MAX_EVENTS`).
    pub max_events: usize,
    /// Bytes per request, counted as CloudWatch counts them.
    pub max_bytes: usize,
    /// First-to-last span in ms.
    pub max_span_ms: i64,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_events: MAX_BATCH_EVENTS,
            max_bytes: MAX_BATCH_BYTES,
            max_span_ms: MAX_BATCH_SPAN_MS,
        }
    }
}

impl BatchLimits {
    /// The default limits with at most `max_events` events per request (clamped to 1..=10,000).
    pub fn with_max_events(max_events: usize) -> Self {
        Self {
            max_events: max_events.clamp(1, MAX_BATCH_EVENTS),
            ..Self::default()
        }
    }
}

/// Splits a message into pieces of at most `max_bytes` UTF-8 bytes, cut on character boundaries,
/// whose concatenation is the message (lossless). A message that fits is returned as is.
pub fn split_message(message: String, max_bytes: usize) -> Vec<String> {
    if message.len() <= max_bytes {
        return vec![message];
    }
    let max_bytes = max_bytes.max(4); // room for any one UTF-8 character
    let mut parts = Vec::with_capacity(message.len() / max_bytes + 1);
    let mut rest = message.as_str();
    while !rest.is_empty() {
        let mut cut = rest.len().min(max_bytes);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        parts.push(rest[..cut].to_owned());
        rest = &rest[cut..];
    }
    parts
}

/// A batch being filled for one stream, in arrival order.
#[derive(Debug, Default)]
struct OpenBatch {
    events: Vec<LogEvent>,
    bytes: usize,
    min_ts: i64,
    max_ts: i64,
}

impl OpenBatch {
    fn fits(&self, event: &LogEvent, limits: &BatchLimits) -> bool {
        if self.events.is_empty() {
            return true;
        }
        let min = self.min_ts.min(event.timestamp_ms);
        let max = self.max_ts.max(event.timestamp_ms);
        self.events.len() < limits.max_events
            && self.bytes + event.request_bytes() <= limits.max_bytes
            && max.saturating_sub(min) <= limits.max_span_ms
    }

    fn push(&mut self, event: LogEvent) {
        if self.events.is_empty() {
            self.min_ts = event.timestamp_ms;
            self.max_ts = event.timestamp_ms;
        } else {
            self.min_ts = self.min_ts.min(event.timestamp_ms);
            self.max_ts = self.max_ts.max(event.timestamp_ms);
        }
        self.bytes += event.request_bytes();
        self.events.push(event);
    }
}

/// A complete request body for one stream, sorted by timestamp (stable), numbered in the order
/// batches were sealed for the object and config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBatch {
    /// Position among the config's batches of this object (0, 1, 2, …).
    pub seq: u64,
    /// Target log stream.
    pub stream: String,
    /// The events, chronological; ties keep arrival order.
    pub events: Vec<LogEvent>,
    /// Request bytes, as CloudWatch counts them.
    pub bytes: usize,
}

/// Groups one config's events by stream into batches that respect [`BatchLimits`], sealing a batch
/// when the next event would break a limit. Memory stays bounded by [`MAX_BUFFERED_BYTES`] and
/// [`MAX_OPEN_STREAMS`]: past either, the largest open batch is sealed early.
#[derive(Debug)]
pub struct Batcher {
    limits: BatchLimits,
    open: BTreeMap<String, OpenBatch>,
    buffered_bytes: usize,
    next_seq: u64,
    split_events: u64,
}

impl Batcher {
    /// An empty batcher.
    pub fn new(limits: BatchLimits) -> Self {
        Self {
            limits,
            open: BTreeMap::new(),
            buffered_bytes: 0,
            next_seq: 0,
            split_events: 0,
        }
    }

    /// Messages that were split into continuation events so far.
    pub fn split_events(&self) -> u64 {
        self.split_events
    }

    /// Adds one record's event (split when over [`MAX_EVENT_MESSAGE_BYTES`]) and appends every batch
    /// this seals to `sealed`.
    pub fn push(
        &mut self,
        stream: &str,
        timestamp_ms: i64,
        message: String,
        sealed: &mut Vec<SealedBatch>,
    ) {
        let max_message = self.limits.max_bytes.saturating_sub(EVENT_OVERHEAD_BYTES);
        if message.len() <= max_message {
            self.push_event(
                stream,
                LogEvent {
                    timestamp_ms,
                    message,
                },
                sealed,
            );
            return;
        }
        self.split_events += 1;
        for part in split_message(message, max_message) {
            self.push_event(
                stream,
                LogEvent {
                    timestamp_ms,
                    message: part,
                },
                sealed,
            );
        }
    }

    fn push_event(&mut self, stream: &str, event: LogEvent, sealed: &mut Vec<SealedBatch>) {
        let bytes = event.request_bytes();
        if let Some(batch) = self.open.get_mut(stream)
            && batch.fits(&event, &self.limits)
        {
            batch.push(event);
        } else {
            // The stream's open batch is full (sealed here) or there is none: start one.
            self.seal(stream, sealed);
            if self.open.len() >= MAX_OPEN_STREAMS {
                self.seal_largest(sealed);
            }
            let mut batch = OpenBatch::default();
            batch.push(event);
            self.open.insert(stream.to_owned(), batch);
        }
        self.buffered_bytes += bytes;
        while self.buffered_bytes > MAX_BUFFERED_BYTES {
            self.seal_largest(sealed);
        }
    }

    /// Seals every open batch, streams in name order, and appends them to `sealed`.
    pub fn finish(&mut self, sealed: &mut Vec<SealedBatch>) {
        let streams: Vec<String> = self.open.keys().cloned().collect();
        for stream in streams {
            self.seal(&stream, sealed);
        }
    }

    fn seal_largest(&mut self, sealed: &mut Vec<SealedBatch>) {
        // Largest first; ties go to the first stream name, so the choice is deterministic.
        let largest = self
            .open
            .iter()
            .max_by(|a, b| a.1.bytes.cmp(&b.1.bytes).then_with(|| b.0.cmp(a.0)))
            .map(|(stream, _)| stream.clone());
        if let Some(stream) = largest {
            self.seal(&stream, sealed);
        }
    }

    fn seal(&mut self, stream: &str, sealed: &mut Vec<SealedBatch>) {
        let Some(mut batch) = self.open.remove(stream) else {
            return;
        };
        if batch.events.is_empty() {
            return;
        }
        self.buffered_bytes -= batch.bytes;
        batch.events.sort_by_key(|event| event.timestamp_ms); // stable: ties keep arrival order
        sealed.push(SealedBatch {
            seq: self.next_seq,
            stream: stream.to_owned(),
            events: batch.events,
            bytes: batch.bytes,
        });
        self.next_seq += 1;
    }
}

/// Events dropped before sending because CloudWatch would reject them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Older than 14 days or the group's retention.
    pub too_old: u64,
    /// More than 2 hours in the future.
    pub too_new: u64,
}

/// Removes, from a sorted batch, the events CloudWatch would reject at `now_ms`: older than
/// 14 days (or `retention_days`, when shorter) and more than 2 hours ahead. What remains is a
/// contiguous, still sorted slice, so it never breaks a limit the batch respected.
pub fn drop_out_of_window(
    events: &mut Vec<LogEvent>,
    now_ms: i64,
    retention_days: Option<i32>,
) -> Dropped {
    let max_age = match retention_days {
        Some(days) if days > 0 => MAX_EVENT_AGE_MS.min(i64::from(days) * 24 * 60 * 60 * 1000),
        _ => MAX_EVENT_AGE_MS,
    };
    let oldest = now_ms.saturating_sub(max_age);
    let newest = now_ms.saturating_add(MAX_EVENT_FUTURE_MS);
    let too_old = events.partition_point(|event| event.timestamp_ms < oldest);
    let keep_end = events.partition_point(|event| event.timestamp_ms <= newest);
    let dropped = Dropped {
        too_old: too_old as u64,
        too_new: (events.len() - keep_end) as u64,
    };
    events.truncate(keep_end);
    events.drain(..too_old);
    dropped
}

/// How many events of a request CloudWatch rejected, by reason, from `rejectedLogEventsInfo`.
///
/// Per the API reference: `tooOldLogEventEndIndex` is the *exclusive* end of the too-old prefix,
/// `expiredLogEventEndIndex` the exclusive end of the expired prefix, and `tooNewLogEventStartIndex`
/// the *inclusive* start of the too-new suffix. The two prefixes overlap; events in both are
/// counted as expired only. Out-of-range indices are clamped to the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejected {
    /// Older than the group's retention.
    pub expired: u64,
    /// Older than 14 days (and not counted as expired).
    pub too_old: u64,
    /// Too far in the future.
    pub too_new: u64,
}

impl Rejected {
    /// Reads the rejection info of a request of `sent` events.
    pub fn from_info(info: Option<&RejectedLogEventsInfo>, sent: usize) -> Self {
        let Some(info) = info else {
            return Self::default();
        };
        let clamp = |index: Option<i32>| index.map(|i| usize::try_from(i).unwrap_or(0).min(sent));
        let too_old_end = clamp(info.too_old_log_event_end_index()).unwrap_or(0);
        let expired_end = clamp(info.expired_log_event_end_index()).unwrap_or(0);
        let prefix_end = too_old_end.max(expired_end);
        let too_new_start = clamp(info.too_new_log_event_start_index())
            .unwrap_or(sent)
            .max(prefix_end);
        Self {
            expired: expired_end as u64,
            too_old: (prefix_end - expired_end) as u64,
            too_new: (sent - too_new_start) as u64,
        }
    }

    /// Every rejected event.
    pub fn total(&self) -> u64 {
        self.expired + self.too_old + self.too_new
    }

    /// The indices of the accepted events of a request of `sent` events: what lies between the
    /// rejected prefix and the rejected suffix.
    pub fn accepted_range(&self, sent: usize) -> std::ops::Range<usize> {
        let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let start = to_usize(self.expired + self.too_old).min(sent);
        let end = sent.saturating_sub(to_usize(self.too_new)).max(start);
        start..end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ts: i64, len: usize) -> LogEvent {
        LogEvent {
            timestamp_ms: ts,
            message: "x".repeat(len),
        }
    }

    fn batch_all(limits: BatchLimits, events: Vec<LogEvent>) -> Vec<SealedBatch> {
        let mut batcher = Batcher::new(limits);
        let mut sealed = Vec::new();
        for e in events {
            batcher.push("s", e.timestamp_ms, e.message, &mut sealed);
        }
        batcher.finish(&mut sealed);
        sealed
    }

    fn request_bytes(batch: &SealedBatch) -> usize {
        batch.events.iter().map(|e| e.message.len() + 26).sum()
    }

    #[test]
    fn exactly_one_mebibyte_fits_one_request() {
        // 4 events of 262,118 bytes: 4 × (262,118 + 26) = 1,048,576.
        let events: Vec<_> = (0..4).map(|i| event(i, 262_118)).collect();
        let sealed = batch_all(BatchLimits::default(), events);
        assert_eq!(sealed.len(), 1);
        assert_eq!(request_bytes(&sealed[0]), 1_048_576);
        assert_eq!(sealed[0].bytes, 1_048_576);
    }

    #[test]
    fn one_byte_over_a_mebibyte_splits_the_request() {
        let mut events: Vec<_> = (0..4).map(|i| event(i, 262_118)).collect();
        events[3].message.push('y');
        let sealed = batch_all(BatchLimits::default(), events);
        assert_eq!(sealed.len(), 2);
        assert_eq!(sealed[0].events.len(), 3);
        assert_eq!(sealed[1].events.len(), 1);
        assert!(sealed.iter().all(|b| request_bytes(b) <= MAX_BATCH_BYTES));
    }

    #[test]
    fn ten_thousand_events_fit_and_one_more_splits() {
        let sealed = batch_all(
            BatchLimits::default(),
            (0..10_000).map(|i| event(i, 1)).collect(),
        );
        assert_eq!(sealed.len(), 1);
        assert_eq!(sealed[0].events.len(), 10_000);

        let sealed = batch_all(
            BatchLimits::default(),
            (0..10_001).map(|i| event(i, 1)).collect(),
        );
        assert_eq!(
            sealed.iter().map(|b| b.events.len()).collect::<Vec<_>>(),
            [10_000, 1]
        );
    }

    #[test]
    fn max_batch_size_setting_caps_events_per_request() {
        let sealed = batch_all(
            BatchLimits::with_max_events(3),
            (0..7).map(|i| event(i, 1)).collect(),
        );
        assert_eq!(
            sealed.iter().map(|b| b.events.len()).collect::<Vec<_>>(),
            [3, 3, 1]
        );
        assert_eq!(
            BatchLimits::with_max_events(50_000).max_events,
            MAX_BATCH_EVENTS
        );
        assert_eq!(BatchLimits::with_max_events(0).max_events, 1);
    }

    #[test]
    fn a_span_of_exactly_24_hours_fits_and_one_ms_more_splits() {
        let day = MAX_BATCH_SPAN_MS;
        let sealed = batch_all(
            BatchLimits::default(),
            vec![event(1_000, 1), event(1_000 + day, 1)],
        );
        assert_eq!(sealed.len(), 1);

        let sealed = batch_all(
            BatchLimits::default(),
            vec![event(1_000, 1), event(1_000 + day + 1, 1)],
        );
        assert_eq!(sealed.len(), 2);
    }

    #[test]
    fn span_is_checked_against_the_earliest_event_not_the_first() {
        // Arrival order 12h, 0h, 24h+1ms: the last event is 24h+1ms after the earliest.
        let h = 60 * 60 * 1000;
        let sealed = batch_all(
            BatchLimits::default(),
            vec![event(12 * h, 1), event(0, 1), event(24 * h + 1, 1)],
        );
        assert_eq!(sealed.len(), 2);
        for batch in &sealed {
            let span = batch.events.last().map(|e| e.timestamp_ms).unwrap_or(0)
                - batch.events.first().map(|e| e.timestamp_ms).unwrap_or(0);
            assert!(span <= MAX_BATCH_SPAN_MS);
        }
    }

    #[test]
    fn batches_are_sorted_stably_by_timestamp() {
        let events = vec![
            LogEvent {
                timestamp_ms: 5,
                message: "a".into(),
            },
            LogEvent {
                timestamp_ms: 3,
                message: "b".into(),
            },
            LogEvent {
                timestamp_ms: 5,
                message: "c".into(),
            },
            LogEvent {
                timestamp_ms: 3,
                message: "d".into(),
            },
        ];
        let sealed = batch_all(BatchLimits::default(), events);
        let order: Vec<&str> = sealed[0]
            .events
            .iter()
            .map(|e| e.message.as_str())
            .collect();
        assert_eq!(order, ["b", "d", "a", "c"]);
    }

    #[test]
    fn an_oversized_message_becomes_ordered_continuation_events() {
        let big = "é".repeat(MAX_EVENT_MESSAGE_BYTES); // 2 bytes per char: twice the limit
        let mut batcher = Batcher::new(BatchLimits::default());
        let mut sealed = Vec::new();
        batcher.push("s", 7, big.clone(), &mut sealed);
        batcher.finish(&mut sealed);
        assert_eq!(batcher.split_events(), 1);
        let parts: Vec<&LogEvent> = sealed.iter().flat_map(|b| &b.events).collect();
        assert_eq!(parts.len(), 2);
        assert!(
            parts
                .iter()
                .all(|e| e.message.len() <= MAX_EVENT_MESSAGE_BYTES && e.timestamp_ms == 7)
        );
        let joined: String = parts.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(joined, big);
        assert!(sealed.iter().all(|b| request_bytes(b) <= MAX_BATCH_BYTES));
    }

    #[test]
    fn a_message_of_exactly_the_event_limit_is_not_split() {
        let parts = split_message("a".repeat(MAX_EVENT_MESSAGE_BYTES), MAX_EVENT_MESSAGE_BYTES);
        assert_eq!(parts.len(), 1);
        let parts = split_message(
            "a".repeat(MAX_EVENT_MESSAGE_BYTES + 1),
            MAX_EVENT_MESSAGE_BYTES,
        );
        assert_eq!(
            parts.iter().map(String::len).collect::<Vec<_>>(),
            [MAX_EVENT_MESSAGE_BYTES, 1]
        );
    }

    #[test]
    fn splitting_never_cuts_a_character() {
        let parts = split_message("a€€€".into(), 4); // € is 3 bytes
        assert_eq!(parts, ["a€", "€", "€"]);
    }

    #[test]
    fn streams_batch_separately_and_seal_in_name_order() {
        let mut batcher = Batcher::new(BatchLimits::default());
        let mut sealed = Vec::new();
        batcher.push("b", 1, "1".into(), &mut sealed);
        batcher.push("a", 2, "2".into(), &mut sealed);
        batcher.push("b", 3, "3".into(), &mut sealed);
        batcher.finish(&mut sealed);
        let summary: Vec<(u64, &str, usize)> = sealed
            .iter()
            .map(|b| (b.seq, b.stream.as_str(), b.events.len()))
            .collect();
        assert_eq!(summary, [(0, "a", 1), (1, "b", 2)]);
    }

    #[test]
    fn too_many_open_streams_seal_the_largest_early() {
        let mut batcher = Batcher::new(BatchLimits::default());
        let mut sealed = Vec::new();
        for i in 0..MAX_OPEN_STREAMS {
            batcher.push(
                &format!("s{i:03}"),
                1,
                "x".repeat(if i == 5 { 10 } else { 1 }),
                &mut sealed,
            );
        }
        assert!(sealed.is_empty());
        batcher.push("new", 1, "x".into(), &mut sealed);
        assert_eq!(sealed.len(), 1);
        assert_eq!(sealed[0].stream, "s005");
    }

    #[test]
    fn batching_is_deterministic() {
        let events: Vec<_> = (0..25_000)
            .map(|i| event((i * 7919) % 100_000, (i % 300) as usize))
            .collect();
        let a = batch_all(BatchLimits::default(), events.clone());
        let b = batch_all(BatchLimits::default(), events);
        assert_eq!(a, b);
        assert!(a.iter().all(|batch| batch.events.len() <= MAX_BATCH_EVENTS));
    }

    #[test]
    fn out_of_window_events_are_dropped_before_sending() {
        let now = 100 * 24 * 60 * 60 * 1000;
        let mut events = vec![
            event(now - MAX_EVENT_AGE_MS - 1, 1),
            event(now - MAX_EVENT_AGE_MS, 1),
            event(now, 1),
            event(now + MAX_EVENT_FUTURE_MS, 1),
            event(now + MAX_EVENT_FUTURE_MS + 1, 1),
        ];
        let dropped = drop_out_of_window(&mut events, now, None);
        assert_eq!(
            dropped,
            Dropped {
                too_old: 1,
                too_new: 1
            }
        );
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn a_shorter_retention_drops_more() {
        let day = 24 * 60 * 60 * 1000;
        let now = 100 * day;
        let mut events = vec![event(now - 2 * day, 1), event(now - day + 1, 1)];
        let dropped = drop_out_of_window(&mut events, now, Some(1));
        assert_eq!(dropped.too_old, 1);
        assert_eq!(events.len(), 1);
        let mut events = vec![event(now - 13 * day, 1)];
        assert_eq!(drop_out_of_window(&mut events, now, Some(3653)).too_old, 0);
    }

    fn info(old: Option<i32>, expired: Option<i32>, new: Option<i32>) -> RejectedLogEventsInfo {
        RejectedLogEventsInfo::builder()
            .set_too_old_log_event_end_index(old)
            .set_expired_log_event_end_index(expired)
            .set_too_new_log_event_start_index(new)
            .build()
    }

    #[test]
    fn reject_indices_are_exclusive_ends_and_an_inclusive_start() {
        // 10 events: [0,3) too old, [7,10) too new.
        let r = Rejected::from_info(Some(&info(Some(3), None, Some(7))), 10);
        assert_eq!(
            r,
            Rejected {
                expired: 0,
                too_old: 3,
                too_new: 3
            }
        );
        assert_eq!(r.total(), 6);
        assert_eq!(r.accepted_range(10), 3..7);
        assert_eq!(Rejected::default().accepted_range(10), 0..10);
    }

    #[test]
    fn overlapping_old_and_expired_prefixes_are_counted_once() {
        let r = Rejected::from_info(Some(&info(Some(5), Some(2), None)), 10);
        assert_eq!(
            r,
            Rejected {
                expired: 2,
                too_old: 3,
                too_new: 0
            }
        );
        let r = Rejected::from_info(Some(&info(Some(2), Some(5), None)), 10);
        assert_eq!(
            r,
            Rejected {
                expired: 5,
                too_old: 0,
                too_new: 0
            }
        );
    }

    #[test]
    fn reject_indices_are_clamped_and_never_double_count() {
        assert_eq!(Rejected::from_info(None, 10).total(), 0);
        let r = Rejected::from_info(Some(&info(Some(0), Some(0), Some(10))), 10);
        assert_eq!(r.total(), 0);
        // Suffix starting inside the prefix, and indices past the end.
        let r = Rejected::from_info(Some(&info(Some(6), None, Some(4))), 10);
        assert_eq!(
            r,
            Rejected {
                expired: 0,
                too_old: 6,
                too_new: 4
            }
        );
        let r = Rejected::from_info(Some(&info(Some(99), None, Some(-3))), 10);
        assert_eq!(r.total(), 10);
        assert!(r.accepted_range(10).is_empty());
    }
}
