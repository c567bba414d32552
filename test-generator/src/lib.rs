//! Realistic fake container logs for logrelay, and the check that they all arrived.
//!
//! Three generators/readers share one vocabulary: every generated line carries a sequence token
//! ([`seq`]), every generator keeps a [`ledger`] of the lines it wrote, and [`verify`] compares
//! what a destination received with that ledger.
//!
//! - [`ndjson`]: records in the common schema to stdout.
//! - [`pods`]: a kubelet-like `/var/log/pods` tree ([`cluster`]) in [`cri`] or [`docker`] format,
//!   with kubelet [`rotation`] and Kubernetes objects ([`kube_objects`]); its [`containerd`] writer
//!   writes like containerd's CRI logger and [`seal`]s every line.
//! - [`verify`]: reads a directory, S3 prefix or CloudWatch group and reports missing,
//!   duplicated, corrupted and misrouted lines.
//! - [`kill_loop`]: the real agent SIGKILLed over and over while `pods` writes like containerd,
//!   judged against the agent's integrity targets.

pub mod cluster;
pub mod containerd;
pub mod content;
pub mod cri;
pub mod docker;
pub mod exit;
pub mod kill_loop;
pub mod kube_objects;
pub mod ledger;
pub mod ndjson;
pub mod pods;
pub mod rotation;
pub mod seal;
pub mod seq;
pub mod shutdown;
pub mod stats;
pub mod verify;

/// Reads a time flag as seconds, in the shared duration syntax (`5`, `1.5s`, `500ms`, `2m`, `1h`).
pub fn seconds(value: &str) -> Result<f64, String> {
    logrelay_common::units::parse_duration(value).map(|duration| duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_flags_take_bare_seconds_and_units() {
        assert_eq!(seconds("5"), Ok(5.0));
        assert_eq!(seconds("5s"), Ok(5.0));
        assert_eq!(seconds("0.5"), Ok(0.5));
        assert_eq!(seconds("250ms"), Ok(0.25));
        assert_eq!(seconds("2m"), Ok(120.0));
        assert!(seconds("soon").is_err());
    }
}
