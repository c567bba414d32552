//! Retrying the processor's AWS calls (tenant lookups, progress, delivery): jittered exponential
//! backoff within a budget of attempts (`RETRY_ATTEMPTS`), and turning AWS errors into
//! [`DeliveryError`]s with stable reasons and their typed [`AwsCause`].
//!
//! The SDK clients are built with the SDK's own retries off
//! (`logrelay_common::aws::without_sdk_retries`), so the budget here is the only one and
//! `RETRY_ATTEMPTS` means what it says.

use crate::error::{AwsCause, DeliveryError};
use crate::telemetry::InternalEvent;
use crate::telemetry::events::CallRetried;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use logrelay_common::aws::{AwsError, ErrorClass};
use rand::Rng;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Where the SDK keeps AWS's request id among an error's metadata.
const AWS_REQUEST_ID: &str = "aws_request_id";

/// Default number of attempts per call, the first included (`RETRY_ATTEMPTS`' documented default, `docs/processor.md`).
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 5;
/// Default first backoff (AWS SDKs' standard retry mode uses a 100 ms base for non-throttling errors).
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(100);
/// Default longest backoff (the AWS SDKs' standard retry mode caps at 20 s).
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(20);

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included (≥ 1).
    pub attempts: u32,
    /// Backoff ceiling before the first retry; doubles per retry.
    pub base_delay: Duration,
    /// Largest backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: DEFAULT_RETRY_ATTEMPTS,
            base_delay: DEFAULT_BASE_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the backoff before retry number `retry` (1-based): `base × 2^(retry−1)`, capped.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// The backoff before retry number `retry`: "full jitter", uniform in `[0, ceiling]`
    /// (<https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/>).
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }

    /// Whether another attempt is allowed after `attempts_made` attempts.
    pub fn allows_another(&self, attempts_made: u32) -> bool {
        attempts_made < self.attempts.max(1)
    }
}

/// A classified AWS failure, as delivery code needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// The call that failed, e.g. `logs:PutLogEvents`.
    pub operation: String,
    /// The common classification (access denied, throttling, …).
    pub class: ErrorClass,
    /// The AWS error code, if AWS answered with one.
    pub code: Option<String>,
    /// Human-readable message.
    pub message: String,
    /// AWS's request id of the last attempt, when AWS answered (for a support case).
    pub request_id: Option<String>,
    /// Attempts made, the first included.
    pub attempts: u32,
}

impl Classified {
    /// Classifies a failed SDK call of any service.
    pub fn from_aws(error: AwsError) -> Self {
        Self {
            operation: error.operation().unwrap_or_default().to_owned(),
            class: error.class(),
            code: error.code().map(str::to_owned),
            message: error.to_string(),
            request_id: None,
            attempts: 1,
        }
    }

    /// What an operator reads: the message, the attempts when there were retries, and AWS's
    /// request id when there is one.
    pub fn describe(&self) -> String {
        let mut text = self.message.clone();
        if self.attempts > 1 {
            text = format!("gave up after {} attempts: {text}", self.attempts);
        }
        if let Some(id) = &self.request_id {
            text.push_str(&format!(" (request id {id})"));
        }
        text
    }

    /// The typed AWS error, for a [`DeliveryError`] built from this failure.
    pub fn cause(&self) -> AwsCause {
        AwsCause {
            operation: self.operation.clone(),
            class: self.class,
            code: self.code.clone(),
        }
    }

    /// Whether the call may succeed if retried after a backoff.
    pub fn is_retryable(&self) -> bool {
        self.class.is_retryable()
    }

    /// Whether the AWS error code is `code`.
    pub fn has_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// The error as a [`DeliveryError`]: retryable classes are transient, the rest permanent.
    pub fn into_delivery_error(self) -> DeliveryError {
        let reason = match self.class {
            ErrorClass::AccessDenied => "access_denied",
            ErrorClass::Throttling => "throttled",
            ErrorClass::Transient => "aws_unavailable",
            ErrorClass::NotFound => "not_found",
            ErrorClass::Permanent => "aws_rejected",
        };
        let cause = Some(self.cause());
        let message = self.describe();
        if self.is_retryable() {
            DeliveryError::transient(reason, message).with_cause(cause)
        } else {
            DeliveryError::permanent(reason, message).with_cause(cause)
        }
    }
}

/// The retries of one object's calls (every call made inside [`tallied`]), for its summary line.
#[derive(Debug, Default)]
pub struct RetryTally {
    retries: std::sync::atomic::AtomicU64,
    last_class: std::sync::Mutex<Option<ErrorClass>>,
}

impl RetryTally {
    fn record(&self, class: ErrorClass) {
        self.retries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut last) = self.last_class.lock() {
            *last = Some(class);
        }
    }

    /// Retries so far and the class of the last failure that was retried.
    pub fn summary(&self) -> (u64, Option<ErrorClass>) {
        let retries = self.retries.load(std::sync::atomic::Ordering::Relaxed);
        let last = self.last_class.lock().ok().and_then(|last| *last);
        (retries, last)
    }
}

tokio::task_local! {
    static TALLY: Arc<RetryTally>;
}

/// Runs `future` with retries counted in `tally` (also inside tasks spawned with [`in_tally`]).
pub async fn tallied<F: Future>(tally: Arc<RetryTally>, future: F) -> F::Output {
    TALLY.scope(tally, future).await
}

/// `future` counting its retries in the tally of the task that creates it (for a task spawned on
/// behalf of an object; without a tally it runs as it is).
pub fn in_tally<F: Future>(future: F) -> impl Future<Output = F::Output> {
    let tally = TALLY.try_with(Arc::clone).ok();
    async move {
        match tally {
            Some(tally) => TALLY.scope(tally, future).await,
            None => future.await,
        }
    }
}

/// Calls `call` until it succeeds, fails with a non-retryable error, or the policy's attempts are
/// used up; sleeps a jittered backoff between attempts and counts each retry for `tenant` (and in
/// the object's [`RetryTally`], when the call runs inside [`tallied`]).
pub async fn with_retries<T, E, F, Fut>(
    policy: &RetryPolicy,
    tenant: &str,
    operation: &'static str,
    mut call: F,
) -> Result<T, Classified>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let mut attempts = 0;
    loop {
        attempts += 1;
        match call().await {
            Ok(value) => return Ok(value),
            Err(error) => {
                let request_id = error.meta().extra(AWS_REQUEST_ID).map(str::to_owned);
                let mut failure = Classified::from_aws(AwsError::from_sdk(operation, error));
                failure.request_id = request_id;
                failure.attempts = attempts;
                if !failure.is_retryable() || !policy.allows_another(attempts) {
                    return Err(failure);
                }
                let backoff = policy.backoff(attempts);
                let _ = TALLY.try_with(|tally| tally.record(failure.class));
                CallRetried {
                    tenant,
                    operation,
                    attempt: attempts,
                    backoff,
                    error: &failure.message,
                }
                .emit();
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_ceiling_doubles_and_is_capped() {
        let policy = RetryPolicy {
            attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        assert_eq!(policy.ceiling(1), Duration::from_millis(100));
        assert_eq!(policy.ceiling(2), Duration::from_millis(200));
        assert_eq!(policy.ceiling(4), Duration::from_millis(800));
        assert_eq!(policy.ceiling(5), Duration::from_secs(1));
        assert_eq!(policy.ceiling(60), Duration::from_secs(1));
    }

    #[test]
    fn backoff_is_jittered_within_the_ceiling() {
        let policy = RetryPolicy::default();
        let samples: Vec<Duration> = (0..200).map(|_| policy.backoff(3)).collect();
        assert!(samples.iter().all(|d| *d <= policy.ceiling(3)));
        let first = samples[0];
        assert!(
            samples.iter().any(|d| *d != first),
            "jitter must vary the delay"
        );
    }

    #[test]
    fn the_budget_counts_the_first_attempt() {
        let policy = RetryPolicy {
            attempts: 3,
            ..RetryPolicy::default()
        };
        assert!(policy.allows_another(1));
        assert!(policy.allows_another(2));
        assert!(!policy.allows_another(3));
        let zero = RetryPolicy {
            attempts: 0,
            ..RetryPolicy::default()
        };
        assert!(!zero.allows_another(1));
    }

    #[test]
    fn classes_map_to_delivery_errors() {
        let denied = Classified {
            operation: "logs:PutLogEvents".into(),
            class: ErrorClass::AccessDenied,
            code: Some("AccessDenied".into()),
            message: "no".into(),
            request_id: Some("req-1".into()),
            attempts: 1,
        };
        let error = denied.into_delivery_error();
        assert_eq!(
            (error.reason, error.is_transient()),
            ("access_denied", false)
        );
        assert!(
            error.to_string().contains("no (request id req-1)"),
            "{error}"
        );
        let throttled = Classified {
            operation: "logs:PutLogEvents".into(),
            class: ErrorClass::Throttling,
            code: None,
            message: "slow".into(),
            request_id: None,
            attempts: 5,
        };
        let error = throttled.into_delivery_error();
        assert!(error.is_transient());
        assert!(
            error.to_string().contains("gave up after 5 attempts: slow"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_tally_follows_its_object_into_spawned_tasks() {
        let tally = Arc::new(RetryTally::default());
        tallied(tally.clone(), async {
            let _ = TALLY.try_with(|t| t.record(ErrorClass::Throttling));
            tokio::spawn(in_tally(async {
                let _ = TALLY.try_with(|t| t.record(ErrorClass::Transient));
            }))
            .await
            .expect("joins");
            // A task spawned without `in_tally` counts nowhere.
            tokio::spawn(async {
                assert!(TALLY.try_with(|_| ()).is_err());
            })
            .await
            .expect("joins");
        })
        .await;
        assert_eq!(tally.summary(), (2, Some(ErrorClass::Transient)));
    }
}
