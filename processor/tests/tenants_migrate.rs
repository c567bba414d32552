//! `tenants migrate` against the emulator's DynamoDB: a single-key tenant table created as the
//! proof of concept's CloudFormation defines it (HASH `tenant_id`, `AccountIdIndex`,
//! `StatusIndex`) with items as its processor read them, copied into the composite-key table:
//! the per-item report, `--dry-run`, never overwriting, exit codes.

mod tenants_support;

use aws_sdk_dynamodb::types::AttributeValue;
use logrelay_common::tenant::DeliveryType;
use logrelay_processor::admin::store::TenantTable;
use logrelay_testkit::{create_single_key_tenant_table, unique_name};
use std::collections::HashMap;
use tenants_support::{context, run};

const ROLE: &str = "arn:aws:iam::222222222222:role/CustomerLogDistribution-us-east-2";
/// The ExternalId the proof of concept sent: the central account id.
const CENTRAL_ACCOUNT: &str = "123456789012";

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

/// An item of the single-key table, as the proof of concept's processor read it.
fn single_key_item(tenant: &str, group: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("tenant_id".to_owned(), s(tenant)),
        ("log_distribution_role_arn".to_owned(), s(ROLE)),
        ("log_group_name".to_owned(), s(group)),
        ("target_region".to_owned(), s("us-east-2")),
        ("account_id".to_owned(), s("222222222222")),
        ("status".to_owned(), s("active")),
    ])
}

#[tokio::test]
async fn migrate_copies_single_key_items_reports_each_and_never_overwrites() {
    let context = context().await;
    let source = unique_name("poc-tenants");
    create_single_key_tenant_table(&context.aws, &source)
        .await
        .expect("single-key table");
    let client = aws_sdk_dynamodb::Client::new(&context.aws);
    let (acme, globex, broken) = (
        unique_name("acme"),
        unique_name("globex"),
        unique_name("broken"),
    );
    let mut ambiguous = single_key_item(&broken, "/aws/logs/broken");
    ambiguous.insert("bucket_name".to_owned(), s("broken-logs"));
    for item in [
        single_key_item(&acme, "/aws/logs/acme"),
        single_key_item(&globex, "/aws/logs/globex"),
        ambiguous,
    ] {
        client
            .put_item()
            .table_name(&source)
            .set_item(Some(item))
            .send()
            .await
            .expect("put source item");
    }
    // globex is already in the target, with another log group: it must stay as it is.
    let put = run(
        &context,
        &[
            "put",
            "--tenant-id",
            &globex,
            "--type",
            "cloudwatch",
            "--log-distribution-role-arn",
            ROLE,
            "--log-group-name",
            "/already/there",
            "--external-id",
            "kept",
        ],
    )
    .await;
    assert_eq!(put.code, 0, "{put:?}");
    let target = TenantTable::new(&context.aws, &context.table);

    let dry = run(
        &context,
        &[
            "migrate",
            "--from-table",
            &source,
            "--dry-run",
            "--external-id",
            CENTRAL_ACCOUNT,
        ],
    )
    .await;
    assert_eq!(dry.code, 1, "an invalid item fails the run: {dry:?}");
    assert!(
        dry.out
            .contains(&format!("ok {acme}/cloudwatch: would write")),
        "{}",
        dry.out
    );
    assert!(
        dry.out.contains(&format!("exists {globex}/cloudwatch")),
        "{}",
        dry.out
    );
    assert!(
        dry.out.contains(&format!("INVALID {broken}: ")) && dry.out.contains("bucket_name"),
        "{}",
        dry.out
    );
    assert!(
        dry.out
            .contains("1 to write, 1 already present, 1 invalid (dry run")
    );
    assert!(
        target
            .get(&acme, DeliveryType::Cloudwatch)
            .await
            .expect("get")
            .is_none(),
        "a dry run writes nothing"
    );

    let real = run(
        &context,
        &[
            "migrate",
            "--from-table",
            &source,
            "--external-id",
            CENTRAL_ACCOUNT,
        ],
    )
    .await;
    assert_eq!(real.code, 1, "{real:?}");
    assert!(
        real.out.contains(&format!("ok {acme}/cloudwatch: written")),
        "{}",
        real.out
    );
    let migrated = target
        .get(&acme, DeliveryType::Cloudwatch)
        .await
        .expect("get")
        .expect("written")
        .config
        .expect("decodes");
    assert_eq!(migrated.log_group_name.as_deref(), Some("/aws/logs/acme"));
    assert_eq!(migrated.external_id.as_deref(), Some(CENTRAL_ACCOUNT));
    assert_eq!(migrated.target_region.as_deref(), Some("us-east-2"));
    assert!(migrated.enabled && migrated.created_at.is_some());
    assert_eq!(migrated.validate(), Ok(()));
    let kept = target
        .get(&globex, DeliveryType::Cloudwatch)
        .await
        .expect("get")
        .expect("present")
        .config
        .expect("decodes");
    assert_eq!(kept.log_group_name.as_deref(), Some("/already/there"));
    assert_eq!(kept.external_id.as_deref(), Some("kept"));
    assert!(
        target
            .get(&broken, DeliveryType::Cloudwatch)
            .await
            .expect("get")
            .is_none()
            && target
                .get(&broken, DeliveryType::S3)
                .await
                .expect("get")
                .is_none()
    );

    // Run again without the invalid item: everything is present, nothing changes, exit 0.
    client
        .delete_item()
        .table_name(&source)
        .key("tenant_id", s(&broken))
        .send()
        .await
        .expect("delete broken");
    let again = run(
        &context,
        &[
            "migrate",
            "--from-table",
            &source,
            "--external-id",
            CENTRAL_ACCOUNT,
        ],
    )
    .await;
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        again
            .out
            .contains("0 written, 2 already present, 0 invalid"),
        "{}",
        again.out
    );
}

#[tokio::test]
async fn migrate_refuses_configs_without_an_external_id_unless_allowed() {
    let context = context().await;
    let source = unique_name("poc-tenants");
    create_single_key_tenant_table(&context.aws, &source)
        .await
        .expect("single-key table");
    let tenant = unique_name("acme");
    aws_sdk_dynamodb::Client::new(&context.aws)
        .put_item()
        .table_name(&source)
        .set_item(Some(single_key_item(&tenant, "/aws/logs/acme")))
        .send()
        .await
        .expect("put source item");
    let refused = run(&context, &["migrate", "--from-table", &source]).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.out.contains("external_id") && refused.out.contains("--external-id"),
        "{}",
        refused.out
    );
    let same = run(&context, &["migrate", "--from-table", &context.table]).await;
    assert_eq!(same.code, 2, "{same:?}");
    let allowed = run(
        &context,
        &["migrate", "--from-table", &source, "--allow-no-external-id"],
    )
    .await;
    assert_eq!(allowed.code, 0, "{allowed:?}");
    assert!(
        allowed
            .out
            .contains(&format!("ok {tenant}/cloudwatch: written"))
    );
}
