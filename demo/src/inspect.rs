//! Reading what the run left in the emulated accounts, for the summary: delivery latency from
//! the events in a tenant's log group, object counts and sizes of buckets, and the dead-letter
//! queue's messages with the tenant and reason of each.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use aws_smithy_types::error::display::DisplayErrorContext;
use logrelay_common::key::{ObjectKey, decode_notification_key};
use serde_json::Value;

/// Most receive rounds when reading the DLQ (10 messages each).
const MAX_DLQ_ROUNDS: usize = 100;

/// The DLQ message attribute holding the failure reason (set by the processor).
pub const DLQ_REASON_ATTRIBUTE: &str = "logrelay.error.reason";

/// Write-to-delivery latency percentiles of one log group, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Latency {
    /// Events measured.
    pub events: u64,
    /// Median.
    pub p50_ms: i64,
    /// 99th percentile.
    pub p99_ms: i64,
    /// Largest.
    pub max_ms: i64,
}

/// Latency of every event in `group`: CloudWatch's `ingestionTime` (when PutLogEvents accepted
/// it) minus the event's `timestamp` (the time the pod wrote the line, carried through the
/// record). `None` when the group has no events or cannot be read.
pub async fn log_group_latency(config: &SdkConfig, group: &str) -> Option<Latency> {
    let client = aws_sdk_cloudwatchlogs::Client::new(config);
    let mut samples = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .filter_log_events()
            .log_group_name(group)
            .set_next_token(token.clone())
            .send()
            .await
            .ok()?;
        samples.extend(
            page.events()
                .iter()
                .filter_map(|e| Some(e.ingestion_time()? - e.timestamp()?)),
        );
        match page.next_token() {
            Some(next) if Some(next) != token.as_deref() && !page.events().is_empty() => {
                token = Some(next.to_owned());
            }
            _ => break,
        }
    }
    percentiles(samples)
}

/// p50, p99 and max of `samples` (nearest rank).
pub fn percentiles(mut samples: Vec<i64>) -> Option<Latency> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let rank = |p: f64| -> i64 {
        let index = ((p / 100.0) * samples.len() as f64).ceil() as usize;
        samples[index.clamp(1, samples.len()) - 1]
    };
    Some(Latency {
        events: samples.len() as u64,
        p50_ms: rank(50.0),
        p99_ms: rank(99.0),
        max_ms: samples[samples.len() - 1],
    })
}

/// Objects and bytes under a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct BucketUsage {
    /// Objects.
    pub objects: u64,
    /// Bytes (as stored: gzip).
    pub bytes: u64,
}

/// Counts the objects of `bucket` (paginated listing).
pub async fn bucket_usage(config: &SdkConfig, bucket: &str) -> anyhow::Result<BucketUsage> {
    let client = logrelay_common::aws::s3_client(config);
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .into_paginator()
        .send();
    let mut usage = BucketUsage::default();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| anyhow::anyhow!("list s3://{bucket}: {}", DisplayErrorContext(&e)))?;
        for object in page.contents() {
            usage.objects += 1;
            usage.bytes += u64::try_from(object.size().unwrap_or(0)).unwrap_or(0);
        }
    }
    Ok(usage)
}

/// Objects of each tenant in the central bucket (by the key's first segment).
pub async fn objects_per_tenant(
    config: &SdkConfig,
    bucket: &str,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let client = logrelay_common::aws::s3_client(config);
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .into_paginator()
        .send();
    let mut counts = BTreeMap::new();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| anyhow::anyhow!("list s3://{bucket}: {}", DisplayErrorContext(&e)))?;
        for key in page.contents().iter().filter_map(|o| o.key()) {
            if let Ok(parsed) = ObjectKey::parse(key) {
                *counts.entry(parsed.partition.customer_id).or_default() += 1;
            }
        }
    }
    Ok(counts)
}

/// What the dead-letter queue holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetters {
    /// Messages.
    pub messages: u64,
    /// Objects named by the messages, per tenant.
    pub objects_per_tenant: BTreeMap<String, u64>,
    /// Messages per failure reason (`logrelay.error.reason`).
    pub reasons: BTreeMap<String, u64>,
}

/// Reads every message of the DLQ without deleting it (they stay for inspection; they are
/// invisible for the queue's visibility timeout afterwards).
pub async fn dead_letters(config: &SdkConfig, dlq_url: &str) -> anyhow::Result<DeadLetters> {
    let sqs = aws_sdk_sqs::Client::new(config);
    let mut found = DeadLetters::default();
    for _ in 0..MAX_DLQ_ROUNDS {
        let messages = sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("receive from the DLQ: {}", DisplayErrorContext(&e)))?
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            found.messages += 1;
            let reason = message
                .message_attributes()
                .and_then(|a| a.get(DLQ_REASON_ATTRIBUTE))
                .and_then(|v| v.string_value())
                .unwrap_or("unknown")
                .to_owned();
            *found.reasons.entry(reason).or_default() += 1;
            for tenant in tenants_of_body(message.body().unwrap_or_default()) {
                *found.objects_per_tenant.entry(tenant).or_default() += 1;
            }
        }
    }
    Ok(found)
}

/// The queue's `VisibilityTimeout` and its redrive policy's `maxReceiveCount`, as SQS has them.
pub async fn queue_settings(config: &SdkConfig, queue_url: &str) -> anyhow::Result<(u32, u32)> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attributes = aws_sdk_sqs::Client::new(config)
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("sqs:GetQueueAttributes: {}", DisplayErrorContext(&e)))?
        .attributes
        .unwrap_or_default();
    let visibility = attributes
        .get(&QueueAttributeName::VisibilityTimeout)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("the queue has no VisibilityTimeout"))?;
    let policy: Value = attributes
        .get(&QueueAttributeName::RedrivePolicy)
        .map(|p| serde_json::from_str(p))
        .transpose()?
        .ok_or_else(|| anyhow::anyhow!("the queue has no RedrivePolicy"))?;
    // SQS returns the count as a number; older APIs (and moto) may return it as a string.
    let max_receive_count = match policy.get("maxReceiveCount") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .and_then(|n| u32::try_from(n).ok())
    .ok_or_else(|| anyhow::anyhow!("the queue's RedrivePolicy has no maxReceiveCount: {policy}"))?;
    Ok((visibility, max_receive_count))
}

/// The tenants (first key segments) of the objects a notification body names: an SNS envelope
/// around an S3 event, or a bare S3 event.
pub fn tenants_of_body(body: &str) -> Vec<String> {
    let Ok(mut value) = serde_json::from_str::<Value>(body) else {
        return Vec::new();
    };
    if let Some(inner) = value.get("Message").and_then(Value::as_str) {
        match serde_json::from_str::<Value>(inner) {
            Ok(parsed) => value = parsed,
            Err(_) => return Vec::new(),
        }
    }
    value
        .get("Records")
        .and_then(Value::as_array)
        .map(|records| {
            records
                .iter()
                .filter_map(|r| r.pointer("/s3/object/key")?.as_str())
                .filter_map(|raw| decode_notification_key(raw).ok())
                .filter_map(|key| ObjectKey::parse(&key).ok())
                .map(|key| key.partition.customer_id)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let latency = percentiles((1..=100).collect()).expect("samples");
        assert_eq!(
            (latency.p50_ms, latency.p99_ms, latency.max_ms),
            (50, 99, 100)
        );
        assert_eq!(latency.events, 100);
        let one = percentiles(vec![7]).expect("one sample");
        assert_eq!((one.p50_ms, one.p99_ms), (7, 7));
        assert_eq!(percentiles(Vec::new()), None);
    }

    #[test]
    fn tenants_are_read_from_sns_wrapped_s3_events() {
        let s3_event = serde_json::json!({"Records": [{"eventVersion": "2.1", "s3": {"object": {
            "key": "blocked/demo-cluster/api/api-1/20240101T000000Z-0a.json.gz"}}}]});
        let envelope = serde_json::json!({"Type": "Notification", "Message": s3_event.to_string()});
        assert_eq!(tenants_of_body(&envelope.to_string()), ["blocked"]);
        assert_eq!(tenants_of_body(&s3_event.to_string()), ["blocked"]);
        assert!(tenants_of_body("{not json").is_empty());
        assert!(tenants_of_body(r#"{"Event": "s3:TestEvent"}"#).is_empty());
    }
}
