//! The exit code of each error, in the vocabulary every logrelay binary shares
//! ([`logrelay_common::exit`]): 2 for an unusable flag, 3 when the run cannot go on.

pub use logrelay_common::exit::{EXIT_CONFIG, EXIT_FAILURES, EXIT_OK, EXIT_RUNTIME};

/// An error that knows which exit code it stands for.
pub trait HasExitCode {
    /// [`EXIT_CONFIG`] for an unusable flag, [`EXIT_RUNTIME`] for anything else that stops a run.
    fn exit_code(&self) -> u8;
}

impl HasExitCode for crate::verify::VerifyError {
    fn exit_code(&self) -> u8 {
        match self {
            Self::NoSource => EXIT_CONFIG,
            Self::Ledger(_) | Self::TooManyLines(_) | Self::Io { .. } | Self::Aws(_) => {
                EXIT_RUNTIME
            }
        }
    }
}

impl HasExitCode for crate::ndjson::NdjsonError {
    fn exit_code(&self) -> u8 {
        match self {
            Self::InvalidArg { .. } => EXIT_CONFIG,
            Self::Output(_) | Self::Ledger(_) => EXIT_RUNTIME,
        }
    }
}

impl HasExitCode for crate::pods::PodsError {
    fn exit_code(&self) -> u8 {
        match self {
            Self::InvalidArg { .. } => EXIT_CONFIG,
            Self::Io(_) | Self::Ledger(_) => EXIT_RUNTIME,
        }
    }
}

impl HasExitCode for crate::kill_loop::KillLoopError {
    fn exit_code(&self) -> u8 {
        match self {
            Self::InvalidArg { .. } => EXIT_CONFIG,
            Self::Pods(error) => error.exit_code(),
            Self::Verify(error) => error.exit_code(),
            Self::Agent(_) | Self::Io { .. } | Self::Join(_) => EXIT_RUNTIME,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::VerifyError;

    #[test]
    fn an_unusable_flag_is_invalid_configuration_and_an_unreadable_input_cannot_run() {
        assert_eq!(VerifyError::NoSource.exit_code(), EXIT_CONFIG);
        let missing = VerifyError::Io {
            path: "/nowhere".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(missing.exit_code(), EXIT_RUNTIME);
        let flag = crate::kill_loop::KillLoopError::InvalidArg {
            flag: "kills",
            reason: "0".into(),
        };
        assert_eq!(flag.exit_code(), EXIT_CONFIG);
        let nested = crate::kill_loop::KillLoopError::Verify(VerifyError::NoSource);
        assert_eq!(nested.exit_code(), EXIT_CONFIG);
    }
}
