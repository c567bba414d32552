//! Delivers one sealed batch: builds its request, stores it, and on failure backs off and tries
//! again until it succeeds (or the task is cancelled at the shutdown deadline). Keeps the sink's
//! health for `/readyz`.

use super::request_builder::{RequestBody, build_request};
use super::retry::RetryPolicy;
use super::service::ObjectService;
use crate::batch::SealedBatch;
use crate::batch::buffer::BufferError;
use crate::internal_events::InternalEvent;
use crate::internal_events::sink::{ObjectStored, UploadRetrying};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The sink counts as unhealthy (`/readyz` fails) after failing without a single success for this
/// long (two minutes: several backoff rounds, longer than a brief S3 hiccup).
pub const UNHEALTHY_AFTER: Duration = Duration::from_secs(120);

/// Whether uploads have been succeeding; shared with the HTTP server.
#[derive(Debug, Clone, Default)]
pub struct SinkHealth {
    failing_since: Arc<Mutex<Option<Instant>>>,
}

impl SinkHealth {
    fn with<R>(&self, f: impl FnOnce(&mut Option<Instant>) -> R) -> R {
        let mut guard = self.failing_since.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// An upload succeeded.
    pub fn record_success(&self) {
        self.with(|since| *since = None);
    }

    /// An upload attempt failed.
    pub fn record_failure(&self) {
        self.with(|since| {
            since.get_or_insert_with(Instant::now);
        });
    }

    /// Whether the sink has not been failing continuously for [`UNHEALTHY_AFTER`].
    pub fn is_healthy(&self) -> bool {
        self.with(|since| since.is_none_or(|since| since.elapsed() < UNHEALTHY_AFTER))
    }
}

/// Stores sealed batches with retries.
#[derive(Debug, Clone)]
pub struct Uploader {
    service: ObjectService,
    retry: RetryPolicy,
    prefix: String,
    health: SinkHealth,
}

impl Uploader {
    /// An uploader writing below the deployment `prefix` (`""` = none).
    pub fn new(service: ObjectService, retry: RetryPolicy, prefix: impl Into<String>) -> Self {
        Self {
            service,
            retry,
            prefix: prefix.into(),
            health: SinkHealth::default(),
        }
    }

    /// The sink's health, for readiness.
    pub fn health(&self) -> SinkHealth {
        self.health.clone()
    }

    /// Stores `batch` with its whole `body`, retrying until it is stored; returns the attempts it
    /// took. Fails only when a body in the disk buffer cannot be read.
    pub async fn upload(&self, batch: &SealedBatch, body: RequestBody) -> Result<u32, BufferError> {
        let request = build_request(batch, body, &self.prefix).await?;
        let mut rng = SmallRng::from_os_rng();
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            match self.service.put(&request).await {
                Ok(()) => {
                    self.health.record_success();
                    ObjectStored {
                        key: &request.key,
                        bytes: request.body.len() as u64,
                        lines: request.lines,
                        attempts: attempt,
                    }
                    .emit();
                    return Ok(attempt);
                }
                Err(error) => {
                    self.health.record_failure();
                    let backoff = self.retry.backoff(attempt, error.class, &mut rng);
                    UploadRetrying {
                        key: &request.key,
                        attempt,
                        class: error.class.as_str(),
                        backoff,
                        error: &error,
                    }
                    .emit();
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_turns_bad_only_after_a_long_failure_and_recovers_on_success() {
        let health = SinkHealth::default();
        assert!(health.is_healthy());
        health.record_failure();
        assert!(health.is_healthy(), "a fresh failure is tolerated");
        *health.failing_since.lock().expect("lock") = Some(Instant::now() - UNHEALTHY_AFTER);
        assert!(!health.is_healthy());
        health.record_success();
        assert!(health.is_healthy());
    }
}
