//! The feature store: crash-safe commits, resume after kill -9 and a full disk,
//! damaged ledgers, overwrite, and shards. Every recovery is checked against a
//! clean run: the same rows exactly once, with identical values.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::util::display::array_value_to_string;
use sermo::store::ledger;

/// A pipeline over `glob` (plus one corrupt file) writing features to `out`.
fn pipeline(dir: &Path, glob: &str, labels: &str, extra_sink: &str, n_mfcc: u32) -> PathBuf {
    // Shared by the pipelines of one test, so quarantine paths compare equal.
    let bad = dir.parent().unwrap().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(bad.join("broken.wav"), b"RIFF\x10\x00\x00\x00WAVEjunkjunk").unwrap();
    let text = format!(
        r#"[pipeline]
seed = 3
[sources.clips]
kind = "files"
paths = ["{glob}"]
labels = "{labels}"
[sources.bad]
kind = "files"
paths = ["{bad}/*.wav"]
[stages.audio]
kind = "decode"
inputs = ["clips", "bad"]
chunk_s = 1.0
[stages.a16]
kind = "resample"
input = "audio"
rate = 16000
[stages.aug]
kind = "augment"
input = "a16"
variants = ["clean", "noise"]
noise_snr_db = [10.0, 20.0]
[stages.feat]
kind = "features"
input = "aug"
n_fft = 512
hop_length = 160
win_length = 400
[stages.feat.mfcc]
n_mfcc = {n_mfcc}
n_mels = 40
[stages.feat.rms]
[sinks.t]
kind = "parquet"
input = "feat"
path = "out"
rows_per_file = 40
{extra_sink}
"#,
        bad = bad.display()
    );
    let p = dir.join("p.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn sermo(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(common::sermo_bin());
    c.args(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("run sermo")
}

fn run_ok(p: &Path, extra: &[&str]) -> String {
    let mut args = vec!["run", p.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = sermo(&args, &[]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(0), "{err}");
    err
}

fn row_strings(rel: &str, b: &RecordBatch) -> Vec<String> {
    (0..b.num_rows())
        .map(|i| {
            let mut s = rel.to_string();
            for (f, c) in b.schema().fields().iter().zip(b.columns()) {
                s.push_str(&format!(
                    "|{}={}",
                    f.name(),
                    array_value_to_string(c, i).unwrap()
                ));
            }
            s
        })
        .collect()
}

/// Every row of a table (with the folder it is in, minus any `shard=I`), sorted.
fn table(dir: &Path) -> Vec<String> {
    let mut rows = Vec::new();
    for (path, batches) in common::read_part_files(dir) {
        let rel = path
            .parent()
            .unwrap()
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .split('/')
            .filter(|c| !c.starts_with("shard="))
            .collect::<Vec<_>>()
            .join("/");
        for b in &batches {
            rows.extend(row_strings(&rel, b));
        }
    }
    rows.sort();
    rows
}

/// Equal tables; on failure print counts and the first difference, not everything.
fn assert_same(got: &[String], want: &[String], what: &str) {
    if got == want {
        return;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let cut = |v: &[String]| {
        v.get(first)
            .map(|r| r.chars().take(300).collect::<String>())
            .unwrap_or_default()
    };
    panic!(
        "{what}: {} rows vs {} expected; first difference at row {first}:\n  got  {}\n  want {}",
        got.len(),
        want.len(),
        cut(got),
        cut(want)
    );
}

fn quarantine(dir: &Path) -> Vec<String> {
    let f = std::fs::File::open(dir.join("_quarantine.parquet")).unwrap();
    let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let mut rows: Vec<String> = r.flat_map(|b| row_strings("", &b.unwrap())).collect();
    rows.sort();
    rows
}

/// Files named like temporary files anywhere under `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if e.path().is_dir() {
                todo.push(e.path());
            } else if n.starts_with('.') && n.ends_with(".tmp") {
                out.push(e.path());
            }
        }
    }
    out
}

/// Every part file on disk is listed by the ledger, and every listed one exists.
fn assert_ledger_matches_disk(out: &Path) {
    let rec = ledger::read(&out.join(ledger::LEDGER_FILE)).expect("ledger readable");
    let mut listed: Vec<String> = rec
        .entries
        .iter()
        .flat_map(|e| e.files.iter().map(|f| f.path.clone()))
        .collect();
    listed.sort();
    let mut on_disk: Vec<String> = common::read_part_files(out)
        .into_iter()
        .map(|(p, _)| p.strip_prefix(out).unwrap().to_string_lossy().to_string())
        .collect();
    on_disk.sort();
    assert_eq!(listed, on_disk, "ledger and part files disagree");
}

/// A corpus for the test: EmoDB when present, else generated clips.
fn corpus(tmp: &Path, test: &str, generated: usize) -> (String, &'static str) {
    match common::corpora_or_skip(test, "emodb/wav") {
        Some(c) => (format!("{}/emodb/wav/*.wav", c.display()), "emodb"),
        None => {
            eprintln!("{test}: using {generated} generated clips instead");
            let d = tmp.join("gen");
            common::generated_corpus(&d, generated, 16000, 2.5);
            (format!("{}/*.wav", d.display()), "none")
        }
    }
}

#[test]
fn kill_9_at_random_moments_then_resume_equals_a_clean_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (glob, labels) = corpus(tmp.path(), "kill_9_loop (EmoDB)", 400);
    let clean_dir = tmp.path().join("clean");
    let crash_dir = tmp.path().join("crash");
    let part = "partition_by = [\"label\", \"variant\"]";
    let pc = pipeline(&clean_dir, &glob, labels, part, 13);
    let start = std::time::Instant::now();
    // One thread and a pitch-shift variant make the run long enough to kill often.
    let slow = [
        "--threads",
        "1",
        "--set",
        "stages.aug.variants=[\"clean\", \"noise\", \"pitch\"]",
    ];
    let mut args = slow.to_vec();
    args.extend(["--set", "sinks.t.mode=\"overwrite\""]);
    run_ok(&pc, &args);
    let clean_s = start.elapsed().as_secs_f64();
    let clean = table(&clean_dir.join("out"));
    assert!(clean.len() > 100, "{} rows", clean.len());

    let pk = pipeline(&crash_dir, &glob, labels, part, 13);
    let out = crash_dir.join("out");
    // Kill times spread over the clean run's length (deterministic sequence).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut interrupted = 0;
    let mut attempts = 0;
    while interrupted < 12 && attempts < 30 {
        attempts += 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let frac = (x % 1000) as f64 / 1000.0;
        let wait = Duration::from_secs_f64(0.05 + frac * 0.3);
        let mut child = Command::new(common::sermo_bin())
            .args(["run", pk.to_str().unwrap(), "-q"])
            .args(slow)
            .spawn()
            .unwrap();
        std::thread::sleep(wait);
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if !finished && !out.join("_SUCCESS").exists() {
            interrupted += 1;
            if out.join(ledger::LEDGER_FILE).exists() {
                // Whatever the moment, the ledger never names a missing file.
                let rec = ledger::read(&out.join(ledger::LEDGER_FILE)).expect("ledger");
                for f in rec.entries.iter().flat_map(|e| &e.files) {
                    assert!(out.join(&f.path).exists(), "{} missing", f.path);
                }
            }
        }
    }
    eprintln!(
        "clean run {clean_s:.1} s; {interrupted} of {attempts} runs killed before completing"
    );
    assert!(interrupted >= 10, "only {interrupted} runs were cut short");
    let err = run_ok(&pk, &slow);
    assert!(err.contains("already committed"), "{err}");
    assert_same(&table(&out), &clean, "resumed table");
    assert_eq!(quarantine(&out), quarantine(&clean_dir.join("out")));
    assert!(temp_files(&out).is_empty());
    assert_ledger_matches_disk(&out);
    let success: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("_SUCCESS")).unwrap()).unwrap();
    assert_eq!(success["rows"].as_u64().unwrap() as usize, clean.len());
    assert_eq!(success["quarantined"], 1);
}

#[test]
fn disk_full_fails_cleanly_and_resume_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let gen_dir = tmp.path().join("gen");
    common::generated_corpus(&gen_dir, 60, 16000, 2.0);
    let glob = format!("{}/*.wav", gen_dir.display());
    let clean_dir = tmp.path().join("clean");
    run_ok(&pipeline(&clean_dir, &glob, "none", "", 13), &[]);
    let clean = table(&clean_dir.join("out"));

    let d = tmp.path().join("full");
    let p = pipeline(&d, &glob, "none", "", 13);
    let out = d.join("out");
    let o = sermo(
        &["run", p.to_str().unwrap(), "-q"],
        &[("SERMO_FAULT_DISK_BYTES", "300000")],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        err.contains(out.to_str().unwrap()),
        "error names the path: {err}"
    );
    assert!(!out.join("_SUCCESS").exists());
    assert!(temp_files(&out).is_empty(), "{:?}", temp_files(&out));
    assert_ledger_matches_disk(&out);
    let committed = table(&out);
    assert!(committed.len() < clean.len());
    assert!(committed.iter().all(|r| clean.binary_search(r).is_ok()));

    // Space freed: resume completes and equals the clean run.
    run_ok(&p, &[]);
    assert_same(&table(&out), &clean, "table");
    assert_ledger_matches_disk(&out);
}

#[test]
fn damaged_ledgers_and_crash_leftovers() {
    let tmp = tempfile::tempdir().unwrap();
    let gen_dir = tmp.path().join("gen");
    common::generated_corpus(&gen_dir, 30, 16000, 2.0);
    let glob = format!("{}/*.wav", gen_dir.display());
    let d = tmp.path().join("t");
    let p = pipeline(&d, &glob, "none", "", 13);
    let out = d.join("out");
    run_ok(&p, &[]);
    let clean = table(&out);
    let lp = out.join(ledger::LEDGER_FILE);
    let good = std::fs::read(&lp).unwrap();
    assert!(good.iter().filter(|&&b| b == b'\n').count() >= 2);

    // A torn last line (crash while appending) is cut off; nothing is lost.
    let mut torn = good.clone();
    torn.extend_from_slice(b"0123456789abcdef {\"files\":[{\"pa");
    std::fs::write(&lp, &torn).unwrap();
    let err = run_ok(&p, &[]);
    assert!(err.contains("cut a partial last line"), "{err}");
    assert_eq!(std::fs::read(&lp).unwrap(), good);
    assert_same(&table(&out), &clean, "table");

    // A stray temporary file and an uncommitted part file are removed.
    std::fs::write(out.join(".part-00999.parquet.tmp"), b"half").unwrap();
    let first = common::read_part_files(&out)[0].0.clone();
    std::fs::copy(&first, out.join("part-00998.parquet")).unwrap();
    let err = run_ok(&p, &[]);
    assert!(
        err.contains("removed 1 temporary and 1 uncommitted"),
        "{err}"
    );
    assert!(!out.join("part-00998.parquet").exists());
    assert_same(&table(&out), &clean, "table");

    // A damaged line before the last: refused, never guessed at.
    let mut bad = good.clone();
    let k = bad.iter().position(|&b| b == b'{').unwrap() + 3;
    bad[k] ^= 0x20;
    std::fs::write(&lp, &bad).unwrap();
    let o = sermo(&["run", p.to_str().unwrap()], &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("corrupt ledger") && err.contains("line 1 is damaged"),
        "{err}"
    );
    std::fs::write(&lp, &good).unwrap();

    // A committed file that went missing: refused.
    let gone = common::read_part_files(&out)[0].0.clone();
    let saved = std::fs::read(&gone).unwrap();
    std::fs::remove_file(&gone).unwrap();
    let o = sermo(&["run", p.to_str().unwrap()], &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("listed in the ledger but missing"), "{err}");
    std::fs::write(&gone, saved).unwrap();
    run_ok(&p, &[]);
    assert_same(&table(&out), &clean, "table");
}

#[test]
fn changed_settings_are_refused_unless_forced_and_overwrite_swaps_atomically() {
    let tmp = tempfile::tempdir().unwrap();
    let gen_dir = tmp.path().join("gen");
    common::generated_corpus(&gen_dir, 40, 16000, 2.0);
    let glob = format!("{}/*.wav", gen_dir.display());
    let d = tmp.path().join("t");
    let p = pipeline(&d, &glob, "none", "", 13);
    let out = d.join("out");
    run_ok(&p, &[]);
    let old = table(&out);

    let o = sermo(
        &[
            "run",
            p.to_str().unwrap(),
            "--set",
            "stages.feat.mfcc.n_mfcc=20",
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("resume refused") && err.contains("`feat`") && err.contains("--force"),
        "{err}"
    );
    assert_same(&table(&out), &old, "after a refused run");
    // --force resumes (nothing left to do here: every clip is committed).
    let err = run_ok(&p, &["--set", "stages.feat.mfcc.n_mfcc=20", "--force"]);
    assert!(err.contains("--force"), "{err}");
    let old_success = std::fs::read(out.join("_SUCCESS")).unwrap();

    // Overwrite that fails midway (disk full): the old table stays whole and readable.
    let p = pipeline(&d, &glob, "none", "mode = \"overwrite\"", 20);
    let o = sermo(
        &["run", p.to_str().unwrap(), "-q"],
        &[("SERMO_FAULT_DISK_BYTES", "200000")],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_same(&table(&out), &old, "old table");
    assert_eq!(std::fs::read(out.join("_SUCCESS")).unwrap(), old_success);
    // Completed: the new table replaced the old one; no staging folder is left.
    run_ok(&p, &[]);
    let new = table(&out);
    assert_eq!(new.len(), old.len());
    assert!(new != old, "the new settings changed the values");
    assert!(new[0].contains("mfcc="));
    let leftovers: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("sermo-staging"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn four_shards_commit_to_the_rows_of_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (glob, labels) = corpus(tmp.path(), "four_shards (EmoDB)", 80);
    let single = tmp.path().join("single");
    run_ok(&pipeline(&single, &glob, labels, "", 13), &[]);
    let want = table(&single.join("out"));

    let d = tmp.path().join("sharded");
    let p = pipeline(&d, &glob, labels, "", 13);
    let out = d.join("out");
    for i in 0..4 {
        let err = run_ok(&p, &["--shard", &format!("{i}/4")]);
        assert!(err.contains("in other shards"), "{err}");
        assert!(out.join(format!("shard={i}/_SUCCESS")).exists());
    }
    // Status and commit with one shard missing.
    std::fs::rename(out.join("shard=2"), d.join("shard2-aside")).unwrap();
    let o = sermo(&["status", out.to_str().unwrap(), "--shards", "4"], &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        text.contains("missing: 2") && text.contains("--array=2"),
        "{text}"
    );
    let o = sermo(&["commit", out.to_str().unwrap(), "--shards", "4"], &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("missing shards 2 of 4"), "{err}");
    assert!(!out.join("_SUCCESS").exists());
    std::fs::rename(d.join("shard2-aside"), out.join("shard=2")).unwrap();

    // Wrong count: refused.
    let o = sermo(&["commit", out.to_str().unwrap(), "--shards", "3"], &[]);
    assert_eq!(o.status.code(), Some(1));

    let o = sermo(&["commit", out.to_str().unwrap(), "--shards", "4"], &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("_manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["rows"].as_u64().unwrap() as usize, want.len());
    assert_eq!(manifest["shards"], 4);
    assert!(out.join("_SUCCESS").exists());
    assert_same(&table(&out), &want, "shards together");
    // Each clip is in exactly one shard.
    let mut per_shard = 0;
    for i in 0..4 {
        per_shard += table(&out.join(format!("shard={i}"))).len();
    }
    assert_eq!(per_shard, want.len());

    // A shard made with other settings is refused at commit.
    let other = tmp.path().join("other");
    let po = pipeline(&other, &glob, labels, "", 20);
    run_ok(&po, &["--shard", "1/4"]);
    std::fs::remove_dir_all(out.join("shard=1")).unwrap();
    std::fs::rename(other.join("out/shard=1"), out.join("shard=1")).unwrap();
    let o = sermo(&["commit", out.to_str().unwrap(), "--shards", "4"], &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("config hash") || err.contains("schema"),
        "{err}"
    );
}
