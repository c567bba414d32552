//! Delivered objects in S3 (`s3://bucket[/prefix]`), listed and read through `logrelay_common::aws`.

use super::tally::Tally;
use super::{VerifyError, read_object};
use aws_config::SdkConfig;
use logrelay_common::aws::{self, AwsError};
use logrelay_common::key::ObjectKey;
use std::str::FromStr;

/// A bucket and an optional key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix (deployment prefix), without leading `/`; empty for none.
    pub prefix: String,
}

impl FromStr for S3Location {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{s:?} does not start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{s:?} has no bucket name"));
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

/// Reads every object under the location into `tally`.
pub async fn read(
    location: &S3Location,
    config: &SdkConfig,
    tally: &mut Tally<'_>,
) -> Result<(), VerifyError> {
    let client = aws::s3_client(config);
    let mut pages = client
        .list_objects_v2()
        .bucket(&location.bucket)
        .prefix(&location.prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            AwsError::from_sdk(format!("s3:ListObjectsV2 s3://{}", location.bucket), e)
        })?;
        for object in page.contents() {
            let Some(key) = object.key() else { continue };
            if !key.ends_with(".json.gz") {
                continue;
            }
            let partition_customer = match ObjectKey::parse_with_prefix(key, &location.prefix) {
                Ok(parsed) => parsed.partition.customer_id,
                Err(error) => {
                    tracing::warn!(%key, %error, "object key does not parse; skipped");
                    tally.object_unreadable();
                    continue;
                }
            };
            let body = client
                .get_object()
                .bucket(&location.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(format!("s3:GetObject {key}"), e))?
                .body;
            tally.object_read();
            let reader = Box::pin(body.into_async_read());
            if let Err(error) = read_object(reader, &partition_customer, tally).await {
                tracing::warn!(%key, %error, "object is broken; lines after the error are not counted");
                tally.object_unreadable();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_with_and_without_prefix() {
        let l: S3Location = "s3://central".parse().expect("bucket");
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("central", ""));
        let l: S3Location = "s3://central/logs/v1".parse().expect("prefix");
        assert_eq!(
            (l.bucket.as_str(), l.prefix.as_str()),
            ("central", "logs/v1")
        );
        assert!("central".parse::<S3Location>().is_err());
        assert!("s3:///x".parse::<S3Location>().is_err());
    }
}
