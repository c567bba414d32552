//! The error of a configuration value that cannot be used, shared by the agent's settings and the
//! metadata stage's settings.

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {message}")]
pub struct ConfigError {
    /// The flag and environment variable at fault, e.g. `--batch-max-bytes (LOGRELAY_BATCH_MAX_BYTES)`.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

/// A [`ConfigError`] of `field`.
pub fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        message: message.into(),
    }
}
