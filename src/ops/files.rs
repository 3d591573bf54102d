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
//! A path that names no regular file (a FIFO, socket, device, or a directory given
//! by name or matched by a pattern like `*.wav`) is quarantined here as
//! `not_a_file` from its type, never opened. `**` follows links to folders but
//! walks each real folder once, and every real file is listed once.
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
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
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
        // A glob that matches nothing is known before anything runs: say where
        // it looked (the listing is the run's own, bounded and link-loop safe).
        if p.is_empty()
            && let Err(e) = expand(&self.paths, ctx.base_dir)
        {
            let looked = self
                .paths
                .iter()
                .map(|pat| {
                    let full = crate::engine::operator::resolve_path(ctx.base_dir, pat);
                    path_text(&glob_base(&full))
                })
                .collect::<Vec<_>>()
                .join(", ");
            p.push(Problem::new("paths", e).with_hint(format!(
                "looked in {looked}; relative paths start at the pipeline file's folder"
            )));
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
    /// (clip_id, path, reason, why) of paths quarantined here: no regular file
    /// (`not_a_file`, never opened), or a name the label scheme could not parse.
    quarantined: Vec<(String, String, Reason, String)>,
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

/// One listed path: its `clip_id`, the path, and why it cannot be read when that
/// is known from its file type alone (a directory, FIFO, socket or device).
#[derive(Debug, Clone)]
pub struct Listed {
    pub clip_id: String,
    pub path: PathBuf,
    pub problem: Option<(Reason, String)>,
}

/// Whether a glob component consists of wildcards only (`*`, `**`, `?*`): a
/// directory it matches is a folder to walk, not a misnamed input.
fn only_wildcards(component: &str) -> bool {
    !component.is_empty() && component.chars().all(|c| matches!(c, '*' | '?'))
}

fn io_problem(e: &std::io::Error, what: &Path) -> (Reason, String) {
    let reason = match e.kind() {
        std::io::ErrorKind::PermissionDenied => Reason::Permission,
        std::io::ErrorKind::NotFound => Reason::Missing,
        _ => Reason::Io,
    };
    (reason, format!("cannot list {}: {e}", what.display()))
}

/// A path as text, losslessly: valid UTF-8 as it is, any other byte as `\xNN`.
pub fn path_text(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    if let Some(s) = p.to_str() {
        return s.to_string();
    }
    let mut out = String::new();
    for chunk in p.as_os_str().as_bytes().utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// Every path under `base` that `pattern` matches, descending at most `depth`
/// folders (`None`: a pattern with a `**` component, any depth). Symbolic links
/// to directories are followed, but each real directory is listed once ((device,
/// inode) pairs), so a link loop ends; real folders are walked before linked
/// ones, so a file reached both ways keeps its real path. A name that is not
/// valid UTF-8 (which a glob cannot see) is matched in its lossy form and listed
/// with a `not_utf8` problem, so that it is accounted for, never dropped.
fn walk(
    base: &Path,
    pattern: &glob::Pattern,
    depth: Option<usize>,
) -> Vec<(PathBuf, Option<(Reason, String)>)> {
    use std::collections::{HashSet, VecDeque};
    use std::os::unix::fs::MetadataExt;
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let mut out = Vec::new();
    let mut visited: HashSet<(u64, u64)> = HashSet::new();
    let mut real: VecDeque<(PathBuf, usize)> = VecDeque::from([(base.to_path_buf(), 0)]);
    let mut linked: VecDeque<(PathBuf, usize)> = VecDeque::new();
    while let Some((dir, level)) = real.pop_front().or_else(|| linked.pop_front()) {
        let Ok(meta) = std::fs::metadata(&dir) else {
            continue;
        };
        if !visited.insert((meta.dev(), meta.ino())) {
            continue;
        }
        let mut entries: Vec<_> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd.filter_map(|e| e.ok()).collect(),
            Err(e) => {
                if dir != base {
                    out.push((dir.clone(), Some(io_problem(&e, &dir))));
                }
                continue;
            }
        };
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let is_link = e.file_type().is_ok_and(|t| t.is_symlink());
            let descend = depth.is_none_or(|d| level + 1 < d);
            if descend && std::fs::metadata(&p).is_ok_and(|m| m.is_dir()) {
                if is_link {
                    linked.push_back((p.clone(), level + 1));
                } else {
                    real.push_back((p.clone(), level + 1));
                }
            }
            if p.to_str().is_none() {
                if pattern.matches_with(&p.to_string_lossy(), opts) {
                    let why = format!(
                        "the path is not valid UTF-8 ({}): rename it (e.g. with convmv) to read it",
                        path_text(&p)
                    );
                    out.push((p, Some((Reason::NotUtf8, why))));
                }
            } else if pattern.matches_path_with(&p, opts) {
                out.push((p, None));
            }
        }
    }
    out
}

/// A path found by [`expand`]: clip_id, path, problem, and the (device, inode) of
/// a regular file.
type Found = (
    String,
    PathBuf,
    Option<(Reason, String)>,
    Option<(u64, u64)>,
);

/// Expand `patterns` (resolved against `base_dir`) into the listed paths, sorted
/// by path. Each regular file is listed once, however many patterns, links or
/// link loops reach it (by device and inode; the path without a link, then the
/// shortest, is kept). Paths that are no regular file (directories matched by a
/// pattern whose last part is not only wildcards, FIFOs, sockets, devices) are
/// listed with a `not_a_file` problem — found from their type, never opened.
pub fn expand(patterns: &[String], base_dir: &Path) -> std::result::Result<Vec<Listed>, String> {
    use std::collections::HashMap;
    use std::os::unix::fs::MetadataExt;
    let mut found: Vec<Found> = Vec::new();
    for pat in patterns {
        let full = crate::engine::operator::resolve_path(base_dir, pat);
        let base = glob_base(&full);
        let rel = |p: &Path| -> String {
            path_text(p.strip_prefix(&base).unwrap_or(p)).replace(std::path::MAIN_SEPARATOR, "/")
        };
        let text = full.to_string_lossy().to_string();
        let candidates: Vec<(PathBuf, Option<(Reason, String)>)> = if !has_wildcard(pat) {
            vec![(full.clone(), None)]
        } else {
            let pattern = glob::Pattern::new(&text)
                .map_err(|e| format!("`{pat}` is not a valid glob: {e}"))?;
            let depth = if full.components().any(|c| c.as_os_str() == "**") {
                None
            } else {
                Some(full.components().count() - base.components().count())
            };
            walk(&base, &pattern, depth)
        };
        let dirs_are_folders = !has_wildcard(pat)
            || full
                .file_name()
                .is_some_and(|n| only_wildcards(&n.to_string_lossy()));
        let mut n = 0usize;
        for (p, problem) in candidates {
            if problem.is_some() {
                n += 1;
                found.push((rel(&p), p, problem, None));
                continue;
            }
            // `metadata` follows links: a link to a regular file is one.
            match std::fs::metadata(&p) {
                Ok(m) if m.is_file() => {
                    n += 1;
                    found.push((rel(&p), p, None, Some((m.dev(), m.ino()))));
                }
                Ok(m) if m.is_dir() && has_wildcard(pat) && dirs_are_folders => {}
                Ok(m) => {
                    n += 1;
                    let why = format!(
                        "not a regular file: the path names {} (not opened)",
                        crate::audio::decoder::kind_of(m.file_type())
                    );
                    found.push((rel(&p), p, Some((Reason::NotAFile, why)), None));
                }
                // Missing, a dangling link, unreadable: the decoder says which.
                Err(_) => {
                    n += 1;
                    found.push((rel(&p), p, None, None));
                }
            }
        }
        if n == 0 && has_wildcard(pat) {
            return Err(format!(
                "pattern `{pat}` matched no files (looked for `{text}`)"
            ));
        }
    }
    // One entry per real file: the path that is no link itself, then the one with
    // the fewest components, then the first.
    let key = |p: &Path| {
        (
            std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()),
            p.components().count(),
            p.to_path_buf(),
        )
    };
    let mut best: HashMap<(u64, u64), usize> = HashMap::new();
    let mut keep = vec![true; found.len()];
    for (i, f) in found.iter().enumerate() {
        let Some(id) = f.3 else { continue };
        match best.get(&id) {
            None => {
                best.insert(id, i);
            }
            Some(&j) => {
                if key(&f.1) < key(&found[j].1) {
                    keep[j] = false;
                    best.insert(id, i);
                } else {
                    keep[i] = false;
                }
            }
        }
    }
    let mut out: Vec<Listed> = found
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|((clip_id, path, problem, _), _)| Listed {
            clip_id,
            path,
            problem,
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.path == b.path);
    disambiguate(&mut out, base_dir);
    Ok(out)
}

/// Two different files must never share a `clip_id` (patterns over two folders
/// both holding `x.wav` would): a clip is one file's rows. The files of a
/// colliding id take their path relative to the pipeline's folder instead (the
/// whole path outside it), which differs for different files.
fn disambiguate(listed: &mut [Listed], base_dir: &Path) {
    use std::collections::HashMap;
    let mut count: HashMap<String, usize> = HashMap::new();
    for l in listed.iter() {
        *count.entry(l.clip_id.clone()).or_insert(0) += 1;
    }
    for l in listed.iter_mut() {
        if count.get(&l.clip_id).is_some_and(|&n| n > 1) {
            l.clip_id = path_text(l.path.strip_prefix(base_dir).unwrap_or(&l.path))
                .replace(std::path::MAIN_SEPARATOR, "/");
        }
    }
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
                    for Listed { clip_id: rel, path, problem } in files {
                        let path_s = path_text(&path);
                        if let Some((reason, msg)) = problem {
                            out.quarantined.push((rel, path_s, reason, msg));
                            continue;
                        }
                        match labeler.label(&rel, &path) {
                            Err(msg) => out.quarantined.push((rel, path_s, Reason::Unlabeled, msg)),
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
            let mut quarantined = Vec::new();
            for u in listing.quarantined {
                if wanted(&u.0) { quarantined.push(u) } else { count(&u.0) }
            }
            ctx.metrics.counter("files.total").add((rows.len() + quarantined.len()) as u64);
            ctx.metrics.counter("files.other_shards").add(outside);
            ctx.metrics.counter("files.resumed").add(skipped);
            ctx.metrics.counter("labels.dropped").add(listing.dropped);
            for (rel, path, reason, msg) in &quarantined {
                yield Ok(ctx.quarantine(path, rel, reason.as_str(), msg.clone()));
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
        let ids: Vec<&str> = got.iter().map(|l| l.clip_id.as_str()).collect();
        assert_eq!(ids, vec!["a/x.wav", "b/x.wav"]);
        let err = expand(&["*.flac".to_string()], dir.path()).unwrap_err();
        assert!(err.contains("matched no files"), "{err}");
    }
}
