//! End-to-end tests: the whole pipeline of `make demo` with real processes — moto, the log
//! generator's fake node, the fake Kubernetes API, the agent and the processor — and every
//! destination verified against the generator's ledger. Variants: the agent killed and restarted,
//! the processor in Lambda mode, a tenant whose role denies access.
//!
//! They run the debug binaries next to this test binary (`target/debug/logrelay-*`), which
//! `cargo test --workspace` builds first: the agent, processor and generator packages have
//! integration tests, so cargo builds their binaries before running any test. The tests run one
//! at a time (each starts a dozen processes); together they take about 1.5 minutes. `cargo test
//! --workspace --test e2e` alone does not rebuild those binaries: run `cargo build --workspace` first.

use std::path::PathBuf;
use std::time::Duration;

use logrelay_demo::{DemoOptions, ProcessorMode, Summary, plan_tenants};
use tokio::sync::Mutex;

/// One pipeline at a time: each uses an emulator, a generator, an agent and a processor.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// Generation time of each test (the demo's default is 60 s).
const DURATION: Duration = Duration::from_secs(12);

/// Lines per second of the fake node.
const RATE: u32 = 150;

/// Where `cargo test` put the binaries (`cargo test --workspace` builds every one of them).
fn bin_dir() -> PathBuf {
    logrelay_demo::paths::test_bin_dir().expect("the workspace's binaries next to this test")
}

fn options(work: &tempfile::TempDir, tenants: &[&str], denied: Option<&str>) -> DemoOptions {
    let ids: Vec<String> = tenants.iter().map(|t| (*t).to_owned()).collect();
    DemoOptions {
        duration: DURATION,
        tenants: plan_tenants(&ids, denied).expect("valid tenants"),
        rate: RATE,
        keep: false,
        processor: ProcessorMode::Sqs,
        kill_agent_after: None,
        drain_timeout: Duration::from_secs(90),
        bin_dir: bin_dir(),
        work_dir: work.path().join("run"),
        seed: Some(7),
        progress: false,
        chaos: None,
        unlisted_deployment: None,
    }
}

/// Runs the pipeline; on failure keeps the run directory and shows the summary.
async fn run(work: tempfile::TempDir, options: DemoOptions) -> Summary {
    let _serial = SERIAL.lock().await;
    let result = logrelay_demo::run(&options).await;
    let keep = |work: tempfile::TempDir| work.keep().display().to_string();
    match result {
        Ok(summary) if summary.passed() => summary,
        Ok(summary) => panic!("{}\n(run kept in {})", summary.to_text(), keep(work)),
        Err(error) => panic!(
            "the demo could not run: {error:#}\n(run kept in {})",
            keep(work)
        ),
    }
}

/// Every destination of `summary` got exactly what it should: nothing missing (except where a
/// role denies access), nothing misrouted, nothing unwanted.
fn assert_isolated(summary: &Summary) {
    assert!(!summary.destinations.is_empty());
    for row in &summary.destinations {
        assert_eq!(row.misrouted, 0, "{} {}", row.tenant, row.destination);
        assert_eq!(row.unwanted, 0, "{} {}", row.tenant, row.destination);
        if !row.expect_nothing {
            assert!(
                row.expected > 0,
                "{} {} expects lines",
                row.tenant,
                row.destination
            );
            assert_eq!(row.missing, 0, "{} {}", row.tenant, row.destination);
            assert_eq!(
                row.delivered, row.expected,
                "{} {}",
                row.tenant, row.destination
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_gets_all_and_only_its_own_lines() {
    let work = tempfile::tempdir().expect("temp dir");
    let options = options(&work, &["acme", "globex"], None);
    let summary = run(work, options).await;
    assert_isolated(&summary);
    let row = |tenant: &str, kind: &str| {
        summary
            .destinations
            .iter()
            .find(|r| r.tenant == tenant && r.destination.starts_with(kind))
            .unwrap_or_else(|| panic!("no {kind} row for {tenant}"))
    };
    // Tenant A: CloudWatch, every application. Tenant B: CloudWatch and S3, filtered.
    assert_eq!(row("acme", "cloudwatch").filtered, 0);
    assert!(
        row("globex", "cloudwatch").filtered > 0,
        "web is filtered out"
    );
    assert_eq!(
        row("globex", "s3").delivered,
        row("globex", "cloudwatch").delivered
    );
    assert_eq!(row("*", "s3").delivered, summary.generated_lines);
    assert!(row("acme", "cloudwatch").latency.is_some());
    assert!(
        summary
            .requests
            .iter()
            .any(|r| r.component == "agent" && r.operation == "PutObject"),
        "{:?}",
        summary.requests
    );
    assert!(
        summary
            .requests
            .iter()
            .any(|r| r.component == "processor" && r.operation == "PutLogEvents")
    );
    assert_eq!(summary.dead_letters.messages, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_mid_run_and_pods_without_metadata_lose_nothing_and_misroute_nothing() {
    let work = tempfile::tempdir().expect("temp dir");
    let mut options = options(&work, &["acme", "globex"], None);
    options.kill_agent_after = Some(Duration::from_secs(5));
    // Pods the agent can never know: their lines must reach no tenant on their own (quarantine),
    // then reach the right one after the operator's release.
    options.unlisted_deployment = Some(("globex".into(), "api".into()));
    let summary = run(work, options).await;
    assert_isolated(&summary);
    assert!(
        summary
            .notes
            .iter()
            .any(|n| n.contains("killed with SIGKILL")),
        "{:?}",
        summary.notes
    );
    assert!(
        summary
            .notes
            .iter()
            .any(|n| n.starts_with("quarantine: ") && n.contains("globex/api-")),
        "globex's api pods were quarantined and released: {:?}",
        summary.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processor_in_lambda_mode_delivers_like_the_poller() {
    let work = tempfile::tempdir().expect("temp dir");
    let mut options = options(&work, &["acme", "globex"], None);
    options.processor = ProcessorMode::Lambda;
    let summary = run(work, options).await;
    assert_isolated(&summary);
    assert_eq!(summary.processor_mode, "lambda");
    assert!(
        summary
            .notes
            .iter()
            .any(|n| n.starts_with("lambda mode:") && !n.contains(" 0 invocations")),
        "{:?}",
        summary.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_tenant_is_dead_lettered_and_others_are_unaffected() {
    let work = tempfile::tempdir().expect("temp dir");
    let options = options(&work, &["acme", "globex"], Some("blocked"));
    let summary = run(work, options).await;
    assert_isolated(&summary);
    let blocked = summary
        .destinations
        .iter()
        .find(|r| r.tenant == "blocked")
        .expect("blocked row");
    assert!(blocked.expect_nothing);
    assert_eq!(blocked.delivered, 0);
    assert!(blocked.missing > 0, "it wrote lines");
    let denied = &summary.denied[0];
    assert!(denied.objects_in_central > 0);
    assert_eq!(denied.objects_dead_lettered, denied.objects_in_central);
    assert_eq!(
        summary.dead_letters.reasons.get("access_denied").copied(),
        Some(summary.dead_letters.messages),
        "{:?}",
        summary.dead_letters
    );
}
