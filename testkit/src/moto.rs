//! The AWS emulator for tests: a moto server process, one shared per test binary or one owned by a
//! test that needs IAM enforcement, and SDK configs that act in a chosen account of it.
//!
//! The server runs through `testkit/python/moto_wrapper.py` with `<repo>/.venv/bin/python`
//! (created by `scripts/dev-env.sh`); the wrapper exits when the test process does, because
//! statics are never dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use aws_config::SdkConfig;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use logrelay_common::aws::{RoleStep, assume_role_chain};
use tokio::sync::OnceCell;

use crate::resources::{static_config, test_credentials};

/// Environment variable naming an already running moto server to use instead of starting one.
pub const MOTO_URL_ENV: &str = "LOGRELAY_MOTO_URL";

/// The account that moto's default (unknown) credentials act in.
pub const DEFAULT_ACCOUNT_ID: &str = "123456789012";

/// Role assumed to act in an account other than the default one (moto maps the assumed role's
/// credentials into the role's account; the role need not exist unless IAM is enforced).
pub const ACCOUNT_ROLE_NAME: &str = "logrelay-testkit";

/// How long a starting server may take to answer (it usually takes about 1 s).
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Pause between readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// The one server shared by all tests of a test binary.
static SHARED: OnceCell<Moto> = OnceCell::const_new();

/// Why a moto server could not be started or reached.
#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    /// The virtualenv with moto is not there.
    #[error("{0} not found: run scripts/dev-env.sh to create the .venv with moto")]
    VenvMissing(PathBuf),
    /// The wrapper process could not be started.
    #[error("cannot start moto ({0}); run scripts/dev-env.sh")]
    Spawn(#[source] std::io::Error),
    /// The wrapper exited or said nothing before the deadline.
    #[error(
        "moto did not report its port within {START_TIMEOUT:?}: {0} (see stderr above; run scripts/dev-env.sh)"
    )]
    NoPort(String),
    /// The server did not answer HTTP before the deadline.
    #[error("moto at {0} did not answer within {START_TIMEOUT:?}")]
    NotAnswering(String),
}

/// A moto server: either shared (started once per test binary) or owned (killed on drop).
#[derive(Debug)]
pub struct Moto {
    url: String,
    /// `None` when the server was given by [`MOTO_URL_ENV`].
    process: Option<MotoProcess>,
}

/// The wrapper process; dropping it closes the stdin pipe and kills it.
#[derive(Debug)]
struct MotoProcess {
    child: Child,
    /// Held open: the wrapper exits when it closes.
    _stdin: ChildStdin,
}

impl Drop for MotoProcess {
    fn drop(&mut self) {
        // Best effort: the process may already be gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// The server shared by every test in this binary: `LOGRELAY_MOTO_URL` if set, otherwise one
    /// moto started on a free loopback port. Panics with instructions if it cannot be had.
    pub async fn shared() -> &'static Moto {
        SHARED
            .get_or_init(|| async {
                let moto = match std::env::var(MOTO_URL_ENV) {
                    Ok(url) if !url.is_empty() => Self::external(url).await,
                    _ => Self::launch(None).await,
                };
                moto.unwrap_or_else(|err| panic!("AWS emulator unavailable: {err}"))
            })
            .await
    }

    /// Starts a server of this test's own (killed on drop) that serves the first
    /// `no_auth_actions` requests without checks and then enforces IAM: signatures, identity
    /// policies and same-account role trust policies (incl. `sts:ExternalId`).
    pub async fn start_enforcing(no_auth_actions: u32) -> Moto {
        Self::launch(Some(no_auth_actions))
            .await
            .unwrap_or_else(|err| panic!("AWS emulator unavailable: {err}"))
    }

    /// Starts a private server without IAM enforcement (killed on drop), for tests that must not
    /// share state, e.g. ones that switch enforcement on with [`Moto::enforce_from_now`].
    pub async fn start_private() -> Moto {
        Self::launch(None)
            .await
            .unwrap_or_else(|err| panic!("AWS emulator unavailable: {err}"))
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A config acting in `account_id` with the emulator's default credentials; for an account
    /// other than [`DEFAULT_ACCOUNT_ID`] it assumes `arn:aws:iam::<account>:role/logrelay-testkit`.
    pub async fn config(&self, account_id: &str) -> SdkConfig {
        let base = static_config(&self.url, test_credentials()).await;
        if account_id == DEFAULT_ACCOUNT_ID {
            return base;
        }
        let step = RoleStep::new(
            format!("arn:aws:iam::{account_id}:role/{ACCOUNT_ROLE_NAME}"),
            "logrelay-testkit",
        );
        assume_role_chain(&base, &[step])
            .await
            .unwrap_or_else(|err| panic!("cannot act in account {account_id}: {err}"))
    }

    /// Makes an owned server enforce IAM from the next request on (moto's
    /// `POST /moto-api/reset-auth`). Takes `&mut self` so the shared server cannot be switched.
    pub async fn enforce_from_now(&mut self) -> anyhow::Result<()> {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let request = hyper::Request::post(format!("{}/moto-api/reset-auth", self.url))
            .body(Full::new(Bytes::from_static(b"0")))?;
        let response = client.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::ensure!(
            status.is_success(),
            "moto reset-auth answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok(())
    }

    /// Uses a server somebody else runs.
    async fn external(url: String) -> Result<Moto, MotoError> {
        let url = url.trim_end_matches('/').to_owned();
        wait_until_answering(&url).await?;
        Ok(Moto { url, process: None })
    }

    /// Starts the wrapper with the venv's python and waits until the server answers.
    async fn launch(no_auth_actions: Option<u32>) -> Result<Moto, MotoError> {
        let root = repo_root();
        let venv_bin = root.join(".venv").join("bin");
        let moto_server = venv_bin.join("moto_server");
        if !moto_server.exists() {
            return Err(MotoError::VenvMissing(moto_server));
        }
        let wrapper = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("python")
            .join("moto_wrapper.py");
        let mut command = Command::new(venv_bin.join("python"));
        command
            .arg(wrapper)
            .arg("0")
            .env_remove("MOTO_ACCOUNT_ID")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        match no_auth_actions {
            Some(n) => command.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string()),
            None => command.env_remove("INITIAL_NO_AUTH_ACTION_COUNT"),
        };
        let mut child = command.spawn().map_err(MotoError::Spawn)?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(MotoError::NoPort("no stdio pipes".into()));
        };
        let process = MotoProcess {
            child,
            _stdin: stdin,
        };

        // Read "PORT <n>" on a plain thread (the process outlives any one test's runtime), then
        // keep draining stdout so the wrapper never blocks on a full pipe.
        let (port_tx, port_rx) = tokio::sync::oneshot::channel::<Result<u16, String>>();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = match lines.next() {
                Some(Ok(line)) => line
                    .strip_prefix("PORT ")
                    .and_then(|p| p.trim().parse::<u16>().ok())
                    .ok_or_else(|| format!("unexpected first line {line:?}")),
                Some(Err(err)) => Err(err.to_string()),
                None => Err("moto exited before listening".to_owned()),
            };
            let _ = port_tx.send(first);
            for _ in lines.by_ref() {}
        });
        let port = match tokio::time::timeout(START_TIMEOUT, port_rx).await {
            Ok(Ok(Ok(port))) => port,
            Ok(Ok(Err(reason))) => return Err(MotoError::NoPort(reason)),
            Ok(Err(_)) => return Err(MotoError::NoPort("reader thread ended".into())),
            Err(_) => return Err(MotoError::NoPort("timed out".into())),
        };
        let url = format!("http://127.0.0.1:{port}");
        wait_until_answering(&url).await?;
        tracing::debug!(%url, ?no_auth_actions, "moto server started");
        Ok(Moto {
            url,
            process: Some(process),
        })
    }

    /// Whether this handle owns (and will kill) its server process.
    pub fn is_owned(&self) -> bool {
        self.process.is_some()
    }
}

/// The workspace root: the parent of this crate's directory.
pub fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Polls `GET <url>/moto-api/` until the server answers with any HTTP status.
async fn wait_until_answering(url: &str) -> Result<(), MotoError> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let probe_url = format!("{url}/moto-api/");
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        let Ok(request) = hyper::Request::get(&probe_url).body(Full::new(Bytes::new())) else {
            return Err(MotoError::NotAnswering(url.to_owned()));
        };
        if let Ok(Ok(_)) = tokio::time::timeout(PROBE_INTERVAL * 10, client.request(request)).await
        {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(MotoError::NotAnswering(url.to_owned()));
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}
