//! `--check-config`, the same in every logrelay binary: the binary's own parser reads the flags and
//! the environment a deployment sets, and one JSON document on stdout says whether they are valid,
//! which variables are not settings, which names are deprecated, and what the binary will serve.
//! Manifest and template checks run it on every environment the shipped files set, so the files
//! cannot drift from the binaries.

use std::collections::BTreeSet;

/// Prefix of every logrelay-only environment variable: a variable with it that is no setting is a
/// typo or a removed setting, and `--check-config` refuses it.
pub const ENV_PREFIX: &str = "LOGRELAY_";

/// Variables read outside the settings structs by every binary (logging, `logging.rs`).
pub const COMMON_ENV: &[&str] = &["RUST_LOG", "LOGRELAY_LOG_AWS_WIRE"];

/// Prefixes of variables the AWS SDK and the platform read (credentials, endpoints, the Lambda
/// runtime); a deployment may set them, they are no logrelay setting.
pub const PLATFORM_ENV_PREFIXES: &[&str] = &["AWS_"];

/// A setting's old name that still works but logs a WARN at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deprecated {
    /// The old name, e.g. `LOGRELAY_S3_PREFIX` or `--s3-prefix`.
    pub old: &'static str,
    /// The name to use instead.
    pub new: &'static str,
}

impl Deprecated {
    /// The WARN line logged when the old name is used.
    pub fn warning(&self) -> String {
        format!("{} is deprecated: use {}", self.old, self.new)
    }
}

/// Every environment variable a clap command (and its subcommands) reads, hidden ones included.
pub fn setting_env_names(command: &clap::Command) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = command
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|name| name.to_string_lossy().into_owned())
        .collect();
    for sub in command.get_subcommands() {
        names.extend(setting_env_names(sub));
    }
    names
}

/// The outcome of `--check-config`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// `logrelay-agent` or `logrelay-processor`.
    pub binary: &'static str,
    /// Invalid values, each naming its setting.
    pub errors: Vec<String>,
    /// `LOGRELAY_*` variables that are no setting (refused).
    pub unknown_env: Vec<String>,
    /// Other variables that are no setting and not read by the SDK or platform (not refused: a
    /// container has PATH, HOSTNAME, …; shipped manifests must not set any).
    pub unused_env: Vec<String>,
    /// Deprecated names in use, with their replacement.
    pub deprecated: Vec<String>,
    /// Address of the HTTP server (`None`: no server in this configuration).
    pub listen: Option<String>,
    /// Paths that server answers.
    pub http_paths: Vec<&'static str>,
    /// Effective values worth checking against manifests (binary-specific).
    pub effective: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    /// A report for `binary` with the environment `vars` scanned against `command`'s settings plus
    /// `extra_known` (variables the binary reads outside its settings struct).
    pub fn new<I>(
        binary: &'static str,
        command: &clap::Command,
        extra_known: &[&str],
        deprecated: &[Deprecated],
        vars: I,
    ) -> Self
    where
        I: IntoIterator<Item = String>,
    {
        let known = setting_env_names(command);
        let mut report = Self {
            binary,
            ..Self::default()
        };
        for name in vars {
            if let Some(old) = deprecated.iter().find(|d| d.old == name) {
                report.deprecated.push(old.warning());
            }
            if known.contains(&name)
                || COMMON_ENV.contains(&name.as_str())
                || extra_known.contains(&name.as_str())
            {
                continue;
            }
            if name.starts_with(ENV_PREFIX) {
                report.unknown_env.push(name);
            } else if !PLATFORM_ENV_PREFIXES.iter().any(|p| name.starts_with(p)) {
                report.unused_env.push(name);
            }
        }
        report.unknown_env.sort();
        report.unused_env.sort();
        report
    }

    /// Adds deprecated flags given on the command line (`--old` or `--old=value`).
    pub fn add_deprecated_flags(&mut self, args: &[String], deprecated: &[Deprecated]) {
        for d in deprecated.iter().filter(|d| d.old.starts_with("--")) {
            if args
                .iter()
                .any(|a| a == d.old || a.starts_with(&format!("{}=", d.old)))
            {
                self.deprecated.push(d.warning());
            }
        }
    }

    /// True when the binary would start with this configuration.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty() && self.unknown_env.is_empty()
    }

    /// Prints the report as one JSON document on stdout.
    pub fn print(&self) {
        match serde_json::to_string_pretty(self) {
            Ok(text) => println!("{text}"),
            Err(error) => println!("{{\"errors\": [\"cannot render the report: {error}\"]}}"),
        }
    }
}

/// True when `args` ask for `--check-config` (looked up before clap parses, so that a parse error
/// is reported in the same JSON form).
pub fn requested(args: &[String]) -> bool {
    args.iter().skip(1).any(|a| a == "--check-config")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command() -> clap::Command {
        clap::Command::new("t")
            .arg(
                clap::Arg::new("listen")
                    .long("listen")
                    .env("LOGRELAY_LISTEN"),
            )
            .arg(
                clap::Arg::new("old")
                    .long("s3-prefix")
                    .env("LOGRELAY_S3_PREFIX")
                    .hide(true),
            )
            .subcommand(clap::Command::new("sub").arg(clap::Arg::new("b").long("b").env("BUCKET")))
    }

    #[test]
    fn unknown_prefixed_variables_are_refused_and_others_reported() {
        let deprecated = [Deprecated {
            old: "LOGRELAY_S3_PREFIX",
            new: "LOGRELAY_KEY_PREFIX",
        }];
        let vars = [
            "LOGRELAY_LISTEN",
            "LOGRELAY_LISTN",
            "BUCKET",
            "MAX_BATCH_SIZE",
            "AWS_ACCESS_KEY_ID",
            "RUST_LOG",
            "LOGRELAY_S3_PREFIX",
        ]
        .map(String::from);
        let report = Report::new("t", &command(), &[], &deprecated, vars);
        assert_eq!(report.unknown_env, ["LOGRELAY_LISTN"]);
        assert_eq!(report.unused_env, ["MAX_BATCH_SIZE"]);
        assert_eq!(
            report.deprecated,
            ["LOGRELAY_S3_PREFIX is deprecated: use LOGRELAY_KEY_PREFIX"]
        );
        assert!(!report.is_ok());
    }

    #[test]
    fn deprecated_flags_are_reported() {
        let deprecated = [Deprecated {
            old: "--s3-prefix",
            new: "--key-prefix",
        }];
        let mut report = Report::new("t", &command(), &[], &deprecated, []);
        report.add_deprecated_flags(&["t".into(), "--s3-prefix=x".into()], &deprecated);
        assert_eq!(report.deprecated.len(), 1);
        assert!(report.is_ok());
    }
}
