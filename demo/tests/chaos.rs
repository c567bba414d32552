//! The CI-sized chaos run (`docs/reliability.md`, "Chaos runs"): the demo pipeline with 30 %
//! random faults (5xx, throttling, resets, latency) on every AWS request of the agent and the
//! processor, each SIGKILLed and restarted 5 times, a 20 s S3 outage and a customer deleting its
//! log group mid-run — and still every line at every destination, none misrouted.
//!
//! It runs the debug binaries next to this test binary, like `e2e.rs` (`cargo test --workspace`
//! builds them first; after changing a component run `cargo build --workspace` before
//! `cargo test --workspace --test chaos`). About 3 minutes on 2 cores. The full-size run is
//! `scripts/chaos.sh` (`make chaos`).

use std::path::PathBuf;
use std::time::Duration;

use logrelay_demo::{ChaosPlan, DemoOptions, FaultClass, ProcessorMode, Summary, plan_tenants};

/// Generation time: room for 5 kills of each component, the outage and the deletion.
const DURATION: Duration = Duration::from_secs(75);

/// Lines per second of the fake node.
const RATE: u32 = 150;

/// Kills of each component.
const KILLS: u32 = 5;

/// Length of the S3 outage.
const S3_OUTAGE: Duration = Duration::from_secs(20);

/// The processor's progress lease: shorter than the queue's 30 s visibility timeout, so a killed
/// processor's objects are free again when their messages come back (the default 5 minutes would
/// hold them through the whole drain).
const PROGRESS_LEASE: Duration = Duration::from_secs(20);

/// Seed of the schedule and the generator (faults themselves are drawn per request at random).
const SEED: u64 = 9;

/// Where `cargo test` put the binaries (`cargo test --workspace` builds every one of them).
fn bin_dir() -> PathBuf {
    logrelay_demo::paths::test_bin_dir().expect("the workspace's binaries next to this test")
}

fn options(work: &tempfile::TempDir) -> DemoOptions {
    let tenants = ["acme", "globex"].map(String::from);
    DemoOptions {
        duration: DURATION,
        tenants: plan_tenants(&tenants, None).expect("valid tenants"),
        rate: RATE,
        keep: false,
        processor: ProcessorMode::Sqs,
        kill_agent_after: None,
        drain_timeout: Duration::from_secs(150),
        bin_dir: bin_dir(),
        work_dir: work.path().join("run"),
        seed: Some(SEED),
        progress: false,
        unlisted_deployment: None,
        chaos: Some(ChaosPlan {
            seed: SEED,
            fault_rate: 0.30,
            fault_classes: FaultClass::ALL.to_vec(),
            agent_kills: KILLS,
            processor_kills: KILLS,
            s3_outage: S3_OUTAGE,
            delete_log_group_of: Some("acme".into()),
            // Resume and duplicate skipping under kills, with a lease short enough for CI.
            progress_table: true,
            progress_lease: Some(PROGRESS_LEASE),
        }),
    }
}

/// Runs the pipeline; on failure keeps the run directory and shows the summary.
async fn run(work: tempfile::TempDir, options: DemoOptions) -> Summary {
    let result = logrelay_demo::run(&options).await;
    let keep = |work: tempfile::TempDir| work.keep().display().to_string();
    match result {
        Ok(summary) if summary.passed() => summary,
        Ok(summary) => panic!("{}\n(run kept in {})", summary.to_text(), keep(work)),
        Err(error) => panic!(
            "the chaos run could not run: {error:#}\n(run kept in {})",
            keep(work)
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_loses_nothing_and_misroutes_nothing() {
    let work = tempfile::tempdir().expect("temp dir");
    let options = options(&work);
    let summary = run(work, options).await;
    println!("{}", summary.to_text());

    // Every destination: everything, only its own tenant's lines, only wanted applications.
    assert_eq!(summary.destinations.len(), 4, "{:?}", summary.destinations);
    for row in &summary.destinations {
        let what = format!("{} {}", row.tenant, row.destination);
        assert!(row.expected > 0, "{what} expects lines");
        assert_eq!(row.missing, 0, "{what}");
        assert_eq!(row.delivered, row.expected, "{what}");
        assert_eq!(row.misrouted, 0, "{what}");
        assert_eq!(row.unwanted, 0, "{what}");
    }
    assert_eq!(
        summary.dead_letters.messages, 0,
        "{:?}",
        summary.dead_letters
    );

    let chaos = summary.chaos.as_ref().expect("the chaos section");
    assert!(chaos.errors.is_empty(), "{:?}", chaos.errors);
    assert_eq!(chaos.seed, SEED);
    // Read back from SQS: 5 + 2 × ⌈20 s outage / 30 s⌉ + 2 × ⌈20 s lease / 30 s⌉.
    assert_eq!(
        (chaos.visibility_timeout_seconds, chaos.max_receive_count),
        (30, 9)
    );
    for component in &chaos.components {
        let name = &component.component;
        assert_eq!(component.kills_at_seconds.len(), KILLS as usize, "{name}");
        let share = component.random_faults as f64 / component.requests.max(1) as f64;
        assert!(
            component.requests > 50 && (0.2..0.4).contains(&share),
            "{name}: {} faults in {} requests",
            component.random_faults,
            component.requests
        );
    }
    let outage = chaos.s3_outage.as_ref().expect("the S3 outage happened");
    assert!(outage.end_seconds - outage.start_seconds >= S3_OUTAGE.as_secs_f64());
    assert!(outage.failed_requests > 0, "the agent uploads during it");
    let hang_ups: u64 = chaos
        .answers
        .iter()
        .filter(|a| a.outcome == "hang-up")
        .map(|a| a.count)
        .sum();
    assert!(
        hang_ups > 0,
        "resets reach the components: {:?}",
        chaos.answers
    );

    // The customer deleted its group: the archive plus the recreated group hold everything.
    let deletion = chaos
        .log_group_deletion
        .as_ref()
        .expect("the log group was deleted");
    assert_eq!(deletion.deletion.tenant, "acme");
    assert!(deletion.deletion.events_archived > 0);
    let acme = summary
        .destinations
        .iter()
        .find(|r| r.tenant == "acme" && r.destination.starts_with("cloudwatch"))
        .expect("acme's CloudWatch row");
    assert!(acme.destination.ends_with("(archive + recreated)"));

    // Duplicates are counted and reported, not hidden.
    let duplicates: u64 = summary.destinations.iter().map(|r| r.duplicated).sum();
    assert_eq!(chaos.duplicates, duplicates);
    assert!(
        summary
            .to_text()
            .contains("extra copies over all destinations")
    );
}
