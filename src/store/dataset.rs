//! Listing the data files of a Parquet dataset: a sermo table (its `_ledger.jsonl`
//! names the committed part files, so leftovers of a crash are never read), any
//! other hive-style dataset (every `.parquet` file not under a `.`/`_` name), or one
//! file. Used by the `parquet` source and by `sermo eval`.

use std::path::{Path, PathBuf};

use super::hive::folder_pairs;
use super::ledger::{self, LEDGER_FILE};

/// One file of a dataset and its hive partition values.
#[derive(Debug, Clone)]
pub struct DataFile {
    pub path: PathBuf,
    pub partitions: Vec<(String, String)>,
}

/// The data files of `root`, sorted by path.
pub fn list_dataset(root: &Path) -> std::result::Result<Vec<DataFile>, String> {
    if root.is_file() {
        return Ok(vec![DataFile {
            path: root.to_path_buf(),
            partitions: Vec::new(),
        }]);
    }
    if !root.is_dir() {
        return Err(format!("{} does not exist", root.display()));
    }
    let mut rels: Vec<PathBuf> = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let dir = root.join(&rel);
        let ledger_path = dir.join(LEDGER_FILE);
        if ledger_path.is_file() {
            let rec = ledger::read(&ledger_path).map_err(|e| format!("corrupt ledger: {e}"))?;
            for e in rec.entries {
                for f in e.files {
                    rels.push(rel.join(f.path));
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
                rels.push(r);
            }
        }
    }
    rels.sort();
    if rels.is_empty() {
        return Err(format!("no Parquet files under {}", root.display()));
    }
    Ok(rels
        .into_iter()
        .map(|r| DataFile {
            partitions: folder_pairs(&r),
            path: root.join(r),
        })
        .collect())
}
