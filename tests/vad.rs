//! Speech detection and speech-aligned segments: the detector's F1 on a
//! recording of corpus clips between silences with added noise (real data),
//! the same regions however the audio is split, and `sermo infer --vad` end to
//! end: rows covering the whole recording, `silence` where there is none,
//! segments of 1–3 s, identical across decode chunk sizes; plus abstention and
//! the timeline picture.

mod common;

use std::path::{Path, PathBuf};

use common::speech::{self, Recording};
use common::{corpora_or_skip, demo_features, sermo, train_demo, write_wav_i16};
use sermo::dsp::vad::{FRAME, Method, VAD_RATE};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn speech_is_found_in_corpus_clips_between_silences_at_20_db() {
    let Some(c) = corpora_or_skip(
        "speech_is_found_in_corpus_clips_between_silences_at_20_db",
        "emodb",
    ) else {
        return;
    };
    // Every 15th EmoDB clip: 36 clips of 10 speakers, about 2 min.
    let rec = speech::build(&c.join("emodb/wav"), 15);
    assert!(rec.clips.len() >= 30);
    let x = rec.with_noise(20.0);
    let n = rec.truth.len();
    let regions = speech::detect(&x, Method::Earshot, 16_000);
    let (p, r, f) = speech::f1(&speech::frames_of(&regions, n), &rec.truth);
    eprintln!("earshot at 20 dB: precision {p:.3} recall {r:.3} F1 {f:.3}");
    // Silero VAD v6 scores 0.94 on this recording (benches/vad.rs): the truth
    // counts every frame from a clip's first to its last sound.
    assert!(
        f >= 0.9,
        "earshot F1 {f:.3} at 20 dB (precision {p:.3}, recall {r:.3})"
    );
    // The same regions whatever the pieces the audio comes in.
    for piece in [1usize, 255, 257, 4096] {
        assert_eq!(
            speech::detect(&x, Method::Earshot, piece),
            regions,
            "pieces of {piece}"
        );
    }
    let energy = speech::detect(&x, Method::Energy, 16_000);
    let (_, _, fe) = speech::f1(&speech::frames_of(&energy, n), &rec.truth);
    eprintln!("energy at 20 dB: F1 {fe:.3}");
    assert!(fe >= 0.8, "energy F1 {fe:.3} at 20 dB");
}

/// The demo EmoDB clips between silences, as a 16-bit WAV at 22.05 kHz (so the
/// pipeline resamples): the recording and its path.
fn demo_recording(dir: &Path) -> (Recording, PathBuf) {
    let rec = speech::build(&root().join("examples/audio/emodb"), 1);
    let x = sermo::dsp::resample::resample_mono(
        &rec.samples,
        VAD_RATE,
        22_050,
        sermo::dsp::resample::Quality::High,
    )
    .unwrap();
    let p = dir.join("talk.wav");
    write_wav_i16(&p, 22_050, &x);
    (rec, p)
}

fn model(dir: &Path) -> PathBuf {
    demo_features(dir);
    train_demo(
        dir,
        "model",
        "model = \"mlp\"\nfeatures = [\"stacked\"]\nepochs = 5\nbatch_size = 4\nsplit = { by = \"speaker\", test = [\"08\"] }\n[sinks.m.params]\nhidden = 16\n",
    )
}

fn rows(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn f(v: &serde_json::Value, k: &str) -> f64 {
    v[k].as_f64().unwrap()
}

#[test]
fn sermo_infer_vad_covers_the_recording_with_speech_segments_and_silence() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let (rec, wav) = demo_recording(dir.path());
    let duration = rec.samples.len() as f64 / VAD_RATE as f64;
    let out = dir.path().join("t.jsonl");
    let png = dir.path().join("t.png");
    let (ok, stdout, err) = sermo(&[
        "infer",
        "--vad",
        "--model",
        m.to_str().unwrap(),
        wav.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--plot",
        png.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let r = rows(&out);
    // In order, no gap, to the end.
    let mut covered = 0.0f64;
    for (k, row) in r.iter().enumerate() {
        assert_eq!(row["segment"], k as u64);
        let (a, b) = (f(row, "start_s"), f(row, "end_s"));
        assert!(a <= covered + 1e-6, "gap before {row}");
        assert!(b > a, "{row}");
        covered = covered.max(b);
        let label = row["label"].as_str().unwrap();
        if label == "silence" {
            assert!(b - a <= 3.0 + 1e-6, "{row}");
            assert_eq!(row["probs"].as_array().unwrap().len(), 0);
        } else {
            assert!((1.0 - 1e-6..=3.0 + 1e-6).contains(&(b - a)), "{row}");
            assert_eq!(row["probs"].as_array().unwrap().len(), 7);
        }
    }
    assert!((covered - duration).abs() < 1e-3, "{covered} vs {duration}");
    // Every clip is under speech rows; the middle of every gap of 1 s or more
    // is silence.
    let speech_at = |t: f64| {
        r.iter()
            .any(|row| row["label"] != "silence" && f(row, "start_s") <= t && t < f(row, "end_s"))
    };
    let frame_s = FRAME as f64 / VAD_RATE as f64;
    for (name, a, b) in &rec.clips {
        let mid = (*a + *b) as f64 / 2.0 * frame_s;
        assert!(speech_at(mid), "{name} at {mid:.2} s is not under speech");
    }
    for w in rec.clips.windows(2) {
        let (gap_a, gap_b) = (w[0].2 as f64 * frame_s, w[1].1 as f64 * frame_s);
        if gap_b - gap_a >= 1.0 {
            let mid = (gap_a + gap_b) / 2.0;
            assert!(!speech_at(mid), "speech in the gap at {mid:.2} s");
        }
    }
    // The printed summary names the silence, the picture is a PNG.
    assert!(stdout.contains("talk.wav: "), "{stdout}");
    assert!(stdout.contains("silence"), "{stdout}");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    if let Ok(d) = std::env::var("SERMO_SCREENSHOT_DIR") {
        let _ = std::fs::copy(&png, Path::new(&d).join("timeline.png"));
    }
}

#[test]
fn speech_segments_are_the_same_whatever_the_decode_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let (_, wav) = demo_recording(dir.path());
    let mut outputs = Vec::new();
    for chunk in [30.0, 1.0, 0.37] {
        let out = dir.path().join(format!("c{chunk}.jsonl"));
        let p = dir.path().join(format!("c{chunk}.toml"));
        std::fs::write(
            &p,
            format!(
                r#"[sources.f]
kind = "files"
paths = ["{wav}"]
[stages.d]
kind = "decode"
input = "f"
chunk_s = {chunk}
[stages.r]
kind = "resample"
input = "d"
rate = 16000
[stages.w]
kind = "window"
input = "r"
mode = "speech"
length_s = 2.0
hop_s = 1.5
min_s = 0.8
[stages.e]
kind = "infer"
input = "w"
model = "{m}"
[sinks.t]
kind = "timeline"
input = "e"
print = false
out = "{out}"
"#,
                wav = wav.display(),
                m = m.display(),
                out = out.display()
            ),
        )
        .unwrap();
        let (ok, _, err) = sermo(&["run", "-q", p.to_str().unwrap()]);
        assert!(ok, "{err}");
        let r = rows(&out);
        // Segments of 0.8–2 s; long regions split every 1.5 s.
        for row in &r {
            let len = f(row, "end_s") - f(row, "start_s");
            if row["label"] != "silence" {
                assert!((0.8 - 1e-6..=2.0 + 1e-6).contains(&len), "{row}");
            }
        }
        outputs.push(r);
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
}

/// A recording streamed on stdin (`sermo infer --vad -`) gives the rows of the
/// same file named on the command line, smoothing included (silence rows pass
/// through the smoother without counting in its window).
#[test]
fn sermo_infer_vad_on_stdin_equals_the_file() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let (_, wav) = demo_recording(dir.path());
    let file_out = dir.path().join("file.jsonl");
    let (ok, _, err) = sermo(&[
        "infer",
        "--vad",
        "--smooth",
        "3",
        "--model",
        m.to_str().unwrap(),
        wav.to_str().unwrap(),
        "--out",
        file_out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let stdin_out = dir.path().join("stdin.jsonl");
    let mut child = std::process::Command::new(common::sermo_bin())
        .args(["infer", "--vad", "--smooth", "3", "--model"])
        .arg(&m)
        .args(["-", "--out"])
        .arg(&stdin_out)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = std::fs::read(&wav).unwrap();
    let mut input = child.stdin.take().unwrap();
    // In uneven pieces, as a pipe delivers them.
    for piece in bytes.chunks(7_919) {
        input.write_all(piece).unwrap();
    }
    drop(input);
    let done = child.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let strip = |rows: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        rows.into_iter()
            .map(|mut r| {
                r.as_object_mut().unwrap().remove("clip_id");
                r
            })
            .collect()
    };
    let (a, b) = (strip(rows(&file_out)), strip(rows(&stdin_out)));
    assert!(
        a.iter().any(|r| r["label"] == "silence"),
        "the recording has silences"
    );
    assert_eq!(a.len(), b.len(), "rows");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["label"], y["label"], "{x} vs {y}");
        for k in ["start_s", "end_s", "confidence"] {
            assert!((f(x, k) - f(y, k)).abs() < 1e-5, "{k}: {x} vs {y}");
        }
    }
}

#[test]
fn segments_under_min_confidence_are_uncertain_with_their_probabilities() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let long = root().join("examples/audio/long/demo_long.wav");
    let mut runs = Vec::new();
    for extra in [vec![], vec!["--min-confidence", "0.9"]] {
        let out = dir.path().join(format!("u{}.jsonl", extra.len()));
        let mut args = vec![
            "infer",
            "--model",
            m.to_str().unwrap(),
            long.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let (ok, stdout, err) = sermo(&args);
        assert!(ok, "{err}");
        runs.push((rows(&out), stdout));
    }
    let (plain, with) = (&runs[0].0, &runs[1].0);
    assert_eq!(plain.len(), with.len());
    let mut uncertain = 0;
    for (a, b) in plain.iter().zip(with) {
        assert_eq!(a["probs"], b["probs"]);
        assert_eq!(a["confidence"], b["confidence"]);
        if f(a, "confidence") < 0.9 {
            assert_eq!(b["label"], "uncertain", "{b}");
            uncertain += 1;
        } else {
            assert_eq!(a["label"], b["label"]);
        }
    }
    // A 5-epoch model on 12 clips is rarely sure.
    assert!(uncertain > 0, "no segment under 0.9: {plain:?}");
    assert!(runs[1].1.contains("uncertain"), "{}", runs[1].1);
    // Flags are checked as flags.
    let (ok, _, err) = sermo(&[
        "infer",
        "--model",
        m.to_str().unwrap(),
        long.to_str().unwrap(),
        "--min-confidence",
        "1.5",
    ]);
    assert!(!ok);
    assert!(
        err.contains("--min-confidence must be a probability between 0 and 1"),
        "{err}"
    );
}
