//! The one error type of sermo. Each variant has an operational meaning: what went
//! wrong and what the user can do about it.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = SermoError> = std::result::Result<T, E>;

/// A fatal error: it stops the run. Per-file failures never become a `SermoError`;
/// they travel downstream as quarantine records (see [`crate::engine::Quarantined`]).
#[derive(Debug, thiserror::Error)]
pub enum SermoError {
    /// The pipeline file is invalid; every problem found is listed.
    #[error("{}", crate::config::ConfigErrors::render(.0))]
    Config(Vec<crate::config::ConfigError>),

    /// A stage failed in a way that stops the run (not a per-file failure).
    #[error("stage `{stage}`{}: {message}", .path.as_ref().map(|p| format!(" (file {})", p.display())).unwrap_or_default())]
    Stage {
        stage: String,
        path: Option<PathBuf>,
        message: String,
    },

    /// Reading or writing a path failed.
    #[error("stage `{stage}`: {op} {}: {source}", .path.display())]
    Io {
        stage: String,
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An upstream stage failed; the root cause is reported by the engine once.
    #[error("upstream stage `{0}` failed")]
    Upstream(String),

    /// The run was interrupted (SIGINT/SIGTERM); completed output files stay, nothing
    /// half-written remains.
    #[error("interrupted")]
    Cancelled,

    /// An internal invariant broke; a bug in sermo.
    #[error("internal error: {0}")]
    Internal(String),
}

impl SermoError {
    pub fn stage(stage: &str, path: Option<PathBuf>, message: impl Into<String>) -> Self {
        SermoError::Stage {
            stage: stage.to_string(),
            path,
            message: message.into(),
        }
    }

    pub fn io(
        stage: &str,
        op: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        SermoError::Io {
            stage: stage.to_string(),
            op,
            path: path.into(),
            source,
        }
    }
}
