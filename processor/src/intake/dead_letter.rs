//! Forwarding permanently failed messages to the dead-letter queue (`DLQ_URL`) before they are
//! acknowledged: the original body, plus the error as message attributes, so an operator sees at
//! once why (e.g. a tenant's role denies access) without waiting for `maxReceiveCount` redeliveries.
//!
//! Why forward instead of letting the queue's redrive policy do it: redrive moves a message only
//! after it was received `maxReceiveCount` times, each time re-running the failing delivery (an
//! AssumeRole refused again and again: a retry storm against the tenant's account). A permanent
//! failure cannot succeed on retry, so it is dead-lettered at once. Transient failures still go
//! the redrive way.

use crate::intake::message::DeadLetterCause;
use aws_sdk_sqs::types::MessageAttributeValue;
use chrono::{SecondsFormat, Utc};
use logrelay_common::aws::AwsError;
use std::collections::HashMap;

/// Attribute holding the failure's metric label.
pub const ATTR_REASON: &str = "logrelay.error.reason";
/// Attribute holding the human-readable error.
pub const ATTR_ERROR: &str = "logrelay.error.message";
/// Attribute holding the id of the message that failed.
pub const ATTR_SOURCE_MESSAGE_ID: &str = "logrelay.source.message_id";
/// Attribute holding when the failure happened (RFC 3339).
pub const ATTR_FAILED_AT: &str = "logrelay.failed_at";
/// Body sent for a message whose body was empty (SQS bodies must hold at least one character).
const EMPTY_BODY_PLACEHOLDER: &str = "(empty body)";

/// The DLQ permanently failed messages are forwarded to.
#[derive(Debug, Clone)]
pub struct DeadLetterQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

/// Forwarding failed; the message must not be acknowledged (it will come back, or be redriven).
#[derive(Debug, thiserror::Error)]
#[error("cannot forward to the dead-letter queue {url}: {source}")]
pub struct DeadLetterError {
    /// The DLQ.
    pub url: String,
    /// The SendMessage failure.
    #[source]
    pub source: AwsError,
}

impl DeadLetterQueue {
    /// A DLQ at `url`, reached with `client`.
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// The DLQ's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends `body` to the DLQ with the cause as attributes.
    pub async fn forward(
        &self,
        body: &str,
        source_message_id: Option<&str>,
        cause: &DeadLetterCause,
    ) -> Result<(), DeadLetterError> {
        let body = if body.is_empty() {
            EMPTY_BODY_PLACEHOLDER
        } else {
            body
        };
        let failed_at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let attributes: HashMap<String, MessageAttributeValue> = [
            (ATTR_REASON, Some(cause.reason)),
            (ATTR_ERROR, Some(cause.error.as_str())),
            (ATTR_FAILED_AT, Some(failed_at.as_str())),
            (ATTR_SOURCE_MESSAGE_ID, source_message_id),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_owned(), string_attribute(value?)?)))
        .collect();
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .set_message_attributes(Some(attributes))
            .send()
            .await
            .map_err(|e| DeadLetterError {
                url: self.url.clone(),
                source: AwsError::from_sdk("sqs:SendMessage (dead-letter)", e),
            })?;
        Ok(())
    }
}

/// A `String` message attribute; `None` for an empty value (SQS rejects empty attribute values).
fn string_attribute(value: &str) -> Option<MessageAttributeValue> {
    if value.is_empty() {
        return None;
    }
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .ok()
}
