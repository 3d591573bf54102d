//! One writer per table: an advisory lock on a table directory.
//!
//! The lock is the file `.sermo.lock` inside the directory, held with `flock`
//! (exclusive, non-blocking) for as long as the run writes; it records the
//! holder's pid, host and start time, so a refused run can say who holds it. The
//! kernel releases a `flock` when its holder dies (even by `kill -9`), so a lock
//! file left behind by a dead run is not held: the next run takes it over, with a
//! notice naming the run that left it. A run that ends removes the file.
//!
//! On a file system without `flock` (some network mounts) the recorded holder
//! decides instead: the lock is refused while that pid lives on this host (or
//! whenever the holder is on another host), and taken over otherwise.
//!
//! The name starts with `.`, so no reader takes it for data.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the lock inside a table directory.
pub const LOCK_FILE: &str = ".sermo.lock";

/// Who holds (or held) a lock: what `.sermo.lock` records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// Unix time (seconds) the lock was taken.
    pub since: u64,
    /// What holds it (`sermo run`, `sermo commit`).
    #[serde(default)]
    pub what: String,
}

impl Holder {
    fn me(what: &str) -> Holder {
        Holder {
            pid: std::process::id(),
            host: hostname(),
            since: now(),
            what: what.to_string(),
        }
    }

    /// `sermo run (pid 1234 on host node7, since 2026-12-05 10:31:02 UTC, 12 s ago)`.
    pub fn describe(&self) -> String {
        let what = if self.what.is_empty() {
            "a sermo run"
        } else {
            &self.what
        };
        let ago = now().saturating_sub(self.since);
        format!(
            "{what} (pid {} on host {}, since {}, {ago} s ago)",
            self.pid,
            self.host,
            utc(self.since)
        )
    }

    /// Whether the holder is a live process of this host.
    fn alive_here(&self) -> bool {
        self.host == hostname() && pid_alive(self.pid)
    }
}

/// A held lock; dropping it removes the lock file and releases the lock.
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
    file: File,
    ino: u64,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `YYYY-MM-DD HH:MM:SS UTC` of a Unix time (civil-from-days, proleptic Gregorian).
fn utc(t: u64) -> String {
    let (days, secs) = ((t / 86_400) as i64, t % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// This machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "unknown".to_string();
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..n]).to_string()
}

/// Whether a process with this pid exists (on this host).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(64 * 1024).read_to_string(&mut text).ok()?;
    serde_json::from_str(text.trim()).ok()
}

enum Flock {
    Held,
    Busy,
    /// The file system has no `flock`.
    Unsupported,
}

fn try_flock(file: &File) -> std::io::Result<Flock> {
    // SAFETY: a valid open descriptor.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(Flock::Held);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(Flock::Busy),
        Some(libc::ENOLCK) | Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) => Ok(Flock::Unsupported),
        _ => Err(e),
    }
}

impl DirLock {
    /// Take the lock of table directory `dir` (which must exist) for `what`
    /// (`sermo run`, `sermo commit`). Refused, naming the holder, when another
    /// live run holds it; a lock left by a dead run is taken over with a notice
    /// on stderr.
    pub fn acquire(dir: &Path, what: &str) -> Result<DirLock, String> {
        let path = dir.join(LOCK_FILE);
        // A holder may remove the file between our open and our flock: then the
        // locked inode is no longer the file at `path`, and we try again.
        for _ in 0..8 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| format!("cannot open the lock {}: {e}", path.display()))?;
            let state =
                try_flock(&file).map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
            let previous = read_holder(&mut file);
            match state {
                Flock::Busy => {
                    let who = previous.map_or_else(
                        || "another run (it has not written its name yet)".to_string(),
                        |h| h.describe(),
                    );
                    return Err(format!(
                        "{} is being written by {who}: one writer per table; wait for it to end, or write elsewhere (lock {})",
                        dir.display(),
                        path.display()
                    ));
                }
                Flock::Unsupported => {
                    if let Some(h) = &previous
                        && h.pid != std::process::id()
                        && (h.host != hostname() || pid_alive(h.pid))
                    {
                        return Err(format!(
                            "{} is being written by {}: one writer per table (lock {}; this file system has no flock, so the recorded holder decides: remove the lock file if that run is gone)",
                            dir.display(),
                            h.describe(),
                            path.display()
                        ));
                    }
                }
                Flock::Held => {}
            }
            let ino = file
                .metadata()
                .map_err(|e| format!("cannot stat {}: {e}", path.display()))?
                .ino();
            match std::fs::metadata(&path) {
                Ok(m) if m.ino() == ino => {}
                _ => continue,
            }
            if let Some(h) = previous {
                let why = if h.alive_here() {
                    "it no longer holds it"
                } else if h.host == hostname() {
                    "that process is gone"
                } else {
                    "no process holds it"
                };
                eprintln!(
                    "sermo: took over the stale lock {} left by {}: {why}",
                    path.display(),
                    h.describe()
                );
            }
            let body = serde_json::to_string(&Holder::me(what)).unwrap_or_default() + "\n";
            file.set_len(0)
                .and_then(|()| file.seek(SeekFrom::Start(0)))
                .and_then(|_| file.write_all(body.as_bytes()))
                .and_then(|()| file.sync_data())
                .map_err(|e| format!("cannot write the lock {}: {e}", path.display()))?;
            return Ok(DirLock { path, file, ino });
        }
        Err(format!(
            "cannot take the lock {}: it keeps being replaced",
            path.display()
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Make `other_dir/.sermo.lock` the same lock (a hard link), so that the lock
    /// stays in place when `other_dir` is swapped in for the locked directory.
    pub fn link_into(&self, other_dir: &Path) -> std::io::Result<()> {
        let to = other_dir.join(LOCK_FILE);
        let _ = std::fs::remove_file(&to);
        std::fs::hard_link(&self.path, to)
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Remove the file while still holding the lock (only if it is ours), then
        // release by closing.
        if std::fs::metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
        let _ = &self.file;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_and_a_released_one_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let a = DirLock::acquire(dir.path(), "sermo run").unwrap();
        let err = DirLock::acquire(dir.path(), "sermo run").unwrap_err();
        assert!(
            err.contains(&format!("pid {}", std::process::id())) && err.contains(&hostname()),
            "{err}"
        );
        drop(a);
        assert!(!dir.path().join(LOCK_FILE).exists());
        let _b = DirLock::acquire(dir.path(), "sermo commit").unwrap();
    }

    #[test]
    fn a_dead_holders_file_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let dead = Holder {
            pid: 0x7fff_fff0,
            host: hostname(),
            since: 1_700_000_000,
            what: "sermo run".into(),
        };
        std::fs::write(
            dir.path().join(LOCK_FILE),
            serde_json::to_string(&dead).unwrap(),
        )
        .unwrap();
        let l = DirLock::acquire(dir.path(), "sermo run").unwrap();
        let mut f = File::open(l.path()).unwrap();
        assert_eq!(read_holder(&mut f).unwrap().pid, std::process::id());
    }

    #[test]
    fn utc_formats_a_known_time() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }
}
