//! The ledger of a `parquet` sink directory: `_ledger.jsonl`, one line per commit.
//!
//! A commit is: part files written under temporary names, fsync'd, renamed to their
//! final names, directories fsync'd, then **one ledger line appended and fsync'd**.
//! The line is the commit point: part files under final names that no line lists
//! are leftovers of a crash between rename and append, and are removed on resume.
//! Each line is `<hash> <json>`; the hash (of the JSON bytes) detects a torn or
//! damaged line. A torn *last* line (crash or full disk while appending) is cut off
//! on resume; a damaged line before the last means the file was altered, and the
//! table is refused rather than guessed at.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::part::Budget;
use crate::engine::hash;

/// File name of the ledger inside a sink directory.
pub const LEDGER_FILE: &str = "_ledger.jsonl";

/// A committed part file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    /// Path relative to the sink directory (`corpus=emodb/part-00003.parquet`).
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    /// BLAKE3 of the file's bytes (hex), checked whenever the part is read
    /// (absent in ledgers written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
}

impl FileEntry {
    /// Check the file at `path` (this entry's file) against the entry.
    pub fn verify(&self, path: &Path) -> Result<(), String> {
        super::part::verify_part(path, self.bytes, self.blake3.as_deref())
    }
}

/// A quarantine record, as committed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QuarantineEntry {
    pub path: String,
    pub clip_id: String,
    pub stage: String,
    pub reason: String,
    pub message: String,
    /// The clip's rows from before the failure are kept in the table
    /// (`keep_partial = true`); otherwise none of its rows is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// One commit: the files it made final, the clips it completed (every row of each
/// is in these files or earlier commits of the same writer... never elsewhere) and
/// the quarantine records of those clips.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub files: Vec<FileEntry>,
    pub clips: Vec<String>,
    pub quarantine: Vec<QuarantineEntry>,
}

/// What reading a ledger found.
#[derive(Debug, Default)]
pub struct Recovered {
    pub entries: Vec<Entry>,
    /// Bytes of valid lines (the file is cut here if a torn line followed).
    pub valid_len: u64,
    /// A torn last line was found (and is to be cut off).
    pub torn_tail: bool,
}

fn encode(e: &Entry) -> String {
    let json = serde_json::to_string(e).unwrap_or_default();
    format!("{} {json}\n", hash::hex(hash::stable_hash(json.as_bytes())))
}

fn decode_line(line: &str) -> Result<Entry, String> {
    let (h, json) = line
        .split_once(' ')
        .ok_or_else(|| "no checksum".to_string())?;
    if hash::hex(hash::stable_hash(json.as_bytes())) != h {
        return Err("checksum mismatch".into());
    }
    serde_json::from_str(json).map_err(|e| format!("bad entry: {e}"))
}

/// Read `path` (absent: empty). Errors describe a damaged ledger.
pub fn read(path: &Path) -> Result<Recovered, String> {
    let mut buf = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut buf)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Recovered::default()),
        Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
    }
    let mut out = Recovered::default();
    let mut pos = 0usize;
    let mut line_no = 0usize;
    while pos < buf.len() {
        line_no += 1;
        let end = buf[pos..].iter().position(|&b| b == b'\n');
        let (line, next) = match end {
            Some(k) => (&buf[pos..pos + k], pos + k + 1),
            None => (&buf[pos..], buf.len()),
        };
        let parsed = std::str::from_utf8(line)
            .map_err(|_| "not UTF-8".to_string())
            .and_then(decode_line);
        let is_last = next >= buf.len();
        match parsed {
            Ok(e) if end.is_some() => {
                out.entries.push(e);
                out.valid_len = next as u64;
            }
            // The last line, torn (no newline, or damaged): a crash while appending.
            _ if is_last => {
                out.torn_tail = true;
                break;
            }
            // (a line without newline is always the last)
            r => {
                let why = r.err().unwrap_or_default();
                return Err(format!(
                    "{} line {line_no} is damaged ({why}) and is not the last line: the file was altered after it was written",
                    path.display()
                ));
            }
        }
        pos = next;
    }
    Ok(out)
}

/// An open ledger, appending.
pub struct Ledger {
    path: PathBuf,
    file: File,
    len: u64,
    budget: Budget,
    /// An append failed: no further appends (a later line after a torn one would
    /// turn a repairable tail into a damaged middle).
    poisoned: bool,
}

impl Ledger {
    /// Open for appending after `valid_len` bytes (cutting a torn tail off).
    pub fn open(path: &Path, valid_len: u64, budget: Budget) -> std::io::Result<Ledger> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)?;
        if file.metadata()?.len() != valid_len {
            file.set_len(valid_len)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::Start(valid_len))?;
        Ok(Ledger {
            path: path.to_path_buf(),
            file,
            len: valid_len,
            budget,
            poisoned: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one entry and fsync: the commit point.
    pub fn append(&mut self, e: &Entry) -> std::io::Result<()> {
        if self.poisoned {
            return Err(std::io::Error::other(
                "an earlier ledger append failed; no further commits in this run",
            ));
        }
        let line = encode(e);
        let res = self
            .budget
            .take(line.len())
            .and_then(|()| self.file.write_all(line.as_bytes()))
            .and_then(|()| self.file.sync_data());
        match res {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err(err) => {
                self.poisoned = true;
                // Best effort: cut the partial line off now (resume would anyway).
                let _ = self.file.set_len(self.len);
                let _ = self.file.seek(SeekFrom::Start(self.len));
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> Entry {
        Entry {
            files: vec![FileEntry {
                path: format!("part-{n:05}.parquet"),
                rows: n as u64,
                bytes: 100,
                blake3: Some(format!("{n:064}")),
            }],
            clips: vec![format!("c{n}")],
            quarantine: vec![],
        }
    }

    #[test]
    fn round_trip_torn_tail_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(LEDGER_FILE);
        let mut l = Ledger::open(&p, 0, Budget::unlimited()).unwrap();
        l.append(&entry(1)).unwrap();
        l.append(&entry(2)).unwrap();
        let r = read(&p).unwrap();
        assert_eq!(r.entries, vec![entry(1), entry(2)]);
        assert!(!r.torn_tail);

        // A torn last line is detected and cut off.
        let full = std::fs::read(&p).unwrap();
        let mut torn = full.clone();
        torn.extend_from_slice(&encode(&entry(3)).as_bytes()[..20]);
        std::fs::write(&p, &torn).unwrap();
        let r = read(&p).unwrap();
        assert!(r.torn_tail);
        assert_eq!(r.entries.len(), 2);
        assert_eq!(r.valid_len, full.len() as u64);
        Ledger::open(&p, r.valid_len, Budget::unlimited()).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), full);

        // A damaged middle line is refused, naming the line.
        let mut bad = full.clone();
        let k = bad.iter().position(|&b| b == b'c').unwrap();
        bad[k] = b'x';
        std::fs::write(&p, &bad).unwrap();
        let err = read(&p).unwrap_err();
        assert!(err.contains("line 1 is damaged"), "{err}");
    }

    #[test]
    fn a_failed_append_poisons_and_leaves_the_file_valid() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(LEDGER_FILE);
        let budget = Budget::limited(encode(&entry(1)).len() as i64 + 5);
        let mut l = Ledger::open(&p, 0, budget).unwrap();
        l.append(&entry(1)).unwrap();
        let err = l.append(&entry(2)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28));
        assert!(l.append(&entry(3)).is_err());
        let r = read(&p).unwrap();
        assert_eq!(r.entries, vec![entry(1)]);
        assert!(!r.torn_tail);
    }
}
