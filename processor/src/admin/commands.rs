//! One function per `tenants` subcommand: reads its flags, calls [`super::store`],
//! [`super::onboard`] or [`super::doctor`], and writes results to stdout and refusals to stderr.
//! Each returns the exit code (0 ok, 1 invalid/refused/failed step) or a [`TenantsError`].

use super::admission::{self, Verdict};
use super::doctor::{DoctorSettings, doctor as walk};
use super::doctor_all;
use super::external_id::generate_external_id;
use super::files::{Entry, read_files};
use super::onboard::{self, OnboardRequest};
use super::store::{StoreError, TenantTable};
use super::{
    Context, DoctorArgs, GetArgs, KeyArgs, ListArgs, OnboardArgs, Output, PutArgs, TenantsError,
    ValidateArgs, blank_config, now_rfc3339,
};
use crate::exit::{EXIT_FAILURES, EXIT_OK};
use logrelay_common::tenant::{ConfigProblem, DeliveryConfig, DeliveryType, REDACTED_EXTERNAL_ID};
use std::io::Write;
use std::path::Path;

/// Width of the tenant column of `list` (longer ids push the row).
const TENANT_COLUMN: usize = 24;
/// Width of the region column of `list`.
const REGION_COLUMN: usize = 14;

/// `validate FILE…`.
pub fn validate(args: &ValidateArgs, output: &mut Output<'_>) -> Result<u8, TenantsError> {
    let mut entries = read_files(&args.files);
    admission::check_entries(&mut entries, args.allow_no_external_id);
    let invalid = entries.iter().filter(|entry| !entry.is_valid()).count();
    if args.json {
        let report = serde_json::json!({
            "valid": invalid == 0,
            "entries": entries.iter().map(entry_json).collect::<Vec<_>>(),
        });
        writeln!(
            output.out,
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        )?;
    } else {
        for entry in &entries {
            write_entry(output.out, entry)?;
        }
        writeln!(
            output.out,
            "{} config(s): {} valid, {invalid} invalid",
            entries.len(),
            entries.len() - invalid
        )?;
    }
    Ok(if invalid == 0 { EXIT_OK } else { EXIT_FAILURES })
}

fn write_entry(out: &mut (dyn Write + Send), entry: &Entry) -> std::io::Result<()> {
    let verdict = if entry.is_valid() { "valid" } else { "INVALID" };
    writeln!(out, "{} {}: {verdict}", entry.origin, entry.key())?;
    for problem in &entry.problems {
        writeln!(out, "  error: {}: {}", problem.field, problem.message)?;
    }
    for warning in &entry.warnings {
        writeln!(out, "  warning: {}: {}", warning.field, warning.message)?;
    }
    Ok(())
}

fn entry_json(entry: &Entry) -> serde_json::Value {
    let problems = |list: &[logrelay_common::tenant::ConfigProblem]| {
        list.iter()
            .map(|p| serde_json::json!({"field": p.field, "message": p.message}))
            .collect::<Vec<_>>()
    };
    serde_json::json!({
        "origin": entry.origin,
        "tenant_id": entry.config.as_ref().map(|c| c.tenant_id.clone()),
        "type": entry.config.as_ref().map(|c| c.delivery_type.as_str()),
        "valid": entry.is_valid(),
        "problems": problems(&entry.problems),
        "warnings": problems(&entry.warnings),
    })
}

/// `put FILE… | --flags [--update]`.
pub async fn put(
    context: &Context,
    args: &PutArgs,
    output: &mut Output<'_>,
) -> Result<u8, TenantsError> {
    let table = TenantTable::new(&context.aws, &context.table);
    let configs = if args.files.is_empty() {
        match config_from_flags(&table, args, output).await? {
            Some(config) => vec![config],
            None => return Ok(EXIT_FAILURES),
        }
    } else {
        if args.fields.any() {
            return Err(TenantsError::Usage(
                "give either config files or field flags (--tenant-id, --type, …), not both".into(),
            ));
        }
        let mut entries = read_files(&args.files);
        admission::check_entries(&mut entries, args.allow_no_external_id);
        if entries.iter().any(|entry| !entry.is_valid()) {
            for entry in entries.iter().filter(|entry| !entry.is_valid()) {
                write_entry(output.err, entry)?;
            }
            writeln!(output.err, "nothing written: fix the invalid configs first")?;
            return Ok(EXIT_FAILURES);
        }
        entries
            .into_iter()
            .filter_map(|entry| entry.config)
            .collect()
    };
    let mut refused = 0;
    for config in configs {
        match write_config(&table, config, args.update).await {
            Ok((key, verb)) => writeln!(output.out, "{verb} {key}")?,
            Err(error @ (StoreError::Exists { .. } | StoreError::Conflict { .. })) => {
                refused += 1;
                writeln!(output.err, "refused: {error}")?;
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(if refused == 0 { EXIT_OK } else { EXIT_FAILURES })
}

/// The config given as flags: a new one, or (with --update) the stored one with the flags applied.
/// `None` (after printing why) when it is refused or invalid.
async fn config_from_flags(
    table: &TenantTable,
    args: &PutArgs,
    output: &mut Output<'_>,
) -> Result<Option<DeliveryConfig>, TenantsError> {
    let (Some(tenant_id), Some(delivery_type)) =
        (&args.fields.tenant_id, args.fields.delivery_type)
    else {
        return Err(TenantsError::Usage(
            "put needs config files, or --tenant-id and --type with the fields as flags".into(),
        ));
    };
    let mut config = match table.get(tenant_id, delivery_type).await? {
        Some(stored) if args.update => match stored.config {
            Ok(config) => config,
            Err(error) => {
                writeln!(
                    output.err,
                    "refused: the stored item cannot be read ({error}); replace it from a file"
                )?;
                return Ok(None);
            }
        },
        Some(_) => {
            writeln!(
                output.err,
                "refused: {tenant_id}/{delivery_type} already exists (use --update to change it)"
            )?;
            return Ok(None);
        }
        None => blank_config(tenant_id, delivery_type)
            .map_err(|error| TenantsError::Usage(error.to_string()))?,
    };
    args.fields.apply(&mut config);
    let problems = problems_of(&config, args.allow_no_external_id, output)?;
    if !problems.is_empty() {
        writeln!(
            output.err,
            "{tenant_id}/{delivery_type}: INVALID, nothing written"
        )?;
        for problem in problems {
            writeln!(
                output.err,
                "  error: {}: {}",
                problem.field, problem.message
            )?;
        }
        return Ok(None);
    }
    Ok(Some(config))
}

/// What keeps `config` from being written: its validation problems and, unless `allow`, a
/// missing ExternalId (an allowed one is printed as a warning).
fn problems_of(
    config: &DeliveryConfig,
    allow: bool,
    output: &mut Output<'_>,
) -> Result<Vec<ConfigProblem>, TenantsError> {
    let mut problems = config.validate().err().unwrap_or_default();
    match admission::external_id_verdict(config, allow) {
        Verdict::Accepted => {}
        Verdict::Allowed(warning) => writeln!(output.err, "  warning: {warning}")?,
        Verdict::Refused(problem) => problems.push(problem),
    }
    Ok(problems)
}

/// What keeps `config` from being enabled (see [`problems_of`]).
fn problems_enabled(
    config: &DeliveryConfig,
    allow: bool,
    output: &mut Output<'_>,
) -> Result<Vec<ConfigProblem>, TenantsError> {
    let enabled = DeliveryConfig {
        enabled: true,
        ..config.clone()
    };
    problems_of(&enabled, allow, output)
}

/// Creates or (when `update`) replaces one config, keeping `created_at` of the stored one.
async fn write_config(
    table: &TenantTable,
    mut config: DeliveryConfig,
    update: bool,
) -> Result<(String, &'static str), StoreError> {
    let key = format!("{}/{}", config.tenant_id, config.delivery_type);
    let now = now_rfc3339();
    config.updated_at = Some(now.clone());
    let stored = table.get(&config.tenant_id, config.delivery_type).await?;
    match stored {
        None => {
            config.created_at = Some(now);
            table.create(&config).await?;
            Ok((key, "created"))
        }
        Some(_) if !update => Err(StoreError::Exists {
            tenant_id: config.tenant_id,
            delivery_type: config.delivery_type,
        }),
        Some(stored) => {
            config.created_at = stored
                .config
                .ok()
                .and_then(|old| old.created_at)
                .or(Some(now));
            table.replace(&config, stored.updated_at.as_deref()).await?;
            Ok((key, "replaced"))
        }
    }
}

/// `get TENANT [TYPE]`.
pub async fn get(
    context: &Context,
    args: &GetArgs,
    output: &mut Output<'_>,
) -> Result<u8, TenantsError> {
    let table = TenantTable::new(&context.aws, &context.table);
    let types = match args.delivery_type {
        Some(delivery_type) => vec![delivery_type],
        None => vec![DeliveryType::Cloudwatch, DeliveryType::S3],
    };
    let mut configs = Vec::new();
    let mut unreadable = 0;
    for delivery_type in types {
        let Some(stored) = table.get(&args.tenant, delivery_type).await? else {
            continue;
        };
        match stored.config {
            Ok(config) => {
                if let Err(problems) = config.validate() {
                    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
                    writeln!(
                        output.err,
                        "warning: {}/{delivery_type} is invalid: {}",
                        args.tenant,
                        text.join("; ")
                    )?;
                }
                configs.push(printable(config, args.show_external_id));
            }
            Err(error) => {
                unreadable += 1;
                writeln!(
                    output.err,
                    "error: {}/{delivery_type}: {error}",
                    args.tenant
                )?;
            }
        }
    }
    if configs.is_empty() {
        if unreadable == 0 {
            let what = args.delivery_type.map_or_else(
                || format!("no configs for tenant {}", args.tenant),
                |t| format!("{}/{t} does not exist", args.tenant),
            );
            writeln!(output.err, "{what} in table {}", table.name())?;
        }
        return Ok(EXIT_FAILURES);
    }
    if args.json {
        writeln!(
            output.out,
            "{}",
            serde_json::to_string_pretty(&configs).unwrap_or_default()
        )?;
    } else {
        write!(
            output.out,
            "{}",
            serde_yaml::to_string(&configs).unwrap_or_default()
        )?;
    }
    Ok(if unreadable == 0 {
        EXIT_OK
    } else {
        EXIT_FAILURES
    })
}

/// `list [--page-size N] [--json]`: streams page by page (memory stays one page).
pub async fn list(
    context: &Context,
    args: &ListArgs,
    output: &mut Output<'_>,
) -> Result<u8, TenantsError> {
    let table = TenantTable::new(&context.aws, &context.table);
    let mut start = None;
    let mut count = 0usize;
    if args.json {
        write!(output.out, "[")?;
    } else {
        writeln!(
            output.out,
            "{:<TENANT_COLUMN$} {:<10} {:<7} {:<REGION_COLUMN$} {:<8} DESTINATION",
            "TENANT", "TYPE", "ENABLED", "REGION", "STATUS"
        )?;
    }
    loop {
        let page = table.scan_page(args.page_size, start).await?;
        for item in page.configs {
            let config = match item {
                Ok(config) => config,
                Err(error) => {
                    writeln!(output.err, "warning: unreadable item: {error}")?;
                    continue;
                }
            };
            if args.json {
                let separator = if count == 0 { "\n" } else { ",\n" };
                let config = printable(config, args.show_external_id);
                write!(
                    output.out,
                    "{separator}{}",
                    serde_json::to_string(&config).unwrap_or_default()
                )?;
            } else {
                write_row(output.out, &config)?;
            }
            count += 1;
        }
        match page.next {
            Some(next) => start = Some(next),
            None => break,
        }
    }
    if args.json {
        writeln!(output.out, "{}]", if count == 0 { "" } else { "\n" })?;
    } else {
        writeln!(output.out, "{count} config(s)")?;
    }
    Ok(EXIT_OK)
}

/// `config` as `get` and `list` print it: its ExternalId replaced by [`REDACTED_EXTERNAL_ID`]
/// unless `show` (`--show-external-id`).
fn printable(mut config: DeliveryConfig, show: bool) -> DeliveryConfig {
    if !show && config.external_id.is_some() {
        config.external_id = Some(REDACTED_EXTERNAL_ID.to_owned());
    }
    config
}

fn write_row(out: &mut (dyn Write + Send), config: &DeliveryConfig) -> std::io::Result<()> {
    let status = match config.validate() {
        Ok(()) => "ok".to_owned(),
        Err(problems) => format!("invalid:{}", problems.len()),
    };
    let destination = match config.delivery_type {
        DeliveryType::Cloudwatch => format!(
            "{} {}",
            config
                .log_distribution_role_arn
                .as_deref()
                .and_then(logrelay_common::aws::role_account_id)
                .unwrap_or("?"),
            config.log_group_name.as_deref().unwrap_or("?")
        ),
        DeliveryType::S3 => format!(
            "s3://{}/{}",
            config.bucket_name.as_deref().unwrap_or("?"),
            config.effective_bucket_prefix()
        ),
    };
    writeln!(
        out,
        "{:<TENANT_COLUMN$} {:<10} {:<7} {:<REGION_COLUMN$} {:<8} {destination}",
        config.tenant_id,
        config.delivery_type.as_str(),
        config.enabled,
        config.target_region.as_deref().unwrap_or("-"),
        status,
    )
}

/// `delete TENANT TYPE`.
pub async fn delete(
    context: &Context,
    args: &KeyArgs,
    output: &mut Output<'_>,
) -> Result<u8, TenantsError> {
    let table = TenantTable::new(&context.aws, &context.table);
    match table.delete(&args.tenant, args.delivery_type).await {
        Ok(()) => {
            writeln!(output.out, "deleted {}/{}", args.tenant, args.delivery_type)?;
            Ok(EXIT_OK)
        }
        Err(error @ StoreError::NotFound { .. }) => {
            writeln!(output.err, "{error}")?;
            Ok(EXIT_FAILURES)
        }
        Err(error) => Err(error.into()),
    }
}

/// What `enable` / `disable` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// Enable; `allow_no_external_id` is `--allow-no-external-id`.
    On {
        /// Accept a cloudwatch config without its own ExternalId.
        allow_no_external_id: bool,
    },
    /// Disable.
    Off,
}

/// `enable` / `disable TENANT TYPE`; only a valid config is enabled.
pub async fn set_enabled(
    context: &Context,
    args: &KeyArgs,
    switch: Switch,
    output: &mut Output<'_>,
) -> Result<u8, TenantsError> {
    let enabled = switch != Switch::Off;
    let table = TenantTable::new(&context.aws, &context.table);
    let key = format!("{}/{}", args.tenant, args.delivery_type);
    let verb = if enabled { "enabled" } else { "disabled" };
    let Some(stored) = table.get(&args.tenant, args.delivery_type).await? else {
        writeln!(output.err, "{key} does not exist")?;
        return Ok(EXIT_FAILURES);
    };
    let config = match stored.config {
        Ok(config) => config,
        Err(error) => {
            writeln!(output.err, "{key} cannot be read: {error}")?;
            return Ok(EXIT_FAILURES);
        }
    };
    let problems = match switch {
        Switch::On {
            allow_no_external_id,
        } => problems_enabled(&config, allow_no_external_id, output)?,
        Switch::Off => Vec::new(),
    };
    if !problems.is_empty() {
        writeln!(output.err, "{key} is invalid, not enabled:")?;
        for problem in problems {
            writeln!(
                output.err,
                "  error: {}: {}",
                problem.field, problem.message
            )?;
        }
        return Ok(EXIT_FAILURES);
    }
    if config.enabled == enabled {
        writeln!(output.out, "{key} is already {verb}")?;
        return Ok(EXIT_OK);
    }
    match table
        .set_enabled(
            &args.tenant,
            args.delivery_type,
            enabled,
            &now_rfc3339(),
            stored.updated_at.as_deref(),
        )
        .await
    {
        Ok(()) => {
            writeln!(output.out, "{verb} {key}")?;
            Ok(EXIT_OK)
        }
        Err(error @ StoreError::Conflict { .. }) => {
            writeln!(output.err, "{error}")?;
            Ok(EXIT_FAILURES)
        }
        Err(error) => Err(error.into()),
    }
}

/// `onboard TENANT --account ID …`.
pub async fn onboard(
    context: &Context,
    args: &OnboardArgs,
    output: &mut Output<'_>,
) -> Result<u8, TenantsError> {
    let Some(central_role_arn) = context.central_role_arn.clone() else {
        return Err(TenantsError::Usage(
            "onboard needs the central role the customer's role will trust: set --central-role-arn or CENTRAL_LOG_DISTRIBUTION_ROLE_ARN".into(),
        ));
    };
    let table = TenantTable::new(&context.aws, &context.table);
    let existing = match table.get(&args.tenant, DeliveryType::Cloudwatch).await? {
        None => None,
        Some(stored) => match stored.config {
            Ok(config) => Some(config),
            Err(error) => {
                writeln!(
                    output.err,
                    "refused: the stored cloudwatch config cannot be read ({error}); delete or replace it first"
                )?;
                return Ok(EXIT_FAILURES);
            }
        },
    };
    let request = OnboardRequest {
        tenant_id: args.tenant.clone(),
        account_id: args.account.clone(),
        target_region: args.target_region.clone(),
        log_group_name: args.log_group.clone(),
        role_name: args.role_name.clone(),
        central_role_arn,
        rotate_external_id: args.rotate_external_id,
        enable: args.enable,
        create_log_group: !args.no_create_log_group,
    };
    let default_region = context
        .aws
        .region()
        .map_or(logrelay_common::aws::DEFAULT_REGION, |region| {
            region.as_ref()
        })
        .to_owned();
    let plan = onboard::plan(&request, existing, &default_region, &now_rfc3339(), || {
        generate_external_id()
    })?;
    if plan.created {
        table.create(&plan.config).await?;
    } else {
        table
            .replace(&plan.config, plan.previous_updated_at.as_deref())
            .await?;
    }
    tracing::info!(
        tenant = %args.tenant,
        created = plan.created,
        external_id_generated = plan.external_id_generated,
        "tenant onboarded"
    );
    let parameters = onboard::parameters_json(&plan.parameters);
    let parameters_file = match &args.out {
        Some(path) => {
            write_private_file(path, &parameters)?;
            path.display().to_string()
        }
        None => format!("{}-parameters.json", plan.config.tenant_id),
    };
    write_onboarding(
        output.out,
        &plan,
        &parameters,
        &parameters_file,
        args.out.is_some(),
    )?;
    Ok(EXIT_OK)
}

fn write_onboarding(
    out: &mut (dyn Write + Send),
    plan: &onboard::Onboarding,
    parameters: &str,
    parameters_file: &str,
    saved: bool,
) -> std::io::Result<()> {
    let config = &plan.config;
    let tenant = &config.tenant_id;
    let role = config.log_distribution_role_arn.as_deref().unwrap_or("?");
    let account = logrelay_common::aws::role_account_id(role).unwrap_or("?");
    let state = if config.enabled {
        "enabled".to_owned()
    } else {
        format!("disabled until `tenants enable {tenant} cloudwatch`")
    };
    writeln!(
        out,
        "Tenant {tenant}: {} its cloudwatch config ({state}).",
        if plan.created { "created" } else { "updated" }
    )?;
    writeln!(out, "  role:       {role}")?;
    writeln!(
        out,
        "  log group:  {} in {}",
        config.log_group_name.as_deref().unwrap_or("?"),
        plan.region
    )?;
    writeln!(
        out,
        "  ExternalId: {}",
        if plan.external_id_generated {
            "newly generated and stored in the config"
        } else {
            "the stored one, unchanged (--rotate-external-id makes a new one)"
        }
    )?;
    writeln!(out)?;
    writeln!(out, "Send the customer (account {account}):")?;
    writeln!(
        out,
        "  1. the template cloudformation/{}",
        onboard::CUSTOMER_TEMPLATE_FILE
    )?;
    if saved {
        writeln!(out, "  2. these parameters, saved in {parameters_file}:")?;
    } else {
        writeln!(out, "  2. these parameters, as the file {parameters_file}:")?;
    }
    write!(out, "{parameters}")?;
    writeln!(
        out,
        "  3. the command to run in account {account}, as someone allowed to create IAM roles:"
    )?;
    writeln!(out, "{}", onboard::deploy_command(plan, parameters_file))?;
    writeln!(out)?;
    writeln!(
        out,
        "When the stack is deployed: logrelay-processor tenants doctor {tenant} --write"
    )?;
    if !config.enabled {
        writeln!(
            out,
            "When doctor passes:         logrelay-processor tenants enable {tenant} cloudwatch"
        )?;
    }
    Ok(())
}

/// Writes a file readable only by its owner (it holds the ExternalId).
fn write_private_file(path: &Path, text: &str) -> Result<(), TenantsError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file_error = |source| TenantsError::File {
        path: path.to_path_buf(),
        source,
    };
    let mut file = options.open(path).map_err(file_error)?;
    file.write_all(text.as_bytes()).map_err(file_error)
}

/// `doctor TENANT [--write] [--json]` or `doctor --all [--concurrency N] [--json]`.
pub async fn doctor(
    context: &Context,
    args: &DoctorArgs,
    output: &mut Output<'_>,
) -> Result<u8, TenantsError> {
    let settings = DoctorSettings {
        aws: context.aws.clone(),
        table: context.table.clone(),
        central_role_arn: context.central_role_arn.clone(),
        default_external_id: context.default_external_id.clone(),
        logs_endpoint_url: context.logs_endpoint_url.clone(),
        write: args.write,
        cluster_id: args.cluster_id.clone(),
    };
    let Some(tenant) = args.tenant.as_deref().filter(|_| !args.all) else {
        return doctor_all(context, &settings, args, output).await;
    };
    let report = walk(&settings, tenant).await;
    if args.json {
        writeln!(
            output.out,
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        )?;
    } else {
        write!(output.out, "{}", report.to_text())?;
    }
    Ok(if report.ok { EXIT_OK } else { EXIT_FAILURES })
}

/// `doctor --all`: every tenant with an enabled config, then the summary.
async fn doctor_all(
    context: &Context,
    settings: &DoctorSettings,
    args: &DoctorArgs,
    output: &mut Output<'_>,
) -> Result<u8, TenantsError> {
    let table = TenantTable::new(&context.aws, &context.table);
    let found = doctor_all::enabled_tenants(&table, args.page_size).await?;
    for error in &found.unreadable {
        writeln!(output.err, "warning: unreadable item, not walked: {error}")?;
    }
    let verdicts = doctor_all::walk_all(settings, &found.tenants, args.concurrency).await;
    if args.json {
        writeln!(
            output.out,
            "{}",
            serde_json::to_string_pretty(&verdicts).unwrap_or_default()
        )?;
    } else {
        write!(
            output.out,
            "{}",
            doctor_all::summary_text(&context.table, &verdicts)
        )?;
    }
    let all_ok = verdicts.iter().all(|verdict| verdict.ok);
    Ok(if all_ok { EXIT_OK } else { EXIT_FAILURES })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{TenantsArgs, TenantsCommand};
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        tenants: TenantsArgs,
    }

    /// Runs `tenants validate ARGS…`: exit code, stdout.
    fn validate_with(args: &[&str]) -> (u8, String) {
        let mut argv = vec!["tenants", "validate"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).expect("parses");
        let TenantsCommand::Validate(args) = cli.tenants.command else {
            panic!("validate");
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut output = Output {
            out: &mut out,
            err: &mut err,
        };
        let code = validate(&args, &mut output).expect("runs");
        (code, String::from_utf8_lossy(&out).into_owned())
    }

    fn file(dir: &tempfile::TempDir, text: &str) -> String {
        let path = dir.path().join("tenants.yaml");
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    }

    const ENABLED_WITHOUT_ID: &str = "tenant_id: acme\ntype: cloudwatch\n\
        log_distribution_role_arn: arn:aws:iam::111111111111:role/logs\nlog_group_name: /acme\n";

    #[test]
    fn validate_refuses_an_enabled_cloudwatch_config_without_external_id_unless_allowed() {
        let dir = tempfile::tempdir().expect("dir");
        let path = file(&dir, ENABLED_WITHOUT_ID);
        let (code, out) = validate_with(&[&path]);
        assert_eq!(code, EXIT_FAILURES, "{out}");
        assert!(out.contains("acme/cloudwatch: INVALID"), "{out}");
        assert!(out.contains("error: external_id: "), "{out}");
        assert!(out.contains("(tenant acme)"), "{out}");
        let (code, out) = validate_with(&["--allow-no-external-id", &path]);
        assert_eq!(code, EXIT_OK, "{out}");
        assert!(out.contains("warning: external_id: "), "{out}");
        let disabled = file(&dir, &format!("{ENABLED_WITHOUT_ID}enabled: false\n"));
        assert_eq!(validate_with(&[&disabled]).0, EXIT_OK);
    }

    #[test]
    fn printed_configs_redact_the_external_id_unless_asked() {
        let mut config =
            crate::admin::blank_config("acme", DeliveryType::Cloudwatch).expect("config");
        config.external_id = Some("acme-secret-ext".into());
        let redacted = serde_json::to_string(&printable(config.clone(), false)).expect("json");
        assert!(!redacted.contains("acme-secret-ext"), "{redacted}");
        assert!(redacted.contains("\"external_id\":\"***\""), "{redacted}");
        let shown = serde_json::to_string(&printable(config, true)).expect("json");
        assert!(shown.contains("acme-secret-ext"), "{shown}");
        let none = crate::admin::blank_config("acme", DeliveryType::S3).expect("config");
        assert_eq!(
            printable(none.clone(), false),
            none,
            "no ExternalId, nothing added"
        );
    }

    #[test]
    fn validate_refuses_a_role_partition_that_does_not_serve_the_region() {
        let dir = tempfile::tempdir().expect("dir");
        for (arn, region) in [
            ("arn:aws-cn:iam::111111111111:role/logs", "us-east-1"),
            ("arn:awsfoo:iam::111111111111:role/logs", "us-east-1"),
            ("arn:aws:iam::111111111111:role/logs", "cn-north-1"),
        ] {
            let path = file(
                &dir,
                &format!(
                    "tenant_id: acme\ntype: cloudwatch\nexternal_id: acme-ext\n\
                     log_distribution_role_arn: {arn}\nlog_group_name: /acme\ntarget_region: {region}\n"
                ),
            );
            let (code, out) = validate_with(&[&path]);
            assert_eq!(code, EXIT_FAILURES, "{arn} {region}: {out}");
            assert!(
                out.contains("error: log_distribution_role_arn: ") && out.contains("(tenant acme)"),
                "{out}"
            );
        }
    }
}
