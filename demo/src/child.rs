//! Child processes the demo starts: each in its own process group (so a Ctrl-C in the terminal
//! reaches only the demo, which then stops them in order), output appended to a log file, and
//! killed with its whole group when dropped — whatever path the demo leaves by.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// Which of a child's standard streams are pipes for the caller (the rest: stdin closed,
/// stdout to the log file).
#[derive(Debug, Clone, Copy, Default)]
pub struct Pipes {
    /// stdin is a pipe.
    pub stdin: bool,
    /// stdout is a pipe.
    pub stdout: bool,
}

/// A started child process.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Child,
    pgid: Option<Pid>,
    log: PathBuf,
    /// The exit status once it was collected.
    status: Option<ExitStatus>,
}

impl ChildProcess {
    /// Starts `command` as `name` in a new process group, with stdin closed and stdout/stderr
    /// appended to `<log_dir>/<name>.log`.
    pub fn spawn(name: &str, command: Command, log_dir: &Path) -> anyhow::Result<Self> {
        Self::spawn_with(name, command, log_dir, Pipes::default())
    }

    /// Like [`ChildProcess::spawn`], with stdin and/or stdout as pipes the caller takes.
    pub fn spawn_with(
        name: &str,
        mut command: Command,
        log_dir: &Path,
        pipes: Pipes,
    ) -> anyhow::Result<Self> {
        let log = log_dir.join(format!("{name}.log"));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("open {}", log.display()))?;
        let stderr = file.try_clone().context("duplicate log file handle")?;
        command
            .stdin(if pipes.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::from(stderr))
            .process_group(0)
            .kill_on_drop(true);
        if pipes.stdout {
            command.stdout(Stdio::piped());
        } else {
            command.stdout(Stdio::from(file));
        }
        let child = command
            .spawn()
            .with_context(|| format!("start {name} (see {})", log.display()))?;
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);
        tracing::debug!(name, pid = ?pgid, log = %log.display(), "started");
        Ok(Self {
            name: name.to_owned(),
            child,
            pgid,
            log,
            status: None,
        })
    }

    /// The name given at start.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id (also its process group id), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.pgid.and_then(|p| u32::try_from(p.as_raw()).ok())
    }

    /// Its log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The child's stdout pipe, if it was spawned with one.
    pub fn take_stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// The child's stdin pipe, if it was spawned with one.
    pub fn take_stdin(&mut self) -> Option<tokio::process::ChildStdin> {
        self.child.stdin.take()
    }

    /// The exit status if the process has ended (without waiting).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub async fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.try_status() {
            return Some(status);
        }
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) => {
                self.status = Some(status);
                Some(status)
            }
            _ => None,
        }
    }

    /// Sends SIGTERM to the group, waits up to `grace`, then SIGKILLs it. Returns the exit status
    /// (`None` when it had to be killed).
    pub async fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.try_status() {
            return Some(status);
        }
        self.signal(Signal::SIGTERM);
        if let Some(status) = self.wait_for_exit(grace).await {
            return Some(status);
        }
        tracing::warn!(name = self.name, ?grace, "did not stop in time; killing it");
        self.kill().await;
        None
    }

    /// SIGKILLs the whole group and reaps the process.
    pub async fn kill(&mut self) {
        self.signal(Signal::SIGKILL);
        if let Ok(status) = self.child.wait().await {
            self.status = Some(status);
        }
    }

    /// Sends `signal` to the process group (best effort: it may be gone already).
    fn signal(&self, signal: Signal) {
        if let Some(pgid) = self.pgid
            && self.status.is_none()
        {
            let _ = killpg(pgid, signal);
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            // The group too: a child's own children (e.g. a shell's) must not outlive the demo.
            self.signal(Signal::SIGKILL);
        }
    }
}

/// The last `max_lines` lines of a log file (for error messages).
pub fn log_tail(path: &Path, max_lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn terminate_stops_the_whole_group_and_output_goes_to_the_log() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut command = Command::new("sh");
        // The shell starts a grandchild in the same group; both must be gone after terminate.
        command
            .arg("-c")
            .arg("echo started; sleep 300 & echo $! > grandchild; wait");
        command.current_dir(dir.path());
        let mut child = ChildProcess::spawn("sleeper", command, dir.path()).expect("spawns");
        let grandchild_file = dir.path().join("grandchild");
        for _ in 0..100 {
            if grandchild_file.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let grandchild: i32 = std::fs::read_to_string(&grandchild_file)
            .expect("grandchild pid")
            .trim()
            .parse()
            .expect("number");
        child.terminate(Duration::from_secs(5)).await;
        assert!(child.try_status().is_some());
        // Signal 0 probes existence; a zombie waiting for its new parent to reap it counts as gone.
        let mut gone = false;
        for _ in 0..100 {
            let zombie = std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
                .is_ok_and(|stat| stat.contains(") Z "));
            if zombie || nix::sys::signal::kill(Pid::from_raw(grandchild), None).is_err() {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone, "grandchild {grandchild} survived");
        assert!(log_tail(child.log_path(), 5).contains("started"));
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("x.log");
        std::fs::write(&path, "a\nb\nc\n").expect("write");
        assert_eq!(log_tail(&path, 2), "b\nc");
        assert_eq!(log_tail(&dir.path().join("missing"), 2), "");
    }
}
