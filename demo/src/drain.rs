//! Waiting for the pipeline to empty after the generator stopped: the agent has read every file
//! to its end and every line is in an acknowledged object, then the queue holds no message (all
//! were processed and deleted, or dead-lettered). Each wait is bounded by the drain deadline.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use tokio::time::Instant;

use crate::http::HttpClient;
use crate::metrics::Metrics;

/// Pause between polls.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The agent's counters that must stop moving, and gauges that must be zero, for it to be idle.
const AGENT_PROGRESS_COUNTERS: [&str; 2] = [
    "logrelay_agent_lines_read_total",
    "logrelay_agent_stored_lines_total",
];
const AGENT_PENDING_GAUGES: [&str; 4] = [
    "logrelay_agent_open_batches",
    "logrelay_agent_sealed_batches",
    "logrelay_agent_unacknowledged_bytes",
    "logrelay_agent_metadata_held_lines",
];

/// What an agent scrape says about pending work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgentState {
    /// Sum of the progress counters (moves while it reads or uploads).
    pub progress: f64,
    /// Sum of the pending gauges (zero when nothing waits).
    pub pending: f64,
}

impl AgentState {
    /// Reads the state from a scrape.
    pub fn from_metrics(metrics: &Metrics) -> Self {
        Self {
            progress: AGENT_PROGRESS_COUNTERS.iter().map(|n| metrics.sum(n)).sum(),
            pending: AGENT_PENDING_GAUGES.iter().map(|n| metrics.sum(n)).sum(),
        }
    }
}

/// Waits until the agent is idle: nothing pending and no progress for `quiet` (longer than its
/// batch timeout, so an open batch would have been sealed and uploaded). False at `deadline`.
pub async fn wait_for_agent_idle(
    client: &HttpClient,
    listen: &str,
    quiet: Duration,
    deadline: Instant,
) -> bool {
    let mut last: Option<(AgentState, Instant)> = None;
    while Instant::now() < deadline {
        if let Some(metrics) = Metrics::scrape(client, listen).await {
            let state = AgentState::from_metrics(&metrics);
            match last {
                Some((previous, since))
                    if previous == state && state.pending == 0.0 && since.elapsed() >= quiet =>
                {
                    return true;
                }
                Some((previous, _)) if previous == state => {}
                _ => last = Some((state, Instant::now())),
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    false
}

/// Messages in a queue: visible and in flight.
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Option<(u64, u64)> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .ok()?
        .attributes?;
    let read = |name: &QueueAttributeName| -> u64 {
        attributes
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Some((
        read(&QueueAttributeName::ApproximateNumberOfMessages),
        read(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    ))
}

/// Waits until the queue has held no message for two polls in a row. False at `deadline`.
pub async fn wait_for_empty_queue(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    deadline: Instant,
) -> bool {
    let mut empty_polls = 0;
    while Instant::now() < deadline {
        match queue_depth(sqs, queue_url).await {
            Some((0, 0)) => {
                empty_polls += 1;
                if empty_polls >= 2 {
                    return true;
                }
            }
            _ => empty_polls = 0,
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_state_sums_progress_and_pending() {
        let metrics = Metrics::parse(
            "logrelay_agent_lines_read_total 10\nlogrelay_agent_stored_lines_total 7\n\
             logrelay_agent_open_batches 1\nlogrelay_agent_unacknowledged_bytes 300\n",
        );
        assert_eq!(
            AgentState::from_metrics(&metrics),
            AgentState {
                progress: 17.0,
                pending: 301.0
            }
        );
    }
}
