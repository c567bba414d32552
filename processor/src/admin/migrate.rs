//! `tenants migrate --from-table OLD`: copies the items of a single-key tenant table (HASH
//! `tenant_id` only, items without `type`: the proof of concept's) into the composite-key tenant
//! table. Each source item is checked on its own and reported (`ok`, `exists`, or `INVALID` with
//! the reason); valid ones are written with a conditional put, so an item already in the target is
//! never overwritten. `--dry-run` checks and reports without writing. Exit code 1 when any item is
//! invalid.

use super::admission::{Verdict, external_id_verdict};
use super::store::{StoreError, TenantTable};
use super::{Context, MigrateArgs, Output, TenantsError, now_rfc3339};
use crate::exit::{EXIT_FAILURES, EXIT_OK};
use crate::tenant::untyped::{self, TYPE_ATTRIBUTE};
use crate::tenant::{DynamoItem, Item};
use aws_sdk_dynamodb::types::AttributeValue;
use logrelay_common::aws::AwsError;
use logrelay_common::tenant::DeliveryConfig;

/// Items read per Scan page of the source table.
pub const MIGRATE_PAGE_SIZE: i32 = 100;

/// What became of one source item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Valid: written (or, with `--dry-run`, would be).
    Ok {
        /// `tenant_id/type`.
        key: String,
    },
    /// Valid, but the target already holds an item with its key: left unchanged.
    Exists {
        /// `tenant_id/type`.
        key: String,
    },
    /// Not migrated.
    Invalid {
        /// `tenant_id` (or `?` when the item has none), and `/type` when known.
        key: String,
        /// Every problem, fields named.
        reason: String,
    },
}

/// Turns one source item into the config to write, or the reasons it cannot be migrated: its
/// `type` inferred when missing, an ExternalId set from `external_id` when it has none, then the
/// config rules and the ExternalId rule of every `tenants` write.
pub fn plan_item(
    item: &Item,
    external_id: Option<&str>,
    allow_no_external_id: bool,
) -> Result<DeliveryConfig, ItemOutcome> {
    let tenant = match item.get("tenant_id") {
        Some(AttributeValue::S(id)) => id.clone(),
        _ => "?".to_owned(),
    };
    let invalid = |key: String, reason: String| ItemOutcome::Invalid { key, reason };
    let typed = if untyped::is_untyped(item) {
        untyped::with_inferred_type(item).map_err(|e| invalid(tenant.clone(), e.to_string()))?
    } else {
        item.clone()
    };
    let kind = match typed.get(TYPE_ATTRIBUTE) {
        Some(AttributeValue::S(kind)) => kind.clone(),
        _ => String::new(),
    };
    let key = format!("{tenant}/{kind}");
    let mut config =
        DeliveryConfig::from_item(&typed).map_err(|e| invalid(key.clone(), e.to_string()))?;
    if config.external_id.is_none() {
        config.external_id = external_id.map(str::to_owned);
    }
    let mut problems: Vec<String> = match config.validate() {
        Ok(()) => Vec::new(),
        Err(problems) => problems.iter().map(ToString::to_string).collect(),
    };
    if let Verdict::Refused(problem) = external_id_verdict(&config, allow_no_external_id) {
        problems.push(format!(
            "{problem} (give --external-id, the ExternalId the tenant's role trusts, or --allow-no-external-id)"
        ));
    }
    if !problems.is_empty() {
        return Err(invalid(key, problems.join("; ")));
    }
    Ok(config)
}

/// `tenants migrate --from-table OLD [--dry-run] [--external-id ID] [--allow-no-external-id]`.
pub async fn migrate(
    context: &Context,
    args: &MigrateArgs,
    output: &mut Output<'_>,
) -> Result<u8, TenantsError> {
    if args.from_table == context.table {
        return Err(TenantsError::Usage(format!(
            "--from-table {} is the target table itself: name the single-key table to read",
            args.from_table
        )));
    }
    let target = TenantTable::new(&context.aws, &context.table);
    let client = aws_sdk_dynamodb::Client::new(&context.aws);
    let (mut ok, mut exists, mut invalid) = (0usize, 0usize, 0usize);
    let mut start: Option<Item> = None;
    loop {
        let page = client
            .scan()
            .table_name(&args.from_table)
            .limit(MIGRATE_PAGE_SIZE)
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|error| {
                StoreError::from(AwsError::from_sdk(
                    format!("dynamodb:Scan on table {}", args.from_table),
                    error,
                ))
            })?;
        for item in page.items() {
            let outcome = migrate_item(&target, item, args).await?;
            match &outcome {
                ItemOutcome::Ok { key } => {
                    ok += 1;
                    let verb = if args.dry_run {
                        "would write"
                    } else {
                        "written"
                    };
                    writeln!(output.out, "ok {key}: {verb}")?;
                }
                ItemOutcome::Exists { key } => {
                    exists += 1;
                    writeln!(
                        output.out,
                        "exists {key}: already in {}, left unchanged",
                        context.table
                    )?;
                }
                ItemOutcome::Invalid { key, reason } => {
                    invalid += 1;
                    writeln!(output.out, "INVALID {key}: {reason}")?;
                }
            }
        }
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => break,
        }
    }
    let verb = if args.dry_run { "to write" } else { "written" };
    writeln!(
        output.out,
        "{} item(s) in {}: {ok} {verb}, {exists} already present, {invalid} invalid{}",
        ok + exists + invalid,
        args.from_table,
        if args.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    )?;
    Ok(if invalid == 0 { EXIT_OK } else { EXIT_FAILURES })
}

/// Plans one item and (unless `--dry-run`) writes it without overwriting.
async fn migrate_item(
    target: &TenantTable,
    item: &Item,
    args: &MigrateArgs,
) -> Result<ItemOutcome, TenantsError> {
    let mut config = match plan_item(item, args.external_id.as_deref(), args.allow_no_external_id) {
        Ok(config) => config,
        Err(outcome) => return Ok(outcome),
    };
    let key = format!("{}/{}", config.tenant_id, config.delivery_type);
    if args.dry_run {
        return Ok(
            match target.get(&config.tenant_id, config.delivery_type).await? {
                Some(_) => ItemOutcome::Exists { key },
                None => ItemOutcome::Ok { key },
            },
        );
    }
    let now = now_rfc3339();
    config.created_at.get_or_insert_with(|| now.clone());
    config.updated_at = Some(now);
    match target.create(&config).await {
        Ok(()) => Ok(ItemOutcome::Ok { key }),
        Err(StoreError::Exists { .. }) => Ok(ItemOutcome::Exists { key }),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::222222222222:role/CustomerLogDistribution-us-east-2";

    fn s(text: &str) -> AttributeValue {
        AttributeValue::S(text.to_owned())
    }

    fn single_key_item(tenant: &str) -> Item {
        Item::from([
            ("tenant_id".to_owned(), s(tenant)),
            ("log_distribution_role_arn".to_owned(), s(ROLE)),
            ("log_group_name".to_owned(), s("/aws/logs/acme")),
            ("target_region".to_owned(), s("us-east-2")),
            ("account_id".to_owned(), s("222222222222")),
            ("status".to_owned(), s("active")),
        ])
    }

    #[test]
    fn a_single_key_item_becomes_a_cloudwatch_config_with_the_given_external_id() {
        let config =
            plan_item(&single_key_item("acme"), Some("123456789012"), false).expect("valid");
        assert_eq!(config.delivery_type.as_str(), "cloudwatch");
        assert_eq!(config.external_id.as_deref(), Some("123456789012"));
        assert_eq!(
            config.extra["account_id"],
            serde_json::json!("222222222222")
        );
        let item = config.to_item().expect("item");
        assert_eq!(item[TYPE_ATTRIBUTE], s("cloudwatch"));
    }

    #[test]
    fn items_that_cannot_be_migrated_say_why() {
        let no_id = plan_item(&single_key_item("acme"), None, false).expect_err("refused");
        assert!(
            matches!(&no_id, ItemOutcome::Invalid { key, reason } if key == "acme/cloudwatch" && reason.contains("external_id")),
            "{no_id:?}"
        );
        assert!(plan_item(&single_key_item("acme"), None, true).is_ok());
        let mut bucket = single_key_item("acme");
        bucket.insert("bucket_name".into(), s("acme-logs"));
        assert!(
            matches!(plan_item(&bucket, Some("x"), false), Err(ItemOutcome::Invalid { reason, .. }) if reason.contains("bucket_name"))
        );
        let mut bad_role = single_key_item("acme");
        bad_role.insert("log_distribution_role_arn".into(), s("not-an-arn"));
        assert!(
            matches!(plan_item(&bad_role, Some("x"), false), Err(ItemOutcome::Invalid { reason, .. }) if reason.contains("log_distribution_role_arn"))
        );
        let mut no_tenant = single_key_item("acme");
        no_tenant.remove("tenant_id");
        assert!(
            matches!(plan_item(&no_tenant, Some("x"), false), Err(ItemOutcome::Invalid { key, .. }) if key.starts_with('?'))
        );
    }
}
