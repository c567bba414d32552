//! One run of the real `logrelay-agent` binary under the kill loop: started with the directory
//! sink and its metrics on a local port, scraped, then SIGKILLed or stopped with SIGTERM.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Gauge of bytes read whose lines are not all in acknowledged objects yet.
pub const UNACKNOWLEDGED_BYTES: &str = "logrelay_agent_unacknowledged_bytes";

/// Counter of bytes the agent knows it could not ship (all labels summed).
pub const LOST_BYTES: &str = "logrelay_agent_lost_bytes_total";

/// Counter of partial lines shipped without their final chunk (all reasons summed).
pub const PARTIAL_FLUSHED: &str = "logrelay_agent_partial_lines_flushed_total";

/// How long one metrics request may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long an agent may take to answer its first metrics request.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the agent reads and writes, and how it batches.
#[derive(Debug, Clone)]
pub struct AgentSetup {
    /// The `logrelay-agent` binary.
    pub binary: PathBuf,
    /// `--pods-root`.
    pub pods_root: PathBuf,
    /// The directory sink (`--sink file://DIR`).
    pub out: PathBuf,
    /// `--data-dir` (checkpoints).
    pub data: PathBuf,
    /// Where each run's stderr goes (`agent-NN.log`).
    pub logs: PathBuf,
    /// `--batch-timeout`, e.g. `2s`.
    pub batch_timeout: String,
    /// More flags for every run.
    pub extra_args: Vec<String>,
    /// `RUST_LOG` of the agent.
    pub log_filter: String,
}

/// A running agent.
#[derive(Debug)]
pub struct AgentRun {
    child: Child,
    addr: SocketAddr,
}

/// What one scrape of `/metrics` found.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scrape {
    /// [`UNACKNOWLEDGED_BYTES`].
    pub unacknowledged_bytes: f64,
    /// [`LOST_BYTES`], summed over labels.
    pub lost_bytes: f64,
    /// [`PARTIAL_FLUSHED`], summed over labels.
    pub partial_flushed: f64,
}

/// Starting or talking to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// An I/O error, with what was being done.
    #[error("{action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The error.
        source: std::io::Error,
    },
    /// The agent never answered on its metrics port.
    #[error("the agent did not serve /metrics within {START_TIMEOUT:?} (see {log})")]
    NotReady {
        /// Its log file.
        log: String,
    },
}

fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> AgentError {
    let action = action.into();
    move |source| AgentError::Io { action, source }
}

/// A free local port (bound and released at once).
fn free_port() -> Result<SocketAddr, AgentError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("binding a free port"))?;
    listener.local_addr().map_err(io("reading the bound port"))
}

impl AgentRun {
    /// Starts run number `run` and waits until it serves `/metrics`.
    pub fn start(setup: &AgentSetup, run: usize) -> Result<Self, AgentError> {
        let addr = free_port()?;
        let log_path = setup.logs.join(format!("agent-{run:02}.log"));
        let log = std::fs::File::create(&log_path)
            .map_err(io(format!("creating {}", log_path.display())))?;
        let child = Command::new(&setup.binary)
            .args(["--source", "files", "--listen", &addr.to_string()])
            .args(["--batch-timeout", &setup.batch_timeout])
            .args(["--cluster-id", "cluster-1", "--node-name", "node-1"])
            .arg("--pods-root")
            .arg(&setup.pods_root)
            .arg("--sink")
            .arg(format!("file://{}", setup.out.display()))
            .arg("--data-dir")
            .arg(&setup.data)
            .args(&setup.extra_args)
            .env_remove("S3_BUCKET_NAME")
            .env_remove("LOGRELAY_SINK")
            .env("RUST_LOG", &setup.log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(io(format!("starting {}", setup.binary.display())))?;
        let mut run = AgentRun { child, addr };
        let deadline = Instant::now() + START_TIMEOUT;
        while run.scrape().is_none() {
            if Instant::now() > deadline || run.exited() {
                run.kill();
                return Err(AgentError::NotReady {
                    log: log_path.display().to_string(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(run)
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// The agent's metrics now, or `None` when it does not answer.
    pub fn scrape(&self) -> Option<Scrape> {
        let text = get_metrics(self.addr).ok()?;
        Some(Scrape {
            unacknowledged_bytes: sum_metric(&text, UNACKNOWLEDGED_BYTES),
            lost_bytes: sum_metric(&text, LOST_BYTES),
            partial_flushed: sum_metric(&text, PARTIAL_FLUSHED),
        })
    }

    /// SIGKILL, then reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait up to `timeout` (SIGKILL after it); the exit status if it stopped itself.
    pub fn terminate(mut self, timeout: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        None
    }
}

/// `GET /metrics` over HTTP/1.0; the body.
fn get_metrics(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, SCRAPE_TIMEOUT)?;
    stream.set_read_timeout(Some(SCRAPE_TIMEOUT))?;
    stream.set_write_timeout(Some(SCRAPE_TIMEOUT))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header end"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(std::io::Error::other("metrics did not answer 200"));
    }
    Ok(body.to_string())
}

/// The sum of every series of `name` in Prometheus text format (0 when absent).
pub fn sum_metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Every delivered object file under `out` (`*.json.gz`), sorted.
pub fn object_files(out: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![out.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => stack.push(path),
                Ok(kind) if kind.is_file() && path.to_string_lossy().ends_with(".json.gz") => {
                    files.push(path)
                }
                _ => {}
            }
        }
    }
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_series_are_summed_over_labels_and_prefixes_do_not_match() {
        let text = "# HELP logrelay_agent_lost_bytes_total x\n\
            logrelay_agent_lost_bytes_total{reason=\"deleted\"} 10\n\
            logrelay_agent_lost_bytes_total{reason=\"truncated\"} 5.5\n\
            logrelay_agent_lost_bytes_total_other 99\n\
            logrelay_agent_unacknowledged_bytes 42\n";
        assert_eq!(sum_metric(text, LOST_BYTES), 15.5);
        assert_eq!(sum_metric(text, UNACKNOWLEDGED_BYTES), 42.0);
        assert_eq!(sum_metric(text, PARTIAL_FLUSHED), 0.0);
    }
}
