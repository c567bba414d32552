//! What runs in the benchmark's child processes, one measurement per process so that CPU time and
//! peak RSS (`VmHWM`) belong to that measurement alone: the processor core on one object, the
//! baseline (plain gunzip + JSON parse of the same object), a bare S3 GetObject from the emulator,
//! and the floor of the Lambda init measurement. Each prints one `BENCH_RESULT <json>` line.

use anyhow::{Context, bail, ensure};
use chrono::Utc;
use flate2::read::MultiGzDecoder;
use logrelay_common::aws::{AwsOptions, base_config};
use logrelay_processor::object::{ObjectRef, Outcome};
use logrelay_processor::process::{Processor, ProcessorSettings};
use logrelay_testkit::{TEST_REGION, static_config, test_credentials};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read, Write};
use std::time::Instant;

/// Prefix of the one line a child prints for the parent.
pub const RESULT_PREFIX: &str = "BENCH_RESULT ";

/// Environment the parent passes to children.
pub mod env {
    /// The moto server's URL.
    pub const MOTO_URL: &str = "BENCH_MOTO_URL";
    /// Central bucket.
    pub const BUCKET: &str = "BENCH_BUCKET";
    /// Object key; the `process` role takes a comma-separated list and delivers them in turn.
    pub const KEY: &str = "BENCH_KEY";
    /// Tenant config table.
    pub const TENANT_TABLE: &str = "BENCH_TENANT_TABLE";
    /// A fresh delivery progress table for this run (unset: no progress table).
    pub const PROGRESS_TABLE: &str = "BENCH_PROGRESS_TABLE";
    /// The fake CloudWatch Logs endpoint.
    pub const LOGS_URL: &str = "BENCH_LOGS_URL";
    /// A local file holding the object (baseline).
    pub const GZ_FILE: &str = "BENCH_GZ_FILE";
}

/// One measurement of a child.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Measured {
    /// Events (records) handled.
    pub events: u64,
    /// Process CPU seconds (user + system, all threads) spent on the measured work.
    pub cpu_s: f64,
    /// Wall seconds of the measured work.
    pub wall_s: f64,
    /// Resident set before the measured work, KiB.
    pub rss_start_kib: u64,
    /// Peak resident set of the process (`VmHWM`), KiB.
    pub hwm_kib: u64,
}

/// The baseline's three passes over one object.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct BaselineMeasured {
    /// Decompression only.
    pub gunzip: Measured,
    /// Decompression + a typed parse of the fields delivery needs (message, timestamp).
    pub parse_minimal: Measured,
    /// Decompression + a parse of each line into `serde_json::Value`.
    pub parse_value: Measured,
}

/// Runs the child role named on the command line and prints its result.
pub fn run(role: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let line = match role {
        "process" => serde_json::to_string(&runtime.block_on(process_object())?)?,
        "s3-get" => serde_json::to_string(&runtime.block_on(s3_get())?)?,
        "baseline" => serde_json::to_string(&baseline()?)?,
        "lambda-floor" => return lambda_floor(),
        other => bail!("unknown child role {other:?}"),
    };
    println!("{RESULT_PREFIX}{line}");
    Ok(())
}

fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} not set"))
}

/// The core on one object: tenant config from DynamoDB, AssumeRole through STS, GetObject (the
/// emulator's, or the parent's in-memory S3 when `AWS_ENDPOINT_URL_S3` is set), progress in
/// DynamoDB when a table is given, PutLogEvents to the fake endpoint.
async fn process_object() -> anyhow::Result<Measured> {
    // The endpoint comes from `AWS_ENDPOINT_URL` (as in the deployed binary), so that a
    // service-specific `AWS_ENDPOINT_URL_S3` can override it; one set in code would win over it.
    let moto_url = var(env::MOTO_URL)?;
    ensure!(
        std::env::var("AWS_ENDPOINT_URL").ok() == Some(moto_url),
        "AWS_ENDPOINT_URL must name the emulator"
    );
    let aws = base_config(&AwsOptions {
        region: Some(TEST_REGION.to_owned()),
        endpoint_url: None,
        credentials: Some(test_credentials()),
    })
    .await;
    let mut settings = ProcessorSettings::new(aws, var(env::TENANT_TABLE)?);
    settings.delivery_progress_table = std::env::var(env::PROGRESS_TABLE).ok();
    settings.logs_endpoint_url = Some(var(env::LOGS_URL)?);
    let processor = Processor::new(settings)?;
    let bucket = var(env::BUCKET)?;
    let keys = var(env::KEY)?;
    let clock = Clock::start();
    let mut events = 0;
    for key in keys.split(',') {
        let object = ObjectRef {
            bucket: bucket.clone(),
            key: key.to_owned(),
            size: None,
            etag: None,
            version_id: None,
            sequencer: None,
            event_time: Some(Utc::now()),
            uploader: None,
        };
        match processor.process(&object).await {
            Outcome::Delivered(report) if report.bad_lines == 0 && report.events_rejected == 0 => {
                events += report.events_delivered;
            }
            other => bail!("{key} not delivered cleanly: {other:?}"),
        }
    }
    Ok(clock.stop(events))
}

/// GetObject from the emulator, body read and discarded: what the S3 part costs on its own.
async fn s3_get() -> anyhow::Result<Measured> {
    let aws = static_config(&var(env::MOTO_URL)?, test_credentials()).await;
    let client = logrelay_common::aws::s3_client(&aws);
    let clock = Clock::start();
    let output = client
        .get_object()
        .bucket(var(env::BUCKET)?)
        .key(var(env::KEY)?)
        .send()
        .await
        .context("GetObject")?;
    let mut body = output.body;
    let mut bytes = 0u64;
    while let Some(chunk) = body.try_next().await.context("read body")? {
        bytes += chunk.len() as u64;
    }
    let mut measured = clock.stop(0);
    measured.events = bytes;
    Ok(measured)
}

/// The fields delivery needs, borrowed where the line has no escapes.
#[derive(Deserialize)]
struct Minimal<'a> {
    #[serde(borrow)]
    #[allow(dead_code)] // parsed to be measured, not used
    message: Cow<'a, str>,
    #[serde(borrow)]
    #[allow(dead_code)]
    timestamp: Cow<'a, str>,
}

/// The unavoidable work on the same object, from memory: gunzip, then gunzip + parse.
fn baseline() -> anyhow::Result<BaselineMeasured> {
    let gz = std::fs::read(var(env::GZ_FILE)?).context("read object file")?;
    let gunzip = {
        let clock = Clock::start();
        let mut decoder = MultiGzDecoder::new(gz.as_slice());
        let mut buffer = vec![0u8; 64 << 10];
        let mut lines = 0u64;
        loop {
            let n = decoder.read(&mut buffer).context("gunzip")?;
            if n == 0 {
                break;
            }
            lines += count_newlines(&buffer[..n]);
        }
        clock.stop(lines)
    };
    let parse_minimal = parse_lines(&gz, |line| {
        serde_json::from_slice::<Minimal<'_>>(line).is_ok()
    })?;
    let parse_value = parse_lines(&gz, |line| {
        serde_json::from_slice::<serde_json::Value>(line).is_ok()
    })?;
    Ok(BaselineMeasured {
        gunzip,
        parse_minimal,
        parse_value,
    })
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Gunzips `gz` line by line and parses each line with `parse`; counts lines that parse.
fn parse_lines(gz: &[u8], parse: impl Fn(&[u8]) -> bool) -> anyhow::Result<Measured> {
    let clock = Clock::start();
    let mut reader = BufReader::with_capacity(64 << 10, MultiGzDecoder::new(gz));
    let mut line = Vec::with_capacity(64 << 10);
    let mut parsed = 0u64;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).context("gunzip")? == 0 {
            break;
        }
        if parse(&line) {
            parsed += 1;
        }
    }
    Ok(clock.stop(parsed))
}

/// The floor of the init measurement: this (equally large) binary connects to the Runtime API and
/// asks for the first invocation at once, then waits to be killed.
fn lambda_floor() -> anyhow::Result<()> {
    let api = var("AWS_LAMBDA_RUNTIME_API")?;
    let mut stream = std::net::TcpStream::connect(&api).context("connect")?;
    write!(
        stream,
        "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: {api}\r\n\r\n"
    )?;
    let mut sink = [0u8; 1024];
    while stream.read(&mut sink)? > 0 {}
    Ok(())
}

/// CPU and wall time from a start point.
struct Clock {
    cpu: f64,
    wall: Instant,
    rss_start_kib: u64,
}

impl Clock {
    fn start() -> Self {
        Self {
            rss_start_kib: proc_status_kib("VmRSS"),
            cpu: cpu_seconds(),
            wall: Instant::now(),
        }
    }

    fn stop(self, events: u64) -> Measured {
        Measured {
            events,
            cpu_s: cpu_seconds() - self.cpu,
            wall_s: self.wall.elapsed().as_secs_f64(),
            rss_start_kib: self.rss_start_kib,
            hwm_kib: proc_status_kib("VmHWM"),
        }
    }
}

/// User + system CPU seconds of this process, all threads (`getrusage(RUSAGE_SELF)`).
pub fn cpu_seconds() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |usage| {
        let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        seconds(usage.user_time()) + seconds(usage.system_time())
    })
}

/// A `kB` field of `/proc/self/status` (e.g. `VmHWM`), 0 when unreadable.
pub fn proc_status_kib(field: &str) -> u64 {
    status_kib("/proc/self/status", field)
}

/// A `kB` field of a `/proc/<pid>/status`-style file, 0 when unreadable.
pub fn status_kib(path: &str, field: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let rest = line.strip_prefix(field)?.strip_prefix(':')?;
                rest.trim().trim_end_matches("kB").trim().parse().ok()
            })
        })
        .unwrap_or(0)
}
