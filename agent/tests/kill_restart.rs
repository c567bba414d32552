//! Crash safety end to end: `logrelay-testgen pods` writes a rotating, gzipping, churning pod log
//! tree while the real agent binary is killed with SIGKILL and restarted over and over; a last run
//! drains the rest and stops with SIGTERM. `verify` against the generator's ledger must then find
//! every line (duplicates are allowed: they are what a crash may cost).

use logrelay_testgen::pods::{self, PodsArgs};
use logrelay_testgen::verify::{self, VerifyArgs};
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const AGENT: &str = env!("CARGO_BIN_EXE_logrelay-agent");

/// SIGKILL restarts while the generator writes: at least 20.
const KILLS: usize = 20;

/// Set to keep the test directory and write each agent run's debug log there (for diagnosis).
const KEEP_ENV: &str = "LOGRELAY_KILL_TEST_KEEP";

fn start_agent(pods: &Path, out: &Path, data: &Path, run: usize) -> Child {
    let keep = std::env::var_os(KEEP_ENV).is_some();
    let log = match keep {
        true => Stdio::from(
            std::fs::File::create(data.with_file_name(format!("agent-{run:02}.log")))
                .expect("log file"),
        ),
        false => Stdio::inherit(),
    };
    Command::new(AGENT)
        .args([
            "--source",
            "files",
            "--listen",
            "off",
            "--batch-timeout",
            "200ms",
            "--batch-max-bytes",
            "64KiB",
        ])
        .args(["--cluster-id", "cluster-1", "--node-name", "node-1"])
        .arg("--pods-root")
        .arg(pods)
        .arg("--sink")
        .arg(format!("file://{}", out.display()))
        .arg("--data-dir")
        .arg(data)
        .env_remove("S3_BUCKET_NAME")
        .env_remove("LOGRELAY_SINK")
        .env(
            "RUST_LOG",
            if keep {
                "debug,aws=warn,hyper=warn"
            } else {
                "warn"
            },
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starts the agent")
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} failed");
}

async fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("polls") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent did not exit within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_and_restarted_twenty_times_loses_no_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pods_root = dir.path().join("pods");
    let out = dir.path().join("out");
    let data = dir.path().join("data");
    let ledger = dir.path().join("ledger.json");
    std::fs::create_dir_all(&pods_root).expect("creates pods root");
    let args = PodsArgs {
        rate: 600.0,
        duration: 40.0,
        seed: Some(20),
        tenants: "acme,globex".parse().expect("tenants"),
        pods_per_namespace: 2,
        containers_per_pod: 2,
        // Small files: each container's file is renamed every ~8 s and gzipped ~8 s later, so
        // renames and gzips happen around every restart. (Far faster rotation would gzip files no
        // agent run lived long enough to open and checkpoint: the kubelet rotates at 10 MiB.)
        max_size: 160 * 1024,
        // Nothing is deleted, so every line stays readable (as `.gz` at worst).
        max_files: 10_000,
        churn_interval: 3.0,
        removal_delay: 3_600.0,
        large_line_ratio: 0.02,
        ledger: Some(ledger.clone()),
        stats_interval: 0.0,
        ..PodsArgs::with_root(&pods_root)
    };
    let generator = tokio::spawn(async move { pods::run(&args, CancellationToken::new()).await });

    // Kill at random points (mid-read, mid-upload, mid-checkpoint) and restart at once, as a
    // DaemonSet would, until the generator is done and at least KILLS kills happened.
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let mut kills = 0;
    while kills < KILLS || !generator.is_finished() {
        let mut agent = start_agent(&pods_root, &out, &data, kills);
        tokio::time::sleep(Duration::from_millis(rng.random_range(800..3_000))).await;
        signal(&agent, "KILL");
        wait_exit(&mut agent, Duration::from_secs(10)).await;
        kills += 1;
    }
    let summary = generator.await.expect("joins").expect("generator runs");
    assert!(
        summary.counts.rotation.rotations > 0,
        "the run rotated files: {:?}",
        summary.counts
    );

    // A last, undisturbed run drains everything, then shuts down gracefully.
    let mut agent = start_agent(&pods_root, &out, &data, kills);
    let deadline = Instant::now() + Duration::from_secs(90);
    let report = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let report = verify::run(&VerifyArgs::for_dir(&ledger, &out))
            .await
            .expect("verify runs");
        if report.totals.missing == 0 || Instant::now() > deadline {
            break report;
        }
    };
    signal(&agent, "TERM");
    let status = wait_exit(&mut agent, Duration::from_secs(60)).await;
    assert!(status.success(), "graceful stop after draining: {status:?}");
    eprintln!(
        "kills {kills} expected {} delivered {} duplicated {} objects {}",
        report.totals.expected,
        report.totals.delivered,
        report.totals.duplicated,
        report.totals.objects_read
    );
    if std::env::var_os(KEEP_ENV).is_some() {
        eprintln!("kept {}", dir.keep().display());
    }
    assert!(report.ledger_complete);
    assert!(
        report.totals.expected > 15_000,
        "enough lines to matter: {}",
        report.totals.expected
    );
    assert!(
        report.passed(false),
        "lines missing or misrouted after {kills} kills:\n{}",
        report.to_table()
    );
}
