//! Sharded runs (Slurm arrays, Kubernetes indexed jobs): `sermo run --shard I/N`
//! writes each sink into `PATH/shard=I/` with its own `_SUCCESS`; `sermo commit`
//! checks all N shards and writes `_manifest.json` and the top-level `_SUCCESS`;
//! `sermo status` lists what is missing. See `docs/cluster.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::engine::Shard;
use crate::error::count;
use crate::store::lock::DirLock;
pub use crate::store::{MANIFEST_FILE, Manifest, ShardEntry};
use crate::store::{SUCCESS_FILE, Success};

/// Parse `--shard`: `I/N`, or `N` with I from `SLURM_ARRAY_TASK_ID` or
/// `JOB_COMPLETION_INDEX`.
pub fn parse_shard_arg(arg: &str) -> Result<Shard, String> {
    let shard = parse_shard_unbounded(arg)?;
    if shard.count > crate::limits::MAX_SHARDS {
        return Err(format!(
            "{} shards is more than the {} allowed",
            shard.count,
            crate::limits::MAX_SHARDS
        ));
    }
    Ok(shard)
}

fn parse_shard_unbounded(arg: &str) -> Result<Shard, String> {
    if arg.contains('/') {
        return Shard::parse(arg);
    }
    let count: u32 = arg
        .trim()
        .parse()
        .map_err(|_| format!("`{arg}` is neither I/N nor a shard count N"))?;
    for var in ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"] {
        if let Ok(v) = std::env::var(var) {
            let index: u32 = v
                .trim()
                .parse()
                .map_err(|_| format!("{var}=`{v}` is not a shard index"))?;
            return Shard::new(index, count);
        }
    }
    Err(format!(
        "only the count was given (`{arg}`) and neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX is set; give I/N"
    ))
}

/// Errors of `sermo commit`.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("missing shards {} of {count} (no shard=I/_SUCCESS); resubmit them with --array={}", ranges(.missing), ranges(.missing))]
    Missing { missing: Vec<u32>, count: u32 },
    #[error("{path}: {message}")]
    Marker { path: PathBuf, message: String },
    #[error("shards disagree on {what}: {detail}")]
    Mismatch { what: &'static str, detail: String },
    /// Another run writes the table (or one of its shards).
    #[error("{0}")]
    Locked(String),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `1,3-5,9` from sorted indices.
pub fn ranges(v: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if j == i {
            v[i].to_string()
        } else {
            format!("{}-{}", v[i], v[j])
        });
        i = j + 1;
    }
    out.join(",")
}

fn read_marker(out: &Path, i: u32) -> Option<Result<Success, ShardError>> {
    let path = out.join(format!("shard={i}")).join(SUCCESS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            return Some(Err(ShardError::Marker {
                path,
                message: e.to_string(),
            }));
        }
    };
    Some(
        serde_json::from_str::<Success>(&text).map_err(|e| ShardError::Marker {
            path,
            message: format!("damaged marker ({e})"),
        }),
    )
}

/// Shard folders present under `out` (`shard=I`), by index.
fn present_shards(out: &Path) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("shard=")
                .and_then(|i| i.parse().ok())
        })
        .collect();
    v.sort_unstable();
    v
}

/// Check all `count` shards of `out` and write `_manifest.json` and `_SUCCESS`.
///
/// Holds the table's lock (`.sermo.lock`, the one a run writing `out` takes) and
/// each shard folder's for the whole commit: a shard still being written, or a
/// second commit, refuses it, naming the holder.
pub fn commit(out: &Path, count: u32) -> Result<Manifest, ShardError> {
    let mut _locks = Vec::new();
    if out.is_dir() {
        _locks.push(DirLock::acquire(out, "sermo commit").map_err(ShardError::Locked)?);
        for i in 0..count {
            let d = out.join(format!("shard={i}"));
            if d.is_dir() {
                _locks.push(DirLock::acquire(&d, "sermo commit").map_err(ShardError::Locked)?);
            }
        }
    }
    let mut missing = Vec::new();
    let mut markers = Vec::new();
    for i in 0..count {
        match read_marker(out, i) {
            None => missing.push(i),
            Some(m) => markers.push((i, m?)),
        }
    }
    if !missing.is_empty() {
        return Err(ShardError::Missing { missing, count });
    }
    let extra: Vec<u32> = present_shards(out)
        .into_iter()
        .filter(|&i| i >= count)
        .collect();
    if !extra.is_empty() {
        return Err(ShardError::Mismatch {
            what: "the shard count",
            detail: format!(
                "folders shard={} exist but --shards is {count}",
                ranges(&extra)
            ),
        });
    }
    let Some((_, first)) = markers.first() else {
        return Err(ShardError::Mismatch {
            what: "the shard count",
            detail: "--shards must be at least 1".into(),
        });
    };
    let first = first.clone();
    for (i, m) in &markers {
        let want = format!("{i}/{count}");
        if m.shard.as_deref() != Some(want.as_str()) {
            return Err(ShardError::Mismatch {
                what: "the shard count",
                detail: format!(
                    "shard={i} was written as shard {} but this commit expects {want}",
                    m.shard.as_deref().unwrap_or("(not sharded)")
                ),
            });
        }
        if m.schema_hash != first.schema_hash {
            return Err(ShardError::Mismatch {
                what: "the schema",
                detail: format!(
                    "shard={i} has schema hash {} but shard=0 has {}",
                    m.schema_hash, first.schema_hash
                ),
            });
        }
        if m.config_hash != first.config_hash {
            return Err(ShardError::Mismatch {
                what: "the pipeline settings",
                detail: format!(
                    "shard={i} has config hash {} but shard=0 has {} (rerun it with the same pipeline)",
                    m.config_hash, first.config_hash
                ),
            });
        }
    }
    let per_shard: Vec<ShardEntry> = markers
        .iter()
        .map(|(i, m)| ShardEntry {
            index: *i,
            rows: m.rows,
            files: m.files,
            clips: m.clips,
            quarantined: m.quarantined,
        })
        .collect();
    let manifest = Manifest {
        shards: count,
        rows: per_shard.iter().map(|s| s.rows).sum(),
        files: per_shard.iter().map(|s| s.files).sum(),
        clips: per_shard.iter().map(|s| s.clips).sum(),
        quarantined: per_shard.iter().map(|s| s.quarantined).sum(),
        schema_hash: first.schema_hash.clone(),
        config_hash: first.config_hash.clone(),
        pipeline_hash: first.pipeline_hash.clone(),
        sermo_version: env!("CARGO_PKG_VERSION").to_string(),
        per_shard,
    };
    let body = serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n";
    write_atomic(&out.join(MANIFEST_FILE), body.as_bytes())?;
    let marker = serde_json::json!({
        "shards": count, "rows": manifest.rows, "files": manifest.files,
        "quarantined": manifest.quarantined, "config_hash": manifest.config_hash,
        "schema_hash": manifest.schema_hash,
    });
    write_atomic(&out.join(SUCCESS_FILE), format!("{marker}\n").as_bytes())?;
    Ok(manifest)
}

fn write_atomic(path: &Path, body: &[u8]) -> Result<(), ShardError> {
    write_file_atomic(path, body).map_err(|source| ShardError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Write `body` to `path` through a temporary file named after this process, then
/// rename it into place and sync the folder: readers never see a torn file, and
/// parallel array tasks writing the same file do not trip over each other.
pub fn write_file_atomic(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, body)?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all())?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir).and_then(|f| f.sync_all())
}

/// Which shards are complete.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub count: u32,
    pub complete: Vec<u32>,
    pub missing: Vec<u32>,
    /// Shards whose marker is unreadable (counted as missing too).
    pub damaged: Vec<u32>,
    pub committed: bool,
}

impl Status {
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} of {} complete{}",
            self.complete.len(),
            count(self.count, "shard"),
            if self.committed { " (committed)" } else { "" }
        );
        if !self.complete.is_empty() {
            let _ = writeln!(s, "complete: {}", ranges(&self.complete));
        }
        if !self.damaged.is_empty() {
            let _ = writeln!(s, "damaged marker: {}", ranges(&self.damaged));
        }
        if self.missing.is_empty() {
            if !self.committed {
                let _ = writeln!(
                    s,
                    "all shards done: run `sermo commit OUT --shards {}`",
                    self.count
                );
            }
        } else {
            let _ = writeln!(s, "missing: {}", ranges(&self.missing));
            let _ = writeln!(s, "resubmit: --array={}", ranges(&self.missing));
        }
        s
    }
}

/// Status of the `count` shards under `out`.
pub fn status(out: &Path, count: u32) -> Status {
    let mut st = Status {
        count,
        complete: Vec::new(),
        missing: Vec::new(),
        damaged: Vec::new(),
        committed: out.join(MANIFEST_FILE).exists() && out.join(SUCCESS_FILE).exists(),
    };
    for i in 0..count {
        match read_marker(out, i) {
            Some(Ok(_)) => st.complete.push(i),
            Some(Err(_)) => {
                st.damaged.push(i);
                st.missing.push(i);
            }
            None => st.missing.push(i),
        }
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_compress() {
        assert_eq!(ranges(&[1, 3, 4, 5, 9]), "1,3-5,9");
        assert_eq!(ranges(&[]), "");
        assert_eq!(ranges(&[0, 1]), "0-1");
    }

    #[test]
    fn shard_arg_forms() {
        assert_eq!(parse_shard_arg("3/8").unwrap(), Shard::new(3, 8).unwrap());
        assert!(parse_shard_arg("8/8").unwrap_err().contains("out of range"));
        assert!(parse_shard_arg("x").is_err());
    }
}
