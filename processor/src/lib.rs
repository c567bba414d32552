//! The logrelay central processor: takes S3 object notifications, looks up the tenant, assumes the
//! tenant's role and delivers the object's records to the tenant's CloudWatch Logs and S3.
//!
//! The data path reads top to bottom: [`intake`] (Lambda, SQS, manual, replay → [`object::ObjectRef`])
//! → [`process`] (one attempt per object: claim → targets → read/dispatch → settle) → [`tenant`]
//! (configs from DynamoDB) → [`credentials`] (central role → tenant role) → [`deliver`]
//! (CloudWatch Logs, S3 copy), with [`progress`] making redelivery resume instead of re-send. The
//! core ([`process::Processor`], an [`object::ObjectHandler`]) knows nothing of how it was invoked.
//! [`admin`] is the operator CLI (`logrelay-processor tenants …`), [`quarantine`] assigns lines
//! the agent could not attribute; [`exit`] holds every exit code.

pub mod admin;
pub mod config;
pub mod credentials;
pub mod deliver;
pub mod error;
pub mod exit;
pub mod intake;
pub mod object;
pub mod process;
pub mod progress;
pub mod quarantine;
pub mod record;
pub mod report;
pub mod retry;
pub mod telemetry;
pub mod tenant;
