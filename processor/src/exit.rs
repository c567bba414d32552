//! Every exit code of `logrelay-processor`, for the intakes and the `tenants` commands alike
//! (`docs/processor.md` lists them for operators).

/// Everything succeeded.
pub const EXIT_OK: u8 = 0;
/// At least one object or message failed (manual, replay), or a `tenants` change was refused or a
/// `doctor` step failed.
pub const EXIT_FAILURES: u8 = 1;
/// Invalid flags or configuration (clap uses 2 for usage errors too).
pub const EXIT_CONFIG: u8 = 2;
/// A fatal runtime error (queue unreachable, metrics port taken, Lambda runtime failed, listing
/// failed, AWS failed under a `tenants` command).
pub const EXIT_RUNTIME: u8 = 3;
