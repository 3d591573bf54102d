//! `augment` stage: audio → audio, each clip once per variant (the literature's
//! 4× expansion), with a `variant` column.
//!
//! ```toml
//! [stages.aug]
//! kind = "augment"
//! input = "audio16k"
//! variants = ["clean", "noise", "pitch", "noise+pitch"]
//! noise = "white"              # white | pink (ignored with noise_paths)
//! noise_snr_db = [10.0, 30.0]  # SNR drawn uniformly from [lo, hi]
//! # noise_paths = ["noise/*.wav"]  # mix recorded noise instead (looped, random offset)
//! pitch_semitones = [-2.0, 2.0]
//! stretch_rate = [0.9, 1.1]
//! shift_s = [-0.3, 0.3]
//! shift_mode = "circular"      # circular | zero
//! gain_db = [-6.0, 6.0]
//! ```
//! A variant is `clean` or `+`-joined effects (`noise`, `pitch`, `stretch`, `shift`,
//! `gain`); they are applied in that fixed order — stretch, pitch, shift, gain,
//! noise — so the SNR holds for the final signal. Every draw is seeded from the
//! pipeline's `seed`, the `clip_id` and the variant name only, so two runs give
//! bit-identical output whatever the thread scheduling. Augmentation works per row:
//! put it after decoding/resampling and before `window`. DSP: [`crate::dsp::augment`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, AsArray, Float64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use rand::Rng;
use serde::Deserialize;

use super::per_row::map_rows;
use crate::audio::ClipReader;
use crate::audio::Reason;
use crate::audio::channels::{ChannelMode, to_mono};
use crate::dsp::augment::{
    NoiseColor, add_noise, add_noise_from, gain, pitch_shift, rng_for, shift, time_stretch,
};
use crate::dsp::resample::{Quality, resample_mono};
use crate::engine::{
    BatchStream, Component, ConfigContext, Operator, OperatorConfig, PlanInput, Problem, Role,
    TaskContext,
};
use crate::error::Result;
use crate::rows::{keeps_channels, replace_columns, row_planes, row_str, row_u32, samples_array};
use crate::schema::col::VARIANT;
use crate::schema::require_inputs;
use crate::schema::{TableKind, col};

const EFFECTS: [&str; 5] = ["stretch", "pitch", "shift", "gain", "noise"];

/// Noise colour in the config.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Noise {
    #[default]
    White,
    Pink,
}

/// Shift mode.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ShiftMode {
    #[default]
    Circular,
    Zero,
}

/// Config of the `augment` stage.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AugmentConfig {
    /// Each clip is emitted once per variant, with a `variant` column: `"clean"` or
    /// effects joined with `+` (`"noise"`, `"pitch"`, `"stretch"`, `"shift"`, `"gain"`,
    /// e.g. `"noise+pitch"`).
    pub variants: Vec<String>,
    #[serde(default)]
    pub noise: Noise,
    /// Range [low, high] the noise SNR in dB is drawn from (uniformly); the achieved
    /// SNR is exact.
    #[serde(default = "d_snr")]
    pub noise_snr_db: [f32; 2],
    /// Globs of noise recordings mixed in instead of generated noise (decoded,
    /// resampled to the clip's rate, looped, random offset).
    #[serde(default)]
    pub noise_paths: Vec<String>,
    /// Range of the length-preserving pitch shift in semitones (as
    /// `librosa.effects.pitch_shift`).
    #[serde(default = "d_pitch")]
    pub pitch_semitones: [f32; 2],
    /// Range of the time-stretch rate (`librosa.effects.time_stretch`: length `round(n
    /// / rate)`).
    #[serde(default = "d_stretch")]
    pub stretch_rate: [f32; 2],
    /// Range of the time shift in seconds (see `shift_mode`).
    #[serde(default = "d_shift")]
    pub shift_s: [f32; 2],
    #[serde(default)]
    pub shift_mode: ShiftMode,
    /// Range of the gain in dB.
    #[serde(default = "d_gain")]
    pub gain_db: [f32; 2],
}

fn d_snr() -> [f32; 2] {
    [10.0, 30.0]
}
fn d_pitch() -> [f32; 2] {
    [-2.0, 2.0]
}
fn d_stretch() -> [f32; 2] {
    [0.9, 1.1]
}
fn d_shift() -> [f32; 2] {
    [-0.3, 0.3]
}
fn d_gain() -> [f32; 2] {
    [-6.0, 6.0]
}

impl Component for AugmentConfig {
    const KIND: &'static str = "augment";
    const ROLE: Role = Role::Stage;
    const SUMMARY: &'static str =
        "emit each clip once per variant: noise (SNR), pitch, stretch, shift, gain";
}

fn range_ok(r: [f32; 2]) -> bool {
    r[0].is_finite() && r[1].is_finite() && r[0] <= r[1]
}

impl OperatorConfig for AugmentConfig {
    fn check(&self, ctx: &ConfigContext) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.variants.is_empty() {
            p.push(
                Problem::new("variants", "is empty")
                    .with_hint("e.g. variants = [\"clean\", \"noise\"]"),
            );
        }
        for v in &self.variants {
            if v != "clean" {
                for e in v.split('+') {
                    if !EFFECTS.contains(&e) {
                        p.push(Problem::new(
                            "variants",
                            format!(
                                "unknown effect `{e}` in `{v}`; effects: {} (or \"clean\")",
                                EFFECTS.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        for (k, r) in [
            ("noise_snr_db", self.noise_snr_db),
            ("pitch_semitones", self.pitch_semitones),
            ("stretch_rate", self.stretch_rate),
            ("shift_s", self.shift_s),
            ("gain_db", self.gain_db),
        ] {
            if !range_ok(r) {
                p.push(Problem::new(
                    k,
                    format!("must be [lo, hi] with lo <= hi, got {r:?}"),
                ));
            }
        }
        if self.stretch_rate[0] <= 0.0 {
            p.push(Problem::new("stretch_rate", "rates must be positive"));
        }
        if !self.noise_paths.is_empty() && noise_files(&self.noise_paths, ctx.base_dir).is_empty() {
            p.push(Problem::new("noise_paths", "matches no file"));
        }
        p
    }

    fn plan(&self, inputs: &[PlanInput]) -> std::result::Result<SchemaRef, String> {
        let s = require_inputs(inputs, &[TableKind::Audio])?;
        let mut fields: Vec<Field> = s.fields().iter().map(|f| f.as_ref().clone()).collect();
        if !fields.iter().any(|f| f.name() == VARIANT) {
            fields.push(Field::new(VARIANT, DataType::Utf8, false));
        }
        Ok(Arc::new(Schema::new_with_metadata(
            fields,
            s.metadata().clone(),
        )))
    }

    fn build(&self, ctx: &ConfigContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(Augment {
            cfg: Arc::new(self.clone()),
            seed: ctx.seed,
            noise_files: noise_files(&self.noise_paths, ctx.base_dir),
        }))
    }
}

fn noise_files(patterns: &[String], base: &std::path::Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = patterns
        .iter()
        .flat_map(|p| {
            let full = crate::engine::operator::resolve_path(base, p);
            glob::glob(&full.to_string_lossy())
                .map(|g| g.flatten().collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .collect();
    v.sort();
    v
}

struct Augment {
    cfg: Arc<AugmentConfig>,
    seed: u64,
    noise_files: Vec<PathBuf>,
}

/// Recorded noise, decoded and resampled once per sample rate.
#[derive(Default)]
struct NoiseBank {
    by_rate: Mutex<HashMap<u32, Arc<Vec<Vec<f32>>>>>,
}

impl NoiseBank {
    fn get(&self, files: &[PathBuf], rate: u32) -> std::result::Result<Arc<Vec<Vec<f32>>>, String> {
        let mut m = match self.by_rate.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if let Some(v) = m.get(&rate) {
            return Ok(v.clone());
        }
        let mut all = Vec::new();
        for f in files {
            let mut r = ClipReader::open(f)
                .map_err(|e| format!("noise file {}: {}", f.display(), e.message))?;
            let src = r.info().sample_rate;
            let mut planes: Vec<Vec<f32>> = Vec::new();
            while let Some(c) = r
                .next_chunk(1 << 20)
                .map_err(|e| format!("noise file {}: {}", f.display(), e.message))?
            {
                if planes.is_empty() {
                    planes = vec![Vec::new(); c.planes.len()];
                }
                for (a, b) in planes.iter_mut().zip(c.planes) {
                    a.extend(b);
                }
            }
            let mono = to_mono(planes, ChannelMode::Mix);
            all.push(resample_mono(&mono, src, rate, Quality::High).map_err(|e| e.to_string())?);
        }
        let v = Arc::new(all);
        m.insert(rate, v.clone());
        Ok(v)
    }
}

fn draw(rng: &mut impl Rng, r: [f32; 2]) -> f32 {
    if r[0] == r[1] {
        r[0]
    } else {
        rng.random_range(r[0]..=r[1])
    }
}

/// Apply one variant to one channel-set of samples.
fn apply(
    cfg: &AugmentConfig,
    seed: u64,
    clip_id: &str,
    variant: &str,
    rate: u32,
    planes: &[Vec<f32>],
    noise: Option<&[Vec<f32>]>,
) -> std::result::Result<Vec<Vec<f32>>, String> {
    let effects: Vec<&str> = if variant == "clean" {
        Vec::new()
    } else {
        variant.split('+').collect()
    };
    let mut rng = rng_for(seed, clip_id, variant);
    // Draw every parameter first, in a fixed order, so draws do not depend on which
    // effects a variant uses.
    let stretch = draw(&mut rng, cfg.stretch_rate);
    let semitones = draw(&mut rng, cfg.pitch_semitones);
    let shift_s = draw(&mut rng, cfg.shift_s);
    let gain_db = draw(&mut rng, cfg.gain_db);
    let snr = draw(&mut rng, cfg.noise_snr_db);
    let pick: u64 = rng.random();
    let offset: u64 = rng.random();
    let mut out = Vec::with_capacity(planes.len());
    for (ch, p) in planes.iter().enumerate() {
        let mut y = p.clone();
        for e in EFFECTS {
            if !effects.contains(&e) {
                continue;
            }
            match e {
                "stretch" => y = time_stretch(&y, stretch),
                "pitch" => y = pitch_shift(&y, rate, semitones)?,
                "shift" => shift(
                    &mut y,
                    (shift_s * rate as f32).round() as isize,
                    cfg.shift_mode == ShiftMode::Circular,
                ),
                "gain" => gain(&mut y, gain_db),
                "noise" => match noise {
                    Some(bank) if !bank.is_empty() => {
                        let n = &bank[(pick % bank.len() as u64) as usize];
                        let off = if n.is_empty() {
                            0
                        } else {
                            (offset % n.len() as u64) as usize
                        };
                        add_noise_from(&mut y, n, snr, off);
                    }
                    _ => {
                        let color = if cfg.noise == Noise::Pink {
                            NoiseColor::Pink
                        } else {
                            NoiseColor::White
                        };
                        // A distinct stream per channel, still seeded only by (seed, clip, variant).
                        let mut nrng = rng_for(
                            seed ^ (ch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                            clip_id,
                            variant,
                        );
                        add_noise(&mut y, snr, color, &mut nrng);
                    }
                },
                _ => {}
            }
        }
        out.push(y);
    }
    Ok(out)
}

fn rows_for(
    cfg: &AugmentConfig,
    seed: u64,
    noise: Option<&[Vec<f32>]>,
    schema: &SchemaRef,
    keep: bool,
    row: &RecordBatch,
) -> std::result::Result<Vec<RecordBatch>, String> {
    let clip_id = row_str(row, col::CLIP_ID);
    let rate = row_u32(row, col::SAMPLE_RATE)?;
    let start = row
        .column_by_name(col::START_S)
        .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Float64Type>())
        .map(|a| a.value(0))
        .unwrap_or(0.0);
    let planes = row_planes(row, 0)?;
    let mut out = Vec::new();
    for v in &cfg.variants {
        let y = apply(cfg, seed, &clip_id, v, rate, &planes, noise)?;
        let n = y.first().map_or(0, Vec::len);
        let mut cols: Vec<ArrayRef> = row.columns().to_vec();
        if cols.len() < schema.fields().len() {
            cols.push(Arc::new(StringArray::from(vec![v.as_str()])));
        }
        let widened = RecordBatch::try_new(schema.clone(), cols).map_err(|e| e.to_string())?;
        let replaced: Vec<(&str, ArrayRef)> = vec![
            (col::SAMPLES, samples_array(y, keep)),
            (
                col::END_S,
                Arc::new(Float64Array::from(vec![start + n as f64 / rate as f64])),
            ),
            (VARIANT, Arc::new(StringArray::from(vec![v.as_str()]))),
        ];
        out.push(replace_columns(&widened, &replaced)?);
    }
    Ok(out)
}

impl Operator for Augment {
    fn execute(self: Box<Self>, inputs: Vec<BatchStream>, ctx: TaskContext) -> BatchStream {
        let in_schema = inputs
            .first()
            .map(|s| s.schema())
            .unwrap_or_else(|| crate::schema::audio_schema(false));
        let keep = keeps_channels(&in_schema);
        let out_schema = match self.cfg.plan(&[PlanInput {
            id: "",
            kind: "",
            schema: in_schema.clone(),
        }]) {
            Ok(s) => s,
            Err(_) => in_schema.clone(),
        };
        let input = crate::engine::stream::merge_inputs(in_schema, inputs);
        let (cfg, seed, files) = (self.cfg, self.seed, self.noise_files);
        let bank = NoiseBank::default();
        let schema = out_schema.clone();
        map_rows(input, out_schema, ctx, Reason::InvalidFormat, move |row| {
            let noise = if files.is_empty() {
                None
            } else {
                Some(bank.get(&files, row_u32(row, col::SAMPLE_RATE)?)?)
            };
            rows_for(
                &cfg,
                seed,
                noise.as_deref().map(|v| v.as_slice()),
                &schema,
                keep,
                row,
            )
        })
    }
}
