//! `files` source: expands globs into one row per file, in sorted, deterministic order.
//!
//! ```toml
//! [sources.clips]
//! kind = "files"
//! paths = ["../data/emodb/wav/*.wav"]  # globs; relative to the pipeline file
//! labels = "none"
//! ```
//! `clip_id` is the path relative to the glob's base directory (the part before the
//! first wildcard), so it is stable across machines and runs. A path without
//! wildcards is taken as is, even if missing: the decoder quarantines it as `missing`.

use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde::Deserialize;

use super::clip::{ClipRow, clip_columns};
use crate::engine::{
    BatchStream, Component, ConfigContext, Frame, Operator, OperatorConfig, PlanInput, Problem,
    Role, TaskContext,
};
use crate::error::{Result, SermoError};
use crate::schema;

/// How labels are derived from file names.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum LabelScheme {
    /// No labels: `speaker` and `label` are null.
    #[default]
    None,
}

/// Config of the `files` source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// Files or glob patterns (`*`, `?`, `[..]`, `**`).
    pub paths: Vec<String>,
    /// Label scheme.
    #[serde(default)]
    pub labels: LabelScheme,
    /// Value of the `corpus` column (default: the source id).
    pub corpus: Option<String>,
    /// Files per emitted batch (default 16).
    #[serde(default = "default_batch_rows")]
    pub batch_rows: i64,
}

fn default_batch_rows() -> i64 {
    16
}

impl Component for FilesConfig {
    const KIND: &'static str = "files";
    const ROLE: Role = Role::Source;
    const SUMMARY: &'static str = "list audio files from globs, one row per file";
}

impl OperatorConfig for FilesConfig {
    fn check(&self, _ctx: &ConfigContext) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.paths.is_empty() {
            p.push(
                Problem::new("paths", "is empty")
                    .with_hint("give at least one file or glob, e.g. paths = [\"wav/*.wav\"]"),
            );
        }
        for pat in &self.paths {
            if pat.trim().is_empty() {
                p.push(Problem::new("paths", "contains an empty path"));
            } else if let Err(e) = glob::Pattern::new(pat) {
                p.push(Problem::new(
                    "paths",
                    format!("`{pat}` is not a valid glob: {e}"),
                ));
            }
        }
        if self.batch_rows < 1 {
            p.push(Problem::new(
                "batch_rows",
                format!("must be at least 1, got {}", self.batch_rows),
            ));
        }
        p
    }

    fn plan(&self, _inputs: &[PlanInput]) -> std::result::Result<SchemaRef, String> {
        Ok(schema::files_schema())
    }

    fn build(&self, _ctx: &ConfigContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(FilesSource { cfg: self.clone() }))
    }
}

struct FilesSource {
    cfg: FilesConfig,
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The directory a pattern's matches are relative to: its components before the
/// first one with a wildcard (the parent folder for a plain path).
pub fn glob_base(pattern: &Path) -> PathBuf {
    let mut base = PathBuf::new();
    let comps: Vec<_> = pattern.components().collect();
    let literal = !comps
        .iter()
        .any(|c| has_wildcard(&c.as_os_str().to_string_lossy()));
    let n = if literal {
        comps.len().saturating_sub(1)
    } else {
        comps.len()
    };
    for c in comps.into_iter().take(n) {
        if has_wildcard(&c.as_os_str().to_string_lossy()) {
            break;
        }
        base.push(c.as_os_str());
    }
    base
}

/// Expand `patterns` (resolved against `base_dir`) into (clip_id, path) pairs,
/// sorted by path, without duplicates.
pub fn expand(
    patterns: &[String],
    base_dir: &Path,
) -> std::result::Result<Vec<(String, PathBuf)>, String> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for pat in patterns {
        let full = crate::engine::operator::resolve_path(base_dir, pat);
        let base = glob_base(&full);
        let rel = |p: &Path| -> String {
            p.strip_prefix(&base)
                .unwrap_or(p)
                .to_string_lossy()
                .replace(std::path::MAIN_SEPARATOR, "/")
        };
        if !has_wildcard(pat) {
            out.push((rel(&full), full));
            continue;
        }
        let text = full.to_string_lossy().to_string();
        let entries = glob::glob(&text).map_err(|e| format!("`{pat}` is not a valid glob: {e}"))?;
        let mut n = 0usize;
        for entry in entries {
            match entry {
                Ok(p) if p.is_dir() => {}
                Ok(p) => {
                    n += 1;
                    out.push((rel(&p), p));
                }
                // An unreadable directory entry: keep the path so it is quarantined.
                Err(e) => {
                    let p = e.path().to_path_buf();
                    out.push((rel(&p), p));
                }
            }
        }
        if n == 0 {
            return Err(format!(
                "pattern `{pat}` matched no files (looked for `{text}`)"
            ));
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out.dedup_by(|a, b| a.1 == b.1);
    Ok(out)
}

impl Operator for FilesSource {
    fn execute(self: Box<Self>, _inputs: Vec<BatchStream>, ctx: TaskContext) -> BatchStream {
        let schema = schema::files_schema();
        let out_schema = schema.clone();
        let cfg = self.cfg;
        let stream = async_stream::stream! {
            let patterns = cfg.paths.clone();
            let base = ctx.base_dir.clone();
            let listed = ctx.pool.run(move || expand(&patterns, &base)).await;
            let files = match listed {
                Ok(Ok(f)) => f,
                Ok(Err(msg)) => {
                    yield Err(SermoError::stage(&ctx.node_id, None, msg));
                    return;
                }
                Err(panic) => {
                    yield Err(SermoError::stage(&ctx.node_id, None, format!("listing files {panic}")));
                    return;
                }
            };
            ctx.metrics.counter("files.total").add(files.len() as u64);
            let emitted = ctx.metrics.counter(&format!("source.{}.rows", ctx.node_id));
            let corpus = cfg.corpus.clone().unwrap_or_else(|| ctx.node_id.to_string());
            for chunk in files.chunks(cfg.batch_rows.max(1) as usize) {
                if ctx.cancel.is_cancelled() {
                    return;
                }
                let rows: Vec<ClipRow> = chunk
                    .iter()
                    .map(|(id, p)| ClipRow {
                        clip_id: id.clone(),
                        path: p.to_string_lossy().to_string(),
                        corpus: corpus.clone(),
                        speaker: None,
                        label: None,
                    })
                    .collect();
                let refs: Vec<&ClipRow> = rows.iter().collect();
                match RecordBatch::try_new(schema.clone(), clip_columns(&refs)) {
                    Ok(b) => {
                        emitted.add(b.num_rows() as u64);
                        yield Ok(Frame::Batch(b));
                    }
                    Err(e) => {
                        yield Err(SermoError::stage(&ctx.node_id, None, e.to_string()));
                        return;
                    }
                }
            }
        };
        BatchStream::new(out_schema, stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_base_stops_at_first_wildcard() {
        assert_eq!(
            glob_base(Path::new("/d/emodb/wav/*.wav")),
            PathBuf::from("/d/emodb/wav")
        );
        assert_eq!(
            glob_base(Path::new("/d/ravdess/Actor_*/*.flac")),
            PathBuf::from("/d/ravdess")
        );
        assert_eq!(glob_base(Path::new("/d/x/a.wav")), PathBuf::from("/d/x"));
    }

    #[test]
    fn expand_sorts_and_makes_relative_ids() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["b", "a"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
            std::fs::write(dir.path().join(d).join("x.wav"), b"x").unwrap();
        }
        let got = expand(&["*/x.wav".to_string(), "a/x.wav".to_string()], dir.path()).unwrap();
        let ids: Vec<&str> = got.iter().map(|(i, _)| i.as_str()).collect();
        assert_eq!(ids, vec!["a/x.wav", "b/x.wav"]);
        let err = expand(&["*.flac".to_string()], dir.path()).unwrap_err();
        assert!(err.contains("matched no files"), "{err}");
    }
}
