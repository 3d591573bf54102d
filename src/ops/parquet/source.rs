//! `parquet` source: reads a table written by sermo (or any Parquet dataset) back
//! as a stream, with column projection and a SQL filter, in bounded memory.
//!
//! ```toml
//! [sources.feats]
//! kind = "parquet"
//! path = "out/features"             # a directory (sermo table, hive dataset) or a file
//! columns = ["clip_id", "label", "speaker", "mfcc"]   # optional projection
//! where = "label IN ('angry', 'sad') AND corpus = 'ravdess'"   # optional
//! batch_rows = 1024
//! ```
//! - In a sermo table only committed files are read: a folder with `_ledger.jsonl`
//!   contributes exactly the files its ledger lists (leftovers of a crash are not
//!   data). Elsewhere every `*.parquet` not starting with `_` or `.` is read.
//! - Hive folders (`label=angry/`, `shard=3/`) become text columns.
//! - The output schema (kind and feature settings included) comes from the first
//!   file at plan time; a file that does not match fails the run naming it.
//! - Rows are read `batch_rows` at a time; the filter runs per batch
//!   ([`super::filter`]). `--shard` and resume apply by `clip_id`, and a `Done` frame
//!   follows each clip (sermo tables keep a clip's rows together).

use std::collections::HashSet;
use std::fs::File;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use serde::Deserialize;

use super::filter::Filter;
use crate::engine::{
    BatchStream, Component, ConfigContext, Frame, Operator, OperatorConfig, PlanInput, Problem,
    Role, TaskContext,
};
use crate::error::{Result, SermoError};
use crate::schema::col;
use crate::store::dataset::{DataFile, list_dataset};

/// Config of the `parquet` source.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParquetSourceConfig {
    /// A directory or a file.
    pub path: String,
    /// Columns to read (default: all).
    pub columns: Option<Vec<String>>,
    /// SQL boolean expression selecting rows.
    #[serde(rename = "where")]
    pub filter: Option<String>,
    /// Rows per batch (default 1024).
    #[serde(default = "default_batch_rows")]
    pub batch_rows: i64,
}

fn default_batch_rows() -> i64 {
    1024
}

impl Component for ParquetSourceConfig {
    const KIND: &'static str = "parquet";
    const ROLE: Role = Role::Source;
    const SUMMARY: &'static str =
        "read a Parquet table or dataset (sermo's or any) with column projection and a SQL filter";
}

/// The schema of a file plus its partition columns (text).
fn full_schema(file: &DataFile) -> std::result::Result<SchemaRef, String> {
    let f =
        File::open(&file.path).map_err(|e| format!("cannot open {}: {e}", file.path.display()))?;
    let b = ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| format!("{} is not readable Parquet: {e}", file.path.display()))?;
    let s = b.schema();
    let mut fields: Vec<Field> = s.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (k, _) in &file.partitions {
        if s.field_with_name(k).is_err() {
            fields.push(Field::new(k, DataType::Utf8, true));
        }
    }
    Ok(Arc::new(Schema::new_with_metadata(
        fields,
        s.metadata().clone(),
    )))
}

impl ParquetSourceConfig {
    fn filter(&self) -> std::result::Result<Option<Filter>, String> {
        self.filter.as_deref().map(Filter::parse).transpose()
    }

    /// (full schema of the first file, output schema).
    fn schemas(&self, ctx: &ConfigContext) -> std::result::Result<(SchemaRef, SchemaRef), String> {
        let files = list_dataset(&ctx.resolve(&self.path))?;
        let full = full_schema(&files[0])?;
        if let Some(f) = self.filter()? {
            f.check(&full)?;
        }
        let out = match &self.columns {
            None => full.clone(),
            Some(cols) => {
                let mut fields = Vec::new();
                for c in cols {
                    match full.field_with_name(c) {
                        Ok(f) => fields.push(f.clone()),
                        Err(_) => {
                            let names: Vec<&str> =
                                full.fields().iter().map(|f| f.name().as_str()).collect();
                            return Err(format!(
                                "has no column `{c}` to select (columns: {})",
                                names.join(", ")
                            ));
                        }
                    }
                }
                Arc::new(Schema::new_with_metadata(fields, full.metadata().clone()))
            }
        };
        Ok((full, out))
    }
}

impl OperatorConfig for ParquetSourceConfig {
    fn check(&self, _ctx: &ConfigContext) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.path.trim().is_empty() {
            p.push(Problem::new("path", "is empty"));
        }
        if let Err(e) = self.filter() {
            p.push(Problem::new("where", e));
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
        Err("needs the pipeline's folder to find its files".into())
    }

    fn plan_in(
        &self,
        _inputs: &[PlanInput],
        ctx: &ConfigContext,
    ) -> std::result::Result<SchemaRef, String> {
        self.schemas(ctx).map(|(_, out)| out)
    }

    fn build(&self, ctx: &ConfigContext) -> Result<Box<dyn Operator>> {
        let (full, out) = self
            .schemas(ctx)
            .map_err(|e| SermoError::stage("parquet", None, e))?;
        let files = list_dataset(&ctx.resolve(&self.path))
            .map_err(|e| SermoError::stage("parquet", None, e))?;
        let filter = self
            .filter()
            .map_err(|e| SermoError::stage("parquet", None, e))?;
        Ok(Box::new(ParquetSource {
            files,
            full,
            out,
            filter,
            batch_rows: self.batch_rows.max(1) as usize,
        }))
    }
}

struct ParquetSource {
    files: Vec<DataFile>,
    full: SchemaRef,
    out: SchemaRef,
    filter: Option<Filter>,
    batch_rows: usize,
}

/// Reading state of one file, moved in and out of pool jobs.
struct Reading {
    reader: ParquetRecordBatchReader,
    file: DataFile,
    /// Names of the columns the reader yields, in order.
    read: Vec<String>,
}

/// What one read step gives: the rows to emit and the clips completed before them.
struct Step {
    batch: Option<RecordBatch>,
    /// Clip ids whose rows ended within this batch (in order).
    done: Vec<String>,
}

impl ParquetSource {
    /// Columns to read from files: output ∪ filter ∪ clip_id (for shards, resume
    /// and `Done`), minus partition columns.
    fn needed(&self) -> Vec<String> {
        let mut want: Vec<String> = self.out.fields().iter().map(|f| f.name().clone()).collect();
        if let Some(f) = &self.filter {
            want.extend(f.columns());
        }
        if self.full.field_with_name(col::CLIP_ID).is_ok() {
            want.push(col::CLIP_ID.to_string());
        }
        let mut seen = HashSet::new();
        want.retain(|c| seen.insert(c.clone()));
        want
    }
}

fn open(
    file: &DataFile,
    needed: &[String],
    batch_rows: usize,
) -> std::result::Result<Reading, String> {
    file.verify()?;
    let f = File::open(&file.path).map_err(|e| format!("cannot open: {e}"))?;
    let b = ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| format!("not readable Parquet: {e}"))?;
    let schema = b.schema().clone();
    let mut idx: Vec<usize> = needed
        .iter()
        .filter_map(|c| schema.index_of(c).ok())
        .collect();
    idx.sort_unstable();
    let read: Vec<String> = idx
        .iter()
        .map(|&i| schema.field(i).name().clone())
        .collect();
    let mask = ProjectionMask::roots(b.parquet_schema(), idx);
    let reader = b
        .with_projection(mask)
        .with_batch_size(batch_rows)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(Reading {
        reader,
        file: file.clone(),
        read,
    })
}

/// Add partition columns, filter, apply shard/resume, project to `out`.
fn step(
    r: &mut Reading,
    full: &Schema,
    out: &SchemaRef,
    filter: Option<&Filter>,
    keep_clip: &(dyn Fn(&str) -> bool + Send + Sync),
    last_clip: &mut Option<String>,
) -> std::result::Result<Option<Step>, String> {
    let Some(batch) = r.reader.next() else {
        return Ok(None);
    };
    let batch = batch.map_err(|e| e.to_string())?;
    let n = batch.num_rows();
    let mut fields: Vec<Field> = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (name, c) in r.read.iter().zip(batch.columns()) {
        let f = full
            .field_with_name(name)
            .map_err(|_| format!("column `{name}` is not in the table's schema"))?;
        fields.push(f.clone());
        cols.push(c.clone());
    }
    for (k, v) in &r.file.partitions {
        if !r.read.contains(k) {
            fields.push(Field::new(k, DataType::Utf8, true));
            cols.push(Arc::new(StringArray::from(vec![v.as_str(); n])));
        }
    }
    let wide = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
        .map_err(|e| format!("does not match the table's schema: {e}"))?;
    // Clips completed in this batch (before the last row's clip).
    let mut done = Vec::new();
    let mut keep: Vec<bool> = vec![true; n];
    if let Some(ids) = wide
        .column_by_name(col::CLIP_ID)
        .and_then(|c| c.as_string_opt::<i32>())
    {
        for (i, k) in keep.iter_mut().enumerate() {
            let id = if ids.is_valid(i) { ids.value(i) } else { "" };
            if last_clip.as_deref() != Some(id) {
                if let Some(prev) = last_clip.take() {
                    done.push(prev);
                }
                *last_clip = Some(id.to_string());
            }
            *k = keep_clip(id);
        }
    }
    let mut mask = BooleanArray::from(keep);
    if let Some(f) = filter {
        let m = f.evaluate(&wide)?;
        mask =
            arrow::compute::kernels::boolean::and_kleene(&mask, &m).map_err(|e| e.to_string())?;
    }
    let kept = arrow::compute::filter_record_batch(&wide, &mask).map_err(|e| e.to_string())?;
    let mut out_cols = Vec::new();
    for f in out.fields() {
        let c = kept
            .column_by_name(f.name())
            .ok_or_else(|| format!("has no column `{}`", f.name()))?;
        let c = if c.data_type() != f.data_type() {
            return Err(format!(
                "column `{}` is {} here but {} in the first file",
                f.name(),
                c.data_type(),
                f.data_type()
            ));
        } else {
            c.clone()
        };
        out_cols.push(c);
    }
    let b = RecordBatch::try_new(out.clone(), out_cols)
        .map_err(|e| format!("does not match the table's schema: {e}"))?;
    Ok(Some(Step {
        batch: (b.num_rows() > 0).then_some(b),
        done,
    }))
}

impl Operator for ParquetSource {
    fn execute(self: Box<Self>, _inputs: Vec<BatchStream>, ctx: TaskContext) -> BatchStream {
        let out_schema = self.out.clone();
        let stream = async_stream::stream! {
            let needed = self.needed();
            let full = self.full.clone();
            let filter = self.filter.clone().map(Arc::new);
            let shard = ctx.shard;
            let skip = ctx.skip.clone();
            let keep: Arc<dyn Fn(&str) -> bool + Send + Sync> = Arc::new(move |id: &str| {
                shard.is_none_or(|s| s.owns(id)) && !skip.as_ref().is_some_and(|k| k.contains(id))
            });
            let rows = ctx.metrics.counter(&format!("source.{}.rows", ctx.node_id));
            for file in self.files.clone() {
                let path = file.path.clone();
                let err = |m: String| SermoError::stage(&ctx.node_id, Some(path.clone()), m);
                let (n2, br) = (needed.clone(), self.batch_rows);
                let f2 = file.clone();
                let mut reading = match ctx.pool.run(move || open(&f2, &n2, br)).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(m)) => { yield Err(err(m)); return; }
                    Err(p) => { yield Err(err(p.to_string())); return; }
                };
                let mut last: Option<String> = None;
                loop {
                    if ctx.cancel.is_cancelled() {
                        return;
                    }
                    let (full2, out2, filt, keep2) = (full.clone(), self.out.clone(), filter.clone(), keep.clone());
                    let job = ctx.pool.run(move || {
                        let r = step(&mut reading, &full2, &out2, filt.as_deref(), keep2.as_ref(), &mut last);
                        (reading, last, r)
                    }).await;
                    let (back, l, res) = match job {
                        Ok(x) => x,
                        Err(p) => { yield Err(err(p.to_string())); return; }
                    };
                    reading = back;
                    last = l;
                    match res {
                        Ok(Some(s)) => {
                            if let Some(b) = s.batch {
                                rows.add(b.num_rows() as u64);
                                yield Ok(Frame::Batch(b));
                            }
                            for id in s.done {
                                if keep(&id) {
                                    yield Ok(Frame::Done(Arc::from(id.as_str())));
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(m) => { yield Err(err(m)); return; }
                    }
                }
                if let Some(id) = last
                    && keep(&id)
                {
                    yield Ok(Frame::Done(Arc::from(id.as_str())));
                }
            }
        };
        BatchStream::new(out_schema, stream)
    }
}
