//! The S3 sink: `PutObject` (multipart above the threshold) with Content-MD5, content type
//! `application/x-ndjson` and content encoding `gzip`; each request has its own timeout. The SDK's
//! own retries are off: [`super::uploader`] retries whole uploads with [`super::retry`]'s policy.
//!
//! Credentials: the base chain (env keys, profile, IRSA web identity), or, with
//! `S3_WRITER_ROLE_ARN`, that role assumed from the base chain via `logrelay_common::aws`
//! (cached, refreshed before expiry).

use super::config::{CONTENT_ENCODING, CONTENT_TYPE, S3Settings};
use super::request_builder::{RequestBody, UploadRequest, memory_range};
use super::retry::{ErrorClass, PutError};
use crate::internal_events::InternalEvent;
use crate::internal_events::sink::SinkRequest;
use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use logrelay_common::aws::{self, AwsError, RoleStep};
use std::future::Future;
use std::time::Instant;

/// Timeout of the best-effort `AbortMultipartUpload` after a failed multipart upload (a bucket
/// lifecycle rule `AbortIncompleteMultipartUpload` cleans up what this misses).
const ABORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The role the agent assumes to write (`S3_WRITER_ROLE_ARN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterRole {
    /// Role ARN.
    pub role_arn: String,
    /// Role session name (sanitised by `common::aws`).
    pub session_name: String,
}

/// Writes objects to one bucket.
#[derive(Debug, Clone)]
pub struct S3Service {
    client: aws_sdk_s3::Client,
    bucket: String,
    settings: S3Settings,
}

impl S3Service {
    /// A service over `base` credentials, or over `writer_role` assumed from them. The role is
    /// assumed once here, so a refused role fails at start with its AWS error code.
    pub async fn connect(
        base: &SdkConfig,
        writer_role: Option<&WriterRole>,
        bucket: impl Into<String>,
        settings: S3Settings,
    ) -> Result<Self, AwsError> {
        let config = match writer_role {
            Some(role) => {
                let step = RoleStep::new(role.role_arn.clone(), role.session_name.clone());
                aws::assume_role_chain(base, &[step]).await?
            }
            None => base.clone(),
        };
        Ok(Self::with_config(&config, bucket, settings))
    }

    /// A service over an already complete configuration.
    pub fn with_config(
        config: &SdkConfig,
        bucket: impl Into<String>,
        settings: S3Settings,
    ) -> Self {
        // The uploader retries on its own; the SDK's retries would multiply its budget.
        let client = aws::s3_client(&aws::without_sdk_retries(config, None));
        Self {
            client,
            bucket: bucket.into(),
            settings,
        }
    }

    /// Stores one object: one `PutObject`, or a multipart upload above the threshold.
    pub async fn put(&self, request: &UploadRequest) -> Result<(), PutError> {
        if request.body.len() > self.settings.multipart_threshold {
            return self.put_multipart(request).await;
        }
        let body = byte_stream(&request.body, 0, request.body.len(), "put_object").await?;
        let put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&request.key)
            .body(body)
            .content_length(request.body.len() as i64)
            .content_md5(&request.content_md5)
            .content_type(CONTENT_TYPE)
            .content_encoding(CONTENT_ENCODING)
            .metadata("lines", request.lines.to_string())
            .send();
        self.call("put_object", put).await.map(drop)
    }

    async fn put_multipart(&self, request: &UploadRequest) -> Result<(), PutError> {
        let create = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&request.key)
            .content_type(CONTENT_TYPE)
            .content_encoding(CONTENT_ENCODING)
            .metadata("lines", request.lines.to_string())
            .send();
        let created = self.call("create_multipart_upload", create).await?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        if upload_id.is_empty() {
            return Err(PutError {
                class: ErrorClass::Transient,
                operation: "create_multipart_upload",
                message: "response has no upload id".into(),
            });
        }
        let result = self.upload_parts(request, &upload_id).await;
        if result.is_err() {
            let abort = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&request.key)
                .upload_id(&upload_id)
                .send();
            if tokio::time::timeout(ABORT_TIMEOUT, abort).await.is_err() {
                tracing::debug!(key = %request.key, "abort of failed multipart upload timed out");
            }
        }
        result
    }

    async fn upload_parts(&self, request: &UploadRequest, upload_id: &str) -> Result<(), PutError> {
        let part_size = self.settings.part_size.max(1);
        let total = request.body.len();
        let mut parts = Vec::new();
        for (index, start) in (0..total)
            .step_by(usize::try_from(part_size).unwrap_or(usize::MAX))
            .enumerate()
        {
            let len = part_size.min(total - start);
            let part_number = i32::try_from(index + 1).unwrap_or(i32::MAX);
            let md5 = request
                .body
                .content_md5_of(start, len)
                .await
                .map_err(|err| read_error("upload_part", &err))?;
            let upload = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(&request.key)
                .upload_id(upload_id)
                .part_number(part_number)
                .content_length(len as i64)
                .content_md5(md5)
                .body(byte_stream(&request.body, start, len, "upload_part").await?)
                .send();
            let uploaded = self.call("upload_part", upload).await?;
            parts.push(
                CompletedPart::builder()
                    .part_number(part_number)
                    .set_e_tag(uploaded.e_tag().map(str::to_string))
                    .build(),
            );
        }
        let complete = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&request.key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send();
        self.call("complete_multipart_upload", complete)
            .await
            .map(drop)
    }

    /// Runs one request with the request timeout, classifies its failure and emits its metrics.
    async fn call<T, E>(
        &self,
        operation: &'static str,
        request: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> Result<T, PutError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.settings.request_timeout, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                let err = AwsError::from_sdk(format!("s3:{operation}"), err);
                Err(PutError {
                    class: ErrorClass::from_aws(err.class()),
                    operation,
                    message: err.to_string(),
                })
            }
            Err(_) => Err(PutError {
                class: ErrorClass::Timeout,
                operation,
                message: format!("no response within {:?}", self.settings.request_timeout),
            }),
        };
        SinkRequest {
            sink: "s3",
            operation,
            outcome: match &result {
                Ok(_) => "success",
                Err(err) => err.class.as_str(),
            },
            duration: started.elapsed(),
        }
        .emit();
        result
    }
}
/// The bytes `start..start + len` of `body` as a request body: a slice of memory, or a stream
/// over its file that each attempt opens again.
async fn byte_stream(
    body: &RequestBody,
    start: u64,
    len: u64,
    operation: &'static str,
) -> Result<ByteStream, PutError> {
    match body {
        RequestBody::Memory(bytes) => memory_range(bytes, start, len)
            .map(ByteStream::from)
            .ok_or_else(|| PutError {
                class: ErrorClass::Transient,
                operation,
                message: "part range past the body".into(),
            }),
        RequestBody::File { path, .. } => ByteStream::read_from()
            .path(path)
            .offset(start)
            .length(aws_smithy_types::byte_stream::Length::Exact(len))
            .build()
            .await
            .map_err(|err| read_error(operation, &err)),
    }
}

/// A body that could not be read from the disk buffer (retried like a failed request).
fn read_error(operation: &'static str, err: &dyn std::error::Error) -> PutError {
    PutError {
        class: ErrorClass::Transient,
        operation,
        message: format!("cannot read the body from the disk buffer: {err}"),
    }
}
