//! The real `logrelay-agent` binary: stdin source into the file sink, fed by a process pipe, then
//! SIGTERM: everything read is flushed into objects and the process exits 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const AGENT: &str = env!("CARGO_BIN_EXE_logrelay-agent");

/// A free local port (bound, then released for the agent).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("binds")
        .local_addr()
        .expect("address")
        .port()
}

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.get(9..12)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// The value of an unlabelled-or-labelled sample line starting with `series` in Prometheus text.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn objects(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten() {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path)
            } else {
                found.push(path)
            }
        }
    }
    found
}

fn stored_messages(root: &Path) -> Vec<String> {
    let mut messages = Vec::new();
    for object in objects(root) {
        assert!(
            object.to_string_lossy().ends_with(".json.gz"),
            "only whole objects: {object:?}"
        );
        let gz = flate2::read::MultiGzDecoder::new(std::fs::File::open(&object).expect("opens"));
        for line in BufReader::new(gz).lines() {
            let value: serde_json::Value =
                serde_json::from_str(&line.expect("gzip text")).expect("json line");
            messages.push(value["message"].as_str().expect("message").to_string());
        }
    }
    messages
}

/// Waits for `child` to exit; kills it and fails the test after `timeout`.
fn wait_or_kill(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("polls the child") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The agent reading stdin into a directory sink `<dir>/out` (data dir `<dir>/data`), with no
/// sink settings inherited from the environment.
fn stdin_agent(dir: &std::path::Path, listen: &str, log_format: &str) -> Command {
    let mut command = Command::new(AGENT);
    command
        .args([
            "--source",
            "stdin",
            "--listen",
            listen,
            "--log-format",
            log_format,
        ])
        .arg("--sink")
        .arg(format!("file://{}", dir.join("out").display()))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env_remove("S3_BUCKET_NAME")
        .env_remove("LOGRELAY_SINK");
    command
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("runs kill");
    assert!(status.success());
}

#[test]
fn stdin_agent_flushes_everything_it_read_on_sigterm_and_exits_zero() {
    const LINES: usize = 2_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let port = free_port();
    let mut child = stdin_agent(dir.path(), &format!("127.0.0.1:{port}"), "json")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts the agent");
    let mut stdin = child.stdin.take().expect("stdin pipe");
    for i in 0..LINES {
        writeln!(
            stdin,
            r#"{{"timestamp":"2024-01-01T00:00:00.000000001Z","message":"line {i}","customer_id":"acme","cluster_id":"c1","application":"api","pod_name":"pod-{}","namespace":"ns","container_name":"main","node_name":"n1","ingest_timestamp":"2024-01-01T00:00:01Z"}}"#,
            i % 3
        )
        .expect("writes");
    }
    stdin.flush().expect("flushes");
    // Keep the pipe open: the agent must flush because of the signal, not end of input.
    wait_for(
        "the agent to read every line",
        Duration::from_secs(30),
        || {
            http_get(port, "/metrics")
                .and_then(|(_, body)| {
                    sample(&body, "logrelay_agent_lines_read_total{source=\"stdin\"}")
                })
                .is_some_and(|n| n as usize == LINES)
        },
    );
    assert_eq!(http_get(port, "/readyz").map(|(s, _)| s), Some(200));
    assert!(
        objects(&out).is_empty(),
        "nothing stored before the batch timeout"
    );
    terminate(&child);
    let status = wait_or_kill(&mut child, Duration::from_secs(60));
    let mut log = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .expect("reads log");
    assert!(status.success(), "exit {status:?}; log:\n{log}");
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "JSON logs:\n{log}"
    );
    let mut messages = stored_messages(&out);
    messages.sort_by_key(|m| m[5..].parse::<usize>().expect("number"));
    assert_eq!(
        messages,
        (0..LINES).map(|i| format!("line {i}")).collect::<Vec<_>>()
    );
    drop(stdin);
}

#[test]
fn invalid_configuration_exits_two_naming_the_field() {
    let output = Command::new(AGENT)
        .args(["--batch-memory-limit", "1KiB", "--listen", "off"])
        .output()
        .expect("runs the agent");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--batch-memory-limit (LOGRELAY_BATCH_MEMORY_LIMIT)"),
        "{stderr}"
    );
}

/// `--check-config` with `env` only (plus PATH); the parsed JSON report and the exit code.
fn check_config(env: &[(&str, &str)]) -> (serde_json::Value, Option<i32>) {
    let output = Command::new(AGENT)
        .arg("--check-config")
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("runs");
    let report = serde_json::from_slice(&output.stdout).expect("one JSON report on stdout");
    (report, output.status.code())
}

#[test]
fn check_config_reports_listen_selector_and_deprecated_prefix_and_refuses_unknown_settings() {
    let in_pod = [
        ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
        ("S3_BUCKET_NAME", "central"),
        ("LOGRELAY_S3_PREFIX", "logs"),
    ];
    let (report, code) = check_config(&in_pod);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["listen"], "0.0.0.0:9880");
    assert_eq!(
        report["http_paths"],
        serde_json::json!(["/metrics", "/healthz", "/readyz"])
    );
    assert_eq!(report["effective"]["sink"], "s3://central/logs");
    assert_eq!(
        report["effective"]["namespace_selector"],
        "kubernetes.io/metadata.name notin (kube-system,kube-public,kube-node-lease)"
    );
    assert!(
        report["deprecated"][0]
            .as_str()
            .is_some_and(|d| d.contains("LOGRELAY_KEY_PREFIX")),
        "{report}"
    );

    let (report, code) = check_config(&[("LOGRELAY_LISTN", "0.0.0.0:1"), ("POD_NAME", "p")]);
    assert_eq!(code, Some(2), "{report}");
    assert_eq!(report["unknown_env"], serde_json::json!(["LOGRELAY_LISTN"]));
    assert_eq!(report["unused_env"], serde_json::json!(["POD_NAME"]));
}

#[test]
fn text_logs_off_a_terminal_carry_no_colour_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = stdin_agent(dir.path(), "off", "text")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .output()
        .expect("runs the agent");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("starting"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escape codes in a pipe:\n{log}"
    );
}
