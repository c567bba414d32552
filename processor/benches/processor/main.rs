//! The processor benchmark (its targets are in `BENCHMARKS.md`): `cargo bench --workspace --bench processor`.
//!
//! One run generates realistic gzip NDJSON objects (64 MiB decompressed, 4× and 15× that),
//! stores them in the AWS emulator (moto), puts the tenant's config in its DynamoDB, and delivers
//! each object through the full [`Processor`](logrelay_processor::process::Processor) to a fast
//! fake CloudWatch Logs endpoint that checks every PutLogEvents limit. Every measurement runs in a
//! child process of its own, so CPU time and peak RSS are that measurement's alone:
//!
//! - **baseline**: plain `flate2` gunzip + `serde_json` parse of the same object (the unavoidable work);
//! - **full core**: the object from moto S3, config from moto DynamoDB, role from moto STS,
//!   progress in moto DynamoDB, events to the fake endpoint;
//! - **core path**: the object served from memory and no progress table, so neither moto's
//!   GetObject nor its per-batch DynamoDB write is in the way (config and role still via moto);
//! - **moto GetObject alone**: how long the emulator takes to hand the object over;
//! - **control**: copies of the smallest object making the largest one's bytes, delivered by one
//!   process, so RSS that grows with run length is told apart from RSS that grows with object size;
//! - **Lambda init**: the real `logrelay-processor` binary from spawn to its first `/next`.
//!
//! Without `--bench` (e.g. `cargo test --workspace --bench processor`) it runs as a quick smoke
//! test on tiny objects, with every check but no verdicts.
//! Settings: `BENCH_SIZES_MIB` (`64,256,960`; 960 stays under the processor's 1 GiB decompressed
//! cap), `BENCH_RUNS` (3, medians are reported), `BENCH_INIT_RUNS` (21); for profiles
//! `BENCH_PROFILE_DIR` and `BENCH_PROFILER` (`perf` or `heaptrack`). Results, the command and how
//! the profiles were taken are recorded in `BENCHMARKS.md`.

mod child;
mod data;
mod fake_s3;
mod lambda_init;
mod report;

use anyhow::{Context, bail, ensure};
use axum::body::Bytes;
use child::{BaselineMeasured, Measured};
use data::Generated;
use fake_s3::FakeS3;
use lambda_init::Subject;
use logrelay_common::key::{ObjectKey, Partition};
use logrelay_common::tenant::DeliveryConfig;
use logrelay_processor::tenant::DynamoItem;
use logrelay_testkit::fake_logs::FakeLogs;
use logrelay_testkit::{
    DEFAULT_ACCOUNT_ID, Moto, create_bucket, create_progress_table, create_tenant_table,
    put_object, unique_name,
};
use report::{ObjectResult, medians};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Directory for profiles of the core's runs (unset: no profiling).
const PROFILE_DIR_ENV: &str = "BENCH_PROFILE_DIR";
/// `perf` (default: CPU profile) or `heaptrack` (heap profile) for [`PROFILE_DIR_ENV`].
const PROFILER_ENV: &str = "BENCH_PROFILER";
/// The tenant whose objects are delivered.
const TENANT: &str = "bench-tenant";
/// The tenant's CloudWatch Logs group.
const LOG_GROUP: &str = "/logrelay/bench/checkout";
/// The tenant's delivery role (moto does not enforce IAM here, so it need not exist).
const DELIVERY_ROLE: &str = "arn:aws:iam::111111111111:role/logrelay-bench-delivery";

/// What to run.
struct Options {
    sizes_mib: Vec<u64>,
    runs: usize,
    init_runs: usize,
}

impl Options {
    /// `--bench` (as `cargo bench` passes it): the real sizes; otherwise a quick smoke run.
    fn from_env(bench: bool) -> anyhow::Result<Self> {
        let number = |name: &str, bench_default: u64, smoke_default: u64| -> anyhow::Result<u64> {
            match std::env::var(name) {
                Ok(text) => text
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(|| format!("{name}={text:?} is not a positive number")),
                Err(_) => Ok(if bench { bench_default } else { smoke_default }),
            }
        };
        Ok(Self {
            sizes_mib: match std::env::var("BENCH_SIZES_MIB") {
                Ok(text) => text
                    .split(',')
                    .map(|size| size.trim().parse::<u64>().ok().filter(|n| *n > 0))
                    .collect::<Option<Vec<u64>>>()
                    .filter(|sizes| !sizes.is_empty())
                    .with_context(|| {
                        format!("BENCH_SIZES_MIB={text:?} is not a list like 64,256")
                    })?,
                Err(_) if bench => vec![64, 256, 960],
                Err(_) => vec![1, 2],
            },
            runs: usize::try_from(number("BENCH_RUNS", 3, 1)?)?,
            init_runs: usize::try_from(number("BENCH_INIT_RUNS", 21, 1)?)?,
        })
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == "--child") {
        let role = args.get(at + 1).map_or("", String::as_str);
        return match child::run(role) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("bench child {role}: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    let bench = args.iter().any(|arg| arg == "--bench");
    let result = Options::from_env(bench).and_then(|options| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("tokio runtime")?
            .block_on(run(options, bench))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("processor bench failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options, bench: bool) -> anyhow::Result<()> {
    let notes = report::machine_notes();
    eprintln!("{notes}");

    let moto = Moto::start_private().await;
    let aws = moto.config(DEFAULT_ACCOUNT_ID).await;
    let central = Central::create(&moto, &aws).await?;
    // Lambda init before the objects are generated, while this process is still small; the
    // processor probes its tenant table at start, so it needs the emulator.
    let processor_bin = Path::new(env!("CARGO_BIN_EXE_logrelay-processor"));
    eprintln!(
        "lambda init: {} runs of {}",
        options.init_runs,
        processor_bin.display()
    );
    let subject = Subject::Processor {
        path: processor_bin,
        endpoint_url: moto.url(),
        tenant_table: &central.tenant_table,
    };
    let init = lambda_init::measure(subject, options.init_runs).await?;
    let floor = lambda_init::measure(Subject::Floor, options.init_runs).await?;

    let partition = Partition::new(
        TENANT,
        "bench-cluster",
        "checkout",
        "checkout-7d9f8b6c5d-x2x9k",
    );
    let mut generated = Vec::new();
    for (seed, &mib) in (1u64..).zip(&options.sizes_mib) {
        let started = Instant::now();
        let object = data::generate(&partition, mib << 20, seed)?;
        eprintln!(
            "generated {mib} MiB: {} bytes of NDJSON, {} records, {:.1} MiB gzip, in {:.1} s",
            object.uncompressed_bytes,
            object.records,
            object.gz.len() as f64 / f64::from(1 << 20),
            started.elapsed().as_secs_f64()
        );
        generated.push((mib, object));
    }

    // Control for the RSS figures: the smallest object stored again under as many keys as it takes
    // to make the largest object's bytes, all delivered by one process, so a peak that grows with
    // the run's length is told apart from one that grows with the object's size.
    let control_copies = match (generated.first(), generated.last()) {
        (Some((first, _)), Some((last, _))) if generated.len() > 1 => (last / first).max(1),
        _ => 0,
    };
    let files = tempfile::tempdir().context("temp dir")?;
    let mut stored = Vec::new();
    for (n, (mib, object)) in generated.iter().enumerate() {
        let key_for = |id: String| -> anyhow::Result<String> {
            Ok(ObjectKey::new(partition.clone(), chrono::Utc::now(), id)?.to_key())
        };
        let key = key_for(format!("bench{n}"))?;
        put_object(&aws, &central.bucket, &key, object.gz.clone()).await?;
        let mut control_keys = Vec::new();
        if n == 0 {
            for copy in 0..control_copies {
                let key = key_for(format!("bench{n}-copy{copy}"))?;
                put_object(&aws, &central.bucket, &key, object.gz.clone()).await?;
                control_keys.push(key);
            }
        }
        let file = files.path().join(format!("object{n}.json.gz"));
        std::fs::write(&file, &object.gz).context("write object file")?;
        stored.push(Stored {
            mib: *mib,
            key,
            control_keys,
            file,
            object,
        });
    }
    let logs = FakeLogs::start().await.context("fake CloudWatch Logs")?;
    let s3 = FakeS3::start(
        stored
            .iter()
            .flat_map(|s| {
                let body = Bytes::from(s.object.gz.clone());
                let bucket = &central.bucket;
                std::iter::once(&s.key)
                    .chain(&s.control_keys)
                    .map(move |key| (bucket.clone(), key.clone(), body.clone()))
            })
            .collect(),
    )
    .await
    .context("in-memory S3")?;

    let bench_run = BenchRun {
        central: &central,
        logs: &logs,
        s3: &s3,
        aws: &aws,
        runs: options.runs,
    };
    let mut results = Vec::new();
    for stored in &stored {
        results.push(bench_run.object(stored).await?);
    }
    let control = match stored.first() {
        Some(first) if !first.control_keys.is_empty() => Some(bench_run.control(first).await?),
        _ => None,
    };
    let violations = logs.stats().violations;
    ensure!(
        violations.total() == 0,
        "the fake CloudWatch Logs endpoint saw limit violations: {violations:?}"
    );

    let rendered = report::render(&results, control.as_ref(), &init, &floor, bench);
    println!("\n## Processor benchmark result\n\n{notes}\n\n{rendered}");
    println!(
        "PutLogEvents requests: {} accepted, 0 limit violations (≤ 10,000 events, ≤ 1,048,576 bytes, sorted, ≤ 24 h).",
        logs.stats().put_requests
    );
    if !bench {
        println!(
            "(smoke run: sizes are tiny, figures mean nothing; run `cargo bench` for real ones)"
        );
    }
    Ok(())
}

/// The central account's resources in the emulator.
struct Central {
    moto_url: String,
    bucket: String,
    tenant_table: String,
}

impl Central {
    async fn create(moto: &Moto, aws: &aws_config::SdkConfig) -> anyhow::Result<Self> {
        let bucket = unique_name("bench-central");
        let tenant_table = unique_name("bench-tenants");
        create_bucket(aws, &bucket).await?;
        create_tenant_table(aws, &tenant_table).await?;
        let config: DeliveryConfig = serde_json::from_value(serde_json::json!({
            "tenant_id": TENANT,
            "type": "cloudwatch",
            "log_distribution_role_arn": DELIVERY_ROLE,
            "external_id": "bench-external-id-0001",
            "log_group_name": LOG_GROUP,
            "target_region": "us-east-1",
        }))?;
        aws_sdk_dynamodb::Client::new(aws)
            .put_item()
            .table_name(&tenant_table)
            .set_item(Some(config.to_item()?))
            .send()
            .await
            .context("put tenant config")?;
        Ok(Self {
            moto_url: moto.url().to_owned(),
            bucket,
            tenant_table,
        })
    }
}

/// Which delivery of an object is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// Everything through moto: GetObject, config, AssumeRole, a progress write per batch.
    Full,
    /// The data path alone: the object from memory, no progress table (config and AssumeRole
    /// still through moto, once per object).
    Core,
}

/// One object as stored for the run.
struct Stored<'a> {
    mib: u64,
    key: String,
    /// Copies of the object under other keys, for the run-length control (smallest object only).
    control_keys: Vec<String>,
    file: PathBuf,
    object: &'a Generated,
}

/// What every measurement of the run shares.
struct BenchRun<'a> {
    central: &'a Central,
    logs: &'a FakeLogs,
    s3: &'a FakeS3,
    aws: &'a aws_config::SdkConfig,
    runs: usize,
}

impl BenchRun<'_> {
    /// Every measurement of one object, `runs` times each; medians.
    async fn object(&self, stored: &Stored<'_>) -> anyhow::Result<ObjectResult> {
        let mut baseline = Vec::new();
        let mut s3_get = Vec::new();
        let mut full = Vec::new();
        let mut core = Vec::new();
        for run in 0..self.runs {
            eprintln!("{} MiB object, run {}/{}", stored.mib, run + 1, self.runs);
            let file = stored.file.display().to_string();
            baseline.push(
                child_result::<BaselineMeasured>("baseline", &[(child::env::GZ_FILE, file)], None)
                    .await?,
            );
            s3_get.push(
                child_result::<Measured>("s3-get", &self.object_env(&stored.key), None).await?,
            );
            full.push(self.process(stored, Variant::Full).await?);
            core.push(self.process(stored, Variant::Core).await?);
        }
        let baseline_median = BaselineMeasured {
            gunzip: medians(&baseline.iter().map(|b| b.gunzip).collect::<Vec<_>>()),
            parse_minimal: medians(&baseline.iter().map(|b| b.parse_minimal).collect::<Vec<_>>()),
            parse_value: medians(&baseline.iter().map(|b| b.parse_value).collect::<Vec<_>>()),
        };
        Ok(ObjectResult {
            nominal_mib: stored.mib,
            gz_bytes: stored.object.gz.len() as u64,
            records: stored.object.records,
            baseline: baseline_median,
            s3_get: medians(&s3_get),
            full: medians(&full),
            core: medians(&core),
            full_max_hwm_kib: full.iter().map(|m| m.hwm_kib).max().unwrap_or_default(),
            core_max_hwm_kib: core.iter().map(|m| m.hwm_kib).max().unwrap_or_default(),
        })
    }

    /// Both variants delivering the control copies of the `first` object in one process each.
    async fn control(&self, first: &Stored<'_>) -> anyhow::Result<report::Control> {
        let mut full = Vec::new();
        let mut core = Vec::new();
        for run in 0..self.runs {
            eprintln!(
                "control: {} × {} MiB objects in one process, run {}/{}",
                first.control_keys.len(),
                first.mib,
                run + 1,
                self.runs
            );
            full.push(
                self.process_keys(first, Variant::Full, &first.control_keys)
                    .await?,
            );
            core.push(
                self.process_keys(first, Variant::Core, &first.control_keys)
                    .await?,
            );
        }
        Ok(report::Control {
            object_mib: first.mib,
            objects: first.control_keys.len(),
            full: medians(&full),
            core: medians(&core),
            full_max_hwm_kib: full.iter().map(|m| m.hwm_kib).max().unwrap_or_default(),
            core_max_hwm_kib: core.iter().map(|m| m.hwm_kib).max().unwrap_or_default(),
        })
    }

    fn object_env(&self, keys: &str) -> Vec<(&'static str, String)> {
        vec![
            (child::env::MOTO_URL, self.central.moto_url.clone()),
            (child::env::BUCKET, self.central.bucket.clone()),
            (child::env::KEY, keys.to_owned()),
        ]
    }

    /// One delivery of the object by the core in a child; checks that every record arrived.
    /// `Variant::Full` reads the object from moto and writes progress to moto's DynamoDB after
    /// every batch; `Variant::Core` reads it from memory and keeps no progress table.
    async fn process(&self, stored: &Stored<'_>, variant: Variant) -> anyhow::Result<Measured> {
        self.process_keys(stored, variant, std::slice::from_ref(&stored.key))
            .await
    }

    /// [`Self::process`] for copies of the object under `keys`, one after the other in one child.
    async fn process_keys(
        &self,
        stored: &Stored<'_>,
        variant: Variant,
        keys: &[String],
    ) -> anyhow::Result<Measured> {
        let expected = stored.object.records * keys.len() as u64;
        let mut env = self.object_env(&keys.join(","));
        env.extend([
            (child::env::TENANT_TABLE, self.central.tenant_table.clone()),
            (child::env::LOGS_URL, self.logs.url()),
            ("AWS_ENDPOINT_URL", self.central.moto_url.clone()),
        ]);
        match variant {
            Variant::Full => {
                let progress_table = unique_name("bench-progress");
                create_progress_table(self.aws, &progress_table).await?;
                env.push((child::env::PROGRESS_TABLE, progress_table));
            }
            Variant::Core => env.push(("AWS_ENDPOINT_URL_S3", self.s3.url().to_owned())),
        }
        let (events_before, gets_before) = (self.logs.stats().events, self.s3.gets());
        let profile_name = format!("{variant:?}-{}MiB-{}", stored.mib, unique_name("run"));
        let measured = child_result::<Measured>("process", &env, Some(profile_name)).await?;
        let received = self.logs.stats().events - events_before;
        ensure!(
            measured.events == expected && received == expected,
            "{expected} records, {} reported delivered, {received} received by the endpoint",
            measured.events
        );
        ensure!(
            variant == Variant::Full || self.s3.gets() > gets_before,
            "the child did not read the object from the in-memory S3 (AWS_ENDPOINT_URL_S3 ignored?)"
        );
        Ok(measured)
    }
}

/// Runs this binary as `--child <role>` with `env` and parses its result line. With
/// `BENCH_PROFILE_DIR` set, a child given a `profile_name` runs under `perf record` (or
/// `heaptrack` with `BENCH_PROFILER=heaptrack`), writing `<dir>/<profile_name>.*`; its figures
/// then include the profiler's overhead.
async fn child_result<T: serde::de::DeserializeOwned>(
    role: &str,
    env: &[(&str, String)],
    profile_name: Option<String>,
) -> anyhow::Result<T> {
    let exe = std::env::current_exe().context("own path")?;
    let mut command = match (profile_name, std::env::var(PROFILE_DIR_ENV)) {
        (Some(name), Ok(dir)) if std::env::var(PROFILER_ENV).as_deref() == Ok("heaptrack") => {
            let mut heaptrack = tokio::process::Command::new("heaptrack");
            heaptrack
                .arg("-o")
                .arg(Path::new(&dir).join(format!("{name}.heaptrack")))
                .arg(exe);
            heaptrack
        }
        (Some(name), Ok(dir)) => {
            let mut perf = tokio::process::Command::new("perf");
            perf.args([
                "record",
                "-q",
                "-F",
                "999",
                "--call-graph",
                "dwarf,16384",
                "-o",
            ])
            .arg(Path::new(&dir).join(format!("{name}.perf.data")))
            .arg("--")
            .arg(exe);
            perf
        }
        _ => tokio::process::Command::new(exe),
    };
    let output = command
        .args(["--child", role])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .with_context(|| format!("run child {role}"))?;
    if !output.status.success() {
        bail!("child {role} failed: {}", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix(child::RESULT_PREFIX))
        .with_context(|| format!("child {role} printed no result"))?;
    serde_json::from_str(line).with_context(|| format!("child {role} result {line:?}"))
}
