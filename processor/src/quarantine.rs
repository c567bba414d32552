//! `logrelay-processor quarantine …`: the central bucket's quarantine prefix
//! (`{prefix}.quarantine/{cluster}/{namespace}/{pod}/…`), where the agent ships lines whose pod's
//! metadata never arrived instead of guessing their tenant. The processor never delivers from it.
//!
//! - `list`: objects and bytes per cluster, namespace and pod.
//! - `release`: an operator who knows whose lines they are assigns them: every object of a
//!   namespace (or one pod) is rewritten with the tenant's `customer_id` and the application into
//!   the tenant's prefix under the same file name, where its notification delivers it like any
//!   other object; then the quarantined original is deleted (`--keep` keeps it). Rewriting the same
//!   object again gives the same bytes under the same key, which delivery progress skips.
//!
//! Every record of a released object must be a quarantined record of the named namespace; an
//! object with any other record is refused whole.

use crate::exit::{EXIT_CONFIG, EXIT_FAILURES, EXIT_OK, EXIT_RUNTIME};
use aws_sdk_s3::primitives::ByteStream;
use clap::{Args, Subcommand};
use logrelay_common::aws::{AwsError, AwsOptions, base_config, s3_client};
use logrelay_common::codec::{NdjsonGzReader, ReadLimits, encode_records};
use logrelay_common::key::{
    ObjectKey, Partition, QUARANTINE_CUSTOMER, encode_segment, normalize_prefix,
};
use logrelay_common::record::LogRecord;
use logrelay_common::tenant::validate_tenant_id;
use std::collections::BTreeMap;
use std::io::Write;

/// Largest quarantined object `release` reads (compressed bytes; agent objects are far smaller).
pub const MAX_OBJECT_BYTES: i64 = 256 << 20;

/// Objects per ListObjectsV2 page (the S3 maximum).
const LIST_PAGE_SIZE: i32 = 1_000;

/// Content type and encoding of released objects (those of the agent's objects).
const CONTENT_TYPE: &str = "application/x-ndjson";
const CONTENT_ENCODING: &str = "gzip";

/// Flags of `quarantine`.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct QuarantineArgs {
    /// The central bucket.
    #[arg(long, env = "LOGRELAY_CENTRAL_BUCKET", global = true)]
    pub bucket: Option<String>,
    /// AWS region of the central bucket (default: the SDK's region chain, then us-east-1).
    #[arg(long, env = "AWS_REGION", global = true)]
    pub region: Option<String>,
    /// Deployment prefix of every object key in the central bucket ("" = none).
    #[arg(long, env = "LOGRELAY_KEY_PREFIX", default_value = "", global = true)]
    pub key_prefix: String,
    /// What to do.
    #[command(subcommand)]
    pub command: QuarantineCommand,
}

/// The subcommands of `quarantine`.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum QuarantineCommand {
    /// Objects and bytes in quarantine per cluster, namespace and pod.
    List {
        /// Only this cluster.
        #[arg(long)]
        cluster: Option<String>,
    },
    /// Assign a namespace's (or one pod's) quarantined objects to a tenant and application.
    Release(ReleaseArgs),
}

/// Flags of `quarantine release`.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct ReleaseArgs {
    /// The cluster the lines came from.
    #[arg(long)]
    pub cluster: String,
    /// The namespace the lines came from.
    #[arg(long)]
    pub namespace: String,
    /// Only this pod.
    #[arg(long)]
    pub pod: Option<String>,
    /// The tenant that owns the namespace's lines.
    #[arg(long)]
    pub tenant: String,
    /// The application the lines belong to (the tenant's `desired_logs` filter applies).
    #[arg(long)]
    pub application: String,
    /// Print what would be released; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep the quarantined originals after the copies are written.
    #[arg(long)]
    pub keep: bool,
}

/// Why a quarantine command failed.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// A flag is missing or invalid.
    #[error("{flag}: {reason}")]
    InvalidFlag {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// An S3 call failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// A quarantined object cannot be released as asked.
    #[error("s3://{bucket}/{key}: {reason}")]
    Object {
        /// The bucket.
        bucket: String,
        /// The object's key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Runs `quarantine` (the binary's entry point): its own runtime, stdout for results.
pub fn main(args: &QuarantineArgs) -> u8 {
    logrelay_common::logging::init(logrelay_common::logging::LogFormat::Text);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("logrelay-processor quarantine: cannot start the async runtime: {error}");
            return EXIT_RUNTIME;
        }
    };
    let result = runtime.block_on(async {
        let aws = base_config(&AwsOptions {
            region: args.region.clone(),
            ..AwsOptions::default()
        })
        .await;
        run(
            &s3_client(&aws),
            args,
            &args.key_prefix,
            &mut std::io::stdout(),
        )
        .await
    });
    match result {
        Ok(code) => code,
        Err(error @ QuarantineError::InvalidFlag { .. }) => {
            eprintln!("logrelay-processor quarantine: {error}");
            EXIT_CONFIG
        }
        Err(error) => {
            eprintln!("logrelay-processor quarantine: {error}");
            EXIT_RUNTIME
        }
    }
}

/// Runs one command against `s3`, writing results to `out`; returns the exit code.
pub async fn run(
    s3: &aws_sdk_s3::Client,
    args: &QuarantineArgs,
    key_prefix: &str,
    out: &mut impl Write,
) -> Result<u8, QuarantineError> {
    let bucket = args
        .bucket
        .as_deref()
        .ok_or_else(|| QuarantineError::InvalidFlag {
            flag: "--bucket",
            reason: "required (or LOGRELAY_CENTRAL_BUCKET)".into(),
        })?;
    let prefix = normalize_prefix(key_prefix);
    match &args.command {
        QuarantineCommand::List { cluster } => {
            let scope = scope(&prefix, cluster.as_deref(), None, None);
            let listing = list(s3, bucket, &prefix, &scope).await?;
            print_listing(&listing, &prefix, out)?;
            Ok(EXIT_OK)
        }
        QuarantineCommand::Release(release_args) => {
            release(s3, bucket, &prefix, release_args, out).await
        }
    }
}

/// The listing prefix of the quarantine, narrowed to a cluster, namespace and pod.
fn scope(
    prefix: &str,
    cluster: Option<&str>,
    namespace: Option<&str>,
    pod: Option<&str>,
) -> String {
    let mut out = format!("{prefix}{}/", encode_segment(QUARANTINE_CUSTOMER));
    for value in [cluster, namespace, pod].into_iter().map_while(|v| v) {
        out.push_str(&encode_segment(value));
        out.push('/');
    }
    out
}

/// One listed quarantined object.
#[derive(Debug, Clone)]
struct Listed {
    key: ObjectKey,
    raw_key: String,
    size: i64,
}

/// The quarantined objects under `scope` (a listing prefix from [`scope`]).
async fn list(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    deployment_prefix: &str,
    scope: &str,
) -> Result<Vec<Listed>, QuarantineError> {
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(scope)
        .max_keys(LIST_PAGE_SIZE)
        .into_paginator()
        .send();
    let mut listed = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::from_sdk("s3:ListObjectsV2", e))?;
        for object in page.contents.unwrap_or_default() {
            let Some(raw_key) = object.key else { continue };
            match ObjectKey::parse_with_prefix(&raw_key, deployment_prefix) {
                Ok(key) if key.partition.is_quarantine() => listed.push(Listed {
                    key,
                    raw_key,
                    size: object.size.unwrap_or(0),
                }),
                _ => tracing::warn!(
                    key = raw_key,
                    "object in the quarantine prefix outside the layout; left alone"
                ),
            }
        }
    }
    Ok(listed)
}

fn print_listing(listed: &[Listed], prefix: &str, out: &mut impl Write) -> std::io::Result<()> {
    let mut groups: BTreeMap<(&str, &str, &str), (u64, i64)> = BTreeMap::new();
    for object in listed {
        let p = &object.key.partition;
        let entry = groups
            .entry((&p.cluster_id, &p.application, &p.pod_name))
            .or_default();
        entry.0 += 1;
        entry.1 += object.size;
    }
    writeln!(out, "CLUSTER\tNAMESPACE\tPOD\tOBJECTS\tBYTES")?;
    for ((cluster, namespace, pod), (objects, bytes)) in &groups {
        writeln!(out, "{cluster}\t{namespace}\t{pod}\t{objects}\t{bytes}")?;
    }
    writeln!(
        out,
        "# {} objects in s3://…/{}; assign with `quarantine release --cluster C --namespace N --tenant T --application A`",
        listed.len(),
        scope(prefix, None, None, None)
    )
}

async fn release(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    args: &ReleaseArgs,
    out: &mut impl Write,
) -> Result<u8, QuarantineError> {
    validate_tenant_id(&args.tenant).map_err(|problem| QuarantineError::InvalidFlag {
        flag: "--tenant",
        reason: problem.to_string(),
    })?;
    if args.application.is_empty() {
        return Err(QuarantineError::InvalidFlag {
            flag: "--application",
            reason: "must not be empty".into(),
        });
    }
    let scope = scope(
        prefix,
        Some(&args.cluster),
        Some(&args.namespace),
        args.pod.as_deref(),
    );
    let listed = list(s3, bucket, prefix, &scope).await?;
    let (mut released, mut failed, mut lines) = (0u64, 0u64, 0u64);
    for object in &listed {
        match release_one(s3, bucket, prefix, args, object).await {
            Ok((target, count)) => {
                let verb = if args.dry_run {
                    "would release"
                } else {
                    "released"
                };
                writeln!(
                    out,
                    "{verb} s3://{bucket}/{} -> s3://{bucket}/{target} ({count} lines)",
                    object.raw_key
                )?;
                released += 1;
                lines += count;
            }
            Err(error) => {
                writeln!(out, "FAILED {error}")?;
                failed += 1;
            }
        }
    }
    writeln!(
        out,
        "quarantine release: {released} objects ({lines} lines) {} to tenant {} application {}, {failed} failed",
        if args.dry_run { "would go" } else { "went" },
        args.tenant,
        args.application
    )?;
    Ok(if failed > 0 { EXIT_FAILURES } else { EXIT_OK })
}

/// Rewrites one object into the tenant's prefix (unless a dry run); returns the new key and lines.
async fn release_one(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    args: &ReleaseArgs,
    object: &Listed,
) -> Result<(String, u64), QuarantineError> {
    let refuse = |reason: String| QuarantineError::Object {
        bucket: bucket.to_owned(),
        key: object.raw_key.clone(),
        reason,
    };
    if object.size > MAX_OBJECT_BYTES {
        return Err(refuse(format!("larger than {MAX_OBJECT_BYTES} bytes")));
    }
    let body = s3
        .get_object()
        .bucket(bucket)
        .key(&object.raw_key)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("s3:GetObject", e))?
        .body
        .collect()
        .await
        .map_err(|e| refuse(format!("reading the body: {e}")))?
        .into_bytes();
    let mut records = read_records(&body).await.map_err(refuse)?;
    for (index, record) in records.iter_mut().enumerate() {
        if record.customer_id != QUARANTINE_CUSTOMER || record.namespace != args.namespace {
            return Err(refuse(format!(
                "record {} is not a quarantined line of namespace {:?} (customer_id {:?}, namespace {:?}); nothing released",
                index + 1,
                args.namespace,
                record.customer_id,
                record.namespace
            )));
        }
        record.customer_id.clone_from(&args.tenant);
        record.application.clone_from(&args.application);
    }
    let partition = Partition::new(
        &args.tenant,
        &object.key.partition.cluster_id,
        &args.application,
        &object.key.partition.pod_name,
    );
    let target = ObjectKey::new(partition, object.key.created, &object.key.id)
        .map_err(|e| refuse(e.to_string()))?
        .to_key_with_prefix(prefix);
    if !args.dry_run {
        let body = encode_records(&records).map_err(|e| refuse(e.to_string()))?;
        s3.put_object()
            .bucket(bucket)
            .key(&target)
            .content_type(CONTENT_TYPE)
            .content_encoding(CONTENT_ENCODING)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("s3:PutObject", e))?;
        if !args.keep {
            s3.delete_object()
                .bucket(bucket)
                .key(&object.raw_key)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("s3:DeleteObject", e))?;
        }
    }
    Ok((target, records.len() as u64))
}

/// Every record of a gzip NDJSON body; any unreadable line refuses the object.
async fn read_records(body: &[u8]) -> Result<Vec<LogRecord>, String> {
    let limits = ReadLimits {
        max_decompressed_bytes: 4 * MAX_OBJECT_BYTES as u64,
        ..ReadLimits::default()
    };
    let mut reader = NdjsonGzReader::new(body, limits);
    let mut records = Vec::new();
    while let Some((number, record)) = reader
        .next_record::<LogRecord>()
        .await
        .map_err(|e| e.to_string())?
    {
        records.push(record.map_err(|e| format!("line {number}: {e}"))?);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use logrelay_common::record::Stream;
    use logrelay_testkit::{
        DEFAULT_ACCOUNT_ID, Moto, create_bucket, get_object_bytes, unique_name,
    };

    fn quarantined(namespace: &str, pod: &str, count: usize) -> Vec<LogRecord> {
        (0..count)
            .map(|i| LogRecord {
                timestamp: Utc::now(),
                message: format!("{pod} line {i}"),
                stream: Stream::Stdout,
                customer_id: QUARANTINE_CUSTOMER.into(),
                cluster_id: "c1".into(),
                namespace: namespace.into(),
                application: namespace.into(),
                pod_name: pod.into(),
                container_name: "proxy".into(),
                node_name: "node-1".into(),
                ingest_timestamp: Utc::now(),
                kubernetes: None,
                extra: [("logrelay_metadata_missing".to_owned(), true.into())]
                    .into_iter()
                    .collect(),
            })
            .collect()
    }

    struct Rig {
        s3: aws_sdk_s3::Client,
        aws: aws_config::SdkConfig,
        bucket: String,
    }

    impl Rig {
        async fn new() -> Self {
            let aws = Moto::shared().await.config(DEFAULT_ACCOUNT_ID).await;
            let bucket = unique_name("central");
            create_bucket(&aws, &bucket).await.expect("bucket");
            Self {
                s3: s3_client(&aws),
                aws,
                bucket,
            }
        }

        /// Puts records as the agent would (its key for their partition); returns the key.
        async fn put(&self, records: &[LogRecord], id: &str) -> String {
            let first = &records[0];
            let partition = Partition::new(
                &first.customer_id,
                &first.cluster_id,
                &first.application,
                &first.pod_name,
            );
            let key = ObjectKey::new(partition, Utc::now(), id)
                .expect("key")
                .to_key();
            logrelay_testkit::put_object(
                &self.aws,
                &self.bucket,
                &key,
                encode_records(records).expect("encode"),
            )
            .await
            .expect("put");
            key
        }

        async fn keys(&self) -> Vec<String> {
            let listed = self
                .s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .send()
                .await
                .expect("list");
            let mut keys: Vec<String> = listed
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned))
                .collect();
            keys.sort();
            keys
        }

        async fn run(&self, command: QuarantineCommand) -> (u8, String) {
            let args = QuarantineArgs {
                bucket: Some(self.bucket.clone()),
                command,
                region: None,
                key_prefix: String::new(),
            };
            let mut out = Vec::new();
            let code = run(&self.s3, &args, "", &mut out).await.expect("runs");
            (code, String::from_utf8(out).expect("utf-8"))
        }
    }

    fn release(namespace: &str, dry_run: bool) -> QuarantineCommand {
        QuarantineCommand::Release(ReleaseArgs {
            cluster: "c1".into(),
            namespace: namespace.into(),
            pod: None,
            tenant: "globex".into(),
            application: "api".into(),
            dry_run,
            keep: false,
        })
    }

    #[tokio::test]
    async fn release_moves_a_namespaces_lines_into_the_tenants_prefix_and_nothing_else() {
        let rig = Rig::new().await;
        let mine = rig.put(&quarantined("globex", "api-1", 3), "a1").await;
        let other = rig.put(&quarantined("acme", "web-1", 2), "b1").await;

        let (code, listing) = rig.run(QuarantineCommand::List { cluster: None }).await;
        assert_eq!(code, EXIT_OK);
        assert!(listing.contains("c1\tglobex\tapi-1\t1\t"), "{listing}");
        assert!(listing.contains("c1\tacme\tweb-1\t1\t"), "{listing}");

        let (code, dry) = rig.run(release("globex", true)).await;
        assert_eq!(code, EXIT_OK);
        assert!(dry.contains("would release"), "{dry}");
        assert_eq!(
            rig.keys().await,
            sorted([&mine, &other]),
            "a dry run changes nothing"
        );

        let (code, report) = rig.run(release("globex", false)).await;
        assert_eq!(code, EXIT_OK, "{report}");
        let target = mine.replacen(".quarantine/c1/globex/", "globex/c1/api/", 1);
        assert_eq!(rig.keys().await, sorted([&other, &target]));
        let body = get_object_bytes(&rig.aws, &rig.bucket, &target)
            .await
            .expect("released object");
        let records = read_records(&body).await.expect("records");
        assert_eq!(records.len(), 3);
        for record in &records {
            assert_eq!(
                (record.customer_id.as_str(), record.application.as_str()),
                ("globex", "api")
            );
            assert_eq!(
                (record.namespace.as_str(), record.container_name.as_str()),
                ("globex", "proxy"),
                "where the line came from is kept"
            );
            assert_eq!(record.extra["logrelay_metadata_missing"], true);
        }
    }

    #[tokio::test]
    async fn an_object_with_a_line_of_another_namespace_is_refused_whole() {
        let rig = Rig::new().await;
        let mut records = quarantined("globex", "api-2", 2);
        records[1].namespace = "acme".into();
        let key = rig.put(&records, "c1").await;
        let (code, report) = rig.run(release("globex", false)).await;
        assert_eq!(code, EXIT_FAILURES);
        assert!(
            report.contains("record 2 is not a quarantined line of namespace \"globex\""),
            "{report}"
        );
        assert_eq!(rig.keys().await, [key], "nothing written, nothing deleted");
    }

    #[tokio::test]
    async fn an_invalid_tenant_is_refused_before_any_call() {
        let rig = Rig::new().await;
        let mut command = release("globex", false);
        if let QuarantineCommand::Release(args) = &mut command {
            args.tenant = QUARANTINE_CUSTOMER.into();
        }
        let args = QuarantineArgs {
            bucket: Some(rig.bucket.clone()),
            command,
            region: None,
            key_prefix: String::new(),
        };
        let error = run(&rig.s3, &args, "", &mut Vec::new())
            .await
            .expect_err("refused");
        assert!(
            matches!(
                error,
                QuarantineError::InvalidFlag {
                    flag: "--tenant",
                    ..
                }
            ),
            "{error}"
        );
    }

    fn sorted<const N: usize>(keys: [&String; N]) -> Vec<String> {
        let mut keys: Vec<String> = keys.into_iter().cloned().collect();
        keys.sort();
        keys
    }
}
