//! SIGTERM (Kubernetes, ECS, Lambda shutdown) and SIGINT (Ctrl-C) as one future, for graceful
//! shutdown of the long-running intakes.

/// Completes when the process receives SIGTERM or SIGINT. If a handler cannot be installed, that
/// signal is not waited for (the other still is) and the failure is logged.
pub async fn termination() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
        () = interrupt => tracing::info!("SIGINT received; shutting down"),
    }
}
