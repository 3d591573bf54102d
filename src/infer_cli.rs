//! `sermo infer`: the long-recording job as a generated pipeline — `files` →
//! `decode` → `resample` (to the model's rate) → `window` (fixed segments, or
//! along detected speech with `--vad`) → `infer`
//! (the model's own feature settings) → `timeline` (printed as segments complete,
//! optionally written). `pipelines/long_recording.toml` is the same as a file.

use std::path::Path;

use crate::train::inference::read_artifact;

/// Arguments of `sermo infer`.
#[derive(clap::Args, Debug, Clone)]
pub struct InferArgs {
    /// The model folder (`config.json` + `model.mpk`); without it, the default
    /// model built into sermo (models/default: six emotions, EmoDB + RAVDESS).
    #[arg(long)]
    pub model: Option<std::path::PathBuf>,
    /// Audio files (any format `decode` reads), or `-` for a stream on stdin.
    #[arg(required = true)]
    pub files: Vec<String>,
    /// With `-`: `wav` (header in the stream), or raw `s16le` / `f32le`.
    #[arg(long, value_enum, default_value = "wav")]
    pub format: crate::audio::pcm::PcmFormat,
    /// With `-` and raw PCM: the sample rate.
    #[arg(long)]
    pub rate: Option<u32>,
    /// With `-` and raw PCM: interleaved channels (mixed to mono).
    #[arg(long, default_value_t = 1)]
    pub channels: u16,
    /// Segment length in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub segment: f64,
    /// Step between segment starts in seconds (default: the segment length).
    #[arg(long)]
    pub hop: Option<f64>,
    /// Cut along detected speech: segments of 1 s to `--segment` inside speech,
    /// the stretches between labelled `silence` (not classified).
    #[arg(long)]
    pub vad: bool,
    /// Median smoothing over this many consecutive segments (odd).
    #[arg(long)]
    pub smooth: Option<usize>,
    /// Write the predictions: `.parquet`, `.jsonl` or `.csv`.
    #[arg(long)]
    pub out: Option<String>,
    /// Draw the timeline into this PNG (class probabilities over time, mm:ss).
    #[arg(long, value_name = "PNG")]
    pub plot: Option<String>,
    /// Label a segment `uncertain` when its top class probability is below this
    /// (0–1); its probabilities are kept.
    #[arg(long, value_name = "P")]
    pub min_confidence: Option<f64>,
    /// Segments per forward pass.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Where the model runs: `cpu`, `cuda` or `auto` (CUDA when present).
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: crate::train::device::DeviceChoice,
    /// Worker threads (default: the number of cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also print the run summary (files, x-real-time).
    #[arg(long, short)]
    pub verbose: bool,
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn absolute(p: &str) -> String {
    std::path::absolute(Path::new(p))
        .map(|a| a.display().to_string())
        .unwrap_or_else(|_| p.to_string())
}

/// The flags checked as flags, so that a mistake is told in the words the user
/// typed (`--smooth must be odd`), not as a key of the generated pipeline.
fn check_flags(args: &InferArgs, stdin: bool) -> Result<(), String> {
    use crate::audio::pcm::PcmFormat;
    use crate::limits::{MAX_BATCH, MAX_CHANNELS, MAX_SAMPLE_RATE, MAX_WINDOW_S};
    let secs = |name: &str, v: f64| {
        if v.is_finite() && v > 0.0 && v <= MAX_WINDOW_S {
            Ok(())
        } else {
            Err(format!(
                "{name} must be a positive number of seconds, at most {MAX_WINDOW_S}, got {v}"
            ))
        }
    };
    secs("--segment", args.segment)?;
    if let Some(h) = args.hop {
        secs("--hop", h)?;
        if args.vad && h > args.segment {
            return Err(format!(
                "--hop must not exceed --segment ({}) with --vad, got {h}",
                args.segment
            ));
        }
    }
    if let Some(k) = args.smooth
        && (k == 0 || k % 2 == 0)
    {
        return Err(format!(
            "--smooth must be odd (a median over K segments centred on each one), got {k}"
        ));
    }
    if let Some(m) = args.min_confidence
        && !(m.is_finite() && (0.0..=1.0).contains(&m))
    {
        return Err(format!(
            "--min-confidence must be a probability between 0 and 1, got {m}"
        ));
    }
    if let Some(p) = &args.plot
        && !p.to_ascii_lowercase().ends_with(".png")
    {
        return Err(format!("--plot must name a .png file, got `{p}`"));
    }
    if args.batch_size == 0 || args.batch_size > MAX_BATCH {
        return Err(format!(
            "--batch-size must be between 1 and {MAX_BATCH}, got {}",
            args.batch_size
        ));
    }
    let raw = args.format != PcmFormat::Wav;
    if !stdin && (raw || args.rate.is_some() || args.channels != 1) {
        return Err(
            "--format, --rate and --channels describe a stream on stdin (give `-` as the file); files carry their own"
                .into(),
        );
    }
    if stdin && raw {
        match args.rate {
            None | Some(0) => {
                return Err(
                    "--rate is needed for raw PCM (--format s16le | f32le), e.g. --rate 16000"
                        .into(),
                );
            }
            Some(r) if r > MAX_SAMPLE_RATE => {
                return Err(format!(
                    "--rate must be at most {MAX_SAMPLE_RATE} Hz, got {r}"
                ));
            }
            _ => {}
        }
        if args.channels == 0 || args.channels as usize > MAX_CHANNELS {
            return Err(format!(
                "--channels must be between 1 and {MAX_CHANNELS}, got {}",
                args.channels
            ));
        }
    } else if stdin && (args.rate.is_some() || args.channels != 1) {
        return Err(
            "--rate and --channels are for raw PCM (--format s16le | f32le); a WAV stream carries its own"
                .into(),
        );
    }
    Ok(())
}

/// The pipeline text for `args`.
pub fn pipeline(args: &InferArgs) -> Result<String, String> {
    let stdin = args.files.iter().any(|f| f == "-");
    if stdin && args.files.len() > 1 {
        return Err("`-` (stdin) cannot be mixed with files".into());
    }
    check_flags(args, stdin)?;
    let dir = crate::train::default_model::resolve(args.model.as_deref(), "infer")?;
    let a = read_artifact(&dir)?;
    let model = absolute(&dir.display().to_string());
    let paths: Vec<String> = args.files.iter().map(|f| quote(&absolute(f))).collect();
    let mut t = String::new();
    t.push_str("[pipeline]\nname = \"infer\"\n\n");
    let mut last = "audio";
    if stdin {
        let format = match args.format {
            crate::audio::pcm::PcmFormat::Wav => "wav",
            crate::audio::pcm::PcmFormat::S16le => "s16le",
            crate::audio::pcm::PcmFormat::F32le => "f32le",
        };
        t.push_str(&format!(
            "[sources.audio]\nkind = \"stdin\"\nformat = \"{format}\"\nchannels = {}\n",
            args.channels
        ));
        if let Some(r) = args.rate {
            t.push_str(&format!("rate = {r}\n"));
        }
        t.push('\n');
    } else {
        t.push_str(&format!(
            "[sources.input]\nkind = \"files\"\npaths = [{}]\n\n",
            paths.join(", ")
        ));
        t.push_str("[stages.audio]\nkind = \"decode\"\ninput = \"input\"\nchannels = \"mix\"\n\n");
    }
    if let Some(rate) = a.sample_rate {
        t.push_str(&format!(
            "[stages.rate]\nkind = \"resample\"\ninput = \"audio\"\nrate = {rate}\n\n"
        ));
        last = "rate";
    }
    if args.vad {
        t.push_str(&format!(
            "[stages.segments]\nkind = \"window\"\ninput = \"{last}\"\nmode = \"speech\"\nlength_s = {}\nhop_s = {}\nmin_s = {:?}\n\n",
            args.segment,
            args.hop.unwrap_or(args.segment),
            1f64.min(args.segment)
        ));
    } else {
        t.push_str(&format!(
            "[stages.segments]\nkind = \"window\"\ninput = \"{last}\"\nmode = \"segments\"\nlength_s = {}\nhop_s = {}\nlast = \"keep\"\n\n",
            args.segment,
            args.hop.unwrap_or(args.segment)
        ));
    }
    t.push_str(&format!(
        "[stages.emotion]\nkind = \"infer\"\ninput = \"segments\"\nmodel = {}\nbatch_size = {}\ndevice = \"{}\"\n",
        quote(&model),
        args.batch_size,
        args.device.name()
    ));
    if let Some(k) = args.smooth {
        t.push_str(&format!("smooth = {{ median = {k} }}\n"));
    }
    if let Some(m) = args.min_confidence {
        t.push_str(&format!("min_confidence = {m:?}\n"));
    }
    t.push_str("\n[sinks.timeline]\nkind = \"timeline\"\ninput = \"emotion\"\n");
    if let Some(o) = &args.out {
        t.push_str(&format!("out = {}\n", quote(&absolute(o))));
    }
    if let Some(p) = &args.plot {
        t.push_str(&format!("plot = {}\n", quote(&absolute(p))));
    }
    Ok(t)
}
