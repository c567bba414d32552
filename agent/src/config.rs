//! The agent's configuration: one typed struct from flags and environment (the names the proof of
//! concept's deployment used, `S3_BUCKET_NAME`, `S3_WRITER_ROLE_ARN`, `CLUSTER_ID`, `AWS_REGION`,
//! `NODE_NAME`; `LOGRELAY_*` for the rest), validated at start into a [`ValidConfig`] with a
//! message naming the bad field.

pub mod error;

pub use error::ConfigError;
use error::invalid;

use crate::batch::buffer::MIN_BUFFER_MAX_BYTES;
use crate::batch::chunked::CHUNK_BYTES;
use crate::batch::{BatchLimits, DEFAULT_MAX_OPEN_BATCHES};
use crate::metadata::config::IN_CLUSTER_ENV;
use crate::parse::multiline::rules::MultilineRule;
use crate::sink::config::{DEFAULT_UPLOAD_CONCURRENCY, MULTIPART_PART_SIZE, S3_MIN_PART_SIZE};
use crate::sink::{S3Settings, SinkTarget};
use crate::tail::DEFAULT_MAX_OPEN_ROTATED_PER_POD;
use clap::{CommandFactory, Parser, ValueEnum};
use flate2::Compression;
use logrelay_common::aws::{AwsOptions, RoleStep};
use logrelay_common::check_config::{Deprecated, Report};
use logrelay_common::codec::parse_compression_level;
use logrelay_common::logging::LogFormat;
/// Sizes and durations of the agent's flags, in the syntax every logrelay binary shares.
pub use logrelay_common::units::{parse_bytes, parse_duration};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Default `--shutdown-grace`: 25 s, inside Kubernetes' default 30 s
/// `terminationGracePeriodSeconds`, leaving 5 s to save checkpoints and exit.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// Default `--listen`: metrics and probes on all interfaces (kubelet probes reach the pod IP).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9880";

/// Default `--data-dir` (relative, so local runs work; the DaemonSet mounts a hostPath).
pub const DEFAULT_DATA_DIR: &str = "logrelay-agent-data";

/// Smallest `--batch-memory-limit`: room for a few open batches each with a full pending chunk
/// ([`CHUNK_BYTES`]) before it is compressed.
pub const MIN_BATCH_MEMORY_LIMIT: u64 = 4 * CHUNK_BYTES as u64;

/// Smallest `--batch-max-bytes` (1 KiB: smaller objects only add request cost).
pub const MIN_BATCH_MAX_BYTES: u64 = 1 << 10;

/// Largest `--batch-max-bytes` (1 GiB: the processor's default decompressed-object limit,
/// `codec::DEFAULT_MAX_DECOMPRESSED_BYTES`).
pub const MAX_BATCH_MAX_BYTES: u64 = logrelay_common::codec::DEFAULT_MAX_DECOMPRESSED_BYTES;

/// Smallest `--max-line-bytes` (1 KiB; CRI chunks are up to 16 KiB, smaller caps cut most lines).
pub const MIN_MAX_LINE_BYTES: usize = 1 << 10;

/// Largest `--max-line-bytes` (16 MiB: one message is held whole in memory while merged).
pub const MAX_MAX_LINE_BYTES: usize = 16 << 20;

/// Largest `--upload-concurrency`.
pub const MAX_UPLOAD_CONCURRENCY: usize = 64;

/// Where log lines come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    /// The kubelet's `/var/log/pods` tree.
    Files,
    /// NDJSON records on standard input (as `logrelay-testgen ndjson` prints).
    Stdin,
}

/// Flags and environment of `logrelay-agent`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "logrelay-agent",
    version,
    about = "Tails /var/log/pods and ships gzip NDJSON objects to S3"
)]
pub struct AgentConfig {
    /// Where log lines come from: `files` (the kubelet's pod log tree) or `stdin` (NDJSON records).
    #[arg(long, env = "LOGRELAY_SOURCE", value_enum, default_value = "files")]
    pub source: SourceKind,
    /// Root of the kubelet's pod log tree.
    #[arg(long, env = "LOGRELAY_PODS_ROOT", default_value = "/var/log/pods")]
    pub pods_root: PathBuf,
    /// Where objects go: `s3://bucket[/prefix]` or `file:///path`. Default: `s3://$S3_BUCKET_NAME`
    /// when that is set, else `file://<data-dir>/objects`.
    #[arg(long, env = "LOGRELAY_SINK")]
    pub sink: Option<String>,
    /// Central bucket (the proof of concept's name); used when `--sink` is not given.
    #[arg(long, env = "S3_BUCKET_NAME")]
    pub s3_bucket_name: Option<String>,
    /// Deployment prefix of every object key in the central bucket when the bucket comes from
    /// `S3_BUCKET_NAME` ("" = none); the processor's `--key-prefix` must be the same.
    #[arg(long, env = "LOGRELAY_KEY_PREFIX")]
    pub key_prefix: Option<String>,
    /// Deprecated name of `--key-prefix` (logs a WARN).
    #[arg(long, env = "LOGRELAY_S3_PREFIX", hide = true)]
    pub s3_prefix: Option<String>,
    /// Role assumed (from the base credential chain) for S3 writes (the proof of concept's name).
    #[arg(long, env = "S3_WRITER_ROLE_ARN")]
    pub s3_writer_role_arn: Option<String>,
    /// AWS region (falls back to the profile, then us-east-1).
    #[arg(long = "region", env = "AWS_REGION")]
    pub aws_region: Option<String>,
    /// Deprecated name of `--region` (logs a WARN).
    #[arg(long = "aws-region", hide = true)]
    pub deprecated_aws_region: Option<String>,
    /// Endpoint for AWS calls (an emulator such as moto); unset for AWS.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,
    /// This cluster's id, written into every record and key.
    #[arg(long, env = "CLUSTER_ID", default_value = "local")]
    pub cluster_id: String,
    /// This node's name (from the downward API in Kubernetes).
    #[arg(long, env = "NODE_NAME", default_value = "local-node")]
    pub node_name: String,
    /// Directory for checkpoints (and the default file sink).
    #[arg(long, env = "LOGRELAY_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Seal a batch at this much uncompressed NDJSON (e.g. `10MiB`, `65536`).
    #[arg(long, env = "LOGRELAY_BATCH_MAX_BYTES", default_value = "10MiB", value_parser = parse_bytes)]
    pub batch_max_bytes: u64,
    /// Seal a batch this long after its first line (e.g. `300s`, `5m`, `500ms`; bare = seconds).
    #[arg(long, env = "LOGRELAY_BATCH_TIMEOUT", default_value = "300s", value_parser = parse_duration)]
    pub batch_timeout: Duration,
    /// Cap on memory of open batches' pending lines plus sealed bodies held in memory; reaching it
    /// moves the largest pending lines to the disk buffer, then stops reading (backpressure).
    #[arg(long, env = "LOGRELAY_BATCH_MEMORY_LIMIT", default_value = "16MiB", value_parser = parse_bytes)]
    pub batch_memory_limit: u64,
    /// Cap on the disk buffer under `--data-dir` (compressed batches being filled or awaiting
    /// upload); reaching it seals the batches holding most of it, then stops reading.
    #[arg(long, env = "LOGRELAY_BUFFER_MAX_BYTES", default_value = "1GiB", value_parser = parse_bytes)]
    pub buffer_max_bytes: u64,
    /// Cap on open batches (partitions); opening one more seals the oldest.
    #[arg(long, env = "LOGRELAY_BATCH_MAX_OPEN", default_value_t = DEFAULT_MAX_OPEN_BATCHES)]
    pub batch_max_open: usize,
    /// Gzip level of the objects: `fast` (1), `default` (6), `best` (9) or 1-9; higher levels
    /// make smaller objects for more CPU on the node.
    #[arg(long, env = "LOGRELAY_COMPRESSION_LEVEL", default_value = "fast")]
    pub compression_level: String,
    /// Uploads in flight at once.
    #[arg(long, env = "LOGRELAY_UPLOAD_CONCURRENCY", default_value_t = DEFAULT_UPLOAD_CONCURRENCY)]
    pub upload_concurrency: usize,
    /// Objects larger than this use an S3 multipart upload (at least 5MiB).
    #[arg(long, env = "LOGRELAY_MULTIPART_THRESHOLD", default_value = "16MiB", value_parser = parse_bytes)]
    pub multipart_threshold: u64,
    /// Timeout of one S3 request (a part, for multipart uploads); it is then retried.
    #[arg(long, env = "LOGRELAY_REQUEST_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// After SIGTERM/SIGINT, how long to flush and finish uploads before exiting anyway.
    #[arg(long, env = "LOGRELAY_SHUTDOWN_GRACE", default_value = "25s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Address of `/metrics`, `/healthz` and `/readyz`; `off` disables the server.
    #[arg(long, env = "LOGRELAY_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// Cap on one message after partial lines are merged; longer ones are cut, marked and counted.
    #[arg(long, env = "LOGRELAY_MAX_LINE_BYTES", default_value = "1MiB", value_parser = parse_bytes)]
    pub max_line_bytes: u64,
    /// Cap on rotated files held open per pod (the rest wait; their unread bytes count as at risk).
    #[arg(long, env = "LOGRELAY_MAX_OPEN_ROTATED_PER_POD", default_value_t = DEFAULT_MAX_OPEN_ROTATED_PER_POD)]
    pub max_open_rotated_per_pod: usize,
    /// How long a partial (`P`) line waits for its next chunk before it is shipped as is.
    #[arg(long, env = "LOGRELAY_PARTIAL_FLUSH_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub partial_flush_timeout: Duration,
    /// First start on a node (no checkpoint file): where files already there begin. `beginning`
    /// ships every line still on the node; `end` only lines written from now on (nodes migrating
    /// from another collector). No effect once a checkpoint file exists, nor on files that appear later.
    #[arg(
        long,
        env = "LOGRELAY_START_AT",
        value_enum,
        default_value = "beginning"
    )]
    pub start_at: crate::tail::StartAt,
    /// Join the lines of multi-line records (stack traces) of every container into one message:
    /// `java`, `python`, `go` or `off`.
    #[arg(long, env = "LOGRELAY_MULTILINE", default_value = "off")]
    pub multiline: String,
    /// Join lines into records that each start with a line matching this regular expression
    /// (instead of `--multiline`).
    #[arg(long, env = "LOGRELAY_MULTILINE_START_REGEX")]
    pub multiline_start_regex: Option<String>,
    /// How long a multi-line record waits for its next line before it is shipped as it is.
    #[arg(long, env = "LOGRELAY_MULTILINE_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub multiline_timeout: Duration,
    /// Log format: text or json.
    #[arg(long, env = "LOGRELAY_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    // Kubernetes metadata flags; validated by `MetadataArgs::validate`.
    /// Kubernetes metadata: derivation, selection and timing flags.
    #[command(flatten)]
    pub metadata: crate::metadata::config::MetadataArgs,
    /// Parse and validate flags and environment, print a JSON report (invalid values, unknown
    /// `LOGRELAY_*` variables, deprecated names, listen address and paths) and exit: 0 valid, 1 not.
    #[arg(long)]
    pub check_config: bool,
}

/// Old setting names that still work and log a WARN (flags and environment variables).
pub const DEPRECATED: &[Deprecated] = &[
    Deprecated {
        old: "--s3-prefix",
        new: "--key-prefix",
    },
    Deprecated {
        old: "LOGRELAY_S3_PREFIX",
        new: "LOGRELAY_KEY_PREFIX",
    },
    Deprecated {
        old: "--aws-region",
        new: "--region",
    },
];

/// Paths the HTTP server answers on `--listen` (probes and scraping; `server.rs`).
pub use crate::server::HTTP_PATHS;

/// Variables read outside the flags: whether the agent runs in a pod, and how kube-rs finds the
/// API (`KUBERNETES_SERVICE_PORT`, `KUBECONFIG`).
const OTHER_ENV: &[&str] = &[IN_CLUSTER_ENV, "KUBERNETES_SERVICE_PORT", "KUBECONFIG"];

/// `--check-config`: parses and validates `args` and the process environment as a start would
/// and reports the outcome, the listen address and paths, the sink and the namespace selector;
/// starts nothing.
pub fn check_config_report(args: &[String]) -> Report {
    let vars = std::env::vars_os().map(|(name, _)| name.to_string_lossy().into_owned());
    let mut report = Report::new(
        "logrelay-agent",
        &AgentConfig::command(),
        OTHER_ENV,
        DEPRECATED,
        vars,
    );
    report.add_deprecated_flags(args, DEPRECATED);
    match AgentConfig::try_parse_from(args).map(|flags| flags.validate()) {
        Err(error) => report.errors.push(error.to_string().trim().to_owned()),
        Ok(Err(error)) => report.errors.push(error.to_string()),
        Ok(Ok(config)) => {
            if let Some(addr) = config.listen {
                report.listen = Some(addr.to_string());
                report.http_paths = HTTP_PATHS.to_vec();
            }
            let selector = config
                .metadata
                .as_ref()
                .map(|m| m.watch.rules.selection.namespace_selector.to_string());
            report
                .effective
                .insert("sink".into(), config.sink.to_string().into());
            report
                .effective
                .insert("namespace_selector".into(), selector.into());
        }
    }
    report
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct ValidConfig {
    /// Where lines come from.
    pub source: SourceKind,
    /// Root of the pod log tree.
    pub pods_root: PathBuf,
    /// Where objects go.
    pub sink: SinkTarget,
    /// Role to assume for S3 writes.
    pub writer_role_arn: Option<String>,
    /// How to reach AWS.
    pub aws: AwsOptions,
    /// Cluster id.
    pub cluster_id: String,
    /// Node name.
    pub node_name: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Batching limits.
    pub limits: BatchLimits,
    /// Cap on the disk buffer.
    pub buffer_max_bytes: u64,
    /// Gzip level of the objects.
    pub compression: Compression,
    /// Uploads in flight at once.
    pub upload_concurrency: usize,
    /// S3 upload settings.
    pub s3: S3Settings,
    /// Shutdown grace period.
    pub shutdown_grace: Duration,
    /// Server address, if enabled.
    pub listen: Option<SocketAddr>,
    /// Cap on one message.
    pub max_line_bytes: usize,
    /// Cap on rotated files held open per pod.
    pub max_open_rotated_per_pod: usize,
    /// Wait for a partial line's next chunk.
    pub partial_flush_timeout: Duration,
    /// Where files begin on a first start.
    pub start_at: crate::tail::StartAt,
    /// How multi-line records are joined (`None`: off).
    pub multiline: Option<Arc<MultilineRule>>,
    /// Wait for a multi-line record's next line.
    pub multiline_timeout: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// Kubernetes metadata (None: off, records carry path-derived fields only).
    pub metadata: Option<crate::metadata::config::MetadataConfig>,
}

impl AgentConfig {
    /// The key prefix from `--key-prefix`, else from its deprecated name `--s3-prefix` (with a
    /// WARN); both set and different is an error.
    fn key_prefix(&self) -> Result<String, ConfigError> {
        match (&self.key_prefix, &self.s3_prefix) {
            (Some(new), Some(old)) if new != old => Err(invalid(
                "--key-prefix (LOGRELAY_KEY_PREFIX)",
                format!(
                    "{new:?} differs from the deprecated --s3-prefix (LOGRELAY_S3_PREFIX) {old:?}; set only --key-prefix"
                ),
            )),
            (Some(new), _) => Ok(new.clone()),
            (None, Some(old)) => {
                tracing::warn!(
                    "--s3-prefix (LOGRELAY_S3_PREFIX) is deprecated: use --key-prefix (LOGRELAY_KEY_PREFIX), the processor's name"
                );
                Ok(old.clone())
            }
            (None, None) => Ok(String::new()),
        }
    }

    /// The region from `--region`/`AWS_REGION`, else from the deprecated `--aws-region` (with a WARN).
    fn region(&self) -> Option<String> {
        if self.deprecated_aws_region.is_some() {
            tracing::warn!(
                "--aws-region is deprecated: use --region (AWS_REGION), the processor's name"
            );
        }
        self.aws_region
            .clone()
            .or_else(|| self.deprecated_aws_region.clone())
            .filter(|r| !r.is_empty())
    }

    /// The rule of `--multiline` or `--multiline-start-regex` (at most one of them).
    fn multiline_rule(&self) -> Result<Option<MultilineRule>, ConfigError> {
        const FIELD: &str = "--multiline (LOGRELAY_MULTILINE)";
        const REGEX_FIELD: &str = "--multiline-start-regex (LOGRELAY_MULTILINE_START_REGEX)";
        if self.multiline_timeout.is_zero() {
            return Err(invalid(
                "--multiline-timeout (LOGRELAY_MULTILINE_TIMEOUT)",
                "must be more than 0",
            ));
        }
        let language = match self.multiline.trim() {
            "" | "off" => None,
            value => Some(MultilineRule::parse_language(value).map_err(|e| invalid(FIELD, e))?),
        };
        match (language, self.multiline_start_regex.as_deref()) {
            (Some(_), Some(_)) => Err(invalid(
                REGEX_FIELD,
                "set either --multiline or --multiline-start-regex, not both",
            )),
            (None, Some(pattern)) if !pattern.is_empty() => MultilineRule::start_regex(pattern)
                .map(Some)
                .map_err(|e| invalid(REGEX_FIELD, e)),
            (language, _) => Ok(language),
        }
    }

    /// Checks every value and builds the [`ValidConfig`]; the first problem names its field.
    pub fn validate(&self) -> Result<ValidConfig, ConfigError> {
        check_name("--cluster-id (CLUSTER_ID)", &self.cluster_id)?;
        check_name("--node-name (NODE_NAME)", &self.node_name)?;
        let sink = match (&self.sink, &self.s3_bucket_name) {
            (Some(sink), _) => SinkTarget::parse(sink)
                .map_err(|err| invalid("--sink (LOGRELAY_SINK)", err.to_string()))?,
            (None, Some(bucket)) if !bucket.is_empty() => {
                SinkTarget::s3(bucket, &self.key_prefix()?)
                    .map_err(|err| invalid("--s3-bucket-name (S3_BUCKET_NAME)", err.to_string()))?
            }
            _ => SinkTarget::Directory {
                root: self.data_dir.join("objects"),
            },
        };
        let writer_role_arn = self
            .s3_writer_role_arn
            .clone()
            .filter(|arn| !arn.is_empty());
        if let Some(arn) = &writer_role_arn {
            RoleStep::new(arn.clone(), "logrelay-agent")
                .validate()
                .map_err(|err| invalid("--s3-writer-role-arn (S3_WRITER_ROLE_ARN)", err))?;
            if !matches!(sink, SinkTarget::S3 { .. }) {
                tracing::warn!("S3_WRITER_ROLE_ARN is set but the sink is not S3; it is not used");
            }
        }
        if !(MIN_BATCH_MAX_BYTES..=MAX_BATCH_MAX_BYTES).contains(&self.batch_max_bytes) {
            return Err(invalid(
                "--batch-max-bytes (LOGRELAY_BATCH_MAX_BYTES)",
                format!(
                    "{} is outside {MIN_BATCH_MAX_BYTES}..={MAX_BATCH_MAX_BYTES}",
                    self.batch_max_bytes
                ),
            ));
        }
        if self.batch_timeout.is_zero() {
            return Err(invalid(
                "--batch-timeout (LOGRELAY_BATCH_TIMEOUT)",
                "must be more than 0",
            ));
        }
        if self.batch_memory_limit < MIN_BATCH_MEMORY_LIMIT {
            return Err(invalid(
                "--batch-memory-limit (LOGRELAY_BATCH_MEMORY_LIMIT)",
                format!(
                    "{} is below the minimum {MIN_BATCH_MEMORY_LIMIT} (room for 4 open batches of {CHUNK_BYTES} pending bytes)",
                    self.batch_memory_limit
                ),
            ));
        }
        if self.buffer_max_bytes < MIN_BUFFER_MAX_BYTES {
            return Err(invalid(
                "--buffer-max-bytes (LOGRELAY_BUFFER_MAX_BYTES)",
                format!(
                    "{} is below the minimum {MIN_BUFFER_MAX_BYTES} (16MiB)",
                    self.buffer_max_bytes
                ),
            ));
        }
        if self.batch_max_open == 0 {
            return Err(invalid(
                "--batch-max-open (LOGRELAY_BATCH_MAX_OPEN)",
                "must be at least 1",
            ));
        }
        let compression = parse_compression_level(&self.compression_level)
            .map_err(|err| invalid("--compression-level (LOGRELAY_COMPRESSION_LEVEL)", err))?;
        if !(1..=MAX_UPLOAD_CONCURRENCY).contains(&self.upload_concurrency) {
            return Err(invalid(
                "--upload-concurrency (LOGRELAY_UPLOAD_CONCURRENCY)",
                format!(
                    "{} is outside 1..={MAX_UPLOAD_CONCURRENCY}",
                    self.upload_concurrency
                ),
            ));
        }
        if self.multipart_threshold < S3_MIN_PART_SIZE {
            return Err(invalid(
                "--multipart-threshold (LOGRELAY_MULTIPART_THRESHOLD)",
                format!(
                    "{} is below S3's minimum part size {S3_MIN_PART_SIZE}",
                    self.multipart_threshold
                ),
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(invalid(
                "--request-timeout (LOGRELAY_REQUEST_TIMEOUT)",
                "must be more than 0",
            ));
        }
        let max_line_bytes = usize::try_from(self.max_line_bytes)
            .ok()
            .filter(|n| (MIN_MAX_LINE_BYTES..=MAX_MAX_LINE_BYTES).contains(n))
            .ok_or_else(|| {
                invalid(
                    "--max-line-bytes (LOGRELAY_MAX_LINE_BYTES)",
                    format!(
                        "{} is outside {MIN_MAX_LINE_BYTES}..={MAX_MAX_LINE_BYTES}",
                        self.max_line_bytes
                    ),
                )
            })?;
        if self.max_open_rotated_per_pod == 0 {
            return Err(invalid(
                "--max-open-rotated-per-pod (LOGRELAY_MAX_OPEN_ROTATED_PER_POD)",
                "must be at least 1",
            ));
        }
        let listen =
            match self.listen.as_str() {
                "off" | "" => None,
                addr => Some(logrelay_common::http_endpoint::parse_listen(addr).map_err(
                    |err| invalid("--listen (LOGRELAY_LISTEN)", format!("{err} or off")),
                )?),
            };
        Ok(ValidConfig {
            source: self.source,
            pods_root: self.pods_root.clone(),
            sink,
            writer_role_arn,
            aws: AwsOptions {
                region: self.region(),
                endpoint_url: self.aws_endpoint_url.clone().filter(|u| !u.is_empty()),
                credentials: None,
            },
            cluster_id: self.cluster_id.clone(),
            node_name: self.node_name.clone(),
            data_dir: self.data_dir.clone(),
            limits: BatchLimits {
                max_bytes: self.batch_max_bytes,
                timeout: self.batch_timeout,
                memory_limit: self.batch_memory_limit,
                max_open: self.batch_max_open,
            },
            buffer_max_bytes: self.buffer_max_bytes,
            compression,
            upload_concurrency: self.upload_concurrency,
            s3: S3Settings {
                multipart_threshold: self.multipart_threshold,
                part_size: MULTIPART_PART_SIZE,
                request_timeout: self.request_timeout,
            },
            shutdown_grace: self.shutdown_grace,
            listen,
            max_line_bytes,
            max_open_rotated_per_pod: self.max_open_rotated_per_pod,
            partial_flush_timeout: self.partial_flush_timeout,
            start_at: self.start_at,
            multiline: self.multiline_rule()?.map(Arc::new),
            multiline_timeout: self.multiline_timeout,
            log_format: self.log_format,
            metadata: self.metadata.validate(
                &self.node_name,
                &self.data_dir,
                Some(&self.pods_root),
                std::env::var_os(crate::metadata::config::IN_CLUSTER_ENV).is_some(),
            )?,
        })
    }
}

/// Cluster and node names: non-empty, printable, no `/` (they appear in keys and records).
fn check_name(field: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.len() > 253 {
        return Err(invalid(
            field,
            format!("is {} bytes, at most 253 allowed", value.len()),
        ));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> AgentConfig {
        let mut all = vec!["logrelay-agent"];
        all.extend_from_slice(args);
        AgentConfig::try_parse_from(all).expect("flags parse")
    }

    fn error(args: &[&str]) -> ConfigError {
        parse(args).validate().expect_err("invalid")
    }

    #[test]
    fn defaults_validate_to_a_local_file_sink_in_the_data_dir() {
        let config = parse(&["--data-dir", "/tmp/d"]).validate().expect("valid");
        assert_eq!(
            config.sink,
            SinkTarget::Directory {
                root: "/tmp/d/objects".into()
            }
        );
        assert_eq!(config.limits, BatchLimits::default());
        assert_eq!(config.upload_concurrency, DEFAULT_UPLOAD_CONCURRENCY);
        assert_eq!(
            config.compression,
            logrelay_common::codec::WRITE_COMPRESSION
        );
        assert_eq!(config.shutdown_grace, DEFAULT_SHUTDOWN_GRACE);
        assert_eq!(config.s3, S3Settings::default());
        assert_eq!(config.max_line_bytes, crate::parse::DEFAULT_MAX_LINE_BYTES);
        assert_eq!(
            config.partial_flush_timeout,
            crate::parse::partial::PARTIAL_FLUSH_TIMEOUT
        );
        assert_eq!(
            config.listen,
            Some(DEFAULT_LISTEN.parse().expect("valid address"))
        );
        assert_eq!(config.source, SourceKind::Files);
    }

    #[test]
    fn bucket_name_selects_s3_with_prefix_and_sink_flag_wins() {
        for prefix_flag in ["--key-prefix", "--s3-prefix"] {
            let config = parse(&["--s3-bucket-name", "central", prefix_flag, "p"])
                .validate()
                .expect("valid");
            assert_eq!(
                config.sink,
                SinkTarget::S3 {
                    bucket: "central".into(),
                    prefix: "p".into()
                },
                "{prefix_flag}"
            );
        }
        let both = error(&[
            "--s3-bucket-name",
            "central",
            "--key-prefix",
            "a",
            "--s3-prefix",
            "b",
        ]);
        assert_eq!(both.field, "--key-prefix (LOGRELAY_KEY_PREFIX)");
        let config = parse(&["--s3-bucket-name", "central", "--sink", "file:///o"])
            .validate()
            .expect("valid");
        assert_eq!(config.sink, SinkTarget::Directory { root: "/o".into() });
    }

    #[test]
    fn errors_name_the_bad_field() {
        for (flag, value, field) in [
            ("--sink", "ftp://x", "--sink (LOGRELAY_SINK)"),
            (
                "--s3-bucket-name",
                "Bad_Bucket",
                "--s3-bucket-name (S3_BUCKET_NAME)",
            ),
            ("--cluster-id", " ", "--cluster-id (CLUSTER_ID)"),
            (
                "--batch-max-bytes",
                "10",
                "--batch-max-bytes (LOGRELAY_BATCH_MAX_BYTES)",
            ),
            (
                "--batch-timeout",
                "0",
                "--batch-timeout (LOGRELAY_BATCH_TIMEOUT)",
            ),
            (
                "--batch-memory-limit",
                "512KiB",
                "--batch-memory-limit (LOGRELAY_BATCH_MEMORY_LIMIT)",
            ),
            (
                "--buffer-max-bytes",
                "1MiB",
                "--buffer-max-bytes (LOGRELAY_BUFFER_MAX_BYTES)",
            ),
            (
                "--upload-concurrency",
                "0",
                "--upload-concurrency (LOGRELAY_UPLOAD_CONCURRENCY)",
            ),
            (
                "--multipart-threshold",
                "1MiB",
                "--multipart-threshold (LOGRELAY_MULTIPART_THRESHOLD)",
            ),
            ("--listen", "nowhere", "--listen (LOGRELAY_LISTEN)"),
            ("--multiline", "ruby", "--multiline (LOGRELAY_MULTILINE)"),
            (
                "--multiline-start-regex",
                "(unclosed",
                "--multiline-start-regex (LOGRELAY_MULTILINE_START_REGEX)",
            ),
            (
                "--multiline-timeout",
                "0",
                "--multiline-timeout (LOGRELAY_MULTILINE_TIMEOUT)",
            ),
            (
                "--compression-level",
                "11",
                "--compression-level (LOGRELAY_COMPRESSION_LEVEL)",
            ),
            (
                "--compression-level",
                "smallest",
                "--compression-level (LOGRELAY_COMPRESSION_LEVEL)",
            ),
            (
                "--max-line-bytes",
                "10",
                "--max-line-bytes (LOGRELAY_MAX_LINE_BYTES)",
            ),
        ] {
            assert_eq!(error(&[flag, value]).field, field, "{flag} {value:?}");
        }
        let role = error(&["--s3-writer-role-arn", "arn:aws:iam::1:role/x"]);
        assert_eq!(role.field, "--s3-writer-role-arn (S3_WRITER_ROLE_ARN)");
        assert!(role.to_string().contains("not an IAM role ARN"), "{role}");
    }

    #[test]
    fn unparsable_flag_values_are_refused_by_clap_naming_the_flag() {
        let err = AgentConfig::try_parse_from(["logrelay-agent", "--batch-max-bytes", "lots"])
            .expect_err("refused")
            .to_string();
        assert!(err.contains("--batch-max-bytes"), "{err}");
    }

    #[test]
    fn region_has_the_processors_flag_and_the_old_flag_still_works() {
        for flag in ["--region", "--aws-region"] {
            let config = parse(&[flag, "eu-west-1"]).validate().expect("valid");
            assert_eq!(config.aws.region.as_deref(), Some("eu-west-1"), "{flag}");
        }
    }

    #[test]
    fn compression_level_takes_names_and_numbers() {
        for (value, level) in [("best", 9), ("default", 6), ("fast", 1), ("3", 3)] {
            let config = parse(&["--compression-level", value])
                .validate()
                .expect("valid");
            assert_eq!(config.compression.level(), level, "{value}");
        }
    }

    #[test]
    fn listen_off_disables_the_server() {
        assert_eq!(
            parse(&["--listen", "off"])
                .validate()
                .expect("valid")
                .listen,
            None
        );
    }
}
