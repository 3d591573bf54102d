//! `files` source: expands globs into one row per file, in sorted, deterministic order.
//!
//! ```toml
//! [sources.clips]
//! kind = "files"
//! paths = ["../data/emodb/wav/*.wav"]  # globs; relative to the pipeline file
//! labels = "emodb"    # none | ravdess | emodb | tess | cremad | savee | iemocap
//!                     # | { regex = '...', map = {..} } | { csv = "labels.csv", ... }
//! merge = { happy = ["happy", "excited"] }     # optional
//! keep = ["angry", "happy", "neutral", "sad"]  # optional: others are dropped
//! ```
//! Label schemes live in [`crate::labels`]. A file a scheme cannot parse is
//! quarantined as `unlabeled`; files removed by `keep` are counted, not quarantined.
//! `clip_id` is the path relative to the glob's base directory (the part before the
//! first wildcard), so it is stable across machines and runs. A path without
//! wildcards is taken as is, even if missing: the decoder quarantines it as `missing`.
//!
//! With `--shard I/N` only the clips whose stable hash of `clip_id` mod N is I are
//! emitted; clips every resuming sink already holds are skipped. Each row is
//! followed by a `Done` frame for its clip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde::Deserialize;

use crate::audio::Reason;
use crate::engine::{
    BatchStream, Component, ConfigContext, Frame, Operator, OperatorConfig, PlanInput, Problem,
    Role, TaskContext,
};
use crate::error::{Result, SermoError};
use crate::labels::{LabelFilter, LabelSpec, Labeler};
use crate::rows::{ClipRow, clip_columns};
use crate::schema;

/// Config of the `files` source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// Files or glob patterns (`*`, `?`, `[..]`, `**`).
    pub paths: Vec<String>,
    /// Label scheme: a built-in corpus name, `{ regex = ... }` or `{ csv = ... }`.
    #[serde(default)]
    pub labels: LabelSpec,
    /// Merge labels: `merge = { happy = ["happy", "excited"] }`.
    #[serde(default)]
    pub merge: BTreeMap<String, Vec<String>>,
    /// Keep only these labels; other files are dropped (counted, not quarantined).
    pub keep: Option<Vec<String>>,
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
    fn check(&self, ctx: &ConfigContext) -> Vec<Problem> {
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
        if let Err(e) = Labeler::new(&self.labels, ctx.base_dir) {
            p.push(Problem::new("labels", e));
        }
        if let Err(e) = LabelFilter::new(&self.merge, self.keep.as_deref()) {
            p.push(Problem::new("merge", e));
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

/// The files of a source after labelling.
#[derive(Default)]
struct Listing {
    rows: Vec<ClipRow>,
    /// (clip_id, path, why) of files the label scheme could not parse.
    unlabeled: Vec<(String, String, String)>,
    /// Files removed by `keep`.
    dropped: u64,
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
            let spec = cfg.labels.clone();
            let merge = cfg.merge.clone();
            let keep = cfg.keep.clone();
            let corpus_default = cfg.corpus.clone();
            let node = ctx.node_id.to_string();
            let listed = ctx
                .pool
                .run(move || -> std::result::Result<Listing, String> {
                    let files = expand(&patterns, &base)?;
                    let labeler = Labeler::new(&spec, &base)?;
                    let filter = LabelFilter::new(&merge, keep.as_deref())?;
                    let mut out = Listing::default();
                    for (rel, path) in files {
                        let path_s = path.to_string_lossy().to_string();
                        match labeler.label(&rel, &path) {
                            Err(msg) => out.unlabeled.push((rel, path_s, msg)),
                            Ok(l) => match filter.apply(l.label.as_deref()) {
                                None => out.dropped += 1,
                                Some(label) => out.rows.push(ClipRow {
                                    clip_id: rel,
                                    path: path_s,
                                    corpus: corpus_default
                                        .clone()
                                        .or(l.corpus)
                                        .unwrap_or_else(|| node.clone()),
                                    speaker: l.speaker,
                                    label,
                                }),
                            },
                        }
                    }
                    Ok(out)
                })
                .await;
            let listing = match listed {
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
            // This run's slice (`--shard`) minus what the sinks already hold (resume).
            let wanted = |id: &str| {
                ctx.shard.is_none_or(|s| s.owns(id))
                    && !ctx.skip.as_ref().is_some_and(|k| k.contains(id))
            };
            let in_shard = |id: &str| ctx.shard.is_none_or(|s| s.owns(id));
            let (mut outside, mut skipped) = (0u64, 0u64);
            let mut count = |id: &str| {
                if !in_shard(id) {
                    outside += 1;
                } else {
                    skipped += 1;
                }
            };
            let mut rows = Vec::with_capacity(listing.rows.len());
            for r in listing.rows {
                if wanted(&r.clip_id) { rows.push(r) } else { count(&r.clip_id) }
            }
            let mut unlabeled = Vec::new();
            for u in listing.unlabeled {
                if wanted(&u.0) { unlabeled.push(u) } else { count(&u.0) }
            }
            ctx.metrics.counter("files.total").add((rows.len() + unlabeled.len()) as u64);
            ctx.metrics.counter("files.other_shards").add(outside);
            ctx.metrics.counter("files.resumed").add(skipped);
            ctx.metrics.counter("labels.dropped").add(listing.dropped);
            for (rel, path, msg) in &unlabeled {
                yield Ok(ctx.quarantine(path, rel, Reason::Unlabeled.as_str(), msg.clone()));
                yield Ok(Frame::Done(Arc::from(rel.as_str())));
            }
            let emitted = ctx.metrics.counter(&format!("source.{}.rows", ctx.node_id));
            for chunk in rows.chunks(cfg.batch_rows.max(1) as usize) {
                if ctx.cancel.is_cancelled() {
                    return;
                }
                let refs: Vec<&ClipRow> = chunk.iter().collect();
                match RecordBatch::try_new(schema.clone(), clip_columns(&refs)) {
                    Ok(b) => {
                        emitted.add(b.num_rows() as u64);
                        yield Ok(Frame::Batch(b));
                    }
                    Err(e) => {
                        yield Err(SermoError::stage_source(&ctx.node_id, None, e));
                        return;
                    }
                }
                // Each row is a complete unit of the files table.
                for r in chunk {
                    yield Ok(Frame::Done(Arc::from(r.clip_id.as_str())));
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
