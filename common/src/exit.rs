//! The exit codes every logrelay binary uses, with one meaning each (each binary's page lists
//! what falls under them for it).

/// Everything succeeded.
pub const EXIT_OK: u8 = 0;
/// The run ended, but some of its work did not succeed: objects or messages failed (processor
/// `manual`, `replay`), a `tenants` change was refused or a `doctor` step failed, or the agent
/// shut down with uploads or checkpoints unfinished (those lines are read again next start).
pub const EXIT_FAILURES: u8 = 1;
/// Invalid flags or configuration; the message names the setting (clap uses 2 for usage errors too).
pub const EXIT_CONFIG: u8 = 2;
/// A fatal runtime error: something the run needs is unreachable or refused (queue, table,
/// data directory, credentials, metrics port), or an internal error.
pub const EXIT_RUNTIME: u8 = 3;
