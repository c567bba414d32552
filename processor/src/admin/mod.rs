//! `logrelay-processor tenants …`: onboarding and diagnosis of tenants — validate config files,
//! manage the tenant config table (put, get, list, delete, enable, disable, migrate from a
//! single-key table), onboard a tenant
//! (ExternalId + what the customer deploys) and `doctor` (walk the real delivery chain with the
//! processor's own code). `docs/tenants.md` is the operator's guide.
//!
//! [`files`] reads config files, [`admission`] adds the rules applied before writing, [`store`]
//! changes the table, [`onboard`] plans onboarding, [`doctor`] walks the chain with [`hints`] for
//! failures, [`doctor_all`] walks every enabled tenant, [`migrate`] copies a single-key table's items, [`commands`] runs each other subcommand.

pub mod admission;
pub mod commands;
pub mod doctor;
pub mod doctor_all;
pub mod external_id;
pub mod files;
pub mod hints;
pub mod migrate;
pub mod onboard;
pub mod store;

use crate::config::{CentralRoleArgs, ChainArgs, TableArgs};
use crate::exit::{EXIT_CONFIG, EXIT_FAILURES, EXIT_OK, EXIT_RUNTIME};
use aws_config::SdkConfig;
use clap::{Args, Subcommand};
use logrelay_common::aws::{AwsOptions, base_config};
use logrelay_common::logging::LogFormat;
use logrelay_common::tenant::{DeliveryConfig, DeliveryType};
use std::io::Write;
use std::path::PathBuf;

/// Default `--page-size` of `list` (one DynamoDB Scan page).
pub const DEFAULT_PAGE_SIZE: i32 = 100;

/// Flags of `tenants`.
#[derive(Debug, Clone, Args)]
pub struct TenantsArgs {
    /// The tenant config table given before the command's name (`tenants --table T list`); wins
    /// over the command's own `--table` / `TENANT_CONFIG_TABLE`.
    #[arg(long = "table", value_name = "TABLE", hide = true)]
    pub table: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: TenantsCommand,
}

/// The `tenants` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum TenantsCommand {
    /// Check YAML/JSON config files (one config, a list, or several documents); exit 1 if any is invalid.
    Validate(ValidateArgs),
    /// Create configs from files or flags; refuses to overwrite unless --update.
    Put(PutArgs),
    /// Show a tenant's configs as YAML (or JSON), ready to edit and `put --update`.
    Get(GetArgs),
    /// List every config (paginated scan), as a table or JSON.
    List(ListArgs),
    /// Delete one config.
    Delete(KeyArgs),
    /// Switch one config on (it must be valid).
    Enable(EnableArgs),
    /// Switch one config off.
    Disable(KeyArgs),
    /// Give a tenant an ExternalId and print what the customer must deploy.
    Onboard(OnboardArgs),
    /// Walk the tenant's delivery chain and report each step (exit 0 only when none fails).
    Doctor(DoctorArgs),
    /// Copy a single-key tenant table's items (no `type`) into this table; never overwrites; exit 1 if any item is invalid.
    Migrate(MigrateArgs),
}

/// Flags of `migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// The single-key table to read (HASH tenant_id only).
    #[arg(long, value_name = "TABLE")]
    pub from_table: String,
    /// Check and report every item without writing.
    #[arg(long)]
    pub dry_run: bool,
    /// ExternalId for migrated configs that have none (the one the tenants' roles trust; the proof
    /// of concept sent the central account id).
    #[arg(long, value_name = "ID")]
    pub external_id: Option<String>,
    /// Migrate enabled cloudwatch configs without an ExternalId (they rely on DEFAULT_EXTERNAL_ID; logged).
    #[arg(long)]
    pub allow_no_external_id: bool,
    /// Tenant config table and AWS connection.
    #[command(flatten)]
    pub table: TableArgs,
}

/// Flags of `validate`.
#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// Config files (YAML or JSON).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Accept enabled cloudwatch configs without their own ExternalId (for a migration; logged).
    #[arg(long)]
    pub allow_no_external_id: bool,
}

/// Flags of `put`.
#[derive(Debug, Clone, Args)]
pub struct PutArgs {
    /// Config files (YAML or JSON); or give the config as flags (--tenant-id, --type, …).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Replace existing configs (from flags: change only the given fields).
    #[arg(long)]
    pub update: bool,
    /// Accept enabled cloudwatch configs without their own ExternalId (for a migration; logged).
    #[arg(long)]
    pub allow_no_external_id: bool,
    /// The config as flags.
    #[command(flatten)]
    pub fields: ConfigFlags,
    /// Tenant config table and AWS connection.
    #[command(flatten)]
    pub table: TableArgs,
}

/// A config's fields as flags (names as in the config files).
#[derive(Debug, Clone, Default, PartialEq, Args)]
pub struct ConfigFlags {
    /// Tenant id.
    #[arg(long)]
    pub tenant_id: Option<String>,
    /// Delivery type: cloudwatch or s3.
    #[arg(long = "type", value_parser = parse_delivery_type)]
    pub delivery_type: Option<DeliveryType>,
    /// Whether delivery is on (new configs: true).
    #[arg(long)]
    pub enabled: Option<bool>,
    /// Applications to deliver (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    pub desired_logs: Vec<String>,
    /// Application groups to deliver (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// Region to deliver to.
    #[arg(long)]
    pub target_region: Option<String>,
    /// ExternalId sent to AssumeRole (prefer `onboard`, which generates one).
    #[arg(long)]
    pub external_id: Option<String>,
    /// DynamoDB TTL (epoch seconds).
    #[arg(long)]
    pub ttl: Option<i64>,
    /// cloudwatch: the role in the tenant's account.
    #[arg(long)]
    pub log_distribution_role_arn: Option<String>,
    /// cloudwatch: the log group.
    #[arg(long)]
    pub log_group_name: Option<String>,
    /// cloudwatch: the log stream template.
    #[arg(long)]
    pub log_stream_template: Option<String>,
    /// cloudwatch: retention of a log group logrelay creates.
    #[arg(long)]
    pub retention_days: Option<i32>,
    /// s3: the bucket.
    #[arg(long)]
    pub bucket_name: Option<String>,
    /// s3: the key prefix ("" = bucket root).
    #[arg(long)]
    pub bucket_prefix: Option<String>,
    /// s3: the account that must own the bucket (default: the cloudwatch role's account).
    #[arg(long)]
    pub bucket_owner_account_id: Option<String>,
}

impl ConfigFlags {
    /// Whether any field flag is given.
    pub fn any(&self) -> bool {
        *self != Self::default()
    }

    /// Sets every given field on `config` (lists replace the stored list).
    pub fn apply(&self, config: &mut DeliveryConfig) {
        if let Some(enabled) = self.enabled {
            config.enabled = enabled;
        }
        if !self.desired_logs.is_empty() {
            config.desired_logs = self.desired_logs.clone();
        }
        if !self.groups.is_empty() {
            config.groups = self.groups.clone();
        }
        let set = |field: &mut Option<String>, value: &Option<String>| {
            if value.is_some() {
                field.clone_from(value);
            }
        };
        set(&mut config.target_region, &self.target_region);
        set(&mut config.external_id, &self.external_id);
        set(
            &mut config.log_distribution_role_arn,
            &self.log_distribution_role_arn,
        );
        set(&mut config.log_group_name, &self.log_group_name);
        set(&mut config.log_stream_template, &self.log_stream_template);
        set(&mut config.bucket_name, &self.bucket_name);
        set(&mut config.bucket_prefix, &self.bucket_prefix);
        set(
            &mut config.bucket_owner_account_id,
            &self.bucket_owner_account_id,
        );
        if self.ttl.is_some() {
            config.ttl = self.ttl;
        }
        if self.retention_days.is_some() {
            config.retention_days = self.retention_days;
        }
    }
}

/// Flags of `get`.
#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// Tenant id.
    pub tenant: String,
    /// Only this delivery type (cloudwatch or s3).
    #[arg(value_parser = parse_delivery_type, value_name = "TYPE")]
    pub delivery_type: Option<DeliveryType>,
    /// Print JSON instead of YAML.
    #[arg(long)]
    pub json: bool,
    /// Print ExternalIds (otherwise shown as `***`).
    #[arg(long)]
    pub show_external_id: bool,
    /// Tenant config table and AWS connection.
    #[command(flatten)]
    pub table: TableArgs,
}

/// Flags of `list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Items per DynamoDB Scan page.
    #[arg(long, default_value_t = DEFAULT_PAGE_SIZE, value_parser = clap::value_parser!(i32).range(1..=i64::from(store::MAX_PAGE_SIZE)))]
    pub page_size: i32,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Print ExternalIds in `--json` (otherwise shown as `***`).
    #[arg(long)]
    pub show_external_id: bool,
    /// Tenant config table and AWS connection.
    #[command(flatten)]
    pub table: TableArgs,
}

/// A tenant and a delivery type.
#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// Tenant id.
    pub tenant: String,
    /// Delivery type: cloudwatch or s3.
    #[arg(value_parser = parse_delivery_type, value_name = "TYPE")]
    pub delivery_type: DeliveryType,
    /// Tenant config table and AWS connection.
    #[command(flatten)]
    pub table: TableArgs,
}

/// Flags of `enable`.
#[derive(Debug, Clone, Args)]
pub struct EnableArgs {
    /// The config to enable.
    #[command(flatten)]
    pub key: KeyArgs,
    /// Enable a cloudwatch config without its own ExternalId (for a migration; logged).
    #[arg(long)]
    pub allow_no_external_id: bool,
}

/// Flags of `onboard`.
#[derive(Debug, Clone, Args)]
pub struct OnboardArgs {
    /// Tenant id.
    pub tenant: String,
    /// The customer's AWS account id (12 digits).
    #[arg(long)]
    pub account: String,
    /// Region to deliver to and deploy the stack in (default: the stored config's, else --region).
    #[arg(long)]
    pub target_region: Option<String>,
    /// Log group (default: the stored config's, else /ROSA/cluster-logs/<tenant>).
    #[arg(long)]
    pub log_group: Option<String>,
    /// Role name in the customer's account (must start with CustomerLogDistribution).
    #[arg(long, default_value = onboard::DEFAULT_ROLE_NAME)]
    pub role_name: String,
    /// Also write the parameters to this file (for `--parameter-overrides file://FILE`).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Generate a new ExternalId even if one is stored (the customer must update the stack).
    #[arg(long)]
    pub rotate_external_id: bool,
    /// Enable the config now (a new config is otherwise created disabled until doctor passes).
    #[arg(long)]
    pub enable: bool,
    /// Let logrelay create the log group on first delivery instead of the customer's stack.
    #[arg(long)]
    pub no_create_log_group: bool,
    /// Tenant config table and AWS connection.
    #[command(flatten)]
    pub table: TableArgs,
    /// The central role the customer's role trusts.
    #[command(flatten)]
    pub central: CentralRoleArgs,
}

/// Flags of `doctor`.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Tenant id (or --all).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub tenant: Option<String>,
    /// Walk every tenant with an enabled config and summarise the failing ones with their fix.
    #[arg(long)]
    pub all: bool,
    /// --all: tenants walked at once.
    #[arg(long, default_value_t = doctor_all::DEFAULT_CONCURRENCY, value_parser = parse_concurrency)]
    pub concurrency: usize,
    /// --all: items per DynamoDB Scan page.
    #[arg(long, default_value_t = DEFAULT_PAGE_SIZE, value_parser = clap::value_parser!(i32).range(1..=i64::from(store::MAX_PAGE_SIZE)))]
    pub page_size: i32,
    /// Also put one marked test event (and, for s3, one test object) into the customer's account.
    #[arg(long)]
    pub write: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// The cluster_id session tag to send.
    #[arg(long, default_value = doctor::DEFAULT_DOCTOR_CLUSTER_ID)]
    pub cluster_id: String,
    /// Tenant config table and AWS connection.
    #[command(flatten)]
    pub table: TableArgs,
    /// Central role, default ExternalId and CloudWatch Logs endpoint, as delivery uses them.
    #[command(flatten)]
    pub chain: ChainArgs,
}

/// Where the commands act: the processor's identity and settings.
#[derive(Debug, Clone)]
pub struct Context {
    /// The processor's own identity, region and endpoint.
    pub aws: SdkConfig,
    /// Tenant config table.
    pub table: String,
    /// `CENTRAL_LOG_DISTRIBUTION_ROLE_ARN`.
    pub central_role_arn: Option<String>,
    /// `DEFAULT_EXTERNAL_ID`.
    pub default_external_id: Option<String>,
    /// `LOGRELAY_LOGS_ENDPOINT_URL`.
    pub logs_endpoint_url: Option<String>,
}

/// Where commands write: results to `out`, refusals and warnings to `err`.
pub struct Output<'a> {
    /// Results (stdout).
    pub out: &'a mut (dyn Write + Send),
    /// Diagnostics (stderr).
    pub err: &'a mut (dyn Write + Send),
}

/// A command could not run.
#[derive(Debug, thiserror::Error)]
pub enum TenantsError {
    /// Flags that do not fit together.
    #[error("{0}")]
    Usage(String),
    /// The table could not be read or changed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// Onboarding could not be planned.
    #[error(transparent)]
    Onboard(#[from] onboard::OnboardError),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Output could not be written.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl TenantsError {
    /// The exit code: 2 for bad flags, 1 for a refused change, 3 when AWS or the system failed.
    pub fn exit_code(&self) -> u8 {
        use onboard::OnboardError;
        use store::StoreError;
        match self {
            Self::Usage(_) | Self::Onboard(OnboardError::Invalid { .. }) => EXIT_CONFIG,
            Self::Store(
                StoreError::Exists { .. }
                | StoreError::NotFound { .. }
                | StoreError::Conflict { .. },
            )
            | Self::Onboard(OnboardError::Config { .. }) => EXIT_FAILURES,
            Self::Store(StoreError::Aws(_) | StoreError::Encode(_))
            | Self::Onboard(OnboardError::Random(_))
            | Self::File { .. }
            | Self::Output(_) => EXIT_RUNTIME,
        }
    }
}

/// Entry point from `main`: logging, a runtime, the command; returns the exit code.
pub fn main(log_format: Option<LogFormat>, args: &TenantsArgs) -> u8 {
    logrelay_common::logging::init(log_format.unwrap_or(LogFormat::Text));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("logrelay-processor tenants: cannot start the async runtime: {error}");
            return EXIT_RUNTIME;
        }
    };
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let mut output = Output {
        out: &mut stdout,
        err: &mut stderr,
    };
    match runtime.block_on(run(args, &mut output)) {
        Ok(code) => code,
        // `… | head`: the reader has what it wanted.
        Err(TenantsError::Output(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => {
            EXIT_OK
        }
        Err(error) => {
            eprintln!("logrelay-processor tenants: {error}");
            error.exit_code()
        }
    }
}

/// Runs one command with its settings (`validate` touches no AWS).
pub async fn run(args: &TenantsArgs, output: &mut Output<'_>) -> Result<u8, TenantsError> {
    let Some(table) = args.command.table() else {
        return run_without_aws(&args.command, output);
    };
    let aws = base_config(&AwsOptions {
        region: table.aws.region.clone(),
        ..AwsOptions::default()
    })
    .await;
    let chain = args.command.chain();
    let context = Context {
        aws,
        table: args
            .table
            .clone()
            .unwrap_or_else(|| table.tenant_config_table.clone()),
        central_role_arn: chain.central.central_role_arn,
        default_external_id: chain.default_external_id,
        logs_endpoint_url: chain.logs_endpoint_url,
    };
    run_with(&context, &args.command, output).await
}

/// Runs a command that makes no AWS call.
fn run_without_aws(command: &TenantsCommand, output: &mut Output<'_>) -> Result<u8, TenantsError> {
    match command {
        TenantsCommand::Validate(args) => commands::validate(args, output),
        _ => Err(TenantsError::Usage(
            "this command needs the tenant config table".into(),
        )),
    }
}

impl TenantsCommand {
    /// The tenant config table and AWS connection of a command that calls AWS; `None` for `validate`.
    pub fn table(&self) -> Option<&TableArgs> {
        match self {
            Self::Validate(_) => None,
            Self::Put(args) => Some(&args.table),
            Self::Get(args) => Some(&args.table),
            Self::List(args) => Some(&args.table),
            Self::Delete(args) | Self::Disable(args) => Some(&args.table),
            Self::Enable(args) => Some(&args.key.table),
            Self::Onboard(args) => Some(&args.table),
            Self::Doctor(args) => Some(&args.table),
            Self::Migrate(args) => Some(&args.table),
        }
    }

    /// The central role, default ExternalId and Logs endpoint the command uses (unset for those
    /// that use none).
    pub fn chain(&self) -> ChainArgs {
        match self {
            Self::Onboard(args) => ChainArgs {
                central: args.central.clone(),
                ..ChainArgs::default()
            },
            Self::Doctor(args) => args.chain.clone(),
            _ => ChainArgs::default(),
        }
    }
}

/// Runs one command in `context`.
pub async fn run_with(
    context: &Context,
    command: &TenantsCommand,
    output: &mut Output<'_>,
) -> Result<u8, TenantsError> {
    match command {
        TenantsCommand::Validate(args) => commands::validate(args, output),
        TenantsCommand::Put(args) => commands::put(context, args, output).await,
        TenantsCommand::Get(args) => commands::get(context, args, output).await,
        TenantsCommand::List(args) => commands::list(context, args, output).await,
        TenantsCommand::Delete(args) => commands::delete(context, args, output).await,
        TenantsCommand::Enable(args) => {
            let switch = commands::Switch::On {
                allow_no_external_id: args.allow_no_external_id,
            };
            commands::set_enabled(context, &args.key, switch, output).await
        }
        TenantsCommand::Disable(args) => {
            commands::set_enabled(context, args, commands::Switch::Off, output).await
        }
        TenantsCommand::Onboard(args) => commands::onboard(context, args, output).await,
        TenantsCommand::Doctor(args) => commands::doctor(context, args, output).await,
        TenantsCommand::Migrate(args) => migrate::migrate(context, args, output).await,
    }
}

/// A new config of the tenant with every field at its default (as read from a minimal file).
pub fn blank_config(
    tenant_id: &str,
    delivery_type: DeliveryType,
) -> Result<DeliveryConfig, serde_json::Error> {
    serde_json::from_value(serde_json::json!({
        "tenant_id": tenant_id,
        "type": delivery_type.as_str(),
    }))
}

/// The current time as stored in `created_at` / `updated_at`: RFC 3339, UTC, milliseconds (so
/// the `updated_at` guard of a replace tells two changes in one second apart).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse_concurrency(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=doctor_all::MAX_CONCURRENCY).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not a number from 1 to {}",
            doctor_all::MAX_CONCURRENCY
        )),
    }
}

fn parse_delivery_type(text: &str) -> Result<DeliveryType, String> {
    match text {
        "cloudwatch" => Ok(DeliveryType::Cloudwatch),
        "s3" => Ok(DeliveryType::S3),
        other => Err(format!(
            "{other:?} is not a delivery type (cloudwatch or s3)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Debug, Subcommand)]
    enum Top {
        Tenants(TenantsArgs),
    }

    fn parse(args: &[&str]) -> TenantsArgs {
        let mut argv = vec!["logrelay-processor", "tenants"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).expect("parses").command {
            Top::Tenants(args) => args,
        }
    }

    #[test]
    fn put_flags_build_and_change_a_config() {
        let args = parse(&[
            "put",
            "--tenant-id",
            "acme",
            "--type",
            "s3",
            "--bucket-name",
            "acme-logs",
            "--groups",
            "API,Scheduler",
            "--enabled",
            "false",
        ]);
        let TenantsCommand::Put(put) = args.command else {
            panic!("put");
        };
        assert!(put.files.is_empty() && put.fields.any());
        let mut config = blank_config("acme", DeliveryType::S3).expect("config");
        put.fields.apply(&mut config);
        assert_eq!(config.bucket_name.as_deref(), Some("acme-logs"));
        assert_eq!(config.groups, ["API", "Scheduler"]);
        assert!(!config.enabled);
        assert_eq!(config.validate(), Ok(()));
        assert!(!ConfigFlags::default().any());
    }

    #[test]
    fn types_and_page_sizes_are_checked_by_the_parser() {
        assert!(matches!(
            parse(&["delete", "acme", "s3"]).command,
            TenantsCommand::Delete(KeyArgs {
                delivery_type: DeliveryType::S3,
                ..
            })
        ));
        let bad_type = Cli::try_parse_from(["p", "tenants", "delete", "acme", "ftp"]);
        assert!(bad_type.is_err());
        let bad_page = Cli::try_parse_from(["p", "tenants", "list", "--page-size", "0"]);
        assert!(bad_page.is_err());
        let args = parse(&["get", "acme", "--table", "other"]);
        assert_eq!(
            args.command.table().map(|t| t.tenant_config_table.as_str()),
            Some("other"),
            "--table names the tenant config table"
        );
        let before = parse(&["--table", "first", "get", "acme"]);
        assert_eq!(
            before.table.as_deref(),
            Some("first"),
            "still accepted before the command"
        );
    }

    #[test]
    fn doctor_takes_a_tenant_or_all_but_not_both() {
        let TenantsCommand::Doctor(all) = parse(&["doctor", "--all"]).command else {
            panic!("doctor");
        };
        assert!(all.all && all.tenant.is_none() && !all.write);
        assert_eq!(all.concurrency, doctor_all::DEFAULT_CONCURRENCY);
        assert!(Cli::try_parse_from(["p", "tenants", "doctor"]).is_err());
        assert!(Cli::try_parse_from(["p", "tenants", "doctor", "acme", "--all"]).is_err());
        let many = ["p", "tenants", "doctor", "--all", "--concurrency", "17"];
        assert!(Cli::try_parse_from(many).is_err());
    }

    #[test]
    fn refusals_and_failures_have_distinct_exit_codes() {
        let exists = TenantsError::Store(store::StoreError::Exists {
            tenant_id: "a".into(),
            delivery_type: DeliveryType::S3,
        });
        assert_eq!(exists.exit_code(), EXIT_FAILURES);
        assert_eq!(TenantsError::Usage("x".into()).exit_code(), EXIT_CONFIG);
        let io = TenantsError::Output(std::io::Error::other("closed"));
        assert_eq!(io.exit_code(), EXIT_RUNTIME);
    }
}
