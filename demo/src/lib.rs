//! The local end-to-end pipeline behind `make demo`, as a library so the end-to-end tests drive
//! the same code (`docs/demo.md`).
//!
//! A run: [`emulator`] starts moto → [`provision`] deploys `cloudformation/` and onboards the
//! tenants → [`pipeline`] starts the fake node, the fake Kubernetes API, the agent and the
//! processor (each AWS client behind an [`aws_proxy`]) → [`drain`] waits for them to empty →
//! [`verify`] and [`inspect`] check every destination → [`summary`]. [`run`] ties the steps
//! together; [`child`] makes sure no process it started outlives it. [`chaos`] adds faults, kills,
//! an S3 outage and a log group deletion to a run (`logrelay-demo chaos`).

pub mod accounts;
pub mod aws_proxy;
pub mod chaos;
pub mod child;
pub mod cost;
pub mod drain;
pub mod emulator;
pub mod http;
pub mod inspect;
pub mod lambda_feeder;
pub mod metrics;
pub mod options;
pub mod paths;
pub mod pipeline;
pub mod progress;
pub mod provision;
pub mod quarantine;
pub mod run;
pub mod summary;
pub mod verify;

pub use chaos::{ChaosPlan, FaultClass};
pub use options::{DemoOptions, ProcessorMode, RunArgs, TenantPlan, plan_tenants};
pub use run::run;
pub use summary::Summary;
