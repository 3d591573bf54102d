//! Part files of a table: temporary-name guards ([`Pending`]), a writer with an
//! optional disk budget (fault injection for tests), name rules and directory fsync.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Environment variable that makes every sink of the process fail with ENOSPC
/// ("No space left on device") once this many bytes were written in all: the
/// fault-injecting writer the disk-full tests use.
pub const FAULT_DISK_BYTES_ENV: &str = "SERMO_FAULT_DISK_BYTES";

/// Bytes the sink may still write (fault injection); unlimited normally.
#[derive(Clone, Debug)]
pub struct Budget(Option<Arc<AtomicI64>>);

impl Budget {
    pub fn unlimited() -> Budget {
        Budget(None)
    }
    pub fn limited(bytes: i64) -> Budget {
        Budget(Some(Arc::new(AtomicI64::new(bytes))))
    }
    /// From [`FAULT_DISK_BYTES_ENV`], else unlimited.
    pub fn from_env() -> Budget {
        match std::env::var(FAULT_DISK_BYTES_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
        {
            Some(n) => Budget::limited(n),
            None => Budget::unlimited(),
        }
    }
    /// Take `n` bytes, or fail like a full disk.
    pub fn take(&self, n: usize) -> std::io::Result<()> {
        if let Some(b) = &self.0
            && b.fetch_sub(n as i64, Ordering::SeqCst) < n as i64
        {
            return Err(std::io::Error::from_raw_os_error(28));
        }
        Ok(())
    }
}

/// A file written by a sink, counting against the [`Budget`] and hashing its
/// bytes as they are written (the content hash a ledger records).
pub struct SinkFile {
    file: File,
    budget: Budget,
    written: u64,
    hasher: blake3::Hasher,
}

impl SinkFile {
    pub fn create(path: &Path, budget: Budget) -> std::io::Result<SinkFile> {
        Ok(SinkFile {
            file: File::create(path)?,
            budget,
            written: 0,
            hasher: blake3::Hasher::new(),
        })
    }
    pub fn into_file(self) -> (File, u64) {
        (self.file, self.written)
    }
    /// [`SinkFile::into_file`] with the content hash of every byte written
    /// (see [`content_hash`]).
    pub fn finish(self) -> (File, u64, String) {
        let hash = self.hasher.finalize().to_hex().to_string();
        (self.file, self.written, hash)
    }
}

impl Write for SinkFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.budget.take(buf.len())?;
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// BLAKE3 of a file's bytes (hex), read in 1 MiB blocks: memory stays bounded
/// whatever the file's size.
pub fn content_hash(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = File::open(path)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().to_hex().to_string())
}

/// Check a committed part file against what its ledger line recorded: its size,
/// and its content hash where one was recorded. The error names the file and
/// says what differs; nothing of an altered part is to be read.
pub fn verify_part(path: &Path, bytes: u64, hash: Option<&str>) -> Result<(), String> {
    let len = std::fs::metadata(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "{} is listed in the ledger but missing: the table was altered",
                    path.display()
                )
            } else {
                format!(
                    "{} is listed in the ledger but cannot be read ({e}): the table was altered",
                    path.display()
                )
            }
        })?
        .len();
    if len != bytes {
        return Err(format!(
            "{} has {len} bytes but the ledger committed {bytes}: the table was altered",
            path.display()
        ));
    }
    if let Some(want) = hash {
        let got = content_hash(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if got != want {
            return Err(format!(
                "{} was altered after it was committed: its content hash (blake3 {}…) differs from the ledger's ({}…), so its rows are not read; rewrite the table (mode = \"overwrite\") or restore the file",
                path.display(),
                &got[..12.min(got.len())],
                &want[..12.min(want.len())]
            ));
        }
    }
    Ok(())
}

/// Whether a file name is a sink's temporary file (`.NAME.tmp`).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Whether a file name is a part file.
pub fn is_part_name(name: &str) -> bool {
    name.starts_with("part-") && name.ends_with(".parquet")
}

/// A file being written under a temporary name. Dropped before [`Pending::commit`],
/// it removes the temporary file: nothing half-written ever carries a final name.
pub struct Pending {
    pub tmp: PathBuf,
    pub dest: PathBuf,
    committed: bool,
}

impl Pending {
    pub fn new(dir: &Path, name: &str) -> Pending {
        Pending {
            tmp: dir.join(format!(".{name}.tmp")),
            dest: dir.join(name),
            committed: false,
        }
    }

    /// fsync the file and rename it to its final name (the caller fsyncs the
    /// directory once for all files of a commit).
    pub fn commit(mut self, file: &File) -> std::io::Result<()> {
        file.sync_all()?;
        std::fs::rename(&self.tmp, &self.dest)?;
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

/// fsync a directory (makes renames in it durable).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_fails_like_a_full_disk() {
        let b = Budget::limited(10);
        b.take(6).unwrap();
        let e = b.take(6).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(28));
        assert!(e.to_string().contains("No space left"), "{e}");
        Budget::unlimited().take(1 << 40).unwrap();
    }
}
