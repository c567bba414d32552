//! Items without a `type` attribute: the items of a single-key tenant table (HASH `tenant_id` only,
//! one CloudWatch delivery per tenant), as the proof of concept's table holds them. Such an item
//! is read as a `cloudwatch` config when that is unambiguous (it names a `log_group_name` and no
//! `bucket_name`); anything else stays invalid, with the reason. `tenants migrate` writes these
//! items into the composite-key table with their type set.

use super::item::Item;
use aws_sdk_dynamodb::types::AttributeValue;
use logrelay_common::tenant::DeliveryType;

/// The attribute that holds the delivery type.
pub const TYPE_ATTRIBUTE: &str = "type";

/// Why an item without `type` cannot be read as a config of one type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UntypedError {
    /// It names a bucket: it could be an S3 config, or a CloudWatch config with an odd attribute.
    #[error(
        "item has no `type` and names a bucket_name: cannot tell an s3 config from a cloudwatch one; set `type`"
    )]
    Ambiguous,
    /// It names no log group: nothing says what it delivers.
    #[error(
        "item has no `type` and no log_group_name: not a single-key (cloudwatch) config; set `type`"
    )]
    NoLogGroup,
}

/// Whether the item has no `type` attribute at all.
pub fn is_untyped(item: &Item) -> bool {
    !item.contains_key(TYPE_ATTRIBUTE)
}

/// The type an item without `type` stands for: `cloudwatch` when it has a string `log_group_name`
/// and no `bucket_name`.
pub fn inferred_type(item: &Item) -> Result<DeliveryType, UntypedError> {
    if item.contains_key("bucket_name") {
        return Err(UntypedError::Ambiguous);
    }
    match item.get("log_group_name") {
        Some(AttributeValue::S(group)) if !group.is_empty() => Ok(DeliveryType::Cloudwatch),
        _ => Err(UntypedError::NoLogGroup),
    }
}

/// A copy of `item` with its inferred `type` set.
pub fn with_inferred_type(item: &Item) -> Result<Item, UntypedError> {
    let kind = inferred_type(item)?;
    let mut typed = item.clone();
    typed.insert(
        TYPE_ATTRIBUTE.to_owned(),
        AttributeValue::S(kind.as_str().to_owned()),
    );
    Ok(typed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> AttributeValue {
        AttributeValue::S(text.to_owned())
    }

    #[test]
    fn a_log_group_without_a_bucket_is_a_cloudwatch_config() {
        let item = Item::from([
            ("tenant_id".to_owned(), s("acme")),
            ("log_group_name".to_owned(), s("/rosa/acme")),
        ]);
        assert!(is_untyped(&item));
        let typed = with_inferred_type(&item).expect("inferred");
        assert_eq!(typed[TYPE_ATTRIBUTE], s("cloudwatch"));
        assert!(!is_untyped(&typed));
    }

    #[test]
    fn a_bucket_or_no_log_group_is_not_guessed() {
        let bucket = Item::from([
            ("tenant_id".to_owned(), s("acme")),
            ("log_group_name".to_owned(), s("/rosa/acme")),
            ("bucket_name".to_owned(), s("acme-logs")),
        ]);
        assert_eq!(inferred_type(&bucket), Err(UntypedError::Ambiguous));
        let bare = Item::from([("tenant_id".to_owned(), s("acme"))]);
        assert_eq!(inferred_type(&bare), Err(UntypedError::NoLogGroup));
        let empty_group = Item::from([
            ("tenant_id".to_owned(), s("acme")),
            ("log_group_name".to_owned(), s("")),
        ]);
        assert_eq!(inferred_type(&empty_group), Err(UntypedError::NoLogGroup));
    }
}
