//! Retry policy of uploads: the failed attempt ([`PutError`]), which failures are which, and
//! jittered exponential backoff.
//!
//! Uploads are retried until they succeed (or the shutdown deadline passes): dropping a batch
//! would lose its lines. Throttling and transient failures back off exponentially from
//! [`INITIAL_BACKOFF`] to [`MAX_BACKOFF`]; a rejected request (access denied, missing bucket) waits
//! [`MAX_BACKOFF`] each time, since only an operator's fix helps. Meanwhile the memory cap stops
//! reading, so the log files buffer.

use logrelay_common::aws;
use rand::Rng;
use std::time::Duration;

/// First backoff after a failure (the AWS SDKs' standard retry mode uses a 1 s base for
/// throttling and 100 ms otherwise; 200 ms is between, for an agent with few requests).
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(200);

/// Longest backoff (the AWS SDKs' standard mode caps at 20 s; 30 s keeps an outage cheap).
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One attempt to store an object failed.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed ({}): {message}", class.as_str())]
pub struct PutError {
    /// What kind of failure.
    pub class: ErrorClass,
    /// The operation that failed (`put_object`, `upload_part`, `write_file`, …).
    pub operation: &'static str,
    /// The error, human-readable with its causes.
    pub message: String,
}

/// What kind of failure an upload met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// S3 asked us to slow down (`SlowDown`, 503, 429, throttling codes).
    Throttled,
    /// Connection failure, 5xx, or other transient server error.
    Transient,
    /// The request took longer than the request timeout.
    Timeout,
    /// The request was refused (access denied, missing bucket, bad request): needs a fix.
    Rejected,
}

impl ErrorClass {
    /// The class as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Throttled => "throttled",
            ErrorClass::Transient => "transient",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Rejected => "rejected",
        }
    }

    /// Maps the shared AWS error classification.
    pub fn from_aws(class: aws::ErrorClass) -> Self {
        match class {
            aws::ErrorClass::Throttling => ErrorClass::Throttled,
            aws::ErrorClass::Transient => ErrorClass::Transient,
            aws::ErrorClass::AccessDenied
            | aws::ErrorClass::NotFound
            | aws::ErrorClass::Permanent => ErrorClass::Rejected,
        }
    }
}

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First backoff.
    pub initial_backoff: Duration,
    /// Longest backoff (also the wait after a rejected request).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: INITIAL_BACKOFF,
            max_backoff: MAX_BACKOFF,
        }
    }
}

impl RetryPolicy {
    /// The wait after the `attempt`-th failed attempt (1-based): "equal jitter", i.e. half the
    /// exponential step plus a random share of the other half, so waits never collapse to zero
    /// and concurrent uploads spread out.
    pub fn backoff(&self, attempt: u32, class: ErrorClass, rng: &mut impl Rng) -> Duration {
        let ceiling = if class == ErrorClass::Rejected {
            self.max_backoff
        } else {
            let exponent = attempt.saturating_sub(1).min(20);
            self.initial_backoff
                .saturating_mul(1 << exponent)
                .min(self.max_backoff)
        };
        let half = ceiling / 2;
        half + half.mul_f64(rng.random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn backoff_grows_exponentially_within_jitter_bounds_and_caps() {
        let policy = RetryPolicy::default();
        let mut rng = SmallRng::seed_from_u64(1);
        for attempt in 1..=30 {
            let ceiling = INITIAL_BACKOFF
                .saturating_mul(1 << (attempt - 1).min(20))
                .min(MAX_BACKOFF);
            for _ in 0..50 {
                let wait = policy.backoff(attempt, ErrorClass::Transient, &mut rng);
                assert!(
                    wait >= ceiling / 2 && wait <= ceiling,
                    "attempt {attempt}: {wait:?}"
                );
            }
        }
        assert!(policy.backoff(1, ErrorClass::Throttled, &mut rng) <= INITIAL_BACKOFF);
    }

    #[test]
    fn rejected_requests_wait_the_longest_backoff_at_once() {
        let mut rng = SmallRng::seed_from_u64(2);
        let wait = RetryPolicy::default().backoff(1, ErrorClass::Rejected, &mut rng);
        assert!(wait >= MAX_BACKOFF / 2);
    }

    #[test]
    fn aws_classes_map_to_retry_classes() {
        assert_eq!(
            ErrorClass::from_aws(aws::ErrorClass::Throttling),
            ErrorClass::Throttled
        );
        assert_eq!(
            ErrorClass::from_aws(aws::ErrorClass::Transient),
            ErrorClass::Transient
        );
        assert_eq!(
            ErrorClass::from_aws(aws::ErrorClass::AccessDenied),
            ErrorClass::Rejected
        );
    }
}
