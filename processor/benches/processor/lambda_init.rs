//! Lambda init time: from spawning the real `logrelay-processor` binary in Lambda mode (as Lambda
//! starts it: no subcommand, `AWS_LAMBDA_RUNTIME_API` set, credentials in the environment) to its
//! first `GET /runtime/invocation/next` on testkit's Runtime API emulator. The processor proves at
//! start that its tenant config table answers, so it is pointed at the bench's emulator and table
//! (one DynamoDB query to moto is part of the figure). The floor is the same measurement of this
//! benchmark binary, which asks for `/next` as its first act.

use anyhow::{Context, bail};
use logrelay_testkit::lambda_runtime_api::LambdaRuntimeApi;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one start may take before the run counts as failed.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// One start.
#[derive(Debug, Clone, Copy)]
pub struct InitSample {
    /// Spawn to first `/next`.
    pub init: Duration,
    /// Resident set when it asked for `/next`, KiB.
    pub rss_kib: u64,
}

/// What to start.
pub enum Subject<'a> {
    /// The processor binary at `path`, reaching AWS at `endpoint_url` with its tenant configs in
    /// `tenant_table`.
    Processor {
        /// The binary.
        path: &'a Path,
        /// The emulator.
        endpoint_url: &'a str,
        /// The tenant config table.
        tenant_table: &'a str,
    },
    /// This benchmark binary as the floor.
    Floor,
}

/// Starts the subject `runs` times, one after the other.
pub async fn measure(subject: Subject<'_>, runs: usize) -> anyhow::Result<Vec<InitSample>> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        samples.push(start_once(&subject).await?);
    }
    Ok(samples)
}

async fn start_once(subject: &Subject<'_>) -> anyhow::Result<InitSample> {
    let api = LambdaRuntimeApi::start().await.context("runtime API")?;
    let mut command = match subject {
        Subject::Processor {
            path,
            endpoint_url,
            tenant_table,
        } => {
            let mut command = Command::new(path);
            command.env_clear().envs([
                ("AWS_ENDPOINT_URL", *endpoint_url),
                ("TENANT_CONFIG_TABLE", *tenant_table),
            ]);
            command
        }
        Subject::Floor => {
            let mut command = Command::new(std::env::current_exe()?);
            command.args(["--child", "lambda-floor"]);
            command
        }
    };
    if matches!(subject, Subject::Floor) {
        command.env_clear();
    }
    command
        .envs(api.runtime_env())
        .envs([
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_SESSION_TOKEN", "testing"),
            ("DELIVERY_PROGRESS_TABLE", "delivery-progress"),
            ("LAMBDA_TASK_ROOT", "/var/task"),
            ("TZ", ":UTC"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = Instant::now();
    let mut child = command.spawn().context("spawn")?;
    let asked = api.wait_for_runtime(INIT_TIMEOUT).await;
    let init = started.elapsed();
    let rss_kib = crate::child::status_kib(&format!("/proc/{}/status", child.id()), "VmRSS");
    // Best effort: the child only waits for an invocation.
    let _ = child.kill();
    let status = child.wait()?;
    if !asked {
        bail!("no /next within {INIT_TIMEOUT:?} (exit status {status})");
    }
    Ok(InitSample { init, rss_kib })
}
