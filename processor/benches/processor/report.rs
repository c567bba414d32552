//! Turning measurements into the report: medians, the machine notes, the Markdown tables that go
//! into `BENCHMARKS.md`, and the verdict on each target of issue 4.

use crate::child::{BaselineMeasured, Measured};
use crate::lambda_init::InitSample;
use std::fmt::Write as _;
use std::time::Duration;

/// Events per CPU-second the core must reach (issue 4: "≥ 200k events/s per core").
pub const TARGET_EVENTS_PER_CPU_SECOND: f64 = 200_000.0;
/// Largest growth of peak RSS from the 1× to the larger object that still counts as flat.
pub const FLAT_RSS_TOLERANCE: f64 = 0.10;
/// Lambda init target (issue 4: "init ≤ 50 ms").
pub const TARGET_INIT: Duration = Duration::from_millis(50);

/// The median of `values` by `key` (the upper one of an even count); `None` when empty.
pub fn median_by<T: Copy>(values: &[T], key: impl Fn(&T) -> f64) -> Option<T> {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| key(a).total_cmp(&key(b)));
    sorted.get(sorted.len() / 2).copied()
}

/// Everything measured for one object size.
pub struct ObjectResult {
    /// Uncompressed size in MiB (the nominal one asked for).
    pub nominal_mib: u64,
    /// Decompressed bytes.
    pub uncompressed_bytes: u64,
    /// Compressed bytes.
    pub gz_bytes: u64,
    /// Records in the object.
    pub records: u64,
    /// Median baseline passes.
    pub baseline: BaselineMeasured,
    /// Median bare GetObject from the emulator (`events` = bytes).
    pub s3_get: Measured,
    /// Median full core, object from the emulator.
    pub full: Measured,
    /// Median core, object from memory.
    pub core: Measured,
}

/// Events per CPU-second of a measurement.
pub fn per_cpu_second(measured: &Measured) -> f64 {
    measured.events as f64 / measured.cpu_s.max(1e-9)
}

/// Events per wall second of a measurement.
pub fn per_wall_second(measured: &Measured) -> f64 {
    measured.events as f64 / measured.wall_s.max(1e-9)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn thousands(value: f64) -> String {
    format!("{:.0}k", value / 1000.0)
}

/// The machine notes: CPU, cores, load, kernel, toolchain, build profile.
pub fn machine_notes() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let memory = crate::child::status_kib("/proc/meminfo", "MemTotal");
    let rustc = std::process::Command::new("rustc")
        .arg("-V")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default();
    let profile = if cfg!(debug_assertions) {
        "debug (numbers not meaningful)"
    } else {
        "release (bench profile)"
    };
    format!(
        "- CPU: {model}, {cores} cores available, {:.1} GiB RAM; load average at start {}\n\
         - kernel {}, {rustc}, build: {profile}",
        kib_to_mib(memory) / 1024.0,
        load.join(" "),
        kernel.trim()
    )
}

/// The Markdown report of a run, verdicts included.
/// Without `judge` (smoke runs on tiny objects in a debug build) the targets are not judged.
pub fn render(
    objects: &[ObjectResult],
    init: &[InitSample],
    floor: &[InitSample],
    judge: bool,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Throughput (medians; CPU = user + system of the child process doing the work):\n"
    );
    let _ = writeln!(
        out,
        "| object | records | gzip | baseline: gunzip + parse | full core (moto S3) | core (S3 from memory) | full ÷ baseline CPU | full core wall | moto GetObject alone |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for object in objects {
        let baseline = &object.baseline.parse_minimal;
        let _ = writeln!(
            out,
            "| {} MiB NDJSON ({:.1} MiB) | {} | {:.1} MiB | {} ev/CPU-s ({:.2} s) | **{} ev/CPU-s** ({:.2} s) | {} ev/CPU-s ({:.2} s) | {:.2}× | {:.2} s = {} ev/s | {:.2} s wall, {:.2} CPU-s |",
            object.nominal_mib,
            mib(object.uncompressed_bytes),
            object.records,
            mib(object.gz_bytes),
            thousands(per_cpu_second(baseline)),
            baseline.cpu_s,
            thousands(per_cpu_second(&object.full)),
            object.full.cpu_s,
            thousands(per_cpu_second(&object.core)),
            object.core.cpu_s,
            object.full.cpu_s / baseline.cpu_s.max(1e-9),
            object.full.wall_s,
            thousands(per_wall_second(&object.full)),
            object.s3_get.wall_s,
            object.s3_get.cpu_s,
        );
    }
    let _ = writeln!(
        out,
        "\nBaseline detail (same objects, from memory, one child process):\n"
    );
    let _ = writeln!(
        out,
        "| object | gunzip only | gunzip + typed parse (message, timestamp) | gunzip + `serde_json::Value` |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    for object in objects {
        let b = &object.baseline;
        let _ = writeln!(
            out,
            "| {} MiB | {:.2} CPU-s | {:.2} CPU-s ({} ev/CPU-s) | {:.2} CPU-s ({} ev/CPU-s) |",
            object.nominal_mib,
            b.gunzip.cpu_s,
            b.parse_minimal.cpu_s,
            thousands(per_cpu_second(&b.parse_minimal)),
            b.parse_value.cpu_s,
            thousands(per_cpu_second(&b.parse_value)),
        );
    }
    let _ = writeln!(
        out,
        "\nPeak RSS (`VmHWM`, each object in its own process):\n"
    );
    let _ = writeln!(
        out,
        "| object | RSS before processing | peak, full core (moto S3) | peak, core (S3 from memory) | peak, baseline (object in memory) |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
    for object in objects {
        let _ = writeln!(
            out,
            "| {} MiB | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} MiB |",
            object.nominal_mib,
            kib_to_mib(object.full.rss_start_kib),
            kib_to_mib(object.full.hwm_kib),
            kib_to_mib(object.core.hwm_kib),
            kib_to_mib(object.baseline.parse_value.hwm_kib),
        );
    }
    let init_median = median_by(init, |s| s.init.as_secs_f64());
    let floor_median = median_by(floor, |s| s.init.as_secs_f64());
    let spread = |samples: &[InitSample]| {
        let min = samples.iter().map(|s| s.init).min().unwrap_or_default();
        let max = samples.iter().map(|s| s.init).max().unwrap_or_default();
        format!("min {:.1} ms, max {:.1} ms", ms(min), ms(max))
    };
    let _ = writeln!(
        out,
        "\nLambda init (spawn → first `/next`, {} runs each):\n",
        init.len()
    );
    let _ = writeln!(out, "| binary | median | spread | RSS at first `/next` |");
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    if let (Some(init_median), Some(floor_median)) = (init_median, floor_median) {
        let _ = writeln!(
            out,
            "| `logrelay-processor` (Lambda mode) | **{:.1} ms** | {} | {:.1} MiB |",
            ms(init_median.init),
            spread(init),
            kib_to_mib(init_median.rss_kib)
        );
        let _ = writeln!(
            out,
            "| floor: bench binary asking `/next` at once | {:.1} ms | {} | {:.1} MiB |",
            ms(floor_median.init),
            spread(floor),
            kib_to_mib(floor_median.rss_kib)
        );
    }
    if judge {
        let _ = writeln!(out, "\nTargets:\n");
        let _ = writeln!(out, "{}", verdicts(objects, init_median));
    }
    out
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// One line per target: met or not, with the figure it rests on.
fn verdicts(objects: &[ObjectResult], init: Option<InitSample>) -> String {
    let met = |ok: bool| if ok { "**met**" } else { "**NOT met**" };
    let mut out = String::new();
    let slowest = objects
        .iter()
        .map(|o| per_cpu_second(&o.full))
        .fold(f64::INFINITY, f64::min);
    let _ = writeln!(
        out,
        "- ≥ 200k events/s per core: {} — slowest full-core figure {} events per CPU-second.",
        met(slowest >= TARGET_EVENTS_PER_CPU_SECOND),
        thousands(slowest)
    );
    if let (Some(first), Some(last)) = (objects.first(), objects.last()) {
        let growth = last.full.hwm_kib as f64 / first.full.hwm_kib.max(1) as f64 - 1.0;
        let _ = writeln!(
            out,
            "- RSS flat in object size: {} — peak {:.1} MiB for {} MiB vs {:.1} MiB for {} MiB ({:+.1} %, tolerance {:.0} %).",
            met(growth <= FLAT_RSS_TOLERANCE),
            kib_to_mib(first.full.hwm_kib),
            first.nominal_mib,
            kib_to_mib(last.full.hwm_kib),
            last.nominal_mib,
            growth * 100.0,
            FLAT_RSS_TOLERANCE * 100.0
        );
    }
    if let Some(init) = init {
        let _ = writeln!(
            out,
            "- Lambda init ≤ 50 ms: {} — median {:.1} ms.",
            met(init.init <= TARGET_INIT),
            ms(init.init)
        );
    }
    out
}
