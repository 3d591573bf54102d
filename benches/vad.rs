//! Speech detection measured against Silero VAD in the same run: sermo's
//! detectors (`earshot`, `energy`; src/dsp/vad.rs) and Silero VAD v6 (ONNX,
//! `benches/vad/silero_ref.py`, one thread) on one recording of 36 EmoDB clips
//! between silences (tests/common/speech.rs), clean, with white noise at 20,
//! 10 and 5 dB SNR, and with synthetic music (notes and percussion, not speech)
//! at 20 and 10 dB: frame-level precision / recall / F1 against the clips'
//! speech spans, agreement with Silero, and speed on one core (x real time,
//! the detector alone on 16-kHz audio, best of 5).
//!
//! ```sh
//! pip install --no-deps silero-vad && pip install onnxruntime numpy soundfile
//! cargo bench --bench vad          # needs ../shared/corpora/emodb
//! ```
//! Writes `target/vad-bench/results.json` and the WAVs it scored.

#[path = "../tests/common/speech.rs"]
#[allow(dead_code)]
mod speech;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use sermo::dsp::vad::{FRAME, Method, VAD_RATE};

/// Silero's segments over `wav` as frames of 16 ms, its x real time; `None`
/// when the script or its packages are missing.
fn silero(root: &Path, wav: &Path, n: usize) -> Option<(Vec<bool>, f64, String)> {
    let out = wav.with_extension("silero.json");
    let st = Command::new("python3")
        .arg(root.join("benches/vad/silero_ref.py"))
        .arg(wav)
        .arg("--out")
        .arg(&out)
        .status()
        .ok()?;
    if !st.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).ok()?).ok()?;
    let mut regions = Vec::new();
    for s in v["segments_samples"].as_array()? {
        let a = s[0].as_u64()?;
        let b = s[1].as_u64()?;
        // Frames whose centre lies inside the segment.
        let fa = (a + FRAME as u64 / 2) / FRAME as u64;
        let fb = (b + FRAME as u64 / 2) / FRAME as u64;
        regions.push((fa, fb));
    }
    Some((
        speech::frames_of(&regions, n),
        v["x_real_time"].as_f64()?,
        v["model"].as_str().unwrap_or("silero").to_string(),
    ))
}

fn agreement(a: &[bool], b: &[bool]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len().max(1) as f64
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let emodb = root.join("../shared/corpora/emodb/wav");
    if !emodb.is_dir() {
        eprintln!("SKIP vad bench: ../shared/corpora/emodb is absent");
        return;
    }
    let dir = root.join("target/vad-bench");
    let _ = std::fs::create_dir_all(&dir);
    let rec = speech::build(&emodb, 15);
    let n = rec.truth.len();
    let secs = rec.samples.len() as f64 / VAD_RATE as f64;
    let speech_s = rec.truth.iter().filter(|t| **t).count() as f64 * FRAME as f64 / VAD_RATE as f64;
    println!(
        "recording: {} EmoDB clips, {secs:.1} s ({speech_s:.1} s speech by the truth)",
        rec.clips.len()
    );
    println!(
        "{:<13} {:<9} {:>9} {:>7} {:>7} {:>13} {:>12}",
        "SNR", "detector", "precision", "recall", "F1", "agree Silero", "x real time"
    );
    let mut results = Vec::new();
    // White noise at three SNRs, then synthetic music (non-stationary, not
    // speech: `Recording::with_music`) at two.
    let conditions = [
        (None, false),
        (Some(20.0), false),
        (Some(10.0), false),
        (Some(5.0), false),
        (Some(20.0), true),
        (Some(10.0), true),
    ];
    for (snr, music) in conditions {
        let x = match (snr, music) {
            (None, _) => rec.samples.clone(),
            (Some(s), false) => rec.with_noise(s),
            (Some(s), true) => rec.with_music(s),
        };
        let name = match (snr, music) {
            (None, _) => "clean".to_string(),
            (Some(s), false) => format!("{s:.0} dB"),
            (Some(s), true) => format!("music {s:.0} dB"),
        };
        let wav = dir.join(format!("vad-{}.wav", name.replace(' ', "")));
        speech::write_wav_f32(&wav, VAD_RATE, &x);
        let reference = silero(root, &wav, n);
        for method in [Method::Earshot, Method::Energy] {
            let mut best = f64::MAX;
            let mut regions = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                regions = speech::detect(&x, method, VAD_RATE as usize / 2);
                best = best.min(t.elapsed().as_secs_f64());
            }
            let pred = speech::frames_of(&regions, n);
            let (p, r, f) = speech::f1(&pred, &rec.truth);
            let agree = reference.as_ref().map(|(s, _, _)| agreement(&pred, s));
            let label = format!("{method:?}").to_lowercase();
            println!(
                "{name:<13} {label:<9} {p:>9.3} {r:>7.3} {f:>7.3} {:>13} {:>12.0}",
                agree.map_or("-".into(), |a| format!("{a:.3}")),
                secs / best
            );
            results.push(serde_json::json!({
                "snr": name, "detector": label, "precision": p, "recall": r, "f1": f,
                "agreement_with_silero": agree, "x_real_time": secs / best,
            }));
        }
        match reference {
            Some((s, xrt, model)) => {
                let (p, r, f) = speech::f1(&s, &rec.truth);
                println!(
                    "{name:<13} {:<9} {p:>9.3} {r:>7.3} {f:>7.3} {:>13} {xrt:>12.0}",
                    "silero", "1.000"
                );
                results.push(serde_json::json!({
                    "snr": name, "detector": "silero", "model": model, "precision": p,
                    "recall": r, "f1": f, "x_real_time": xrt,
                }));
            }
            None => println!(
                "{name:<13} silero    (not run: pip install --no-deps silero-vad && pip install onnxruntime numpy soundfile)"
            ),
        }
    }
    let summary = serde_json::json!({
        "recording": {"clips": rec.clips.len(), "seconds": secs, "speech_seconds": speech_s},
        "results": results,
    });
    let _ = std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&summary).unwrap_or_default(),
    );
}
