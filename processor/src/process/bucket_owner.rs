//! Which account must own a tenant's bucket, sent as `ExpectedBucketOwner` on every S3 copy: the
//! S3 config's `bucket_owner_account_id`, else the account of the tenant's cloudwatch role. A copy
//! whose owner cannot be named is refused rather than sent unguarded.

use super::attempt::Attempt;
use crate::error::DeliveryError;
use logrelay_common::tenant::{DeliveryConfig, DeliveryType, role_arn_account};
use std::sync::Arc;

/// The account of the first cloudwatch config's role among `configs` (a tenant's configs).
pub(super) fn account_of_cloudwatch_role(configs: &[Arc<DeliveryConfig>]) -> Option<String> {
    configs
        .iter()
        .filter(|config| config.delivery_type == DeliveryType::Cloudwatch)
        .filter_map(|config| config.log_distribution_role_arn.as_deref())
        .find_map(role_arn_account)
        .map(str::to_owned)
}

impl Attempt<'_> {
    /// The account that must own the bucket of the S3 config `config`.
    pub(super) async fn bucket_owner(
        &self,
        config: &DeliveryConfig,
    ) -> Result<String, DeliveryError> {
        if let Some(account) = &config.bucket_owner_account_id {
            return Ok(account.clone());
        }
        let configs = self
            .inner
            .tenants
            .configs(&config.tenant_id)
            .await
            .map_err(|failure| {
                DeliveryError::transient(
                    "tenant_lookup",
                    format!("cannot read the tenant's configs: {}", failure.message),
                )
            })?;
        account_of_cloudwatch_role(&configs.deliveries).ok_or_else(|| {
            DeliveryError::permanent(
                "bucket_owner_unknown",
                "the s3 config has no bucket_owner_account_id and the tenant has no cloudwatch role \
                 to take the account from; the copy is not made",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> Arc<DeliveryConfig> {
        Arc::new(serde_json::from_value(json).expect("config"))
    }

    #[test]
    fn the_owner_defaults_to_the_account_of_the_tenants_cloudwatch_role() {
        let s3 = config(serde_json::json!({"tenant_id": "acme", "type": "s3", "bucket_name": "b"}));
        let cloudwatch = config(serde_json::json!({
            "tenant_id": "acme", "type": "cloudwatch", "log_group_name": "/g",
            "log_distribution_role_arn": "arn:aws:iam::222222222222:role/logs",
        }));
        assert_eq!(
            account_of_cloudwatch_role(&[s3.clone(), cloudwatch]).as_deref(),
            Some("222222222222")
        );
        assert_eq!(account_of_cloudwatch_role(&[s3]), None);
    }
}
