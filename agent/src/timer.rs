//! Timers shared by the agent's select loops.

use tokio::time::Instant;

/// Sleeps until `deadline`, or forever without one (the `select!` branch is disabled then).
pub async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
