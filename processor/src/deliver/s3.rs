//! S3 delivery: a server-side `CopyObject` of the whole object into the tenant's bucket at
//! `{bucket_prefix}{customer_id}/{cluster_id}/{application}/{pod_name}/{file}` (the central layout's
//! encoded segments), with `bucket-owner-full-control` and metadata tracing the copy back to its
//! source. Single hop: the central role writes, the tenant's bucket policy grants it. Every copy
//! names the account that must own the bucket (`ExpectedBucketOwner`), so a typo or a bucket name
//! re-registered by someone else fails (access denied) instead of handing the tenant's logs over.

use crate::error::DeliveryError;
use crate::retry::{RetryPolicy, with_retries};
use aws_config::SdkConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::types::{MetadataDirective, ObjectCannedAcl};
use logrelay_common::aws::{ErrorClass, s3_client, without_sdk_retries};
use logrelay_common::tenant::DeliveryConfig;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::time::Duration;

/// Largest object one `CopyObject` can copy: "You can store individual objects of up to 5 TB in
/// Amazon S3. You create a copy of your object up to 5 GB in size in a single atomic action using
/// this API" (CopyObject API reference).
pub const MAX_COPY_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// Prefix of the metadata keys written on copies (`x-amz-meta-logrelay-…`).
pub const METADATA_PREFIX: &str = "logrelay-";

/// Bytes escaped in `CopySource`: all but RFC 3986 unreserved characters and `/` (between segments).
const COPY_SOURCE_ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');
/// Bytes escaped in metadata values: controls, `%` and non-ASCII, so every value is a valid HTTP
/// header value.
const METADATA_ESCAPED: &AsciiSet = &percent_encoding::CONTROLS.add(b'%');

/// An S3 client with the central credentials `central`, retried only by [`copy_object`]'s policy,
/// each request attempt bounded by `attempt_timeout`.
pub fn client(central: &SdkConfig, attempt_timeout: Duration) -> Client {
    s3_client(&without_sdk_retries(central, Some(attempt_timeout)))
}

/// One copy to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRequest {
    /// Central bucket.
    pub source_bucket: String,
    /// Object key in the central bucket.
    pub source_key: String,
    /// Version, on versioned buckets.
    pub source_version: Option<String>,
    /// The ETag the processor read; the copy is made only if the object still has it.
    pub source_etag: String,
    /// Tenant bucket.
    pub bucket: String,
    /// Key in the tenant bucket.
    pub key: String,
    /// The account that must own `bucket` (`ExpectedBucketOwner`): the config's
    /// `bucket_owner_account_id`; the caller fills it from the tenant's role when unset.
    pub expected_bucket_owner: Option<String>,
    /// Metadata (without the `x-amz-meta-` prefix).
    pub metadata: Vec<(String, String)>,
}

impl CopyRequest {
    /// The copy of `source_key` (whose key below the deployment prefix is `layout_key`) for `config`.
    pub fn for_config(
        config: &DeliveryConfig,
        source_bucket: &str,
        source_key: &str,
        source_version: Option<&str>,
        source_etag: &str,
        layout_key: &str,
        cluster_id: &str,
    ) -> Option<Self> {
        let bucket = config.bucket_name.clone()?;
        let metadata = [
            ("source-bucket", source_bucket),
            ("source-key", source_key),
            ("source-etag", source_etag),
            ("tenant-id", config.tenant_id.as_str()),
            ("cluster-id", cluster_id),
        ]
        .into_iter()
        .map(|(name, value)| {
            (
                format!("{METADATA_PREFIX}{name}"),
                utf8_percent_encode(value, METADATA_ESCAPED).to_string(),
            )
        })
        .collect();
        Some(Self {
            source_bucket: source_bucket.to_owned(),
            source_key: source_key.to_owned(),
            source_version: source_version.map(str::to_owned),
            source_etag: source_etag.to_owned(),
            bucket,
            key: destination_key(config, layout_key),
            expected_bucket_owner: config.bucket_owner_account_id.clone(),
            metadata,
        })
    }

    /// The `CopySource` value: `bucket/key` URL-encoded (`/` kept), plus `?versionId=` when set.
    pub fn copy_source(&self) -> String {
        let mut source = format!(
            "{}/{}",
            self.source_bucket,
            utf8_percent_encode(&self.source_key, COPY_SOURCE_ESCAPED)
        );
        if let Some(version) = &self.source_version {
            source.push_str("?versionId=");
            source.push_str(&utf8_percent_encode(version, COPY_SOURCE_ESCAPED).to_string());
        }
        source
    }
}

/// `{bucket_prefix}{layout_key}`: the layout key is `customer/cluster/application/pod/file`.
pub fn destination_key(config: &DeliveryConfig, layout_key: &str) -> String {
    format!("{}{layout_key}", config.effective_bucket_prefix())
}

/// Makes the copy, retrying throttling and 5xx. `NoSuchBucket` and access denied are permanent; an
/// object changed since it was read (`PreconditionFailed`) is transient (the redelivery reads the
/// new version).
pub async fn copy_object(
    client: &Client,
    request: &CopyRequest,
    policy: &RetryPolicy,
    tenant: &str,
) -> Result<(), DeliveryError> {
    let mut metadata = std::collections::HashMap::new();
    for (name, value) in &request.metadata {
        metadata.insert(name.clone(), value.clone());
    }
    let source = request.copy_source();
    let result = with_retries(policy, tenant, "s3:CopyObject", || {
        client
            .copy_object()
            .copy_source(&source)
            .copy_source_if_match(format!("\"{}\"", request.source_etag))
            .bucket(&request.bucket)
            .set_expected_bucket_owner(request.expected_bucket_owner.clone())
            .key(&request.key)
            .acl(ObjectCannedAcl::BucketOwnerFullControl)
            .metadata_directive(MetadataDirective::Replace)
            .set_metadata(Some(metadata.clone()))
            .content_type("application/x-ndjson")
            .content_encoding("gzip")
            .send()
    })
    .await;
    let failure = match result {
        Ok(_) => return Ok(()),
        Err(failure) => failure,
    };
    let cause = Some(failure.cause());
    let error = match failure {
        failure if failure.has_code("NoSuchBucket") => DeliveryError::permanent(
            "no_such_bucket",
            format!(
                "bucket {} does not exist: {}",
                request.bucket, failure.message
            ),
        ),
        failure if failure.has_code("PreconditionFailed") => DeliveryError::transient(
            "source_changed",
            format!("the object changed after it was read: {}", failure.message),
        ),
        failure if failure.class == ErrorClass::AccessDenied => DeliveryError::permanent(
            "access_denied",
            format!(
                "copy into bucket {} refused: {}",
                request.bucket, failure.message
            ),
        ),
        failure => failure.into_delivery_error(),
    };
    Err(error.with_cause(cause))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(prefix: Option<&str>) -> DeliveryConfig {
        serde_json::from_value(serde_json::json!({
            "tenant_id": "acme",
            "type": "s3",
            "bucket_name": "acme-logs",
            "bucket_prefix": prefix,
        }))
        .expect("config")
    }

    #[test]
    fn copies_land_below_the_configured_or_default_prefix() {
        let layout = "acme/c1/api/pod-1/20240101T000000Z-abc.json.gz";
        assert_eq!(
            destination_key(&config(Some("logs/")), layout),
            format!("logs/{layout}")
        );
        assert_eq!(
            destination_key(&config(None), layout),
            format!("ROSA/cluster-logs/{layout}")
        );
    }

    #[test]
    fn copy_source_is_url_encoded_but_keeps_slashes() {
        let request = CopyRequest::for_config(
            &config(None),
            "central",
            "prod/acme/c%2F1/my app/pod+1/20240101T000000Z-abc.json.gz",
            Some("v 1"),
            "etag",
            "acme/c%2F1/my app/pod+1/20240101T000000Z-abc.json.gz",
            "c/1",
        )
        .expect("s3 config");
        assert_eq!(
            request.copy_source(),
            "central/prod/acme/c%252F1/my%20app/pod%2B1/20240101T000000Z-abc.json.gz?versionId=v%201"
        );
        assert_eq!(request.bucket, "acme-logs");
    }

    #[test]
    fn metadata_traces_the_copy_to_its_source_in_header_safe_text() {
        let request =
            CopyRequest::for_config(&config(None), "central", "k", None, "e1", "k", "clüster")
                .expect("s3 config");
        let get = |name: &str| {
            request
                .metadata
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        assert_eq!(get("logrelay-source-bucket"), Some("central"));
        assert_eq!(get("logrelay-source-etag"), Some("e1"));
        assert_eq!(get("logrelay-tenant-id"), Some("acme"));
        assert_eq!(get("logrelay-cluster-id"), Some("cl%C3%BCster"));
    }

    #[tokio::test]
    async fn every_copy_names_the_account_that_must_own_the_bucket() {
        use crate::deliver::fake_http;
        use aws_credential_types::Credentials;
        use logrelay_common::aws::{AwsOptions, base_config};
        let server = fake_http::serve(|_| {
            (
                200,
                "<CopyObjectResult><ETag>\"e\"</ETag></CopyObjectResult>".to_owned(),
            )
        })
        .await;
        let central = base_config(&AwsOptions {
            region: Some("us-east-1".into()),
            endpoint_url: Some(server.url.clone()),
            credentials: Some(Credentials::from_keys("AKID", "secret", None)),
        })
        .await;
        let mut request =
            CopyRequest::for_config(&config(None), "central", "k", None, "e1", "k", "c1")
                .expect("s3 config");
        request.expected_bucket_owner = Some("222222222222".into());
        let policy = RetryPolicy {
            attempts: 1,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        };
        let client = client(&central, Duration::from_secs(5));
        copy_object(&client, &request, &policy, "acme")
            .await
            .expect("copied");
        let seen = server.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            seen[0].header("x-amz-expected-bucket-owner"),
            Some("222222222222")
        );
        assert_eq!(
            seen[0].header("x-amz-acl"),
            Some("bucket-owner-full-control")
        );
    }

    #[test]
    fn the_configured_bucket_owner_is_taken_into_the_request() {
        let mut owned = config(None);
        owned.bucket_owner_account_id = Some("333333333333".into());
        let request = CopyRequest::for_config(&owned, "central", "k", None, "e", "k", "c")
            .expect("s3 config");
        assert_eq!(
            request.expected_bucket_owner.as_deref(),
            Some("333333333333")
        );
    }
}
