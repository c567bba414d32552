//! Checking each destination with `logrelay-testgen verify --json` against the generator's
//! ledger: a tenant's CloudWatch Logs group and S3 copy (with the tenant's credentials, expecting
//! only that tenant's lines and only its desired applications) and the central bucket (every
//! partition checked against its lines).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use tokio::process::Command;

use crate::accounts::Identity;

/// Longest one verification may take (it reads every event or object of the destination).
const VERIFY_TIMEOUT: Duration = Duration::from_secs(300);

/// Where to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A CloudWatch Logs group.
    CloudWatch {
        /// Group name.
        group: String,
    },
    /// An S3 location `s3://bucket[/prefix]`.
    S3 {
        /// Bucket.
        bucket: String,
        /// Key prefix ("" = none).
        prefix: String,
    },
}

impl Destination {
    /// A short description, e.g. `cloudwatch /ROSA/cluster-logs/acme`.
    pub fn describe(&self) -> String {
        match self {
            Self::CloudWatch { group } => format!("cloudwatch {group}"),
            Self::S3 { bucket, prefix } => format!("s3 {}", s3_url(bucket, prefix)),
        }
    }
}

fn s3_url(bucket: &str, prefix: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        format!("s3://{bucket}")
    } else {
        format!("s3://{bucket}/{prefix}")
    }
}

/// One verification to run.
#[derive(Debug, Clone)]
pub struct Check {
    /// The destination's owner (`None`: the central bucket, every tenant).
    pub tenant: Option<String>,
    /// Where.
    pub destination: Destination,
    /// Applications expected (empty: all).
    pub applications: Vec<String>,
    /// Who reads it.
    pub reader: Identity,
}

/// The totals of a `verify --json` report, as the test generator writes them.
pub use logrelay_testgen::verify::report::Totals;

/// A `verify --json` report.
#[derive(Debug, Clone, Deserialize)]
pub struct Report {
    /// Whether the ledger was final.
    pub ledger_complete: bool,
    /// Sums.
    pub totals: Totals,
}

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// What was checked.
    pub check: Check,
    /// The report, or why verification could not run.
    pub report: Result<Report, String>,
}

/// Runs `logrelay-testgen verify` for `check`.
pub async fn run_check(testgen: &Path, ledger: &Path, check: Check, log_dir: &Path) -> CheckResult {
    let report = run(testgen, ledger, &check, log_dir)
        .await
        .map_err(|e| format!("{e:#}"));
    CheckResult { check, report }
}

async fn run(
    testgen: &Path,
    ledger: &Path,
    check: &Check,
    log_dir: &Path,
) -> anyhow::Result<Report> {
    let mut command = Command::new(testgen);
    command
        .arg("verify")
        .arg("--ledger")
        .arg(ledger)
        .arg("--json")
        .env_clear()
        .envs(check.reader.env(&check.reader.endpoint))
        .kill_on_drop(true);
    match &check.destination {
        Destination::CloudWatch { group } => command.args(["--cloudwatch-group", group]),
        Destination::S3 { bucket, prefix } => command.args(["--s3", &s3_url(bucket, prefix)]),
    };
    if let Some(tenant) = &check.tenant {
        command.args(["--tenant", tenant]);
    }
    if !check.applications.is_empty() {
        command.args(["--applications", &check.applications.join(",")]);
    }
    let output = tokio::time::timeout(VERIFY_TIMEOUT, command.output())
        .await
        .context("verify timed out")?
        .context("start logrelay-testgen verify")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let log = log_dir.join("verify.log");
    let mut text = std::fs::read_to_string(&log).unwrap_or_default();
    text.push_str(&format!(
        "$ verify {}\n{}\n{stderr}\n",
        check.destination.describe(),
        String::from_utf8_lossy(&output.stdout)
    ));
    std::fs::write(&log, text).with_context(|| format!("write {}", log.display()))?;
    anyhow::ensure!(
        // Only a finished verification (0 passed, 1 failed) prints a report.
        matches!(
            output
                .status
                .code()
                .and_then(|code| u8::try_from(code).ok()),
            Some(logrelay_common::exit::EXIT_OK | logrelay_common::exit::EXIT_FAILURES)
        ),
        "verify could not run ({}): {}",
        output.status,
        stderr.trim()
    );
    serde_json::from_slice(&output.stdout).context("reading verify's JSON report")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_read_from_verify_json() {
        let json = r#"{"ledger_complete": true, "tenant": "acme", "applications": [],
            "sources": [], "totals": {"sources": 2, "expected": 10, "delivered": 9, "missing": 1,
            "duplicated": 0, "misrouted": 0, "unexpected": 0, "beyond_ledger": 0, "untokened": 0,
            "unknown_source": 0, "bad_lines": 0, "objects_read": 3, "unreadable_objects": 0,
            "lines_read": 9}}"#;
        let report: Report = serde_json::from_str(json).expect("parses");
        assert!(report.ledger_complete);
        assert_eq!(report.totals.missing, 1);
        assert_eq!(report.totals.objects_read, 3);
    }

    #[test]
    fn destinations_describe_themselves_like_verify_flags() {
        let s3 = Destination::S3 {
            bucket: "b".into(),
            prefix: "ROSA/cluster-logs/".into(),
        };
        assert_eq!(s3.describe(), "s3 s3://b/ROSA/cluster-logs");
        assert_eq!(s3_url("b", ""), "s3://b");
    }
}
