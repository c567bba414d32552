//! Metric series labelled with one pod (`namespace`, `pod`): which exist, so that they are kept
//! alive while the pod's files are listed and left to expire once the files are gone. Expiry
//! itself is the per-pod recorder's idle timeout (`server::recorder`); without it a node would
//! export a series for every pod that ever lost bytes on it, for the agent's whole life.

use super::tail::{BytesLost, LossReason};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Names of the metrics that carry a `pod` label; they go to the recorder whose series expire.
pub const PER_POD_METRICS: &[&str] = &["logrelay_agent_lost_bytes_total"];

/// How long a per-pod series stays exported without a change once its pod's files are gone:
/// 10 minutes, ten scrapes at Prometheus' default 1 min interval (and far more at the usual
/// 15–30 s), so its final value is always scraped; and it is 600 times the tailer's 1 s rescan
/// interval, which keeps the series of listed pods alive.
pub const POD_SERIES_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// A pod as the per-pod series label it.
type PodLabels = (String, String);

/// The per-pod series this tailer created, by pod (at most one entry per pod with files listed,
/// plus those gone since the last listing).
#[derive(Debug, Default)]
pub struct PodSeries {
    lost: HashMap<PodLabels, HashSet<LossReason>>,
}

impl PodSeries {
    /// Emits `event` and remembers its series.
    pub fn lost(&mut self, event: BytesLost<'_>) {
        if event.bytes > 0 {
            self.lost
                .entry((event.namespace.to_owned(), event.pod.to_owned()))
                .or_default()
                .insert(event.reason);
        }
        event.emit();
    }

    /// Whether no per-pod series is tracked (the listing need not be looked at).
    pub fn is_empty(&self) -> bool {
        self.lost.is_empty()
    }

    /// Touches the series of the pods in `listed` (a complete listing's pods) without changing
    /// their values, so they never go idle while the pod has files, and forgets the others,
    /// whose series then expire after [`POD_SERIES_IDLE_TIMEOUT`] without change.
    pub fn keep_listed(&mut self, listed: &HashSet<(&str, &str)>) {
        self.lost
            .retain(|(namespace, pod), _| listed.contains(&(namespace.as_str(), pod.as_str())));
        for ((namespace, pod), reasons) in &self.lost {
            for reason in reasons {
                BytesLost::counter(namespace, pod, *reason).increment(0);
            }
        }
    }
}
