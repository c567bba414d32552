//! `logrelay-agent`: parses flags, installs logging and metrics, turns SIGTERM/SIGINT into a
//! graceful shutdown and runs [`logrelay_agent::app`].
//!
//! Exit codes: 0 = everything read was stored and checkpointed; 1 = could not start or failed
//! (bad config, unusable data dir, refused credentials, internal error); 3 = shut down with
//! uploads unfinished at the end of the grace period or the final checkpoint unsaved (those lines
//! are read again on the next start: duplicates, never loss).

use clap::{CommandFactory, Parser};
use logrelay_agent::app::{self, RunHooks};
use logrelay_agent::config::AgentConfig;
use logrelay_agent::config::{DEPRECATED, HTTP_PATHS};
use logrelay_agent::metadata::config::IN_CLUSTER_ENV;
use logrelay_agent::{internal_events, server};
use logrelay_common::check_config::{self, Report};
use std::process::ExitCode;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Exit code of a shutdown that left uploads or checkpoints unfinished.
const EXIT_INCOMPLETE_SHUTDOWN: u8 = 3;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if check_config::requested(&args) {
        return check(&args);
    }
    let flags = AgentConfig::parse();
    logrelay_common::logging::init(flags.log_format);
    let config = match flags.validate() {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(field = error.field, "{error}");
            eprintln!("logrelay-agent: {error}");
            return ExitCode::FAILURE;
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
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        if let Err(error) = listen_for_signals(shutdown.clone()) {
            tracing::error!(%error, "cannot install signal handlers");
            return ExitCode::FAILURE;
        }
        let stdin = tokio::io::BufReader::new(tokio::io::stdin());
        match app::run(config, metrics, shutdown, stdin, RunHooks::default()).await {
            Ok(outcome) if outcome.is_clean() => ExitCode::SUCCESS,
            Ok(_) => ExitCode::from(EXIT_INCOMPLETE_SHUTDOWN),
            Err(error) => {
                tracing::error!(%error, "logrelay-agent failed");
                ExitCode::FAILURE
            }
        }
    });
    // Do not wait for blocking tasks: a read of an open stdin pipe never returns.
    runtime.shutdown_background();
    code
}

/// Variables read outside the flags: whether the agent runs in a pod, and how kube-rs finds the
/// API (`KUBERNETES_SERVICE_PORT`, `KUBECONFIG`).
const OTHER_ENV: &[&str] = &[IN_CLUSTER_ENV, "KUBERNETES_SERVICE_PORT", "KUBECONFIG"];

/// `--check-config`: parses and validates flags and environment as a start would, prints the
/// JSON report and exits 0 (valid) or 1; starts nothing.
fn check(args: &[String]) -> ExitCode {
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
    report.print();
    if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
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
