//! The logrelay node agent: tails container log files, turns each line into a record, batches
//! records per partition and ships them as gzip NDJSON objects, checkpointing only what the sink
//! acknowledged.
//!
//! The data path reads top to bottom: [`tail`] (discover and read files) → [`parse`] (CRI / docker,
//! partial lines) → [`source_event`] (the hand-over) → [`batch`] (per-partition gzip batches) →
//! [`sink`] (S3 or a local directory) → [`checkpoint`] (acknowledged offsets). [`stdin`] is the other
//! source; [`server`] serves metrics and health probes.

pub mod allocator;
pub mod app;
pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod delivery;
pub mod fnv;
pub mod internal_events;
pub mod metadata;
pub mod parse;
pub mod server;
pub mod sink;
pub mod source_event;
pub mod stdin;
pub mod tail;
pub mod timer;
