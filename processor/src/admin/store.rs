//! The tenant config table as the `tenants` commands change it: conditional create (never
//! overwrite by accident), replace guarded by the `updated_at` that was read (never lose a
//! concurrent change), delete and enable/disable only of items that exist, and a paginated scan.
//!
//! The processor itself only reads the table (`crate::tenant`).

use crate::tenant::{DynamoItem, ItemError};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use logrelay_common::aws::AwsError;
use logrelay_common::tenant::{DeliveryConfig, DeliveryType};
use std::collections::HashMap;

/// One DynamoDB item, as the SDK returns it.
pub type Item = HashMap<String, AttributeValue>;

/// DynamoDB's error code when a condition expression is false.
const CONDITIONAL_CHECK_FAILED: &str = "ConditionalCheckFailedException";

/// Largest page a scan asks for (DynamoDB returns at most 1 MB per page anyway).
pub const MAX_PAGE_SIZE: i32 = 1_000;

/// A change to the table failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// DynamoDB failed (unreachable, access denied, table missing, …).
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// A create found the item already there.
    #[error("{tenant_id}/{delivery_type} already exists (use --update to replace it)")]
    Exists {
        /// Tenant.
        tenant_id: String,
        /// Type.
        delivery_type: DeliveryType,
    },
    /// The item is not in the table.
    #[error("{tenant_id}/{delivery_type} does not exist")]
    NotFound {
        /// Tenant.
        tenant_id: String,
        /// Type.
        delivery_type: DeliveryType,
    },
    /// The item changed between reading and writing it.
    #[error(
        "{tenant_id}/{delivery_type} was changed by someone else meanwhile; run the command again"
    )]
    Conflict {
        /// Tenant.
        tenant_id: String,
        /// Type.
        delivery_type: DeliveryType,
    },
    /// A config could not be written as an item.
    #[error(transparent)]
    Encode(#[from] ItemError),
}

/// One stored item: its config (or why it cannot be read) and its raw `updated_at`, the guard of
/// a later replace.
#[derive(Debug)]
pub struct Stored {
    /// The decoded config.
    pub config: Result<DeliveryConfig, ItemError>,
    /// `updated_at` as stored, when it is a string.
    pub updated_at: Option<String>,
}

/// One page of a scan.
#[derive(Debug, Default)]
pub struct ScanPage {
    /// The items of the page, decoded (undecodable items are errors naming their key).
    pub configs: Vec<Result<DeliveryConfig, ItemError>>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Item>,
}

/// The tenant config table.
#[derive(Debug, Clone)]
pub struct TenantTable {
    client: Client,
    table: String,
}

impl TenantTable {
    /// The table `table`, reached with `aws`.
    pub fn new(aws: &SdkConfig, table: impl Into<String>) -> Self {
        Self {
            client: aws_sdk_dynamodb::Client::new(aws),
            table: table.into(),
        }
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.table
    }

    /// Reads one item (strongly consistent): `None` when absent, an error when undecodable.
    pub async fn get(
        &self,
        tenant_id: &str,
        delivery_type: DeliveryType,
    ) -> Result<Option<Stored>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant_id, delivery_type)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| AwsError::from_sdk(self.operation("GetItem"), error))?;
        Ok(output.item.map(|item| Stored {
            config: DeliveryConfig::from_item(&item),
            updated_at: match item.get("updated_at") {
                Some(AttributeValue::S(text)) => Some(text.clone()),
                _ => None,
            },
        }))
    }

    /// Writes a config that must not exist yet.
    pub async fn create(&self, config: &DeliveryConfig) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(config.to_item()?))
            .condition_expression("attribute_not_exists(tenant_id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if is_condition_failure(&error) => Err(StoreError::Exists {
                tenant_id: config.tenant_id.clone(),
                delivery_type: config.delivery_type,
            }),
            Err(error) => Err(AwsError::from_sdk(self.operation("PutItem"), error).into()),
        }
    }

    /// Replaces an existing config, only if its `updated_at` is still `seen_updated_at` (the
    /// value read before; `None` when it had none).
    pub async fn replace(
        &self,
        config: &DeliveryConfig,
        seen_updated_at: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(config.to_item()?));
        request = match seen_updated_at {
            Some(seen) => request
                .condition_expression("updated_at = :seen")
                .expression_attribute_values(":seen", AttributeValue::S(seen.to_owned())),
            None => request.condition_expression(
                "attribute_exists(tenant_id) AND attribute_not_exists(updated_at)",
            ),
        };
        match request.send().await {
            Ok(_) => Ok(()),
            Err(error) if is_condition_failure(&error) => Err(StoreError::Conflict {
                tenant_id: config.tenant_id.clone(),
                delivery_type: config.delivery_type,
            }),
            Err(error) => Err(AwsError::from_sdk(self.operation("PutItem"), error).into()),
        }
    }

    /// Deletes an existing item.
    pub async fn delete(
        &self,
        tenant_id: &str,
        delivery_type: DeliveryType,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant_id, delivery_type)))
            .condition_expression("attribute_exists(tenant_id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if is_condition_failure(&error) => Err(StoreError::NotFound {
                tenant_id: tenant_id.to_owned(),
                delivery_type,
            }),
            Err(error) => Err(AwsError::from_sdk(self.operation("DeleteItem"), error).into()),
        }
    }

    /// Sets `enabled` and `updated_at` of an existing item, only if its `updated_at` is still
    /// `seen_updated_at`.
    pub async fn set_enabled(
        &self,
        tenant_id: &str,
        delivery_type: DeliveryType,
        enabled: bool,
        now: &str,
        seen_updated_at: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant_id, delivery_type)))
            .update_expression("SET enabled = :enabled, updated_at = :now")
            .expression_attribute_values(":enabled", AttributeValue::Bool(enabled))
            .expression_attribute_values(":now", AttributeValue::S(now.to_owned()));
        request = match seen_updated_at {
            Some(seen) => request
                .condition_expression("updated_at = :seen")
                .expression_attribute_values(":seen", AttributeValue::S(seen.to_owned())),
            None => request.condition_expression(
                "attribute_exists(tenant_id) AND attribute_not_exists(updated_at)",
            ),
        };
        match request.send().await {
            Ok(_) => Ok(()),
            Err(error) if is_condition_failure(&error) => Err(StoreError::Conflict {
                tenant_id: tenant_id.to_owned(),
                delivery_type,
            }),
            Err(error) => Err(AwsError::from_sdk(self.operation("UpdateItem"), error).into()),
        }
    }

    /// One page of a full scan of at most `page_size` items, starting at `start` (`None`: the
    /// beginning).
    pub async fn scan_page(
        &self,
        page_size: i32,
        start: Option<Item>,
    ) -> Result<ScanPage, StoreError> {
        let output = self
            .client
            .scan()
            .table_name(&self.table)
            .limit(page_size.clamp(1, MAX_PAGE_SIZE))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|error| AwsError::from_sdk(self.operation("Scan"), error))?;
        Ok(ScanPage {
            configs: output
                .items
                .unwrap_or_default()
                .iter()
                .map(DeliveryConfig::from_item)
                .collect(),
            next: output.last_evaluated_key.filter(|key| !key.is_empty()),
        })
    }

    fn operation(&self, action: &str) -> String {
        format!("dynamodb:{action} on table {}", self.table)
    }
}

/// The primary key of an item.
fn key(tenant_id: &str, delivery_type: DeliveryType) -> Item {
    HashMap::from([
        (
            "tenant_id".to_owned(),
            AttributeValue::S(tenant_id.to_owned()),
        ),
        (
            "type".to_owned(),
            AttributeValue::S(delivery_type.as_str().to_owned()),
        ),
    ])
}

/// Whether a write failed its condition expression.
fn is_condition_failure<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    error.code() == Some(CONDITIONAL_CHECK_FAILED)
}
