//! The agent's integrity targets under containerd-like writing, end to end: `logrelay-testgen`'s
//! kill loop writes interleaved, 16 KiB-split, sealed lines with rotation, gzip and pod churn at
//! about 1 MiB/s for 40 s while the real agent binary is SIGKILLed about ten times (some kills
//! with 5–10 s of downtime), then checks: nothing missing except lines in files deleted while the
//! agent was down or counted as lost, nothing corrupted, no line delivered more than 3 times,
//! duplicates per restart within what was unacknowledged at the kill. The full-size run is
//! `make kill-loop` (docs/reliability.md).

use logrelay_testgen::containerd::RotationMode;
use logrelay_testgen::kill_loop::{self, KillLoopArgs};

const AGENT: &str = env!("CARGO_BIN_EXE_logrelay-agent");

/// Set to keep the work directory (pods tree, objects, ledger, agent logs) for diagnosis.
const KEEP_ENV: &str = "LOGRELAY_KILL_LOOP_KEEP";

/// The two runs take turns: together they would starve each other (and the agents) of CPU.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn run_ci_sized(rotation: RotationMode, seed: u64, agent_args: &[&str]) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let args = KillLoopArgs {
        rotation,
        duration: 40.0,
        mib_per_sec: 1.0,
        kills: 10,
        min_interval: 1.0,
        max_interval: 6.0,
        downtime_share: 0.2,
        tenants: 2,
        pods_per_tenant: 4,
        containers_per_pod: 2,
        // Small files so every container rotates (and gzips and deletes) several times in 40 s,
        // with about 25 s of history per container for the agent to catch up after a kill.
        max_size: 512 * 1024,
        max_files: 5,
        churn_interval: 3.0,
        removal_delay: 5.0,
        long_line_ratio: 0.005,
        drain_timeout: 90.0,
        seed: Some(seed),
        agent_args: agent_args.iter().map(|a| a.to_string()).collect(),
        ..KillLoopArgs::new(AGENT, dir.path())
    };
    let report = kill_loop::run(&args).await.expect("the kill loop runs");
    eprintln!("{}", report.to_text());
    if std::env::var_os(KEEP_ENV).is_some() {
        eprintln!("kept {}", dir.keep().display());
    }
    assert!(report.kills >= 10, "{} kills", report.kills);
    assert!(report.rotations > 0, "files were rotated");
    assert!(
        report.lines_written > 20_000,
        "enough lines to matter: {}",
        report.lines_written
    );
    assert!(report.passed(), "{}", report.to_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_loop_with_rename_rotation_loses_splits_and_mangles_nothing() {
    // The smallest memory cap: open batches' members go to the disk buffer, which the kills
    // leave behind for the next run to discard and read again.
    run_ci_sized(
        RotationMode::Rename,
        13,
        &["--batch-memory-limit=1MiB", "--buffer-max-bytes=16MiB"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_loop_with_copytruncate_loses_splits_and_mangles_nothing() {
    run_ci_sized(RotationMode::Copytruncate, 31, &[]).await;
}
