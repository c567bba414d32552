//! The sink: stores sealed batches as objects, in S3 or a local directory, and says when each is
//! stored (which is what advances checkpoints).
//!
//! Split like Vector's sinks: [`config`] (target and settings) → [`request_builder`] (batch →
//! request) → [`service`] (one attempt: [`s3`] or [`directory`]) → [`retry`] (classes, backoff) →
//! [`uploader`] (retry until stored, health).

pub mod config;
pub mod directory;
pub mod request_builder;
pub mod retry;
pub mod s3;
pub mod service;
pub mod uploader;

pub use config::{S3Settings, SinkTarget};
pub use retry::PutError;
pub use service::ObjectService;
pub use uploader::{SinkHealth, Uploader};
