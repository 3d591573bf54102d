//! Feature extraction speed: sermo vs librosa on the same decoded 16 kHz speech, in
//! one run, one core each; plus a full `sermo run` at 1 and 2 worker threads.
//!
//! ```sh
//! cargo bench --bench features     # RAVDESS from ../shared/corpora, else generated audio
//! SERMO_BENCH_FILES=300 cargo bench --bench features
//! SERMO_BENCH_TASKS=chroma_contrast SERMO_BENCH_LIBROSA=0 SERMO_BENCH_RUN=0 cargo bench --bench features
//! ```
//! `SERMO_BENCH_TASKS` (comma list) picks tasks, `SERMO_BENCH_LIBROSA=0` skips the
//! librosa side and `SERMO_BENCH_RUN=0` the full-pipeline run (for profiling),
//! `SERMO_BENCH_PASSES` sets the best-of count (default 3, both sides).

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use sermo::audio::ClipReader;
use sermo::audio::channels::{ChannelMode, to_mono};
use sermo::config::PipelineFile;
use sermo::dsp::resample::{Quality, resample_mono};
use sermo::engine::{Metrics, RunOptions};
use sermo::frontend::{Extractor, FeaturesConfig};
use sermo::registry::Registry;

fn load(root: &Path, n: usize) -> Vec<Vec<f32>> {
    let dir = root.join("../shared/corpora/ravdess");
    let mut files: Vec<_> = glob::glob(&format!("{}/Actor_*/*.flac", dir.display()))
        .map(|g| g.flatten().collect())
        .unwrap_or_default();
    files.sort();
    if files.is_empty() {
        eprintln!("../shared/corpora absent: generated speech-like audio");
        return (0..n)
            .map(|k| {
                (0..48000)
                    .map(|i| {
                        let t = i as f32 / 16000.0;
                        0.3 * (2.0 * std::f32::consts::PI * (120.0 + k as f32) * t).sin()
                            + 0.05 * ((i * 7919 + k) % 101) as f32 / 101.0
                    })
                    .collect()
            })
            .collect();
    }
    let step = (files.len() / n).max(1);
    files
        .iter()
        .step_by(step)
        .take(n)
        .filter_map(|p| {
            let mut r = ClipReader::open(p).ok()?;
            let rate = r.info().sample_rate;
            let mut planes: Vec<Vec<f32>> = Vec::new();
            while let Ok(Some(c)) = r.next_chunk(1 << 20) {
                if planes.is_empty() {
                    planes = vec![Vec::new(); c.planes.len()];
                }
                for (a, b) in planes.iter_mut().zip(c.planes) {
                    a.extend(b);
                }
            }
            resample_mono(
                &to_mono(planes, ChannelMode::Mix),
                rate,
                16000,
                Quality::High,
            )
            .ok()
        })
        .collect()
}

fn cfg(text: &str) -> FeaturesConfig {
    match toml::from_str(text) {
        Ok(c) => c,
        Err(e) => panic!("bench config: {e}"),
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let n: usize = std::env::var("SERMO_BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(240);
    let clips = load(root, n);
    let audio_s: f64 = clips.iter().map(|c| c.len() as f64 / 16000.0).sum();
    println!(
        "{} clips, {:.1} min of 16 kHz audio, one core",
        clips.len(),
        audio_s / 60.0
    );
    let speech = "n_fft = 512\nwin_length = 400\nhop_length = 160\n";
    let tasks: Vec<(&str, FeaturesConfig)> = vec![
        ("mfcc_defaults", cfg("[mfcc]\nn_mfcc = 40\n")),
        (
            "mfcc_speech",
            cfg(&format!("{speech}[mfcc]\nn_mfcc = 40\nn_mels = 40\n")),
        ),
        (
            "zcr_rms_mfcc",
            cfg(&format!(
                "{speech}stack = [\"zcr\", \"rms\", \"mfcc\"]\n[mfcc]\nn_mfcc = 40\nn_mels = 40\n[zcr]\n[rms]\n"
            )),
        ),
        ("chroma_contrast", cfg("[chroma]\n[contrast]\n")),
        ("chroma", cfg("[chroma]\n")),
        ("contrast", cfg("[contrast]\n")),
    ];
    let only = std::env::var("SERMO_BENCH_TASKS").ok();
    let tasks: Vec<(&str, FeaturesConfig)> = tasks
        .into_iter()
        .filter(|(n, _)| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|t| t == *n))
        })
        .collect();
    let flag = |k: &str| std::env::var(k).map_or(true, |v| v != "0");
    let passes: usize = std::env::var("SERMO_BENCH_PASSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let mut sermo_s = Vec::new();
    for (name, c) in &tasks {
        let ex = Extractor::new(c.clone());
        let _ = ex.run(16000, &clips[0]);
        // Best of `passes` (the same for librosa): short passes are noisy.
        let mut s = f64::INFINITY;
        let mut frames = 0usize;
        for _ in 0..passes {
            let t = Instant::now();
            frames = 0;
            for y in &clips {
                match ex.run(16000, y) {
                    Ok(out) => frames += out.first().map_or(0, |(_, d, v)| v.len() / d),
                    Err(e) => {
                        eprintln!("{name}: {e}");
                        return;
                    }
                }
            }
            s = s.min(t.elapsed().as_secs_f64());
        }
        sermo_s.push((name.to_string(), s));
        println!(
            "sermo   {name:<16} {s:>7.3} s  {:>8.0}x real time  ({frames} frames)",
            audio_s / s
        );
    }

    if flag("SERMO_BENCH_LIBROSA") {
        librosa(root, &clips, &tasks, &sermo_s, audio_s, passes);
    }
    if flag("SERMO_BENCH_RUN") {
        full_run(root, speech);
    }
}

/// librosa on the same samples, one core, best of `passes`.
fn librosa(
    root: &Path,
    clips: &[Vec<f32>],
    tasks: &[(&str, FeaturesConfig)],
    sermo_s: &[(String, f64)],
    audio_s: f64,
    passes: usize,
) {
    let dir = std::env::temp_dir().join(format!("sermo-bench-features-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let (raw, lens) = (dir.join("clips.f32"), dir.join("lengths.txt"));
    if let (Ok(mut f), Ok(mut l)) = (std::fs::File::create(&raw), std::fs::File::create(&lens)) {
        for c in clips {
            let bytes: Vec<u8> = c.iter().flat_map(|x| x.to_le_bytes()).collect();
            let _ = f.write_all(&bytes);
            let _ = writeln!(l, "{}", c.len());
        }
    }
    let names: Vec<&str> = tasks.iter().map(|t| t.0).collect();
    // One core for librosa too: no BLAS/OpenMP worker threads.
    match Command::new("python3")
        .env("OPENBLAS_NUM_THREADS", "1")
        .env("OMP_NUM_THREADS", "1")
        .env("MKL_NUM_THREADS", "1")
        .env("NUMBA_NUM_THREADS", "1")
        .env("SERMO_BENCH_PASSES", passes.to_string())
        .arg(root.join("benches/python/librosa_features.py"))
        .arg(&raw)
        .arg(&lens)
        .arg(names.join(","))
        .output()
    {
        Ok(o) if o.status.success() => {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&o.stdout) {
                for (name, s) in sermo_s {
                    let l = v[name.as_str()].as_f64().unwrap_or(f64::NAN);
                    println!(
                        "librosa {name:<16} {l:>7.3} s  {:>8.0}x real time  -> sermo is {:.1}x librosa",
                        audio_s / l,
                        l / s
                    );
                }
            }
        }
        Ok(o) => eprintln!(
            "librosa skipped: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => eprintln!("librosa skipped: {e}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The full pipeline over RAVDESS, 1 vs 2 worker threads.
fn full_run(root: &Path, speech: &str) {
    let ravdess = root.join("../shared/corpora/ravdess");
    if ravdess.is_dir() {
        let rt = match tokio::runtime::Runtime::new() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("{e}");
                return;
            }
        };
        let mut walls = Vec::new();
        for threads in [1usize, 2] {
            let out = std::env::temp_dir()
                .join(format!("sermo-bench-run-{}-{threads}", std::process::id()));
            let text = format!(
                "[sources.s]\nkind = \"files\"\npaths = [\"{}/Actor_*/*.flac\"]\nlabels = \"ravdess\"\n\
                 [stages.a]\nkind = \"decode\"\ninput = \"s\"\n\
                 [stages.r]\nkind = \"resample\"\ninput = \"a\"\nrate = 16000\n\
                 [stages.f]\nkind = \"features\"\ninput = \"r\"\n{speech}stack = [\"zcr\", \"rms\", \"mfcc\"]\n\
                 [stages.f.mfcc]\nn_mfcc = 40\nn_mels = 40\n[stages.f.zcr]\n[stages.f.rms]\n\
                 [sinks.t]\nkind = \"parquet\"\ninput = \"f\"\npath = \"{}\"\n",
                ravdess.display(),
                out.display()
            );
            let plan = match PipelineFile::parse(&text, root, &[])
                .and_then(|f| f.compile(&Registry::builtin()))
            {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("{e}");
                    return;
                }
            };
            let m = Metrics::default();
            let t = Instant::now();
            if let Err(e) = rt.block_on(plan.run(RunOptions {
                metrics: m.clone(),
                threads: Some(threads),
                ..Default::default()
            })) {
                eprintln!("{e}");
                return;
            }
            let w = t.elapsed().as_secs_f64();
            walls.push(w);
            println!(
                "sermo run RAVDESS FLAC -> 16 kHz -> ZCR+RMS+MFCC -> Parquet, {threads} thread(s): {w:.2} s ({:.0}x real time)",
                m.get("audio.micros") as f64 / 1e6 / w
            );
            let _ = std::fs::remove_dir_all(&out);
        }
        println!("speed-up 2 vs 1 thread: {:.2}x", walls[0] / walls[1]);
    }
}
