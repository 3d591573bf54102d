//! Locating and lazily scanning a sermo table.
//!
//! A table is a directory written by the `parquet` sink: part files `part-*.parquet`
//! at the top level, or under hive-style folders (`corpus=ravdess/label=angry/`), or
//! under shard folders `shard=I/` holding either layout. The folder keys are not
//! stored in the files; they become string columns of the scan. `_quarantine.parquet`
//! files (top level and/or per shard) hold the files that failed. Everything else
//! (`_SUCCESS`, `_manifest.json`, `_sermo.json`, `_ledger.jsonl`, hidden temporary
//! files `.part-….tmp`, folders starting with `.` or `_`) is ignored: only files
//! named `part-*.parquet` are data. A part listed in a `_ledger.jsonl` is checked
//! against it (size and content hash) when the table is opened: an altered part is
//! reported by path, never read.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use polars::prelude::*;

use super::{AnalysisError, Result};
use crate::store::QUARANTINE_FILE;
use crate::store::hive::{folder_pairs, hive_pair};
use crate::store::ledger::{self, LEDGER_FILE};
use crate::store::part::is_part_name;

/// Check every part a ledger lists (and that is read) against its entry.
fn verify_committed(ledgers: &[PathBuf], parts: &[PathBuf]) -> Result<()> {
    let reading: std::collections::HashSet<&Path> = parts.iter().map(PathBuf::as_path).collect();
    for l in ledgers {
        let dir = l.parent().unwrap_or(Path::new("."));
        let rec = ledger::read(l).map_err(|message| AnalysisError::Parquet {
            path: l.clone(),
            message,
        })?;
        for f in rec.entries.iter().flat_map(|e| &e.files) {
            let p = dir.join(&f.path);
            if reading.contains(p.as_path()) {
                f.verify(&p).map_err(|message| AnalysisError::Altered {
                    path: p.clone(),
                    message,
                })?;
            }
        }
    }
    Ok(())
}

/// The files of one sermo table.
#[derive(Debug, Clone)]
pub struct Table {
    /// The path as given (a directory or one `.parquet` file).
    pub path: PathBuf,
    /// The part files, sorted.
    pub parts: Vec<PathBuf>,
    /// The keys of the partition folders (`shard`, `corpus`, ...), outermost first;
    /// the same for every part file.
    pub partition_columns: Vec<String>,
    /// The `_quarantine.parquet` files, sorted.
    pub quarantine: Vec<PathBuf>,
}

impl Table {
    /// Find the files of the table at `path` (a directory, or one `.parquet` file).
    /// A table without part files is returned as such; [`Table::scan`] refuses it.
    pub fn open(path: &Path) -> Result<Table> {
        let meta = std::fs::metadata(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                AnalysisError::NotFound {
                    path: path.to_path_buf(),
                }
            } else {
                AnalysisError::Io {
                    op: "read",
                    path: path.to_path_buf(),
                    source: e,
                }
            }
        })?;
        if path.to_str().is_none() {
            return Err(AnalysisError::NonUtf8 {
                path: path.to_path_buf(),
            });
        }
        if meta.is_file() {
            if path.extension().and_then(|e| e.to_str()) != Some("parquet") {
                return Err(AnalysisError::NotATable {
                    path: path.to_path_buf(),
                });
            }
            return Ok(Table {
                path: path.to_path_buf(),
                parts: vec![path.to_path_buf()],
                partition_columns: vec![],
                quarantine: vec![],
            });
        }
        let mut parts = Vec::new();
        let mut quarantine = Vec::new();
        let mut ledgers = Vec::new();
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(AnalysisError::io("list", &dir))?;
            for entry in entries {
                let entry = entry.map_err(AnalysisError::io("list", &dir))?;
                let p = entry.path();
                let name = entry.file_name();
                let Some(name) = name.to_str() else {
                    return Err(AnalysisError::NonUtf8 { path: p });
                };
                if name.starts_with('.') {
                    continue; // hidden: temporary files of a running sink, editors' files
                }
                // `metadata` follows symbolic links.
                let md = std::fs::metadata(&p).map_err(AnalysisError::io("read", &p))?;
                if md.is_dir() {
                    if !name.starts_with('_') {
                        stack.push(p);
                    }
                } else if name == QUARANTINE_FILE {
                    quarantine.push(p);
                } else if name == LEDGER_FILE {
                    ledgers.push(p);
                } else if is_part_name(name) {
                    parts.push(p);
                }
            }
        }
        parts.sort();
        quarantine.sort();
        verify_committed(&ledgers, &parts)?;
        let mut partition_columns = Vec::new();
        if let Some(first) = parts.first() {
            let keys = |p: &Path| -> Vec<String> {
                let rel = p.strip_prefix(path).unwrap_or(p);
                folder_pairs(rel).into_iter().map(|(k, _)| k).collect()
            };
            partition_columns = keys(first);
            for p in &parts[1..] {
                let k = keys(p);
                if k != partition_columns {
                    return Err(AnalysisError::Layout {
                        path: path.to_path_buf(),
                        first: first.clone(),
                        first_keys: partition_columns,
                        other: p.clone(),
                        other_keys: k,
                    });
                }
            }
            let mut seen = std::collections::HashSet::new();
            if let Some(dup) = partition_columns.iter().find(|k| !seen.insert(*k)) {
                return Err(AnalysisError::Layout {
                    path: path.to_path_buf(),
                    first: first.clone(),
                    first_keys: partition_columns.clone(),
                    other: first.clone(),
                    other_keys: vec![format!("`{dup}` twice")],
                });
            }
        }
        Ok(Table {
            path: path.to_path_buf(),
            parts,
            partition_columns,
            quarantine,
        })
    }

    /// `EmptyTable` unless the table has part files.
    pub fn require_parts(&self) -> Result<()> {
        if self.parts.is_empty() {
            return Err(AnalysisError::EmptyTable {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    /// A lazy scan of every part file, the partition folders' keys as string columns
    /// (after the stored columns). Projections and filters of the query are pushed
    /// down into the scan by polars.
    pub fn scan(&self) -> Result<LazyFrame> {
        self.require_parts()?;
        let root_has_hive_folder = self.path.components().any(|c| match c {
            Component::Normal(s) => s.to_str().and_then(hive_pair).is_some(),
            _ => false,
        });
        if self.partition_columns.is_empty() {
            return scan_files(&self.path, &self.parts, HiveOptions::new_disabled());
        }
        if !root_has_hive_folder {
            // polars reads `key=value` folders anywhere in the path; the path up to the
            // table has none, so the columns are exactly the table's partition folders.
            let schema: Schema = self
                .partition_columns
                .iter()
                .map(|k| Field::new(k.as_str().into(), DataType::String))
                .collect();
            let hive = HiveOptions {
                enabled: Some(true),
                hive_start_idx: 0,
                schema: Some(Arc::new(schema)),
                try_parse_dates: false,
            };
            return scan_files(&self.path, &self.parts, hive);
        }
        // The path to the table itself has a `key=value` folder, which polars would
        // also take for a partition column: scan file by file, and add the table's
        // own partition values as literal string columns.
        let mut frames = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            let rel = part.strip_prefix(&self.path).unwrap_or(part);
            let cols: Vec<Expr> = folder_pairs(rel)
                .into_iter()
                .map(|(k, v)| lit(v).alias(k.as_str()))
                .collect();
            let lf = scan_files(
                part,
                std::slice::from_ref(part),
                HiveOptions::new_disabled(),
            )?;
            frames.push(lf.with_columns(cols));
        }
        concat(
            frames,
            UnionArgs {
                rechunk: false,
                parallel: true,
                ..Default::default()
            },
        )
        .map_err(AnalysisError::polars(&self.path))
    }

    /// A lazy scan of every `_quarantine.parquet` of the table (`None` if it has none).
    pub fn scan_quarantine(&self) -> Result<Option<LazyFrame>> {
        if self.quarantine.is_empty() {
            return Ok(None);
        }
        scan_files(&self.path, &self.quarantine, HiveOptions::new_disabled()).map(Some)
    }
}

fn scan_files(table: &Path, files: &[PathBuf], hive: HiveOptions) -> Result<LazyFrame> {
    let mut paths = Vec::with_capacity(files.len());
    for f in files {
        let s = f
            .to_str()
            .ok_or_else(|| AnalysisError::NonUtf8 { path: f.clone() })?;
        paths.push(PlRefPath::new(s));
    }
    let args = ScanArgsParquet {
        hive_options: hive,
        // The list is exact: no glob expansion of `[`, `*` or `?` in file names.
        glob: false,
        ..Default::default()
    };
    LazyFrame::scan_parquet_files(paths.into_iter().collect(), args)
        .map_err(AnalysisError::polars(table))
}
