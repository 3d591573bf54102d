//! Audio front end: decode + mono + resample to 16 kHz, sermo vs librosa in one run.
//!
//! ```sh
//! cargo bench --bench front_end                  # RAVDESS in ../shared/corpora (else demo clips)
//! SERMO_BENCH_GLOB='/data/x/**/*.flac' cargo bench --bench front_end
//! ```
//! sermo runs `files -> decode (mix) -> resample 16 kHz -> discard` with 1 and 2
//! worker threads; then `librosa.load(path, sr=16000)` (soxr_hq) runs over the same
//! files in one Python process (one core), and the ratio is printed.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use sermo::config::PipelineFile;
use sermo::engine::{Metrics, RunOptions};
use sermo::registry::Registry;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let default = root.join("../shared/corpora/ravdess");
    let glob = std::env::var("SERMO_BENCH_GLOB").unwrap_or_else(|_| {
        if default.is_dir() {
            format!("{}/Actor_*/*.flac", default.display())
        } else {
            eprintln!("../shared/corpora absent: benchmarking the demo clips");
            format!("{}/examples/audio/ravdess/*.flac", root.display())
        }
    });
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            return;
        }
    };
    println!("corpus: {glob}");
    let mut one_core = None;
    for threads in [1usize, 2] {
        let text = format!(
            "[sources.clips]\nkind = \"files\"\npaths = [\"{glob}\"]\n\
             [stages.audio]\nkind = \"decode\"\ninput = \"clips\"\n\
             [stages.r]\nkind = \"resample\"\ninput = \"audio\"\nrate = 16000\n\
             [sinks.null]\nkind = \"discard\"\ninput = \"r\"\n"
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
        let metrics = Metrics::default();
        let start = Instant::now();
        if let Err(e) = rt.block_on(plan.run(RunOptions {
            metrics: metrics.clone(),
            threads: Some(threads),
            ..Default::default()
        })) {
            eprintln!("{e}");
            return;
        }
        let wall = start.elapsed().as_secs_f64();
        let audio = metrics.get("audio.micros") as f64 / 1e6;
        let xrt = audio / wall;
        if threads == 1 {
            one_core = Some(xrt);
        }
        println!(
            "sermo   threads={threads}  files={}  audio={:.3} h  wall={wall:.2} s  {xrt:.0}x real time",
            metrics.get("files.total"),
            audio / 3600.0
        );
    }
    let out = Command::new("python3")
        .env("OPENBLAS_NUM_THREADS", "1")
        .env("OMP_NUM_THREADS", "1")
        .env("MKL_NUM_THREADS", "1")
        .arg(root.join("benches/python/librosa_load.py"))
        .arg(&glob)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let v: serde_json::Value = match serde_json::from_slice(&o.stdout) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("librosa output: {e}");
                    return;
                }
            };
            let lx = v["x_real_time"].as_f64().unwrap_or(f64::NAN);
            println!(
                "librosa 1 core     files={}  audio={:.3} h  wall={:.2} s  {lx:.0}x real time",
                v["files"],
                v["audio_s"].as_f64().unwrap_or(0.0) / 3600.0,
                v["wall_s"].as_f64().unwrap_or(0.0)
            );
            if let Some(d) = v["decode_only_x_real_time"].as_f64() {
                println!(
                    "libsndfile decode only (no mix, no resampling), 1 core: {d:.0}x real time \
                     (20x librosa would be {:.0}x)",
                    20.0 * lx
                );
            }
            if let Some(s) = one_core {
                println!("ratio (1 core): sermo / librosa = {:.1}x", s / lx);
            }
        }
        Ok(o) => eprintln!(
            "librosa skipped: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => eprintln!("librosa skipped: {e}"),
    }
}
