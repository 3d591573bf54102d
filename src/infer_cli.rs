//! `sermo infer`: the long-recording job as a generated pipeline — `files` →
//! `decode` → `resample` (to the model's rate) → `window` (segments) → `infer`
//! (the model's own feature settings) → `timeline` (printed as segments complete,
//! optionally written). `pipelines/long_recording.toml` is the same as a file.

use std::path::Path;

use crate::ops::infer::read_artifact;

/// Arguments of `sermo infer`.
#[derive(clap::Args, Debug, Clone)]
pub struct InferArgs {
    /// The model folder (`config.json` + `model.mpk`).
    #[arg(long)]
    pub model: std::path::PathBuf,
    /// Audio files (any format `decode` reads).
    #[arg(required = true)]
    pub files: Vec<String>,
    /// Segment length in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub segment: f64,
    /// Step between segment starts in seconds (default: the segment length).
    #[arg(long)]
    pub hop: Option<f64>,
    /// Median smoothing over this many consecutive segments (odd).
    #[arg(long)]
    pub smooth: Option<usize>,
    /// Write the predictions: `.parquet`, `.jsonl` or `.csv`.
    #[arg(long)]
    pub out: Option<String>,
    /// Segments per forward pass.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
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

/// The pipeline text for `args`.
pub fn pipeline(args: &InferArgs) -> Result<String, String> {
    let a = read_artifact(&args.model)?;
    if args.files.iter().any(|f| f == "-") {
        return Err("reading audio from stdin (`-`) is not supported yet; give files".into());
    }
    if !(args.segment.is_finite() && args.segment > 0.0) {
        return Err(format!("--segment must be positive, got {}", args.segment));
    }
    let model = absolute(&args.model.display().to_string());
    let paths: Vec<String> = args.files.iter().map(|f| quote(&absolute(f))).collect();
    let mut t = String::new();
    t.push_str("[pipeline]\nname = \"infer\"\n\n");
    t.push_str(&format!(
        "[sources.input]\nkind = \"files\"\npaths = [{}]\n\n",
        paths.join(", ")
    ));
    t.push_str("[stages.audio]\nkind = \"decode\"\ninput = \"input\"\nchannels = \"mix\"\n\n");
    let mut last = "audio";
    if let Some(rate) = a.sample_rate {
        t.push_str(&format!(
            "[stages.rate]\nkind = \"resample\"\ninput = \"audio\"\nrate = {rate}\n\n"
        ));
        last = "rate";
    }
    t.push_str(&format!(
        "[stages.segments]\nkind = \"window\"\ninput = \"{last}\"\nmode = \"segments\"\nlength_s = {}\nhop_s = {}\nlast = \"keep\"\n\n",
        args.segment,
        args.hop.unwrap_or(args.segment)
    ));
    t.push_str(&format!(
        "[stages.emotion]\nkind = \"infer\"\ninput = \"segments\"\nmodel = {}\nbatch_size = {}\n",
        quote(&model),
        args.batch_size
    ));
    if let Some(k) = args.smooth {
        t.push_str(&format!("smooth = {{ median = {k} }}\n"));
    }
    t.push_str("\n[sinks.timeline]\nkind = \"timeline\"\ninput = \"emotion\"\n");
    if let Some(o) = &args.out {
        t.push_str(&format!("out = {}\n", quote(&absolute(o))));
    }
    Ok(t)
}
