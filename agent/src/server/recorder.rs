//! The agent's metrics recorder: per-pod series ([`PER_POD_METRICS`]) go to a Prometheus recorder
//! whose series expire after [`POD_SERIES_IDLE_TIMEOUT`] without change, every other series to one
//! where nothing expires (a counter is never reset while the agent runs); `/metrics` renders both
//! as one page ([`AgentMetrics`]).

use crate::internal_events::pod_series::{PER_POD_METRICS, POD_SERIES_IDLE_TIMEOUT};
use logrelay_common::http_endpoint::MetricsText;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use metrics_util::MetricKindMask;
use std::time::Duration;

/// Histogram buckets for request latencies, in seconds (5 ms to 60 s: S3 PUTs of small objects
/// take tens of ms, multi-MiB ones up to seconds, the request timeout is 60 s).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Renders the agent's metrics: the lasting series, then the per-pod ones.
#[derive(Debug, Clone)]
pub struct AgentMetrics {
    lasting: PrometheusHandle,
    per_pod: PrometheusHandle,
}

impl MetricsText for AgentMetrics {
    fn render(&self) -> String {
        let mut text = self.lasting.render();
        text.push_str(&self.per_pod.render());
        text
    }
}

/// Sends each metric to the lasting or the per-pod recorder by its name.
pub struct SplitRecorder {
    lasting: PrometheusRecorder,
    per_pod: PrometheusRecorder,
}

impl SplitRecorder {
    /// A recorder whose per-pod series expire after `per_pod_idle` without change.
    pub fn new(per_pod_idle: Duration) -> Self {
        let lasting = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let per_pod = PrometheusBuilder::new()
            .idle_timeout(MetricKindMask::ALL, Some(per_pod_idle))
            .build_recorder();
        Self { lasting, per_pod }
    }

    /// The handle that renders both recorders.
    pub fn handle(&self) -> AgentMetrics {
        AgentMetrics {
            lasting: self.lasting.handle(),
            per_pod: self.per_pod.handle(),
        }
    }

    fn target(&self, name: &str) -> &PrometheusRecorder {
        if PER_POD_METRICS.contains(&name) {
            &self.per_pod
        } else {
            &self.lasting
        }
    }
}

impl Default for SplitRecorder {
    fn default() -> Self {
        Self::new(POD_SERIES_IDLE_TIMEOUT)
    }
}

impl Recorder for SplitRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.target(key.as_str())
            .describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.target(key.as_str())
            .describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.target(key.as_str())
            .describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.target(key.name()).register_counter(key, metadata)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.target(key.name()).register_gauge(key, metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.target(key.name()).register_histogram(key, metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::internal_events::pod_series::PodSeries;
    use crate::internal_events::tail::{BytesLost, LossReason};
    use std::collections::HashSet;
    use std::path::Path;

    fn lose(series: &mut PodSeries, pod: &str, bytes: u64) {
        series.lost(BytesLost {
            namespace: "shop",
            pod,
            path: Path::new("/var/log/pods/x/c/0.log"),
            bytes,
            reason: LossReason::RemovedUnread,
        });
    }

    #[test]
    fn a_gone_pods_series_expires_while_a_listed_pods_series_stays_with_its_value() {
        let idle = Duration::from_millis(300);
        let recorder = SplitRecorder::new(idle);
        let metrics = recorder.handle();
        let mut series = PodSeries::default();
        metrics::with_local_recorder(&recorder, || {
            lose(&mut series, "gone-pod", 100);
            lose(&mut series, "live-pod", 7);
            metrics::counter!("logrelay_agent_lines_read_total").increment(1);
        });
        let first = metrics.render();
        assert!(first.contains("pod=\"gone-pod\""), "{first}");
        assert!(first.contains("pod=\"live-pod\""), "{first}");
        // Rescans list only the live pod's files, over more than the idle timeout.
        let listed = HashSet::from([("shop", "live-pod")]);
        for _ in 0..8 {
            std::thread::sleep(idle / 4);
            metrics::with_local_recorder(&recorder, || series.keep_listed(&listed));
            metrics.render();
        }
        let later = metrics.render();
        assert!(!later.contains("gone-pod"), "{later}");
        assert!(
            later.contains(
                "logrelay_agent_lost_bytes_total{namespace=\"shop\",pod=\"live-pod\",reason=\"removed_unread\"} 7"
            ),
            "{later}"
        );
        assert!(
            later.contains("logrelay_agent_lines_read_total 1"),
            "series without a pod never expire: {later}"
        );
    }
}
