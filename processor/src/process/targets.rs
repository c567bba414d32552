//! An object's delivery targets: for each wanted config, its claimed lease and, for CloudWatch, a
//! service in the tenant's account (credentials from [`crate::credentials`]) with progress whose
//! fingerprint matches the config (a changed config delivers from the first batch again).

use super::attempt::Attempt;
use super::claim::Claimed;
use crate::deliver::cloudwatch::service::{self, LogsService};
use crate::deliver::cloudwatch::{CloudWatchCounts, CloudWatchTarget};
use crate::error::{ConfigFailure, DeliveryError};
use crate::progress::{ProgressKey, ProgressState, fingerprint};
use crate::telemetry::InternalEvent;
use crate::telemetry::events::ProgressReset;
use logrelay_common::key::ObjectKey;
use logrelay_common::tenant::{DeliveryConfig, DeliveryType};
use std::sync::Arc;

/// An S3 config's part of one object.
pub(super) struct S3Target {
    pub(super) config: Arc<DeliveryConfig>,
    pub(super) progress_key: ProgressKey,
    pub(super) state: ProgressState,
}

/// Every wanted config of one object, sorted by what became of its claim.
pub(super) struct Targets {
    /// CloudWatch configs holding a lease, with their services.
    pub(super) cloudwatch: Vec<CloudWatchTarget>,
    /// S3 configs holding a lease.
    pub(super) s3: Vec<S3Target>,
    /// Configs that failed before delivery (no lease, no credentials).
    pub(super) failures: Vec<ConfigFailure>,
    /// Configs that had delivered this object version already.
    pub(super) already_complete: usize,
}

impl Attempt<'_> {
    /// Claims each wanted config's lease and builds its target, one config after the other.
    pub(super) async fn targets(
        &self,
        key: &ObjectKey,
        wanted: &[Arc<DeliveryConfig>],
        etag: &str,
    ) -> Targets {
        let mut targets = Targets {
            cloudwatch: Vec::new(),
            s3: Vec::new(),
            failures: Vec::new(),
            already_complete: 0,
        };
        for config in wanted {
            let progress_key = ProgressKey {
                bucket: self.object.bucket.clone(),
                key: self.object.key.clone(),
                etag: etag.to_owned(),
                tenant_id: key.partition.customer_id.clone(),
                delivery_type: config.delivery_type,
            };
            let state = match self.claim(config, &progress_key).await {
                Claimed::Held(state) => state,
                Claimed::Complete => {
                    targets.already_complete += 1;
                    continue;
                }
                Claimed::Failed(failure) => {
                    targets.failures.push(failure);
                    continue;
                }
            };
            match config.delivery_type {
                DeliveryType::Cloudwatch => {
                    match self
                        .cloudwatch_target(config, key, &progress_key, state)
                        .await
                    {
                        Ok(target) => targets.cloudwatch.push(target),
                        Err(error) => {
                            self.release(vec![&progress_key]).await;
                            targets.failures.push(ConfigFailure {
                                delivery_type: config.delivery_type,
                                error,
                            });
                        }
                    }
                }
                DeliveryType::S3 => targets.s3.push(S3Target {
                    config: config.clone(),
                    progress_key,
                    state,
                }),
            }
        }
        targets
    }

    /// A CloudWatch config's target: a service in the tenant's account, and the claimed state
    /// reset when it was recorded for a different config.
    async fn cloudwatch_target(
        &self,
        config: &Arc<DeliveryConfig>,
        key: &ObjectKey,
        progress_key: &ProgressKey,
        mut state: ProgressState,
    ) -> Result<CloudWatchTarget, DeliveryError> {
        let session = self
            .inner
            .credentials
            .tenant(config, &key.partition.cluster_id)
            .await?;
        let client = service::client(
            &session.config,
            self.inner.limits.request_timeout,
            self.inner.logs_endpoint_url.as_deref(),
        );
        let group = config.log_group_name.clone().unwrap_or_default();
        let service = LogsService::new(
            client,
            &config.tenant_id,
            session.destination,
            group.clone(),
            config.retention_days,
            self.inner.limits.retry,
            self.inner.known_streams.clone(),
        );
        let fingerprint = fingerprint(&[
            &group,
            config.effective_log_stream_template(),
            &config.desired_logs.join("\n"),
            &config.groups.join("\n"),
            &self.inner.batch_limits.max_events.to_string(),
        ]);
        if state
            .fingerprint
            .as_deref()
            .is_some_and(|stored| stored != fingerprint)
            && state.cursor.delivered() > 0
        {
            ProgressReset {
                tenant: &config.tenant_id,
                delivery_type: config.delivery_type,
            }
            .emit();
            state = ProgressState::default();
        }
        state.fingerprint = Some(fingerprint);
        Ok(CloudWatchTarget {
            config: config.clone(),
            service,
            progress_key: progress_key.clone(),
            state,
            counts: CloudWatchCounts::default(),
            batches_resumed: 0,
            failure: None,
        })
    }
}
