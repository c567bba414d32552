//! An attempt's progress leases: claiming one config's lease for the object (the state earlier
//! attempts left, or a fresh one under `force_redelivery`; "already complete"; or why the lease
//! cannot be had), and the one path that ends a held lease, completed or released.

use super::attempt::Attempt;
use crate::error::{ConfigFailure, DeliveryError};
use crate::progress::{Claim, ProgressKey, ProgressState};
use crate::telemetry::InternalEvent;
use crate::telemetry::events::ForcedRedelivery;
use logrelay_common::tenant::DeliveryConfig;

/// How a held lease ends.
pub(super) enum Ending<'s> {
    /// The config is delivered: mark it complete with this state.
    Complete(&'s ProgressState),
    /// The config is not delivered: give the lease up for a redelivery.
    Release,
    /// The config is not delivered: record this state (batches whose progress the sender left
    /// to the end) and give the lease up.
    SaveAndRelease(&'s ProgressState),
}

/// What claiming one config's lease came to.
pub(super) enum Claimed {
    /// This attempt holds the lease; deliver from this state.
    Held(ProgressState),
    /// The config already delivered this object version.
    Complete,
    /// No lease: another attempt holds it, or the progress table failed.
    Failed(ConfigFailure),
}

impl Attempt<'_> {
    /// Claims `config`'s lease on `progress_key`.
    pub(super) async fn claim(
        &self,
        config: &DeliveryConfig,
        progress_key: &ProgressKey,
    ) -> Claimed {
        let progress = &self.inner.progress;
        let claim = if self.inner.force_redelivery {
            progress.claim_afresh(progress_key, &self.owner).await
        } else {
            progress.claim(progress_key, &self.owner).await
        };
        let failed = |error: DeliveryError| {
            Claimed::Failed(ConfigFailure {
                delivery_type: config.delivery_type,
                error,
            })
        };
        match claim {
            Ok(Claim::Acquired(state)) => Claimed::Held(state),
            Ok(Claim::Reset(previous)) => {
                if previous.complete || previous.events_delivered > 0 {
                    ForcedRedelivery {
                        tenant: &config.tenant_id,
                        delivery_type: config.delivery_type,
                        object: &self.object.key,
                        events_before: previous.events_delivered,
                    }
                    .emit();
                }
                Claimed::Held(ProgressState::default())
            }
            Ok(Claim::Complete(_)) => Claimed::Complete,
            Ok(Claim::Busy { owner }) => failed(DeliveryError::transient(
                "in_progress_elsewhere",
                format!("another attempt ({owner}) is delivering this object"),
            )),
            Err(error) => failed(error.into()),
        }
    }

    /// Ends one held lease: completes it, or releases it. A failed completion is the config's
    /// failure; a release is best effort.
    pub(super) async fn end_lease(
        &self,
        key: &ProgressKey,
        ending: Ending<'_>,
    ) -> Result<(), DeliveryError> {
        match ending {
            Ending::Complete(state) => self
                .inner
                .progress
                .complete(key, &self.owner, state)
                .await
                .map_err(DeliveryError::from),
            Ending::Release => {
                self.release(vec![key]).await;
                Ok(())
            }
            Ending::SaveAndRelease(state) => {
                self.inner
                    .progress
                    .release_with(key, &self.owner, state)
                    .await;
                Ok(())
            }
        }
    }

    /// Gives up the leases of `keys` so a redelivery can continue at once.
    pub(super) async fn release(&self, keys: Vec<&ProgressKey>) {
        for key in keys {
            self.inner.progress.release(key, &self.owner).await;
        }
    }
}
