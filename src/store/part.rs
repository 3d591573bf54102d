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

/// A file written by a sink, counting against the [`Budget`].
pub struct SinkFile {
    file: File,
    budget: Budget,
    written: u64,
}

impl SinkFile {
    pub fn create(path: &Path, budget: Budget) -> std::io::Result<SinkFile> {
        Ok(SinkFile {
            file: File::create(path)?,
            budget,
            written: 0,
        })
    }
    pub fn into_file(self) -> (File, u64) {
        (self.file, self.written)
    }
}

impl Write for SinkFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.budget.take(buf.len())?;
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
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
