//! `logrelay-demo`: the local end-to-end pipeline (`make demo`, see `docs/demo.md`) and its chaos
//! variant (`make chaos`, see `docs/reliability.md`). Parses the flags, runs
//! [`logrelay_demo::run`] until it finishes or Ctrl-C / SIGTERM arrives (dropping the run stops
//! every process it started), prints the summary and sets the exit code.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use logrelay_demo::options::{ChaosCommandArgs, RunArgs, chaos_options, default_options};

/// Exit code: nothing missing or misrouted.
const EXIT_PASSED: u8 = 0;
/// Exit code: lines missing, misrouted or unwanted (or a denied tenant's objects not in the DLQ).
const EXIT_FAILED: u8 = 1;
/// Exit code: the demo could not run (setup failed, interrupted).
const EXIT_ERROR: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "logrelay-demo",
    version,
    about = "The local end-to-end logrelay pipeline: emulated AWS accounts, a fake node and cluster, agent, processor, verification",
    after_help = "Exit codes: 0 nothing missing or misrouted; 1 lines missing or misrouted; 2 the demo could not run.\nSee docs/demo.md."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Provision, run for --duration, drain, verify, print the summary.
    Run(RunArgs),
    /// Like run, with random faults on every AWS request of agent and processor, both SIGKILLed
    /// and restarted at random times, an S3 outage and a customer deleting its log group.
    Chaos(ChaosCommandArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let (options, json) = match &cli.command {
        Command::Run(args) => (default_options(args), args.json),
        Command::Chaos(args) => (chaos_options(args), args.run.json),
    };
    let options = match options {
        Ok(options) => options,
        Err(error) => {
            eprintln!("logrelay-demo: {error:#}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    if let Some(plan) = &options.chaos {
        eprintln!(
            "logrelay-demo chaos: seed {} (the same schedule again: --seed {}); run directory {}",
            plan.seed,
            plan.seed,
            options.work_dir.display()
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("logrelay-demo: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    runtime.block_on(async {
        let outcome = tokio::select! {
            outcome = logrelay_demo::run(&options) => Some(outcome),
            () = interrupted() => None,
        };
        match outcome {
            None => {
                eprintln!("\nlogrelay-demo: interrupted; every process it started was stopped");
                ExitCode::from(EXIT_ERROR)
            }
            Some(Err(error)) => {
                eprintln!("logrelay-demo: {error:#}");
                eprintln!(
                    "(component logs are in {})",
                    options.work_dir.join("logs").display()
                );
                ExitCode::from(EXIT_ERROR)
            }
            Some(Ok(summary)) => {
                if json {
                    match serde_json::to_string_pretty(&summary) {
                        Ok(json) => println!("{json}"),
                        Err(error) => eprintln!("logrelay-demo: cannot print JSON: {error}"),
                    }
                } else {
                    print!("{}", summary.to_text());
                }
                ExitCode::from(if summary.passed() {
                    EXIT_PASSED
                } else {
                    EXIT_FAILED
                })
            }
        }
    })
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
async fn interrupted() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
