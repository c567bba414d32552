//! Where objects go and how: the `--sink` target (`s3://bucket[/prefix]` or `file:///path`) and
//! the S3 upload settings.

use logrelay_common::key;
use std::path::PathBuf;
use std::time::Duration;

/// Default `--upload-concurrency`: uploads in flight at once (enough to keep one node's objects
/// moving; the memory cap bounds the bytes they hold).
pub const DEFAULT_UPLOAD_CONCURRENCY: usize = 4;

/// Default `--multipart-threshold`: objects larger than this are sent with a multipart upload
/// (16 MiB: a whole 10 MiB batch, even incompressible, goes in one `PutObject`).
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 16 << 20;

/// Size of each multipart part except the last (S3 requires at least 5 MiB, S3 User Guide
/// "Amazon S3 multipart upload limits"; 8 MiB matches the AWS CLI's default chunk size).
pub const MULTIPART_PART_SIZE: u64 = 8 << 20;

/// The smallest part S3 accepts (all parts but the last), S3 multipart upload limits.
pub const S3_MIN_PART_SIZE: u64 = 5 << 20;

/// Default `--request-timeout`: one S3 request (or part) taking longer is cancelled and retried.
/// 60 s moves an 8 MiB part at ~140 KiB/s, far below any working node's bandwidth.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Content type of every object (NDJSON, RFC-less but the common registration).
pub const CONTENT_TYPE: &str = "application/x-ndjson";

/// Content encoding of every object.
pub const CONTENT_ENCODING: &str = "gzip";

/// Where objects are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkTarget {
    /// An S3 bucket, with an optional key prefix (no leading or trailing `/`).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Deployment prefix; empty for none.
        prefix: String,
    },
    /// A local directory: the same key layout, as files.
    Directory {
        /// Root directory.
        root: PathBuf,
    },
}

/// A `--sink` value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkTargetError {
    /// Neither `s3://` nor `file://`.
    #[error("{0:?}: expected s3://bucket[/prefix] or file:///path")]
    Scheme(String),
    /// The bucket name breaks S3's naming rules.
    #[error("{bucket:?} is not a valid S3 bucket name: {reason}")]
    Bucket {
        /// The name.
        bucket: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The prefix is too long or malformed.
    #[error("prefix {prefix:?}: {reason}")]
    Prefix {
        /// The prefix.
        prefix: String,
        /// What is wrong.
        reason: String,
    },
    /// `file://` without a path.
    #[error("file:// needs a directory path, e.g. file:///var/lib/logrelay/objects")]
    EmptyPath,
}

impl SinkTarget {
    /// Parses `s3://bucket[/prefix]` or `file:///abs/path` (`file://rel/path` is relative to the
    /// working directory).
    pub fn parse(value: &str) -> Result<Self, SinkTargetError> {
        if let Some(rest) = value.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            Self::s3(bucket, prefix)
        } else if let Some(path) = value.strip_prefix("file://") {
            if path.is_empty() {
                return Err(SinkTargetError::EmptyPath);
            }
            Ok(SinkTarget::Directory {
                root: PathBuf::from(path),
            })
        } else {
            Err(SinkTargetError::Scheme(value.to_string()))
        }
    }

    /// An S3 target, checking the bucket name and prefix.
    pub fn s3(bucket: &str, prefix: &str) -> Result<Self, SinkTargetError> {
        check_bucket_name(bucket).map_err(|reason| SinkTargetError::Bucket {
            bucket: bucket.to_string(),
            reason,
        })?;
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty()
            && prefix
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(SinkTargetError::Prefix {
                prefix: prefix.to_string(),
                reason: "empty, `.` or `..` path segment".into(),
            });
        }
        key::validate_prefix(prefix).map_err(|err| SinkTargetError::Prefix {
            prefix: prefix.to_string(),
            reason: err.to_string(),
        })?;
        Ok(SinkTarget::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The metric label of this kind of sink (`s3` or `file`).
    pub fn kind(&self) -> &'static str {
        match self {
            SinkTarget::S3 { .. } => "s3",
            SinkTarget::Directory { .. } => "file",
        }
    }
}

impl std::fmt::Display for SinkTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkTarget::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            SinkTarget::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            SinkTarget::Directory { root } => write!(f, "file://{}", root.display()),
        }
    }
}

/// S3's bucket naming rules (S3 User Guide, "General purpose bucket naming rules").
fn check_bucket_name(bucket: &str) -> Result<(), &'static str> {
    if !(3..=63).contains(&bucket.len()) {
        return Err("must be 3 to 63 characters");
    }
    if !bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Err("only lowercase letters, digits, `.` and `-` are allowed");
    }
    let first_last_ok =
        |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !first_last_ok(bucket.bytes().next()) || !first_last_ok(bucket.bytes().last()) {
        return Err("must begin and end with a letter or digit");
    }
    if bucket.contains("..") {
        return Err("must not contain `..`");
    }
    Ok(())
}

/// S3 upload settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// Objects larger than this use a multipart upload.
    pub multipart_threshold: u64,
    /// Part size of multipart uploads.
    pub part_size: u64,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: MULTIPART_PART_SIZE,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_targets_parse_with_and_without_prefix() {
        assert_eq!(
            SinkTarget::parse("s3://central-logs").expect("valid"),
            SinkTarget::S3 {
                bucket: "central-logs".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            SinkTarget::parse("s3://central-logs/prod/eu/").expect("valid"),
            SinkTarget::S3 {
                bucket: "central-logs".into(),
                prefix: "prod/eu".into()
            }
        );
    }

    #[test]
    fn file_targets_parse_absolute_and_relative_paths() {
        assert_eq!(
            SinkTarget::parse("file:///var/lib/out").expect("valid"),
            SinkTarget::Directory {
                root: "/var/lib/out".into()
            }
        );
        assert_eq!(
            SinkTarget::parse("file://out").expect("valid"),
            SinkTarget::Directory { root: "out".into() }
        );
    }

    #[test]
    fn bad_targets_say_what_is_wrong() {
        let msg = |v: &str| SinkTarget::parse(v).expect_err("invalid").to_string();
        assert!(msg("http://x").contains("expected s3://bucket[/prefix] or file:///path"));
        assert!(msg("s3://Upper").contains("only lowercase"));
        assert!(msg("s3://ab").contains("3 to 63"));
        assert!(msg("s3://-ab").contains("begin and end"));
        assert!(msg(&format!("s3://bucket/{}", "p".repeat(200))).contains("prefix"));
        assert!(msg("s3://bucket/a//b").contains("path segment"));
        assert!(msg("file://").contains("needs a directory path"));
    }
}
