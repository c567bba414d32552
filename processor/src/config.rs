//! The processor's configuration: one clap struct from flags and environment (the environment names
//! `docs/processor.md` lists, which deployments already set), validated at start with messages naming
//! the bad field. The mode comes from a subcommand (`lambda | sqs | manual | replay`) or
//! `EXECUTION_MODE`; in a Lambda environment without either, `lambda` is assumed. Settings are
//! grouped by who uses them ([`AwsArgs`], [`TableArgs`], [`ChainArgs`], [`DeliveryArgs`],
//! [`QueueArgs`], [`SqsArgs`], [`LambdaArgs`]) and each subcommand flattens only its groups, so its
//! `--help` lists and its parse reads only those; `tenants` and `quarantine` hand theirs to
//! [`crate::admin`] and [`crate::quarantine`].

use logrelay_common::http_endpoint::parse_listen;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use logrelay_common::logging::LogFormat;

use crate::deliver::cloudwatch::batch::MAX_BATCH_EVENTS;
use crate::intake::replay::TimeBasis;
use crate::progress::{MAX_LEASE, MIN_LEASE};
use logrelay_common::aws::MAX_EXTERNAL_ID_LEN;
use logrelay_common::check_config::{Deprecated, Report};

/// Default tenant config table (the name deployments use, `docs/processor.md`).
pub const DEFAULT_TENANT_CONFIG_TABLE: &str = "tenant-configurations";
/// Default listen address of `/metrics`, `/healthz` and `/readyz` in SQS mode.
pub const DEFAULT_METRICS_LISTEN: &str = "0.0.0.0:9090";
/// Default shutdown grace in SQS mode: 25 s, inside Kubernetes' default 30 s
/// `terminationGracePeriodSeconds` (the agent's default too).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(25);
/// Most objects processed at once that the config accepts (a sanity bound, not an AWS limit).
const MAX_CONCURRENCY_LIMIT: usize = 1_000;
/// Most retry attempts accepted (a sanity bound: more only lengthens a retry storm).
const MAX_RETRY_ATTEMPTS: u32 = 50;

/// How the processor is invoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecutionMode {
    /// AWS Lambda with an SQS event source (partial batch responses).
    Lambda,
    /// Long-polling SQS consumer (a container or a VM).
    Sqs,
    /// Notification bodies or `s3://` lines on stdin.
    Manual,
    /// Re-deliver a tenant's objects (needs the `replay` subcommand for its flags).
    Replay,
}

/// Flags and environment of `logrelay-processor`. Each subcommand takes only the settings it uses;
/// without a subcommand (mode from `--mode` / `EXECUTION_MODE`, or a Lambda environment) every run
/// setting is read here.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "logrelay-processor",
    version,
    about = "Delivers each tenant's log objects from the central bucket into the tenant's own AWS account",
    after_help = "Exit codes: 0 success; 1 some objects or messages failed (manual, replay); \
                  2 invalid flags or configuration; 3 fatal runtime error.\n\
                  Each subcommand's --help lists its own settings. \
                  See docs/processor.md for every setting, mode and metric."
)]
pub struct ProcessorConfig {
    /// The mode, if given as a subcommand (wins over EXECUTION_MODE).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Mode when no subcommand is given: lambda, sqs or manual.
    #[arg(long = "mode", env = "EXECUTION_MODE", value_enum)]
    pub execution_mode: Option<ExecutionMode>,
    /// Every run setting, for the mode chosen without a subcommand.
    #[command(flatten)]
    pub run: RunArgs,
    /// Log format: json or text (default: json in lambda and sqs modes, text otherwise).
    #[arg(long, env = "LOGRELAY_LOG_FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
}

/// The AWS connection of every command that calls AWS (endpoint: `AWS_ENDPOINT_URL`, read by the SDK).
#[derive(Debug, Clone, Default, PartialEq, Args)]
pub struct AwsArgs {
    /// AWS region of the central resources (default: the SDK's region chain, then us-east-1).
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
}

/// The tenant config table, for delivery and the `tenants` commands that read or change it.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct TableArgs {
    /// AWS connection.
    #[command(flatten)]
    pub aws: AwsArgs,
    /// DynamoDB table holding tenant delivery configs.
    #[arg(long, env = "TENANT_CONFIG_TABLE", default_value = DEFAULT_TENANT_CONFIG_TABLE, visible_alias = "table")]
    pub tenant_config_table: String,
}

/// The central role, for delivery, `tenants onboard` and `tenants doctor`.
#[derive(Debug, Clone, Default, PartialEq, Args)]
pub struct CentralRoleArgs {
    /// Central role assumed before each tenant's role (unset: the base credentials assume tenant roles directly).
    #[arg(long, env = "CENTRAL_LOG_DISTRIBUTION_ROLE_ARN")]
    pub central_role_arn: Option<String>,
}

/// How the chain into a tenant's account is walked: delivery and `tenants doctor`.
#[derive(Debug, Clone, Default, PartialEq, Args)]
pub struct ChainArgs {
    /// The central role.
    #[command(flatten)]
    pub central: CentralRoleArgs,
    /// ExternalId for tenants whose config has none (deployments with one ExternalId for every tenant; per-tenant ids are preferred).
    #[arg(long, env = "DEFAULT_EXTERNAL_ID", hide_env_values = true)]
    pub default_external_id: Option<String>,
    /// CloudWatch Logs endpoint override (VPC endpoints, tests); default: the SDK's.
    #[arg(long, env = "LOGRELAY_LOGS_ENDPOINT_URL")]
    pub logs_endpoint_url: Option<String>,
}

/// Delivery settings of every run mode (lambda, sqs, manual, replay).
#[derive(Debug, Clone, Args)]
pub struct DeliveryArgs {
    /// Tenant config table and AWS connection.
    #[command(flatten)]
    pub table: TableArgs,
    /// Central role, default ExternalId, CloudWatch Logs endpoint.
    #[command(flatten)]
    pub chain: ChainArgs,
    /// Most events per CloudWatch Logs PutLogEvents request, 1 to 10,000 (default 10,000). Not
    /// the SQS batch size (the Lambda event source mapping's `BatchSize`).
    #[arg(long, env = "LOGRELAY_PUT_LOG_EVENTS_MAX_EVENTS")]
    pub put_log_events_max_events: Option<usize>,
    /// Deprecated name of `--put-log-events-max-events` (logs a WARN).
    #[arg(long, env = "MAX_BATCH_SIZE", hide = true)]
    pub max_batch_size: Option<usize>,
    /// Attempts per AWS call on transient failures, the first included (default 5).
    #[arg(long, env = "RETRY_ATTEMPTS")]
    pub retry_attempts: Option<u32>,
    /// DynamoDB table of per-object delivery progress (resume without duplicates; unset: off).
    #[arg(long, env = "DELIVERY_PROGRESS_TABLE")]
    pub delivery_progress_table: Option<String>,
    /// Seconds an attempt's lease on an object's progress lasts without a progress write (10 to
    /// 43,200; default 300). Shorter: a crashed processor's objects are taken over sooner; a live
    /// one whose batch takes longer loses its object (re-sending the batches in flight).
    #[arg(long, env = "LOGRELAY_PROGRESS_LEASE_SECONDS")]
    pub progress_lease_seconds: Option<u64>,
    /// Deployment prefix of every object key in the central bucket ("" = none).
    #[arg(long, env = "LOGRELAY_KEY_PREFIX", default_value = "")]
    pub key_prefix: String,
    /// The central bucket: notifications naming another bucket are refused and dead-lettered
    /// (unset: any bucket the processor's role may read).
    #[arg(long, env = "LOGRELAY_CENTRAL_BUCKET")]
    pub central_bucket: Option<String>,
    /// Each cluster's S3 writer role, `CLUSTER=ROLE_ID,…` (unique role ids, the S3WriterRoleId
    /// output of cluster-s3-writer-role.yaml): a notification whose uploader is not the writer of
    /// the key's cluster is refused and dead-lettered (unset: uploaders are not checked).
    #[arg(long, env = "LOGRELAY_CLUSTER_WRITERS")]
    pub cluster_writers: Option<crate::process::ClusterWriters>,
    /// Messages (lambda, sqs) or objects (manual, replay) processed at once.
    #[arg(long, env = "MAX_CONCURRENCY")]
    pub max_concurrency: Option<usize>,
    /// Parse and validate flags and environment, print a JSON report (invalid values, unknown
    /// `LOGRELAY_*` variables, deprecated names, listen address and paths) and exit: 0 valid, 2 not.
    #[arg(long)]
    pub check_config: bool,
}

/// Settings of the queue-fed modes (lambda, sqs).
#[derive(Debug, Clone, Default, PartialEq, Args)]
pub struct QueueArgs {
    /// Queue that permanently failed messages are forwarded to before being acknowledged.
    #[arg(long, env = "DLQ_URL")]
    pub dlq_url: Option<String>,
}

/// Settings of sqs mode only.
#[derive(Debug, Clone, Default, PartialEq, Args)]
pub struct SqsArgs {
    /// Queue polled in sqs mode.
    #[arg(long, env = "SQS_QUEUE_URL")]
    pub sqs_queue_url: Option<String>,
    /// Listen address of /metrics, /healthz and /readyz in sqs mode (HOST:PORT; default 0.0.0.0:9090).
    #[arg(long, env = "LOGRELAY_LISTEN", value_parser = parse_listen)]
    pub listen: Option<SocketAddr>,
    /// Deprecated name of `--listen` (logs a WARN).
    #[arg(long, env = "LOGRELAY_METRICS_LISTEN", hide = true, value_parser = parse_listen)]
    pub metrics_listen: Option<SocketAddr>,
    /// Time in-flight messages get to finish after SIGTERM/SIGINT in sqs mode (e.g. `25s`, `1m`;
    /// bare = seconds; default 25s).
    #[arg(long, env = "LOGRELAY_SHUTDOWN_GRACE", value_parser = logrelay_common::units::parse_duration)]
    pub shutdown_grace: Option<Duration>,
    /// Deprecated name of `--shutdown-grace`, in seconds (logs a WARN).
    #[arg(long, env = "LOGRELAY_SHUTDOWN_GRACE_SECONDS", hide = true)]
    pub shutdown_grace_seconds: Option<u64>,
}

/// Settings of lambda mode only.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct LambdaArgs {
    /// CloudWatch namespace of the EMF metrics in lambda mode.
    #[arg(long, env = "LOGRELAY_METRICS_NAMESPACE", default_value = crate::telemetry::emf::DEFAULT_NAMESPACE)]
    pub metrics_namespace: String,
}

impl Default for LambdaArgs {
    fn default() -> Self {
        Self {
            metrics_namespace: crate::telemetry::emf::DEFAULT_NAMESPACE.to_owned(),
        }
    }
}

/// Every run setting: the settings of the chosen mode, the others at their defaults.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Delivery settings.
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    /// Queue-fed modes' settings.
    #[command(flatten)]
    pub queue: QueueArgs,
    /// Sqs mode's settings.
    #[command(flatten)]
    pub sqs: SqsArgs,
    /// Lambda mode's settings.
    #[command(flatten)]
    pub lambda: LambdaArgs,
}

/// Flags of `lambda`.
#[derive(Debug, Clone, Args)]
pub struct LambdaCommand {
    /// Delivery settings.
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    /// Dead-letter queue.
    #[command(flatten)]
    pub queue: QueueArgs,
    /// EMF namespace.
    #[command(flatten)]
    pub lambda: LambdaArgs,
}

/// Flags of `sqs`.
#[derive(Debug, Clone, Args)]
pub struct SqsCommand {
    /// Delivery settings.
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    /// Dead-letter queue.
    #[command(flatten)]
    pub queue: QueueArgs,
    /// Queue, listen address, shutdown grace.
    #[command(flatten)]
    pub sqs: SqsArgs,
}

/// Flags of `replay`: delivery settings and what to replay.
#[derive(Debug, Clone, Args)]
pub struct ReplayCommand {
    /// Delivery settings.
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    /// What to replay.
    #[command(flatten)]
    pub replay: ReplayArgs,
}

/// Old setting names that still work and log a WARN (flags and environment variables).
pub const DEPRECATED: &[Deprecated] = &[
    Deprecated {
        old: "--max-batch-size",
        new: "--put-log-events-max-events",
    },
    Deprecated {
        old: "MAX_BATCH_SIZE",
        new: "LOGRELAY_PUT_LOG_EVENTS_MAX_EVENTS (events per PutLogEvents request, not the SQS batch size)",
    },
    Deprecated {
        old: "--metrics-listen",
        new: "--listen",
    },
    Deprecated {
        old: "LOGRELAY_METRICS_LISTEN",
        new: "LOGRELAY_LISTEN (the agent's name)",
    },
    Deprecated {
        old: "--shutdown-grace-seconds",
        new: "--shutdown-grace",
    },
    Deprecated {
        old: "LOGRELAY_SHUTDOWN_GRACE_SECONDS",
        new: "LOGRELAY_SHUTDOWN_GRACE (a duration such as 25s, the agent's name)",
    },
];

/// `--check-config`: parses and validates `args` and the process environment as a start would
/// (`in_lambda`: in a Lambda environment) and reports the outcome, the mode, the key prefix and, in
/// sqs mode, the listen address and paths; starts nothing.
pub fn check_config_report(args: &[String], in_lambda: bool) -> Report {
    let vars = std::env::vars_os().map(|(name, _)| name.to_string_lossy().into_owned());
    let mut report = Report::new(
        "logrelay-processor",
        &ProcessorConfig::command(),
        &[],
        DEPRECATED,
        vars,
    );
    report.add_deprecated_flags(args, DEPRECATED);
    let config = match ProcessorConfig::try_parse_args(args) {
        Ok(config) => config,
        Err(error) => {
            report.errors.push(error.to_string().trim().to_owned());
            return report;
        }
    };
    match config.validate(in_lambda) {
        Err(error) => report.errors.push(error.to_string()),
        Ok(mode) => {
            let run = config.run_args().unwrap_or_else(|| config.run.clone());
            if matches!(mode, Mode::Sqs { .. }) {
                report.listen = Some(run.listen().to_string());
                report.http_paths = crate::telemetry::prometheus::HTTP_PATHS.to_vec();
            }
            let mode_name = match mode {
                Mode::Lambda => "lambda",
                Mode::Sqs { .. } => "sqs",
                Mode::Manual => "manual",
                Mode::Replay(_) => "replay",
            };
            report.effective.insert("mode".into(), mode_name.into());
            report
                .effective
                .insert("key_prefix".into(), run.delivery.key_prefix.into());
        }
    }
    report
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run as an AWS Lambda function (SQS event source).
    Lambda(LambdaCommand),
    /// Long-poll SQS_QUEUE_URL.
    Sqs(SqsCommand),
    /// Process notification bodies or s3://bucket/key lines from stdin.
    Manual(DeliveryArgs),
    /// Deliver a tenant's objects again (backfill).
    Replay(Box<ReplayCommand>),
    /// Onboard and diagnose tenants (validate, put, get, list, delete, enable, disable, onboard, doctor, migrate).
    Tenants(Box<crate::admin::TenantsArgs>),
    /// List quarantined lines (pods without metadata) and assign them to a tenant (list, release).
    Quarantine(Box<crate::quarantine::QuarantineArgs>),
}

/// What `replay` delivers again.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct ReplayArgs {
    /// The central bucket.
    #[arg(long, env = "LOGRELAY_CENTRAL_BUCKET")]
    pub bucket: String,
    /// The tenant (customer id) whose objects are replayed; only its prefix is listed.
    #[arg(long)]
    pub tenant: String,
    /// Only this cluster.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Only this application (needs --cluster).
    #[arg(long)]
    pub application: Option<String>,
    /// Objects at or after this time (RFC 3339, or YYYY-MM-DD for midnight UTC).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// Objects before this time (RFC 3339, or YYYY-MM-DD for midnight UTC).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<DateTime<Utc>>,
    /// Which time decides: the key's timestamp, LastModified, or either.
    #[arg(long, value_enum, default_value = "key")]
    pub time_basis: TimeBasis,
    /// List the objects that would be replayed; deliver nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Deliver objects again even if the progress table says they were delivered (their progress
    /// is reset). DUPLICATES every event already delivered; for a tenant that lost its logs.
    #[arg(long)]
    pub force: bool,
    /// With --force: replay without asking (off a terminal --force is refused without it).
    #[arg(long)]
    pub yes: bool,
}

/// The mode after resolving subcommand, `EXECUTION_MODE` and the Lambda environment.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Lambda.
    Lambda,
    /// SQS poller of this queue.
    Sqs {
        /// The queue.
        queue_url: String,
    },
    /// Stdin.
    Manual,
    /// Replay.
    Replay(Box<ReplayArgs>),
}

impl Mode {
    /// The mode's name as operators write it (`--mode`, `EXECUTION_MODE`, the subcommand).
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Lambda => "lambda",
            Mode::Sqs { .. } => "sqs",
            Mode::Manual => "manual",
            Mode::Replay(_) => "replay",
        }
    }
}

/// A setting is invalid; names the field (flag and environment variable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {field}: {message}")]
pub struct ConfigError {
    /// The field, e.g. `SQS_QUEUE_URL (--sqs-queue-url)`.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl ProcessorConfig {
    /// Parses `args` (the program name first). The top level's run settings are read only when
    /// no subcommand is given: a subcommand reads its own, so the environment's settings of other
    /// modes (a Lambda or Deployment environment carries them all) are ignored, and a run setting
    /// given before a subcommand's name is refused.
    pub fn try_parse_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        let mut full = Self::command();
        let top_level: Vec<clap::Id> = full
            .get_arguments()
            .filter(|arg| !arg.is_global_set())
            .map(|arg| arg.get_id().clone())
            .collect();
        let mut command = top_level.iter().fold(Self::command(), |command, id| {
            command.mut_arg(id, |arg| arg.env(None))
        });
        let matches = command.try_get_matches_from_mut(&args)?;
        let Some(name) = matches.subcommand_name() else {
            let matches = full.try_get_matches_from_mut(&args)?;
            return Self::from_arg_matches(&matches).map_err(|error| error.format(&mut full));
        };
        let misplaced = top_level
            .iter()
            .filter(|id| *id != "execution_mode")
            .find(|id| {
                matches.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine)
            });
        if let Some(id) = misplaced {
            let flag = command
                .get_arguments()
                .find(|arg| arg.get_id() == id)
                .and_then(|arg| arg.get_long())
                .unwrap_or(id.as_str())
                .to_owned();
            return Err(command.error(
                clap::error::ErrorKind::ArgumentConflict,
                format!(
                    "--{flag} must follow the subcommand: logrelay-processor {name} --{flag} …"
                ),
            ));
        }
        Self::from_arg_matches(&matches).map_err(|error| error.format(&mut command))
    }

    /// The run settings of the chosen mode: the subcommand's (the settings it does not take at
    /// their defaults), or the top level's without a subcommand; `None` for `tenants` and
    /// `quarantine`.
    pub fn run_args(&self) -> Option<RunArgs> {
        let with = |delivery: &DeliveryArgs| RunArgs {
            delivery: delivery.clone(),
            queue: QueueArgs::default(),
            sqs: SqsArgs::default(),
            lambda: LambdaArgs::default(),
        };
        match &self.command {
            None => Some(self.run.clone()),
            Some(Command::Lambda(command)) => Some(RunArgs {
                queue: command.queue.clone(),
                lambda: command.lambda.clone(),
                ..with(&command.delivery)
            }),
            Some(Command::Sqs(command)) => Some(RunArgs {
                queue: command.queue.clone(),
                sqs: command.sqs.clone(),
                ..with(&command.delivery)
            }),
            Some(Command::Manual(delivery)) => Some(with(delivery)),
            Some(Command::Replay(command)) => Some(with(&command.delivery)),
            Some(Command::Tenants(_) | Command::Quarantine(_)) => None,
        }
    }

    /// Checks every setting of the chosen mode and resolves the mode. `in_lambda` says whether
    /// the process runs in a Lambda environment (`AWS_LAMBDA_RUNTIME_API` is set).
    pub fn validate(&self, in_lambda: bool) -> Result<Mode, ConfigError> {
        let mode = self.resolve_mode(in_lambda)?;
        if let Some(run) = self.run_args() {
            run.validate()?;
        }
        if let Mode::Replay(args) = &mode {
            logrelay_common::tenant::validate_tenant_id(&args.tenant)
                .map_err(|problem| ConfigError::new("--tenant", problem.message))?;
            if args.bucket.is_empty() {
                return Err(ConfigError::new(
                    "--bucket (LOGRELAY_CENTRAL_BUCKET)",
                    "must not be empty",
                ));
            }
            if args.application.is_some() && args.cluster.is_none() {
                return Err(ConfigError::new("--application", "needs --cluster"));
            }
            if let (Some(since), Some(until)) = (args.since, args.until)
                && since >= until
            {
                return Err(ConfigError::new("--since", "must be before --until"));
            }
        }
        Ok(mode)
    }

    /// The log format: as configured, else JSON for the unattended modes and text for operators.
    pub fn effective_log_format(&self, mode: &Mode) -> LogFormat {
        self.log_format.unwrap_or(match mode {
            Mode::Lambda | Mode::Sqs { .. } => LogFormat::Json,
            Mode::Manual | Mode::Replay(_) => LogFormat::Text,
        })
    }

    fn resolve_mode(&self, in_lambda: bool) -> Result<Mode, ConfigError> {
        match (&self.command, self.execution_mode) {
            (Some(Command::Lambda(_)), _) | (None, Some(ExecutionMode::Lambda)) => Ok(Mode::Lambda),
            (None, None) if in_lambda => Ok(Mode::Lambda),
            (Some(Command::Manual(_)), _) | (None, Some(ExecutionMode::Manual)) => Ok(Mode::Manual),
            (Some(Command::Sqs(SqsCommand { sqs, .. })), _) => sqs_mode(sqs),
            (None, Some(ExecutionMode::Sqs)) => sqs_mode(&self.run.sqs),
            (Some(Command::Replay(command)), _) => {
                Ok(Mode::Replay(Box::new(command.replay.clone())))
            }
            (Some(Command::Tenants(_) | Command::Quarantine(_)), _) => Err(ConfigError::new(
                "command",
                "`tenants` and `quarantine` are run by their own entry points",
            )),
            (None, Some(ExecutionMode::Replay)) => Err(ConfigError::new(
                "EXECUTION_MODE (--mode)",
                "replay needs its flags: use the `replay` subcommand",
            )),
            (None, None) => Err(ConfigError::new(
                "EXECUTION_MODE (--mode)",
                "no mode: give a subcommand (lambda, sqs, manual, replay) or set EXECUTION_MODE",
            )),
        }
    }
}

/// Sqs mode polling the configured queue, which must be set.
fn sqs_mode(sqs: &SqsArgs) -> Result<Mode, ConfigError> {
    let url = sqs.sqs_queue_url.clone().ok_or_else(|| {
        ConfigError::new("SQS_QUEUE_URL (--sqs-queue-url)", "required in sqs mode")
    })?;
    check_queue_url("SQS_QUEUE_URL (--sqs-queue-url)", &url)?;
    Ok(Mode::Sqs { queue_url: url })
}

impl RunArgs {
    /// Checks every run setting; the error names the bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_table(
            "TENANT_CONFIG_TABLE (--tenant-config-table)",
            &self.delivery.table.tenant_config_table,
        )?;
        if let Some(table) = &self.delivery.delivery_progress_table {
            check_table("DELIVERY_PROGRESS_TABLE (--delivery-progress-table)", table)?;
        }
        if let Some(arn) = &self.delivery.chain.central.central_role_arn {
            check_role_arn(
                "CENTRAL_LOG_DISTRIBUTION_ROLE_ARN (--central-role-arn)",
                arn,
            )?;
        }
        if let Some(region) = &self.delivery.table.aws.region
            && (region.is_empty()
                || !region
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        {
            return Err(ConfigError::new(
                "AWS_REGION (--region)",
                format!("{region:?} is not a region name like eu-west-1"),
            ));
        }
        if let Some(url) = &self.queue.dlq_url {
            check_queue_url("DLQ_URL (--dlq-url)", url)?;
        }
        if let Some(seconds) = self.delivery.progress_lease_seconds
            && !(MIN_LEASE..=MAX_LEASE).contains(&Duration::from_secs(seconds))
        {
            return Err(ConfigError::new(
                "LOGRELAY_PROGRESS_LEASE_SECONDS (--progress-lease-seconds)",
                format!(
                    "must be {} to {} seconds, is {seconds}",
                    MIN_LEASE.as_secs(),
                    MAX_LEASE.as_secs()
                ),
            ));
        }
        logrelay_common::key::validate_prefix(&self.delivery.key_prefix)
            .map_err(|e| ConfigError::new("LOGRELAY_KEY_PREFIX (--key-prefix)", e.to_string()))?;
        if let (Some(new), Some(old)) = (
            self.delivery.put_log_events_max_events,
            self.delivery.max_batch_size,
        ) && new != old
        {
            return Err(ConfigError::new(
                "LOGRELAY_PUT_LOG_EVENTS_MAX_EVENTS (--put-log-events-max-events)",
                format!(
                    "{new} differs from the deprecated MAX_BATCH_SIZE (--max-batch-size) {old}; set only the new name"
                ),
            ));
        }
        if let (Some(new), Some(old)) = (self.sqs.listen, self.sqs.metrics_listen)
            && new != old
        {
            return Err(ConfigError::new(
                "LOGRELAY_LISTEN (--listen)",
                format!(
                    "{new} differs from the deprecated LOGRELAY_METRICS_LISTEN (--metrics-listen) {old}; set only the new name"
                ),
            ));
        }
        if let (Some(new), Some(old)) = (self.sqs.shutdown_grace, self.sqs.shutdown_grace_seconds)
            && new != Duration::from_secs(old)
        {
            return Err(ConfigError::new(
                "LOGRELAY_SHUTDOWN_GRACE (--shutdown-grace)",
                format!(
                    "{new:?} differs from the deprecated LOGRELAY_SHUTDOWN_GRACE_SECONDS (--shutdown-grace-seconds) {old}; set only the new name"
                ),
            ));
        }
        if let Some(size) = self.put_log_events_max_events()
            && !(1..=MAX_BATCH_EVENTS).contains(&size)
        {
            return Err(ConfigError::new(
                "LOGRELAY_PUT_LOG_EVENTS_MAX_EVENTS (--put-log-events-max-events)",
                format!("must be 1 to {MAX_BATCH_EVENTS} (events per PutLogEvents), is {size}"),
            ));
        }
        if let Some(attempts) = self.delivery.retry_attempts
            && !(1..=MAX_RETRY_ATTEMPTS).contains(&attempts)
        {
            return Err(ConfigError::new(
                "RETRY_ATTEMPTS (--retry-attempts)",
                format!(
                    "must be 1 to {MAX_RETRY_ATTEMPTS} (the first attempt included), is {attempts}"
                ),
            ));
        }
        if self
            .delivery
            .chain
            .default_external_id
            .as_deref()
            .is_some_and(|id| id.len() < 2 || id.len() > MAX_EXTERNAL_ID_LEN)
        {
            return Err(ConfigError::new(
                "DEFAULT_EXTERNAL_ID (--default-external-id)",
                format!("must be 2 to {MAX_EXTERNAL_ID_LEN} characters"),
            ));
        }
        if let Some(url) = &self.delivery.chain.logs_endpoint_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError::new(
                "LOGRELAY_LOGS_ENDPOINT_URL (--logs-endpoint-url)",
                format!("{url:?} is not an http(s) URL"),
            ));
        }
        if let Some(n) = self.delivery.max_concurrency
            && !(1..=MAX_CONCURRENCY_LIMIT).contains(&n)
        {
            return Err(ConfigError::new(
                "MAX_CONCURRENCY (--max-concurrency)",
                format!("must be 1 to {MAX_CONCURRENCY_LIMIT}, is {n}"),
            ));
        }
        if self.lambda.metrics_namespace.is_empty()
            || self.lambda.metrics_namespace.starts_with(':')
        {
            return Err(ConfigError::new(
                "LOGRELAY_METRICS_NAMESPACE (--metrics-namespace)",
                "must be a CloudWatch namespace",
            ));
        }
        Ok(())
    }

    /// Events per PutLogEvents request, from the setting or its deprecated name.
    pub fn put_log_events_max_events(&self) -> Option<usize> {
        self.delivery
            .put_log_events_max_events
            .or(self.delivery.max_batch_size)
    }

    /// WARN lines for deprecated setting names in use (logged once logging is set up).
    pub fn deprecation_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.sqs.metrics_listen.is_some() {
            warnings.push(
                "LOGRELAY_METRICS_LISTEN (--metrics-listen) is deprecated: use LOGRELAY_LISTEN (--listen), the agent's name"
                    .to_owned(),
            );
        }
        if self.sqs.shutdown_grace_seconds.is_some() {
            warnings.push(
                "LOGRELAY_SHUTDOWN_GRACE_SECONDS (--shutdown-grace-seconds) is deprecated: use LOGRELAY_SHUTDOWN_GRACE \
                 (--shutdown-grace, a duration such as 25s), the agent's name"
                    .to_owned(),
            );
        }
        if self.delivery.max_batch_size.is_some() {
            warnings.push(
                "MAX_BATCH_SIZE (--max-batch-size) is deprecated: use LOGRELAY_PUT_LOG_EVENTS_MAX_EVENTS \
                 (--put-log-events-max-events); it counts events per PutLogEvents request, not SQS messages"
                    .to_owned(),
            );
        }
        warnings
    }

    /// The progress lease, if set.
    pub fn progress_lease(&self) -> Option<Duration> {
        self.delivery
            .progress_lease_seconds
            .map(Duration::from_secs)
    }

    /// The SQS shutdown grace period, from the setting or its deprecated name.
    pub fn shutdown_grace(&self) -> Duration {
        self.sqs
            .shutdown_grace
            .or(self.sqs.shutdown_grace_seconds.map(Duration::from_secs))
            .unwrap_or(DEFAULT_SHUTDOWN_GRACE)
    }

    /// The SQS mode's listen address, from the setting or its deprecated name.
    pub fn listen(&self) -> SocketAddr {
        self.sqs
            .listen
            .or(self.sqs.metrics_listen)
            .unwrap_or_else(|| {
                DEFAULT_METRICS_LISTEN
                    .parse()
                    .expect("the default listen address is valid")
            })
    }
}

/// A DynamoDB table name: 3–255 of `[A-Za-z0-9_.-]` (DynamoDB naming rules).
fn check_table(field: &'static str, name: &str) -> Result<(), ConfigError> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !(3..=255).contains(&name.len()) || !valid_chars {
        return Err(ConfigError::new(
            field,
            format!("{name:?} is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)"),
        ));
    }
    Ok(())
}

/// An IAM role ARN: `arn:<partition>:iam::<12 digits>:role/<name>`.
fn check_role_arn(field: &'static str, arn: &str) -> Result<(), ConfigError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let valid = matches!(parts.as_slice(),
        ["arn", partition, "iam", "", account, resource]
            if partition.starts_with("aws")
                && account.len() == 12
                && account.chars().all(|c| c.is_ascii_digit())
                && resource.strip_prefix("role/").is_some_and(|name| !name.is_empty()));
    if !valid {
        return Err(ConfigError::new(
            field,
            format!("{arn:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/name)"),
        ));
    }
    Ok(())
}

/// A queue URL: `http(s)://…`.
fn check_queue_url(field: &'static str, url: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    if rest.is_none_or(|rest| rest.len() < 3 || !rest.contains('/')) {
        return Err(ConfigError::new(
            field,
            format!(
                "{url:?} is not a queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>)"
            ),
        ));
    }
    Ok(())
}

/// `--since`/`--until`: RFC 3339, or a date meaning midnight UTC.
fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|time| time.and_utc())
        .ok_or_else(|| {
            format!("{text:?} is neither RFC 3339 (2024-01-02T03:04:05Z) nor a date (2024-01-02)")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> ProcessorConfig {
        try_parse(args).expect("parses")
    }

    fn try_parse(args: &[&str]) -> Result<ProcessorConfig, clap::Error> {
        let mut argv = vec!["logrelay-processor"];
        argv.extend_from_slice(args);
        ProcessorConfig::try_parse_args(argv)
    }

    /// The run settings of `config`'s mode.
    fn run(config: &ProcessorConfig) -> RunArgs {
        config.run_args().expect("a run mode")
    }

    #[test]
    fn subcommand_wins_over_execution_mode() {
        let config = parse(&["--mode", "lambda", "manual"]);
        assert_eq!(config.validate(false), Ok(Mode::Manual));
    }

    #[test]
    fn execution_mode_selects_without_subcommand() {
        let config = parse(&[
            "--mode",
            "sqs",
            "--sqs-queue-url",
            "http://localhost:5000/123456789012/q",
        ]);
        assert_eq!(
            config.validate(false),
            Ok(Mode::Sqs {
                queue_url: "http://localhost:5000/123456789012/q".into()
            })
        );
    }

    #[test]
    fn lambda_environment_defaults_to_lambda_mode_and_otherwise_a_mode_is_required() {
        assert_eq!(parse(&[]).validate(true), Ok(Mode::Lambda));
        let error = parse(&[]).validate(false).expect_err("no mode");
        assert_eq!(error.field, "EXECUTION_MODE (--mode)");
    }

    #[test]
    fn sqs_mode_needs_a_queue_url() {
        let error = parse(&["sqs"]).validate(false).expect_err("no queue");
        assert_eq!(error.field, "SQS_QUEUE_URL (--sqs-queue-url)");
        let error = parse(&["sqs", "--sqs-queue-url", "queue-name"])
            .validate(false)
            .expect_err("not a URL");
        assert!(error.to_string().contains("not a queue URL"), "{error}");
    }

    #[test]
    fn bad_fields_are_named() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["manual", "--central-role-arn", "arn:aws:iam::12:role/x"],
                "CENTRAL_LOG_DISTRIBUTION_ROLE_ARN (--central-role-arn)",
            ),
            (
                &["manual", "--tenant-config-table", "a b"],
                "TENANT_CONFIG_TABLE (--tenant-config-table)",
            ),
            (
                &["manual", "--delivery-progress-table", "x"],
                "DELIVERY_PROGRESS_TABLE (--delivery-progress-table)",
            ),
            (&["lambda", "--dlq-url", "dlq"], "DLQ_URL (--dlq-url)"),
            (&["manual", "--region", "EU West"], "AWS_REGION (--region)"),
            (
                &["manual", "--put-log-events-max-events", "0"],
                "LOGRELAY_PUT_LOG_EVENTS_MAX_EVENTS (--put-log-events-max-events)",
            ),
            (
                &["manual", "--retry-attempts", "1000"],
                "RETRY_ATTEMPTS (--retry-attempts)",
            ),
            (
                &["manual", "--retry-attempts", "0"],
                "RETRY_ATTEMPTS (--retry-attempts)",
            ),
            (
                &["manual", "--max-batch-size", "10001"],
                "LOGRELAY_PUT_LOG_EVENTS_MAX_EVENTS (--put-log-events-max-events)",
            ),
            (
                &[
                    "manual",
                    "--max-batch-size",
                    "10",
                    "--put-log-events-max-events",
                    "500",
                ],
                "LOGRELAY_PUT_LOG_EVENTS_MAX_EVENTS (--put-log-events-max-events)",
            ),
            (
                &["manual", "--default-external-id", "x"],
                "DEFAULT_EXTERNAL_ID (--default-external-id)",
            ),
            (
                &["manual", "--logs-endpoint-url", "localhost"],
                "LOGRELAY_LOGS_ENDPOINT_URL (--logs-endpoint-url)",
            ),
            (
                &["manual", "--max-concurrency", "0"],
                "MAX_CONCURRENCY (--max-concurrency)",
            ),
            (
                &["manual", "--progress-lease-seconds", "9"],
                "LOGRELAY_PROGRESS_LEASE_SECONDS (--progress-lease-seconds)",
            ),
            (
                &["manual", "--progress-lease-seconds", "43201"],
                "LOGRELAY_PROGRESS_LEASE_SECONDS (--progress-lease-seconds)",
            ),
        ];
        for (args, field) in cases {
            let error = parse(args).validate(false).expect_err(field);
            assert_eq!(error.field, *field, "{error}");
        }
        let long_prefix = "p".repeat(300);
        let error = parse(&["manual", "--key-prefix", &long_prefix])
            .validate(false)
            .expect_err("prefix");
        assert_eq!(error.field, "LOGRELAY_KEY_PREFIX (--key-prefix)");
    }

    #[test]
    fn valid_settings_pass() {
        let config = parse(&[
            "lambda",
            "--central-role-arn",
            "arn:aws:iam::123456789012:role/central-log-distribution",
            "--region",
            "eu-west-1",
            "--dlq-url",
            "https://sqs.eu-west-1.amazonaws.com/123456789012/dlq",
            "--delivery-progress-table",
            "delivery-progress",
            "--put-log-events-max-events",
            "500",
            "--retry-attempts",
            "3",
            "--progress-lease-seconds",
            "20",
        ]);
        assert_eq!(config.validate(false), Ok(Mode::Lambda));
        assert_eq!(run(&config).put_log_events_max_events(), Some(500));
        assert!(run(&config).deprecation_warnings().is_empty());
        assert_eq!(run(&config).progress_lease(), Some(Duration::from_secs(20)));
        assert_eq!(
            run(&parse(&["manual"])).progress_lease(),
            None,
            "the default"
        );
        assert_eq!(config.effective_log_format(&Mode::Manual), LogFormat::Text);
        assert_eq!(config.effective_log_format(&Mode::Lambda), LogFormat::Json);
    }

    #[test]
    fn listen_and_shutdown_grace_have_the_agents_names_and_old_names_warn() {
        let config = parse(&["sqs"]);
        assert_eq!(run(&config).listen().to_string(), DEFAULT_METRICS_LISTEN);
        assert_eq!(run(&config).shutdown_grace(), DEFAULT_SHUTDOWN_GRACE);
        let config = parse(&[
            "sqs",
            "--sqs-queue-url",
            "http://q/1/q",
            "--listen",
            "127.0.0.1:9999",
            "--shutdown-grace",
            "1m",
        ]);
        assert_eq!(run(&config).listen().to_string(), "127.0.0.1:9999");
        assert_eq!(run(&config).shutdown_grace(), Duration::from_secs(60));
        assert!(run(&config).deprecation_warnings().is_empty());
        let old = parse(&[
            "sqs",
            "--sqs-queue-url",
            "http://q/1/q",
            "--metrics-listen",
            "127.0.0.1:9998",
            "--shutdown-grace-seconds",
            "5",
        ]);
        assert_eq!(
            old.validate(false),
            Ok(Mode::Sqs {
                queue_url: "http://q/1/q".into()
            })
        );
        assert_eq!(run(&old).listen().to_string(), "127.0.0.1:9998");
        assert_eq!(run(&old).shutdown_grace(), Duration::from_secs(5));
        assert_eq!(run(&old).deprecation_warnings().len(), 2);
        let both = parse(&[
            "sqs",
            "--sqs-queue-url",
            "http://q/1/q",
            "--listen",
            "127.0.0.1:1",
            "--metrics-listen",
            "127.0.0.1:2",
        ]);
        assert_eq!(
            both.validate(false).expect_err("conflict").field,
            "LOGRELAY_LISTEN (--listen)"
        );
    }

    #[test]
    fn deprecated_max_batch_size_still_sets_events_per_request_with_a_warning() {
        let config = parse(&["manual", "--max-batch-size", "50"]);
        assert_eq!(config.validate(false), Ok(Mode::Manual));
        assert_eq!(run(&config).put_log_events_max_events(), Some(50));
        let warnings = run(&config).deprecation_warnings();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("not SQS messages"), "{warnings:?}");
    }

    #[test]
    fn replay_flags_are_validated() {
        let config = parse(&[
            "replay",
            "--bucket",
            "central",
            "--tenant",
            "acme",
            "--since",
            "2024-01-02",
            "--until",
            "2024-01-03T00:00:00+02:00",
        ]);
        match config.validate(false).expect("valid") {
            Mode::Replay(args) => {
                assert_eq!(
                    args.since.map(|t| t.to_rfc3339()),
                    Some("2024-01-02T00:00:00+00:00".into())
                );
                assert_eq!(
                    args.until.map(|t| t.to_rfc3339()),
                    Some("2024-01-02T22:00:00+00:00".into())
                );
                assert_eq!(args.time_basis, TimeBasis::Key);
                assert!(!args.force, "re-delivering is opt-in");
            }
            other => panic!("expected replay, got {other:?}"),
        }
        match parse(&["replay", "--bucket", "b", "--tenant", "a", "--force"]).validate(false) {
            Ok(Mode::Replay(args)) => assert!(args.force),
            other => panic!("expected replay, got {other:?}"),
        }
        let error = parse(&["replay", "--bucket", "b", "--tenant", "a/b"])
            .validate(false)
            .expect_err("bad tenant");
        assert_eq!(error.field, "--tenant");
        let error = parse(&[
            "replay",
            "--bucket",
            "b",
            "--tenant",
            "a",
            "--application",
            "x",
        ])
        .validate(false)
        .expect_err("app");
        assert_eq!(error.field, "--application");
        let error = parse(&[
            "replay",
            "--bucket",
            "b",
            "--tenant",
            "a",
            "--since",
            "2024-01-02",
            "--until",
            "2024-01-01",
        ])
        .validate(false)
        .expect_err("range");
        assert_eq!(error.field, "--since");
        assert!(
            try_parse(&[
                "replay",
                "--bucket",
                "b",
                "--tenant",
                "a",
                "--since",
                "yesterday"
            ])
            .is_err()
        );
        let error = parse(&["--mode", "replay"])
            .validate(false)
            .expect_err("replay needs flags");
        assert!(error.message.contains("subcommand"));
    }

    /// The long help of `path` (subcommand names below the binary).
    fn help(path: &[&str]) -> String {
        let mut command = ProcessorConfig::command();
        command.build();
        let mut current = &mut command;
        for name in path {
            current = current.find_subcommand_mut(name).expect("subcommand");
        }
        current.render_long_help().to_string()
    }

    #[test]
    fn each_subcommand_lists_only_the_settings_it_uses() {
        let validate = help(&["tenants", "validate"]);
        for flag in [
            "--sqs-queue-url",
            "--region",
            "--table",
            "--max-concurrency",
        ] {
            assert!(
                !validate.contains(flag),
                "validate lists {flag}:\n{validate}"
            );
        }
        assert!(validate.contains("--allow-no-external-id"), "{validate}");
        let sqs = help(&["sqs"]);
        for flag in [
            "--sqs-queue-url",
            "--dlq-url",
            "--max-concurrency",
            "--region",
            "--listen",
        ] {
            assert!(sqs.contains(flag), "sqs lacks {flag}:\n{sqs}");
        }
        let manual = help(&["manual"]);
        assert!(
            !manual.contains("--sqs-queue-url") && !manual.contains("--dlq-url"),
            "{manual}"
        );
        assert!(manual.contains("--retry-attempts"), "{manual}");
        let list = help(&["tenants", "list"]);
        assert!(
            list.contains("--region") && list.contains("TENANT_CONFIG_TABLE"),
            "{list}"
        );
        assert!(
            !list.contains("--sqs-queue-url") && !list.contains("--central-role-arn"),
            "{list}"
        );
        let doctor = help(&["tenants", "doctor"]);
        assert!(
            doctor.contains("--central-role-arn") && doctor.contains("--logs-endpoint-url"),
            "{doctor}"
        );
        let quarantine = help(&["quarantine", "list"]);
        assert!(
            quarantine.contains("--key-prefix") && !quarantine.contains("--retry-attempts"),
            "{quarantine}"
        );
        let top = help(&[]);
        assert!(
            top.contains("--sqs-queue-url"),
            "EXECUTION_MODE needs every run setting: {top}"
        );
    }

    #[test]
    fn a_run_setting_before_the_subcommand_is_refused_naming_where_it_belongs() {
        let error = try_parse(&["--max-concurrency", "5", "sqs"]).expect_err("misplaced");
        assert!(
            error
                .to_string()
                .contains("--max-concurrency must follow the subcommand"),
            "{error}"
        );
        let config = parse(&[
            "sqs",
            "--max-concurrency",
            "5",
            "--sqs-queue-url",
            "http://q/1/q",
        ]);
        assert_eq!(run(&config).delivery.max_concurrency, Some(5));
        let global = parse(&["--log-format", "text", "manual"]);
        assert_eq!(
            global.log_format,
            Some(LogFormat::Text),
            "global flags go anywhere"
        );
    }

    #[test]
    fn the_tenant_table_has_one_name_and_the_table_alias_everywhere() {
        let config = parse(&["manual", "--table", "other-table"]);
        assert_eq!(
            run(&config).delivery.table.tenant_config_table,
            "other-table"
        );
        let config = parse(&[
            "tenants",
            "delete",
            "acme",
            "s3",
            "--tenant-config-table",
            "t2-x",
        ]);
        let Some(Command::Tenants(tenants)) = config.command else {
            panic!("tenants");
        };
        assert_eq!(
            tenants
                .command
                .table()
                .map(|t| t.tenant_config_table.as_str()),
            Some("t2-x")
        );
    }
}
