//! Real parts for logrelay's tests: the AWS emulator (a moto server per test binary), helpers that
//! create and inspect resources in it, a fault-injecting HTTP proxy, fakes of the Kubernetes API
//! (enforcing the RBAC the manifests grant) and the Lambda Runtime API. Used only by tests; see
//! `docs/testing.md`.

pub mod fake_kube;
pub mod fake_logs;
pub mod fault_proxy;
pub mod http_proxy;
pub mod lambda_runtime_api;
pub mod moto;
pub mod rbac;
pub mod resources;
pub mod strategies;

pub use fault_proxy::{FaultKind, FaultMatch, FaultPlan, FaultProxy};
pub use moto::{DEFAULT_ACCOUNT_ID, Moto};
pub use resources::*;
