//! Reading a tenant's delivery configs from the tenant table: `Query(tenant_id)` over every page,
//! each item decoded and validated on its own. The query works on a single-key table too; its
//! items (no `type`) are read as described in [`super::untyped`].

use super::item::DynamoItem;
use super::untyped;
use crate::retry::{Classified, RetryPolicy, with_retries};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use logrelay_common::tenant::DeliveryConfig;
use std::collections::HashMap;

/// Pages one tenant may have before the lookup stops (a tenant has one item per delivery type;
/// this only guards against a runaway table).
pub const MAX_QUERY_PAGES: usize = 100;

/// One item of the tenant, as far as it could be read.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigItem {
    /// Decoded and valid.
    Valid(Box<DeliveryConfig>),
    /// Decoded and valid, read from an item without `type` (a single-key table's item) as the
    /// type [`untyped::inferred_type`] gives.
    Untyped(Box<DeliveryConfig>),
    /// Not usable: its type (when readable) and every problem.
    Invalid {
        /// The item's `type` attribute, when it is a string.
        delivery_type: Option<String>,
        /// What is wrong, fields named.
        problems: Vec<String>,
    },
}

/// Reads every item of `tenant_id` from `table`, following `LastEvaluatedKey`.
pub async fn query_tenant(
    client: &Client,
    table: &str,
    tenant_id: &str,
    retry: &RetryPolicy,
) -> Result<Vec<ConfigItem>, Classified> {
    let mut items = Vec::new();
    let mut start_key: Option<HashMap<String, AttributeValue>> = None;
    for _ in 0..MAX_QUERY_PAGES {
        let page = with_retries(retry, tenant_id, "dynamodb:Query", || {
            client
                .query()
                .table_name(table)
                .key_condition_expression("#tenant = :tenant")
                .expression_attribute_names("#tenant", "tenant_id")
                .expression_attribute_values(":tenant", AttributeValue::S(tenant_id.to_owned()))
                .set_exclusive_start_key(start_key.clone())
                .send()
        })
        .await?;
        items.extend(page.items().iter().map(read_item));
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start_key = Some(key),
            _ => return Ok(items),
        }
    }
    tracing::warn!(
        tenant = tenant_id,
        pages = MAX_QUERY_PAGES,
        "tenant has more config pages than read"
    );
    Ok(items)
}

/// Decodes and validates one item.
pub fn read_item(item: &HashMap<String, AttributeValue>) -> ConfigItem {
    if untyped::is_untyped(item) {
        return match untyped::with_inferred_type(item) {
            Ok(typed) => match read_item(&typed) {
                ConfigItem::Valid(config) => ConfigItem::Untyped(config),
                other => other,
            },
            Err(error) => ConfigItem::Invalid {
                delivery_type: None,
                problems: vec![error.to_string()],
            },
        };
    }
    let delivery_type = item
        .get("type")
        .and_then(|value| value.as_s().ok())
        .cloned();
    match DeliveryConfig::from_item(item) {
        Ok(config) => match config.validate() {
            Ok(()) => ConfigItem::Valid(Box::new(config)),
            Err(problems) => ConfigItem::Invalid {
                delivery_type,
                problems: problems.iter().map(ToString::to_string).collect(),
            },
        },
        Err(error) => ConfigItem::Invalid {
            delivery_type,
            problems: vec![error.to_string()],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> AttributeValue {
        AttributeValue::S(text.to_owned())
    }

    #[test]
    fn a_valid_item_is_read() {
        let item = HashMap::from([
            ("tenant_id".to_owned(), s("acme")),
            ("type".to_owned(), s("s3")),
            ("bucket_name".to_owned(), s("acme-logs")),
        ]);
        assert!(
            matches!(read_item(&item), ConfigItem::Valid(config) if config.bucket_name.as_deref() == Some("acme-logs"))
        );
    }

    #[test]
    fn an_invalid_item_names_its_type_and_problems() {
        let item = HashMap::from([
            ("tenant_id".to_owned(), s("acme")),
            ("type".to_owned(), s("cloudwatch")),
            ("log_group_name".to_owned(), s("bad group!")),
        ]);
        let ConfigItem::Invalid {
            delivery_type,
            problems,
        } = read_item(&item)
        else {
            panic!("expected invalid");
        };
        assert_eq!(delivery_type.as_deref(), Some("cloudwatch"));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("log_distribution_role_arn")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("log_group_name")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_single_key_item_is_read_as_cloudwatch() {
        let item = HashMap::from([
            ("tenant_id".to_owned(), s("acme")),
            (
                "log_distribution_role_arn".to_owned(),
                s("arn:aws:iam::123456789012:role/CustomerLogDistribution-us-east-2"),
            ),
            ("log_group_name".to_owned(), s("/aws/logs/acme")),
            ("target_region".to_owned(), s("us-east-2")),
            ("account_id".to_owned(), s("123456789012")),
            ("status".to_owned(), s("active")),
        ]);
        let ConfigItem::Untyped(config) = read_item(&item) else {
            panic!("expected an untyped config: {:?}", read_item(&item));
        };
        assert_eq!(
            config.delivery_type,
            logrelay_common::tenant::DeliveryType::Cloudwatch
        );
        assert_eq!(config.log_group_name.as_deref(), Some("/aws/logs/acme"));
        assert_eq!(config.extra["status"], serde_json::json!("active"));
    }

    #[test]
    fn an_ambiguous_single_key_item_stays_invalid() {
        let item = HashMap::from([
            ("tenant_id".to_owned(), s("acme")),
            ("bucket_name".to_owned(), s("acme-logs")),
        ]);
        let ConfigItem::Invalid { problems, .. } = read_item(&item) else {
            panic!("expected invalid");
        };
        assert!(problems[0].contains("bucket_name"), "{problems:?}");
    }

    #[test]
    fn an_undecodable_item_is_invalid_not_fatal() {
        let item = HashMap::from([
            ("tenant_id".to_owned(), s("acme")),
            ("type".to_owned(), s("carrier-pigeon")),
        ]);
        assert!(matches!(
            read_item(&item),
            ConfigItem::Invalid { delivery_type: Some(t), .. } if t == "carrier-pigeon"
        ));
    }
}
