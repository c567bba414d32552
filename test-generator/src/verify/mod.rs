//! `logrelay-testgen verify`: reads what was delivered and compares it with a generator's ledger.
//!
//! Delivered records come from a directory or S3 prefix of gzip NDJSON objects in the key layout
//! (`customer/cluster/app/pod/file.json.gz`, see `logrelay_common::key`), or from a CloudWatch
//! Logs group. Each line's sequence token names its ledger source; [`tally`] counts what arrived,
//! [`report`] prints it. A line is misrouted when it belongs to another tenant than the
//! destination (`--tenant`), than its key partition, or than the record's own `customer_id`. A
//! line is corrupted when a delivered record naming it is not byte for byte the written line: its
//! seal ([`crate::seal`]) does not check, when the ledger says lines are sealed, or its stream is
//! not the source's.

pub mod cloudwatch;
pub mod dir;
pub mod report;
pub mod s3;
pub mod tally;

use crate::ledger::{Ledger, LedgerError};
use aws_config::SdkConfig;
use logrelay_common::aws::{self, AwsError, AwsOptions};
use logrelay_common::codec::{CodecError, NdjsonGzReader, ReadLimits};
use logrelay_common::record::LogRecord;
use report::Report;
use s3::S3Location;
use std::path::PathBuf;
use tally::{Delivered, Expectations, Tally, TooManyLines};
use tokio::io::AsyncBufRead;

/// Missing ranges listed per source by default.
pub const DEFAULT_MAX_RANGES: usize = 10;

/// Flags of `logrelay-testgen verify`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("delivered").required(true).args(["dir", "s3", "cloudwatch_group"])))]
pub struct VerifyArgs {
    /// The ledger written by `pods` or `ndjson`.
    #[arg(long)]
    pub ledger: PathBuf,
    /// A directory of delivered objects in the key layout.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// An S3 location of delivered objects, `s3://bucket[/prefix]` (endpoint from `AWS_ENDPOINT_URL`).
    #[arg(long)]
    pub s3: Option<S3Location>,
    /// A CloudWatch Logs group; every stream is read.
    #[arg(long)]
    pub cloudwatch_group: Option<String>,
    /// The destination belongs to this tenant: only its sources are expected, others' lines are misrouted.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only these applications are expected (comma-separated); others are reported as unexpected.
    #[arg(long, value_delimiter = ',')]
    pub applications: Vec<String>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Fail (exit 1) when lines were delivered more than once.
    #[arg(long)]
    pub fail_on_duplicates: bool,
    /// Missing ranges listed per source.
    #[arg(long, default_value_t = DEFAULT_MAX_RANGES)]
    pub max_ranges: usize,
    /// AWS region (default: the environment's, then us-east-1).
    #[arg(long)]
    pub region: Option<String>,
}

impl VerifyArgs {
    /// Flags with `ledger`, no delivery source yet, everything else default.
    pub fn new(ledger: impl Into<PathBuf>) -> Self {
        Self {
            ledger: ledger.into(),
            dir: None,
            s3: None,
            cloudwatch_group: None,
            tenant: None,
            applications: Vec::new(),
            json: false,
            fail_on_duplicates: false,
            max_ranges: DEFAULT_MAX_RANGES,
            region: None,
        }
    }

    /// Flags to verify the objects under `dir` against `ledger`, everything else default.
    pub fn for_dir(ledger: impl Into<PathBuf>, dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
            ..Self::new(ledger)
        }
    }

    fn expectations(&self) -> Expectations {
        Expectations {
            tenant: self.tenant.clone(),
            applications: self
                .applications
                .iter()
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect(),
        }
    }

    fn aws_options(&self) -> AwsOptions {
        AwsOptions {
            region: self.region.clone(),
            ..AwsOptions::default()
        }
    }
}

/// Verification could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The ledger could not be read.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The ledger is too large to track.
    #[error(transparent)]
    TooManyLines(#[from] TooManyLines),
    /// No (or more than one) delivery source was given.
    #[error("give exactly one of --dir, --s3, --cloudwatch-group")]
    NoSource,
    /// The delivered directory could not be walked.
    #[error("reading {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An AWS call failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// Reads the ledger and the delivered records and builds the report.
///
/// AWS settings (for `--s3` and `--cloudwatch-group`) come from the environment, including
/// `AWS_ENDPOINT_URL`, and `--region`.
pub async fn run(args: &VerifyArgs) -> Result<Report, VerifyError> {
    run_with_aws(args, None).await
}

/// Like [`run`], but reads S3 and CloudWatch with the given configuration (tests, emulators).
pub async fn run_with_aws(
    args: &VerifyArgs,
    aws_config: Option<&SdkConfig>,
) -> Result<Report, VerifyError> {
    let ledger = Ledger::read(&args.ledger)?;
    let mut tally = Tally::new(&ledger, args.expectations())?;
    let config = match (&args.dir, aws_config) {
        (Some(_), _) => None,
        (None, Some(config)) => Some(config.clone()),
        (None, None) => Some(aws::base_config(&args.aws_options()).await),
    };
    match (&args.dir, &args.s3, &args.cloudwatch_group, &config) {
        (Some(root), None, None, _) => dir::read(root, &mut tally).await?,
        (None, Some(location), None, Some(config)) => {
            s3::read(location, config, &mut tally).await?
        }
        (None, None, Some(group), Some(config)) => {
            cloudwatch::read(group, config, &mut tally).await?
        }
        _ => return Err(VerifyError::NoSource),
    }
    Ok(tally.finish(args.max_ranges))
}

/// Reads one gzip NDJSON object of records stored under `partition_customer`'s partition.
///
/// Bad lines are counted and skipped; a broken object stops with the error after counting the
/// lines read before it.
async fn read_object<R: AsyncBufRead + Unpin>(
    reader: R,
    partition_customer: &str,
    tally: &mut Tally<'_>,
) -> Result<(), CodecError> {
    let mut reader = NdjsonGzReader::new(reader, ReadLimits::default());
    while let Some((_, record)) = reader.next_record::<LogRecord>().await? {
        match record {
            Ok(record) => tally.observe(Delivered {
                text: &record.message,
                partition_customer: Some(partition_customer),
                record_customer: Some(&record.customer_id),
                stream: Some(record.stream),
            }),
            Err(error) => {
                tracing::debug!(%error, "delivered line is not a record");
                tally.bad_line();
            }
        }
    }
    Ok(())
}
