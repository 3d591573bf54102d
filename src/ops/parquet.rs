//! `parquet` sink: writes its input as a directory of Parquet part files (zstd),
//! readable by pyarrow.dataset, polars `scan_parquet` and pandas.
//!
//! ```toml
//! [sinks.table]
//! kind = "parquet"
//! input = "audio"
//! path = "out/emodb-audio"   # a directory; relative to the pipeline file
//! rows_per_file = 100000     # start a new part file after this many rows
//! ```
//!
//! Layout: `part-00000.parquet`, ... ; `_quarantine.parquet` (every file that failed
//! upstream: path, clip_id, stage, reason, message); `_SUCCESS` (JSON counts), written
//! last and only when the run completed. Part files are written under a hidden
//! temporary name, fsync'd and renamed, so a reader never sees a half-written file;
//! an interrupted run leaves only complete part files and no `_SUCCESS`.
//! The previous contents written by sermo are removed when a run starts.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Array, ArrayRef, AsArray, StringArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::Deserialize;

use crate::engine::operator::require_inputs;
use crate::engine::{
    BatchStream, Component, ConfigContext, Frame, Operator, OperatorConfig, PlanInput, Problem,
    Quarantined, Role, TaskContext,
};
use crate::error::{Result, SermoError};
use crate::schema::{self, TableKind};

/// Name of the completion marker.
pub const SUCCESS_FILE: &str = "_SUCCESS";
/// Name of the quarantine table inside a sink directory.
pub const QUARANTINE_FILE: &str = "_quarantine.parquet";

/// Config of the `parquet` sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSinkConfig {
    /// Output directory.
    pub path: String,
    /// Rows per part file (default 100000).
    #[serde(default = "default_rows_per_file")]
    pub rows_per_file: i64,
    /// Rows per row group (default 1024); row groups are also cut at 64 MiB.
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
const ROW_GROUP_BYTES: usize = 32 << 20;
/// Quarantine rows buffered before a write.
const QUARANTINE_BATCH: usize = 256;

impl Component for ParquetSinkConfig {
    const KIND: &'static str = "parquet";
    const ROLE: Role = Role::Sink;
    const SUMMARY: &'static str =
        "write a directory of Parquet part files (zstd) with _quarantine.parquet and _SUCCESS";
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
        if self.rows_per_file < 1 {
            p.push(Problem::new(
                "rows_per_file",
                format!("must be at least 1, got {}", self.rows_per_file),
            ));
        }
        if self.row_group_rows < 1 {
            p.push(Problem::new(
                "row_group_rows",
                format!("must be at least 1, got {}", self.row_group_rows),
            ));
        }
        if !(1..=22).contains(&self.zstd_level) {
            p.push(Problem::new(
                "zstd_level",
                format!("must be between 1 and 22, got {}", self.zstd_level),
            ));
        }
        p
    }

    fn plan(&self, inputs: &[PlanInput]) -> std::result::Result<SchemaRef, String> {
        require_inputs(inputs, &TableKind::data_kinds())?;
        Ok(schema::empty_schema())
    }

    fn output_path(&self, ctx: &ConfigContext) -> Option<PathBuf> {
        Some(ctx.resolve(&self.path))
    }

    fn build(&self, ctx: &ConfigContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(ParquetSink {
            cfg: self.clone(),
            dir: ctx.resolve(&self.path),
        }))
    }
}

struct ParquetSink {
    cfg: ParquetSinkConfig,
    dir: PathBuf,
}

/// A file being written under a temporary name. Dropped before [`Pending::commit`],
/// it removes the temporary file: nothing half-written ever carries a final name.
struct Pending {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl Pending {
    fn new(dir: &Path, name: &str) -> Pending {
        Pending {
            tmp: dir.join(format!(".{name}.tmp")),
            dest: dir.join(name),
            committed: false,
        }
    }

    /// fsync the file, rename it to its final name, fsync the directory.
    fn commit(mut self, file: &File) -> std::io::Result<()> {
        file.sync_all()?;
        std::fs::rename(&self.tmp, &self.dest)?;
        if let Some(dir) = self.dest.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// An open part file: the writer and its guard.
struct Part {
    writer: ArrowWriter<File>,
    rows: usize,
}

fn io_err(stage: &str, op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SermoError {
    let stage = stage.to_string();
    let path = path.to_path_buf();
    move |e| SermoError::io(&stage, op, path, e)
}

/// Remove what a previous run of sermo wrote into `dir` (marker first, so no reader
/// mistakes the directory for complete output while it changes).
fn prepare_dir(dir: &Path, stage: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io_err(stage, "create directory", dir))?;
    let marker = dir.join(SUCCESS_FILE);
    if marker.exists() {
        std::fs::remove_file(&marker).map_err(io_err(stage, "remove", &marker))?;
    }
    let entries = std::fs::read_dir(dir).map_err(io_err(stage, "list", dir))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let ours = (name.starts_with("part-") && name.ends_with(".parquet"))
            || name == QUARANTINE_FILE
            || (name.starts_with('.') && name.ends_with(".tmp"));
        if ours {
            std::fs::remove_file(e.path()).map_err(io_err(stage, "remove", &e.path()))?;
        }
    }
    Ok(())
}

fn quarantine_batch(
    rows: &[Quarantined],
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    let col = |f: &dyn Fn(&Quarantined) -> &str| -> ArrayRef {
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

/// Routes rows to part writers. A clip's rows always go to the writer that got its
/// first rows (so they stay together and in order in one part file); a new clip goes
/// to an idle writer. The affinity map is bounded: it only needs to remember clips
/// that may still be streaming (long recordings arrive in chunks).
struct Router {
    n: usize,
    affinity: HashMap<String, usize>,
    next: usize,
}

/// Clips remembered by the router before it forgets the oldest generation.
const ROUTER_MEMORY: usize = 4096;

impl Router {
    fn new(n: usize) -> Self {
        Router {
            n: n.max(1),
            affinity: HashMap::new(),
            next: 0,
        }
    }

    /// Split `batch` into (writer, rows) pieces; `idle` tells which writers are free.
    fn route(
        &mut self,
        batch: &RecordBatch,
        idle: &[bool],
    ) -> std::result::Result<Vec<(usize, RecordBatch)>, String> {
        let ids = batch
            .column_by_name(schema::col::CLIP_ID)
            .and_then(|c| c.as_string_opt::<i32>());
        let target = (0..self.n)
            .map(|k| (self.next + k) % self.n)
            .find(|&w| idle.get(w).copied().unwrap_or(false))
            .unwrap_or(self.next % self.n);
        self.next = (target + 1) % self.n;
        let Some(ids) = ids.filter(|_| self.n > 1) else {
            return Ok(vec![(target, batch.clone())]);
        };
        if self.affinity.len() > ROUTER_MEMORY {
            self.affinity.clear();
        }
        let mut writer_of_row = Vec::with_capacity(ids.len());
        for i in 0..ids.len() {
            let id = if ids.is_valid(i) { ids.value(i) } else { "" };
            let w = match self.affinity.get(id) {
                Some(&w) => w,
                None => {
                    self.affinity.insert(id.to_string(), target);
                    target
                }
            };
            writer_of_row.push(w);
        }
        let first = writer_of_row[0];
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
}

impl ParquetSink {
    fn props(&self) -> Result<WriterProperties> {
        let level = ZstdLevel::try_new(self.cfg.zstd_level as i32)
            .map_err(|e| SermoError::stage("parquet", None, e.to_string()))?;
        Ok(WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_row_count(Some(self.cfg.row_group_rows as usize))
            .set_dictionary_enabled(false)
            .build())
    }
}

/// Writer state moved in and out of worker-pool jobs.
struct State {
    dir: PathBuf,
    stage: String,
    schema: SchemaRef,
    props: WriterProperties,
    rows_per_file: usize,
    /// Shared by the sink's writers: part numbers are unique across them.
    next_part: Arc<AtomicUsize>,
    part: Option<(Part, Pending)>,
    rows: u64,
    files: u64,
}

impl State {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            if self.part.is_none() {
                let name = format!(
                    "part-{:05}.parquet",
                    self.next_part.fetch_add(1, Ordering::SeqCst)
                );
                let pending = Pending::new(&self.dir, &name);
                let file = File::create(&pending.tmp).map_err(io_err(
                    &self.stage,
                    "create",
                    &pending.tmp,
                ))?;
                let writer =
                    ArrowWriter::try_new(file, self.schema.clone(), Some(self.props.clone()))
                        .map_err(|e| {
                            SermoError::stage(&self.stage, Some(pending.tmp.clone()), e.to_string())
                        })?;
                self.part = Some((Part { writer, rows: 0 }, pending));
            }
            let Some((part, pending)) = self.part.as_mut() else {
                return Err(SermoError::Internal("no open part".into()));
            };
            let room = self.rows_per_file - part.rows;
            let n = room.min(batch.num_rows() - offset);
            let slice = batch.slice(offset, n);
            part.writer.write(&slice).map_err(|e| {
                SermoError::stage(&self.stage, Some(pending.dest.clone()), e.to_string())
            })?;
            if part.writer.in_progress_size() >= ROW_GROUP_BYTES {
                part.writer.flush().map_err(|e| {
                    SermoError::stage(&self.stage, Some(pending.dest.clone()), e.to_string())
                })?;
            }
            part.rows += n;
            self.rows += n as u64;
            offset += n;
            if part.rows >= self.rows_per_file {
                self.close_part()?;
            }
        }
        Ok(())
    }

    fn close_part(&mut self) -> Result<()> {
        if let Some((part, pending)) = self.part.take() {
            let file = part.writer.into_inner().map_err(|e| {
                SermoError::stage(&self.stage, Some(pending.dest.clone()), e.to_string())
            })?;
            let dest = pending.dest.clone();
            pending
                .commit(&file)
                .map_err(io_err(&self.stage, "commit", &dest))?;
            self.files += 1;
        }
        Ok(())
    }
}

/// The quarantine table, written as rows arrive.
struct QuarantineWriter {
    writer: Option<(ArrowWriter<File>, Pending)>,
    buffered: Vec<Quarantined>,
    rows: u64,
}

impl QuarantineWriter {
    fn flush(&mut self, dir: &Path, stage: &str) -> Result<()> {
        if self.writer.is_none() {
            let pending = Pending::new(dir, QUARANTINE_FILE);
            let file = File::create(&pending.tmp).map_err(io_err(stage, "create", &pending.tmp))?;
            let w = ArrowWriter::try_new(file, schema::quarantine_schema(), None)
                .map_err(|e| SermoError::stage(stage, Some(pending.tmp.clone()), e.to_string()))?;
            self.writer = Some((w, pending));
        }
        if let Some((w, pending)) = self.writer.as_mut()
            && !self.buffered.is_empty()
        {
            let b = quarantine_batch(&self.buffered)
                .map_err(|e| SermoError::stage(stage, None, e.to_string()))?;
            w.write(&b)
                .map_err(|e| SermoError::stage(stage, Some(pending.dest.clone()), e.to_string()))?;
            self.rows += self.buffered.len() as u64;
            self.buffered.clear();
        }
        Ok(())
    }

    fn finish(mut self, dir: &Path, stage: &str) -> Result<u64> {
        self.flush(dir, stage)?;
        if let Some((w, pending)) = self.writer.take() {
            let file = w
                .into_inner()
                .map_err(|e| SermoError::stage(stage, Some(pending.dest.clone()), e.to_string()))?;
            let dest = pending.dest.clone();
            pending
                .commit(&file)
                .map_err(io_err(stage, "commit", &dest))?;
        }
        Ok(self.rows)
    }
}

impl Operator for ParquetSink {
    fn execute(self: Box<Self>, inputs: Vec<BatchStream>, ctx: TaskContext) -> BatchStream {
        let in_schema = inputs
            .first()
            .map(|s| s.schema())
            .unwrap_or_else(schema::empty_schema);
        let mut input = crate::engine::stream::merge_inputs(in_schema.clone(), inputs);
        let stream = async_stream::stream! {
            let stage = ctx.node_id.to_string();
            let props = match self.props() {
                Ok(p) => p,
                Err(e) => { yield Err(e); return; }
            };
            let dir = self.dir.clone();
            let st = stage.clone();
            match ctx.pool.run(move || prepare_dir(&dir, &st)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => { yield Err(e); return; }
                Err(p) => { yield Err(SermoError::stage(&stage, None, p.to_string())); return; }
            }
            let rows_metric = ctx.metrics.counter(&format!("sink.{stage}.rows"));
            // One part writer per worker thread, each busy with at most one job.
            let n_writers = ctx.pool.threads().max(1);
            let next_part = Arc::new(AtomicUsize::new(0));
            let mut idle: Vec<Option<State>> = (0..n_writers)
                .map(|_| {
                    Some(State {
                        dir: self.dir.clone(),
                        stage: stage.clone(),
                        schema: in_schema.clone(),
                        props: props.clone(),
                        rows_per_file: self.cfg.rows_per_file.max(1) as usize,
                        next_part: next_part.clone(),
                        part: None,
                        rows: 0,
                        files: 0,
                    })
                })
                .collect();
            let mut running = FuturesUnordered::new();
            let mut router = Router::new(n_writers);
            let mut quarantine = QuarantineWriter { writer: None, buffered: Vec::new(), rows: 0 };
            while let Some(item) = input.next().await {
                match item {
                    Ok(Frame::Batch(batch)) => {
                        let free: Vec<bool> = idle.iter().map(Option::is_some).collect();
                        let parts = match router.route(&batch, &free) {
                            Ok(p) => p,
                            Err(e) => { yield Err(SermoError::stage(&stage, None, e)); return; }
                        };
                        for (w, sub) in parts {
                            // Wait until writer `w` is free, collecting finished jobs.
                            while idle[w].is_none() {
                                let Some((j, res)) = running.next().await else { return };
                                match res {
                                    Ok((s, Ok(n))) => { idle[j] = Some(s); rows_metric.add(n); }
                                    Ok((_, Err(e))) => { yield Err(e); return; }
                                    Err(p) => { yield Err(SermoError::stage(&stage, None, format!("writer {p}"))); return; }
                                }
                            }
                            let Some(mut s) = idle[w].take() else { return };
                            let pool = ctx.pool.clone();
                            running.push(async move {
                                let n = sub.num_rows() as u64;
                                let r = pool.run(move || {
                                    let r = s.write(&sub).map(|()| n);
                                    (s, r)
                                }).await;
                                (w, r)
                            });
                        }
                    }
                    Ok(Frame::Quarantine(q)) => {
                        quarantine.buffered.push(q);
                        if quarantine.buffered.len() >= QUARANTINE_BATCH
                            && let Err(e) = quarantine.flush(&self.dir, &stage)
                        {
                            yield Err(e);
                            return;
                        }
                    }
                    // Upstream failed: drop the unfinished parts (their guards remove them).
                    Err(e) => { yield Err(e); return; }
                }
            }
            while let Some((j, res)) = running.next().await {
                match res {
                    Ok((s, Ok(n))) => { idle[j] = Some(s); rows_metric.add(n); }
                    Ok((_, Err(e))) => { yield Err(e); return; }
                    Err(p) => { yield Err(SermoError::stage(&stage, None, format!("writer {p}"))); return; }
                }
            }
            if ctx.cancel.is_cancelled() {
                return;
            }
            // Complete: close the open parts, the quarantine table, then the marker.
            let states: Vec<State> = idle.into_iter().flatten().collect();
            let dir = self.dir.clone();
            let st = stage.clone();
            let done = ctx.pool.run(move || -> Result<(u64, u64, u64)> {
                let (mut rows, mut files) = (0, 0);
                for mut s in states {
                    s.close_part()?;
                    rows += s.rows;
                    files += s.files;
                }
                let q = quarantine.finish(&dir, &st)?;
                let marker = Pending::new(&dir, SUCCESS_FILE);
                let body = serde_json::json!({ "rows": rows, "files": files, "quarantined": q });
                std::fs::write(&marker.tmp, format!("{body}\n")).map_err(io_err(&st, "write", &marker.tmp))?;
                let f = File::open(&marker.tmp).map_err(io_err(&st, "open", &marker.tmp))?;
                marker.commit(&f).map_err(io_err(&st, "commit", &dir.join(SUCCESS_FILE)))?;
                Ok((rows, files, q))
            }).await;
            match done {
                Ok(Ok((_, files, q))) => {
                    ctx.metrics.counter(&format!("sink.{stage}.files")).add(files);
                    ctx.metrics.counter(&format!("sink.{stage}.quarantined")).add(q);
                }
                Ok(Err(e)) => yield Err(e),
                Err(p) => yield Err(SermoError::stage(&stage, None, p.to_string())),
            }
        };
        BatchStream::new(schema::empty_schema(), stream)
    }
}
