//! Listing the data files of a Parquet dataset: a sermo table (its `_ledger.jsonl`
//! names the committed part files, so leftovers of a crash are never read), any
//! other hive-style dataset (every `.parquet` file not under a `.`/`_` name), or one
//! file. Used by the `parquet` source and by `sermo eval`. A committed part
//! carries its ledger entry: [`DataFile::verify`] checks its size and content
//! hash before it is read, so an altered part is named instead of read.

use std::path::{Path, PathBuf};

use super::hive::folder_pairs;
use super::ledger::{self, FileEntry, LEDGER_FILE};

/// One file of a dataset and its hive partition values.
#[derive(Debug, Clone)]
pub struct DataFile {
    pub path: PathBuf,
    pub partitions: Vec<(String, String)>,
    /// The ledger's entry, for a committed part of a sermo table.
    pub committed: Option<FileEntry>,
}

impl DataFile {
    /// A file with no ledger entry (nothing to check it against).
    pub fn plain(path: &Path) -> DataFile {
        DataFile {
            path: path.to_path_buf(),
            partitions: Vec::new(),
            committed: None,
        }
    }

    /// Check a committed part against its ledger entry (size, content hash): call
    /// before reading it. Files outside a ledger pass.
    pub fn verify(&self) -> Result<(), String> {
        match &self.committed {
            Some(e) => e.verify(&self.path),
            None => Ok(()),
        }
    }
}

/// The data files of `root`, sorted by path.
pub fn list_dataset(root: &Path) -> std::result::Result<Vec<DataFile>, String> {
    if root.is_file() {
        return Ok(vec![DataFile::plain(root)]);
    }
    if !root.is_dir() {
        return Err(format!("{} does not exist", root.display()));
    }
    let mut rels: Vec<(PathBuf, Option<FileEntry>)> = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let dir = root.join(&rel);
        let ledger_path = dir.join(LEDGER_FILE);
        if ledger_path.is_file() {
            let rec = ledger::read(&ledger_path).map_err(|e| format!("corrupt ledger: {e}"))?;
            for e in rec.entries {
                for f in e.files {
                    rels.push((rel.join(&f.path), Some(f)));
                }
            }
            continue;
        }
        let rd =
            std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let r = rel.join(&name);
            if e.path().is_dir() {
                todo.push(r);
            } else if name.ends_with(".parquet") {
                rels.push((r, None));
            }
        }
    }
    rels.sort_by(|a, b| a.0.cmp(&b.0));
    if rels.is_empty() {
        return Err(format!("no Parquet files under {}", root.display()));
    }
    Ok(rels
        .into_iter()
        .map(|(r, committed)| DataFile {
            partitions: folder_pairs(&r),
            path: root.join(r),
            committed,
        })
        .collect())
}
