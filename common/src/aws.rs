//! AWS setup shared by every binary: the base [`SdkConfig`] from the environment (region, endpoint
//! override, default credential chain incl. profiles and IRSA web identity), the client behaviour
//! every caller that retries on its own needs ([`without_sdk_retries`]), S3/STS clients, assume-role
//! chains with cached, self-refreshing credentials, and the classification of AWS errors (access
//! denied vs. throttling vs. transient).
//!
//! HTTP goes through one explicit hyper 1 + rustls + ring client (see the shared toolchain notes):
//! the SDK crates are built without their default HTTP client.

use std::error::Error as StdError;
use std::fmt;
use std::time::{Duration, SystemTime};

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self, ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::checksum_config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

/// Region used when neither the options nor `AWS_REGION`/`AWS_DEFAULT_REGION`/the profile name one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Refresh assumed-role credentials this long before they expire (the AWS Java SDK's
/// `StsCredentialsProvider` prefetches 5 minutes ahead; STS sessions last at least 15 minutes).
pub const CREDENTIALS_REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

/// Shortest session STS grants (`DurationSeconds` minimum, AssumeRole API reference).
pub const MIN_SESSION_DURATION: Duration = Duration::from_secs(900);

/// Longest session STS can grant (`DurationSeconds` maximum, 12 h, AssumeRole API reference). Role
/// chaining is further limited to 1 h by STS itself.
pub const MAX_SESSION_DURATION: Duration = Duration::from_secs(12 * 60 * 60);

/// How long one hop of [`assume_role_chain`] may take to get its first credentials: STS answers in
/// well under a second; this leaves room for the SDK's 3 attempts with backoff.
pub const ASSUME_ROLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Maximum length of a role session name (`RoleSessionName`, AssumeRole API reference).
pub const MAX_SESSION_NAME_LEN: usize = 64;

/// Minimum length of a role session name (`RoleSessionName`, AssumeRole API reference).
const MIN_SESSION_NAME_LEN: usize = 2;

/// Session name used when every part sanitises to nothing.
const FALLBACK_SESSION_NAME: &str = "logrelay";

/// Maximum length of an external id (`ExternalId`, AssumeRole API reference).
pub const MAX_EXTERNAL_ID_LEN: usize = 1224;

/// Maximum number of session tags per AssumeRole call (AssumeRole API reference).
pub const MAX_SESSION_TAGS: usize = 50;

/// Where and how to reach AWS; everything unset comes from the environment.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    /// Region; falls back to `AWS_REGION`/`AWS_DEFAULT_REGION`, the profile, then [`DEFAULT_REGION`].
    pub region: Option<String>,
    /// Endpoint for every service (an emulator); falls back to `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// Fixed credentials instead of the default chain (tests, emulators).
    pub credentials: Option<Credentials>,
}

/// Loads the base configuration: region, endpoint override and the default credential chain
/// (environment, profiles, web identity/IRSA, ECS, IMDS), over the rustls-ring HTTP client.
///
/// With a custom endpoint (options or `AWS_ENDPOINT_URL`) request checksums are computed and
/// response checksums validated only when an operation requires them, as emulators expect.
pub async fn base_config(opts: &AwsOptions) -> SdkConfig {
    let region = RegionProviderChain::first_try(opts.region.clone().map(Region::new))
        .or_else(aws_config::environment::region::EnvironmentVariableRegionProvider::new())
        .or_else(aws_config::profile::ProfileFileRegionProvider::new())
        .or_else(Region::from_static(DEFAULT_REGION));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .region(region);
    if let Some(endpoint) = &opts.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some(credentials) = &opts.credentials {
        loader = loader.credentials_provider(credentials.clone());
    }
    let config = loader.load().await;
    if config.endpoint_url().is_some() {
        config
            .into_builder()
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build()
    } else {
        config
    }
}

/// The one HTTP client: hyper 1 with rustls using the ring crypto provider.
fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Whether the configuration talks to a custom endpoint (an emulator) rather than AWS.
pub fn has_custom_endpoint(config: &SdkConfig) -> bool {
    config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
}

/// `config` for clients whose caller retries on its own: the SDK's retries off, so the caller's
/// attempt budget is the whole budget, and, when given, a timeout on every request attempt (the
/// other timeouts of `config` are kept). Build any service's client from the result.
pub fn without_sdk_retries(config: &SdkConfig, attempt_timeout: Option<Duration>) -> SdkConfig {
    let mut builder = config.to_builder().retry_config(RetryConfig::disabled());
    if let Some(timeout) = attempt_timeout {
        let mut timeouts = TimeoutConfig::builder()
            .operation_attempt_timeout(timeout)
            .build();
        if let Some(base) = config.timeout_config() {
            timeouts.take_defaults_from(base);
        }
        builder = builder.timeout_config(timeouts);
    }
    builder.build()
}

/// S3 client; path-style addressing when a custom endpoint is set.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(has_custom_endpoint(config))
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// STS client.
pub fn sts_client(config: &SdkConfig) -> aws_sdk_sts::Client {
    aws_sdk_sts::Client::new(config)
}

/// One `sts:AssumeRole` hop of a chain. `Debug` never prints the ExternalId.
#[derive(Clone, PartialEq, Eq)]
pub struct RoleStep {
    /// ARN of the role to assume, e.g. `arn:aws:iam::222222222222:role/logrelay-delivery`.
    pub role_arn: String,
    /// External id the role's trust policy requires (`sts:ExternalId`), if any.
    pub external_id: Option<String>,
    /// Role session name; sanitised with [`session_name`] before use.
    pub session_name: String,
    /// Session tags (`sts:TagSession` must be allowed by the trust policy).
    pub session_tags: Vec<(String, String)>,
    /// Region of the STS endpoint for this hop; it also becomes the region of the resulting config.
    pub region: Option<String>,
    /// Requested session length, [`MIN_SESSION_DURATION`]..=[`MAX_SESSION_DURATION`].
    pub duration: Duration,
}

impl std::fmt::Debug for RoleStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleStep")
            .field("role_arn", &self.role_arn)
            .field(
                "external_id",
                &crate::tenant::RedactedExternalId(self.external_id.as_deref()),
            )
            .field("session_name", &self.session_name)
            .field("session_tags", &self.session_tags)
            .field("region", &self.region)
            .field("duration", &self.duration)
            .finish()
    }
}

impl RoleStep {
    /// A step with no external id, no tags, the base region and STS's minimum duration.
    pub fn new(role_arn: impl Into<String>, session_name: impl Into<String>) -> Self {
        Self {
            role_arn: role_arn.into(),
            external_id: None,
            session_name: session_name.into(),
            session_tags: Vec::new(),
            region: None,
            duration: MIN_SESSION_DURATION,
        }
    }

    /// Checks the inputs STS would reject, so a bad tenant config fails with a clear message.
    pub fn validate(&self) -> Result<(), String> {
        if !is_role_arn(&self.role_arn) {
            return Err(format!(
                "role_arn {:?} is not an IAM role ARN (arn:PARTITION:iam::ACCOUNT:role/NAME)",
                self.role_arn
            ));
        }
        if !(MIN_SESSION_DURATION..=MAX_SESSION_DURATION).contains(&self.duration) {
            return Err(format!(
                "duration {} s is outside STS's {}..={} s",
                self.duration.as_secs(),
                MIN_SESSION_DURATION.as_secs(),
                MAX_SESSION_DURATION.as_secs()
            ));
        }
        if let Some(id) = &self.external_id
            && !(2..=MAX_EXTERNAL_ID_LEN).contains(&id.len())
        {
            return Err(format!(
                "external_id must be 2..={MAX_EXTERNAL_ID_LEN} characters, got {}",
                id.len()
            ));
        }
        if self.session_tags.len() > MAX_SESSION_TAGS {
            return Err(format!(
                "{} session tags, STS allows at most {MAX_SESSION_TAGS}",
                self.session_tags.len()
            ));
        }
        Ok(())
    }
}

/// `arn:<partition>:iam::<12 digits>:role/<name>`.
fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(
        parts.as_slice(),
        ["arn", partition, "iam", "", account, resource]
            if !partition.is_empty()
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.strip_prefix("role/").is_some_and(|name| !name.is_empty())
    )
}

/// The account id in a role ARN, if it is one.
pub fn role_account_id(role_arn: &str) -> Option<&str> {
    is_role_arn(role_arn)
        .then(|| role_arn.split(':').nth(4))
        .flatten()
}

/// Builds a role session name from parts joined with `-`: characters outside STS's `[\w+=,.@-]`
/// become `-`, and names longer than 64 characters keep a prefix plus a hash of the full name so
/// distinct inputs stay distinct.
pub fn session_name(parts: &[&str]) -> String {
    let joined = parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("-");
    let mut name: String = joined
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.len() > MAX_SESSION_NAME_LEN {
        let digest = hex::encode(Sha256::digest(joined.as_bytes()));
        const HASH_LEN: usize = 8;
        name.truncate(MAX_SESSION_NAME_LEN - HASH_LEN - 1);
        name.push('-');
        name.push_str(&digest[..HASH_LEN]);
    }
    if name.len() < MIN_SESSION_NAME_LEN {
        return FALLBACK_SESSION_NAME.to_owned();
    }
    name
}

/// Returns a config whose credentials come from assuming each step's role in turn, starting from
/// `base`'s credentials. Every hop's credentials are cached and refreshed
/// [`CREDENTIALS_REFRESH_BEFORE`] their expiry, so a long-lived config keeps working.
///
/// The chain is resolved once before returning, so a refused hop (wrong external id, missing
/// trust) fails here with its AWS error code; see [`AwsError::class`]. To share a central hop
/// between many tenants, resolve it once and chain each tenant's step from the returned config.
pub async fn assume_role_chain(
    base: &SdkConfig,
    steps: &[RoleStep],
) -> Result<SdkConfig, AwsError> {
    let total = steps.len();
    let mut config = base.clone();
    for (index, step) in steps.iter().enumerate() {
        let operation = || {
            format!(
                "sts:AssumeRole {} (chain step {} of {total})",
                step.role_arn,
                index + 1
            )
        };
        step.validate()
            .map_err(|reason| AwsError::InvalidRoleStep {
                step: index + 1,
                reason,
            })?;
        if let Some(region) = &step.region {
            config = config
                .into_builder()
                .region(Region::new(region.clone()))
                .build();
        }
        let mut builder = AssumeRoleProvider::builder(step.role_arn.clone())
            .session_name(session_name(&[&step.session_name]))
            .session_length(step.duration)
            .configure(&config);
        if let Some(external_id) = &step.external_id {
            builder = builder.external_id(external_id.clone());
        }
        if !step.session_tags.is_empty() {
            builder = builder.tags(step.session_tags.iter().cloned());
        }
        let provider =
            RefreshingCredentials::new(builder.build().await, CREDENTIALS_REFRESH_BEFORE);
        provider
            .provide_credentials()
            .await
            .map_err(|err| AwsError::from_credentials(operation(), err))?;
        config = config
            .into_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build();
    }
    Ok(config)
}

/// Caches another provider's credentials and fetches new ones `refresh_before` their expiry. If a
/// refresh fails while the cached credentials are still valid, those are returned (and the
/// failure logged), so a brief STS outage does not stop delivery.
#[derive(Debug)]
struct RefreshingCredentials<P> {
    inner: P,
    refresh_before: Duration,
    cached: Mutex<Option<Credentials>>,
}

impl<P: ProvideCredentials> RefreshingCredentials<P> {
    fn new(inner: P, refresh_before: Duration) -> Self {
        Self {
            inner,
            refresh_before,
            cached: Mutex::new(None),
        }
    }

    async fn credentials(&self) -> provider::Result {
        // One refresh at a time: concurrent callers wait for it instead of calling STS too.
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now();
        if let Some(creds) = cached.as_ref()
            && !needs_refresh(creds.expiry(), now, self.refresh_before)
        {
            return Ok(creds.clone());
        }
        match self.inner.provide_credentials().await {
            Ok(fresh) => {
                *cached = Some(fresh.clone());
                Ok(fresh)
            }
            Err(err) => match cached.as_ref() {
                Some(creds) if creds.expiry().is_some_and(|expiry| now < expiry) => {
                    tracing::warn!(error = %DisplayErrorContext(&err), "credentials refresh failed; using cached credentials until they expire");
                    Ok(creds.clone())
                }
                _ => Err(err),
            },
        }
    }
}

impl<P: ProvideCredentials> ProvideCredentials for RefreshingCredentials<P> {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(self.credentials())
    }
}

/// Whether credentials expiring at `expiry` must be replaced at `now`: credentials without an
/// expiry never do; others do from `refresh_before` ahead of expiry.
fn needs_refresh(expiry: Option<SystemTime>, now: SystemTime, refresh_before: Duration) -> bool {
    match expiry {
        None => false,
        Some(expiry) => now
            .checked_add(refresh_before)
            .is_none_or(|deadline| deadline >= expiry),
    }
}

/// What a caller should do about a failed AWS call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The identity may not do this (IAM, trust policy, external id): permanent until config changes.
    AccessDenied,
    /// The service asked us to slow down: retry with backoff.
    Throttling,
    /// Network, timeout or server-side failure: retry.
    Transient,
    /// The target (bucket, log group, table, role) does not exist.
    NotFound,
    /// Anything else the request itself got wrong: retrying will not help.
    Permanent,
}

impl ErrorClass {
    /// Whether retrying the same call later can succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Throttling | Self::Transient)
    }
}

/// Error codes meaning "not allowed" across services (STS/IAM/S3 `AccessDenied`, JSON services'
/// `AccessDeniedException`, SNS `AuthorizationError`, bad or unknown keys).
const ACCESS_DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "AuthorizationError",
    "AuthFailure",
    "UnauthorizedOperation",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "IncompleteSignature",
    "MissingAuthenticationToken",
];

/// Throttling codes, as listed by the AWS SDKs' standard retry strategy (smithy-rs
/// `aws-runtime/src/retries/classifiers.rs` `THROTTLING_ERRORS`).
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Transient server-side codes (smithy-rs `TRANSIENT_ERRORS`, plus expired credentials, which a
/// refresh fixes).
const TRANSIENT_CODES: &[&str] = &[
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
];

/// Codes meaning the target does not exist.
const NOT_FOUND_CODES: &[&str] = &[
    "NoSuchBucket",
    "NoSuchKey",
    "NoSuchEntity",
    "NotFound",
    "ResourceNotFoundException",
    "QueueDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue",
];

/// Classifies an AWS error code, using the HTTP status when the code is unknown.
pub fn classify_code(code: Option<&str>, http_status: Option<u16>) -> ErrorClass {
    if let Some(code) = code {
        if ACCESS_DENIED_CODES.contains(&code) {
            return ErrorClass::AccessDenied;
        }
        if THROTTLING_CODES.contains(&code) {
            return ErrorClass::Throttling;
        }
        if TRANSIENT_CODES.contains(&code) {
            return ErrorClass::Transient;
        }
        if NOT_FOUND_CODES.contains(&code) {
            return ErrorClass::NotFound;
        }
    }
    match http_status {
        Some(429) => ErrorClass::Throttling,
        Some(500..=599) => ErrorClass::Transient,
        Some(401 | 403) => ErrorClass::AccessDenied,
        Some(404) => ErrorClass::NotFound,
        _ => ErrorClass::Permanent,
    }
}

/// The AWS error code of a failed call (`AccessDenied`, `ThrottlingException`, ...), if the
/// service answered with one.
pub fn error_code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    err.as_service_error().and_then(ProvideErrorMetadata::code)
}

/// Classifies any failed SDK call. Credential failures inside a call (e.g. a refused AssumeRole
/// while refreshing a chain) are classified by the STS error they carry.
pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> ErrorClass
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    code_and_class(err).1
}

/// The code and class of an SDK error, looking into nested STS errors for non-service failures.
fn code_and_class<E>(err: &SdkError<E, HttpResponse>) -> (Option<String>, ErrorClass)
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    match err {
        SdkError::ServiceError(service) => {
            let code = service.err().code();
            let status = service.raw().status().as_u16();
            (code.map(str::to_owned), classify_code(code, Some(status)))
        }
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => (None, ErrorClass::Transient),
        SdkError::DispatchFailure(dispatch) => match nested_sts_error(err) {
            Some(found) => found,
            None if dispatch.is_user() => (None, ErrorClass::Permanent),
            None => (None, ErrorClass::Transient),
        },
        _ => nested_sts_error(err).unwrap_or((None, ErrorClass::Permanent)),
    }
}

/// Walks an error's sources for an STS AssumeRole failure and classifies it.
fn nested_sts_error(err: &(dyn StdError + 'static)) -> Option<(Option<String>, ErrorClass)> {
    let mut current = err.source();
    while let Some(source) = current {
        if let Some(sts) = source.downcast_ref::<SdkError<AssumeRoleError, HttpResponse>>() {
            return Some(code_and_class(sts));
        }
        if let Some(timeout) = source.downcast_ref::<CredentialsError>()
            && matches!(timeout, CredentialsError::ProviderTimedOut(_))
        {
            return Some((None, ErrorClass::Transient));
        }
        current = source.source();
    }
    None
}

/// Longest error message kept in an [`AwsError`] (error chains can embed whole response bodies).
const MAX_ERROR_MESSAGE_LEN: usize = 1024;

/// The error and its sources as one line (`a: b: c`), repeated texts skipped, cut to
/// [`MAX_ERROR_MESSAGE_LEN`].
fn error_chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        current = e.source();
    }
    let mut message = parts.join(": ");
    if message.len() > MAX_ERROR_MESSAGE_LEN {
        let mut end = MAX_ERROR_MESSAGE_LEN;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

/// A failed AWS operation, keeping the AWS error code and its [`ErrorClass`] visible.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// An AWS call (or the credential resolution it needed) failed.
    #[error("{operation} failed ({class}): {}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
    Call {
        /// What was attempted, e.g. `sts:AssumeRole arn:... (chain step 2 of 2)`.
        operation: String,
        /// What the caller should do about it.
        class: ErrorClass,
        /// The AWS error code, e.g. `AccessDenied`.
        code: Option<String>,
        /// The full error chain, human-readable.
        message: String,
        /// The underlying SDK error, for debugging. Deliberately not the error's `source()`:
        /// `message` already carries its text, and chain printers (`{:#}`, log layers) would
        /// print it again.
        cause: Option<Box<dyn StdError + Send + Sync>>,
    },
    /// A role step's inputs are invalid (checked before calling STS).
    #[error("invalid assume-role step {step}: {reason}")]
    InvalidRoleStep {
        /// 1-based position of the step in the chain.
        step: usize,
        /// What is wrong.
        reason: String,
    },
}

impl AwsError {
    /// Wraps a failed SDK call, extracting its code and class.
    pub fn from_sdk<E>(operation: impl Into<String>, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let (code, class) = code_and_class(&err);
        Self::Call {
            operation: operation.into(),
            class,
            code,
            message: error_chain_text(&err),
            cause: Some(Box::new(err)),
        }
    }

    /// Wraps a credential-provider failure, classified by the STS error inside it.
    pub fn from_credentials(operation: impl Into<String>, err: CredentialsError) -> Self {
        let (code, class) = match &err {
            CredentialsError::ProviderTimedOut(_) => (None, ErrorClass::Transient),
            CredentialsError::CredentialsNotLoaded(_) => (None, ErrorClass::Permanent),
            _ => nested_sts_error(&err).unwrap_or((None, ErrorClass::Permanent)),
        };
        Self::Call {
            operation: operation.into(),
            class,
            code,
            message: error_chain_text(&err),
            cause: Some(Box::new(err)),
        }
    }

    /// What the caller should do about this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Call { class, .. } => *class,
            Self::InvalidRoleStep { .. } => ErrorClass::Permanent,
        }
    }

    /// The AWS error code, if AWS returned one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Call { code, .. } => code.as_deref(),
            Self::InvalidRoleStep { .. } => None,
        }
    }

    /// What was attempted (`"logs:CreateLogGroup"`, …), when a call failed.
    pub fn operation(&self) -> Option<&str> {
        match self {
            Self::Call { operation, .. } => Some(operation),
            Self::InvalidRoleStep { .. } => None,
        }
    }

    /// Whether the identity was refused (permanent until the tenant fixes IAM).
    pub fn is_access_denied(&self) -> bool {
        self.class() == ErrorClass::AccessDenied
    }

    /// Whether retrying later can succeed.
    pub fn is_retryable(&self) -> bool {
        self.class().is_retryable()
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::AccessDenied => "access denied",
            Self::Throttling => "throttling",
            Self::Transient => "transient",
            Self::NotFound => "not found",
            Self::Permanent => "permanent",
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_credential_types::provider::future;

    #[test]
    fn session_name_replaces_characters_outside_sts_charset() {
        assert_eq!(
            session_name(&["logrelay", "team a/prod", "é"]),
            "logrelay-team-a-prod--"
        );
        assert_eq!(session_name(&["a+b=c,d.e@f_g-h"]), "a+b=c,d.e@f_g-h");
    }

    #[test]
    fn session_name_skips_empty_parts_and_falls_back_when_nothing_is_left() {
        assert_eq!(session_name(&["", "tenant", ""]), "tenant");
        assert_eq!(session_name(&[]), FALLBACK_SESSION_NAME);
        assert_eq!(session_name(&["x"]), FALLBACK_SESSION_NAME);
    }

    #[test]
    fn long_session_names_are_cut_to_64_and_stay_distinct() {
        let long_a = "a".repeat(100);
        let long_b = format!("{}b", "a".repeat(99));
        let a = session_name(&["logrelay", &long_a]);
        let b = session_name(&["logrelay", &long_b]);
        assert_eq!(a.len(), MAX_SESSION_NAME_LEN);
        assert_eq!(b.len(), MAX_SESSION_NAME_LEN);
        assert_ne!(a, b);
        assert!(a.starts_with("logrelay-aaaa"));
        let exact = "c".repeat(MAX_SESSION_NAME_LEN);
        assert_eq!(session_name(&[&exact]), exact);
    }

    #[test]
    fn session_name_is_idempotent() {
        let once = session_name(&["logrelay", "tenant with spaces", &"z".repeat(80)]);
        assert_eq!(session_name(&[&once]), once);
    }

    #[test]
    fn debug_of_a_role_step_never_shows_its_external_id() {
        let step = RoleStep {
            external_id: Some("tenant-secret-ext".into()),
            ..RoleStep::new("arn:aws:iam::222222222222:role/delivery", "s")
        };
        let printed = format!("{step:?} {step:#?}");
        assert!(!printed.contains("tenant-secret-ext"), "{printed}");
        assert!(printed.contains("ExternalId(***)"), "{printed}");
        assert!(printed.contains("arn:aws:iam::222222222222:role/delivery"));
    }

    #[test]
    fn role_step_validation_rejects_what_sts_would() {
        let good = RoleStep::new("arn:aws:iam::222222222222:role/delivery", "s");
        assert_eq!(good.validate(), Ok(()));
        let bad_arn = RoleStep::new("arn:aws:iam::2222:role/delivery", "s");
        assert!(bad_arn.validate().is_err());
        let user_arn = RoleStep::new("arn:aws:iam::222222222222:user/bob", "s");
        assert!(user_arn.validate().is_err());
        let short = RoleStep {
            duration: Duration::from_secs(899),
            ..good.clone()
        };
        assert!(
            short
                .validate()
                .expect_err("too short")
                .contains("duration")
        );
        let bad_id = RoleStep {
            external_id: Some("x".into()),
            ..good.clone()
        };
        assert!(
            bad_id
                .validate()
                .expect_err("too short")
                .contains("external_id")
        );
        let china = RoleStep::new("arn:aws-cn:iam::222222222222:role/path/name", "s");
        assert_eq!(china.validate(), Ok(()));
    }

    #[test]
    fn role_account_id_is_read_from_the_arn() {
        assert_eq!(
            role_account_id("arn:aws:iam::222222222222:role/x"),
            Some("222222222222")
        );
        assert_eq!(role_account_id("not-an-arn"), None);
    }

    #[test]
    fn refresh_is_needed_only_within_the_refresh_window() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let before = Duration::from_secs(300);
        assert!(!needs_refresh(None, now, before));
        assert!(!needs_refresh(
            Some(now + Duration::from_secs(301)),
            now,
            before
        ));
        assert!(needs_refresh(
            Some(now + Duration::from_secs(300)),
            now,
            before
        ));
        assert!(needs_refresh(
            Some(now + Duration::from_secs(10)),
            now,
            before
        ));
        assert!(needs_refresh(
            Some(now - Duration::from_secs(10)),
            now,
            before
        ));
    }

    /// A provider that counts calls and issues credentials valid for `lifetime`.
    #[derive(Debug, Clone)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        lifetime: Duration,
        fail_after: usize,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let result = if n > self.fail_after {
                Err(CredentialsError::provider_error("sts down"))
            } else {
                Ok(Credentials::new(
                    format!("AKID{n}"),
                    "secret",
                    Some("token".into()),
                    Some(SystemTime::now() + self.lifetime),
                    "counting",
                ))
            };
            future::ProvideCredentials::ready(result)
        }
    }

    fn counting(lifetime: Duration, fail_after: usize) -> (Counting, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let provider = Counting {
            calls: calls.clone(),
            lifetime,
            fail_after,
        };
        (provider, calls)
    }

    #[tokio::test]
    async fn long_lived_credentials_are_served_from_cache() {
        let (inner, calls) = counting(Duration::from_secs(3600), usize::MAX);
        let provider = RefreshingCredentials::new(inner, CREDENTIALS_REFRESH_BEFORE);
        let first = provider.provide_credentials().await.expect("credentials");
        let second = provider.provide_credentials().await.expect("credentials");
        assert_eq!(first.access_key_id(), second.access_key_id());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn credentials_inside_the_refresh_window_are_refetched() {
        // 15-minute sessions with a 16-minute window: every call is due for refresh.
        let (inner, calls) = counting(MIN_SESSION_DURATION, usize::MAX);
        let provider = RefreshingCredentials::new(inner, Duration::from_secs(16 * 60));
        let first = provider.provide_credentials().await.expect("credentials");
        let second = provider.provide_credentials().await.expect("credentials");
        assert_ne!(first.access_key_id(), second.access_key_id());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failed_refresh_keeps_serving_unexpired_credentials() {
        let (inner, calls) = counting(MIN_SESSION_DURATION, 1);
        let provider = RefreshingCredentials::new(inner, Duration::from_secs(16 * 60));
        let first = provider.provide_credentials().await.expect("credentials");
        let second = provider
            .provide_credentials()
            .await
            .expect("stale but valid");
        assert_eq!(first.access_key_id(), second.access_key_id());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failed_refresh_of_expired_credentials_is_an_error() {
        let (inner, _calls) = counting(Duration::ZERO, 1);
        let provider = RefreshingCredentials::new(inner, CREDENTIALS_REFRESH_BEFORE);
        provider.provide_credentials().await.expect("first fetch");
        assert!(provider.provide_credentials().await.is_err());
    }

    #[test]
    fn codes_are_classified_for_retry_decisions() {
        assert_eq!(
            classify_code(Some("AccessDenied"), Some(403)),
            ErrorClass::AccessDenied
        );
        assert_eq!(
            classify_code(Some("AccessDeniedException"), Some(400)),
            ErrorClass::AccessDenied
        );
        assert_eq!(
            classify_code(Some("ThrottlingException"), Some(400)),
            ErrorClass::Throttling
        );
        assert_eq!(
            classify_code(Some("Throttling"), Some(400)),
            ErrorClass::Throttling
        );
        assert_eq!(
            classify_code(Some("SlowDown"), Some(503)),
            ErrorClass::Throttling
        );
        assert_eq!(
            classify_code(Some("InternalError"), Some(500)),
            ErrorClass::Transient
        );
        assert_eq!(classify_code(None, Some(502)), ErrorClass::Transient);
        assert_eq!(classify_code(None, Some(429)), ErrorClass::Throttling);
        assert_eq!(
            classify_code(Some("ResourceNotFoundException"), Some(400)),
            ErrorClass::NotFound
        );
        assert_eq!(
            classify_code(Some("InvalidParameterException"), Some(400)),
            ErrorClass::Permanent
        );
        assert!(ErrorClass::Throttling.is_retryable());
        assert!(!ErrorClass::AccessDenied.is_retryable());
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Chained {
        text: String,
        #[source]
        source: Option<Box<Chained>>,
    }

    #[test]
    fn error_chain_text_joins_sources_skips_repeats_and_is_bounded() {
        let leaf = Chained {
            text: "AccessDenied".into(),
            source: None,
        };
        let middle = Chained {
            text: "service error".into(),
            source: Some(Box::new(leaf)),
        };
        let top = Chained {
            text: "service error".into(),
            source: Some(Box::new(middle)),
        };
        assert_eq!(error_chain_text(&top), "service error: AccessDenied");
        let huge = Chained {
            text: "é".repeat(MAX_ERROR_MESSAGE_LEN),
            source: None,
        };
        assert!(error_chain_text(&huge).len() <= MAX_ERROR_MESSAGE_LEN + '…'.len_utf8());
    }

    #[test]
    fn aws_error_message_names_operation_and_code() {
        let err = AwsError::Call {
            operation: "sts:AssumeRole arn:aws:iam::222222222222:role/x".into(),
            class: ErrorClass::AccessDenied,
            code: Some("AccessDenied".into()),
            message: "not authorized".into(),
            cause: None,
        };
        assert_eq!(
            err.to_string(),
            "sts:AssumeRole arn:aws:iam::222222222222:role/x failed (access denied): AccessDenied: not authorized"
        );
        assert!(err.is_access_denied());
        assert!(!err.is_retryable());
    }

    #[test]
    fn a_call_error_prints_its_cause_once_in_a_chain() {
        let err = AwsError::Call {
            operation: "sqs:GetQueueAttributes".into(),
            class: ErrorClass::Transient,
            code: Some("ThrottlingException".into()),
            message: "service error: Rate exceeded".into(),
            cause: Some(Box::new(std::io::Error::other(
                "service error: Rate exceeded",
            ))),
        };
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read the attributes of queue q")]
        struct Outer(#[source] AwsError);
        let chain = error_chain_text(&Outer(err));
        assert_eq!(
            chain,
            "cannot read the attributes of queue q: sqs:GetQueueAttributes failed (transient): \
             ThrottlingException: service error: Rate exceeded"
        );
    }
}
