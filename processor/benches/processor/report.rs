//! Turning measurements into the report: medians, the machine notes, the Markdown tables that go
//! into `BENCHMARKS.md`, and the verdict on each target of the processor (`BENCHMARKS.md`).

use crate::child::{BaselineMeasured, Measured};
use crate::lambda_init::InitSample;
use std::fmt::Write as _;
use std::time::Duration;

/// Events per CPU-second the core must reach (the target: at least 200k events/s per core).
pub const TARGET_EVENTS_PER_CPU_SECOND: f64 = 200_000.0;
/// How far, MiB, the largest object's median peak RSS may lie above the control's — the same
/// bytes as copies of the smallest object delivered by one process, so the same run length — and
/// still count as flat in object size (checked for both variants). A peak is the maximum over the
/// run of the bounded queues' fill (up to 8 sealed batches of ≤ 1 MiB waiting, 4 in flight with
/// copies) and of the allocator's fragmentation, so it creeps up with run length whatever the
/// object size; 8 MiB is about two in-flight batches.
pub const FLAT_RSS_ALLOWANCE_MIB: f64 = 8.0;
/// Lambda init target (the target: init at most 50 ms).
pub const TARGET_INIT: Duration = Duration::from_millis(50);

/// The median of `values` by `key` (the upper one of an even count); `None` when empty.
pub fn median_by<T: Copy>(values: &[T], key: impl Fn(&T) -> f64) -> Option<T> {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| key(a).total_cmp(&key(b)));
    sorted.get(sorted.len() / 2).copied()
}

/// Each field's median over several runs of one measurement (taken field by field).
pub fn medians(runs: &[Measured]) -> Measured {
    let median = |key: fn(&Measured) -> f64| median_by(runs, key).unwrap_or_default();
    Measured {
        events: median(|m| m.events as f64).events,
        cpu_s: median(|m| m.cpu_s).cpu_s,
        wall_s: median(|m| m.wall_s).wall_s,
        rss_start_kib: median(|m| m.rss_start_kib as f64).rss_start_kib,
        hwm_kib: median(|m| m.hwm_kib as f64).hwm_kib,
    }
}

/// The run-length control: copies of the smallest object, all delivered by one process.
pub struct Control {
    /// Size of each object, MiB.
    pub object_mib: u64,
    /// Objects delivered per process.
    pub objects: usize,
    /// Medians of the full core's runs.
    pub full: Measured,
    /// Medians of the core path's runs.
    pub core: Measured,
    /// Highest peak RSS of the full-core runs, KiB.
    pub full_max_hwm_kib: u64,
    /// Highest peak RSS of the core-path runs, KiB.
    pub core_max_hwm_kib: u64,
}

/// Everything measured for one object size.
pub struct ObjectResult {
    /// Uncompressed size in MiB (the nominal one asked for).
    pub nominal_mib: u64,
    /// Compressed bytes.
    pub gz_bytes: u64,
    /// Records in the object.
    pub records: u64,
    /// Median baseline passes.
    pub baseline: BaselineMeasured,
    /// Median bare GetObject from the emulator (`events` = bytes).
    pub s3_get: Measured,
    /// Median full core (everything through moto).
    pub full: Measured,
    /// Median core path (object from memory, no progress table).
    pub core: Measured,
    /// Highest peak RSS of the full-core runs, KiB.
    pub full_max_hwm_kib: u64,
    /// Highest peak RSS of the core-path runs, KiB.
    pub core_max_hwm_kib: u64,
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

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
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

/// The Markdown report of a run. Without `judge` (smoke runs on tiny objects in a debug build)
/// the targets are not judged.
pub fn render(
    objects: &[ObjectResult],
    control: Option<&Control>,
    init: &[InitSample],
    floor: &[InitSample],
    judge: bool,
) -> String {
    let mut out = String::new();
    throughput_table(&mut out, objects);
    wall_table(&mut out, objects);
    baseline_table(&mut out, objects);
    rss_table(&mut out, objects, control);
    let init_median = init_table(&mut out, init, floor);
    if judge {
        let _ = writeln!(out, "\nTargets:\n");
        verdicts(&mut out, objects, control, init_median);
    }
    out
}

fn throughput_table(out: &mut String, objects: &[ObjectResult]) {
    let _ = writeln!(
        out,
        "Throughput per CPU-second (medians; CPU = user + system time of the child process \
         doing the work, all threads):\n\n\
         | object | records | gzip | baseline: gunzip + parse | full core | core path | full core ÷ baseline CPU |\n\
         | --- | --- | --- | --- | --- | --- | --- |"
    );
    for object in objects {
        let baseline = &object.baseline.parse_minimal;
        let _ = writeln!(
            out,
            "| {} MiB NDJSON | {} | {:.1} MiB | {} ev/CPU-s ({:.2} s) | **{} ev/CPU-s** ({:.2} s) | {} ev/CPU-s ({:.2} s) | {:.2}× |",
            object.nominal_mib,
            object.records,
            mib(object.gz_bytes),
            thousands(per_cpu_second(baseline)),
            baseline.cpu_s,
            thousands(per_cpu_second(&object.full)),
            object.full.cpu_s,
            thousands(per_cpu_second(&object.core)),
            object.core.cpu_s,
            object.full.cpu_s / baseline.cpu_s.max(1e-9),
        );
    }
}

fn wall_table(out: &mut String, objects: &[ObjectResult]) {
    let _ = writeln!(
        out,
        "\nWall clock (same runs; 2 cores shared with moto, the fakes and other work):\n\n\
         | object | full core | core path | moto GetObject alone |\n\
         | --- | --- | --- | --- |"
    );
    for object in objects {
        let _ = writeln!(
            out,
            "| {} MiB | {:.2} s = {} ev/s | {:.2} s = {} ev/s | {:.2} s ({:.2} CPU-s in the client) |",
            object.nominal_mib,
            object.full.wall_s,
            thousands(per_wall_second(&object.full)),
            object.core.wall_s,
            thousands(per_wall_second(&object.core)),
            object.s3_get.wall_s,
            object.s3_get.cpu_s,
        );
    }
}

fn baseline_table(out: &mut String, objects: &[ObjectResult]) {
    let _ = writeln!(
        out,
        "\nBaseline detail (same objects, from memory):\n\n\
         | object | gunzip only | gunzip + typed parse (message, timestamp) | gunzip + `serde_json::Value` |\n\
         | --- | --- | --- | --- |"
    );
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
}

fn rss_table(out: &mut String, objects: &[ObjectResult], control: Option<&Control>) {
    let _ = writeln!(
        out,
        "\nPeak RSS (`VmHWM` of a child process that handles one object; median and highest of the runs):\n\n\
         | object | RSS before processing | full core | core path | baseline (holds the gzip object in memory) |\n\
         | --- | --- | --- | --- | --- |"
    );
    for object in objects {
        let _ = writeln!(
            out,
            "| {} MiB | {:.1} MiB | {:.1} MiB (max {:.1}) | {:.1} MiB (max {:.1}) | {:.1} MiB |",
            object.nominal_mib,
            kib_to_mib(object.full.rss_start_kib),
            kib_to_mib(object.full.hwm_kib),
            kib_to_mib(object.full_max_hwm_kib),
            kib_to_mib(object.core.hwm_kib),
            kib_to_mib(object.core_max_hwm_kib),
            kib_to_mib(object.baseline.parse_value.hwm_kib),
        );
    }
    if let Some(control) = control {
        let _ = writeln!(
            out,
            "| control: {} × {} MiB objects in one process | {:.1} MiB | {:.1} MiB (max {:.1}) | {:.1} MiB (max {:.1}) | — |",
            control.objects,
            control.object_mib,
            kib_to_mib(control.core.rss_start_kib),
            kib_to_mib(control.full.hwm_kib),
            kib_to_mib(control.full_max_hwm_kib),
            kib_to_mib(control.core.hwm_kib),
            kib_to_mib(control.core_max_hwm_kib),
        );
    }
}

/// Writes the init table; returns the processor's median start.
fn init_table(out: &mut String, init: &[InitSample], floor: &[InitSample]) -> Option<InitSample> {
    let _ = writeln!(
        out,
        "\nLambda init (spawn → first `/next`, {} runs each):\n\n\
         | binary | median | spread | RSS at first `/next` |\n\
         | --- | --- | --- | --- |",
        init.len()
    );
    let row = |out: &mut String, name: &str, samples: &[InitSample]| {
        let median = median_by(samples, |s| s.init.as_secs_f64())?;
        let min = samples.iter().map(|s| s.init).min().unwrap_or_default();
        let max = samples.iter().map(|s| s.init).max().unwrap_or_default();
        let _ = writeln!(
            out,
            "| {name} | **{:.1} ms** | min {:.1} ms, max {:.1} ms | {:.1} MiB |",
            ms(median.init),
            ms(min),
            ms(max),
            kib_to_mib(median.rss_kib)
        );
        Some(median)
    };
    let median = row(out, "`logrelay-processor` (Lambda mode)", init);
    row(
        out,
        "floor: this bench binary asking `/next` at once",
        floor,
    );
    median
}

/// One line per target: met or not, with the figures it rests on.
fn verdicts(
    out: &mut String,
    objects: &[ObjectResult],
    control: Option<&Control>,
    init: Option<InitSample>,
) {
    let met = |ok: bool| if ok { "**met**" } else { "**NOT met**" };
    let slowest = objects
        .iter()
        .map(|o| per_cpu_second(&o.full))
        .fold(f64::INFINITY, f64::min);
    let _ = writeln!(
        out,
        "- ≥ 200k events/s per core: {} — slowest full-core median {} events per CPU-second.",
        met(slowest >= TARGET_EVENTS_PER_CPU_SECOND),
        thousands(slowest)
    );
    if let (Some(first), Some(last), Some(control)) = (objects.first(), objects.last(), control) {
        let above = |object: &Measured, control: &Measured| {
            kib_to_mib(object.hwm_kib) - kib_to_mib(control.hwm_kib)
        };
        let (full, core) = (
            above(&last.full, &control.full),
            above(&last.core, &control.core),
        );
        let flat = full.max(core) <= FLAT_RSS_ALLOWANCE_MIB;
        let _ = writeln!(
            out,
            "- RSS flat in object size: {} — the {} MiB object peaks at {:.1} MiB (full core) and \
             {:.1} MiB (core path); the same bytes as {} × {} MiB objects in one process peak at \
             {:.1} and {:.1} MiB ({:+.1} / {:+.1} MiB; allowed ≤ +{:.0} MiB). Raw growth from the \
             {} MiB object: full core {:.1} → {:.1} MiB, core path {:.1} → {:.1} MiB{}.",
            met(flat),
            last.nominal_mib,
            kib_to_mib(last.full.hwm_kib),
            kib_to_mib(last.core.hwm_kib),
            control.objects,
            control.object_mib,
            kib_to_mib(control.full.hwm_kib),
            kib_to_mib(control.core.hwm_kib),
            full,
            core,
            FLAT_RSS_ALLOWANCE_MIB,
            first.nominal_mib,
            kib_to_mib(first.full.hwm_kib),
            kib_to_mib(last.full.hwm_kib),
            kib_to_mib(first.core.hwm_kib),
            kib_to_mib(last.core.hwm_kib),
            if flat {
                ", which the control shows comes with the run's length, not the object's size"
            } else {
                ""
            },
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
}
