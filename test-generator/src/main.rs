//! `logrelay-testgen`: realistic fake container logs and a delivery verifier.
//!
//! Parses flags and dispatches to the library; see `docs/test-generator.md`.

use clap::{Parser, Subcommand};
use logrelay_common::logging::{self, LogFormat};
use logrelay_testgen::exit::{EXIT_FAILURES, HasExitCode};
use logrelay_testgen::kill_loop::{self, KillLoopArgs};
use logrelay_testgen::ndjson::{self, NdjsonArgs, StopReason};
use logrelay_testgen::pods::{self, PodsArgs};
use logrelay_testgen::shutdown;
use logrelay_testgen::verify::{self, VerifyArgs};
use std::io::{BufWriter, Write};
use std::process::ExitCode;

/// Output buffer for `ndjson` on stdout.
const STDOUT_BUFFER_BYTES: usize = 64 * 1024;

#[derive(Parser)]
#[command(
    name = "logrelay-testgen",
    version,
    about = "Realistic fake container logs and a delivery verifier"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write records in the common schema, one JSON line each, to stdout.
    Ndjson(NdjsonArgs),
    /// Write a kubelet-like /var/log/pods tree with rotation and pod churn.
    Pods(PodsArgs),
    /// Compare delivered records with a ledger; exit 1 if lines are missing, corrupted or misrouted.
    Verify(VerifyArgs),
    /// Run the real agent under SIGKILLs while `pods` writes like containerd; exit 1 if a target
    /// is missed.
    KillLoop(KillLoopArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(LogFormat::Text);
    match dispatch(cli.command).await {
        Ok(code) | Err(code) => code,
    }
}

/// Prints `error` (every error of this crate names its cause) and gives its exit code.
fn failed<E: std::fmt::Display + HasExitCode>(error: E) -> ExitCode {
    eprintln!("logrelay-testgen: {error}");
    ExitCode::from(error.exit_code())
}

/// Runs one command; the error is the exit code of a run that could not finish.
async fn dispatch(command: Command) -> Result<ExitCode, ExitCode> {
    match command {
        Command::Ndjson(args) => {
            let stdout = std::io::stdout();
            let out = BufWriter::with_capacity(STDOUT_BUFFER_BYTES, stdout.lock());
            let summary = ndjson::run(&args, out, shutdown::on_signals())
                .await
                .map_err(failed)?;
            if summary.stop != StopReason::BrokenPipe {
                eprintln!(
                    "logrelay-testgen ndjson: stopped ({:?}) seed={} {}",
                    summary.stop,
                    summary.seed,
                    summary.stats.summary()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Pods(args) => {
            let summary = pods::run(&args, shutdown::on_signals())
                .await
                .map_err(failed)?;
            eprintln!(
                "logrelay-testgen pods: stopped ({:?}) seed={} {}",
                summary.stop,
                summary.seed,
                pods::progress(&summary.stats, &summary.counts)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(args) => {
            let report = verify::run(&args).await.map_err(failed)?;
            let text = if args.json {
                report.to_json()
            } else {
                report.to_table()
            };
            let mut stdout = std::io::stdout().lock();
            // A closed stdout must not change the verdict.
            let _ = writeln!(stdout, "{}", text.trim_end());
            Ok(ExitCode::from(report.exit_code(args.fail_on_duplicates)))
        }
        Command::KillLoop(args) => {
            let report = kill_loop::run(&args).await.map_err(failed)?;
            let text = if args.json {
                report.to_json()
            } else {
                report.to_text()
            };
            let mut stdout = std::io::stdout().lock();
            // A closed stdout must not change the verdict.
            let _ = writeln!(stdout, "{}", text.trim_end());
            Ok(match report.passed() {
                true => ExitCode::SUCCESS,
                false => ExitCode::from(EXIT_FAILURES),
            })
        }
    }
}
