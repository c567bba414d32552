//! Every metric the processor exports, described once: name, kind, unit and help text, so
//! `/metrics` carries `# HELP` and `# TYPE` for each family (`promtool check metrics` clean), and
//! the series that exist from the start: `logrelay_processor_build_info` and the message
//! dispositions at zero (so `rate()` and `absent()` alerts work before the first message).

use super::events::{
    ASSUME_ROLE_DENIED_TOTAL, BAD_LINES_TOTAL, BATCHES_RESUMED_TOTAL, BYTES_DELIVERED_TOTAL,
    CONFIG_FAILURES_TOTAL, CONFIGS_INVALID_TOTAL, DELIVERY_LATENCY_SECONDS, EVENTS_DELIVERED_TOTAL,
    EVENTS_REJECTED_TOTAL, EVENTS_SPLIT_TOTAL, FORCED_REDELIVERIES_TOTAL,
    LOG_RESOURCES_CREATED_TOTAL, OBJECTS_TOTAL, PROGRESS_RESETS_TOTAL, RECORDS_FILTERED_TOTAL,
    RECORDS_MISATTRIBUTED_TOTAL, RECORDS_READ_TOTAL, RETRIES_TOTAL, S3_COPIES_TOTAL,
    TIMESTAMP_FALLBACKS_TOTAL, UPLOADS_UNVERIFIED_TOTAL,
};
use super::intake::{
    BODIES_REJECTED_TOTAL, DEAD_LETTERED_TOTAL, EVENTS_IGNORED_TOTAL, MESSAGES_NOT_STARTED_TOTAL,
    MESSAGES_TOTAL, QUEUE_ERRORS_TOTAL, TEST_EVENTS_TOTAL, VISIBILITY_EXTENSIONS_TOTAL,
};
use metrics::Unit;

/// Always 1, labelled with the version: which build runs where.
pub const BUILD_INFO: &str = "logrelay_processor_build_info";

/// The dispositions of `logrelay_processor_messages_total`, present from the start.
pub const DISPOSITIONS: [&str; 3] = ["acknowledged", "retry", "dead_letter"];

/// Counters: name and help.
const COUNTERS: &[(&str, &str)] = &[
    (
        UPLOADS_UNVERIFIED_TOTAL,
        "Objects whose notification named no uploader to check against LOGRELAY_CLUSTER_WRITERS.",
    ),
    (
        crate::telemetry::events::CONFIGS_UNTYPED_TOTAL,
        "Tenant items without a type read as cloudwatch configs (proof-of-concept tables), by tenant.",
    ),
    (
        crate::telemetry::events::VECTOR_OBJECTS_TOTAL,
        "Objects written by the proof of concept's Vector agent, by tenant.",
    ),
    (
        OBJECTS_TOTAL,
        "Objects finished, by tenant, outcome and reason.",
    ),
    (RECORDS_READ_TOTAL, "Records read from objects, by tenant."),
    (
        EVENTS_DELIVERED_TOTAL,
        "Events accepted by the destination, by tenant and delivery type.",
    ),
    (
        BYTES_DELIVERED_TOTAL,
        "Message bytes accepted by the destination, by tenant and delivery type.",
    ),
    (
        EVENTS_REJECTED_TOTAL,
        "Events the destination did not take, by tenant and reason.",
    ),
    (
        RECORDS_FILTERED_TOTAL,
        "Records a config's application filter did not want, by tenant.",
    ),
    (
        RECORDS_MISATTRIBUTED_TOTAL,
        "Records claiming another tenant than their object's key (never delivered), by tenant.",
    ),
    (
        BAD_LINES_TOTAL,
        "Lines of objects that are not records, by tenant and reason.",
    ),
    (
        TIMESTAMP_FALLBACKS_TOTAL,
        "Records without a usable timestamp given the object's time, by tenant.",
    ),
    (
        EVENTS_SPLIT_TOTAL,
        "Messages over the per-event limit split into continuation events, by tenant.",
    ),
    (
        CONFIGS_INVALID_TOTAL,
        "Delivery configs skipped as invalid, by tenant and delivery type.",
    ),
    (
        ASSUME_ROLE_DENIED_TOTAL,
        "AssumeRole calls refused, by tenant and delivery type.",
    ),
    (
        CONFIG_FAILURES_TOTAL,
        "Configs that failed for an object, by tenant, delivery type, kind and reason.",
    ),
    (RETRIES_TOTAL, "Retried AWS calls, by operation."),
    (
        LOG_RESOURCES_CREATED_TOTAL,
        "Log groups and streams created, by tenant, kind and whether they existed before.",
    ),
    (S3_COPIES_TOTAL, "S3 copies written, by tenant."),
    (
        BATCHES_RESUMED_TOTAL,
        "Batches skipped because an earlier attempt delivered them, by tenant.",
    ),
    (
        PROGRESS_RESETS_TOTAL,
        "Delivery progress discarded because the config changed, by tenant.",
    ),
    (
        FORCED_REDELIVERIES_TOTAL,
        "Configs of objects delivered again by replay --force, by tenant and delivery type.",
    ),
    (
        MESSAGES_TOTAL,
        "Queue messages by disposition (acknowledged, retry, dead_letter).",
    ),
    (
        BODIES_REJECTED_TOTAL,
        "Message bodies that could not be read, by reason.",
    ),
    (
        TEST_EVENTS_TOTAL,
        "s3:TestEvent notifications acknowledged.",
    ),
    (EVENTS_IGNORED_TOTAL, "Non-creation S3 events skipped."),
    (
        DEAD_LETTERED_TOTAL,
        "Messages dead-lettered, by reason and whether forwarded to DLQ_URL.",
    ),
    (QUEUE_ERRORS_TOTAL, "Failed SQS calls, by operation."),
    (
        VISIBILITY_EXTENSIONS_TOTAL,
        "Visibility extensions sent for messages still in progress.",
    ),
    (
        MESSAGES_NOT_STARTED_TOTAL,
        "Messages a Lambda invocation did not start because its deadline was near.",
    ),
];

/// Describes every metric and creates the series that exist from the start. Call once after the
/// recorder is installed.
pub fn describe_metrics() {
    for (name, help) in COUNTERS {
        metrics::describe_counter!(*name, Unit::Count, *help);
    }
    metrics::describe_histogram!(
        DELIVERY_LATENCY_SECONDS,
        Unit::Seconds,
        "Seconds from object creation to the end of its delivery, by tenant and delivery type."
    );
    metrics::describe_gauge!(
        BUILD_INFO,
        "Always 1; the version label names the running build."
    );
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for disposition in DISPOSITIONS {
        metrics::counter!(MESSAGES_TOTAL, "disposition" => disposition).absolute(0);
    }
}

/// The names of every described metric (for tests and docs checks).
pub fn described_names() -> impl Iterator<Item = &'static str> {
    COUNTERS
        .iter()
        .map(|(name, _)| *name)
        .chain([DELIVERY_LATENCY_SECONDS, BUILD_INFO])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every metric name constant of the telemetry modules, read from their source.
    fn declared() -> Vec<String> {
        [include_str!("events.rs"), include_str!("intake.rs")]
            .iter()
            .flat_map(|source| source.lines())
            .filter(|line| line.starts_with("pub const ") && line.contains(": &str = \""))
            .filter_map(|line| line.split('"').nth(1))
            .filter(|name| name.starts_with(crate::telemetry::METRIC_PREFIX))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_declared_metric_is_described() {
        let described: Vec<&str> = described_names().collect();
        let declared = declared();
        assert!(declared.len() > 20, "{declared:?}");
        for name in &declared {
            assert!(
                described.contains(&name.as_str()),
                "{name} has no help text"
            );
        }
    }
}
