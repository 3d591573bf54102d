//! Segment inference end to end through the binary: a small model trained on the
//! demo clips, then `sermo infer` on the demo long recording (timeline, summary,
//! written rows), the `infer` stage on audio equal to the stage on the same
//! features, refusal of mismatched feature settings, sample-rate quarantine and
//! median smoothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use arrow::array::{AsArray, Float32Array};
use arrow::datatypes::Float32Type;
use common::{DEMO_FEATURES, audio_head, demo_features, read_parts, sermo, sermo_bin, train_demo};

fn run(args: &[&str]) -> (bool, String, String) {
    sermo(args)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const FEATURES: &str = DEMO_FEATURES;

/// Features of the EmoDB demo clips and a small mlp trained on them (speaker 08 held out).
fn model(dir: &Path) -> PathBuf {
    demo_features(dir);
    train_demo(
        dir,
        "model",
        "model = \"mlp\"\nfeatures = [\"stacked\"]\nepochs = 15\nbatch_size = 4\nsplit = { by = \"speaker\", test = [\"08\"] }\n[sinks.m.params]\nhidden = 32\n",
    )
}

fn probs(batches: &[arrow::record_batch::RecordBatch]) -> Vec<(String, u32, Vec<f32>)> {
    let mut v = Vec::new();
    for b in batches {
        let id = b.column_by_name("clip_id").unwrap().as_string::<i32>();
        let seg = b
            .column_by_name("segment")
            .unwrap()
            .as_primitive::<arrow::datatypes::UInt32Type>();
        let p = b.column_by_name("probs").unwrap().as_list::<i32>();
        for i in 0..b.num_rows() {
            let row = p.value(i);
            let row: &Float32Array = row.as_primitive::<Float32Type>();
            v.push((id.value(i).to_string(), seg.value(i), row.values().to_vec()));
        }
    }
    v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    v
}

#[test]
fn sermo_infer_prints_a_timeline_and_writes_every_segment() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let long = root().join("examples/audio/long/demo_long.wav");
    let out = dir.path().join("p.jsonl");
    let (ok, stdout, err) = run(&[
        "infer",
        "--model",
        m.to_str().unwrap(),
        long.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    // 46.5 s in 3-s segments: 15 full ones and the 1.5-s tail.
    let timeline: Vec<&str> = stdout.lines().filter(|l| l.starts_with("00:")).collect();
    assert_eq!(timeline.len(), 16, "{stdout}");
    assert!(timeline[0].starts_with("00:00:00–00:00:03"), "{stdout}");
    assert!(timeline[15].starts_with("00:00:45–00:00:46"), "{stdout}");
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("demo_long.wav: 00:00–"))
        .unwrap_or_else(|| panic!("no summary line: {stdout}"));
    assert!(
        summary.ends_with("00:46") || summary.contains("–00:46 "),
        "{summary}"
    );
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 16);
    for (k, r) in rows.iter().enumerate() {
        let p: Vec<f64> = r["probs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{r}");
        let best = p.iter().cloned().fold(0.0, f64::max);
        assert!((r["confidence"].as_f64().unwrap() - best).abs() < 1e-6);
        assert_eq!(r["segment"], k as u64);
        // Each printed line carries the row's label.
        assert!(timeline[k].contains(r["label"].as_str().unwrap()));
    }
}

#[test]
fn infer_on_audio_equals_infer_on_the_same_features() {
    let dir = tempfile::tempdir().unwrap();
    model(dir.path());
    let glob = root()
        .join("examples/audio/emodb/*.wav")
        .display()
        .to_string();
    // (a) audio in: the stage computes the model's features itself.
    let a = dir.path().join("a.toml");
    std::fs::write(
        &a,
        format!(
            "{}[stages.emotion]\nkind = \"infer\"\ninput = \"a16\"\nmodel = \"model\"\n[sinks.t]\nkind = \"parquet\"\ninput = \"emotion\"\npath = \"pred_audio\"\n",
            audio_head(&glob)
        ),
    )
    .unwrap();
    // (b) the stored features table in.
    let b = dir.path().join("b.toml");
    std::fs::write(
        &b,
        "[pipeline]\nname = \"b\"\n[sources.f]\nkind = \"parquet\"\npath = \"feats\"\n[stages.emotion]\nkind = \"infer\"\ninput = \"f\"\nmodel = \"model\"\n[sinks.t]\nkind = \"parquet\"\ninput = \"emotion\"\npath = \"pred_feats\"\n",
    )
    .unwrap();
    let (ok, _, err) = run(&["run", "-q", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(ok, "{err}");
    let pa = probs(&read_parts(&dir.path().join("pred_audio")));
    let pb = probs(&read_parts(&dir.path().join("pred_feats")));
    assert_eq!(pa.len(), 12);
    assert_eq!(pa.len(), pb.len());
    for (x, y) in pa.iter().zip(&pb) {
        assert_eq!((&x.0, x.1), (&y.0, y.1));
        for (p, q) in x.2.iter().zip(&y.2) {
            assert!((p - q).abs() < 1e-6, "{x:?} vs {y:?}");
        }
    }
    // The true labels travel along.
    let parts = read_parts(&dir.path().join("pred_audio"));
    let t = parts[0]
        .column_by_name("true_label")
        .unwrap()
        .as_string::<i32>();
    assert!(t.iter().all(|v| v.is_some()));
}

#[test]
fn mismatched_features_are_refused_and_wrong_rates_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    model(dir.path());
    let glob = root()
        .join("examples/audio/emodb/*.wav")
        .display()
        .to_string();
    // Features with 20 MFCC fed to a model trained on 13.
    let other = FEATURES.replace("n_mfcc = 13", "n_mfcc = 20");
    let p = dir.path().join("mismatch.toml");
    std::fs::write(
        &p,
        format!(
            "{}{other}[stages.emotion]\nkind = \"infer\"\ninput = \"feat\"\nmodel = \"model\"\n[sinks.t]\nkind = \"discard\"\ninput = \"emotion\"\n",
            audio_head(&glob)
        ),
    )
    .unwrap();
    let (ok, _, err) = run(&["validate", p.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("other settings than the model's") && err.contains("mfcc"),
        "{err}"
    );
    // 22.05 kHz audio (no resample) to a 16 kHz model: every clip quarantined
    // with the fix named.
    let q = dir.path().join("rate.toml");
    std::fs::write(
        &q,
        format!(
            "{}[stages.emotion]\nkind = \"infer\"\ninput = \"audio\"\nmodel = \"model\"\n[sinks.t]\nkind = \"parquet\"\ninput = \"emotion\"\npath = \"pred\"\n",
            audio_head(&glob)
        ),
    )
    .unwrap();
    let (_, _, err) = run(&["run", q.to_str().unwrap()]);
    assert!(err.contains("12 quarantined"), "{err}");
    // A fixed rate that is not the model's (resampled to 22.05 kHz) is known at
    // validation: refused there with the fix (issue 28 item 2).
    let r = dir.path().join("fixed_rate.toml");
    std::fs::write(
        &r,
        format!(
            "{}[stages.emotion]\nkind = \"infer\"\ninput = \"a16\"\nmodel = \"model\"\n[sinks.t]\nkind = \"discard\"\ninput = \"emotion\"\n",
            audio_head(&glob).replace("rate = 16000", "rate = 22050")
        ),
    )
    .unwrap();
    let (ok, _, err) = run(&["validate", r.to_str().unwrap()]);
    assert!(!ok, "{err}");
    assert!(
        err.contains("stages.emotion")
            && err.contains("its input is at 22050 Hz")
            && err.contains("trained on 16000 Hz")
            && err.contains("rate = 16000"),
        "{err}"
    );
    let qt = read_quarantine(&dir.path().join("pred/_quarantine.parquet"));
    assert_eq!(qt.len(), 12);
    assert!(qt.iter().all(|(stage, reason, msg)| stage == "emotion"
        && reason == "invalid_format"
        && msg.contains("add a resample stage with rate = 16000")));
}

fn read_quarantine(p: &Path) -> Vec<(String, String, String)> {
    let f = std::fs::File::open(p).unwrap();
    let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let mut v = Vec::new();
    for b in r {
        let b = b.unwrap();
        let s = |n: &str| b.column_by_name(n).unwrap().as_string::<i32>().clone();
        let (st, re, me) = (s("stage"), s("reason"), s("message"));
        for i in 0..b.num_rows() {
            v.push((
                st.value(i).to_string(),
                re.value(i).to_string(),
                me.value(i).to_string(),
            ));
        }
    }
    v
}

#[test]
fn median_smoothing_is_the_per_class_median_of_neighbouring_segments() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let long = root().join("examples/audio/long/demo_long.wav");
    let raw = dir.path().join("raw.parquet");
    let smooth = dir.path().join("smooth.parquet");
    for (out, extra) in [(&raw, vec![]), (&smooth, vec!["--smooth", "3"])] {
        let mut args = vec![
            "infer",
            "--model",
            m.to_str().unwrap(),
            long.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let (ok, _, err) = run(&args);
        assert!(ok, "{err}");
    }
    let read = |p: &Path| {
        let f = std::fs::File::open(p).unwrap();
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap();
        probs(&r.map(|b| b.unwrap()).collect::<Vec<_>>())
    };
    let (r, s) = (read(&raw), read(&smooth));
    assert_eq!(r.len(), 16);
    assert_eq!(s.len(), 16);
    for i in 0..r.len() {
        let lo = i.saturating_sub(1);
        let hi = (i + 1).min(r.len() - 1);
        for c in 0..r[i].2.len() {
            let mut v: Vec<f32> = (lo..=hi).map(|j| r[j].2[c]).collect();
            v.sort_by(|a, b| a.total_cmp(b));
            let med = if v.len() % 2 == 1 {
                v[v.len() / 2]
            } else {
                0.5 * (v[0] + v[1])
            };
            assert!((s[i].2[c] - med).abs() < 1e-6, "segment {i} class {c}");
        }
    }
}

#[test]
fn a_stream_on_stdin_gets_each_segment_within_200_ms_of_its_end() {
    use std::io::{BufRead, Write};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    // 4 s of the demo recording as raw s16le, fed at real-time pace in 50-ms writes.
    let long = root().join("examples/audio/long/demo_long.wav");
    let bytes = std::fs::read(&long).unwrap();
    let data_at = bytes.windows(4).position(|w| w == b"data").unwrap() + 8;
    let pcm = &bytes[data_at..data_at + 4 * 16000 * 2];
    let mut child = Command::new(sermo_bin())
        .args([
            "infer",
            "--model",
            m.to_str().unwrap(),
            "--format",
            "s16le",
            "--rate",
            "16000",
            "--segment",
            "1",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if line.starts_with("00:") {
                tx.send((Instant::now(), line)).unwrap();
            }
        }
    });
    // Let the process load its model before the clock starts.
    std::thread::sleep(Duration::from_millis(500));
    let piece = 16000 * 2 / 20;
    let start = Instant::now();
    let mut segment_end = Vec::new();
    for (k, chunk) in pcm.chunks(piece).enumerate() {
        let due = start + Duration::from_millis(50 * k as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        stdin.write_all(chunk).unwrap();
        stdin.flush().unwrap();
        if (k + 1) % 20 == 0 {
            segment_end.push(Instant::now());
        }
    }
    drop(stdin);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let got: Vec<(Instant, String)> = rx.try_iter().collect();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    assert_eq!(got.len(), 4, "{got:?}");
    for (k, (at, line)) in got.iter().enumerate() {
        assert!(
            line.starts_with(&format!("00:00:0{k}–00:00:0{}", k + 1)),
            "{line}"
        );
        let latency = at.saturating_duration_since(segment_end[k]);
        eprintln!("segment {k}: printed {latency:?} after its last sample was written");
        assert!(
            latency <= Duration::from_millis(200),
            "segment {k} printed {latency:?} after its end (limit 200 ms)"
        );
    }
}

/// Non-finite values never reach a model: a raw f32 stream with NaN and an
/// infinity inside its second 1-s segment gets every other segment scored, and
/// that one refused (`non_finite`, said on stderr) instead of predicted on.
#[test]
fn a_stream_segment_with_nan_is_not_scored() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let mut x = common::tone(16000, 4.0, 5);
    x[16000 + 100] = f32::NAN;
    x[16000 + 200] = f32::INFINITY;
    let bytes: Vec<u8> = x.iter().flat_map(|s| s.to_le_bytes()).collect();
    let out = dir.path().join("p.jsonl");
    let mut child = Command::new(sermo_bin())
        .args([
            "infer",
            "--model",
            m.to_str().unwrap(),
            "--format",
            "f32le",
            "--rate",
            "16000",
            "--segment",
            "1",
            "--out",
            out.to_str().unwrap(),
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let segs: Vec<u64> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["segment"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(segs, vec![0, 2, 3], "{err}");
    assert!(err.contains("non_finite"), "{err}");
}

/// Issue 28 item 1: `sermo infer` tells what happened to each file in the user's
/// words — a missing file and a corrupt one next to a good one are named on
/// stderr, with no pointer to a quarantine table it does not write — and its
/// flags are reported as flags, not as keys of the pipeline it generates.
#[test]
fn sermo_infer_names_failed_files_and_reports_flags_as_flags() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let m = m.to_str().unwrap();
    let missing = dir.path().join("missing.wav");
    let (ok, _, err) = run(&["infer", "--model", m, missing.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("missing.wav") && err.contains("every file failed"),
        "{err}"
    );
    assert!(!err.contains("_quarantine.parquet"), "{err}");
    // A corrupt file beside a good one: the run goes on, the bad one is named.
    let corrupt = dir.path().join("corrupt.wav");
    std::fs::write(&corrupt, b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk").unwrap();
    let good = root().join("examples/audio/emodb/03a01Wa.wav");
    let (ok, out, err) = run(&[
        "infer",
        "--model",
        m,
        good.to_str().unwrap(),
        corrupt.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(!out.is_empty(), "the good file's timeline");
    assert!(
        err.contains("corrupt.wav") && err.contains("stage `audio`"),
        "{err}"
    );
    // Flags as flags.
    let g = good.to_str().unwrap();
    for (args, want) in [
        (vec!["--smooth", "2", g], "--smooth must be odd"),
        (vec!["--segment", "0", g], "--segment must be"),
        (vec!["--batch-size", "0", g], "--batch-size must be"),
        (vec!["--rate", "16000", g], "describe a stream on stdin"),
        (
            vec!["--format", "s16le", "-"],
            "--rate is needed for raw PCM",
        ),
        (vec!["--rate", "16000", "-"], "a WAV stream carries its own"),
    ] {
        let mut a = vec!["infer", "--model", m];
        a.extend(args.iter().copied());
        let (ok, _, err) = run(&a);
        assert!(!ok, "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("stages."), "{args:?}: {err}");
    }
}
