//! The one error type of sermo. Each variant has an operational meaning: what went
//! wrong and what the user can do about it.

use std::fmt;
use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = SermoError> = std::result::Result<T, E>;

/// A fatal error: it stops the run. Per-file failures never become a `SermoError`;
/// they travel downstream as quarantine records (see [`crate::engine::Quarantined`]).
#[derive(Debug, thiserror::Error)]
pub enum SermoError {
    /// The pipeline file is invalid; every problem found is listed.
    #[error("{}", ConfigErrors::render(.0))]
    Config(Vec<ConfigError>),

    /// A stage failed in a way that stops the run (not a per-file failure).
    /// `source` keeps the underlying error (Arrow, Parquet, a worker panic) when
    /// there is one, for callers that walk the chain.
    #[error("stage `{stage}`{}: {message}", .path.as_ref().map(|p| format!(" (file {})", p.display())).unwrap_or_default())]
    Stage {
        stage: String,
        path: Option<PathBuf>,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
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
            source: None,
        }
    }

    /// [`SermoError::stage`] caused by `source`: its text is the message, and the
    /// error itself is kept as the source.
    pub fn stage_source<E>(stage: &str, path: Option<PathBuf>, source: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        SermoError::Stage {
            stage: stage.to_string(),
            path,
            message: source.to_string(),
            source: Some(Box::new(source)),
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

/// One problem in a pipeline file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// Table path of the problem (`stages.audio`, `stages.audio.chunk_s`, `pipeline`).
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
            hint: None,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n    hint: {h}")?;
        }
        Ok(())
    }
}

/// Rendering of a list of [`ConfigError`]s.
pub struct ConfigErrors;

impl ConfigErrors {
    pub fn render(errors: &[ConfigError]) -> String {
        let mut s = format!(
            "invalid pipeline: {} problem{}",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" }
        );
        for e in errors {
            s.push_str("\n  - ");
            s.push_str(&e.to_string().replace('\n', "\n  "));
        }
        s
    }
}

/// `n` and the noun in the number it takes: `count(1, "file")` is "1 file",
/// `count(2, "file")` "2 files". For nouns whose plural is not noun + "s",
/// use [`count_as`].
pub fn count(n: impl Counted, noun: &str) -> String {
    let n = n.into_u64();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// [`count`] with the plural spelled out: `count_as(2, "class", "classes")`.
pub fn count_as(n: impl Counted, one: &str, many: &str) -> String {
    let n = n.into_u64();
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// A number of things, for [`count`].
pub trait Counted {
    /// The number as a `u64`.
    fn into_u64(self) -> u64;
}

impl Counted for u64 {
    fn into_u64(self) -> u64 {
        self
    }
}

impl Counted for u32 {
    fn into_u64(self) -> u64 {
        u64::from(self)
    }
}

impl Counted for usize {
    fn into_u64(self) -> u64 {
        self as u64
    }
}

#[cfg(test)]
mod count_tests {
    use super::{count, count_as};

    #[test]
    fn counts_take_the_number_of_their_noun() {
        assert_eq!(count(0usize, "file"), "0 files");
        assert_eq!(count(1u64, "file"), "1 file");
        assert_eq!(count(2u32, "row"), "2 rows");
        assert_eq!(count_as(1u64, "class", "classes"), "1 class");
        assert_eq!(count_as(3u64, "class", "classes"), "3 classes");
    }
}
