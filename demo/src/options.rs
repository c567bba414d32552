//! What one demo run does: the flags of `logrelay-demo run` (and the extra ones of
//! `logrelay-demo chaos`) and the tenants planned from them (which account each tenant lives in,
//! where its logs go, which applications it wants).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use logrelay_common::units::parse_duration;

use crate::chaos::schedule::Schedule;
use crate::chaos::{
    ChaosPlan, DEFAULT_CHAOS_DRAIN_TIMEOUT, DEFAULT_CHAOS_DURATION, DEFAULT_FAULT_RATE,
    DEFAULT_KILLS, FaultClass,
};

/// Default `--duration`: one minute of log generation (enough to see every stage deliver).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(60);

/// Default `--tenants`: tenant A (CloudWatch) and tenant B (CloudWatch + S3 copy, filtered).
pub const DEFAULT_TENANTS: &str = "acme,globex";

/// Default `--rate`: lines per second over all containers of the fake node.
pub const DEFAULT_RATE: u32 = 200;

/// Default `--drain-timeout`: how long the pipeline gets to empty after generation stops.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(90);

/// Most tenants a run supports: each needs its own customer account id (`111111111111` … `999999999999`).
pub const MAX_TENANTS: usize = 8;

/// Applications the filtered tenants (B, D, …) want: two of the generator's three per namespace
/// (`api`, `web`, `worker`), so `web` shows the filter at work.
pub const FILTERED_DESIRED_LOGS: [&str; 2] = ["api", "worker"];

/// Prefix of every tenant's CloudWatch log group: the customer role template's default
/// `LogGroupPrefix`, the only groups that role may write.
pub const LOG_GROUP_PREFIX: &str = "/ROSA/cluster-logs/";

/// Prefix of S3 copies in a tenant's bucket (the tenant config's default `bucket_prefix`).
pub const S3_COPY_PREFIX: &str = logrelay_common::tenant::DEFAULT_BUCKET_PREFIX;

/// How the processor is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProcessorMode {
    /// `logrelay-processor sqs`: long-polls the queue (the Kubernetes Deployment's mode).
    Sqs,
    /// `logrelay-processor lambda` against a local Lambda Runtime API that the demo feeds with the
    /// queue's messages, as Lambda's SQS event source mapping does.
    Lambda,
}

/// Flags of `logrelay-demo run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// How long the fake node writes logs (e.g. `60s`, `2m`; bare = seconds).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Tenant ids, comma-separated. The 1st, 3rd, … deliver to CloudWatch Logs; the 2nd, 4th, …
    /// to CloudWatch Logs and an S3 copy, with a desired_logs filter (api, worker).
    #[arg(long, default_value = DEFAULT_TENANTS, value_delimiter = ',')]
    pub tenants: Vec<String>,
    /// Lines per second written by the fake node over all containers.
    #[arg(long, default_value_t = DEFAULT_RATE)]
    pub rate: u32,
    /// Leave the AWS emulator running after the summary (prints its endpoint and how to inspect).
    #[arg(long)]
    pub keep: bool,
    /// Print the summary as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// How the processor runs: sqs (poller) or lambda (local Runtime API fed from the queue).
    #[arg(long, value_enum, default_value = "sqs")]
    pub processor: ProcessorMode,
    /// Add a tenant with this id whose role in its account denies CloudWatch Logs access: its
    /// objects must end in the DLQ and every other tenant must be unaffected. Turns on IAM
    /// enforcement in the emulator.
    #[arg(long)]
    pub denied_tenant: Option<String>,
    /// Kill the agent with SIGKILL this long after generation starts and restart it.
    #[arg(long, value_parser = parse_duration)]
    pub kill_agent_after: Option<Duration>,
    /// How long the pipeline gets to drain after generation stops.
    #[arg(long, default_value = "90s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Directory of the logrelay binaries (default: <repo>/target/release).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Directory for the run's files: pod logs, ledger, checkpoints, component logs (default:
    /// <repo>/.run/demo-<time>).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Seed of the log generator (deterministic names and content).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Everything a run needs, resolved from [`RunArgs`] (tests build it directly).
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Generation time.
    pub duration: Duration,
    /// The tenants, in order.
    pub tenants: Vec<TenantPlan>,
    /// Lines per second.
    pub rate: u32,
    /// Keep the emulator running afterwards.
    pub keep: bool,
    /// Processor mode.
    pub processor: ProcessorMode,
    /// Kill and restart the agent at this point of the generation.
    pub kill_agent_after: Option<Duration>,
    /// Drain timeout.
    pub drain_timeout: Duration,
    /// Where the binaries are.
    pub bin_dir: PathBuf,
    /// Where the run's files go.
    pub work_dir: PathBuf,
    /// Generator seed.
    pub seed: Option<u64>,
    /// Show the progress display on stderr.
    pub progress: bool,
    /// Chaos to inflict (`logrelay-demo chaos`), if any.
    pub chaos: Option<ChaosPlan>,
    /// A Deployment (namespace, name) whose pods the fake API never serves: the agent cannot know
    /// them, so their lines go to quarantine until the run's operator step releases them.
    pub unlisted_deployment: Option<(String, String)>,
}

impl DemoOptions {
    /// Whether any tenant's role denies access (the emulator then enforces IAM).
    pub fn enforce_iam(&self) -> bool {
        self.tenants.iter().any(|t| t.denies_access)
    }
}

/// One tenant of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPlan {
    /// Tenant id: the namespace the fake node runs its pods in, and the `customer_id`.
    pub id: String,
    /// The tenant's own AWS account in the emulator.
    pub account_id: String,
    /// Its CloudWatch Logs group.
    pub log_group: String,
    /// Its S3 copy bucket, if it has an S3 delivery config.
    pub s3_bucket: Option<String>,
    /// Applications it wants (empty: all).
    pub desired_logs: Vec<String>,
    /// Its role denies CloudWatch Logs access: nothing may arrive, its objects must reach the DLQ.
    pub denies_access: bool,
}

/// The options of `logrelay-demo run` from its flags (binaries in `target/release`, a fresh
/// `.run/demo-<time>` directory, progress shown).
pub fn default_options(args: &RunArgs) -> anyhow::Result<DemoOptions> {
    anyhow::ensure!(!args.duration.is_zero(), "--duration must be more than 0");
    anyhow::ensure!(args.rate > 0, "--rate must be more than 0");
    Ok(DemoOptions {
        duration: args.duration,
        tenants: plan_tenants(&args.tenants, args.denied_tenant.as_deref())?,
        rate: args.rate,
        keep: args.keep,
        processor: args.processor,
        kill_agent_after: args.kill_agent_after,
        drain_timeout: args.drain_timeout,
        bin_dir: args
            .bin_dir
            .clone()
            .unwrap_or_else(crate::paths::default_bin_dir),
        work_dir: args
            .work_dir
            .clone()
            .unwrap_or_else(crate::paths::default_work_dir),
        seed: args.seed,
        progress: true,
        unlisted_deployment: None,
        chaos: None,
    })
}

/// `--delete-log-group` value that turns the deletion off.
pub const NO_DELETION: &str = "none";

/// Flags `logrelay-demo chaos` adds to those of `run`.
#[derive(Debug, Clone, Args)]
pub struct ChaosArgs {
    /// Share of the agent's and the processor's AWS requests that get a random fault (0–1).
    #[arg(long, default_value_t = DEFAULT_FAULT_RATE)]
    pub fault_rate: f64,
    /// Kinds of random faults, comma-separated: 5xx (500 InternalError, 503 SlowDown),
    /// throttling, reset (connection closed), latency (0.3 s or 1.5 s).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "5xx,throttling,reset,latency"
    )]
    pub fault_kinds: Vec<FaultClass>,
    /// SIGKILLs of the agent (each followed by a restart) at random times during generation.
    #[arg(long, default_value_t = DEFAULT_KILLS)]
    pub agent_kills: u32,
    /// SIGKILLs of the processor (each followed by a restart) at random times during generation.
    #[arg(long, default_value_t = DEFAULT_KILLS)]
    pub processor_kills: u32,
    /// Length of the S3 outage (every S3 request of both components fails) at a random time
    /// during generation; 0 = none.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub s3_outage: Duration,
    /// Tenant whose customer deletes its CloudWatch Logs group mid-run (default: the first
    /// tenant; `none`: no deletion).
    #[arg(long)]
    pub delete_log_group: Option<String>,
    /// Run the processor without DELIVERY_PROGRESS_TABLE (no resume, no leases): a killed
    /// processor's objects are redelivered whole after the visibility timeout instead of waiting
    /// for its 5-minute progress lease (a shorter drain, more duplicates).
    #[arg(long)]
    pub no_progress_table: bool,
}

/// `logrelay-demo chaos`: the flags of `run` (with a longer default generation and drain) plus
/// the chaos flags.
#[derive(Debug, Clone, Args)]
#[command(
    mut_arg("duration", |a| a.default_value(DEFAULT_CHAOS_DURATION)),
    mut_arg("drain_timeout", |a| a.default_value(DEFAULT_CHAOS_DRAIN_TIMEOUT))
)]
pub struct ChaosCommandArgs {
    /// The flags of `run`.
    #[command(flatten)]
    pub run: RunArgs,
    /// The chaos flags.
    #[command(flatten)]
    pub chaos: ChaosArgs,
}

/// The options of `logrelay-demo chaos`: those of `run`, a seed (drawn when not given, so it can
/// be printed and the schedule repeated) and the chaos plan, checked to fit into `--duration`.
pub fn chaos_options(args: &ChaosCommandArgs) -> anyhow::Result<DemoOptions> {
    let mut options = default_options(&args.run)?;
    let chaos = &args.chaos;
    anyhow::ensure!(
        options.processor == ProcessorMode::Sqs,
        "chaos runs kill and restart the processor as a poller: use --processor sqs"
    );
    anyhow::ensure!(
        !options.enforce_iam(),
        "chaos runs do not combine with --denied-tenant"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&chaos.fault_rate),
        "--fault-rate must be between 0 and 1"
    );
    let delete_log_group_of = match chaos.delete_log_group.as_deref() {
        Some(NO_DELETION) => None,
        Some(tenant) => {
            anyhow::ensure!(
                options.tenants.iter().any(|t| t.id == tenant),
                "--delete-log-group {tenant}: not one of --tenants"
            );
            Some(tenant.to_owned())
        }
        None => options.tenants.first().map(|t| t.id.clone()),
    };
    if args.run.work_dir.is_none() {
        options.work_dir = crate::paths::work_dir_named("chaos");
    }
    let seed = args.run.seed.unwrap_or_else(rand::random);
    let mut classes = chaos.fault_kinds.clone();
    classes.sort();
    classes.dedup();
    let plan = ChaosPlan {
        seed,
        fault_rate: chaos.fault_rate,
        fault_classes: classes,
        agent_kills: chaos.agent_kills,
        processor_kills: chaos.processor_kills,
        s3_outage: chaos.s3_outage,
        delete_log_group_of,
        progress_table: !chaos.no_progress_table,
        progress_lease: None,
    };
    Schedule::draw(&plan, options.duration)?;
    options.seed = Some(seed);
    options.chaos = Some(plan);
    Ok(options)
}

/// Plans the tenants: the `i`-th tenant (0-based) lives in account `(i+1)` repeated 12 times;
/// odd positions get an S3 copy and the desired_logs filter; `denied` is added last.
pub fn plan_tenants(ids: &[String], denied: Option<&str>) -> anyhow::Result<Vec<TenantPlan>> {
    let mut all: Vec<(&str, bool)> = ids.iter().map(|id| (id.as_str(), false)).collect();
    if let Some(id) = denied {
        all.push((id, true));
    }
    anyhow::ensure!(!all.is_empty(), "--tenants: at least one tenant is needed");
    anyhow::ensure!(
        all.len() <= MAX_TENANTS,
        "--tenants: at most {MAX_TENANTS} tenants (one emulated account each)"
    );
    let mut plans: Vec<TenantPlan> = Vec::with_capacity(all.len());
    for (index, (id, denies_access)) in all.into_iter().enumerate() {
        check_tenant_id(id)?;
        anyhow::ensure!(
            plans.iter().all(|p| p.id != id),
            "--tenants: {id:?} is listed twice"
        );
        let digit = char::from(b'1' + u8::try_from(index).unwrap_or(0));
        let account_id: String = std::iter::repeat_n(digit, 12).collect();
        let filtered = index % 2 == 1 && !denies_access;
        plans.push(TenantPlan {
            id: id.to_owned(),
            log_group: format!("{LOG_GROUP_PREFIX}{id}"),
            s3_bucket: filtered.then(|| format!("{id}-logs-{account_id}")),
            desired_logs: if filtered {
                FILTERED_DESIRED_LOGS
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect()
            } else {
                Vec::new()
            },
            account_id,
            denies_access,
        });
    }
    Ok(plans)
}

/// A tenant id usable as a Kubernetes namespace (the generator's rule: a DNS label) and in bucket
/// names: 1–40 of `a-z 0-9 -`, starting and ending with a letter or digit.
fn check_tenant_id(id: &str) -> anyhow::Result<()> {
    let valid = (1..=40).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-');
    anyhow::ensure!(
        valid,
        "tenant id {id:?}: use 1-40 of a-z, 0-9 and '-' (it is a namespace and part of a bucket name)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn second_tenant_gets_an_s3_copy_and_the_filter_in_its_own_account() {
        let plans = plan_tenants(&ids(&["acme", "globex"]), None).expect("valid");
        assert_eq!(plans[0].account_id, "111111111111");
        assert_eq!(plans[0].s3_bucket, None);
        assert!(plans[0].desired_logs.is_empty());
        assert_eq!(plans[0].log_group, "/ROSA/cluster-logs/acme");
        assert_eq!(plans[1].account_id, "222222222222");
        assert_eq!(
            plans[1].s3_bucket.as_deref(),
            Some("globex-logs-222222222222")
        );
        assert_eq!(plans[1].desired_logs, ["api", "worker"]);
    }

    #[test]
    fn denied_tenant_is_added_last_without_filter_or_copy() {
        let plans = plan_tenants(&ids(&["a"]), Some("blocked")).expect("valid");
        assert_eq!(plans.len(), 2);
        assert!(plans[1].denies_access);
        assert_eq!(plans[1].account_id, "222222222222");
        assert_eq!(plans[1].s3_bucket, None);
        assert!(!plans[0].denies_access);
    }

    #[test]
    fn bad_duplicate_or_too_many_tenants_are_refused() {
        assert!(plan_tenants(&ids(&["Acme"]), None).is_err());
        assert!(plan_tenants(&ids(&["a", "a"]), None).is_err());
        assert!(plan_tenants(&ids(&[]), None).is_err());
        let many: Vec<String> = (0..=MAX_TENANTS).map(|i| format!("t{i}")).collect();
        assert!(plan_tenants(&many, None).is_err());
    }

    #[derive(Debug, clap::Parser)]
    struct ChaosCli {
        #[command(flatten)]
        args: ChaosCommandArgs,
    }

    fn chaos(flags: &[&str]) -> anyhow::Result<DemoOptions> {
        use clap::Parser;
        let cli = ChaosCli::try_parse_from(std::iter::once("chaos").chain(flags.iter().copied()))?;
        chaos_options(&cli.args)
    }

    #[test]
    fn chaos_defaults_are_the_full_run_of_issue_9() {
        let options = chaos(&[]).expect("defaults are valid");
        assert_eq!(options.duration, Duration::from_secs(12 * 60));
        assert_eq!(options.drain_timeout, Duration::from_secs(10 * 60));
        let plan = options.chaos.expect("a plan");
        assert_eq!(plan.fault_rate, 0.30);
        assert_eq!(plan.fault_classes, FaultClass::ALL);
        assert_eq!((plan.agent_kills, plan.processor_kills), (20, 20));
        assert_eq!(plan.s3_outage, Duration::from_secs(300));
        assert_eq!(plan.delete_log_group_of.as_deref(), Some("acme"));
        assert!(plan.progress_table);
        assert_eq!(
            options.seed,
            Some(plan.seed),
            "the generator gets the seed too"
        );
    }

    #[test]
    fn chaos_flags_are_read_and_checked() {
        let options = chaos(&[
            "--duration",
            "90s",
            "--seed",
            "5",
            "--fault-kinds",
            "reset,5xx",
            "--agent-kills",
            "5",
            "--processor-kills",
            "4",
            "--s3-outage",
            "20s",
            "--delete-log-group",
            "globex",
        ])
        .expect("valid");
        let plan = options.chaos.expect("a plan");
        assert_eq!(plan.seed, 5);
        assert_eq!(
            plan.fault_classes,
            [FaultClass::ServerError, FaultClass::Reset]
        );
        assert_eq!(plan.delete_log_group_of.as_deref(), Some("globex"));
        let none = chaos(&["--delete-log-group", "none"]).expect("valid");
        assert_eq!(none.chaos.expect("plan").delete_log_group_of, None);
        assert!(chaos(&["--delete-log-group", "initech"]).is_err());
        assert!(chaos(&["--fault-rate", "1.5"]).is_err());
        assert!(chaos(&["--processor", "lambda"]).is_err());
        assert!(
            chaos(&["--duration", "60s"]).is_err(),
            "a 5-minute outage does not fit"
        );
        assert!(chaos(&["--fault-kinds", "meteor"]).is_err());
    }
}
