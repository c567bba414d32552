//! Every exit code of `logrelay-processor`, for the intakes and the `tenants` commands alike
//! (`docs/processor.md` lists them for operators).

pub use logrelay_common::exit::{EXIT_CONFIG, EXIT_FAILURES, EXIT_OK, EXIT_RUNTIME};
