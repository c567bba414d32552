//! Tenant configs as items of the tenant table: a [`DeliveryConfig`] read from and written as a
//! DynamoDB item (serde_dynamo over the config's serde model; unknown attributes kept in `extra`).
//! Only the processor reaches DynamoDB, so the mapping lives here, not in `logrelay_common`.

use aws_sdk_dynamodb::types::AttributeValue;
use logrelay_common::tenant::DeliveryConfig;
use std::collections::HashMap;

/// A tenant table item, as the SDK carries it.
pub type Item = HashMap<String, AttributeValue>;

/// Reading or writing a config as an item failed.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    /// A DynamoDB item could not be read as a config.
    #[error(
        "cannot read tenant config item (tenant_id {tenant_id:?}, type {delivery_type:?}): {source}"
    )]
    Item {
        /// The item's `tenant_id`, if it is a string.
        tenant_id: Option<String>,
        /// The item's `type`, if it is a string.
        delivery_type: Option<String>,
        /// What serde_dynamo reported.
        #[source]
        source: serde_dynamo::Error,
    },
    /// A config could not be written as a DynamoDB item.
    #[error("cannot write tenant config item: {0}")]
    Encode(#[source] serde_dynamo::Error),
}

/// A [`DeliveryConfig`] as a tenant table item.
pub trait DynamoItem: Sized {
    /// Reads a DynamoDB item. Unknown attributes go to `extra`; this does not validate.
    fn from_item(item: &Item) -> Result<Self, ItemError>;
    /// Writes a DynamoDB item (unset optional fields are left out, `extra` is written back).
    fn to_item(&self) -> Result<Item, ItemError>;
}

impl DynamoItem for DeliveryConfig {
    fn from_item(item: &Item) -> Result<Self, ItemError> {
        serde_dynamo::from_item(item.clone()).map_err(|source| {
            let text = |name: &str| match item.get(name) {
                Some(AttributeValue::S(value)) => Some(value.clone()),
                _ => None,
            };
            ItemError::Item {
                tenant_id: text("tenant_id"),
                delivery_type: text("type"),
                source,
            }
        })
    }

    fn to_item(&self) -> Result<Item, ItemError> {
        serde_dynamo::to_item(self).map_err(ItemError::Encode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logrelay_common::tenant::DeliveryType;

    const ROLE: &str = "arn:aws:iam::123456789012:role/logrelay-delivery";

    fn cloudwatch() -> DeliveryConfig {
        let mut config: DeliveryConfig = serde_json::from_value(serde_json::json!({
            "tenant_id": "acme",
            "type": "cloudwatch",
            "log_distribution_role_arn": ROLE,
            "log_group_name": "/rosa/acme",
        }))
        .expect("config");
        config.enabled = true;
        config
    }

    fn s3() -> DeliveryConfig {
        DeliveryConfig {
            delivery_type: DeliveryType::S3,
            log_distribution_role_arn: None,
            log_group_name: None,
            bucket_name: Some("acme-logs".into()),
            ..cloudwatch()
        }
    }

    fn s(value: &str) -> AttributeValue {
        AttributeValue::S(value.to_owned())
    }

    #[test]
    fn item_with_defaults_reads() {
        let item = HashMap::from([
            ("tenant_id".to_owned(), s("acme")),
            ("type".to_owned(), s("s3")),
            ("bucket_name".to_owned(), s("acme-logs")),
        ]);
        let config = DeliveryConfig::from_item(&item).expect("reads");
        assert_eq!(config, s3());
        assert!(config.enabled);
        assert_eq!(config.effective_bucket_prefix(), "ROSA/cluster-logs/");
    }

    #[test]
    fn item_round_trips_and_keeps_unknown_attributes() {
        let item = HashMap::from([
            ("tenant_id".to_owned(), s("acme")),
            ("type".to_owned(), s("cloudwatch")),
            ("enabled".to_owned(), AttributeValue::Bool(false)),
            (
                "desired_logs".to_owned(),
                AttributeValue::L(vec![s("a"), s("b")]),
            ),
            ("groups".to_owned(), AttributeValue::Ss(vec!["API".into()])),
            ("ttl".to_owned(), AttributeValue::N("1700000000".into())),
            ("retention_days".to_owned(), AttributeValue::N("30".into())),
            ("log_distribution_role_arn".to_owned(), s(ROLE)),
            ("log_group_name".to_owned(), s("/rosa/acme")),
            ("future_flag".to_owned(), AttributeValue::Bool(true)),
            (
                "future_map".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "n".to_owned(),
                    AttributeValue::N("1.5".into()),
                )])),
            ),
        ]);
        let config = DeliveryConfig::from_item(&item).expect("reads");
        assert!(!config.enabled);
        assert_eq!(config.desired_logs, ["a", "b"]);
        assert_eq!(config.groups, ["API"]);
        assert_eq!(config.ttl, Some(1_700_000_000));
        assert_eq!(config.retention_days, Some(30));
        assert_eq!(config.extra["future_flag"], serde_json::json!(true));
        assert_eq!(config.extra["future_map"], serde_json::json!({"n": 1.5}));
        assert_eq!(config.validate(), Ok(()));
        let written = config.to_item().expect("writes");
        assert_eq!(written["type"], s("cloudwatch"));
        assert_eq!(written["future_flag"], AttributeValue::Bool(true));
        assert!(
            !written.contains_key("bucket_name"),
            "unset fields are left out"
        );
        assert_eq!(
            DeliveryConfig::from_item(&written).expect("reads back"),
            config
        );
    }

    #[test]
    fn bad_item_error_names_the_tenant() {
        let item = HashMap::from([
            ("tenant_id".to_owned(), s("acme")),
            ("type".to_owned(), s("email")),
        ]);
        let error = DeliveryConfig::from_item(&item).expect_err("unknown type");
        assert!(
            matches!(&error, ItemError::Item { tenant_id: Some(t), delivery_type: Some(d), .. } if t == "acme" && d == "email"),
            "{error}"
        );
        let missing = HashMap::from([("type".to_owned(), s("s3"))]);
        assert!(DeliveryConfig::from_item(&missing).is_err());
        let wrong_type = HashMap::from([
            ("tenant_id".to_owned(), s("acme")),
            ("type".to_owned(), s("s3")),
            ("retention_days".to_owned(), s("thirty")),
        ]);
        assert!(DeliveryConfig::from_item(&wrong_type).is_err());
    }

    /// Converts DynamoDB JSON (as the AWS CLI takes it) into an attribute value.
    fn from_dynamodb_json(value: &serde_json::Value) -> AttributeValue {
        let (kind, inner) = value
            .as_object()
            .and_then(|o| o.iter().next())
            .expect("typed value");
        let text = || inner.as_str().expect("string").to_owned();
        match kind.as_str() {
            "S" => AttributeValue::S(text()),
            "N" => AttributeValue::N(text()),
            "BOOL" => AttributeValue::Bool(inner.as_bool().expect("bool")),
            "L" => AttributeValue::L(
                inner
                    .as_array()
                    .expect("list")
                    .iter()
                    .map(from_dynamodb_json)
                    .collect(),
            ),
            "SS" => AttributeValue::Ss(
                inner
                    .as_array()
                    .expect("list")
                    .iter()
                    .map(|v| v.as_str().expect("string").to_owned())
                    .collect(),
            ),
            other => panic!("type {other} not used in the docs"),
        }
    }

    /// The fenced block after the first line starting with `fence` in the tenant config doc.
    fn doc_block(fence: &str) -> String {
        let doc = include_str!("../../../docs/tenant-config.md");
        doc.split(fence)
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("the doc has the example")
            .to_owned()
    }

    #[test]
    fn the_documented_item_is_the_first_documented_yaml_config() {
        let configs =
            DeliveryConfig::list_from_yaml(&doc_block("```yaml")).expect("YAML example reads");
        let json: serde_json::Value =
            serde_json::from_str(&doc_block("```json")).expect("JSON example");
        let item: HashMap<String, AttributeValue> = json
            .as_object()
            .expect("an item")
            .iter()
            .map(|(k, v)| (k.clone(), from_dynamodb_json(v)))
            .collect();
        let config = DeliveryConfig::from_item(&item).expect("item example reads");
        assert_eq!(config, configs[0], "the item is the first YAML entry");
    }
}
