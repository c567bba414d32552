//! The AWS emulator (moto server) of one run, on a free loopback port.
//!
//! Normally it runs through the testkit's `moto_wrapper.py`, which exits as soon as the demo does
//! (its stdin pipe closes), so no server outlives a run even when the demo is killed. With
//! `--keep` it is a plain `moto_server` in a session of its own that stays up after the demo.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{ChildStdin, Command};

use crate::child::{ChildProcess, Pipes};
use crate::http::HttpClient;
use crate::paths::{repo_root, venv_tool};

/// How long a starting server may take to answer (it usually takes about 1 s).
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running emulator.
#[derive(Debug)]
pub struct Emulator {
    url: String,
    /// The wrapper process, killed with the demo and on drop (`None` with `--keep`).
    _child: Option<ChildProcess>,
    /// Held open: the wrapper exits when it closes.
    _stdin: Option<ChildStdin>,
    /// The server left running with `--keep`.
    kept_pid: Option<u32>,
}

impl Emulator {
    /// Starts moto; `keep` leaves it running after the demo exits.
    pub async fn start(log_dir: &Path, keep: bool) -> anyhow::Result<Self> {
        let python = venv_tool("python");
        anyhow::ensure!(
            venv_tool("moto_server").is_file(),
            "{} not found: run scripts/dev-env.sh to create the .venv with the AWS emulator",
            venv_tool("moto_server").display()
        );
        if keep {
            return Self::start_kept(log_dir).await;
        }
        let wrapper = repo_root()
            .join("testkit")
            .join("python")
            .join("moto_wrapper.py");
        let mut command = Command::new(python);
        command
            .arg(wrapper)
            .arg("0")
            .env_remove("INITIAL_NO_AUTH_ACTION_COUNT")
            .env_remove("MOTO_ACCOUNT_ID");
        let mut child = ChildProcess::spawn_with(
            "moto",
            command,
            log_dir,
            Pipes {
                stdin: true,
                stdout: true,
            },
        )?;
        let stdin = child.take_stdin();
        let stdout = child.take_stdout().context("moto wrapper has no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(START_TIMEOUT, lines.next_line())
            .await
            .context("moto did not report its port in time")?
            .context("reading moto's port")?
            .context("moto exited before listening (see its log)")?;
        let port: u16 = first
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .with_context(|| format!("unexpected first line from moto: {first:?}"))?;
        // Keep draining stdout so the wrapper never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let url = format!("http://127.0.0.1:{port}");
        wait_until_answering(&url).await?;
        Ok(Self {
            url,
            _child: Some(child),
            _stdin: stdin,
            kept_pid: None,
        })
    }

    /// A `moto_server` that survives the demo.
    async fn start_kept(log_dir: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        let log = std::fs::File::create(log_dir.join("moto.log")).context("moto log")?;
        let child = std::process::Command::new(venv_tool("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env_remove("INITIAL_NO_AUTH_ACTION_COUNT")
            .env_remove("MOTO_ACCOUNT_ID")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().context("moto log")?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("start moto_server")?;
        let pid = child.id();
        let url = format!("http://127.0.0.1:{port}");
        wait_until_answering(&url).await?;
        Ok(Self {
            url,
            _child: None,
            _stdin: None,
            kept_pid: Some(pid),
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The process id of a server left running with `--keep`.
    pub fn kept_pid(&self) -> Option<u32> {
        self.kept_pid
    }

    /// From the next request on, moto checks signatures, identity policies and same-account
    /// trust policies (`POST /moto-api/reset-auth`).
    pub async fn enforce_iam_from_now(&self) -> anyhow::Result<()> {
        let (status, body) = HttpClient::default()
            .post(&format!("{}/moto-api/reset-auth", self.url), "0")
            .await?;
        anyhow::ensure!(
            (200..300).contains(&status),
            "moto reset-auth answered {status}: {body}"
        );
        Ok(())
    }
}

/// A free loopback port (bound and released at once).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Polls `GET <url>/moto-api/` until the server answers with any status.
async fn wait_until_answering(url: &str) -> anyhow::Result<()> {
    let client = HttpClient::default();
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        if client.get(&format!("{url}/moto-api/")).await.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "moto at {url} did not answer within {START_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
