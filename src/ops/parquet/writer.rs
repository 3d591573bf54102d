//! The sink's writers: one per worker thread, each writing the rows routed to it
//! into part files, one open part per hive partition (split by partition value,
//! partition columns dropped), and the Parquet writer properties. Closing the parts
//! (the commit point) is [`super::commit`]'s.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::sink::io_err;
use super::sink_config::{Header, ParquetSinkConfig};
use crate::engine::Quarantined;
use crate::error::{Result, SermoError};
use crate::schema::col;
use crate::store::hive::{NULL_PARTITION, escape_value, value_text};
use crate::store::ledger::{Entry, Ledger, QuarantineEntry};
use crate::store::part::{Budget, Pending, SinkFile};

/// Row groups are flushed once their buffered size reaches this many bytes.
const ROW_GROUP_BYTES: usize = 16 << 20;

/// A part file being written for one partition.
pub(super) struct OpenPart {
    pub(super) writer: ArrowWriter<SinkFile>,
    pub(super) pending: Pending,
    pub(super) rel: String,
    pub(super) rows: u64,
    /// Clips with rows in this part.
    pub(super) clips: HashSet<Arc<str>>,
}

/// Shared by a sink's writers.
pub(super) struct Shared {
    pub(super) dir: PathBuf,
    pub(super) stage: String,
    pub(super) file_schema: SchemaRef,
    /// Indices of the partition columns in the input schema.
    pub(super) partition_cols: Vec<(usize, String)>,
    pub(super) props: WriterProperties,
    pub(super) rows_per_file: u64,
    pub(super) next_part: AtomicUsize,
    pub(super) ledger: Mutex<Ledger>,
    pub(super) budget: Budget,
    pub(super) has_clip_id: bool,
    /// `keep_partial`: a clip failing after some rows keeps them.
    pub(super) keep_partial: bool,
}

/// What a writer is told, in order.
pub(super) enum Job {
    Rows(RecordBatch),
    Quarantine(Quarantined),
    Done(Arc<str>),
}

/// One writer: its open parts (one per partition) and the commit it is building.
pub(super) struct Writer {
    pub(super) shared: Arc<Shared>,
    pub(super) parts: BTreeMap<String, OpenPart>,
    /// Clips with rows here whose `Done` has not come.
    pub(super) open: HashSet<Arc<str>>,
    /// Clips quarantined after some of their rows were written here: the commit
    /// drops those rows (one clip, one outcome).
    pub(super) failed: HashSet<Arc<str>>,
    pub(super) done: Vec<String>,
    pub(super) quarantine: Vec<QuarantineEntry>,
    pub(super) rows: u64,
    /// Committed by this writer in this run.
    pub(super) committed: Vec<Entry>,
}

impl Writer {
    fn err(&self, path: Option<PathBuf>, e: impl ToString) -> SermoError {
        SermoError::stage(&self.shared.stage, path, e.to_string())
    }

    pub(super) fn run(&mut self, jobs: Vec<Job>) -> Result<()> {
        for job in jobs {
            match job {
                Job::Rows(b) => self.write(&b)?,
                Job::Quarantine(q) => {
                    // A clip's rows and its quarantine record come to the same
                    // writer before its `Done`: rows here mean it failed part-way.
                    let had_rows = q.whole_clip && self.open.contains(q.clip_id.as_str());
                    let partial = had_rows && self.shared.keep_partial;
                    if had_rows && !partial {
                        self.failed.insert(Arc::from(q.clip_id.as_str()));
                    }
                    self.quarantine.push(QuarantineEntry {
                        path: q.path,
                        clip_id: q.clip_id,
                        stage: q.stage,
                        reason: q.reason,
                        message: q.message,
                        partial,
                    })
                }
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
            if let Some(ids) = piece
                .column_by_name(col::CLIP_ID)
                .and_then(|c| c.as_string_opt::<i32>())
            {
                for i in 0..ids.len() {
                    if ids.is_valid(i) && !part.clips.contains(ids.value(i)) {
                        part.clips.insert(Arc::from(ids.value(i)));
                    }
                }
            }
            let dest = part.pending.dest.clone();
            part.writer
                .write(&piece)
                .map_err(|e| SermoError::stage_source(&self.shared.stage, Some(dest.clone()), e))?;
            if part.writer.in_progress_size() >= ROW_GROUP_BYTES {
                part.writer
                    .flush()
                    .map_err(|e| SermoError::stage_source(&self.shared.stage, Some(dest), e))?;
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
            clips: HashSet::new(),
        })
    }
}

/// Writer properties of the part files: zstd, row group size, the lineage as
/// key-value metadata.
pub(super) fn props(
    cfg: &ParquetSinkConfig,
    stage: &str,
    header: &Header,
    schema: &Schema,
) -> Result<WriterProperties> {
    let level = ZstdLevel::try_new(cfg.zstd_level as i32)
        .map_err(|e| SermoError::stage_source(stage, None, e))?;
    let mut kv = vec![
        KeyValue::new("sermo.version".into(), header.sermo_version.clone()),
        KeyValue::new("sermo.pipeline_hash".into(), header.pipeline_hash.clone()),
        KeyValue::new("sermo.lineage_hash".into(), header.lineage_hash.clone()),
        KeyValue::new(
            "sermo.lineage".into(),
            serde_json::to_string(&header.settings).unwrap_or_default(),
        ),
    ];
    for key in [crate::schema::FEATURES_KEY, crate::schema::ENCODER_KEY] {
        if let Some(f) = schema.metadata().get(key) {
            kv.push(KeyValue::new(key.into(), f.clone()));
        }
    }
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(cfg.row_group_rows as usize))
        .set_dictionary_enabled(false)
        .set_key_value_metadata(Some(kv))
        .build())
}
