//! What Lambda's SQS event source mapping does, for the processor in `lambda` mode: poll the
//! queue, hand up to 10 messages to the function as one SQS event through the testkit's Lambda
//! Runtime API emulator, then delete every message not named in the response's
//! `batchItemFailures` (those, and every message of a failed invocation, come back after the
//! visibility timeout). Its own SQS calls are the mapping's, not the function's: they do not go
//! through the processor's counting proxy.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use logrelay_testkit::TEST_REGION;
use logrelay_testkit::lambda_runtime_api::{InvocationResult, LambdaRuntimeApi};
use serde_json::{Value, json};
use tokio::sync::watch;

/// Messages per invocation: the event source mapping's default batch size for SQS.
const BATCH_SIZE: i32 = 10;

/// Long-poll wait of each receive (short, so a stop request is seen quickly).
const RECEIVE_WAIT_SECONDS: i32 = 1;

/// Longest an invocation may take: Lambda's maximum function timeout (15 minutes).
const INVOCATION_TIMEOUT: Duration = logrelay_testkit::lambda_runtime_api::FUNCTION_TIMEOUT;

/// Counters of the feeder.
#[derive(Debug, Default)]
pub struct FeederStats {
    /// Invocations answered with a batch response.
    pub invocations: AtomicU64,
    /// Messages the function reported in `batchItemFailures`.
    pub item_failures: AtomicU64,
    /// Invocations that ended in a function or init error (every message is retried).
    pub failed_invocations: AtomicU64,
    /// Messages deleted after a successful invocation.
    pub deleted: AtomicU64,
}

/// Feeds the queue into the function until `stop` turns true.
pub async fn run(
    api: Arc<LambdaRuntimeApi>,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    queue_arn: String,
    stats: Arc<FeederStats>,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(BATCH_SIZE)
            .wait_time_seconds(RECEIVE_WAIT_SECONDS)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await;
        let messages = match received {
            Ok(output) => output.messages.unwrap_or_default(),
            Err(error) => {
                tracing::warn!(error = %aws_smithy_types::error::display::DisplayErrorContext(&error), "lambda feeder: receive failed");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let records: Vec<Value> = messages.iter().map(|m| sqs_record(m, &queue_arn)).collect();
        let event = json!({ "Records": records });
        let failed: Vec<String> = match tokio::time::timeout(INVOCATION_TIMEOUT, api.invoke(event))
            .await
        {
            Ok(InvocationResult::Response(response)) => {
                stats.invocations.fetch_add(1, Ordering::Relaxed);
                batch_item_failures(&response)
            }
            other => {
                tracing::warn!(result = ?other, "lambda feeder: invocation failed; every message will be retried");
                stats.failed_invocations.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        stats
            .item_failures
            .fetch_add(failed.len() as u64, Ordering::Relaxed);
        let entries: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .filter(|m| {
                m.message_id()
                    .is_some_and(|id| !failed.iter().any(|f| f == id))
            })
            .filter_map(|m| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(m.message_id()?)
                    .receipt_handle(m.receipt_handle()?)
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            continue;
        }
        let count = entries.len() as u64;
        match sqs
            .delete_message_batch()
            .queue_url(&queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(_) => {
                stats.deleted.fetch_add(count, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::warn!(error = %aws_smithy_types::error::display::DisplayErrorContext(&error), "lambda feeder: delete failed; the messages come back");
            }
        }
    }
}

/// One record of a Lambda SQS event.
fn sqs_record(message: &aws_sdk_sqs::types::Message, queue_arn: &str) -> Value {
    let attributes: serde_json::Map<String, Value> = message
        .attributes()
        .map(|attrs| {
            attrs
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "messageId": message.message_id(),
        "receiptHandle": message.receipt_handle(),
        "body": message.body(),
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": message.md5_of_body(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": TEST_REGION,
    })
}

/// The message ids in `{"batchItemFailures": [{"itemIdentifier": id}, ...]}`.
fn batch_item_failures(response: &Value) -> Vec<String> {
    response
        .get("batchItemFailures")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.get("itemIdentifier")?.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_read_from_the_partial_batch_response() {
        let response =
            json!({"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]});
        assert_eq!(batch_item_failures(&response), ["a", "b"]);
        assert!(batch_item_failures(&json!({"batchItemFailures": []})).is_empty());
        assert!(batch_item_failures(&json!(null)).is_empty());
    }

    #[test]
    fn records_carry_the_message_and_the_queue() {
        let message = aws_sdk_sqs::types::Message::builder()
            .message_id("m1")
            .receipt_handle("r1")
            .body("{}")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .build();
        let record = sqs_record(&message, "arn:aws:sqs:us-east-1:123456789012:q");
        assert_eq!(record["messageId"], "m1");
        assert_eq!(record["body"], "{}");
        assert_eq!(record["eventSource"], "aws:sqs");
        assert_eq!(record["attributes"]["ApproximateReceiveCount"], "2");
    }
}
