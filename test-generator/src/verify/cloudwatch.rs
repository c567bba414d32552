//! Delivered events in a CloudWatch Logs group: `FilterLogEvents` over all streams, paginated.
//!
//! An event's message is either a whole record (JSON in the common schema; its `message` and
//! `customer_id` are used) or the bare log line.

use super::VerifyError;
use super::tally::{Delivered, Tally};
use aws_config::SdkConfig;
use logrelay_common::aws::AwsError;
use logrelay_common::record::LogRecord;

/// Reads every event of `group` into `tally`.
pub async fn read(
    group: &str,
    config: &SdkConfig,
    tally: &mut Tally<'_>,
) -> Result<(), VerifyError> {
    let client = aws_sdk_cloudwatchlogs::Client::new(config);
    let mut pages = client
        .filter_log_events()
        .log_group_name(group)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| AwsError::from_sdk(format!("logs:FilterLogEvents {group}"), e))?;
        tally.object_read();
        for event in page.events() {
            observe_event(event.message().unwrap_or(""), tally);
        }
    }
    Ok(())
}

/// Counts one event's message, unwrapping a JSON record if it is one.
pub fn observe_event(message: &str, tally: &mut Tally<'_>) {
    match serde_json::from_str::<LogRecord>(message) {
        Ok(record) => tally.observe(Delivered {
            text: &record.message,
            partition_customer: None,
            record_customer: Some(&record.customer_id),
            stream: Some(record.stream),
        }),
        Err(_) => tally.observe(Delivered {
            text: message,
            partition_customer: None,
            record_customer: None,
            stream: None,
        }),
    }
}
