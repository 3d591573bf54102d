//! Committing: how a writer closes its part files (fsync, rename, directory
//! fsync) and appends one ledger line, the commit point ([`Writer::commit`]); how a
//! complete output is finished (`_quarantine.parquet`, then `_SUCCESS`) and, in
//! overwrite mode, swapped into place; and the atomic JSON write used for
//! `_sermo.json` and `_SUCCESS`.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;

use arrow::array::StringArray;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use serde::Serialize;

use super::sink::io_err;
use super::sink_config::{QUARANTINE_FILE, SUCCESS_FILE, Success};
use super::writer::{Shared, Writer};
use crate::error::{Result, SermoError};
use crate::schema;
use crate::schema::col;
use crate::store::ledger::{Entry, FileEntry, QuarantineEntry};
use crate::store::lock::DirLock;
use crate::store::part::{Budget, Pending, SinkFile, sync_dir};

impl Writer {
    /// Close every open part and append one ledger line: the commit point.
    pub(super) fn commit(&mut self) -> Result<()> {
        if self.parts.is_empty() && self.done.is_empty() && self.quarantine.is_empty() {
            return Ok(());
        }
        let s = self.shared.clone();
        let mut files = Vec::new();
        let mut dirs = BTreeSet::new();
        let mut renamed = Vec::new();
        let failed = std::mem::take(&mut self.failed);
        for (key, mut part) in std::mem::take(&mut self.parts) {
            let partition = KeyValue::new("sermo.partition".into(), key.clone());
            part.writer.append_key_value_metadata(partition.clone());
            let dest = part.pending.dest.clone();
            let sink_file = part
                .writer
                .into_inner()
                .map_err(|e| SermoError::stage_source(&s.stage, Some(dest.clone()), e))?;
            let (mut file, mut bytes, mut blake3) = sink_file.finish();
            let mut pending = part.pending;
            if part.clips.iter().any(|c| failed.contains(c)) {
                let kept = without_clips(&pending, &failed, &s, partition)?;
                match kept {
                    // Every row of the part was a failed clip's: no file.
                    None => continue,
                    Some((p, f, b, h, rows)) => {
                        (pending, file, bytes, blake3, part.rows) = (p, f, b, h, rows);
                    }
                }
            }
            pending
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
                blake3: Some(blake3),
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

/// A part rewritten by [`without_clips`]: its temporary file, the open file,
/// bytes, BLAKE3 hash and rows.
type Rewritten = (Pending, std::fs::File, u64, String, u64);

/// The closed temporary part `pending` rewritten without the rows of `failed`
/// clips (read back one row group at a time: memory stays bounded), as a new
/// temporary file for the same final name; `None` when no row is left. The old
/// temporary file is removed when `pending` drops.
fn without_clips(
    pending: &Pending,
    failed: &HashSet<Arc<str>>,
    s: &Shared,
    partition: KeyValue,
) -> Result<Option<Rewritten>> {
    use arrow::array::{Array, AsArray, BooleanArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let err = |e: &dyn std::fmt::Display| {
        SermoError::stage(
            &s.stage,
            Some(pending.tmp.clone()),
            format!("dropping the rows of failed clips: {e}"),
        )
    };
    let src = std::fs::File::open(&pending.tmp).map_err(|e| err(&e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(src)
        .map_err(|e| err(&e))?
        .build()
        .map_err(|e| err(&e))?;
    let name = pending
        .dest
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let dir = pending.dest.parent().unwrap_or(&s.dir);
    let mut out = Pending::new(dir, &name);
    out.tmp = dir.join(format!(".{name}.kept.tmp"));
    let sink = SinkFile::create(&out.tmp, s.budget.clone())
        .map_err(io_err(&s.stage, "create", &out.tmp))?;
    let mut w = ArrowWriter::try_new(sink, s.file_schema.clone(), Some(s.props.clone()))
        .map_err(|e| err(&e))?;
    let mut rows = 0u64;
    for b in reader {
        let b = b.map_err(|e| err(&e))?;
        let Some(ids) = b
            .column_by_name(col::CLIP_ID)
            .and_then(|c| c.as_string_opt::<i32>())
        else {
            return Err(err(&"no clip_id column"));
        };
        let keep: BooleanArray = (0..ids.len())
            .map(|i| Some(!(ids.is_valid(i) && failed.contains(ids.value(i)))))
            .collect();
        let kept = arrow::compute::filter_record_batch(&b, &keep).map_err(|e| err(&e))?;
        if kept.num_rows() == 0 {
            continue;
        }
        let kept = RecordBatch::try_new(s.file_schema.clone(), kept.columns().to_vec())
            .map_err(|e| err(&e))?;
        rows += kept.num_rows() as u64;
        w.write(&kept).map_err(|e| err(&e))?;
    }
    if rows == 0 {
        drop(w);
        // `out` drops here too, removing its temporary file.
        return Ok(None);
    }
    w.append_key_value_metadata(partition);
    let (file, bytes, hash) = w.into_inner().map_err(|e| err(&e))?.finish();
    Ok(Some((out, file, bytes, hash, rows)))
}

pub(super) fn write_json_atomic<T: Serialize>(
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
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.partial))
                    .collect::<arrow::array::BooleanArray>(),
            ),
        ],
    )
}

/// Write `_quarantine.parquet` and `_SUCCESS` for a complete output.
pub(super) fn finish_output(
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
        .map_err(|e| SermoError::stage_source(stage, Some(pending.tmp.clone()), e))?;
    let b = quarantine_batch(&records).map_err(|e| SermoError::stage_source(stage, None, e))?;
    w.write(&b)
        .map_err(|e| SermoError::stage_source(stage, Some(pending.dest.clone()), e))?;
    let (file, _) = w
        .into_inner()
        .map_err(|e| SermoError::stage_source(stage, Some(pending.dest.clone()), e))?
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
/// The lock of `dest` is linked into `staging` first, so that it is still in
/// the table directory, and still held, once the new output is in place.
pub(super) fn swap_into_place(
    staging: &Path,
    dest: &Path,
    lock: Option<&DirLock>,
) -> std::io::Result<()> {
    if let Some(l) = lock {
        l.link_into(staging)?;
    }
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
