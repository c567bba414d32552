//! What the logrelay binaries share, and nothing else: the record schema, the S3 key layout, the
//! tenant delivery config, the gzip NDJSON codec, AWS client setup and partitions, logging setup,
//! the HTTP endpoint of metrics and probes, and the syntax of sizes and durations in flags
//! ([`units`]).

pub mod aws;
pub mod check_config;
pub mod codec;
pub mod exit;
pub mod http_endpoint;
pub mod key;
pub mod logging;
pub mod partition;
pub mod record;
pub mod tenant;
pub mod units;
pub mod vector_name;
