//! The customer deleting its CloudWatch Logs group mid-run, and checking that tenant's
//! CloudWatch delivery afterwards.
//!
//! Deleting the group deletes every event delivered so far, so after the run the group holds only
//! what came after. To still prove that nothing was lost, the customer keeps a copy first: the
//! processor's CloudWatch calls are paused (its outage proxy fails them; it retries later), the
//! demo waits until no call can still be on its way, reads every event into
//! `<run>/archive/<tenant>-log-group.ndjson`, deletes the group and ends the pause. The processor
//! must then recreate the group and stream and deliver everything else. Verification counts the
//! archive and the recreated group together against the ledger (in-process, with the generator's
//! own `Tally`): nothing missing, nothing misrouted; lines in both count as duplicates.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use aws_config::SdkConfig;
use aws_smithy_types::error::display::DisplayErrorContext;
use logrelay_testgen::ledger::Ledger;
use logrelay_testgen::verify::tally::{Expectations, Tally};
use logrelay_testgen::verify::{DEFAULT_MAX_RANGES, cloudwatch};

use super::faults::{ComponentFaults, LONGEST_LATENCY_FAULT};
use crate::verify::Report;

/// How long after the pause began no CloudWatch call of the processor can still reach the
/// emulator: the longest injected delay sits in front of the pause, so only calls already past it
/// are in flight, and moto answers those within milliseconds; one more second of margin.
pub const PAUSE_SETTLE: Duration = LONGEST_LATENCY_FAULT.saturating_add(Duration::from_secs(1));

/// The SigV4 service name of CloudWatch Logs.
const LOGS_SERVICE: &str = "logs";

/// What the deletion did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Deletion {
    /// Whose group.
    pub tenant: String,
    /// The group.
    pub group: String,
    /// Events the group held when it was deleted (archived first).
    pub events_archived: u64,
    /// Where the archive is (one JSON string per line: each event's message).
    pub archive: PathBuf,
    /// How long the processor's CloudWatch calls were paused.
    pub paused_ms: u64,
    /// Processor calls failed by the pause.
    pub paused_calls: u64,
}

/// Pauses the processor's CloudWatch calls, archives `group`'s events to `archive`, deletes the
/// group as the customer (`customer` acts in the tenant's account) and ends the pause.
pub async fn archive_and_delete(
    tenant: &str,
    group: &str,
    customer: &SdkConfig,
    processor_faults: &ComponentFaults,
    archive: &Path,
) -> anyhow::Result<Deletion> {
    let started = tokio::time::Instant::now();
    processor_faults.begin_outage(LOGS_SERVICE);
    tokio::time::sleep(PAUSE_SETTLE).await;
    let result = archive_then_delete(group, customer, archive).await;
    let paused_calls = processor_faults.end_outage(LOGS_SERVICE);
    let events_archived = result?;
    Ok(Deletion {
        tenant: tenant.to_owned(),
        group: group.to_owned(),
        events_archived,
        archive: archive.to_path_buf(),
        paused_ms: started.elapsed().as_millis() as u64,
        paused_calls,
    })
}

async fn archive_then_delete(
    group: &str,
    customer: &SdkConfig,
    archive: &Path,
) -> anyhow::Result<u64> {
    let client = aws_sdk_cloudwatchlogs::Client::new(customer);
    if let Some(dir) = archive.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let file =
        std::fs::File::create(archive).with_context(|| format!("create {}", archive.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut events = 0u64;
    let mut pages = client
        .filter_log_events()
        .log_group_name(group)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            anyhow::anyhow!("logs:FilterLogEvents {group}: {}", DisplayErrorContext(&e))
        })?;
        for event in page.events() {
            let line = serde_json::to_string(event.message().unwrap_or(""))?;
            writeln!(out, "{line}")?;
            events += 1;
        }
    }
    out.flush()
        .with_context(|| format!("write {}", archive.display()))?;
    client
        .delete_log_group()
        .log_group_name(group)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("logs:DeleteLogGroup {group}: {}", DisplayErrorContext(&e)))?;
    tracing::info!(group, events, "log group archived and deleted");
    Ok(events)
}

/// Verifies a tenant's CloudWatch delivery as the archive of its deleted group plus what the
/// (recreated) group holds now, against `ledger`. The report is also appended to `log`.
pub async fn verify_with_archive(
    ledger: &Path,
    archive: &Path,
    group: &str,
    reader: &SdkConfig,
    expectations: Expectations,
    log: &Path,
) -> anyhow::Result<Report> {
    let ledger = Ledger::read(ledger).context("reading the generator's ledger")?;
    let mut tally = Tally::new(&ledger, expectations)?;
    let file =
        std::fs::File::open(archive).with_context(|| format!("open {}", archive.display()))?;
    for line in std::io::BufReader::new(file).lines() {
        let line = line.with_context(|| format!("read {}", archive.display()))?;
        let message: String = serde_json::from_str(&line)
            .with_context(|| format!("a line of {} is not a JSON string", archive.display()))?;
        cloudwatch::observe_event(&message, &mut tally);
    }
    cloudwatch::read(group, reader, &mut tally)
        .await
        .with_context(|| format!("reading the recreated group {group}"))?;
    let report = tally.finish(DEFAULT_MAX_RANGES);
    let json = report.to_json();
    let mut text = std::fs::read_to_string(log).unwrap_or_default();
    text.push_str(&format!(
        "$ verify cloudwatch {group} + archive {}\n{json}\n",
        archive.display()
    ));
    std::fs::write(log, text).with_context(|| format!("write {}", log.display()))?;
    serde_json::from_str(&json).context("reading the archive verification's report")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatchlogs::types::InputLogEvent;
    use logrelay_testgen::ledger::{Book, SourceMeta};
    use logrelay_testkit::Moto;

    #[test]
    fn the_pause_outlasts_the_longest_injected_delay() {
        assert!(PAUSE_SETTLE > LONGEST_LATENCY_FAULT);
    }

    /// A group with one stream holding `messages` (all at the same time).
    async fn group_with(config: &SdkConfig, messages: &[&str]) -> String {
        let logs = aws_sdk_cloudwatchlogs::Client::new(config);
        let group = format!("/chaos/{}", logrelay_testkit::unique_name("group"));
        logs.create_log_group()
            .log_group_name(&group)
            .send()
            .await
            .expect("group");
        logs.create_log_stream()
            .log_group_name(&group)
            .log_stream_name("s")
            .send()
            .await
            .expect("stream");
        let now = chrono::Utc::now().timestamp_millis();
        let events: Vec<InputLogEvent> = messages
            .iter()
            .map(|m| {
                InputLogEvent::builder()
                    .timestamp(now)
                    .message(*m)
                    .build()
                    .expect("event")
            })
            .collect();
        logs.put_log_events()
            .log_group_name(&group)
            .log_stream_name("s")
            .set_log_events(Some(events))
            .send()
            .await
            .expect("put");
        group
    }

    #[tokio::test]
    async fn a_deleted_group_is_archived_first_and_gone_afterwards() {
        let moto = Moto::shared().await;
        let config = moto.config(logrelay_testkit::DEFAULT_ACCOUNT_ID).await;
        let group = group_with(&config, &["first \"quoted\"", "second\nline"]).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let archive = dir.path().join("archive").join("t.ndjson");
        let faults = ComponentFaults::start(moto.url(), 0.0, &[])
            .await
            .expect("proxies");
        let deletion = archive_and_delete("t", &group, &config, &faults, &archive)
            .await
            .expect("archived and deleted");
        assert_eq!(deletion.events_archived, 2);
        assert!(deletion.paused_ms >= PAUSE_SETTLE.as_millis() as u64);
        let mut lines: Vec<String> = std::fs::read_to_string(&archive)
            .expect("archive")
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON string"))
            .collect();
        lines.sort();
        assert_eq!(lines, ["first \"quoted\"", "second\nline"]);
        let groups = aws_sdk_cloudwatchlogs::Client::new(&config)
            .describe_log_groups()
            .log_group_name_prefix(&group)
            .send()
            .await
            .expect("describe");
        assert!(groups.log_groups().is_empty(), "{group} still exists");
    }

    #[tokio::test]
    async fn archive_and_recreated_group_together_are_checked_against_the_ledger() {
        let moto = Moto::shared().await;
        let config = moto.config(logrelay_testkit::DEFAULT_ACCOUNT_ID).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let meta = |customer: &str, source: &str| SourceMeta {
            source: source.into(),
            customer_id: customer.into(),
            cluster_id: None,
            namespace: customer.into(),
            pod: "p".into(),
            pod_uid: None,
            container: "c".into(),
            stream: None,
            application: "api".into(),
        };
        let mut book = Book::new("pods");
        let own = book.register(meta("acme", "acme/p/c"));
        let other = book.register(meta("globex", "globex/p/c"));
        for _ in 0..4 {
            book.next_seq(own);
        }
        book.next_seq(other);
        let ledger = dir.path().join("ledger.json");
        book.snapshot(true, chrono::Utc::now())
            .write_atomic(&ledger)
            .expect("ledger");
        // Lines 0 and 1 were delivered before the deletion (plus another tenant's line), 1 to 3
        // after it: 1 is a duplicate, nothing is missing, one line is misrouted.
        let archive = dir.path().join("archive.ndjson");
        let archived = [
            "a lrseq=acme/p/c#0",
            "b lrseq=acme/p/c#1",
            "x lrseq=globex/p/c#0",
        ];
        let text: Vec<String> = archived
            .iter()
            .map(|m| serde_json::to_string(m).expect("json"))
            .collect();
        std::fs::write(&archive, text.join("\n") + "\n").expect("archive");
        let group = group_with(
            &config,
            &[
                "b lrseq=acme/p/c#1",
                "c lrseq=acme/p/c#2",
                "d lrseq=acme/p/c#3",
            ],
        )
        .await;
        let report = verify_with_archive(
            &ledger,
            &archive,
            &group,
            &config,
            Expectations {
                tenant: Some("acme".into()),
                applications: Vec::new(),
            },
            &dir.path().join("verify.log"),
        )
        .await
        .expect("verified");
        assert_eq!(report.totals.expected, 4);
        assert_eq!(report.totals.delivered, 4);
        assert_eq!(report.totals.missing, 0);
        assert_eq!(report.totals.duplicated, 1);
        assert_eq!(report.totals.misrouted, 1);
        let log = std::fs::read_to_string(dir.path().join("verify.log")).expect("log");
        assert!(log.contains(&group), "{log}");
    }
}
