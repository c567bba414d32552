//! Intakes: how notifications reach the processor core. Each turns what it receives into
//! [`ObjectRef`](crate::object::ObjectRef)s and drives any [`ObjectHandler`](crate::object::ObjectHandler):
//!
//! - [`event`]: message bodies → objects (SNS envelope, S3 event, EventBridge, `s3://` lines);
//! - [`message`]: one message through the handler, and what then becomes of the message;
//! - [`lambda`]: the Lambda entry point (SQS event source, partial batch failures);
//! - [`deadline`]: when a Lambda invocation stops starting records;
//! - [`sqs`]: a long-polling SQS consumer with visibility heartbeats and graceful shutdown;
//! - [`manual`]: bodies or `s3://` lines from stdin;
//! - [`replay`]: a tenant's objects listed from the bucket, delivered again;
//! - [`settle`]: what becomes of a queue message once handled (acknowledged, retried, dead-lettered);
//! - [`dead_letter`]: forwarding permanently failed messages to the DLQ;
//! - [`signal`]: SIGTERM/SIGINT as a future.

pub mod dead_letter;
pub mod deadline;
pub mod event;
pub mod lambda;
pub mod manual;
pub mod message;
pub mod replay;
pub mod settle;
pub mod signal;
pub mod sqs;
