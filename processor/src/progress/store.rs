//! The progress table (`DELIVERY_PROGRESS_TABLE`, HASH `pk` S): claim an item with a lease, record
//! delivered batches after each accepted request, mark it complete, release it on failure. Every
//! write after the claim is conditional on still holding the lease, so two attempts on the same
//! object never both advance it. Without a table, progress is off: every attempt starts afresh.

use super::{BatchCursor, ProgressError, ProgressKey, ProgressState};
use crate::object::FailureKind;
use crate::retry::{Classified, RetryPolicy, with_retries};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use logrelay_common::aws::ErrorClass;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long items live after their last write (DynamoDB TTL): longer than SQS's longest message
/// retention (14 days), so a duplicate notification is recognised as long as one can arrive.
pub const DEFAULT_PROGRESS_TTL: Duration = Duration::from_secs(15 * 24 * 60 * 60);
/// How long a claim stays valid without a progress write; a crashed attempt's object can be taken
/// over after this. Every recorded batch renews it. 5 minutes outlasts one batch's whole retry
/// budget at the defaults (5 attempts × 30 s request timeout plus backoff), so a live attempt
/// keeps its lease; `LOGRELAY_PROGRESS_LEASE_SECONDS` changes it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(5 * 60);
/// Shortest lease accepted: below this an ordinary slow PutLogEvents (throttled, retried) would
/// let other attempts take live objects over routinely (safe, see [`ProgressStore::record`], but
/// every takeover re-sends batches in flight).
pub const MIN_LEASE: Duration = Duration::from_secs(10);
/// Longest lease accepted: SQS's maximum visibility timeout (12 h); a longer lease would only keep
/// a crashed attempt's objects waiting beyond any redelivery.
pub const MAX_LEASE: Duration = Duration::from_secs(12 * 60 * 60);

/// Item attribute names.
mod attr {
    pub const PK: &str = "pk";
    pub const OBJECT: &str = "object_uri";
    pub const ETAG: &str = "object_etag";
    pub const TENANT: &str = "tenant_id";
    pub const TYPE: &str = "delivery_type";
    pub const COMPLETE: &str = "is_complete";
    pub const NEXT: &str = "next_batch";
    pub const AHEAD: &str = "done_ahead";
    pub const EVENTS: &str = "events_delivered";
    pub const FINGERPRINT: &str = "fingerprint";
    pub const LEASE_OWNER: &str = "lease_owner";
    pub const LEASE_UNTIL: &str = "lease_until_ms";
    pub const UPDATED: &str = "updated_at_ms";
    pub const TTL: &str = "ttl";
}

/// Table and timing of progress tracking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressSettings {
    /// Table name; `None` turns progress off.
    pub table: Option<String>,
    /// Item lifetime after the last write.
    pub ttl: Duration,
    /// Lease length.
    pub lease: Duration,
}

impl Default for ProgressSettings {
    fn default() -> Self {
        Self {
            table: None,
            ttl: DEFAULT_PROGRESS_TTL,
            lease: DEFAULT_LEASE,
        }
    }
}

/// The result of claiming an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This attempt holds the lease; deliver from this state.
    Acquired(ProgressState),
    /// The config is already complete for this object version.
    Complete(ProgressState),
    /// This attempt holds the lease and what earlier attempts delivered is forgotten
    /// ([`ProgressStore::claim_afresh`]): deliver from the first batch. Holds what they had
    /// achieved (nothing when there was no item).
    Reset(ProgressState),
    /// Another attempt holds an unexpired lease.
    Busy {
        /// The holder.
        owner: String,
    },
}

/// Reads and writes delivery progress.
#[derive(Debug, Clone)]
pub struct ProgressStore {
    client: Option<Client>,
    settings: ProgressSettings,
    retry: RetryPolicy,
}

impl ProgressStore {
    /// A store on `settings.table` (or a disabled one when `None`).
    pub fn new(client: Client, settings: ProgressSettings, retry: RetryPolicy) -> Self {
        Self {
            client: settings.table.is_some().then_some(client),
            settings,
            retry,
        }
    }

    /// A store that remembers nothing.
    pub fn disabled() -> Self {
        Self {
            client: None,
            settings: ProgressSettings::default(),
            retry: RetryPolicy::default(),
        }
    }

    /// Whether progress is tracked.
    pub fn is_enabled(&self) -> bool {
        self.client.is_some()
    }

    fn table(&self) -> Option<(&Client, &str)> {
        Some((self.client.as_ref()?, self.settings.table.as_deref()?))
    }

    /// Reads an item without claiming it (`None` when there is none or progress is off).
    pub async fn load(&self, key: &ProgressKey) -> Result<Option<ProgressState>, ProgressError> {
        Ok(self.load_raw(key).await?.as_ref().map(state_from_item))
    }

    /// Claims the item for `owner`: succeeds when nobody holds an unexpired lease and the config is
    /// not complete for this object.
    pub async fn claim(&self, key: &ProgressKey, owner: &str) -> Result<Claim, ProgressError> {
        self.claim_with(key, owner, false).await
    }

    /// Claims the item for `owner` even when the config is complete for this object, and resets
    /// it to "nothing delivered", so the object is delivered again from its first batch
    /// (`replay --force`: what was delivered before is duplicated). An unexpired lease of another
    /// attempt is still respected ([`Claim::Busy`]).
    pub async fn claim_afresh(
        &self,
        key: &ProgressKey,
        owner: &str,
    ) -> Result<Claim, ProgressError> {
        self.claim_with(key, owner, true).await
    }

    async fn claim_with(
        &self,
        key: &ProgressKey,
        owner: &str,
        afresh: bool,
    ) -> Result<Claim, ProgressError> {
        let Some((client, table)) = self.table() else {
            let state = ProgressState::default();
            return Ok(if afresh {
                Claim::Reset(state)
            } else {
                Claim::Acquired(state)
            });
        };
        let now = now_ms();
        let mut update = String::from(
            "SET #owner = :owner, #until = :until, #object = :object, #etag = :etag, \
             #tenant = :tenant, #type = :type, #updated = :now, #ttl = :ttl",
        );
        let lease_free = "(attribute_not_exists(#until) OR #until < :now OR #owner = :owner)";
        let mut attribute_names = vec![
            ("#owner", attr::LEASE_OWNER),
            ("#until", attr::LEASE_UNTIL),
            ("#object", attr::OBJECT),
            ("#etag", attr::ETAG),
            ("#tenant", attr::TENANT),
            ("#type", attr::TYPE),
            ("#updated", attr::UPDATED),
            ("#ttl", attr::TTL),
            ("#complete", attr::COMPLETE),
        ];
        let mut attribute_values = vec![
            (":owner", s(owner)),
            (":until", n(now + millis(self.settings.lease))),
            (":object", s(&format!("s3://{}/{}", key.bucket, key.key))),
            (":etag", s(&key.etag)),
            (":tenant", s(&key.tenant_id)),
            (":type", s(key.delivery_type.as_str())),
            (":now", n(now)),
            (":ttl", n(self.expiry_epoch_seconds())),
            (":false", AttributeValue::Bool(false)),
        ];
        let (condition, return_values) = if afresh {
            update.push_str(
                ", #complete = :false, #next = :zero, #ahead = :none, #events = :zero \
                 REMOVE #fingerprint",
            );
            attribute_names.extend([
                ("#next", attr::NEXT),
                ("#ahead", attr::AHEAD),
                ("#events", attr::EVENTS),
                ("#fingerprint", attr::FINGERPRINT),
            ]);
            attribute_values.extend([(":zero", n(0)), (":none", AttributeValue::L(Vec::new()))]);
            (lease_free.to_owned(), ReturnValue::AllOld)
        } else {
            (
                format!("(attribute_not_exists(#complete) OR #complete = :false) AND {lease_free}"),
                ReturnValue::AllNew,
            )
        };
        let attribute_names = names(&attribute_names);
        let attribute_values = values(attribute_values);
        let result = with_retries(&self.retry, &key.tenant_id, "dynamodb:UpdateItem", || {
            client
                .update_item()
                .table_name(table)
                .key(attr::PK, AttributeValue::S(key.pk()))
                .update_expression(&update)
                .condition_expression(&condition)
                .set_expression_attribute_names(Some(attribute_names.clone()))
                .set_expression_attribute_values(Some(attribute_values.clone()))
                .return_values(return_values.clone())
                .send()
        })
        .await;
        match result {
            Ok(output) => {
                let state = output.attributes().map(state_from_item).unwrap_or_default();
                Ok(if afresh {
                    Claim::Reset(state)
                } else {
                    Claim::Acquired(state)
                })
            }
            Err(failure) if is_condition_failure(&failure) => {
                // Complete, or held by someone else: read which.
                let item = self.load_raw(key).await?;
                let state = item.as_ref().map(state_from_item).unwrap_or_default();
                if state.complete && !afresh {
                    Ok(Claim::Complete(state))
                } else {
                    let owner = item
                        .as_ref()
                        .and_then(|item| item.get(attr::LEASE_OWNER))
                        .and_then(|value| value.as_s().ok())
                        .cloned()
                        .unwrap_or_default();
                    Ok(Claim::Busy { owner })
                }
            }
            Err(failure) => Err(store_error(failure)),
        }
    }

    async fn load_raw(
        &self,
        key: &ProgressKey,
    ) -> Result<Option<HashMap<String, AttributeValue>>, ProgressError> {
        let Some((client, table)) = self.table() else {
            return Ok(None);
        };
        let output = with_retries(&self.retry, &key.tenant_id, "dynamodb:GetItem", || {
            client
                .get_item()
                .table_name(table)
                .key(attr::PK, AttributeValue::S(key.pk()))
                .consistent_read(true)
                .send()
        })
        .await
        .map_err(store_error)?;
        Ok(output.item)
    }

    /// Records delivered batches and renews the lease (a new expiry, lease length from now), in
    /// one write conditional on `lease_owner` still being `owner`. Fails with reason `lease_lost`
    /// when another attempt took the item over: the owner check fences a live attempt whose lease
    /// expired (a batch slower than the lease), so only the current holder ever advances the
    /// cursor, and the old attempt stops at its next write. The takeover can only duplicate
    /// batches (both attempts may send the same one), never mark an unsent batch delivered.
    pub async fn record(
        &self,
        key: &ProgressKey,
        owner: &str,
        state: &ProgressState,
    ) -> Result<(), ProgressError> {
        let now = now_ms();
        self.conditional_update(
            key,
            owner,
            "SET #next = :next, #ahead = :ahead, #events = :events, #fingerprint = :fingerprint, \
             #until = :until, #updated = :now, #ttl = :ttl",
            [
                state_values(state),
                vec![
                    (":until", n(now + millis(self.settings.lease))),
                    (":now", n(now)),
                    (":ttl", n(self.expiry_epoch_seconds())),
                ],
            ]
            .concat(),
        )
        .await
    }

    /// Marks the config complete for this object version and releases the lease.
    pub async fn complete(
        &self,
        key: &ProgressKey,
        owner: &str,
        state: &ProgressState,
    ) -> Result<(), ProgressError> {
        self.conditional_update(
            key,
            owner,
            "SET #complete = :true, #next = :next, #ahead = :ahead, #events = :events, \
             #fingerprint = :fingerprint, #updated = :now, #ttl = :ttl REMOVE #until, #owner",
            [
                state_values(state),
                vec![
                    (":true", AttributeValue::Bool(true)),
                    (":now", n(now_ms())),
                    (":ttl", n(self.expiry_epoch_seconds())),
                ],
            ]
            .concat(),
        )
        .await
    }

    /// Gives the lease up so a redelivery can continue at once (best effort: an expired lease
    /// frees the item anyway).
    pub async fn release(&self, key: &ProgressKey, owner: &str) {
        self.release_update(
            key,
            owner,
            "SET #updated = :now REMOVE #until, #owner",
            vec![(":now", n(now_ms()))],
        )
        .await;
    }

    /// Records `state` and gives the lease up, in one write: the sender leaves the last batch's
    /// [`Self::record`] to the end of the attempt, which this is when the config is not complete.
    pub async fn release_with(&self, key: &ProgressKey, owner: &str, state: &ProgressState) {
        self.release_update(
            key,
            owner,
            "SET #next = :next, #ahead = :ahead, #events = :events, #fingerprint = :fingerprint, \
             #updated = :now, #ttl = :ttl REMOVE #until, #owner",
            [
                state_values(state),
                vec![
                    (":now", n(now_ms())),
                    (":ttl", n(self.expiry_epoch_seconds())),
                ],
            ]
            .concat(),
        )
        .await;
    }

    async fn release_update(
        &self,
        key: &ProgressKey,
        owner: &str,
        update: &str,
        values: Vec<(&'static str, AttributeValue)>,
    ) {
        if let Err(error) = self.conditional_update(key, owner, update, values).await {
            tracing::debug!(tenant = %key.tenant_id, error = %error, "could not release progress lease");
        }
    }

    async fn conditional_update(
        &self,
        key: &ProgressKey,
        owner: &str,
        update: &str,
        mut values_list: Vec<(&'static str, AttributeValue)>,
    ) -> Result<(), ProgressError> {
        let Some((client, table)) = self.table() else {
            return Ok(());
        };
        values_list.push((":me", s(owner)));
        let used_names: Vec<(&str, &str)> = [
            ("#complete", attr::COMPLETE),
            ("#next", attr::NEXT),
            ("#ahead", attr::AHEAD),
            ("#events", attr::EVENTS),
            ("#fingerprint", attr::FINGERPRINT),
            ("#until", attr::LEASE_UNTIL),
            ("#owner", attr::LEASE_OWNER),
            ("#updated", attr::UPDATED),
            ("#ttl", attr::TTL),
        ]
        .into_iter()
        .filter(|(placeholder, _)| update.contains(placeholder) || *placeholder == "#owner")
        .collect();
        let attribute_values = values(values_list);
        let result = with_retries(&self.retry, &key.tenant_id, "dynamodb:UpdateItem", || {
            client
                .update_item()
                .table_name(table)
                .key(attr::PK, AttributeValue::S(key.pk()))
                .update_expression(update)
                .condition_expression("#owner = :me")
                .set_expression_attribute_names(Some(names(&used_names)))
                .set_expression_attribute_values(Some(attribute_values.clone()))
                .send()
        })
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(failure) if is_condition_failure(&failure) => Err(ProgressError {
                kind: FailureKind::Transient,
                reason: "lease_lost",
                message: format!(
                    "another attempt took over the delivery of s3://{}/{} ({}) after our lease expired",
                    key.bucket, key.key, key.delivery_type
                ),
            }),
            Err(failure) => Err(store_error(failure)),
        }
    }

    fn expiry_epoch_seconds(&self) -> u64 {
        SystemTime::now()
            .checked_add(self.settings.ttl)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs())
    }
}

/// The values of a state's attributes (`:next`, `:ahead`, `:events`, `:fingerprint`) for an update.
fn state_values(state: &ProgressState) -> Vec<(&'static str, AttributeValue)> {
    vec![
        (":next", n(state.cursor.next())),
        (
            ":ahead",
            AttributeValue::L(state.cursor.ahead().map(n).collect()),
        ),
        (":events", n(state.events_delivered)),
        (
            ":fingerprint",
            s(state.fingerprint.as_deref().unwrap_or_default()),
        ),
    ]
}

/// Reads the state part of an item (missing or malformed attributes read as "nothing done").
fn state_from_item(item: &HashMap<String, AttributeValue>) -> ProgressState {
    let number = |name: &str| {
        item.get(name)
            .and_then(|value| value.as_n().ok())
            .and_then(|text| text.parse::<u64>().ok())
    };
    let ahead = item
        .get(attr::AHEAD)
        .and_then(|value| value.as_l().ok())
        .map(|list| {
            list.iter()
                .filter_map(|value| value.as_n().ok()?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    ProgressState {
        complete: item
            .get(attr::COMPLETE)
            .and_then(|value| value.as_bool().ok())
            .copied()
            .unwrap_or(false),
        cursor: BatchCursor::from_parts(number(attr::NEXT).unwrap_or(0), ahead),
        fingerprint: item
            .get(attr::FINGERPRINT)
            .and_then(|value| value.as_s().ok())
            .filter(|text| !text.is_empty())
            .cloned(),
        events_delivered: number(attr::EVENTS).unwrap_or(0),
    }
}

fn is_condition_failure(failure: &Classified) -> bool {
    failure.has_code("ConditionalCheckFailedException")
}

fn store_error(failure: Classified) -> ProgressError {
    let kind = if failure.is_retryable() {
        FailureKind::Transient
    } else {
        FailureKind::Permanent
    };
    let reason = match failure.class {
        ErrorClass::AccessDenied => "progress_access_denied",
        ErrorClass::NotFound => "progress_table_missing",
        _ => "progress_store",
    };
    ProgressError {
        kind,
        reason,
        message: failure.message,
    }
}

fn names(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(placeholder, name)| ((*placeholder).to_owned(), (*name).to_owned()))
        .collect()
}

fn values(pairs: Vec<(&str, AttributeValue)>) -> HashMap<String, AttributeValue> {
    pairs
        .into_iter()
        .map(|(placeholder, value)| (placeholder.to_owned(), value))
        .collect()
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

fn n(number: impl ToString) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use logrelay_common::tenant::DeliveryType;
    use logrelay_testkit::{DEFAULT_ACCOUNT_ID, Moto, create_progress_table, unique_name};

    /// A store with `lease` on a fresh table of the shared emulator.
    async fn store_with_lease(lease: Duration) -> ProgressStore {
        let aws = Moto::shared().await.config(DEFAULT_ACCOUNT_ID).await;
        let table = unique_name("progress");
        create_progress_table(&aws, &table)
            .await
            .expect("progress table");
        ProgressStore::new(
            Client::new(&aws),
            ProgressSettings {
                table: Some(table),
                lease,
                ..ProgressSettings::default()
            },
            RetryPolicy::default(),
        )
    }

    fn object_key() -> ProgressKey {
        ProgressKey {
            bucket: "central".into(),
            key: "acme/c1/api/pod/20240101T000000Z-abc.json.gz".into(),
            etag: "e1".into(),
            tenant_id: "acme".into(),
            delivery_type: DeliveryType::Cloudwatch,
        }
    }

    /// The stored lease expiry minus the time of the write that set it.
    async fn stored_lease(store: &ProgressStore, key: &ProgressKey) -> Duration {
        let item = store.load_raw(key).await.expect("read").expect("item");
        let number = |name: &str| -> u64 {
            item.get(name)
                .and_then(|value| value.as_n().ok())
                .and_then(|text| text.parse().ok())
                .expect(name)
        };
        Duration::from_millis(number(attr::LEASE_UNTIL) - number(attr::UPDATED))
    }

    fn with_batches(done: &[u64]) -> ProgressState {
        let mut state = ProgressState {
            fingerprint: Some("f".into()),
            ..ProgressState::default()
        };
        for seq in done {
            state.cursor.mark_done(*seq);
            state.events_delivered += 10;
        }
        state
    }

    #[tokio::test]
    async fn claims_and_records_hold_the_configured_lease() {
        let key = object_key();
        for lease in [Duration::from_secs(20), Duration::from_secs(45 * 60)] {
            let store = store_with_lease(lease).await;
            let claim = store.claim(&key, "a").await.expect("claim");
            assert_eq!(claim, Claim::Acquired(ProgressState::default()));
            assert_eq!(stored_lease(&store, &key).await, lease, "claim");
            store
                .record(&key, "a", &with_batches(&[0]))
                .await
                .expect("record");
            assert_eq!(stored_lease(&store, &key).await, lease, "record");
        }
    }

    #[tokio::test]
    async fn an_expired_lease_lets_another_attempt_take_over_and_fences_the_old_one() {
        let lease = Duration::from_millis(400);
        let store = store_with_lease(lease).await;
        let key = object_key();
        assert!(matches!(
            store.claim(&key, "a").await,
            Ok(Claim::Acquired(_))
        ));
        store
            .record(&key, "a", &with_batches(&[0, 1]))
            .await
            .expect("a records");
        assert_eq!(
            store.claim(&key, "b").await.expect("claim"),
            Claim::Busy { owner: "a".into() },
            "a's lease is still valid"
        );

        tokio::time::sleep(lease + Duration::from_millis(200)).await;
        match store.claim(&key, "b").await.expect("claim") {
            Claim::Acquired(state) => assert_eq!(state, with_batches(&[0, 1]), "b resumes"),
            other => panic!("expected b to take over, got {other:?}"),
        }

        // a is still alive: every later write of it fails, and cannot touch b's lease.
        let lost = store
            .record(&key, "a", &with_batches(&[0, 1, 2]))
            .await
            .expect_err("a lost the lease");
        assert_eq!(lost.reason, "lease_lost");
        let lost = store
            .complete(&key, "a", &with_batches(&[0, 1, 2]))
            .await
            .expect_err("a cannot complete");
        assert_eq!(lost.reason, "lease_lost");
        store.release(&key, "a").await;
        assert_eq!(
            store.claim(&key, "c").await.expect("claim"),
            Claim::Busy { owner: "b".into() },
            "a's release left b's lease alone"
        );
        assert_eq!(
            store.load(&key).await.expect("load"),
            Some(with_batches(&[0, 1])),
            "only b advances the item"
        );
    }

    #[tokio::test]
    async fn a_live_attempt_that_records_progress_keeps_its_lease() {
        let lease = Duration::from_millis(1500);
        let store = store_with_lease(lease).await;
        let key = object_key();
        assert!(matches!(
            store.claim(&key, "a").await,
            Ok(Claim::Acquired(_))
        ));
        // Record more often than the lease, for three leases' time in all.
        let started = std::time::Instant::now();
        let mut done = Vec::new();
        while started.elapsed() < lease * 3 {
            tokio::time::sleep(lease / 3).await;
            done.push(done.len() as u64);
            store
                .record(&key, "a", &with_batches(&done))
                .await
                .expect("a keeps recording");
            assert_eq!(
                store.claim(&key, "b").await.expect("claim"),
                Claim::Busy { owner: "a".into() },
                "after {:?}",
                started.elapsed()
            );
        }
        store
            .complete(&key, "a", &with_batches(&done))
            .await
            .expect("a completes");
        assert!(matches!(
            store.claim(&key, "b").await,
            Ok(Claim::Complete(_))
        ));
    }

    #[test]
    fn items_read_back_into_state() {
        let item = HashMap::from([
            (attr::COMPLETE.to_owned(), AttributeValue::Bool(false)),
            (attr::NEXT.to_owned(), n(3)),
            (attr::AHEAD.to_owned(), AttributeValue::L(vec![n(5), n(7)])),
            (attr::EVENTS.to_owned(), n(123)),
            (attr::FINGERPRINT.to_owned(), s("abc")),
        ]);
        let state = state_from_item(&item);
        assert!(!state.complete);
        assert_eq!(state.cursor, BatchCursor::from_parts(3, [5, 7]));
        assert_eq!(state.events_delivered, 123);
        assert_eq!(state.fingerprint.as_deref(), Some("abc"));
    }

    #[test]
    fn a_fresh_item_reads_as_nothing_done() {
        let state = state_from_item(&HashMap::new());
        assert_eq!(state, ProgressState::default());
    }

    #[tokio::test]
    async fn a_disabled_store_always_starts_afresh() {
        let store = ProgressStore::disabled();
        let key = ProgressKey {
            bucket: "b".into(),
            key: "k".into(),
            etag: "e".into(),
            tenant_id: "t".into(),
            delivery_type: logrelay_common::tenant::DeliveryType::Cloudwatch,
        };
        assert!(!store.is_enabled());
        assert_eq!(store.load(&key).await.ok(), Some(None));
        assert_eq!(
            store.claim(&key, "me").await.ok(),
            Some(Claim::Acquired(ProgressState::default()))
        );
        assert!(
            store
                .record(&key, "me", &ProgressState::default())
                .await
                .is_ok()
        );
    }
}
