//! Manual mode: stdin holds one or more notification bodies (SQS body, SNS envelope, S3 event,
//! EventBridge event, a whole Lambda SQS event) and/or `s3://bucket/key` lines. Each announced
//! object is processed; one result line per object or unreadable entry (named by the line it
//! starts on) and a summary (input lines, entries, outcomes) go to stderr. The caller exits
//! non-zero when anything failed ([`Tally::failures`]).

use std::io::Write;

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::intake::event::{MAX_MANUAL_INPUT_BYTES, parse_manual_entries};
use crate::intake::message::{Tally, process_items};
use crate::object::{ObjectHandler, Outcome};

/// Stdin could not be read as manual input.
#[derive(Debug, thiserror::Error)]
pub enum ManualError {
    /// Reading failed.
    #[error("cannot read stdin: {0}")]
    Read(#[from] std::io::Error),
    /// More than [`MAX_MANUAL_INPUT_BYTES`].
    #[error("stdin holds more than {MAX_MANUAL_INPUT_BYTES} bytes; split the input")]
    TooLarge,
    /// Not UTF-8.
    #[error("stdin is not UTF-8 text")]
    NotUtf8,
}

/// Reads all of `input` (bounded), processes every entry with at most `max_concurrency` objects at
/// once (entries are reported in input order), writes result lines and a summary to `report`.
pub async fn run<H: ObjectHandler>(
    handler: &H,
    input: impl AsyncRead + Unpin,
    max_concurrency: usize,
    report: &mut (impl Write + Send),
) -> Result<Tally, ManualError> {
    let text = read_bounded(input).await?;
    let lines = text.lines().count();
    let entries = parse_manual_entries(&text);
    let total = entries.len();
    let outcomes: Vec<_> = futures::stream::iter(entries)
        .map(|(line, entry)| async move {
            let id = format!("stdin line {line}");
            let outcome = process_items(handler, entry, &id).await;
            (id, outcome)
        })
        .buffered(max_concurrency.max(1))
        .collect()
        .await;
    let mut tally = Tally::default();
    for (id, outcome) in &outcomes {
        tally.record_message(outcome);
        // A broken stderr leaves nothing to report to; processing already happened.
        if let Some(error) = &outcome.body_error {
            let _ = writeln!(report, "{id}: unreadable ({}): {error}", error.reason());
        }
        for result in &outcome.objects {
            let url = format!("s3://{}/{}", result.object.bucket, result.object.key);
            let _ = match &result.outcome {
                Outcome::Delivered(delivery) => writeln!(
                    report,
                    "{id}: delivered {url} (tenant {}, {} events, {} S3 copies)",
                    delivery.tenant_id, delivery.events_delivered, delivery.s3_copies
                ),
                Outcome::Skipped(reason) => writeln!(report, "{id}: skipped {url} ({reason:?})"),
                Outcome::Failed { kind, error } => {
                    writeln!(
                        report,
                        "{id}: FAILED {url} ({kind:?}, {}): {error}",
                        error.reason()
                    )
                }
            };
        }
    }
    let _ = writeln!(report, "manual: {lines} lines, {total} entries; {tally}");
    Ok(tally)
}

/// Reads at most [`MAX_MANUAL_INPUT_BYTES`] of UTF-8.
async fn read_bounded(input: impl AsyncRead + Unpin) -> Result<String, ManualError> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_MANUAL_INPUT_BYTES)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    input.take(limit).read_to_end(&mut bytes).await?;
    if bytes.len() > MAX_MANUAL_INPUT_BYTES {
        return Err(ManualError::TooLarge);
    }
    String::from_utf8(bytes).map_err(|_| ManualError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::message::tests::KeyedHandler;

    #[tokio::test]
    async fn every_entry_is_processed_and_reported_in_order() {
        let handler = KeyedHandler::default();
        let input = "s3://central/a/ok.json.gz\n\
                     {\"Service\":\"Amazon S3\",\"Event\":\"s3:TestEvent\",\"Bucket\":\"central\"}\n\
                     s3://central/a/transient.json.gz\n\
                     s3://central/a/permanent.json.gz\n\
                     garbage\n";
        let mut report = Vec::new();
        let tally = run(&handler, input.as_bytes(), 4, &mut report)
            .await
            .expect("runs");
        let report = String::from_utf8(report).expect("utf-8");
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines.len(), 5, "{report}");
        assert!(
            lines[0].starts_with("stdin line 1: delivered s3://central/a/ok.json.gz"),
            "{report}"
        );
        assert!(
            lines[1]
                .starts_with("stdin line 3: FAILED s3://central/a/transient.json.gz (Transient"),
            "{report}"
        );
        assert!(
            lines[2]
                .starts_with("stdin line 4: FAILED s3://central/a/permanent.json.gz (Permanent"),
            "{report}"
        );
        assert!(
            lines[3].starts_with("stdin line 5: unreadable (unknown_input_line)"),
            "{report}"
        );
        assert!(
            lines[4].starts_with("manual: 5 lines, 5 entries; objects 3 (delivered 1"),
            "{report}"
        );
        assert_eq!((tally.test_events, tally.failures()), (1, 3));
    }

    #[tokio::test]
    async fn an_unterminated_entry_hides_none_of_the_entries_after_it() {
        let handler = KeyedHandler::default();
        let input = "s3://central/a/one.json.gz\n\
                     {\"Records\": [{\"s3\": {\"bucket\": {\"name\": \"central\"}\n\
                     s3://central/a/two.json.gz\n\
                     s3://central/a/three.json.gz\n";
        let mut report = Vec::new();
        let tally = run(&handler, input.as_bytes(), 2, &mut report)
            .await
            .expect("runs");
        let report = String::from_utf8(report).expect("utf-8");
        assert_eq!(tally.delivered, 3, "{report}");
        assert!(
            report.contains("stdin line 2: unreadable (malformed_json)"),
            "{report}"
        );
        assert!(
            report.contains("manual: 4 lines, 4 entries; objects 3 (delivered 3"),
            "{report}"
        );
        assert_eq!(tally.failures(), 1, "the bad entry fails the run");
    }

    #[tokio::test]
    async fn clean_input_has_no_failures() {
        let mut report = Vec::new();
        let tally = run(
            &KeyedHandler::default(),
            "s3://b/k\n".as_bytes(),
            1,
            &mut report,
        )
        .await
        .expect("runs");
        assert_eq!((tally.delivered, tally.failures()), (1, 0));
    }

    #[tokio::test]
    async fn non_utf8_input_is_refused() {
        let error = run(
            &KeyedHandler::default(),
            &[0xff, 0xfe][..],
            1,
            &mut Vec::new(),
        )
        .await
        .expect_err("not utf-8");
        assert!(matches!(error, ManualError::NotUtf8));
    }
}
