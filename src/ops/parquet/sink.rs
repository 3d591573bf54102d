//! `parquet` sink: writes its input as a directory of Parquet part files (zstd),
//! crash-safe and resumable; readable by pyarrow.dataset, polars and pandas.
//!
//! ```toml
//! [sinks.table]
//! kind = "parquet"
//! input = "feat"
//! path = "out/emodb-features"   # a directory; relative to the pipeline file
//! mode = "resume"               # resume (default) | overwrite
//! partition_by = ["corpus", "label"]   # optional hive folders corpus=.../label=.../
//! rows_per_file = 100000        # target rows per part file
//! row_group_rows = 1024
//! zstd_level = 3
//! ```
//!
//! Layout: `part-NNNNN.parquet` (inside partition folders if any), `_ledger.jsonl`
//! (one line per commit, see [`super::ledger`]), `_sermo.json` (the settings the
//! output was made with), and, written last when the run completed,
//! `_quarantine.parquet` and `_SUCCESS` (JSON: rows, files, clips, hashes).
//!
//! **Commits.** Rows are routed by `clip_id` to one writer per worker thread, so a
//! clip's rows stay together and in order. A writer closes its part files (fsync,
//! rename, directory fsync) and appends a ledger line only when every clip it has
//! rows of is complete (its `Done` frame arrived); `rows_per_file` is therefore a
//! target, not a cap. A clip is thus committed entirely or not at all.
//!
//! **`mode = "resume"`** reads the ledger first: clips it lists are skipped by the
//! sources (and dropped here if they arrive anyway), leftovers of a crash (temporary
//! files, part files no ledger line lists, a torn last ledger line) are removed, and
//! a ledger damaged elsewhere is refused. Output made with other settings (lineage
//! hash in `_sermo.json`) is refused unless `--force`. A table without a `clip_id`
//! column cannot be resumed and is rewritten from scratch.
//!
//! **`mode = "overwrite"`** writes into a hidden sibling folder and swaps it with
//! the old output when complete (`renameat2(RENAME_EXCHANGE)`): readers see the old
//! table until the new one is whole.
//!
//! With `--shard I/N` the sink writes into `PATH/shard=I/`; `sermo commit` joins
//! the shards.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray, StringArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use super::ledger::{self, Entry, FileEntry, LEDGER_FILE, Ledger, QuarantineEntry};
use super::part::{
    Budget, NULL_PARTITION, Pending, SinkFile, escape_value, is_part_name, is_temp_name,
    partitionable, sync_dir, value_text,
};
use crate::engine::hash;
use crate::engine::operator::require_inputs;
use crate::engine::{
    BatchStream, Component, ConfigContext, Frame, Operator, OperatorConfig, PlanInput, Problem,
    Quarantined, Resume, Role, TaskContext,
};
use crate::error::{Result, SermoError};
use crate::schema::{self, TableKind, col};

/// Name of the completion marker.
pub const SUCCESS_FILE: &str = "_SUCCESS";
/// Name of the quarantine table inside a sink directory.
pub const QUARANTINE_FILE: &str = "_quarantine.parquet";
/// Name of the settings record inside a sink directory.
pub const HEADER_FILE: &str = "_sermo.json";

/// How a sink treats output already in its directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Keep committed clips, process the rest.
    #[default]
    Resume,
    /// Replace the whole output when the new one is complete.
    Overwrite,
}

/// Config of the `parquet` sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSinkConfig {
    /// Output directory.
    pub path: String,
    #[serde(default)]
    pub mode: Mode,
    /// Columns whose values name hive folders (`corpus=x/label=y/`).
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// Target rows per part file (default 100000).
    #[serde(default = "default_rows_per_file")]
    pub rows_per_file: i64,
    /// Rows per row group (default 1024); row groups are also cut at 16 MiB.
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: i64,
    /// zstd level 1..=22 (default 3).
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i64,
}

fn default_rows_per_file() -> i64 {
    100_000
}
fn default_row_group_rows() -> i64 {
    1024
}
fn default_zstd_level() -> i64 {
    3
}

/// Row groups are flushed once their buffered size reaches this many bytes.
const ROW_GROUP_BYTES: usize = 16 << 20;
/// Jobs queued for one writer before the sink stops reading its input.
const QUEUE_JOBS: usize = 64;

impl Component for ParquetSinkConfig {
    const KIND: &'static str = "parquet";
    const ROLE: Role = Role::Sink;
    const SUMMARY: &'static str = "write a crash-safe, resumable directory of Parquet part files (zstd, optional hive partitions)";
}

impl OperatorConfig for ParquetSinkConfig {
    fn check(&self, _ctx: &ConfigContext) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.path.trim().is_empty() {
            p.push(
                Problem::new("path", "is empty")
                    .with_hint("give an output directory, e.g. path = \"out/table\""),
            );
        }
        for (key, v) in [
            ("rows_per_file", self.rows_per_file),
            ("row_group_rows", self.row_group_rows),
        ] {
            if v < 1 {
                p.push(Problem::new(key, format!("must be at least 1, got {v}")));
            }
        }
        if !(1..=22).contains(&self.zstd_level) {
            p.push(Problem::new(
                "zstd_level",
                format!("must be between 1 and 22, got {}", self.zstd_level),
            ));
        }
        let mut seen = HashSet::new();
        for c in &self.partition_by {
            if !seen.insert(c) {
                p.push(Problem::new("partition_by", format!("names `{c}` twice")));
            }
        }
        p
    }

    fn plan(&self, inputs: &[PlanInput]) -> std::result::Result<SchemaRef, String> {
        let s = require_inputs(inputs, &TableKind::data_kinds())?;
        for c in &self.partition_by {
            match s.field_with_name(c) {
                Err(_) => {
                    let names: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
                    return Err(format!(
                        "cannot partition by `{c}`: its input has no such column (columns: {})",
                        names.join(", ")
                    ));
                }
                Ok(f) if !partitionable(f.data_type()) => {
                    return Err(format!(
                        "cannot partition by `{c}`: type {} (use a text, integer or boolean column)",
                        f.data_type()
                    ));
                }
                Ok(_) => {}
            }
        }
        if self.partition_by.len() == s.fields().len() {
            return Err("partition_by names every column: nothing would be left to store".into());
        }
        Ok(schema::empty_schema())
    }

    fn output_path(&self, ctx: &ConfigContext) -> Option<PathBuf> {
        Some(ctx.resolve(&self.path))
    }

    fn build(&self, ctx: &ConfigContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(ParquetSink {
            cfg: self.clone(),
            root: ctx.resolve(&self.path),
            prepared: None,
        }))
    }
}

/// `_sermo.json`: what the output in a sink directory was made with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Header {
    pub format: u32,
    pub sermo_version: String,
    /// Hash of the sink's inputs' lineage and its partitioning: equal hashes mean
    /// equal rows.
    pub lineage_hash: String,
    pub pipeline_hash: String,
    pub schema_hash: String,
    pub partition_by: Vec<String>,
    /// Settings hash of every upstream node, by id.
    pub settings: BTreeMap<String, String>,
}

/// `_SUCCESS`: written last, when the output is complete.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Success {
    pub rows: u64,
    pub files: u64,
    pub clips: u64,
    pub quarantined: u64,
    pub schema_hash: String,
    /// The lineage hash (equal for every shard of one pipeline).
    pub config_hash: String,
    pub pipeline_hash: String,
    pub sermo_version: String,
    pub shard: Option<String>,
}

/// Hash of a schema's fields (names, types, nullability), not its metadata.
pub fn schema_hash(schema: &Schema) -> String {
    let fields = serde_json::to_string(schema.fields()).unwrap_or_default();
    hash::hex(hash::stable_hash(fields.as_bytes()))
}

/// What `prepare` established.
struct Prepared {
    /// Where this run writes (the final directory, or the staging one).
    dir: PathBuf,
    /// Final directory (differs from `dir` in overwrite mode).
    dest: PathBuf,
    header: Header,
    /// Clips already committed (resume).
    done: Arc<HashSet<String>>,
    /// Ledger entries already committed.
    entries: Vec<Entry>,
    ledger: Ledger,
    next_part: usize,
    budget: Budget,
    has_clip_id: bool,
}

struct ParquetSink {
    cfg: ParquetSinkConfig,
    root: PathBuf,
    prepared: Option<Prepared>,
}

fn io_err(stage: &str, op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SermoError {
    let stage = stage.to_string();
    let path = path.to_path_buf();
    move |e| SermoError::io(&stage, op, path, e)
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

fn write_json_atomic<T: Serialize>(
    dir: &Path,
    name: &str,
    value: &T,
    budget: &Budget,
) -> std::io::Result<()> {
    use std::io::Write;
    let body = serde_json::to_string_pretty(value).map_err(std::io::Error::other)? + "\n";
    let pending = Pending::new(dir, name);
    let mut f = SinkFile::create(&pending.tmp, budget.clone())?;
    f.write_all(body.as_bytes())?;
    let (file, _) = f.into_file();
    pending.commit(&file)?;
    sync_dir(dir)
}

impl ParquetSink {
    fn props(&self, stage: &str, header: &Header, schema: &Schema) -> Result<WriterProperties> {
        let level = ZstdLevel::try_new(self.cfg.zstd_level as i32)
            .map_err(|e| SermoError::stage(stage, None, e.to_string()))?;
        let mut kv = vec![
            KeyValue::new("sermo.version".into(), header.sermo_version.clone()),
            KeyValue::new("sermo.pipeline_hash".into(), header.pipeline_hash.clone()),
            KeyValue::new("sermo.lineage_hash".into(), header.lineage_hash.clone()),
            KeyValue::new(
                "sermo.lineage".into(),
                serde_json::to_string(&header.settings).unwrap_or_default(),
            ),
        ];
        if let Some(f) = schema.metadata().get(crate::ops::features::FEATURES_KEY) {
            kv.push(KeyValue::new(
                crate::ops::features::FEATURES_KEY.into(),
                f.clone(),
            ));
        }
        Ok(WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_row_count(Some(self.cfg.row_group_rows as usize))
            .set_dictionary_enabled(false)
            .set_key_value_metadata(Some(kv))
            .build())
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
        // Files the ledger lists must be there, whole.
        let mut listed: HashSet<String> = HashSet::new();
        let mut next_part = 0usize;
        for e in &rec.entries {
            for f in &e.files {
                let p = dir.join(&f.path);
                match std::fs::metadata(&p) {
                    Ok(m) if m.len() == f.bytes => {}
                    Ok(m) => {
                        return Err(err(format!(
                            "{} has {} bytes but the ledger committed {}: the table was altered; remove the directory or use mode = \"overwrite\"",
                            p.display(),
                            m.len(),
                            f.bytes
                        )));
                    }
                    Err(_) => {
                        return Err(err(format!(
                            "{} is listed in the ledger but missing: the table was altered; remove the directory or use mode = \"overwrite\"",
                            p.display()
                        )));
                    }
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

/// A part file being written for one partition.
struct OpenPart {
    writer: ArrowWriter<SinkFile>,
    pending: Pending,
    rel: String,
    rows: u64,
}

/// Shared by a sink's writers.
struct Shared {
    dir: PathBuf,
    stage: String,
    file_schema: SchemaRef,
    /// Indices of the partition columns in the input schema.
    partition_cols: Vec<(usize, String)>,
    props: WriterProperties,
    rows_per_file: u64,
    next_part: AtomicUsize,
    ledger: Mutex<Ledger>,
    budget: Budget,
    has_clip_id: bool,
}

/// What a writer is told, in order.
enum Job {
    Rows(RecordBatch),
    Quarantine(Quarantined),
    Done(Arc<str>),
}

/// One writer: its open parts (one per partition) and the commit it is building.
struct Writer {
    shared: Arc<Shared>,
    parts: BTreeMap<String, OpenPart>,
    /// Clips with rows here whose `Done` has not come.
    open: HashSet<Arc<str>>,
    done: Vec<String>,
    quarantine: Vec<QuarantineEntry>,
    rows: u64,
    /// Committed by this writer in this run.
    committed: Vec<Entry>,
}

impl Writer {
    fn err(&self, path: Option<PathBuf>, e: impl ToString) -> SermoError {
        SermoError::stage(&self.shared.stage, path, e.to_string())
    }

    fn run(&mut self, jobs: Vec<Job>) -> Result<()> {
        for job in jobs {
            match job {
                Job::Rows(b) => self.write(&b)?,
                Job::Quarantine(q) => self.quarantine.push(QuarantineEntry {
                    path: q.path,
                    clip_id: q.clip_id,
                    stage: q.stage,
                    reason: q.reason,
                    message: q.message,
                }),
                Job::Done(id) => {
                    self.open.remove(&id);
                    self.done.push(id.to_string());
                }
            }
            if self.rows >= self.shared.rows_per_file && self.open.is_empty() {
                self.commit()?;
            }
        }
        Ok(())
    }

    /// Split a batch by partition, drop the partition columns, write each piece.
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.shared.has_clip_id
            && let Some(ids) = batch
                .column_by_name(col::CLIP_ID)
                .and_then(|c| c.as_string_opt::<i32>())
        {
            for i in 0..ids.len() {
                if ids.is_valid(i) && !self.open.contains(ids.value(i)) {
                    self.open.insert(Arc::from(ids.value(i)));
                }
            }
        }
        let pieces: Vec<(String, RecordBatch)> = if self.shared.partition_cols.is_empty() {
            vec![(String::new(), batch.clone())]
        } else {
            let mut groups: BTreeMap<String, Vec<u32>> = BTreeMap::new();
            for i in 0..batch.num_rows() {
                let key: Vec<String> = self
                    .shared
                    .partition_cols
                    .iter()
                    .map(|(c, name)| {
                        let v = value_text(batch.column(*c), i)
                            .map(|v| escape_value(&v))
                            .unwrap_or_else(|| NULL_PARTITION.to_string());
                        format!("{name}={v}")
                    })
                    .collect();
                groups.entry(key.join("/")).or_default().push(i as u32);
            }
            let keep: Vec<usize> = (0..batch.num_columns())
                .filter(|c| !self.shared.partition_cols.iter().any(|(p, _)| p == c))
                .collect();
            let mut out = Vec::new();
            for (key, idx) in groups {
                let taken = take_record_batch(batch, &UInt32Array::from(idx))
                    .and_then(|b| b.project(&keep))
                    .map_err(|e| self.err(None, e))?;
                out.push((key, taken));
            }
            out
        };
        for (key, piece) in pieces {
            let piece =
                RecordBatch::try_new(self.shared.file_schema.clone(), piece.columns().to_vec())
                    .map_err(|e| self.err(None, e))?;
            if !self.parts.contains_key(&key) {
                let part = self.open_part(&key)?;
                self.parts.insert(key.clone(), part);
            }
            let Some(part) = self.parts.get_mut(&key) else {
                return Err(SermoError::Internal("no open part".into()));
            };
            let dest = part.pending.dest.clone();
            part.writer.write(&piece).map_err(|e| {
                SermoError::stage(&self.shared.stage, Some(dest.clone()), e.to_string())
            })?;
            if part.writer.in_progress_size() >= ROW_GROUP_BYTES {
                part.writer.flush().map_err(|e| {
                    SermoError::stage(&self.shared.stage, Some(dest), e.to_string())
                })?;
            }
            part.rows += piece.num_rows() as u64;
            self.rows += piece.num_rows() as u64;
        }
        Ok(())
    }

    fn open_part(&self, key: &str) -> Result<OpenPart> {
        let s = &self.shared;
        let dir = if key.is_empty() {
            s.dir.clone()
        } else {
            s.dir.join(key)
        };
        std::fs::create_dir_all(&dir).map_err(io_err(&s.stage, "create directory", &dir))?;
        let name = format!(
            "part-{:05}.parquet",
            s.next_part.fetch_add(1, Ordering::SeqCst)
        );
        let pending = Pending::new(&dir, &name);
        let file = SinkFile::create(&pending.tmp, s.budget.clone()).map_err(io_err(
            &s.stage,
            "create",
            &pending.tmp,
        ))?;
        let writer = ArrowWriter::try_new(file, s.file_schema.clone(), Some(s.props.clone()))
            .map_err(|e| self.err(Some(pending.tmp.clone()), e))?;
        let rel = if key.is_empty() {
            name
        } else {
            format!("{key}/{name}")
        };
        Ok(OpenPart {
            writer,
            pending,
            rel,
            rows: 0,
        })
    }

    /// Close every open part and append one ledger line: the commit point.
    fn commit(&mut self) -> Result<()> {
        if self.parts.is_empty() && self.done.is_empty() && self.quarantine.is_empty() {
            return Ok(());
        }
        let s = self.shared.clone();
        let mut files = Vec::new();
        let mut dirs = BTreeSet::new();
        let mut renamed = Vec::new();
        for (key, mut part) in std::mem::take(&mut self.parts) {
            part.writer
                .append_key_value_metadata(KeyValue::new("sermo.partition".into(), key.clone()));
            let dest = part.pending.dest.clone();
            let sink_file = part
                .writer
                .into_inner()
                .map_err(|e| SermoError::stage(&s.stage, Some(dest.clone()), e.to_string()))?;
            let (file, bytes) = sink_file.into_file();
            part.pending
                .commit(&file)
                .map_err(io_err(&s.stage, "commit", &dest))?;
            renamed.push(dest.clone());
            if let Some(d) = dest.parent() {
                dirs.insert(d.to_path_buf());
            }
            files.push(FileEntry {
                path: part.rel,
                rows: part.rows,
                bytes,
            });
        }
        for d in &dirs {
            sync_dir(d).map_err(io_err(&s.stage, "sync", d))?;
        }
        if dirs.iter().any(|d| d != &s.dir) {
            sync_dir(&s.dir).map_err(io_err(&s.stage, "sync", &s.dir))?;
        }
        let entry = Entry {
            files,
            clips: std::mem::take(&mut self.done),
            quarantine: std::mem::take(&mut self.quarantine),
        };
        let mut ledger = match s.ledger.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Err(e) = ledger.append(&entry) {
            // Not committed: the renamed files must not outlive the failed commit.
            for p in renamed {
                let _ = std::fs::remove_file(p);
            }
            return Err(SermoError::io(&s.stage, "append to", ledger.path(), e));
        }
        drop(ledger);
        self.rows = 0;
        self.committed.push(entry);
        Ok(())
    }
}

/// Routes frames to writers. A clip's rows, quarantine records and `Done` go to
/// the writer that got its first frame; a new clip goes to an idle writer. The
/// map holds only clips whose `Done` has not come.
struct Router {
    n: usize,
    affinity: HashMap<Arc<str>, usize>,
    next: usize,
}

impl Router {
    fn pick(&mut self, idle: &[bool]) -> usize {
        let w = (0..self.n)
            .map(|k| (self.next + k) % self.n)
            .find(|&w| idle.get(w).copied().unwrap_or(false))
            .unwrap_or(self.next % self.n);
        self.next = (w + 1) % self.n;
        w
    }

    fn writer_of(&mut self, id: &str, idle: &[bool]) -> usize {
        if let Some(&w) = self.affinity.get(id) {
            return w;
        }
        let w = self.pick(idle);
        self.affinity.insert(Arc::from(id), w);
        w
    }

    fn rows(
        &mut self,
        batch: &RecordBatch,
        idle: &[bool],
    ) -> std::result::Result<Vec<(usize, RecordBatch)>, String> {
        let ids = batch
            .column_by_name(col::CLIP_ID)
            .and_then(|c| c.as_string_opt::<i32>());
        let Some(ids) = ids else {
            return Ok(vec![(self.pick(idle), batch.clone())]);
        };
        let mut writer_of_row = Vec::with_capacity(ids.len());
        for i in 0..ids.len() {
            let id = if ids.is_valid(i) { ids.value(i) } else { "" };
            writer_of_row.push(self.writer_of(id, idle));
        }
        let first = writer_of_row.first().copied().unwrap_or(0);
        if writer_of_row.iter().all(|&w| w == first) {
            return Ok(vec![(first, batch.clone())]);
        }
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); self.n];
        for (i, w) in writer_of_row.into_iter().enumerate() {
            rows[w].push(i as u32);
        }
        let mut out = Vec::new();
        for (w, idx) in rows.into_iter().enumerate() {
            if !idx.is_empty() {
                let b =
                    take_record_batch(batch, &UInt32Array::from(idx)).map_err(|e| e.to_string())?;
                out.push((w, b));
            }
        }
        Ok(out)
    }

    fn done(&mut self, id: &str, idle: &[bool]) -> usize {
        match self.affinity.remove(id) {
            Some(w) => w,
            None => self.pick(idle),
        }
    }
}

/// Drop the rows of clips in `done` (already committed by an earlier run).
fn without_done(
    batch: RecordBatch,
    done: &HashSet<String>,
) -> std::result::Result<RecordBatch, String> {
    if done.is_empty() {
        return Ok(batch);
    }
    let Some(ids) = batch
        .column_by_name(col::CLIP_ID)
        .and_then(|c| c.as_string_opt::<i32>())
    else {
        return Ok(batch);
    };
    let keep: Vec<u32> = (0..ids.len())
        .filter(|&i| !(ids.is_valid(i) && done.contains(ids.value(i))))
        .map(|i| i as u32)
        .collect();
    if keep.len() == batch.num_rows() {
        return Ok(batch);
    }
    take_record_batch(&batch, &UInt32Array::from(keep)).map_err(|e| e.to_string())
}

fn quarantine_batch(
    rows: &[&QuarantineEntry],
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    let col = |f: &dyn Fn(&QuarantineEntry) -> &str| -> arrow::array::ArrayRef {
        Arc::new(rows.iter().map(|r| Some(f(r))).collect::<StringArray>())
    };
    RecordBatch::try_new(
        schema::quarantine_schema(),
        vec![
            col(&|r| &r.path),
            col(&|r| &r.clip_id),
            col(&|r| &r.stage),
            col(&|r| &r.reason),
            col(&|r| &r.message),
        ],
    )
}

/// Write `_quarantine.parquet` and `_SUCCESS` for a complete output.
fn finish_output(
    dir: &Path,
    stage: &str,
    entries: &[Entry],
    success: &mut Success,
    budget: &Budget,
) -> Result<()> {
    let mut records: Vec<&QuarantineEntry> = entries.iter().flat_map(|e| &e.quarantine).collect();
    records.sort_by(|a, b| (&a.clip_id, &a.stage).cmp(&(&b.clip_id, &b.stage)));
    let pending = Pending::new(dir, QUARANTINE_FILE);
    let file = SinkFile::create(&pending.tmp, budget.clone()).map_err(io_err(
        stage,
        "create",
        &pending.tmp,
    ))?;
    let mut w = ArrowWriter::try_new(file, schema::quarantine_schema(), None)
        .map_err(|e| SermoError::stage(stage, Some(pending.tmp.clone()), e.to_string()))?;
    let b =
        quarantine_batch(&records).map_err(|e| SermoError::stage(stage, None, e.to_string()))?;
    w.write(&b)
        .map_err(|e| SermoError::stage(stage, Some(pending.dest.clone()), e.to_string()))?;
    let (file, _) = w
        .into_inner()
        .map_err(|e| SermoError::stage(stage, Some(pending.dest.clone()), e.to_string()))?
        .into_file();
    let dest = pending.dest.clone();
    pending
        .commit(&file)
        .map_err(io_err(stage, "commit", &dest))?;
    success.rows = entries.iter().flat_map(|e| &e.files).map(|f| f.rows).sum();
    success.files = entries.iter().map(|e| e.files.len() as u64).sum();
    success.clips = entries.iter().map(|e| e.clips.len() as u64).sum();
    success.quarantined = records.len() as u64;
    write_json_atomic(dir, SUCCESS_FILE, success, budget).map_err(io_err(
        stage,
        "write",
        &dir.join(SUCCESS_FILE),
    ))
}

/// Swap a complete staging directory into place (atomic where the kernel can).
fn swap_into_place(staging: &Path, dest: &Path) -> std::io::Result<()> {
    if dest.exists() {
        if exchange(staging, dest).is_err() {
            // No RENAME_EXCHANGE (old kernel, other OS): two renames.
            let old = staging.with_extension("old");
            let _ = std::fs::remove_dir_all(&old);
            std::fs::rename(dest, &old)?;
            std::fs::rename(staging, dest)?;
            let _ = std::fs::remove_dir_all(&old);
        } else {
            // `staging` now holds the old output.
            std::fs::remove_dir_all(staging)?;
        }
    } else {
        std::fs::rename(staging, dest)?;
    }
    if let Some(parent) = dest.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let ca = CString::new(a.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let cb = CString::new(b.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: two valid NUL-terminated paths; renameat2 reads them only.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> std::io::Result<()> {
    Err(std::io::Error::other("no RENAME_EXCHANGE"))
}

impl Operator for ParquetSink {
    fn prepare(&mut self, ctx: &TaskContext) -> Result<Resume> {
        let stage = ctx.node_id.to_string();
        let dest = match ctx.shard {
            Some(s) => self.root.join(s.dir_name()),
            None => self.root.clone(),
        };
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

    fn execute(self: Box<Self>, inputs: Vec<BatchStream>, ctx: TaskContext) -> BatchStream {
        let in_schema = inputs
            .first()
            .map(|s| s.schema())
            .unwrap_or_else(schema::empty_schema);
        let mut input = crate::engine::stream::merge_inputs(in_schema.clone(), inputs);
        let stream = async_stream::stream! {
            let stage = ctx.node_id.to_string();
            let mut this = self;
            let Some(prep) = this.prepared.take() else {
                yield Err(SermoError::Internal(format!("sink `{stage}` ran without prepare")));
                return;
            };
            let file_schema = file_schema(&in_schema, &this.cfg.partition_by);
            let props = match this.props(&stage, &prep.header, &file_schema) {
                Ok(p) => p,
                Err(e) => { yield Err(e); return; }
            };
            let partition_cols: Vec<(usize, String)> = this
                .cfg
                .partition_by
                .iter()
                .filter_map(|c| in_schema.index_of(c).ok().map(|i| (i, c.clone())))
                .collect();
            let shared = Arc::new(Shared {
                dir: prep.dir.clone(),
                stage: stage.clone(),
                file_schema,
                partition_cols,
                props,
                rows_per_file: this.cfg.rows_per_file.max(1) as u64,
                next_part: AtomicUsize::new(prep.next_part),
                ledger: Mutex::new(prep.ledger),
                budget: prep.budget.clone(),
                has_clip_id: prep.has_clip_id,
            });
            let rows_metric = ctx.metrics.counter(&format!("sink.{stage}.rows"));
            // One writer per worker thread, each busy with at most one job.
            let n = ctx.pool.threads().max(1);
            let mut idle: Vec<Option<Writer>> = (0..n)
                .map(|_| Some(Writer {
                    shared: shared.clone(),
                    parts: BTreeMap::new(),
                    open: HashSet::new(),
                    done: Vec::new(),
                    quarantine: Vec::new(),
                    rows: 0,
                    committed: Vec::new(),
                }))
                .collect();
            let mut queues: Vec<Vec<Job>> = (0..n).map(|_| Vec::new()).collect();
            let mut running = FuturesUnordered::new();
            let mut router = Router { n, affinity: HashMap::new(), next: 0 };
            let done_before = prep.done.clone();
            loop {
                // Hand queued jobs to idle writers.
                for w in 0..n {
                    if !queues[w].is_empty() && idle[w].is_some() {
                        let Some(writer) = idle[w].take() else { continue };
                        let jobs = std::mem::take(&mut queues[w]);
                        running.push(run_jobs(ctx.pool.clone(), w, writer, jobs));
                    }
                }
                let full = queues.iter().any(|q| q.len() >= QUEUE_JOBS);
                let item = if full {
                    None
                } else {
                    tokio::select! {
                        biased;
                        Some((w, rows, res)) = running.next(), if !running.is_empty() => {
                            match res {
                                Ok((wr, Ok(()))) => { idle[w] = Some(wr); rows_metric.add(rows); }
                                Ok((_, Err(e))) => { yield Err(e); return; }
                                Err(p) => { yield Err(SermoError::stage(&stage, None, format!("writer {p}"))); return; }
                            }
                            continue;
                        }
                        item = input.next() => Some(item),
                    }
                };
                let item = match item {
                    Some(Some(item)) => item,
                    Some(None) => break,
                    None => {
                        // Queues full: wait for a writer.
                        let Some((w, rows, res)) = running.next().await else { break };
                        match res {
                            Ok((wr, Ok(()))) => { idle[w] = Some(wr); rows_metric.add(rows); }
                            Ok((_, Err(e))) => { yield Err(e); return; }
                            Err(p) => { yield Err(SermoError::stage(&stage, None, format!("writer {p}"))); return; }
                        }
                        continue;
                    }
                };
                let free: Vec<bool> = idle.iter().map(Option::is_some).collect();
                match item {
                    Ok(Frame::Batch(batch)) => {
                        let batch = match without_done(batch, &done_before) {
                            Ok(b) => b,
                            Err(e) => { yield Err(SermoError::stage(&stage, None, e)); return; }
                        };
                        if batch.num_rows() == 0 { continue; }
                        match router.rows(&batch, &free) {
                            Ok(parts) => for (w, b) in parts { queues[w].push(Job::Rows(b)); },
                            Err(e) => { yield Err(SermoError::stage(&stage, None, e)); return; }
                        }
                    }
                    Ok(Frame::Quarantine(q)) => {
                        if !done_before.contains(&q.clip_id) {
                            let w = router.writer_of(&q.clip_id, &free);
                            queues[w].push(Job::Quarantine(q));
                        }
                    }
                    Ok(Frame::Done(id)) => {
                        if !done_before.contains(id.as_ref()) {
                            let w = router.done(&id, &free);
                            queues[w].push(Job::Done(id));
                        }
                    }
                    // Upstream failed: drop the unfinished parts (their guards remove them).
                    Err(e) => { yield Err(e); return; }
                }
            }
            // Input complete: flush every queue, then commit every writer.
            loop {
                for w in 0..n {
                    if !queues[w].is_empty() && idle[w].is_some() {
                        let Some(writer) = idle[w].take() else { continue };
                        let jobs = std::mem::take(&mut queues[w]);
                        running.push(run_jobs(ctx.pool.clone(), w, writer, jobs));
                    }
                }
                let Some((w, rows, res)) = running.next().await else { break };
                match res {
                    Ok((wr, Ok(()))) => { idle[w] = Some(wr); rows_metric.add(rows); }
                    Ok((_, Err(e))) => { yield Err(e); return; }
                    Err(p) => { yield Err(SermoError::stage(&stage, None, format!("writer {p}"))); return; }
                }
            }
            if ctx.cancel.is_cancelled() {
                return;
            }
            let writers: Vec<Writer> = idle.into_iter().flatten().collect();
            let mut entries = prep.entries;
            let mut success = Success {
                rows: 0,
                files: 0,
                clips: 0,
                quarantined: 0,
                schema_hash: prep.header.schema_hash.clone(),
                config_hash: prep.header.lineage_hash.clone(),
                pipeline_hash: prep.header.pipeline_hash.clone(),
                sermo_version: prep.header.sermo_version.clone(),
                shard: ctx.shard.map(|s| format!("{}/{}", s.index, s.count)),
            };
            let (dir, dest, budget) = (prep.dir.clone(), prep.dest.clone(), prep.budget.clone());
            let st = stage.clone();
            let staged = dir != dest;
            let done = ctx.pool.run(move || -> Result<Success> {
                for mut w in writers {
                    w.commit()?;
                    entries.append(&mut w.committed);
                }
                finish_output(&dir, &st, &entries, &mut success, &budget)?;
                if staged {
                    swap_into_place(&dir, &dest).map_err(io_err(&st, "replace", &dest))?;
                }
                Ok(success)
            }).await;
            match done {
                Ok(Ok(s)) => {
                    ctx.metrics.counter(&format!("sink.{stage}.files")).add(s.files);
                    ctx.metrics.counter(&format!("sink.{stage}.quarantined")).add(s.quarantined);
                }
                Ok(Err(e)) => yield Err(e),
                Err(p) => yield Err(SermoError::stage(&stage, None, p.to_string())),
            }
        };
        BatchStream::new(schema::empty_schema(), stream)
    }
}

/// What a writer job gives back: its index, the rows it wrote, the writer and
/// its result.
type JobOutcome = (
    usize,
    u64,
    std::result::Result<(Writer, Result<()>), crate::engine::pool::JobPanic>,
);

/// Run a writer's queued jobs on the pool.
async fn run_jobs(
    pool: Arc<crate::engine::WorkerPool>,
    w: usize,
    mut writer: Writer,
    jobs: Vec<Job>,
) -> JobOutcome {
    let rows: u64 = jobs
        .iter()
        .map(|j| match j {
            Job::Rows(b) => b.num_rows() as u64,
            _ => 0,
        })
        .sum();
    let r = pool
        .run(move || {
            let r = writer.run(jobs);
            (writer, r)
        })
        .await;
    (w, rows, r)
}

/// The schema stored in the part files: the input minus the partition columns.
fn file_schema(input: &Schema, partition_by: &[String]) -> SchemaRef {
    let fields: Vec<_> = input
        .fields()
        .iter()
        .filter(|f| !partition_by.iter().any(|p| p == f.name()))
        .cloned()
        .collect();
    Arc::new(Schema::new_with_metadata(fields, input.metadata().clone()))
}
