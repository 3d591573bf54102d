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
//! (one line per commit, see [`crate::store::ledger`]), `_sermo.json` (the settings the
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

//!
//! Files: this one holds the operator (routing frames to the writers, driving
//! them, finishing the run); `sink_config.rs` the settings and the `_sermo.json` /
//! `_SUCCESS` records; `prepare.rs` resume and overwrite preparation; `writer.rs`
//! the part-file writers; `commit.rs` the commit point and the finishing of the
//! output.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::commit::{finish_output, swap_into_place};
use super::prepare::Prepared;
use super::writer::{Job, Shared, Writer, props};
use crate::engine::{BatchStream, Counter, Frame, Operator, Resume, TaskContext, WorkerPool};
use crate::error::{Result, SermoError};
use crate::schema::{self, col};
use crate::store::lock::DirLock;

pub use super::sink_config::{
    HEADER_FILE, Header, Mode, ParquetSinkConfig, QUARANTINE_FILE, SUCCESS_FILE, Success,
    schema_hash,
};

/// Jobs queued for one writer before the sink stops reading its input.
const QUEUE_JOBS: usize = 64;

pub(super) struct ParquetSink {
    pub(super) cfg: ParquetSinkConfig,
    pub(super) root: PathBuf,
    pub(super) prepared: Option<Prepared>,
    /// The output directory's lock, held from `claim` until the sink ends.
    pub(super) lock: Option<Arc<DirLock>>,
    /// The output directory, when `claim` created it (removed again at the end
    /// if nothing was written into it).
    pub(super) created: Option<PathBuf>,
}

impl Drop for ParquetSink {
    fn drop(&mut self) {
        // Release the lock (its file goes), then leave no empty folder behind.
        drop(self.lock.take());
        if let Some(d) = self.created.take() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

pub(super) fn io_err(
    stage: &str,
    op: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> SermoError {
    let stage = stage.to_string();
    let path = path.to_path_buf();
    move |e| SermoError::io(&stage, op, path, e)
}

impl Operator for ParquetSink {
    fn claim(&mut self, ctx: &TaskContext) -> Result<()> {
        self.claim_dir(ctx)
    }

    fn prepare(&mut self, ctx: &TaskContext) -> Result<Resume> {
        self.prepare_dir(ctx)
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
            let props = match props(&this.cfg, &stage, &prep.header, &file_schema) {
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
                keep_partial: this.cfg.keep_partial,
            });
            let rows_metric = ctx.metrics.counter(&format!("sink.{stage}.rows"));
            // One writer per worker thread, each busy with at most one job.
            let n = ctx.pool.threads().max(1);
            let mut idle: Vec<Option<Writer>> = (0..n)
                .map(|_| Some(Writer {
                    shared: shared.clone(),
                    parts: BTreeMap::new(),
                    open: HashSet::new(),
                    failed: HashSet::new(),
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
                running.extend(start_queued(&ctx.pool, &mut queues, &mut idle));
                let full = queues.iter().any(|q| q.len() >= QUEUE_JOBS);
                let item = if full {
                    None
                } else {
                    tokio::select! {
                        biased;
                        Some(outcome) = running.next(), if !running.is_empty() => {
                            if let Err(e) = finished(outcome, &mut idle, &rows_metric, &stage) {
                                yield Err(e); return;
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
                        let Some(outcome) = running.next().await else { break };
                        if let Err(e) = finished(outcome, &mut idle, &rows_metric, &stage) {
                            yield Err(e); return;
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
                running.extend(start_queued(&ctx.pool, &mut queues, &mut idle));
                let Some(outcome) = running.next().await else { break };
                if let Err(e) = finished(outcome, &mut idle, &rows_metric, &stage) {
                    yield Err(e); return;
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
            let lock = this.lock.clone();
            let staged = dir != dest;
            let done = ctx.pool.run(move || -> Result<Success> {
                for mut w in writers {
                    w.commit()?;
                    entries.append(&mut w.committed);
                }
                finish_output(&dir, &st, &entries, &mut success, &budget)?;
                if staged {
                    swap_into_place(&dir, &dest, lock.as_deref())
                        .map_err(io_err(&st, "replace", &dest))?;
                }
                Ok(success)
            }).await;
            match done {
                Ok(Ok(s)) => {
                    ctx.metrics.counter(&format!("sink.{stage}.files")).add(s.files);
                    ctx.metrics.counter(&format!("sink.{stage}.quarantined")).add(s.quarantined);
                }
                Ok(Err(e)) => yield Err(e),
                Err(p) => yield Err(SermoError::stage_source(&stage, None, p)),
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
    pool: Arc<WorkerPool>,
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

/// Start every idle writer that has queued jobs, in writer order: take it out of
/// `idle` with its queue and give back the runs, for the caller to await (each
/// gives the writer back through [`finished`]). Used while the input flows and
/// again when it has ended, to flush the queues.
fn start_queued(
    pool: &Arc<WorkerPool>,
    queues: &mut [Vec<Job>],
    idle: &mut [Option<Writer>],
) -> Vec<impl Future<Output = JobOutcome> + use<>> {
    let mut started = Vec::new();
    for w in 0..queues.len() {
        if !queues[w].is_empty() && idle[w].is_some() {
            let Some(writer) = idle[w].take() else {
                continue;
            };
            let jobs = std::mem::take(&mut queues[w]);
            started.push(run_jobs(pool.clone(), w, writer, jobs));
        }
    }
    started
}

/// A writer's run has ended: on success put the writer back in `idle` and count
/// its rows; a failed run gives its error, a panicked one a stage error.
fn finished(
    (w, rows, res): JobOutcome,
    idle: &mut [Option<Writer>],
    rows_metric: &Counter,
    stage: &str,
) -> Result<()> {
    match res {
        Ok((wr, Ok(()))) => {
            idle[w] = Some(wr);
            rows_metric.add(rows);
            Ok(())
        }
        Ok((_, Err(e))) => Err(e),
        Err(p) => Err(SermoError::stage(stage, None, format!("writer {p}"))),
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

/// The schema stored in the part files: the input minus the partition columns.
pub(super) fn file_schema(input: &Schema, partition_by: &[String]) -> SchemaRef {
    let fields: Vec<_> = input
        .fields()
        .iter()
        .filter(|f| !partition_by.iter().any(|p| p == f.name()))
        .cloned()
        .collect();
    Arc::new(Schema::new_with_metadata(fields, input.metadata().clone()))
}
