//! Metrics as CloudWatch Embedded Metric Format (EMF) lines, for Lambda mode: a `metrics`
//! recorder that accumulates counters, gauges and histogram samples, and a handle that, after each
//! invocation, writes one JSON line per label set to stdout and resets the counters. CloudWatch
//! Logs turns those lines into metrics with the labels (e.g. `tenant`) as dimensions, so every
//! invocation reports its own per-tenant counts.
//!
//! Format: <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use serde_json::{Map, Value, json};

/// Default CloudWatch namespace of the processor's metrics.
pub const DEFAULT_NAMESPACE: &str = "logrelay/processor";
/// Most metrics one EMF directive may declare (EMF specification: 100).
pub const MAX_METRICS_PER_LINE: usize = 100;
/// Most values one metric may carry in one line (EMF specification: arrays of up to 100 values).
pub const MAX_VALUES_PER_METRIC: usize = 100;
/// Most dimensions one dimension set may hold (EMF specification: 30).
pub const MAX_DIMENSIONS: usize = 30;
/// Histogram samples kept per metric between flushes; more are counted as dropped (a bound, not
/// an AWS limit: one invocation handles at most 10 messages).
pub const MAX_SAMPLES_PER_FLUSH: usize = 1_000;

/// Samples of one histogram since the last flush.
#[derive(Default)]
struct Samples {
    values: Mutex<Vec<f64>>,
    dropped: AtomicU64,
}

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        let mut values = lock(&self.values);
        if values.len() < MAX_SAMPLES_PER_FLUSH && value.is_finite() {
            values.push(value);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Every metric registered so far.
#[derive(Default)]
struct Registry {
    counters: Mutex<HashMap<Key, Arc<AtomicU64>>>,
    gauges: Mutex<HashMap<Key, Arc<AtomicU64>>>,
    histograms: Mutex<HashMap<Key, Arc<Samples>>>,
}

/// The recorder to install (`metrics::set_global_recorder`) in Lambda mode.
pub struct EmfRecorder {
    registry: Arc<Registry>,
}

/// Renders and resets what [`EmfRecorder`] accumulated.
#[derive(Clone)]
pub struct EmfHandle {
    registry: Arc<Registry>,
    namespace: String,
}

/// A recorder and the handle that flushes it.
pub fn emf_recorder(namespace: impl Into<String>) -> (EmfRecorder, EmfHandle) {
    let registry = Arc::new(Registry::default());
    (
        EmfRecorder {
            registry: registry.clone(),
        },
        EmfHandle {
            registry,
            namespace: namespace.into(),
        },
    )
}

impl Recorder for EmfRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(
            lock(&self.registry.counters)
                .entry(key.clone())
                .or_default()
                .clone(),
        )
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(
            lock(&self.registry.gauges)
                .entry(key.clone())
                .or_default()
                .clone(),
        )
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(
            lock(&self.registry.histograms)
                .entry(key.clone())
                .or_default()
                .clone(),
        )
    }
}

/// A label set as sorted (name, value) pairs.
type Dimensions = Vec<(String, String)>;

/// One metric's value in a line.
enum MetricValue {
    Count(u64),
    Gauge(f64),
    Values(Vec<f64>),
}

impl EmfHandle {
    /// The EMF lines for everything recorded since the last call, and resets counters and
    /// histograms (gauges keep their value and are reported while non-zero). Series whose labels
    /// differ only in labels that are not dimensions ([`dimensions`]) are reported together:
    /// counters summed, histogram samples joined. Nothing recorded → no lines.
    pub fn render(&self, now: DateTime<Utc>) -> Vec<String> {
        let mut merged: BTreeMap<(Dimensions, String), MetricValue> = BTreeMap::new();
        for (key, counter) in lock(&self.registry.counters).iter() {
            let value = counter.swap(0, Ordering::Relaxed);
            if value > 0 {
                merge(&mut merged, key, MetricValue::Count(value));
            }
        }
        for (key, gauge) in lock(&self.registry.gauges).iter() {
            let value = f64::from_bits(gauge.load(Ordering::Relaxed));
            if value != 0.0 && value.is_finite() {
                merge(&mut merged, key, MetricValue::Gauge(value));
            }
        }
        for (key, samples) in lock(&self.registry.histograms).iter() {
            let values = std::mem::take(&mut *lock(&samples.values));
            let dropped = samples.dropped.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                tracing::warn!(
                    metric = key.name(),
                    dropped,
                    "histogram samples over the per-invocation bound not reported"
                );
            }
            if !values.is_empty() {
                merge(&mut merged, key, MetricValue::Values(values));
            }
        }
        let mut groups: BTreeMap<Dimensions, Vec<(String, MetricValue)>> = BTreeMap::new();
        for ((dims, name), value) in merged {
            let group = groups.entry(dims).or_default();
            match value {
                MetricValue::Values(values) => group.extend(
                    values
                        .chunks(MAX_VALUES_PER_METRIC)
                        .map(|chunk| (name.clone(), MetricValue::Values(chunk.to_vec()))),
                ),
                other => group.push((name, other)),
            }
        }
        let timestamp = now.timestamp_millis();
        let mut lines = Vec::new();
        for (dims, metrics) in groups {
            // A metric may appear once per line: histogram chunks beyond the first go to lines of their own.
            let mut pending = metrics;
            while !pending.is_empty() {
                let mut line_metrics = Vec::new();
                let mut rest = Vec::new();
                for (name, value) in pending {
                    if line_metrics.len() < MAX_METRICS_PER_LINE
                        && !line_metrics.iter().any(|(n, _)| *n == name)
                    {
                        line_metrics.push((name, value));
                    } else {
                        rest.push((name, value));
                    }
                }
                lines.push(self.line(timestamp, &dims, &line_metrics));
                pending = rest;
            }
        }
        lines
    }

    /// Writes [`EmfHandle::render`]'s lines to stdout, where the Lambda runtime ships them to
    /// CloudWatch Logs.
    pub fn flush_to_stdout(&self) {
        let lines = self.render(Utc::now());
        if lines.is_empty() {
            return;
        }
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for line in lines {
            // Stdout gone (a closed pipe) leaves nothing to report to.
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }

    /// One EMF JSON line.
    fn line(
        &self,
        timestamp: i64,
        dims: &[(String, String)],
        metrics: &[(String, MetricValue)],
    ) -> String {
        let mut root = Map::new();
        let dimension_names: Vec<&str> = dims.iter().map(|(k, _)| k.as_str()).collect();
        let definitions: Vec<Value> = metrics
            .iter()
            .map(|(name, value)| json!({ "Name": name, "Unit": unit(name, value) }))
            .collect();
        root.insert(
            "_aws".to_owned(),
            json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [dimension_names],
                    "Metrics": definitions,
                }],
            }),
        );
        for (key, value) in dims {
            root.insert(key.clone(), Value::String(value.clone()));
        }
        for (name, value) in metrics {
            let value = match value {
                MetricValue::Count(count) => json!(count),
                MetricValue::Gauge(gauge) => json!(gauge),
                MetricValue::Values(values) => json!(values),
            };
            root.insert(name.clone(), value);
        }
        Value::Object(root).to_string()
    }
}

/// Adds one series' value to the line entry of its dimensions.
fn merge(merged: &mut BTreeMap<(Dimensions, String), MetricValue>, key: &Key, value: MetricValue) {
    let slot = (dimensions(key), key.name().to_owned());
    match (merged.get_mut(&slot), value) {
        (Some(MetricValue::Count(total)), MetricValue::Count(more)) => *total += more,
        (Some(MetricValue::Gauge(total)), MetricValue::Gauge(more)) => *total += more,
        (Some(MetricValue::Values(all)), MetricValue::Values(more)) => all.extend(more),
        (_, value) => {
            merged.insert(slot, value);
        }
    }
}

/// The CloudWatch unit of a metric, from its name: `*_seconds` are Seconds, names with the word
/// `bytes` Bytes, other counters Count.
fn unit(name: &str, value: &MetricValue) -> &'static str {
    let base = name.strip_suffix("_total").unwrap_or(name);
    if base.ends_with("_seconds") {
        "Seconds"
    } else if base.split('_').any(|word| word == "bytes") {
        "Bytes"
    } else if matches!(value, MetricValue::Count(_)) {
        "Count"
    } else {
        "None"
    }
}

/// Labels that become dimensions. Every distinct dimension set is a billed custom metric, so only
/// these are kept: per tenant, per outcome (or disposition), and `reason` only where the outcome
/// is a failure — at most tenant × outcome × reason-of-failures.
const DIMENSION_LABELS: &[&str] = &["tenant", "outcome", "disposition"];

/// Whether a series' `reason` label is kept: on failed outcomes, and on metrics that count only
/// failures (their name says so).
fn keeps_reason(key: &Key) -> bool {
    let name = key.name();
    let failure_metric = [
        "rejected",
        "failures",
        "dead_lettered",
        "errors",
        "bad_lines",
        "denied",
    ]
    .iter()
    .any(|word| name.contains(word));
    let failed_outcome = key
        .labels()
        .any(|label| label.key() == "outcome" && label.value().starts_with("failed"));
    failure_metric || failed_outcome
}

/// A key's labels as dimensions ([`DIMENSION_LABELS`], `reason` per [`keeps_reason`]): sorted,
/// at most [`MAX_DIMENSIONS`], empty values spelled `none` (CloudWatch dimension values must not
/// be empty).
fn dimensions(key: &Key) -> Vec<(String, String)> {
    let keep_reason = keeps_reason(key);
    let mut dims: Vec<(String, String)> = key
        .labels()
        .filter(|label| {
            DIMENSION_LABELS.contains(&label.key()) || (keep_reason && label.key() == "reason")
        })
        .map(|label| {
            let value = if label.value().is_empty() {
                "none"
            } else {
                label.value()
            };
            (label.key().to_owned(), value.to_owned())
        })
        .collect();
    dims.sort();
    dims.truncate(MAX_DIMENSIONS);
    dims
}

/// Locks a mutex; a panic elsewhere while holding it leaves counts that are still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_700_000_000_123)
            .single()
            .expect("valid")
    }

    fn parse(lines: &[String]) -> Vec<Value> {
        lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect()
    }

    #[test]
    fn counters_become_one_line_per_tenant_and_reset_after_each_flush() {
        let (recorder, handle) = emf_recorder("test/ns");
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("events_delivered_total", "tenant" => "acme").increment(3);
            metrics::counter!("events_delivered_total", "tenant" => "acme").increment(2);
            metrics::counter!("objects_total", "tenant" => "acme").increment(1);
            metrics::counter!("events_delivered_total", "tenant" => "globex").increment(7);
        });
        let lines = parse(&handle.render(now()));
        assert_eq!(lines.len(), 2);
        let acme = lines
            .iter()
            .find(|l| l["tenant"] == "acme")
            .expect("acme line");
        assert_eq!(acme["events_delivered_total"], 5);
        assert_eq!(acme["objects_total"], 1);
        let directive = &acme["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(acme["_aws"]["Timestamp"], 1_700_000_000_123_i64);
        assert_eq!(directive["Namespace"], "test/ns");
        assert_eq!(directive["Dimensions"], json!([["tenant"]]));
        assert_eq!(directive["Metrics"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            lines
                .iter()
                .find(|l| l["tenant"] == "globex")
                .expect("globex")["events_delivered_total"],
            7
        );

        assert!(
            handle.render(now()).is_empty(),
            "counters reset after a flush"
        );
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("objects_total", "tenant" => "acme").increment(1);
        });
        let lines = parse(&handle.render(now()));
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["objects_total"], 1, "only this invocation's count");
    }

    #[test]
    fn histograms_are_value_arrays_of_at_most_100() {
        let (recorder, handle) = emf_recorder(DEFAULT_NAMESPACE);
        metrics::with_local_recorder(&recorder, || {
            let histogram = metrics::histogram!("latency_seconds");
            for i in 0..150 {
                histogram.record(f64::from(i));
            }
            histogram.record(f64::NAN);
        });
        let lines = parse(&handle.render(now()));
        assert_eq!(lines.len(), 2, "150 values need two lines");
        let total: usize = lines
            .iter()
            .map(|l| l["latency_seconds"].as_array().map_or(0, Vec::len))
            .sum();
        assert_eq!(total, 150, "NaN is not reported");
        assert_eq!(
            lines[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
    }

    #[test]
    fn metrics_of_one_label_set_are_split_at_100_per_line() {
        let (recorder, handle) = emf_recorder(DEFAULT_NAMESPACE);
        metrics::with_local_recorder(&recorder, || {
            for i in 0..150 {
                metrics::counter!(format!("m{i}"), "tenant" => "t").increment(1);
            }
        });
        let lines = parse(&handle.render(now()));
        let counts: Vec<usize> = lines
            .iter()
            .map(|l| {
                l["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                    .as_array()
                    .map_or(0, Vec::len)
            })
            .collect();
        assert_eq!(counts.iter().sum::<usize>(), 150);
        assert!(counts.iter().all(|&c| c <= MAX_METRICS_PER_LINE));
    }

    #[test]
    fn units_follow_the_name_and_only_billed_dimensions_are_kept() {
        let (recorder, handle) = emf_recorder(DEFAULT_NAMESPACE);
        metrics::with_local_recorder(&recorder, || {
            let delivered = [
                ("tenant", "acme"),
                ("outcome", "delivered"),
                ("reason", "ok"),
            ];
            metrics::counter!("objects_total", &delivered).increment(2);
            let failed = [
                ("tenant", "acme"),
                ("outcome", "failed_permanent"),
                ("reason", "access_denied"),
            ];
            metrics::counter!("objects_total", &failed).increment(1);
            // `type` is not a dimension: both delivery types add up in one value.
            metrics::counter!("bytes_delivered_total", "tenant" => "acme", "type" => "cloudwatch")
                .increment(100);
            metrics::counter!("bytes_delivered_total", "tenant" => "acme", "type" => "s3")
                .increment(50);
            metrics::histogram!("delivery_latency_seconds", "tenant" => "acme", "type" => "s3")
                .record(1.5);
            metrics::counter!("retries_total", "operation" => "logs:PutLogEvents").increment(3);
        });
        let lines = parse(&handle.render(now()));
        let find = |metric: &str, outcome: Option<&str>| {
            lines
                .iter()
                .find(|l| l.get(metric).is_some() && outcome.is_none_or(|o| l["outcome"] == o))
                .unwrap_or_else(|| panic!("{metric} {outcome:?} in {lines:?}"))
                .clone()
        };
        let unit_of = |line: &Value, metric: &str| {
            line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .and_then(|m| m.iter().find(|d| d["Name"] == metric))
                .map(|d| d["Unit"].clone())
        };
        let ok = find("objects_total", Some("delivered"));
        assert_eq!(
            ok["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["outcome", "tenant"]])
        );
        assert!(ok.get("reason").is_none(), "no reason on a success: {ok}");
        let failed = find("objects_total", Some("failed_permanent"));
        assert_eq!(
            failed["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["outcome", "reason", "tenant"]])
        );
        let bytes = find("bytes_delivered_total", None);
        assert_eq!(
            bytes["bytes_delivered_total"], 150,
            "summed over the dropped label"
        );
        assert_eq!(
            unit_of(&bytes, "bytes_delivered_total"),
            Some(json!("Bytes"))
        );
        let latency = find("delivery_latency_seconds", None);
        assert_eq!(
            unit_of(&latency, "delivery_latency_seconds"),
            Some(json!("Seconds"))
        );
        let retries = find("retries_total", None);
        assert_eq!(
            retries["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
        assert_eq!(unit_of(&retries, "retries_total"), Some(json!("Count")));
    }

    #[test]
    fn empty_label_values_become_none() {
        let (recorder, handle) = emf_recorder(DEFAULT_NAMESPACE);
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("c", "tenant" => "").increment(1);
        });
        assert_eq!(parse(&handle.render(now()))[0]["tenant"], "none");
    }
}
