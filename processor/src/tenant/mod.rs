//! Tenant delivery configs: looked up in DynamoDB by tenant id, cached per tenant for a short TTL,
//! each config validated on its own so one invalid config never blocks the tenant's others.
//!
//! Invalid configs are reported (logged and counted) once per lookup, not once per object; so are
//! configs read from items without `type` (see [`untyped`]).

pub mod item;
mod store;
pub mod untyped;

pub use item::{DynamoItem, Item, ItemError};
pub use store::{ConfigItem, MAX_QUERY_PAGES, query_tenant, read_item};

use crate::retry::RetryPolicy;
use crate::telemetry::InternalEvent;
use crate::telemetry::events::{ConfigInvalid, ConfigUntyped};
use aws_sdk_dynamodb::Client;
use logrelay_common::tenant::DeliveryConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a tenant's configs are reused before they are read again (short, so a
/// config change reaches the processor within a minute).
pub const DEFAULT_TENANT_CACHE_TTL: Duration = Duration::from_secs(60);
/// Tenants kept in the cache; past this, expired entries are dropped, then the oldest.
pub const MAX_CACHED_TENANTS: usize = 10_000;

/// The usable configs of one tenant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantConfigs {
    /// Tenant id.
    pub tenant_id: String,
    /// Valid, enabled configs.
    pub deliveries: Vec<Arc<DeliveryConfig>>,
    /// Configs skipped as invalid.
    pub invalid: usize,
    /// Valid configs that are switched off.
    pub disabled: usize,
}

impl TenantConfigs {
    /// Sorts items into usable, invalid and disabled configs.
    pub fn from_items(tenant_id: &str, items: Vec<ConfigItem>) -> Self {
        let mut configs = TenantConfigs {
            tenant_id: tenant_id.to_owned(),
            ..Default::default()
        };
        for item in items {
            match item {
                ConfigItem::Untyped(config) => {
                    ConfigUntyped {
                        tenant: tenant_id,
                        delivery_type: config.delivery_type.as_str(),
                    }
                    .emit();
                    configs.add_valid(tenant_id, *config);
                }
                ConfigItem::Valid(config) => configs.add_valid(tenant_id, *config),
                ConfigItem::Invalid {
                    delivery_type,
                    problems,
                } => {
                    configs.invalid += 1;
                    ConfigInvalid {
                        tenant: tenant_id,
                        delivery_type: delivery_type.as_deref().unwrap_or("unknown"),
                        problems: &problems.join("; "),
                    }
                    .emit();
                }
            }
        }
        configs
    }

    /// Counts a valid config as usable or disabled; one of another tenant as invalid.
    fn add_valid(&mut self, tenant_id: &str, config: DeliveryConfig) {
        if config.tenant_id != tenant_id {
            // Cannot happen with a Query on the key; guard the isolation boundary anyway.
            self.invalid += 1;
            ConfigInvalid {
                tenant: tenant_id,
                delivery_type: config.delivery_type.as_str(),
                problems: "item belongs to another tenant",
            }
            .emit();
        } else if !config.enabled {
            self.disabled += 1;
        } else {
            self.deliveries.push(Arc::new(config));
        }
    }
}

/// Where and how to look tenants up.
#[derive(Debug, Clone)]
pub struct TenantDirectory {
    client: Client,
    table: String,
    ttl: Duration,
    retry: RetryPolicy,
    cache: Arc<Mutex<HashMap<String, Slot>>>,
}

type Slot = Arc<tokio::sync::Mutex<Option<(Instant, Arc<TenantConfigs>)>>>;

/// The tenant id of [`TenantDirectory::probe`]'s query: not a valid tenant id (`.`), so no item
/// can match it.
pub const PROBE_TENANT: &str = ".probe";

impl TenantDirectory {
    /// A directory over `table`, caching each tenant for `ttl`.
    pub fn new(
        client: Client,
        table: impl Into<String>,
        ttl: Duration,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            client,
            table: table.into(),
            ttl,
            retry,
            cache: Arc::default(),
        }
    }

    /// The tenant's configs, from the cache when fresh. Concurrent lookups of one tenant share one
    /// query. Failures are not cached.
    pub async fn configs(
        &self,
        tenant_id: &str,
    ) -> Result<Arc<TenantConfigs>, crate::retry::Classified> {
        let slot = self.slot(tenant_id);
        let mut entry = slot.lock().await;
        if let Some((fetched, configs)) = entry.as_ref()
            && fetched.elapsed() < self.ttl
        {
            return Ok(configs.clone());
        }
        let items = query_tenant(&self.client, &self.table, tenant_id, &self.retry).await?;
        let configs = Arc::new(TenantConfigs::from_items(tenant_id, items));
        *entry = Some((Instant::now(), configs.clone()));
        Ok(configs)
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Proves the table answers: one query for a tenant id that cannot exist ([`PROBE_TENANT`]),
    /// retried like every lookup. A missing table or refused access fails here, at start, instead
    /// of on every object.
    pub async fn probe(&self) -> Result<(), crate::retry::Classified> {
        query_tenant(&self.client, &self.table, PROBE_TENANT, &self.retry)
            .await
            .map(|_| ())
    }

    fn slot(&self, tenant_id: &str) -> Slot {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !cache.contains_key(tenant_id) && cache.len() >= MAX_CACHED_TENANTS {
            let ttl = self.ttl;
            cache.retain(|_, slot| {
                slot.try_lock()
                    .map(|entry| {
                        entry
                            .as_ref()
                            .is_some_and(|(fetched, _)| fetched.elapsed() < ttl)
                    })
                    .unwrap_or(true)
            });
            if cache.len() >= MAX_CACHED_TENANTS {
                cache.clear();
            }
        }
        cache.entry(tenant_id.to_owned()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logrelay_common::tenant::DeliveryType;

    fn config(tenant: &str, kind: DeliveryType, enabled: bool) -> DeliveryConfig {
        let mut config: DeliveryConfig = serde_json::from_value(serde_json::json!({
            "tenant_id": tenant,
            "type": kind.as_str(),
            "enabled": enabled,
        }))
        .expect("minimal config");
        config.bucket_name = Some("b".into());
        config
    }

    #[test]
    fn invalid_and_disabled_configs_do_not_hide_the_valid_one() {
        let items = vec![
            ConfigItem::Invalid {
                delivery_type: Some("cloudwatch".into()),
                problems: vec!["log_group_name: required".into()],
            },
            ConfigItem::Valid(Box::new(config("acme", DeliveryType::S3, true))),
            ConfigItem::Valid(Box::new(config("acme", DeliveryType::Cloudwatch, false))),
        ];
        let configs = TenantConfigs::from_items("acme", items);
        assert_eq!(configs.deliveries.len(), 1);
        assert_eq!(configs.deliveries[0].delivery_type, DeliveryType::S3);
        assert_eq!((configs.invalid, configs.disabled), (1, 1));
    }

    #[test]
    fn an_untyped_config_delivers_and_is_counted() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let configs = {
            let _guard = metrics::set_default_local_recorder(&recorder);
            TenantConfigs::from_items(
                "acme",
                vec![ConfigItem::Untyped(Box::new(config(
                    "acme",
                    DeliveryType::Cloudwatch,
                    true,
                )))],
            )
        };
        assert_eq!(configs.deliveries.len(), 1);
        assert_eq!(configs.invalid, 0);
        let rendered = handle.render();
        assert!(
            rendered.contains(&format!(
                "{}{{tenant=\"acme\",type=\"cloudwatch\"}} 1",
                crate::telemetry::events::CONFIGS_UNTYPED_TOTAL
            )),
            "{rendered}"
        );
    }

    #[test]
    fn a_config_of_another_tenant_is_never_used() {
        let configs = TenantConfigs::from_items(
            "acme",
            vec![ConfigItem::Valid(Box::new(config(
                "other",
                DeliveryType::S3,
                true,
            )))],
        );
        assert!(configs.deliveries.is_empty());
        assert_eq!(configs.invalid, 1);
    }
}
