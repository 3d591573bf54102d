//! Pretrained-encoder speed: sermo (`Pretrained::run` on burn's CPU backend,
//! which runs the CPU inference pass of `src/encoders/cpu.rs`) vs transformers
//! (PyTorch CPU) on the same decoded 16 kHz clips, in one run, at 1 and 2 threads.
//!
//! ```sh
//! python3 scripts/make_random_encoder.py out/encoders/wav2vec2-base-random
//! cargo bench --bench encoder      # RAVDESS from ../shared/corpora, else generated audio
//! SERMO_BENCH_FILES=40 SERMO_BENCH_PASSES=1 SERMO_BENCH_SPLIT=1 cargo bench --bench encoder
//! ```
//! Each clip is run on its own (batch 1) and every hidden state is kept (layers
//! `0..=num_layers`, what `embed` with `layers = "all"` computes), with the
//! folder's normalization, on both sides. Each thread count runs in a child
//! process (this binary again, or `benches/python/torch_encoder.py`) with
//! `RAYON_NUM_THREADS` (burn-ndarray's parallel ops) and `MATMUL_NUM_THREADS`
//! (matrixmultiply, which burn-ndarray's matmul calls) set to it, and torch with
//! `torch.set_num_threads`; the CPU time each child used is reported beside its
//! wall time, so a side that uses more cores than asked shows.
//!
//! Environment: `SERMO_BENCH_ENCODER` (checkpoint folder, default
//! `out/encoders/wav2vec2-base-random`), `SERMO_BENCH_FILES` (default 240: the first
//! RAVDESS files in name order), `SERMO_BENCH_PASSES` (best-of count, default 2, both
//! sides), `SERMO_BENCH_THREADS` (comma list, default `1,2`), `SERMO_BENCH_TORCH=0`
//! (skip transformers), `SERMO_BENCH_SPLIT=1` (one more pass per side, timing each
//! part of the model: convolutions, projection, position convolution, attention,
//! feed-forward, norms; sermo's split pass times the burn modules, op by op).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::activation::{gelu, softmax};
use sermo::audio::ClipReader;
use sermo::audio::channels::{ChannelMode, to_mono};
use sermo::dsp::resample::{Quality, resample_mono};
use sermo::encoders::{EncoderConfig, Pretrained, normalize};

type B = sermo::train::Cpu;

/// The first `n` RAVDESS files in name order, decoded, mixed to mono and
/// resampled to 16 kHz (as benches/features.rs); generated audio without the corpus.
fn load(root: &Path, n: usize) -> (Vec<Vec<f32>>, &'static str) {
    let dir = root.join("../shared/corpora/ravdess");
    let mut files: Vec<_> = glob::glob(&format!("{}/Actor_*/*.flac", dir.display()))
        .map(|g| g.flatten().collect())
        .unwrap_or_default();
    files.sort();
    if files.is_empty() {
        eprintln!(
            "{} absent: generated speech-like audio (3 s clips) instead of RAVDESS",
            dir.display()
        );
        let clips = (0..n)
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
        return (clips, "generated audio");
    }
    let clips = files
        .iter()
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
        .collect();
    (clips, "RAVDESS")
}

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn write_clips(dir: &Path, clips: &[Vec<f32>]) -> std::io::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let (raw, lens) = (dir.join("clips.f32"), dir.join("lengths.txt"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&raw)?);
    let mut l = std::fs::File::create(&lens)?;
    for c in clips {
        for x in c {
            f.write_all(&x.to_le_bytes())?;
        }
        writeln!(l, "{}", c.len())?;
    }
    f.flush()?;
    Ok((raw, lens))
}

fn read_clips(raw: &Path, lens: &Path) -> std::io::Result<Vec<Vec<f32>>> {
    let bytes = std::fs::read(raw)?;
    let samples: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let mut out = Vec::new();
    let mut o = 0;
    for n in std::fs::read_to_string(lens)?
        .split_whitespace()
        .filter_map(|v| v.parse::<usize>().ok())
    {
        out.push(samples[o..o + n].to_vec());
        o += n;
    }
    Ok(out)
}

/// Accumulated seconds per named part, in first-seen order.
#[derive(Default)]
struct Parts(Vec<(String, f64)>);

impl Parts {
    /// Add the time since `t` to `name` and restart `t`.
    fn tick(&mut self, name: &str, t: &mut Instant) {
        let s = t.elapsed().as_secs_f64();
        *t = Instant::now();
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v += s,
            None => self.0.push((name.to_string(), s)),
        }
    }
}

/// One pass over the clips with each part of the model timed on its own (the
/// NdArray backend runs each op eagerly, so the clock after an op has its cost).
/// The same ops as `SpeechEncoder::forward` for an unmasked batch of one clip.
fn split(p: &Pretrained<B>, clips: &[Vec<f32>]) -> Parts {
    let m = &p.model;
    let dev = p.device();
    let mut parts = Parts::default();
    for y in clips {
        let mut t = Instant::now();
        let mut v = y.clone();
        if p.identity.normalize {
            normalize(&mut v);
        }
        let l = v.len();
        let mut h = Tensor::<B, 3>::from_data(TensorData::new(v, [1, l, 1]), dev);
        parts.tick("input", &mut t);
        for (i, conv) in m.conv_layers.iter().enumerate() {
            let [b, _, c] = h.dims();
            let patches: Tensor<B, 4> = h.unfold(1, conv.kernel, conv.stride);
            let f = patches.dims()[1];
            let patches = patches.reshape([b * f, c * conv.kernel]);
            parts.tick(&format!("conv{i} unfold"), &mut t);
            let mut z = patches.matmul(conv.weight.val());
            if let Some(bias) = &conv.bias {
                z = z + bias.val().unsqueeze();
            }
            let z = z.reshape([b, f, conv.weight.dims()[1]]);
            parts.tick(&format!("conv{i} matmul"), &mut t);
            let z = match &conv.norm {
                Some(n) if conv.norm_over_time => n.over_time(z),
                Some(n) => n.over_channels(z),
                None => z,
            };
            parts.tick(&format!("conv{i} norm"), &mut t);
            h = gelu(z);
            parts.tick(&format!("conv{i} gelu"), &mut t);
        }
        if let Some(n) = &m.feat_proj_norm {
            h = n.over_channels(h);
        }
        let mut x = m.projection.forward(h);
        parts.tick("projection", &mut t);
        x = x.clone() + m.pos_conv.forward(x);
        parts.tick("pos_conv", &mut t);
        if !m.pre_ln {
            x = m.layer_norm.over_channels(x);
        }
        let mut states = vec![x.clone()];
        parts.tick("norms+residuals", &mut t);
        let f = x.dims()[1];
        let bias = m.relative.as_ref().map(|r| r.bias(f, dev));
        for layer in &m.layers {
            let a_in = if layer.pre_ln {
                let z = layer.layer_norm.over_channels(x.clone());
                parts.tick("norms+residuals", &mut t);
                z
            } else {
                x.clone()
            };
            let a = attention(&layer.attention, a_in, bias.as_ref(), &mut parts, &mut t);
            x = if layer.pre_ln {
                x + a
            } else {
                layer.layer_norm.over_channels(x + a)
            };
            let f_in = if layer.pre_ln {
                layer.final_layer_norm.over_channels(x.clone())
            } else {
                x.clone()
            };
            parts.tick("norms+residuals", &mut t);
            let ff = &layer.feed_forward;
            let z = ff.intermediate.forward(f_in);
            parts.tick("ff dense", &mut t);
            let z = gelu(z);
            parts.tick("ff gelu", &mut t);
            let z = ff.output.forward(z);
            parts.tick("ff dense", &mut t);
            x = if layer.pre_ln {
                x + z
            } else {
                layer.final_layer_norm.over_channels(x + z)
            };
            parts.tick("norms+residuals", &mut t);
            states.push(x.clone());
        }
        for s in states {
            let _ = s.into_data().to_vec::<f32>();
        }
        parts.tick("copy out", &mut t);
    }
    parts
}

/// `SelfAttention::forward` timed in parts (WavLM's gate: as one part).
fn attention(
    a: &sermo::encoders::attention::SelfAttention<B>,
    x: Tensor<B, 3>,
    bias: Option<&Tensor<B, 4>>,
    parts: &mut Parts,
    t: &mut Instant,
) -> Tensor<B, 3> {
    if a.gate.is_some() {
        let y = a.forward(x, None, bias);
        parts.tick("attention (gated, whole)", t);
        return y;
    }
    let [b, f, h] = x.dims();
    let d = h / a.heads;
    let q = a.q.forward(x.clone());
    let k = a.k.forward(x.clone());
    let v = a.v.forward(x);
    parts.tick("attn q/k/v dense", t);
    let split = |t: Tensor<B, 3>| t.reshape([b, f, a.heads, d]).swap_dims(1, 2);
    let q = split(q) * (d as f64).powf(-0.5);
    let (k, v) = (split(k), split(v));
    parts.tick("attn core", t);
    let scores = q.matmul(k.swap_dims(2, 3));
    parts.tick("attn QK^T", t);
    let p = softmax(scores, 3);
    parts.tick("attn softmax", t);
    let y = p.matmul(v);
    parts.tick("attn PV", t);
    let y = y.swap_dims(1, 2).reshape([b, f, h]);
    parts.tick("attn core", t);
    let y = a.out.forward(y);
    parts.tick("attn out dense", t);
    y
}

/// Child: time `Pretrained::run` over the clips, print one JSON line.
fn child(args: &[String]) {
    let [folder, raw, lens] = [&args[0], &args[1], &args[2]].map(PathBuf::from);
    let passes = env_usize("SERMO_BENCH_PASSES", 2).max(1);
    let clips = match read_clips(&raw, &lens) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("child: {e}");
            std::process::exit(1);
        }
    };
    let p = match Pretrained::<B>::load(&folder, None, &Default::default()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let layers: Vec<usize> = (0..p.config.num_hidden_states()).collect();
    let run = |y: &[f32]| match p.run(&[y], &layers) {
        Ok(s) => s[0].frames,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    run(&clips[0]);
    let (mut best, mut cpu, mut frames) = (f64::INFINITY, f64::NAN, 0);
    for _ in 0..passes {
        let (t, c) = (Instant::now(), cpu_seconds());
        frames = clips.iter().map(|y| run(y)).sum::<usize>();
        let s = t.elapsed().as_secs_f64();
        if s < best {
            (best, cpu) = (s, cpu_seconds() - c);
        }
    }
    let mut out = serde_json::json!({"seconds": best, "cpu_seconds": cpu, "frames": frames});
    if std::env::var("SERMO_BENCH_SPLIT").is_ok_and(|v| v == "1") {
        let parts = split(&p, &clips);
        out["split"] = parts
            .0
            .into_iter()
            .map(|(n, s)| serde_json::json!([n, s]))
            .collect();
    }
    println!("{out}");
}

fn run_child(cmd: &mut Command, what: &str) -> Option<serde_json::Value> {
    match cmd.output() {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let line = text.lines().rev().find(|l| l.starts_with('{'))?;
            serde_json::from_str(line).ok()
        }
        Ok(o) if o.status.code() == Some(77) => {
            eprintln!("{what} skipped: torch or transformers not installed");
            None
        }
        Ok(o) => {
            eprintln!(
                "{what} failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            None
        }
        Err(e) => {
            eprintln!("{what} skipped: {e}");
            None
        }
    }
}

fn print_split(side: &str, v: &serde_json::Value, total: f64) {
    let Some(parts) = v["split"].as_array() else {
        return;
    };
    let sum: f64 = parts.iter().filter_map(|p| p[1].as_f64()).sum();
    println!("  {side} split pass: {sum:.2} s (timed pass {total:.2} s)");
    for p in parts {
        let (n, s) = (p[0].as_str().unwrap_or("?"), p[1].as_f64().unwrap_or(0.0));
        println!("    {n:<26} {s:>8.3} s  {:>5.1} %", 100.0 * s / sum);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if std::env::var("SERMO_BENCH_CHILD").is_ok_and(|v| v == "1") && args.len() >= 3 {
        child(&args);
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let folder = std::env::var("SERMO_BENCH_ENCODER")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("out/encoders/wav2vec2-base-random"));
    if !folder.join("config.json").is_file() {
        println!(
            "no encoder at {}: make a random-init wav2vec2-base (needs torch and transformers) with\n  \
             python3 scripts/make_random_encoder.py out/encoders/wav2vec2-base-random\n\
             or point SERMO_BENCH_ENCODER at a checkpoint folder",
            folder.display()
        );
        return;
    }
    let config = match EncoderConfig::from_folder(&folder) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return;
        }
    };
    let n = env_usize("SERMO_BENCH_FILES", 240);
    let passes = env_usize("SERMO_BENCH_PASSES", 2).max(1);
    let threads: Vec<usize> = std::env::var("SERMO_BENCH_THREADS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .filter_map(|t| t.trim().parse().ok())
        .filter(|&t| t > 0)
        .collect();
    let torch = std::env::var("SERMO_BENCH_TORCH").map_or(true, |v| v != "0");
    let (clips, source) = load(root, n);
    let audio_s: f64 = clips.iter().map(|c| c.len() as f64 / 16000.0).sum();
    println!(
        "{} clips ({source}), {audio_s:.1} s ({:.1} min) of 16 kHz audio, one clip per forward",
        clips.len(),
        audio_s / 60.0
    );
    println!(
        "encoder {}: {}, {} layers, hidden {}, all {} hidden states kept; best of {passes}",
        folder.display(),
        config.family.model_type(),
        config.num_layers,
        config.hidden_size,
        config.num_hidden_states()
    );
    let dir = std::env::temp_dir().join(format!("sermo-bench-encoder-{}", std::process::id()));
    let (raw, lens) = match write_clips(&dir, &clips) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}: {e}", dir.display());
            return;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return;
        }
    };
    let mut rows = Vec::new();
    for &t in &threads {
        let ts = t.to_string();
        let s = run_child(
            Command::new(&exe)
                .env("SERMO_BENCH_CHILD", "1")
                .env("RAYON_NUM_THREADS", &ts)
                .env("MATMUL_NUM_THREADS", &ts)
                .env("SERMO_BENCH_PASSES", passes.to_string())
                .arg(&folder)
                .arg(&raw)
                .arg(&lens),
            "sermo",
        );
        let Some(s) = s else { continue };
        let ss = s["seconds"].as_f64().unwrap_or(f64::NAN);
        let sc = s["cpu_seconds"].as_f64().unwrap_or(f64::NAN);
        println!(
            "{t} thread(s): sermo {ss:>8.2} s  {:>5.1}x real time  (CPU {:.2} cores, {} frames)",
            audio_s / ss,
            sc / ss,
            s["frames"]
        );
        let py = if torch {
            run_child(
                Command::new("python3")
                    .env("OMP_NUM_THREADS", &ts)
                    .env("MKL_NUM_THREADS", &ts)
                    .env("OPENBLAS_NUM_THREADS", &ts)
                    .env("SERMO_BENCH_PASSES", passes.to_string())
                    .arg(root.join("benches/python/torch_encoder.py"))
                    .arg(&folder)
                    .arg(&raw)
                    .arg(&lens)
                    .arg(&ts),
                "torch",
            )
        } else {
            None
        };
        let ps = py.as_ref().and_then(|p| p["seconds"].as_f64());
        if let (Some(p), Some(ps)) = (&py, ps) {
            let pc = p["cpu_seconds"].as_f64().unwrap_or(f64::NAN);
            println!(
                "{t} thread(s): torch {ps:>8.2} s  {:>5.1}x real time  (CPU {:.2} cores, {} frames; torch {}, transformers {}, attention {})",
                audio_s / ps,
                pc / ps,
                p["frames"],
                p["torch"].as_str().unwrap_or("?"),
                p["transformers"].as_str().unwrap_or("?"),
                p["attn"].as_str().unwrap_or("?")
            );
            println!("{t} thread(s): sermo is {:.2}x the speed of torch", ps / ss);
        }
        print_split("sermo", &s, ss);
        if let (Some(p), Some(ps)) = (&py, ps) {
            print_split("torch", p, ps);
        }
        rows.push((t, ss, ps));
    }
    if !rows.is_empty() {
        println!("\nthreads  audio s   sermo s  sermo xRT   torch s  torch xRT  sermo/torch speed");
        for (t, ss, ps) in &rows {
            let ps = ps.unwrap_or(f64::NAN);
            println!(
                "{t:>7}  {audio_s:>7.1}  {ss:>8.2}  {:>9.1}  {ps:>8.2}  {:>9.1}  {:>17.2}",
                audio_s / ss,
                audio_s / ps,
                ps / ss
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
