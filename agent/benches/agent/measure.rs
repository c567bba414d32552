//! Measuring a running agent from outside: CPU time and peak RSS from `/proc/<pid>`, counters from
//! its `/metrics` endpoint (plain HTTP/1.0 over a TCP socket: no chunked body), CPU of finished children via
//! `getrusage(RUSAGE_CHILDREN)`.

use anyhow::{Context, bail};
use nix::sys::resource::{Usage, UsageWho, getrusage};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, fixed at 100 on Linux).
const USER_HZ: f64 = 100.0;

/// Timeout of one `/metrics` request.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// User + system CPU seconds of process `pid`, all threads (`/proc/<pid>/stat` fields 14 and 15).
pub fn process_cpu_s(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces; the fields after its closing ')' do not.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state), so field 14 (utime) is index 11, stime index 12.
    let utime: f64 = fields.get(11).context("utime")?.parse()?;
    let stime: f64 = fields.get(12).context("stime")?.parse()?;
    Ok((utime + stime) / USER_HZ)
}

/// Peak resident set of process `pid` in KiB (`VmHWM`).
pub fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmHWM value")?
        .parse()?)
}

/// CPU seconds (user + system) of all waited-for children so far.
pub fn children_cpu_s() -> anyhow::Result<f64> {
    let usage: Usage = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    Ok(seconds(&usage))
}

/// CPU seconds (user + system) of this process so far.
pub fn self_cpu_s() -> anyhow::Result<f64> {
    let usage: Usage = getrusage(UsageWho::RUSAGE_SELF)?;
    Ok(seconds(&usage))
}

fn seconds(usage: &Usage) -> f64 {
    let user = usage.user_time();
    let system = usage.system_time();
    (user.tv_sec() + system.tv_sec()) as f64 + (user.tv_usec() + system.tv_usec()) as f64 / 1e6
}

/// Fetches `/metrics` and returns the sum of every series of `name` (all label sets).
pub fn scrape(addr: SocketAddr, names: &[&str]) -> anyhow::Result<Vec<f64>> {
    let mut stream = TcpStream::connect_timeout(&addr, SCRAPE_TIMEOUT)?;
    stream.set_read_timeout(Some(SCRAPE_TIMEOUT))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    if !body.lines().next().is_some_and(|l| l.contains(" 200 ")) {
        bail!("/metrics answered {:?}", body.lines().next());
    }
    let mut sums = vec![0.0; names.len()];
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let metric = series.split('{').next().unwrap_or(series);
        if let Some(i) = names.iter().position(|n| *n == metric) {
            sums[i] += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    Ok(sums)
}
