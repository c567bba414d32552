//! `logrelay-agent`: parses flags, installs logging and metrics, turns SIGTERM/SIGINT into a
//! graceful shutdown and runs [`logrelay_agent::app`].
//!
//! Exit codes (`logrelay_common::exit`, the same meanings in every binary): 0 = everything read was
//! stored and checkpointed; 1 = shut down with uploads unfinished at the end of the grace period
//! or the final checkpoint unsaved (those lines are read again on the next start: duplicates,
//! never loss); 2 = invalid configuration; 3 = could not start or failed (unusable data dir,
//! refused credentials, internal error).

use clap::Parser;
use logrelay_agent::app::{self, RunHooks};
use logrelay_agent::config::{AgentConfig, check_config_report};
use logrelay_agent::{internal_events, server};
use logrelay_common::check_config;
use std::process::ExitCode;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use logrelay_common::exit::{EXIT_CONFIG, EXIT_FAILURES, EXIT_OK, EXIT_RUNTIME};

fn main() -> ExitCode {
    let heap_tuned = logrelay_agent::allocator::tune();
    let args: Vec<String> = std::env::args().collect();
    if check_config::requested(&args) {
        let report = check_config_report(&args);
        report.print();
        return ExitCode::from(if report.is_ok() { EXIT_OK } else { EXIT_CONFIG });
    }
    let flags = AgentConfig::parse();
    logrelay_common::logging::init(flags.log_format);
    tracing::debug!(
        tuned = heap_tuned,
        "glibc malloc: 2 arenas, 128 KiB mmap threshold unless MALLOC_* or GLIBC_TUNABLES is set"
    );
    let config = match flags.validate() {
        Ok(config) => config,
        Err(error) => {
            // Once, in the chosen log format (a second plain line would break JSON logs).
            tracing::error!(field = error.field, "{error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let metrics = server::install_metrics();
    internal_events::describe_metrics();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let code = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        if let Err(error) = listen_for_signals(shutdown.clone()) {
            tracing::error!(%error, "cannot install signal handlers");
            return ExitCode::from(EXIT_RUNTIME);
        }
        let stdin = tokio::io::BufReader::new(tokio::io::stdin());
        match app::run(config, metrics, shutdown, stdin, RunHooks::default()).await {
            Ok(outcome) if outcome.is_clean() => ExitCode::from(EXIT_OK),
            Ok(_) => ExitCode::from(EXIT_FAILURES),
            Err(error) => {
                tracing::error!(%error, "logrelay-agent failed");
                ExitCode::from(EXIT_RUNTIME)
            }
        }
    });
    // Do not wait for blocking tasks: a read of an open stdin pipe never returns.
    runtime.shutdown_background();
    code
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT.
fn listen_for_signals(shutdown: CancellationToken) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(
            signal = name,
            "shutting down: flushing batches and finishing uploads"
        );
        shutdown.cancel();
    });
    Ok(())
}
