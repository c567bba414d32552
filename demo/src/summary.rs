//! The run's result: per destination what was generated, filtered, delivered, missing,
//! duplicated and misrouted, latency, S3 usage, AWS requests per GB by API, the dead-letter queue,
//! and where to inspect the data. Rendered as a text table or JSON; [`Summary::passed`] decides
//! the exit code (0 only when nothing is missing or misrouted).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::chaos::report::ChaosReport;
use crate::inspect::{BucketUsage, DeadLetters, Latency};

/// Bytes in a GB for "requests per GB" (decimal, as AWS prices data).
pub const BYTES_PER_GB: f64 = 1e9;

/// One checked destination.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationRow {
    /// Owner tenant (`*` for the central bucket).
    pub tenant: String,
    /// Account holding it.
    pub account: String,
    /// What it is, e.g. `cloudwatch /ROSA/cluster-logs/acme`.
    pub destination: String,
    /// Applications wanted (`all` or a list).
    pub wants: String,
    /// Lines the tenant's pods wrote (all tenants' for the central bucket).
    pub generated: u64,
    /// Of those, lines the desired_logs filter leaves out (generated − expected).
    pub filtered: u64,
    /// Lines expected here.
    pub expected: u64,
    /// Distinct expected lines found.
    pub delivered: u64,
    /// Expected lines not found.
    pub missing: u64,
    /// Extra copies.
    pub duplicated: u64,
    /// Other tenants' lines found here.
    pub misrouted: u64,
    /// Lines of filtered-out applications found here.
    pub unwanted: u64,
    /// Write-to-delivery latency (CloudWatch destinations).
    pub latency: Option<Latency>,
    /// The tenant's role denies access: nothing may arrive here.
    pub expect_nothing: bool,
    /// Why verification could not run.
    pub error: Option<String>,
}

impl DestinationRow {
    /// Why this row fails the run, if it does.
    pub fn failure(&self) -> Option<String> {
        let what = format!("{} {}", self.tenant, self.destination);
        if let Some(error) = &self.error {
            return Some(format!("{what}: verification failed: {error}"));
        }
        if self.misrouted > 0 {
            return Some(format!("{what}: {} lines of other tenants", self.misrouted));
        }
        if self.unwanted > 0 {
            return Some(format!(
                "{what}: {} lines of unwanted applications",
                self.unwanted
            ));
        }
        if self.expect_nothing {
            return (self.delivered > 0).then(|| {
                format!(
                    "{what}: {} lines arrived although the role denies access",
                    self.delivered
                )
            });
        }
        (self.missing > 0).then(|| format!("{what}: {} lines missing", self.missing))
    }
}

/// One bucket's usage.
#[derive(Debug, Clone, Serialize)]
pub struct BucketRow {
    /// Whose.
    pub label: String,
    /// Bucket name.
    pub bucket: String,
    /// Objects and bytes.
    pub usage: BucketUsage,
}

/// AWS requests of one API made by one component.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRow {
    /// `agent` or `processor`.
    pub component: String,
    /// AWS service (SigV4 name: s3, sts, dynamodb, logs, sqs).
    pub service: String,
    /// API operation.
    pub operation: String,
    /// Requests.
    pub requests: u64,
    /// Requests per GB of generated log bytes.
    pub per_gb: f64,
}

/// Objects the agent stored in a run: its single PUTs and completed multipart uploads.
pub fn stored_objects(requests: &[RequestRow]) -> u64 {
    requests
        .iter()
        .filter(|row| row.component == "agent" && row.service == "s3")
        .filter(|row| {
            matches!(
                row.operation.as_str(),
                "PutObject" | "CompleteMultipartUpload"
            )
        })
        .map(|row| row.requests)
        .sum()
}

/// A tenant whose role denies access: its objects must be in the DLQ.
#[derive(Debug, Clone, Serialize)]
pub struct DeniedRow {
    /// Tenant.
    pub tenant: String,
    /// Its objects in the central bucket.
    pub objects_in_central: u64,
    /// Its objects named by DLQ messages.
    pub objects_dead_lettered: u64,
}

/// How to look at the data afterwards.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The emulator's endpoint (still running with `--keep`).
    pub endpoint: Option<String>,
    /// Its process id, to stop it.
    pub emulator_pid: Option<u32>,
    /// The run's directory (pod logs, ledger, component logs).
    pub work_dir: String,
    /// Example commands.
    pub commands: Vec<String>,
}

/// The whole result.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Seconds of generation.
    pub duration_seconds: u64,
    /// Lines per second asked for.
    pub rate: u32,
    /// `sqs` or `lambda`.
    pub processor_mode: String,
    /// Lines written by the fake node.
    pub generated_lines: u64,
    /// Bytes written by the fake node.
    pub generated_bytes: u64,
    /// Every checked destination.
    pub destinations: Vec<DestinationRow>,
    /// Buckets.
    pub buckets: Vec<BucketRow>,
    /// Requests by component and API.
    pub requests: Vec<RequestRow>,
    /// The dead-letter queue.
    pub dead_letters: DeadLetters,
    /// Denied tenants and their dead-lettered objects.
    pub denied: Vec<DeniedRow>,
    /// Notable things that happened (agent restarted, drain timed out, moto skips, …).
    pub notes: Vec<String>,
    /// Where to look.
    pub inspection: Inspection,
    /// What a chaos run inflicted (`logrelay-demo chaos`).
    pub chaos: Option<ChaosReport>,
    /// Why the run failed (empty when it passed).
    pub failures: Vec<String>,
}

impl Summary {
    /// Computes [`Summary::failures`] from the rows and the dead-letter queue.
    pub fn judge(&mut self) {
        let mut failures: Vec<String> = self
            .destinations
            .iter()
            .filter_map(DestinationRow::failure)
            .collect();
        for denied in &self.denied {
            if denied.objects_dead_lettered < denied.objects_in_central {
                failures.push(format!(
                    "{}: only {} of its {} objects reached the DLQ",
                    denied.tenant, denied.objects_dead_lettered, denied.objects_in_central
                ));
            }
        }
        if self.generated_lines == 0 {
            failures.push("the generator wrote no lines".into());
        }
        if let Some(chaos) = &self.chaos {
            failures.extend(chaos.errors.iter().map(|e| format!("chaos: {e}")));
        }
        self.failures = failures;
    }

    /// True when nothing is missing, misrouted or unwanted, and denied tenants' objects are in
    /// the DLQ.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// Writes `summary.txt` and `summary.json` into `dir` (the run directory).
    pub fn write_files(&self, dir: &std::path::Path) -> std::io::Result<()> {
        std::fs::write(dir.join("summary.txt"), self.to_text())?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("summary.json"), json + "\n")
    }

    /// Requests per GB of generated bytes.
    pub fn per_gb(requests: u64, generated_bytes: u64) -> f64 {
        if generated_bytes == 0 {
            return 0.0;
        }
        requests as f64 / (generated_bytes as f64 / BYTES_PER_GB)
    }

    /// The summary as a text report.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nlogrelay demo: {} s of pod logs at {} lines/s → agent → S3 → SNS → SQS → processor ({}) → tenants' accounts",
            self.duration_seconds, self.rate, self.processor_mode
        );
        let _ = writeln!(
            out,
            "generated {} lines, {} (uncompressed)\n",
            self.generated_lines,
            human_bytes(self.generated_bytes)
        );
        self.write_destinations(&mut out);
        self.write_buckets(&mut out);
        self.write_requests(&mut out);
        self.write_dead_letters(&mut out);
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        if let Some(chaos) = &self.chaos {
            chaos.write_text(&mut out);
        }
        self.write_inspection(&mut out);
        if self.passed() {
            let _ = writeln!(out, "\nRESULT: PASS — nothing missing, nothing misrouted");
        } else {
            let _ = writeln!(out, "\nRESULT: FAIL");
            for failure in &self.failures {
                let _ = writeln!(out, "  - {failure}");
            }
        }
        out
    }

    fn write_destinations(&self, out: &mut String) {
        let width = self
            .destinations
            .iter()
            .map(|d| d.destination.len())
            .max()
            .unwrap_or(11)
            .max(11);
        let tenant_width = self
            .destinations
            .iter()
            .map(|d| d.tenant.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let _ = writeln!(
            out,
            "{:<tenant_width$}  {:<12}  {:<width$}  {:<10} {:>9} {:>8} {:>9} {:>9} {:>7} {:>5} {:>9} {:>8} {:>8} {:>8}",
            "TENANT",
            "ACCOUNT",
            "DESTINATION",
            "WANTS",
            "GENERATED",
            "FILTERED",
            "EXPECTED",
            "DELIVERED",
            "MISSING",
            "DUP",
            "MISROUTED",
            "UNWANTED",
            "p50",
            "p99"
        );
        for row in &self.destinations {
            let (p50, p99) = row.latency.map_or(("-".to_owned(), "-".to_owned()), |l| {
                (seconds(l.p50_ms), seconds(l.p99_ms))
            });
            let missing = if row.expect_nothing {
                format!("({})", row.missing)
            } else {
                row.missing.to_string()
            };
            let _ = writeln!(
                out,
                "{:<tenant_width$}  {:<12}  {:<width$}  {:<10} {:>9} {:>8} {:>9} {:>9} {:>7} {:>5} {:>9} {:>8} {:>8} {:>8}",
                row.tenant,
                row.account,
                row.destination,
                row.wants,
                row.generated,
                row.filtered,
                row.expected,
                row.delivered,
                missing,
                row.duplicated,
                row.misrouted,
                row.unwanted,
                p50,
                p99
            );
            if let Some(error) = &row.error {
                let _ = writeln!(out, "    verification error: {error}");
            }
        }
        if self.destinations.iter().any(|d| d.expect_nothing) {
            let _ = writeln!(
                out,
                "(missing) = a denied tenant's lines: expected to be absent, their objects are in the DLQ"
            );
        }
        let _ = writeln!(
            out,
            "FILTERED = lines of applications outside the tenant's desired_logs; latency = CloudWatch ingestion time − time the pod wrote the line\n"
        );
    }

    fn write_buckets(&self, out: &mut String) {
        for row in &self.buckets {
            let _ = writeln!(
                out,
                "S3 {:<28} s3://{}  {} objects, {}",
                row.label,
                row.bucket,
                row.usage.objects,
                human_bytes(row.usage.bytes)
            );
        }
        let _ = writeln!(out);
    }

    fn write_requests(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "AWS requests (counted at each component's endpoint; per GB of generated logs):"
        );
        let _ = writeln!(
            out,
            "  {:<10} {:<9} {:<24} {:>9} {:>12}",
            "COMPONENT", "SERVICE", "OPERATION", "REQUESTS", "PER GB"
        );
        for row in &self.requests {
            let _ = writeln!(
                out,
                "  {:<10} {:<9} {:<24} {:>9} {:>12.0}",
                row.component, row.service, row.operation, row.requests, row.per_gb
            );
        }
        let mut by_service: BTreeMap<&str, u64> = BTreeMap::new();
        for row in &self.requests {
            *by_service.entry(row.service.as_str()).or_default() += row.requests;
        }
        let totals: Vec<String> = by_service
            .iter()
            .map(|(service, n)| {
                format!("{service} {:.0}/GB", Self::per_gb(*n, self.generated_bytes))
            })
            .collect();
        let _ = writeln!(out, "  total per GB: {}", totals.join(", "));
        if let Some(cost) = crate::cost::per_tb(&self.requests, self.generated_bytes) {
            let parts: Vec<String> = cost
                .by_service
                .iter()
                .map(|(service, usd)| format!("{service} ${usd:.2}"))
                .collect();
            let _ = writeln!(
                out,
                "  estimated request cost: ${:.2} per TB of logs ({}; {}, requests only: no storage, \
                 transfer, Lambda compute or tenant-side ingestion)",
                cost.total,
                parts.join(", "),
                crate::cost::PRICES_AS_OF
            );
        }
        if let Some(usd) = crate::cost::per_tb_at_object_size(
            &self.requests,
            self.generated_bytes,
            crate::cost::FULL_BATCH_BYTES,
        ) {
            let _ = writeln!(
                out,
                "  at full 10 MiB objects (a busy node; the demo's objects are small): ${usd:.2} per TB"
            );
        }
        if let Some((writes, objects)) = self.progress_writes() {
            let _ = writeln!(
                out,
                "  processor progress writes: {writes} for {objects} objects ({:.2} per object)",
                writes as f64 / objects as f64
            );
        }
        let _ = writeln!(out);
    }

    /// The processor's progress writes (DynamoDB `UpdateItem`) and the objects the agent stored
    /// (`PutObject` and completed multipart uploads), when there were objects.
    pub fn progress_writes(&self) -> Option<(u64, u64)> {
        let count = |component: &str, service: &str, operations: &[&str]| -> u64 {
            self.requests
                .iter()
                .filter(|row| row.component == component && row.service == service)
                .filter(|row| operations.contains(&row.operation.as_str()))
                .map(|row| row.requests)
                .sum()
        };
        let objects = stored_objects(&self.requests);
        let writes = count("processor", "dynamodb", &["UpdateItem"]);
        (objects > 0).then_some((writes, objects))
    }

    fn write_dead_letters(&self, out: &mut String) {
        let reasons: Vec<String> = self
            .dead_letters
            .reasons
            .iter()
            .map(|(reason, n)| format!("{reason} ×{n}"))
            .collect();
        let _ = writeln!(
            out,
            "dead-letter queue: {} messages{}",
            self.dead_letters.messages,
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.join(", "))
            }
        );
        for denied in &self.denied {
            let _ = writeln!(
                out,
                "  denied tenant {}: {} of its {} objects dead-lettered",
                denied.tenant, denied.objects_dead_lettered, denied.objects_in_central
            );
        }
    }

    fn write_inspection(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\nrun directory: {} (pod logs, ledger, kube objects, logs/ of every component)",
            self.inspection.work_dir
        );
        if let (Some(endpoint), Some(pid)) =
            (&self.inspection.endpoint, self.inspection.emulator_pid)
        {
            let _ = writeln!(
                out,
                "the AWS emulator is still running at {endpoint} (dashboard {endpoint}/moto-api/); stop it with: kill {pid}"
            );
            for command in &self.inspection.commands {
                let _ = writeln!(out, "  {command}");
            }
        }
    }
}

/// `1234` ms → `1.2 s`.
fn seconds(ms: i64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// Bytes with a binary unit.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(missing: u64, misrouted: u64, expect_nothing: bool, delivered: u64) -> DestinationRow {
        DestinationRow {
            tenant: "t".into(),
            account: "111111111111".into(),
            destination: "cloudwatch /g".into(),
            wants: "all".into(),
            generated: 10,
            filtered: 0,
            expected: 10,
            delivered,
            missing,
            duplicated: 0,
            misrouted,
            unwanted: 0,
            latency: None,
            expect_nothing,
            error: None,
        }
    }

    fn summary(rows: Vec<DestinationRow>, denied: Vec<DeniedRow>) -> Summary {
        let mut summary = Summary {
            duration_seconds: 1,
            rate: 1,
            processor_mode: "sqs".into(),
            generated_lines: 10,
            generated_bytes: 1000,
            destinations: rows,
            buckets: Vec::new(),
            requests: Vec::new(),
            dead_letters: DeadLetters::default(),
            denied,
            notes: Vec::new(),
            inspection: Inspection {
                endpoint: None,
                emulator_pid: None,
                work_dir: "/tmp/x".into(),
                commands: Vec::new(),
            },
            chaos: None,
            failures: Vec::new(),
        };
        summary.judge();
        summary
    }

    #[test]
    fn missing_or_misrouted_lines_fail_the_run() {
        assert!(summary(vec![row(0, 0, false, 10)], vec![]).passed());
        assert!(!summary(vec![row(1, 0, false, 9)], vec![]).passed());
        assert!(!summary(vec![row(0, 1, false, 10)], vec![]).passed());
        let text = summary(vec![row(1, 0, false, 9)], vec![]).to_text();
        assert!(
            text.contains("RESULT: FAIL") && text.contains("1 lines missing"),
            "{text}"
        );
    }

    #[test]
    fn a_denied_tenant_passes_only_with_nothing_delivered_and_every_object_dead_lettered() {
        let denied = |dead| DeniedRow {
            tenant: "t".into(),
            objects_in_central: 4,
            objects_dead_lettered: dead,
        };
        assert!(summary(vec![row(10, 0, true, 0)], vec![denied(4)]).passed());
        assert!(!summary(vec![row(10, 0, true, 0)], vec![denied(3)]).passed());
        assert!(!summary(vec![row(9, 0, true, 1)], vec![denied(4)]).passed());
    }

    #[test]
    fn chaos_steps_that_failed_fail_the_run() {
        let mut passing = summary(vec![row(0, 0, false, 10)], vec![]);
        passing.chaos = Some(ChaosReport::default());
        passing.judge();
        assert!(passing.passed());
        let mut failing = passing.clone();
        failing.chaos = Some(ChaosReport {
            errors: vec!["deleting the log group: denied".into()],
            ..ChaosReport::default()
        });
        failing.judge();
        assert!(!failing.passed());
        assert!(failing.to_text().contains("chaos: deleting the log group"));
    }

    #[test]
    fn progress_writes_count_update_items_against_the_agents_objects() {
        let row = |component: &str, service: &str, operation: &str, requests| RequestRow {
            component: component.into(),
            service: service.into(),
            operation: operation.into(),
            requests,
            per_gb: 0.0,
        };
        let mut summary = summary(Vec::new(), Vec::new());
        assert_eq!(summary.progress_writes(), None, "no objects, no ratio");
        summary.requests = vec![
            row("agent", "s3", "PutObject", 9),
            row("agent", "s3", "CompleteMultipartUpload", 1),
            row("agent", "s3", "UploadPart", 4),
            row("processor", "dynamodb", "UpdateItem", 21),
            row("processor", "dynamodb", "GetItem", 3),
        ];
        assert_eq!(summary.progress_writes(), Some((21, 10)));
        assert!(
            summary
                .to_text()
                .contains("processor progress writes: 21 for 10 objects (2.10 per object)"),
            "{}",
            summary.to_text()
        );
    }

    #[test]
    fn per_gb_scales_by_generated_bytes() {
        assert_eq!(Summary::per_gb(5, 500_000_000), 10.0);
        assert_eq!(Summary::per_gb(5, 0), 0.0);
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
