//! The object store behind the sink: S3 or a local directory, one `put` each. A `put` is one
//! attempt (one request, or one multipart upload); [`super::uploader`] retries.

use super::directory::DirectoryService;
use super::request_builder::UploadRequest;
use super::retry::PutError;
use super::s3::S3Service;

/// Where objects are stored.
#[derive(Debug, Clone)]
pub enum ObjectService {
    /// An S3 bucket.
    S3(S3Service),
    /// A local directory.
    Directory(DirectoryService),
}

impl ObjectService {
    /// Stores one object (one attempt).
    pub async fn put(&self, request: &UploadRequest) -> Result<(), PutError> {
        match self {
            ObjectService::S3(s3) => s3.put(request).await,
            ObjectService::Directory(dir) => dir.put(request).await,
        }
    }

    /// The metric label of the service (`s3` or `file`).
    pub fn kind(&self) -> &'static str {
        match self {
            ObjectService::S3(_) => "s3",
            ObjectService::Directory(_) => "file",
        }
    }
}
