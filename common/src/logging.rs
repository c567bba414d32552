//! Logging setup shared by every logrelay binary: `tracing` to stderr, human-readable or JSON.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable text (the default for terminals).
    #[default]
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" | "plain" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "unknown log format {other:?} (expected text or json)"
            )),
        }
    }
}

/// Crates whose debug/trace output carries request and response bodies (AssumeRole inputs with
/// ExternalIds, DynamoDB items, credentials). They are held at `info` whatever `RUST_LOG` says, so
/// no log level can leak a tenant's secrets; `LOGRELAY_LOG_AWS_WIRE=1` lifts this for debugging
/// against an emulator.
pub const WIRE_LOGGING_CRATES: &[&str] = &[
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_smithy_types",
    "aws_config",
    "aws_runtime",
    "aws_sigv4",
    "aws_sdk_s3",
    "aws_sdk_sts",
    "aws_sdk_dynamodb",
    "aws_sdk_cloudwatchlogs",
    "aws_sdk_sqs",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
];

/// Installs the global subscriber. The filter comes from `RUST_LOG` (default `info`), with the
/// [`WIRE_LOGGING_CRATES`] held at `info` at most.
///
/// Calling it twice is harmless: the second call leaves the first subscriber in place.
pub fn init(format: LogFormat) {
    let filter = filter_from(
        std::env::var("RUST_LOG").ok().as_deref(),
        std::env::var_os("LOGRELAY_LOG_AWS_WIRE").is_some_and(|v| v == "1"),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_wanted(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        ))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Colour codes only on a terminal, and never with `NO_COLOR` set (files, pipes and log collectors
/// get plain text).
fn colour_wanted(stderr_is_terminal: bool, no_color: bool) -> bool {
    stderr_is_terminal && !no_color
}

/// Builds the filter from a `RUST_LOG`-style spec (default `info`); unless `wire` is set, the
/// [`WIRE_LOGGING_CRATES`] are capped at `info` (a more quiet setting for them is kept).
fn filter_from(spec: Option<&str>, wire: bool) -> EnvFilter {
    let spec = spec.filter(|s| !s.trim().is_empty()).unwrap_or("info");
    let mut filter = EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("info"));
    if !wire {
        for krate in WIRE_LOGGING_CRATES {
            let explicit_quiet = spec.split(',').any(|d| {
                d.trim().starts_with(krate)
                    && ["=warn", "=error", "=off"]
                        .iter()
                        .any(|l| d.trim().ends_with(l))
            });
            if explicit_quiet {
                continue;
            }
            if let Ok(directive) = format!("{krate}=info").parse() {
                filter = filter.add_directive(directive);
            }
        }
    }
    filter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_crates_are_capped_at_info_even_under_trace() {
        let filter = filter_from(Some("trace"), false).to_string();
        assert!(filter.contains("aws_sdk_sts=info"), "{filter}");
        assert!(filter.contains("aws_smithy_runtime=info"), "{filter}");
        assert!(filter.contains("trace"), "{filter}");
    }

    #[test]
    fn wire_logging_can_be_lifted_explicitly() {
        let filter = filter_from(Some("trace"), true).to_string();
        assert!(!filter.contains("aws_sdk_sts=info"), "{filter}");
    }

    #[test]
    fn a_quieter_setting_for_a_wire_crate_is_kept() {
        let filter = filter_from(Some("info,hyper=warn"), false).to_string();
        assert!(filter.contains("hyper=warn"), "{filter}");
        assert!(!filter.contains("hyper=info"), "{filter}");
    }
}
