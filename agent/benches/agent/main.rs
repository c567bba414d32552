//! The agent benchmark: runs the release `logrelay-agent` binary with the
//! file sink over generated CRI files until every line is stored, measuring its CPU time and peak
//! RSS from `/proc`; compresses the same NDJSON volume with `gzip -1` as the physical reference;
//! then the same with 1,000 busy files (a 1 MiB backlog each) next to it; then measures idle CPU
//! and RSS with 1,000 quiet files. Prints a report (see BENCHMARKS.md).
//!
//! Run: `scripts/bench.sh agent` (or `nice -n 10 cargo bench --workspace --bench agent`).
//! Environment: `LOGRELAY_BENCH_AGENT_MIB` (input size, default 256; the 1 GiB is 1024),
//! `LOGRELAY_BENCH_BUSY_KIB` (backlog per busy file, default 1024; 0 skips the busy case),
//! `LOGRELAY_BENCH_IDLE_SECS` (default 20), `LOGRELAY_BENCH_BATCH_TIMEOUT` (default 20s),
//! `LOGRELAY_BENCH_DIR` (scratch parent, default $TMPDIR).

mod data;
mod measure;

use anyhow::{Context, bail, ensure};
use flate2::read::MultiGzDecoder;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Default input volume in MiB (256 keeps a run under ~5 minutes on 2 cores; the issue asks 1 GiB).
const DEFAULT_INPUT_MIB: u64 = 256;

/// Files of the throughput run (the issue: "1 GiB across 100 files").
const THROUGHPUT_FILES: usize = 100;

/// The idle run's tree: 200 pods × 5 containers = 1,000 quiet files (issue: "1,000 quiet files").
const IDLE_PODS: usize = 200;
/// Containers per pod in the idle run.
const IDLE_CONTAINERS: usize = 5;
/// Lines in each idle file.
const IDLE_LINES_PER_FILE: u64 = 20;

/// The busy run's tree: 200 pods × 5 containers = 1,000 files, each with a backlog of
/// [`DEFAULT_BUSY_FILE_KIB`] (a node where every container logs at once).
const BUSY_PODS: usize = 200;
/// Containers per pod in the busy run.
const BUSY_CONTAINERS: usize = 5;
/// Default backlog per busy file, KiB (1 MiB: 1,000 files hold ~1 GiB together).
const DEFAULT_BUSY_FILE_KIB: u64 = 1024;

/// Default idle window in seconds (issue brief: 20 s).
const DEFAULT_IDLE_SECS: u64 = 20;

/// Default batch timeout given to the agent (`LOGRELAY_BENCH_BATCH_TIMEOUT`): the last partial
/// batches seal within it once everything is read (the default 300 s would only add waiting).
/// Long enough that a 1 GiB run seals by size or once per partition, as a node catching up with
/// its backlog would under the default: a 1 s timeout would seal every busy partition every
/// second and count objects the default never makes.
const DEFAULT_BATCH_TIMEOUT: &str = "20s";

/// How often `/metrics` is polled while waiting (each scrape costs the agent a little CPU).
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Give up when the stored-line count has not moved for this long.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Wait after "all stored" before the idle window: the checkpoint saver's next write (≤ 1 s).
const SETTLE: Duration = Duration::from_secs(3);

/// Targets the agent is held to (BENCHMARKS.md): throughput against `gzip -1` per core.
const TARGET_GZIP_RATIO: f64 = 0.5;
/// RSS target at 1,000 files, MiB.
const TARGET_RSS_MIB: f64 = 64.0;
/// Throughput at 1,000 busy files, as a share of the 100-file figure of the same run.
const TARGET_BUSY_SHARE: f64 = 0.8;
/// Objects per GiB of input at 1,000 busy files.
const TARGET_BUSY_OBJECTS_PER_GIB: f64 = 2000.0;
/// Idle target, % of one core.
const TARGET_IDLE_PCT: f64 = 1.0;

const MIB: f64 = (1u64 << 20) as f64;

/// One agent run until everything is stored.
#[derive(Debug, Clone, Copy)]
struct AgentRun {
    cpu_s: f64,
    wall_s: f64,
    hwm_kib: u64,
    stored_lines: f64,
    read_bytes: f64,
    stored_uncompressed: f64,
    idle_cpu_s: f64,
    idle_wall_s: f64,
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; any other argument is a filter: run only if it matches.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if !filter.is_empty() && !filter.iter().any(|f| "agent".contains(f.as_str())) {
        return Ok(());
    }
    let mib = env_u64("LOGRELAY_BENCH_AGENT_MIB", DEFAULT_INPUT_MIB)?;
    let busy_kib = env_u64("LOGRELAY_BENCH_BUSY_KIB", DEFAULT_BUSY_FILE_KIB)?;
    let idle_secs = env_u64("LOGRELAY_BENCH_IDLE_SECS", DEFAULT_IDLE_SECS)?;
    let parent = std::env::var_os("LOGRELAY_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let scratch = tempfile::Builder::new()
        .prefix("logrelay-agent-bench")
        .tempdir_in(&parent)?;
    // Another build of the agent (e.g. one with symbols, for profiling) may stand in.
    let binary = std::env::var_os("LOGRELAY_BENCH_AGENT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_logrelay-agent")));
    let binary = binary.as_path();
    println!(
        "agent benchmark: {mib} MiB over {THROUGHPUT_FILES} files, binary {}",
        binary.display()
    );
    println!("scratch: {}", scratch.path().display());

    // 1. Throughput over 100 files, with gzip -1 over the produced NDJSON as the reference.
    let wide = throughput_case(
        binary,
        scratch.path(),
        "tp",
        (THROUGHPUT_FILES, 1),
        (mib << 20) / THROUGHPUT_FILES as u64,
    )?;

    // 2. The same over 1,000 busy files.
    let busy = if busy_kib > 0 {
        Some(throughput_case(
            binary,
            scratch.path(),
            "busy",
            (BUSY_PODS, BUSY_CONTAINERS),
            busy_kib << 10,
        )?)
    } else {
        None
    };

    // 3. Idle with 1,000 quiet files.
    let idle_root = scratch.path().join("pods");
    let quiet = data::write_tree(
        &idle_root,
        IDLE_PODS,
        IDLE_CONTAINERS,
        0,
        IDLE_LINES_PER_FILE,
    )?;
    let idle = run_agent(binary, scratch.path(), "idle", quiet.lines, idle_secs)?;

    report(&wide, &quiet, &idle);
    report_cases(&wide, busy.as_ref());
    Ok(())
}

/// One throughput run and its in-run references.
#[derive(Debug, Clone, Copy)]
struct Case {
    input: data::Generated,
    run: AgentRun,
    stored: Stored,
    gzip: Gzipped,
    flate2_cpu_s: f64,
}

/// Writes `pods × containers` files of `bytes_per_file` under `<scratch>/pods`, runs the agent
/// until every line is stored, then measures `gzip -1` and flate2 fast over the NDJSON it stored.
fn throughput_case(
    binary: &Path,
    scratch: &Path,
    name: &str,
    (pods, containers): (usize, usize),
    bytes_per_file: u64,
) -> anyhow::Result<Case> {
    let pods_root = scratch.join("pods");
    let started = Instant::now();
    let input = data::write_tree(&pods_root, pods, containers, bytes_per_file, 1)?;
    println!(
        "{name}: generated {} files, {} lines, {:.1} MiB in {:.1} s",
        input.files,
        input.lines,
        input.bytes as f64 / MIB,
        started.elapsed().as_secs_f64()
    );
    let run = run_agent(binary, scratch, name, input.lines, 0)?;
    ensure!(
        run.stored_lines as u64 == input.lines,
        "agent stored {} lines, {} were written",
        run.stored_lines,
        input.lines
    );
    let ndjson = scratch.join(format!("{name}.ndjson"));
    let objects = scratch.join(format!("{name}-objects"));
    let stored = concat_objects(&objects, &ndjson)?;
    ensure!(
        stored.lines == input.lines,
        "objects hold {} lines, {} were written",
        stored.lines,
        input.lines
    );
    fs::remove_dir_all(&pods_root)?;
    fs::remove_dir_all(&objects)?;
    let gzip = gzip_fast(&ndjson)?;
    let flate2_cpu_s = flate2_fast_cpu(&ndjson)?;
    fs::remove_file(&ndjson)?;
    Ok(Case {
        input,
        run,
        stored,
        gzip,
        flate2_cpu_s,
    })
}

/// Starts the agent on `<scratch>/pods`, waits until `lines` are stored, samples CPU and peak RSS,
/// optionally measures `idle_secs` of idle CPU, then stops it with SIGTERM.
fn run_agent(
    binary: &Path,
    scratch: &Path,
    name: &str,
    lines: u64,
    idle_secs: u64,
) -> anyhow::Result<AgentRun> {
    let addr = free_port()?;
    let objects = scratch.join(format!("{name}-objects"));
    let log = File::create(scratch.join(format!("{name}-agent.log")))?;
    let started = Instant::now();
    let mut child = Command::new(binary)
        .args(["--source", "files", "--pods-root"])
        .arg(scratch.join("pods"))
        .arg("--sink")
        .arg(format!("file://{}", objects.display()))
        .arg("--data-dir")
        .arg(scratch.join(format!("{name}-data")))
        .args([
            "--batch-timeout",
            &batch_timeout(),
            "--listen",
            &addr.to_string(),
        ])
        .env_remove("S3_BUCKET_NAME")
        .env_remove("LOGRELAY_SINK")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("start logrelay-agent")?;
    let result = wait_and_measure(&mut child, addr, started, lines, idle_secs);
    stop(&mut child)?;
    result
}

fn wait_and_measure(
    child: &mut Child,
    addr: SocketAddr,
    started: Instant,
    lines: u64,
    idle_secs: u64,
) -> anyhow::Result<AgentRun> {
    let pid = child.id();
    const NAMES: [&str; 3] = [
        "logrelay_agent_stored_lines_total",
        "logrelay_agent_bytes_read_total",
        "logrelay_agent_batched_uncompressed_bytes_total",
    ];
    let (mut last, mut last_change) = (-1.0, Instant::now());
    let counters = loop {
        if let Some(status) = child.try_wait()? {
            bail!("the agent exited early: {status}");
        }
        if let Ok(values) = measure::scrape(addr, &NAMES) {
            if values[0] >= lines as f64 {
                break values;
            }
            if values[0] != last {
                (last, last_change) = (values[0], Instant::now());
            }
        }
        if last_change.elapsed() > STALL_TIMEOUT {
            bail!("no progress for {STALL_TIMEOUT:?}: {last} of {lines} lines stored");
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    let wall_s = started.elapsed().as_secs_f64();
    let cpu_s = measure::process_cpu_s(pid)?;
    let (mut idle_cpu_s, mut idle_wall_s) = (0.0, 0.0);
    if idle_secs > 0 {
        std::thread::sleep(SETTLE);
        let (cpu0, t0) = (measure::process_cpu_s(pid)?, Instant::now());
        std::thread::sleep(Duration::from_secs(idle_secs));
        idle_cpu_s = measure::process_cpu_s(pid)? - cpu0;
        idle_wall_s = t0.elapsed().as_secs_f64();
    }
    Ok(AgentRun {
        cpu_s,
        wall_s,
        hwm_kib: measure::peak_rss_kib(pid)?,
        stored_lines: counters[0],
        read_bytes: counters[1],
        stored_uncompressed: counters[2],
        idle_cpu_s,
        idle_wall_s,
    })
}

/// SIGTERM, then SIGKILL if the agent has not exited within its grace period plus a margin.
fn stop(child: &mut Child) -> anyhow::Result<()> {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(35);
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill()?;
    child.wait()?;
    Ok(())
}

/// What the agent stored.
#[derive(Debug, Clone, Copy, Default)]
struct Stored {
    /// Objects written.
    objects: u64,
    /// Their size (gzip).
    compressed_bytes: u64,
    /// Their decompressed NDJSON size.
    ndjson_bytes: u64,
    /// Their lines.
    lines: u64,
}

/// Decompresses every stored object (`*.gz`, skipping `*.tmp`) into one NDJSON file.
fn concat_objects(objects: &Path, out: &Path) -> anyhow::Result<Stored> {
    let mut writer = BufWriter::with_capacity(1 << 20, File::create(out)?);
    let mut stack = vec![objects.to_path_buf()];
    let mut stored = Stored::default();
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "gz") {
                let body = fs::read(&path)?;
                let mut plain = Vec::new();
                io::Read::read_to_end(&mut MultiGzDecoder::new(&body[..]), &mut plain)?;
                stored.objects += 1;
                stored.compressed_bytes += body.len() as u64;
                stored.lines += memchr::memchr_iter(b'\n', &plain).count() as u64;
                stored.ndjson_bytes += plain.len() as u64;
                writer.write_all(&plain)?;
            }
        }
    }
    writer.flush()?;
    Ok(stored)
}

/// `gzip -1` over the agent's NDJSON: the physical reference.
#[derive(Debug, Clone, Copy)]
struct Gzipped {
    cpu_s: f64,
    bytes: u64,
}

/// CPU seconds and output size of `gzip -1 -c FILE`.
fn gzip_fast(file: &Path) -> anyhow::Result<Gzipped> {
    let before = measure::children_cpu_s()?;
    let mut child = Command::new("gzip")
        .args(["-1", "-c"])
        .arg(file)
        .stdout(Stdio::piped())
        .spawn()
        .context("run gzip")?;
    let mut out = child.stdout.take().context("gzip stdout")?;
    let bytes = io::copy(&mut out, &mut io::sink())?;
    let status = child.wait()?;
    ensure!(status.success(), "gzip failed: {status}");
    Ok(Gzipped {
        cpu_s: measure::children_cpu_s()? - before,
        bytes,
    })
}

/// CPU seconds of flate2 at the agent's level (`Compression::fast`) over `file`, in this process.
fn flate2_fast_cpu(file: &Path) -> anyhow::Result<f64> {
    let body = fs::read(file)?;
    let before = measure::self_cpu_s()?;
    let mut encoder =
        flate2::write::GzEncoder::new(io::sink(), logrelay_common::codec::WRITE_COMPRESSION);
    for chunk in body.chunks(64 << 10) {
        encoder.write_all(chunk)?;
    }
    encoder.finish()?;
    Ok(measure::self_cpu_s()? - before)
}

fn report(case: &Case, quiet: &data::Generated, idle: &AgentRun) {
    let Case {
        input, run, stored, ..
    } = case;
    let (ndjson_bytes, gzip_cpu_s, flate2_cpu_s) =
        (stored.ndjson_bytes, case.gzip.cpu_s, case.flate2_cpu_s);
    let input_mib = input.bytes as f64 / MIB;
    let ndjson_mib = ndjson_bytes as f64 / MIB;
    let agent_input_rate = input_mib / run.cpu_s;
    let agent_ndjson_rate = ndjson_mib / run.cpu_s;
    let gzip_rate = ndjson_mib / gzip_cpu_s;
    let ratio = agent_input_rate / gzip_rate;
    let ratio_ndjson = agent_ndjson_rate / gzip_rate;
    let idle_pct = 100.0 * idle.idle_cpu_s / idle.idle_wall_s;
    let rss_1000 = idle.hwm_kib as f64 / 1024.0;
    let verdict = |met: bool| if met { "MET" } else { "MISSED" };
    println!();
    println!("== agent throughput ({} files) ==", input.files);
    println!(
        "input            {input_mib:.1} MiB CRI, {} lines (agent read {:.1} MiB)",
        input.lines,
        run.read_bytes / MIB
    );
    println!(
        "agent            {:.2} CPU-s, {:.2} s wall, peak RSS {:.1} MiB",
        run.cpu_s,
        run.wall_s,
        run.hwm_kib as f64 / 1024.0
    );
    println!(
        "                 {agent_input_rate:.1} MiB input / CPU-s ({agent_ndjson_rate:.1} MiB NDJSON / CPU-s), {:.0} lines / CPU-s, {:.0} lines/s wall",
        input.lines as f64 / run.cpu_s,
        input.lines as f64 / run.wall_s
    );
    println!(
        "NDJSON output    {ndjson_mib:.1} MiB (agent counted {:.1} MiB)",
        run.stored_uncompressed / MIB
    );
    println!("gzip -1          {gzip_cpu_s:.2} CPU-s over the NDJSON = {gzip_rate:.1} MiB / CPU-s");
    println!(
        "flate2 fast      {flate2_cpu_s:.2} CPU-s over the NDJSON (the agent's codec, in-process) = {:.0} % of the agent's CPU",
        100.0 * flate2_cpu_s / run.cpu_s
    );
    println!(
        "ratio to gzip -1 {:.0} % (input MiB basis), {:.0} % (NDJSON MiB basis); target >= {:.0} %: {}",
        100.0 * ratio,
        100.0 * ratio_ndjson,
        100.0 * TARGET_GZIP_RATIO,
        verdict(ratio >= TARGET_GZIP_RATIO)
    );
    println!();
    println!("== agent with {} quiet files ==", quiet.files);
    println!(
        "caught up        {} lines in {:.2} s wall, {:.2} CPU-s",
        quiet.lines, idle.wall_s, idle.cpu_s
    );
    println!(
        "peak RSS         {rss_1000:.1} MiB; target <= {TARGET_RSS_MIB:.0} MiB: {}",
        verdict(rss_1000 <= TARGET_RSS_MIB)
    );
    println!(
        "idle CPU         {:.3} CPU-s over {:.1} s = {idle_pct:.2} % of a core; target <= {TARGET_IDLE_PCT:.0} %: {}",
        idle.idle_cpu_s,
        idle.idle_wall_s,
        verdict(idle_pct <= TARGET_IDLE_PCT)
    );
}

/// The 100-file and the 1,000-file runs side by side, per GiB of CRI input.
fn report_cases(wide: &Case, busy: Option<&Case>) {
    println!();
    println!("== 100 vs 1,000 busy files (per GiB of CRI input) ==");
    println!(
        "{:<24} {:>10} {:>14} {:>14} {:>12} {:>10} {:>10}",
        "case", "objects", "MiB out", "gzip -1 MiB", "out/gzip", "CPU-s", "RSS MiB"
    );
    for case in std::iter::once(wide).chain(busy) {
        let gib = case.input.bytes as f64 / (1u64 << 30) as f64;
        println!(
            "{:<24} {:>10.0} {:>14.1} {:>14.1} {:>11.0}% {:>10.2} {:>10.1}",
            format!("{} files", case.input.files),
            case.stored.objects as f64 / gib,
            case.stored.compressed_bytes as f64 / MIB / gib,
            case.gzip.bytes as f64 / MIB / gib,
            100.0 * case.stored.compressed_bytes as f64 / case.gzip.bytes as f64,
            case.run.cpu_s / gib,
            case.run.hwm_kib as f64 / 1024.0,
        );
    }
    let Some(busy) = busy else {
        return;
    };
    let verdict = |met: bool| if met { "MET" } else { "MISSED" };
    let rate = |case: &Case| case.input.bytes as f64 / MIB / case.run.cpu_s;
    let share = rate(busy) / rate(wide);
    let per_gib = busy.stored.objects as f64 / (busy.input.bytes as f64 / (1u64 << 30) as f64);
    let rss = busy.run.hwm_kib as f64 / 1024.0;
    println!(
        "1,000 busy files: {:.0} % of the 100-file MiB input / CPU-s; target >= {:.0} %: {}",
        100.0 * share,
        100.0 * TARGET_BUSY_SHARE,
        verdict(share >= TARGET_BUSY_SHARE)
    );
    println!(
        "1,000 busy files: {per_gib:.0} objects per GiB; target <= {TARGET_BUSY_OBJECTS_PER_GIB:.0}: {}",
        verdict(per_gib <= TARGET_BUSY_OBJECTS_PER_GIB)
    );
    println!(
        "1,000 busy files: peak RSS {rss:.1} MiB; target <= {TARGET_RSS_MIB:.0} MiB: {}",
        verdict(rss <= TARGET_RSS_MIB)
    );
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// `LOGRELAY_BENCH_BATCH_TIMEOUT`, else [`DEFAULT_BATCH_TIMEOUT`].
fn batch_timeout() -> String {
    std::env::var("LOGRELAY_BENCH_BATCH_TIMEOUT").unwrap_or_else(|_| DEFAULT_BATCH_TIMEOUT.into())
}

fn env_u64(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .with_context(|| format!("{name}={value:?} is not a number")),
        Err(_) => Ok(default),
    }
}
