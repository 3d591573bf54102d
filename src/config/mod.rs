//! Pipeline files: loading, `--set` overrides, and compilation into a runnable
//! [`Plan`]. Compilation collects *every* problem before anything runs.
//! The format is documented in `docs/pipelines.md`.

mod compile;
pub mod keys;
mod overrides;

use std::path::{Path, PathBuf};

pub use compile::compile;
pub use overrides::apply_override;

use crate::engine::Plan;
use crate::error::SermoError;
pub use crate::error::{ConfigError, ConfigErrors};
use crate::registry::Registry;

/// A pipeline file read from disk, with overrides applied, not yet compiled.
pub struct PipelineFile {
    pub table: toml::Table,
    /// Folder of the file: relative paths in it resolve from here.
    pub base_dir: PathBuf,
    /// The file's text after overrides (hashed into outputs by later stages).
    pub source_text: String,
}

impl PipelineFile {
    /// Read `path` and apply `--set KEY=VALUE` overrides.
    pub fn load(path: &Path, overrides: &[String]) -> Result<PipelineFile, SermoError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SermoError::Config(vec![ConfigError::new(
                path.display().to_string(),
                format!("cannot read pipeline file: {e}"),
            )])
        })?;
        let base_dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."));
        let base_dir = std::path::absolute(base_dir).unwrap_or_else(|_| base_dir.to_path_buf());
        Self::parse(&text, &base_dir, overrides)
    }

    /// Parse pipeline text; relative paths resolve from `base_dir`.
    pub fn parse(
        text: &str,
        base_dir: &Path,
        overrides: &[String],
    ) -> Result<PipelineFile, SermoError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| {
            let loc = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].lines().count().max(1);
                    format!("line {line}")
                })
                .unwrap_or_else(|| "pipeline".to_string());
            SermoError::Config(vec![ConfigError::new(
                loc,
                format!("not valid TOML: {}", e.message()),
            )])
        })?;
        let mut errors = Vec::new();
        for kv in overrides {
            if let Err(e) = apply_override(&mut table, kv) {
                errors.push(e);
            }
        }
        if !errors.is_empty() {
            return Err(SermoError::Config(errors));
        }
        let source_text = toml::to_string(&table).unwrap_or_default();
        Ok(PipelineFile {
            table,
            base_dir: base_dir.to_path_buf(),
            source_text,
        })
    }

    /// Validate and plan with the given registry.
    pub fn compile(&self, registry: &Registry) -> Result<Plan, SermoError> {
        compile(&self.table, &self.base_dir, registry).map_err(SermoError::Config)
    }
}

/// Load and compile a pipeline file with the built-in components.
pub fn load_plan(path: &Path, overrides: &[String]) -> Result<Plan, SermoError> {
    PipelineFile::load(path, overrides)?.compile(&Registry::builtin())
}
