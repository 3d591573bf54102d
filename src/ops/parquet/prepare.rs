//! Getting a sink directory ready before any row arrives (`Operator::prepare`):
//! in resume mode read the ledger, repair crash leftovers and refuse what cannot be
//! trusted ([`ParquetSink::open_resume`]); in overwrite mode (or without `clip_id`)
//! start a fresh hidden staging directory. The result is a [`Prepared`].

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::commit::write_json_atomic;
use super::sink::{ParquetSink, file_schema, io_err};
use super::sink_config::{HEADER_FILE, Header, Mode, QUARANTINE_FILE, SUCCESS_FILE, schema_hash};
use crate::engine::hash;
use crate::engine::{Resume, TaskContext};
use crate::error::{Result, SermoError};
use crate::schema::{self, col};
use crate::store::ledger::{self, Entry, LEDGER_FILE, Ledger};
use crate::store::lock::DirLock;
use crate::store::part::{Budget, is_part_name, is_temp_name};

/// What `prepare` established.
pub(super) struct Prepared {
    /// Where this run writes (the final directory, or the staging one).
    pub(super) dir: PathBuf,
    /// Final directory (differs from `dir` in overwrite mode).
    pub(super) dest: PathBuf,
    pub(super) header: Header,
    /// Clips already committed (resume).
    pub(super) done: Arc<HashSet<String>>,
    /// Ledger entries already committed.
    pub(super) entries: Vec<Entry>,
    pub(super) ledger: Ledger,
    pub(super) next_part: usize,
    pub(super) budget: Budget,
    pub(super) has_clip_id: bool,
}

/// Every file under `dir` (recursively), as paths relative to it.
fn walk(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        for e in std::fs::read_dir(dir.join(&rel))? {
            let e = e?;
            let r = rel.join(e.file_name());
            if e.file_type()?.is_dir() {
                todo.push(r);
            } else {
                out.push(r);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn rel_str(p: &Path) -> String {
    p.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/")
}

fn part_number(name: &str) -> Option<usize> {
    name.strip_prefix("part-")?
        .strip_suffix(".parquet")?
        .parse()
        .ok()
}

/// Remove empty partition folders left under `dir`.
fn remove_empty_dirs(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_dirs(&e.path());
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
}

impl ParquetSink {
    /// The directory this run's output ends up in (`PATH/shard=I` for a shard).
    fn dest_dir(&self, ctx: &TaskContext) -> PathBuf {
        match ctx.shard {
            Some(s) => self.root.join(s.dir_name()),
            None => self.root.clone(),
        }
    }

    /// Take the output directory's lock before anything is touched: refused when
    /// another run writes it, or when the path is a file and not a directory (in
    /// either mode: an overwrite never replaces a file that is not a table).
    pub(super) fn claim_dir(&mut self, ctx: &TaskContext) -> Result<()> {
        let stage = ctx.node_id.to_string();
        let dest = self.dest_dir(ctx);
        let err = |msg: String| SermoError::stage(&stage, Some(dest.clone()), msg);
        // `metadata` follows links: a link to a directory is one.
        match std::fs::metadata(&dest) {
            Ok(m) if m.is_dir() => {}
            Ok(m) => {
                return Err(err(format!(
                    "the sink path is {}, not a table directory: refused before touching it (mode = \"{}\" never replaces a file); remove it or give another path",
                    crate::audio::decoder::kind_of(m.file_type()),
                    self.cfg.mode.as_str()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&dest).map_err(io_err(
                    &stage,
                    "create directory",
                    &dest,
                ))?;
                self.created = Some(dest.clone());
            }
            Err(e) => return Err(SermoError::io(&stage, "read", dest, e)),
        }
        let lock = DirLock::acquire(&dest, "sermo run").map_err(err)?;
        self.lock = Some(Arc::new(lock));
        Ok(())
    }

    /// Make the directory this run writes into ready (resume or staging) and say
    /// which clips the sources may skip.
    pub(super) fn prepare_dir(&mut self, ctx: &TaskContext) -> Result<Resume> {
        let stage = ctx.node_id.to_string();
        let dest = self.dest_dir(ctx);
        let in_schema = ctx
            .input_schemas
            .first()
            .cloned()
            .unwrap_or_else(schema::empty_schema);
        let has_clip_id = in_schema.field_with_name(col::CLIP_ID).is_ok();
        let file_schema = file_schema(&in_schema, &self.cfg.partition_by);
        let mut parts: Vec<&[u8]> = ctx.lineage.inputs.iter().map(|h| h.as_bytes()).collect();
        let pb = self.cfg.partition_by.join("\u{1f}");
        parts.push(pb.as_bytes());
        let header = Header {
            format: 1,
            sermo_version: env!("CARGO_PKG_VERSION").to_string(),
            lineage_hash: hash::hex(hash::stable_hash_parts(&parts)),
            pipeline_hash: ctx.lineage.pipeline_hash.clone(),
            schema_hash: schema_hash(&file_schema),
            partition_by: self.cfg.partition_by.clone(),
            settings: ctx
                .lineage
                .settings
                .iter()
                .filter(|(k, _)| k.as_str() != stage)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let budget = Budget::from_env();
        let resume = self.cfg.mode == Mode::Resume && has_clip_id;
        let (dir, entries, ledger, next_part) = if resume {
            let (entries, ledger, next) =
                self.open_resume(&stage, &dest, &header, ctx.force, has_clip_id, &budget)?;
            (dest.clone(), entries, ledger, next)
        } else {
            let name = dest
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| "out".into());
            let parent = dest.parent().map(Path::to_path_buf).unwrap_or_default();
            std::fs::create_dir_all(&parent).map_err(io_err(
                &stage,
                "create directory",
                &parent,
            ))?;
            let staging = parent.join(format!(".{name}.sermo-staging"));
            if staging.exists() {
                std::fs::remove_dir_all(&staging).map_err(io_err(&stage, "remove", &staging))?;
            }
            std::fs::create_dir_all(&staging).map_err(io_err(
                &stage,
                "create directory",
                &staging,
            ))?;
            write_json_atomic(&staging, HEADER_FILE, &header, &budget).map_err(io_err(
                &stage,
                "write",
                &staging.join(HEADER_FILE),
            ))?;
            let lp = staging.join(LEDGER_FILE);
            let ledger =
                Ledger::open(&lp, 0, budget.clone()).map_err(io_err(&stage, "open", &lp))?;
            (staging, Vec::new(), ledger, 0)
        };
        let done: HashSet<String> = entries
            .iter()
            .flat_map(|e| e.clips.iter().cloned())
            .collect();
        let done = Arc::new(done);
        let answer = if resume {
            Resume::Has(done.clone())
        } else {
            Resume::NeedsAll
        };
        self.prepared = Some(Prepared {
            dir,
            dest,
            header,
            done,
            entries,
            ledger,
            next_part,
            budget,
            has_clip_id,
        });
        Ok(answer)
    }

    /// Read the directory, repair crash leftovers, refuse what cannot be trusted.
    fn open_resume(
        &self,
        stage: &str,
        dir: &Path,
        header: &Header,
        force: bool,
        has_clip_id: bool,
        budget: &Budget,
    ) -> Result<(Vec<Entry>, Ledger, usize)> {
        let err = |msg: String| SermoError::stage(stage, Some(dir.to_path_buf()), msg);
        std::fs::create_dir_all(dir).map_err(io_err(stage, "create directory", dir))?;
        // The output is about to change: no reader may take it for complete.
        for name in [SUCCESS_FILE, QUARANTINE_FILE] {
            let p = dir.join(name);
            if p.exists() {
                std::fs::remove_file(&p).map_err(io_err(stage, "remove", &p))?;
            }
        }
        let header_path = dir.join(HEADER_FILE);
        let old: Option<Header> = match std::fs::read_to_string(&header_path) {
            Ok(text) => Some(serde_json::from_str(&text).map_err(|e| {
                err(format!(
                    "{} is damaged ({e}); remove the directory or use mode = \"overwrite\"",
                    header_path.display()
                ))
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(SermoError::io(stage, "read", header_path, e)),
        };
        let ledger_path = dir.join(LEDGER_FILE);
        let mut rec = ledger::read(&ledger_path).map_err(|m| {
            err(format!(
                "corrupt ledger: {m}; resuming could duplicate or lose clips, so the run is refused (remove the directory or use mode = \"overwrite\")"
            ))
        })?;
        if rec.torn_tail {
            eprintln!(
                "sermo: sink `{stage}`: cut a partial last line off {} (left by a crash while committing)",
                ledger_path.display()
            );
        }
        if !has_clip_id {
            // Nothing can be resumed without clip ids: start over.
            rec.entries.clear();
            rec.valid_len = 0;
        }
        match &old {
            Some(h) if h.lineage_hash != header.lineage_hash && !rec.entries.is_empty() => {
                let changed: Vec<String> = h
                    .settings
                    .keys()
                    .chain(header.settings.keys())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .filter(|k| h.settings.get(*k) != header.settings.get(*k))
                    .map(|k| format!("`{k}`"))
                    .collect();
                let what = if changed.is_empty() {
                    "the seed, partitioning or wiring".to_string()
                } else {
                    format!("settings of {}", changed.join(", "))
                };
                if !force {
                    return Err(err(format!(
                        "output was written with other settings ({what} changed; lineage hash {} != {}): resume refused. Use --force to resume anyway, mode = \"overwrite\" to start over, or another path",
                        h.lineage_hash, header.lineage_hash
                    )));
                }
                eprintln!(
                    "sermo: sink `{stage}`: --force: resuming into output written with other settings ({what} changed)"
                );
            }
            _ => {}
        }
        // Files the ledger lists must be there, whole and unaltered (size and
        // content hash).
        let mut listed: HashSet<String> = HashSet::new();
        let mut next_part = 0usize;
        for e in &rec.entries {
            for f in &e.files {
                let p = dir.join(&f.path);
                if let Err(why) = f.verify(&p) {
                    return Err(err(format!(
                        "{why}; resuming would build on it, so the run is refused: remove the directory or use mode = \"overwrite\""
                    )));
                }
                listed.insert(f.path.clone());
                if let Some(n) = Path::new(&f.path)
                    .file_name()
                    .and_then(|n| part_number(&n.to_string_lossy()))
                {
                    next_part = next_part.max(n + 1);
                }
            }
        }
        // Leftovers of a crash: temporary files and uncommitted part files.
        let files = walk(dir).map_err(io_err(stage, "list", dir))?;
        let (mut temps, mut orphans) = (0, 0);
        for rel in files {
            let name = rel
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let full = dir.join(&rel);
            if is_temp_name(&name) {
                std::fs::remove_file(&full).map_err(io_err(stage, "remove", &full))?;
                temps += 1;
            } else if is_part_name(&name) && !listed.contains(&rel_str(&rel)) {
                std::fs::remove_file(&full).map_err(io_err(stage, "remove", &full))?;
                orphans += 1;
            }
        }
        remove_empty_dirs(dir);
        if temps + orphans > 0 {
            eprintln!(
                "sermo: sink `{stage}`: removed {temps} temporary and {orphans} uncommitted part file(s) left by an interrupted run in {}",
                dir.display()
            );
        }
        if old.as_ref() != Some(header) {
            write_json_atomic(dir, HEADER_FILE, header, budget).map_err(io_err(
                stage,
                "write",
                &header_path,
            ))?;
        }
        let ledger = Ledger::open(&ledger_path, rec.valid_len, budget.clone()).map_err(io_err(
            stage,
            "open",
            &ledger_path,
        ))?;
        Ok((rec.entries, ledger, next_part))
    }
}
