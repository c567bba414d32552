//! Credentials for delivery: the processor's own identity → `CENTRAL_LOG_DISTRIBUTION_ROLE_ARN` →
//! the tenant's `log_distribution_role_arn` (with the tenant's ExternalId and session tags, in the
//! config's `target_region`). S3 delivery uses the central hop only.
//!
//! Sessions come from `logrelay_common::aws::assume_role_chain`, whose credentials refresh
//! themselves 5 minutes before they expire; this module caches the resulting configs per
//! (tenant, role, external id, region, cluster) — tenant and cluster because they are session
//! tags, so no tenant is ever served a session tagged for another — bounds concurrent AssumeRole
//! calls, and remembers a refusal (access denied) per the same key for a short while so a
//! misconfigured tenant costs one STS call per minute, not one per object, and never refuses
//! another tenant.

mod step;

pub use step::{
    CENTRAL_SESSION_NAME, MAX_TAG_VALUE_CHARS, SESSION_DURATION, SESSION_NAME_PREFIX,
    TAG_CLUSTER_ID, TAG_TENANT_ID, central_step, tag_value, tenant_step,
};

use crate::error::{AwsCause, DeliveryError};
use crate::telemetry::InternalEvent;
use crate::telemetry::events::AssumeRoleDenied;
use aws_config::{Region, SdkConfig};
use logrelay_common::aws::{AwsError, ErrorClass, RoleStep, assume_role_chain};
use logrelay_common::tenant::{DeliveryConfig, RedactedExternalId};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Default bound on AssumeRole calls in flight at once (STS's default quota is 600 requests per
/// second per account; a burst of cold tenants should not come near it).
pub const DEFAULT_MAX_CONCURRENT_ASSUME_ROLE: usize = 8;
/// How long a refused AssumeRole is remembered before STS is asked again.
pub const DEFAULT_DENIED_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Sessions kept; past this, sessions unused for [`IDLE_SESSION`] are dropped, then all.
pub const MAX_CACHED_SESSIONS: usize = 10_000;
/// A session unused this long may be dropped when the cache is full.
const IDLE_SESSION: Duration = Duration::from_secs(60 * 60);

/// Roles and limits for assuming. `Debug` never prints the default ExternalId.
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialSettings {
    /// The central distribution role; `None` uses the processor's own identity as the central hop.
    pub central_role_arn: Option<String>,
    /// ExternalId for tenants whose config has none (deployments with one ExternalId for every tenant).
    pub default_external_id: Option<String>,
    /// Bound on concurrent AssumeRole calls.
    pub max_concurrent_assume_role: usize,
    /// How long a refusal is remembered.
    pub denied_retry_after: Duration,
}

impl fmt::Debug for CredentialSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialSettings")
            .field("central_role_arn", &self.central_role_arn)
            .field(
                "default_external_id",
                &RedactedExternalId(self.default_external_id.as_deref()),
            )
            .field(
                "max_concurrent_assume_role",
                &self.max_concurrent_assume_role,
            )
            .field("denied_retry_after", &self.denied_retry_after)
            .finish()
    }
}

impl Default for CredentialSettings {
    fn default() -> Self {
        Self {
            central_role_arn: None,
            default_external_id: None,
            max_concurrent_assume_role: DEFAULT_MAX_CONCURRENT_ASSUME_ROLE,
            denied_retry_after: DEFAULT_DENIED_RETRY_AFTER,
        }
    }
}

/// A tenant's session: a config acting as the tenant's role. `Debug` shows the destination only
/// (the SDK config's own `Debug` prints the AssumeRole input, ExternalId included).
#[derive(Clone)]
pub struct TenantSession {
    /// SDK config with self-refreshing tenant credentials and the target region.
    pub config: SdkConfig,
    /// Role ARN and region (identifies the account and region the session reaches).
    pub destination: String,
}

/// What a cached session or refusal is for: every input of the tenant hop that reaches STS.
/// `Debug` never prints the ExternalId.
#[derive(Clone, PartialEq, Eq, Hash)]
struct SessionKey {
    tenant_id: String,
    role_arn: String,
    external_id: Option<String>,
    region: Option<String>,
    cluster_tag: String,
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKey")
            .field("tenant_id", &self.tenant_id)
            .field("role_arn", &self.role_arn)
            .field(
                "external_id",
                &RedactedExternalId(self.external_id.as_deref()),
            )
            .field("region", &self.region)
            .field("cluster_tag", &self.cluster_tag)
            .finish()
    }
}

#[derive(Debug)]
enum SessionState {
    Ready(Box<SdkConfig>),
    Denied { until: Instant, message: String },
}

#[derive(Debug, Default)]
struct SessionSlot {
    state: Option<SessionState>,
    last_used: Option<Instant>,
}

/// Hands out central and tenant sessions, cached. `Debug` shows settings and counts only (the
/// SDK configs' own `Debug` prints the AssumeRole input, ExternalId included).
#[derive(Clone)]
pub struct CredentialBroker {
    base: SdkConfig,
    settings: Arc<CredentialSettings>,
    central: Arc<tokio::sync::Mutex<Option<SdkConfig>>>,
    sessions: Arc<Mutex<HashMap<SessionKey, Arc<tokio::sync::Mutex<SessionSlot>>>>>,
    permits: Arc<Semaphore>,
}

impl fmt::Debug for TenantSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantSession")
            .field("destination", &self.destination)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for CredentialBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self.sessions.lock().map_or(0, |sessions| sessions.len());
        f.debug_struct("CredentialBroker")
            .field("settings", &self.settings)
            .field("cached_sessions", &cached)
            .finish_non_exhaustive()
    }
}

impl CredentialBroker {
    /// A broker starting from `base` (the processor's own identity).
    pub fn new(base: SdkConfig, settings: CredentialSettings) -> Self {
        let permits = Arc::new(Semaphore::new(settings.max_concurrent_assume_role.max(1)));
        Self {
            base,
            settings: Arc::new(settings),
            central: Arc::default(),
            sessions: Arc::default(),
            permits,
        }
    }

    /// The central identity (central role, or the processor's own without one) in `region`
    /// (`None`: the processor's region). Used for S3 delivery, single hop.
    pub async fn central(&self, region: Option<&str>) -> Result<SdkConfig, DeliveryError> {
        let config = self.central_config().await?;
        Ok(match region {
            Some(region) => config
                .into_builder()
                .region(Region::new(region.to_owned()))
                .build(),
            None => config,
        })
    }

    async fn central_config(&self) -> Result<SdkConfig, DeliveryError> {
        let Some(role_arn) = &self.settings.central_role_arn else {
            return Ok(self.base.clone());
        };
        let mut central = self.central.lock().await;
        if let Some(config) = central.as_ref() {
            return Ok(config.clone());
        }
        let _permit = self.permits.acquire().await.map_err(|_| closed())?;
        let config = assume_role_chain(&self.base, &[central_step(role_arn)])
            .await
            .map_err(central_error)?;
        *central = Some(config.clone());
        Ok(config)
    }

    /// A session in the tenant's role for `config` and objects of `cluster_id`: cached, refreshed
    /// before expiry; refusals are permanent (`access_denied`), counted per tenant, and remembered
    /// for [`CredentialSettings::denied_retry_after`].
    pub async fn tenant(
        &self,
        config: &DeliveryConfig,
        cluster_id: &str,
    ) -> Result<TenantSession, DeliveryError> {
        let step = tenant_step(
            config,
            cluster_id,
            self.settings.default_external_id.as_deref(),
        )
        .ok_or_else(|| {
            DeliveryError::permanent(
                "invalid_config",
                "cloudwatch config has no log_distribution_role_arn",
            )
        })?;
        self.check_partition(&step)?;
        let destination = format!(
            "{}@{}",
            step.role_arn,
            step.region
                .as_deref()
                .unwrap_or_else(|| self.base.region().map_or("", Region::as_ref))
        );
        let key = SessionKey {
            tenant_id: config.tenant_id.clone(),
            role_arn: step.role_arn.clone(),
            external_id: step.external_id.clone(),
            region: step.region.clone(),
            cluster_tag: tag_value(cluster_id),
        };
        let result = self.session(key, &step).await;
        match result {
            Ok(config) => Ok(TenantSession {
                config,
                destination,
            }),
            Err(error) => {
                if error.reason == "access_denied" {
                    AssumeRoleDenied {
                        tenant: &config.tenant_id,
                        delivery_type: config.delivery_type,
                        role_arn: &step.role_arn,
                        message: &error.message,
                    }
                    .emit();
                }
                Err(error)
            }
        }
    }

    /// A role chain never crosses partitions: the tenant's role must be in the partition of the
    /// central role (when there is one), else of the region it is assumed in. Refused before any
    /// STS call, permanently (`role_partition`), naming both.
    fn check_partition(&self, step: &RoleStep) -> Result<(), DeliveryError> {
        let Some(partition) = logrelay_common::partition::of_arn(&step.role_arn) else {
            return Ok(());
        };
        let (expected, because) = match self.settings.central_role_arn.as_deref() {
            Some(central) => match logrelay_common::partition::of_arn(central) {
                Some(expected) => (expected, format!("the central role {central}")),
                None => return Ok(()),
            },
            None => {
                let region = step
                    .region
                    .as_deref()
                    .or_else(|| self.base.region().map(Region::as_ref))
                    .unwrap_or_default();
                (
                    logrelay_common::partition::of_region(region),
                    format!("region {region:?}"),
                )
            }
        };
        if partition == expected {
            return Ok(());
        }
        Err(DeliveryError::permanent(
            "role_partition",
            format!(
                "log_distribution_role_arn {} is in partition {partition:?}, but {because} is in \
                 {expected:?}: STS never grants a role of another partition",
                step.role_arn
            ),
        ))
    }

    async fn session(&self, key: SessionKey, step: &RoleStep) -> Result<SdkConfig, DeliveryError> {
        let slot = self.slot(key);
        let mut slot = slot.lock().await;
        slot.last_used = Some(Instant::now());
        match &slot.state {
            Some(SessionState::Ready(config)) => return Ok(SdkConfig::clone(config)),
            Some(SessionState::Denied { until, message }) if Instant::now() < *until => {
                return Err(DeliveryError::permanent(
                    "access_denied",
                    format!(
                        "{message} (remembered; STS is asked again within {:?})",
                        self.settings.denied_retry_after
                    ),
                ));
            }
            _ => {}
        }
        let central = self.central_config().await?;
        let _permit = self.permits.acquire().await.map_err(|_| closed())?;
        match assume_role_chain(&central, std::slice::from_ref(step)).await {
            Ok(config) => {
                slot.state = Some(SessionState::Ready(Box::new(config.clone())));
                Ok(config)
            }
            Err(error) => {
                let error = assume_error(error);
                if error.reason == "access_denied" {
                    slot.state = Some(SessionState::Denied {
                        until: Instant::now() + self.settings.denied_retry_after,
                        message: error.message.clone(),
                    });
                }
                Err(error)
            }
        }
    }

    fn slot(&self, key: SessionKey) -> Arc<tokio::sync::Mutex<SessionSlot>> {
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !sessions.contains_key(&key) && sessions.len() >= MAX_CACHED_SESSIONS {
            sessions.retain(|_, slot| {
                slot.try_lock()
                    .map(|slot| {
                        slot.last_used
                            .is_some_and(|used| used.elapsed() < IDLE_SESSION)
                    })
                    .unwrap_or(true)
            });
            if sessions.len() >= MAX_CACHED_SESSIONS {
                sessions.clear();
            }
        }
        sessions.entry(key).or_default().clone()
    }
}

/// A refused central hop is the operator's problem, not a tenant's: transient, so messages wait
/// (and reach the DLQ only through the queue's redrive policy) while the role is fixed.
fn central_error(error: AwsError) -> DeliveryError {
    let cause = AwsCause::of(&error);
    let message = format!("assuming the central role failed: {error}");
    let error = match error.class() {
        ErrorClass::AccessDenied => DeliveryError::transient("central_role_denied", message),
        ErrorClass::Throttling | ErrorClass::Transient => {
            DeliveryError::transient("sts_unavailable", message)
        }
        ErrorClass::NotFound | ErrorClass::Permanent => {
            DeliveryError::transient("central_role_failed", message)
        }
    };
    error.with_cause(cause)
}

fn closed() -> DeliveryError {
    DeliveryError::transient("shutting_down", "credential broker is shutting down")
}

/// Classifies a failed tenant hop: refusals are permanent, STS trouble transient.
fn assume_error(error: AwsError) -> DeliveryError {
    let cause = AwsCause::of(&error);
    let message = format!("assuming the tenant role failed: {error}");
    let error = match error.class() {
        ErrorClass::AccessDenied => DeliveryError::permanent("access_denied", message),
        ErrorClass::Throttling | ErrorClass::Transient => {
            DeliveryError::transient("sts_unavailable", message)
        }
        ErrorClass::NotFound | ErrorClass::Permanent => {
            DeliveryError::permanent("assume_role_failed", message)
        }
    };
    error.with_cause(cause)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::fake_http::{self, FakeHttp, Request};
    use aws_credential_types::Credentials;
    use logrelay_common::aws::{AwsOptions, base_config};

    fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A fake STS endpoint that grants every role except `denied`.
    async fn fake_sts(denied: &'static str) -> FakeHttp {
        fake_sts_refusing(move |form| field(form, "RoleArn") == Some(denied)).await
    }

    /// The value of the session tag `key` in an AssumeRole form.
    fn tag<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
        (1..=2).find_map(|i| {
            (field(form, &format!("Tags.member.{i}.Key"))? == key)
                .then(|| field(form, &format!("Tags.member.{i}.Value")))?
        })
    }

    /// A fake STS endpoint that refuses the requests `refuse` picks and grants the others.
    async fn fake_sts_refusing(
        refuse: impl Fn(&[(String, String)]) -> bool + Send + Sync + 'static,
    ) -> FakeHttp {
        fake_http::serve(move |request: &Request| {
            if refuse(&request.form()) {
                (403, "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized to perform sts:AssumeRole</Message></Error><RequestId>r</RequestId></ErrorResponse>".to_owned())
            } else {
                (200, "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult><Credentials><AccessKeyId>AKIDFAKE</AccessKeyId><SecretAccessKey>secret</SecretAccessKey><SessionToken>token</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROAFAKE:s</AssumedRoleId><Arn>arn:aws:sts::111111111111:assumed-role/r/s</Arn></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleResponse>".to_owned())
            }
        })
        .await
    }

    async fn broker(url: &str, settings: CredentialSettings) -> CredentialBroker {
        let base = base_config(&AwsOptions {
            region: Some("us-east-1".into()),
            endpoint_url: Some(url.to_owned()),
            credentials: Some(Credentials::from_keys("AKIDBASE", "secret", None)),
        })
        .await;
        CredentialBroker::new(base, settings)
    }

    fn tenant_config(role: &str, external_id: Option<&str>) -> DeliveryConfig {
        config_of("acme", role, external_id)
    }

    fn config_of(tenant: &str, role: &str, external_id: Option<&str>) -> DeliveryConfig {
        serde_json::from_value(serde_json::json!({
            "tenant_id": tenant,
            "type": "cloudwatch",
            "log_distribution_role_arn": role,
            "log_group_name": "/acme",
            "target_region": "eu-west-1",
            "external_id": external_id,
        }))
        .expect("config")
    }

    const CENTRAL: &str = "arn:aws:iam::123456789012:role/central";
    const TENANT_ROLE: &str = "arn:aws:iam::111111111111:role/logs";
    const DENIED_ROLE: &str = "arn:aws:iam::222222222222:role/logs";

    #[tokio::test]
    async fn a_role_of_another_partition_is_refused_before_any_sts_call() {
        let sts = fake_sts(DENIED_ROLE).await;
        let central = broker(
            &sts.url,
            CredentialSettings {
                central_role_arn: Some(CENTRAL.into()),
                ..Default::default()
            },
        )
        .await;
        let mut china = tenant_config("arn:aws-cn:iam::111111111111:role/logs", Some("x"));
        china.target_region = None;
        let error = central.tenant(&china, "c1").await.expect_err("refused");
        assert_eq!(error.reason, "role_partition");
        assert!(
            error.message.contains("aws-cn") && error.message.contains(CENTRAL),
            "{}",
            error.message
        );
        // Without a central role, the region the role would be assumed in decides.
        let direct = broker(&sts.url, CredentialSettings::default()).await;
        let error = direct.tenant(&china, "c1").await.expect_err("refused");
        assert!(
            error.message.contains("region \"us-east-1\""),
            "{}",
            error.message
        );
        assert!(sts.requests.lock().expect("lock").is_empty(), "no STS call");
    }

    #[tokio::test]
    async fn sts_receives_the_chain_with_external_id_tags_session_name_and_region() {
        let sts = fake_sts(DENIED_ROLE).await;
        let broker = broker(
            &sts.url,
            CredentialSettings {
                central_role_arn: Some(CENTRAL.into()),
                ..Default::default()
            },
        )
        .await;
        let session = broker
            .tenant(&tenant_config(TENANT_ROLE, Some("acme-ext")), "cluster-1")
            .await
            .expect("session");
        assert_eq!(session.destination, format!("{TENANT_ROLE}@eu-west-1"));

        let requests = sts.seen();
        assert_eq!(
            requests.len(),
            2,
            "central hop, then tenant hop: {requests:?}"
        );
        let central = requests[0].form();
        let central_auth = requests[0].header("authorization").unwrap_or_default();
        assert_eq!(field(&central, "Action"), Some("AssumeRole"));
        assert_eq!(field(&central, "RoleArn"), Some(CENTRAL));
        assert_eq!(
            field(&central, "RoleSessionName"),
            Some(CENTRAL_SESSION_NAME)
        );
        assert_eq!(field(&central, "ExternalId"), None);
        assert!(
            central_auth.contains("AKIDBASE/"),
            "signed with the processor's identity"
        );
        assert!(central_auth.contains("/us-east-1/sts/"), "{central_auth}");

        let tenant = requests[1].form();
        let tenant_auth = requests[1].header("authorization").unwrap_or_default();
        assert_eq!(field(&tenant, "RoleArn"), Some(TENANT_ROLE));
        assert_eq!(field(&tenant, "ExternalId"), Some("acme-ext"));
        assert_eq!(
            field(&tenant, "RoleSessionName"),
            Some("logrelay-acme-cluster-1")
        );
        assert_eq!(field(&tenant, "DurationSeconds"), Some("3600"));
        let mut tags: Vec<(&str, &str)> = (1..=2)
            .filter_map(|i| {
                Some((
                    field(&tenant, &format!("Tags.member.{i}.Key"))?,
                    field(&tenant, &format!("Tags.member.{i}.Value"))?,
                ))
            })
            .collect();
        tags.sort_unstable();
        assert_eq!(tags, [("cluster_id", "cluster-1"), ("tenant_id", "acme")]);
        assert!(
            tenant_auth.contains("AKIDFAKE/"),
            "signed with the central session"
        );
        assert!(
            tenant_auth.contains("/eu-west-1/sts/"),
            "regional STS: {tenant_auth}"
        );
    }

    #[tokio::test]
    async fn sessions_are_cached_per_role_external_id_region_and_cluster() {
        let sts = fake_sts(DENIED_ROLE).await;
        let broker = broker(&sts.url, CredentialSettings::default()).await;
        let config = tenant_config(TENANT_ROLE, Some("acme-ext"));
        broker.tenant(&config, "c1").await.expect("session");
        broker.tenant(&config, "c1").await.expect("cached session");
        assert_eq!(sts.seen().len(), 1, "no central role: one hop, then cached");
        broker.tenant(&config, "c2").await.expect("other cluster");
        broker
            .tenant(&tenant_config(TENANT_ROLE, Some("other-ext")), "c1")
            .await
            .expect("other external id");
        assert_eq!(sts.seen().len(), 3);
    }

    #[tokio::test]
    async fn the_default_external_id_is_sent_when_the_config_has_none() {
        let sts = fake_sts(DENIED_ROLE).await;
        let broker = broker(
            &sts.url,
            CredentialSettings {
                default_external_id: Some("seed-default".into()),
                ..Default::default()
            },
        )
        .await;
        broker
            .tenant(&tenant_config(TENANT_ROLE, None), "c1")
            .await
            .expect("session");
        assert_eq!(
            field(&sts.seen()[0].form(), "ExternalId"),
            Some("seed-default")
        );
    }

    #[tokio::test]
    async fn a_refused_role_is_permanent_and_not_asked_again_at_once() {
        let sts = fake_sts(DENIED_ROLE).await;
        let broker = broker(&sts.url, CredentialSettings::default()).await;
        let config = tenant_config(DENIED_ROLE, Some("wrong"));
        let error = broker.tenant(&config, "c1").await.expect_err("refused");
        assert_eq!(error.reason, "access_denied");
        assert!(!error.is_transient());
        let again = broker
            .tenant(&config, "c1")
            .await
            .expect_err("still refused");
        assert_eq!(again.reason, "access_denied");
        assert_eq!(sts.seen().len(), 1, "the refusal is remembered");
        broker
            .tenant(&tenant_config(TENANT_ROLE, Some("x1")), "c1")
            .await
            .expect("other tenants are unaffected");
    }

    #[tokio::test]
    async fn debug_of_cache_keys_sessions_and_settings_never_shows_an_external_id() {
        let key = SessionKey {
            tenant_id: "acme".into(),
            role_arn: TENANT_ROLE.into(),
            external_id: Some("acme-secret-ext".into()),
            region: Some("eu-west-1".into()),
            cluster_tag: "c1".into(),
        };
        let settings = CredentialSettings {
            default_external_id: Some("shared-secret-ext".into()),
            ..Default::default()
        };
        let sts = fake_sts(DENIED_ROLE).await;
        let broker = broker(&sts.url, settings.clone()).await;
        let session = broker
            .tenant(&tenant_config(TENANT_ROLE, Some("acme-secret-ext")), "c1")
            .await
            .expect("session");
        let printed = format!("{key:?} {key:#?} {settings:?} {broker:?} {session:?}");
        for secret in ["acme-secret-ext", "shared-secret-ext"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(printed.contains("ExternalId(***)"), "{printed}");
        assert!(printed.contains(TENANT_ROLE), "{printed}");
    }

    #[tokio::test]
    async fn tenants_sharing_role_and_external_id_get_their_own_sessions() {
        let sts = fake_sts(DENIED_ROLE).await;
        let broker = broker(&sts.url, CredentialSettings::default()).await;
        let alpha = config_of("alpha", TENANT_ROLE, Some("shared-ext"));
        let beta = config_of("beta", TENANT_ROLE, Some("shared-ext"));
        broker.tenant(&alpha, "c1").await.expect("alpha's session");
        broker.tenant(&beta, "c1").await.expect("beta's session");
        broker
            .tenant(&alpha, "c1")
            .await
            .expect("alpha's cached session");
        broker
            .tenant(&beta, "c1")
            .await
            .expect("beta's cached session");
        let tenants: Vec<Option<String>> = sts
            .seen()
            .iter()
            .map(|request| tag(&request.form(), TAG_TENANT_ID).map(str::to_owned))
            .collect();
        assert_eq!(
            tenants,
            [Some("alpha".to_owned()), Some("beta".to_owned())],
            "one AssumeRole per tenant, each tagged with its own tenant"
        );
    }

    #[tokio::test]
    async fn a_tenants_remembered_refusal_does_not_refuse_another_with_the_same_role() {
        let sts = fake_sts_refusing(|form| tag(form, TAG_TENANT_ID) == Some("alpha")).await;
        let broker = broker(&sts.url, CredentialSettings::default()).await;
        let alpha = config_of("alpha", TENANT_ROLE, Some("shared-ext"));
        let beta = config_of("beta", TENANT_ROLE, Some("shared-ext"));
        let error = broker
            .tenant(&alpha, "c1")
            .await
            .expect_err("alpha refused");
        assert_eq!(error.reason, "access_denied");
        broker
            .tenant(&beta, "c1")
            .await
            .expect("beta is asked for itself, not refused by alpha's memory");
        let again = broker
            .tenant(&alpha, "c1")
            .await
            .expect_err("still refused");
        assert!(again.message.contains("remembered"), "{}", again.message);
        assert_eq!(sts.seen().len(), 2, "alpha once, beta once");
    }
}
