//! One `handle` call's state, and its first steps: the key names the tenant, the tenant's configs
//! that want the object, and GetObject's headers and body.

use super::Inner;
use crate::error::ProcessError;
use crate::object::{DeliveryReport, FailureKind, ObjectRef, SkipReason};
use crate::retry::{Classified, with_retries};
use crate::telemetry::InternalEvent;
use crate::telemetry::events::VectorObjectRead;
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use logrelay_common::key::ObjectKey;
use logrelay_common::tenant::{DeliveryConfig, validate_tenant_id};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// How an attempt ended when it did not fail.
pub(super) enum Finished {
    /// Every wanted config delivered.
    Delivered(DeliveryReport),
    /// Acknowledged without delivery.
    Skipped(SkipReason),
}

/// One `handle` call.
pub(super) struct Attempt<'a> {
    pub(super) inner: &'a Inner,
    pub(super) object: &'a ObjectRef,
    /// This attempt's lease owner id.
    pub(super) owner: String,
    /// The tenant the key names, once it is known.
    pub(super) tenant_id: Option<String>,
}

/// What GetObject said about the object.
pub(super) struct Headers {
    /// ETag without quotes (the notification's when S3 sends none).
    pub(super) etag: String,
    /// When S3 stored the object.
    pub(super) last_modified: Option<DateTime<Utc>>,
    /// Size in bytes.
    pub(super) size: Option<u64>,
}

impl<'a> Attempt<'a> {
    pub(super) fn new(inner: &'a Inner, object: &'a ObjectRef) -> Self {
        let n = inner.attempts.fetch_add(1, Ordering::Relaxed);
        Self {
            inner,
            object,
            owner: format!("{}-{n}", inner.instance),
            tenant_id: None,
        }
    }

    /// Parses the object's key and checks the tenant it names, which the attempt then belongs to.
    pub(super) fn parse_key(&mut self) -> Result<ObjectKey, ProcessError> {
        let key = ObjectKey::parse_with_prefix(&self.object.key, &self.inner.key_prefix)?;
        if key.partition.is_quarantine() {
            // No tenant: the caller skips it.
            return Ok(key);
        }
        let tenant_id = key.partition.customer_id.clone();
        validate_tenant_id(&tenant_id).map_err(|problem| ProcessError::BadTenantId {
            tenant_id: tenant_id.clone(),
            problem: problem.to_string(),
        })?;
        if let Some(filename) = &key.vector_filename {
            VectorObjectRead {
                tenant: &tenant_id,
                filename,
            }
            .emit();
        }
        self.tenant_id = Some(tenant_id);
        Ok(key)
    }

    /// The tenant's configs that want the object (the key's application stands for the object's
    /// records: the agent builds keys from them).
    pub(super) async fn wanted_configs(
        &self,
        key: &ObjectKey,
        tenant_id: &str,
    ) -> Result<Vec<Arc<DeliveryConfig>>, ProcessError> {
        let configs = self
            .inner
            .tenants
            .configs(tenant_id)
            .await
            .map_err(|failure| {
                tenant_lookup_error(tenant_id, self.inner.tenants.table(), failure)
            })?;
        if configs.deliveries.is_empty() {
            return Err(ProcessError::TenantNotConfigured {
                tenant_id: tenant_id.to_owned(),
            });
        }
        Ok(configs
            .deliveries
            .iter()
            .filter(|config| config.wants(&key.partition.application))
            .cloned()
            .collect())
    }

    /// GetObject: headers now, the body streamed later.
    pub(super) async fn fetch(
        &self,
        tenant_id: &str,
    ) -> Result<(Headers, ByteStream), ProcessError> {
        let object = self.object;
        let output = with_retries(&self.inner.limits.retry, tenant_id, "s3:GetObject", || {
            self.inner
                .s3
                .get_object()
                .bucket(&object.bucket)
                .key(&object.key)
                .set_version_id(object.version_id.clone())
                .send()
        })
        .await
        .map_err(|failure| fetch_error(object, failure))?;
        let etag = output
            .e_tag()
            .map(|etag| etag.trim_matches('"').to_owned())
            .or_else(|| object.etag.clone())
            .unwrap_or_default();
        let last_modified = output
            .last_modified()
            .and_then(|time| DateTime::<Utc>::from_timestamp(time.secs(), time.subsec_nanos()));
        let size = output.content_length().and_then(|n| u64::try_from(n).ok());
        let headers = Headers {
            etag,
            last_modified,
            size,
        };
        Ok((headers, output.body))
    }
}

fn tenant_lookup_error(tenant_id: &str, table: &str, failure: Classified) -> ProcessError {
    ProcessError::TenantLookup {
        tenant_id: tenant_id.to_owned(),
        table: table.to_owned(),
        message: failure.message,
    }
}

fn fetch_error(object: &ObjectRef, failure: Classified) -> ProcessError {
    use logrelay_common::aws::ErrorClass;
    let (kind, reason) = match failure.class {
        ErrorClass::NotFound => (FailureKind::Permanent, "object_missing"),
        ErrorClass::AccessDenied => (FailureKind::Permanent, "object_access_denied"),
        class if class.is_retryable() => (FailureKind::Transient, "object_read"),
        _ => (FailureKind::Permanent, "object_read"),
    };
    ProcessError::ReadObject {
        kind,
        reason,
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        message: failure.message,
    }
}
