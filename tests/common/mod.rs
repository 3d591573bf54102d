//! Shared helpers of the integration tests.
#![allow(dead_code)]

pub mod speech;

use std::path::{Path, PathBuf};

/// `../shared/corpora` beside the project, if present.
pub fn corpora() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpora");
    p.is_dir().then_some(p)
}

/// The corpora folder, or `None` after recording why the test is skipped.
pub fn corpora_or_skip(test: &str, sub: &str) -> Option<PathBuf> {
    match corpora() {
        Some(c) if c.join(sub).is_dir() => Some(c),
        _ => {
            skip(
                test,
                &format!("../shared/corpora/{sub} is absent (real-data test not run)"),
            );
            None
        }
    }
}

/// Record that `test` did not run, and why: a `SKIP test: why` line on the
/// terminal (written past libtest's output capture, so `cargo test` shows it)
/// and, when `SERMO_SKIP_LOG` names a file (`.ci/test` sets it), one line
/// appended there, from which `.ci/test` prints its closing list of every
/// skipped test. For what the machine may lack by choice (the corpora, a GPU,
/// torch); what `.ci/run` installs goes through [`skip_unless_ci`].
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let why = why.replace(['\n', '\t'], " ");
    let line = format!("SKIP {test}: {why}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    if let Some(log) = std::env::var_os("SERMO_SKIP_LOG")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
    {
        let _ = f.write_all(format!("{test}\t{why}\n").as_bytes());
    }
}

/// [`skip`] for a dependency that `.ci/run` installs (the Python readers,
/// Slurm, Chromium): under CI (`CI=true`) its absence means the install step
/// failed, and the test fails instead of skipping.
pub fn skip_unless_ci(test: &str, why: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci,
        "{test}: {why}; under CI=true this fails instead of skipping, because .ci/run installs it"
    );
    skip(test, why);
}

/// The built `sermo` binary.
pub fn sermo_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sermo"))
}

/// Write a 16-bit PCM mono WAV.
pub fn write_wav_i16(path: &Path, rate: u32, samples: &[f32]) {
    let data: Vec<u8> = samples
        .iter()
        .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes())
        .collect();
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&data);
    std::fs::write(path, b).expect("write wav");
}

/// A deterministic test tone with a little noise (so it does not compress to nothing).
pub fn tone(rate: u32, secs: f32, seed: u32) -> Vec<f32> {
    let n = (rate as f32 * secs) as usize;
    let mut x = seed.wrapping_mul(2654435761).max(1);
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let noise = (x as f32 / u32::MAX as f32 - 0.5) * 0.05;
            0.4 * (2.0 * std::f32::consts::PI * 220.0 * (1.0 + seed as f32 * 0.01) * i as f32
                / rate as f32)
                .sin()
                + noise
        })
        .collect()
}

/// Write `n` generated clips into `dir` (`clip-000.wav`, ...).
pub fn generated_corpus(dir: &Path, n: usize, rate: u32, secs: f32) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for i in 0..n {
        write_wav_i16(
            &dir.join(format!("clip-{i:03}.wav")),
            rate,
            &tone(rate, secs, i as u32),
        );
    }
}

/// Read every `part-*.parquet` of a sink directory, in file order.
pub fn read_parts(dir: &Path) -> Vec<arrow::record_batch::RecordBatch> {
    read_part_files(dir)
        .into_iter()
        .flat_map(|(_, b)| b)
        .collect()
}

/// Every `part-*.parquet` under `dir` (any depth, sorted by path) with its batches.
pub fn read_part_files(dir: &Path) -> Vec<(PathBuf, Vec<arrow::record_batch::RecordBatch>)> {
    let mut parts = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            let n = e.file_name().to_string_lossy().to_string();
            if p.is_dir() {
                todo.push(p);
            } else if n.starts_with("part-") && n.ends_with(".parquet") {
                parts.push(p);
            }
        }
    }
    parts.sort();
    let mut out = Vec::new();
    for p in parts {
        let f = std::fs::File::open(&p).expect("open part");
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .expect("parquet")
            .build()
            .expect("reader");
        let batches: Vec<_> = r.map(|b| b.expect("batch")).collect();
        out.push((p, batches));
    }
    out
}

/// Rows of the audio tables as (clip_id, samples) sorted by clip id.
pub fn clip_samples(batches: &[arrow::record_batch::RecordBatch]) -> Vec<(String, Vec<f32>)> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Float32Type;
    let mut rows = Vec::new();
    for b in batches {
        let ids = b
            .column_by_name("clip_id")
            .expect("clip_id")
            .as_string::<i32>();
        let samples = b
            .column_by_name("samples")
            .expect("samples")
            .as_list::<i32>();
        for i in 0..b.num_rows() {
            let v = samples.value(i);
            let v = v.as_primitive::<Float32Type>();
            assert_eq!(v.null_count(), 0);
            rows.push((ids.value(i).to_string(), v.values().to_vec()));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

/// Run the built `sermo`: (success, stdout, stderr).
pub fn sermo(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(sermo_bin())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Pipeline head: `clips` (files matching `glob`, EmoDB labels) → `audio` (decode)
/// → `a16` (16 kHz).
pub fn audio_head(glob: &str) -> String {
    format!(
        r#"[pipeline]
name = "p"
[sources.clips]
kind = "files"
paths = ["{glob}"]
labels = "emodb"
[stages.audio]
kind = "decode"
input = "clips"
[stages.a16]
kind = "resample"
input = "audio"
rate = 16000
"#
    )
}

/// The `feat` stage of the demo tables: stacked ZCR + RMS + 13 MFCC (n_fft 512, hop 256).
pub const DEMO_FEATURES: &str = r#"
[stages.feat]
kind = "features"
input = "a16"
n_fft = 512
hop_length = 256
stack = ["zcr", "rms", "mfcc"]
[stages.feat.zcr]
[stages.feat.rms]
[stages.feat.mfcc]
n_mfcc = 13
"#;

/// The 12 EmoDB demo clips (speakers 03 and 08) as a features table in `dir/feats`.
pub fn demo_features(dir: &Path) -> PathBuf {
    let glob = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/audio/emodb/*.wav");
    let p = dir.join("features.toml");
    std::fs::write(
        &p,
        format!(
            "{}{DEMO_FEATURES}[sinks.t]\nkind = \"parquet\"\ninput = \"feat\"\npath = \"feats\"\n",
            audio_head(&glob.display().to_string())
        ),
    )
    .unwrap();
    let (ok, _, err) = sermo(&["run", "-q", p.to_str().unwrap()]);
    assert!(ok, "{err}");
    dir.join("feats")
}

/// Write `dir/<out>.toml`: the `train` sink on `dir/feats` with the keys `keys`
/// (no `input`/`out`), the model going to `dir/<out>`.
pub fn train_pipeline(dir: &Path, out: &str, keys: &str) -> PathBuf {
    let t = dir.join(format!("{out}.toml"));
    std::fs::write(
        &t,
        format!(
            "[pipeline]\nname = \"t\"\n[sources.f]\nkind = \"parquet\"\npath = \"feats\"\n[sinks.m]\nkind = \"train\"\ninput = \"f\"\nout = \"{out}\"\n{keys}"
        ),
    )
    .unwrap();
    t
}

/// Train on `dir/feats` with the `train` sink keys `keys` (no `input`/`out`); the
/// model goes to `dir/<out>`.
pub fn train_demo(dir: &Path, out: &str, keys: &str) -> PathBuf {
    let t = train_pipeline(dir, out, keys);
    let (ok, _, err) = sermo(&["run", t.to_str().unwrap()]);
    assert!(ok, "{err}");
    dir.join(out)
}
