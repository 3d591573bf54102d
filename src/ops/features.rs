//! `features` stage: audio → features, with librosa 0.11's names, parameters,
//! defaults and numbers (parity is tested against librosa fixtures).
//!
//! ```toml
//! [stages.feat]
//! kind = "features"
//! input = "audio16k"
//! n_fft = 2048          # shared STFT settings (librosa names and defaults)
//! hop_length = 512
//! # win_length = 2048, center = true, pad_mode = "constant", window = "hann"
//! summary = "mean"      # optional: pool over time ("mean" | "mean_std")
//! stack = ["zcr", "rms", "mfcc"]   # optional: a `stacked` column, per frame
//! [stages.feat.mfcc]    # one sub-table per feature; its presence enables it
//! n_mfcc = 40
//! deltas = 2            # append delta and delta-delta (width 9)
//! [stages.feat.zcr]
//! [stages.feat.rms]
//! ```
//! Features: `spectrogram` (power or magnitude), `mel`, `log_mel`, `mfcc`, `zcr`,
//! `rms`, `chroma` (chroma_stft, tuning estimated or given), `contrast`
//! (spectral_contrast). Each becomes a column named after it, time-major
//! `List<FixedSizeList<Float32, D>>` (frames × D, librosa's output transposed;
//! deltas are appended along D), or `FixedSizeList<Float32, D>` with `summary`.
//! The settings are written to the schema metadata under `sermo.features`.
//! Features are computed per row: clips, or segments cut by an upstream stage.
//! FFT plans, filter banks and DCT matrices are built once per sample rate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, FixedSizeListArray, Float32Array, ListArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use super::clip::{row_planes, row_u32};
use super::per_row::map_rows;
use crate::dsp::chroma::{ChromaStft, SpectralContrast};
use crate::dsp::mel::MelBank;
use crate::dsp::spectral::{
    apply_transposed, dct_ortho_matrix, delta, power_to_db, rms, transpose, zero_crossing_rate,
};
use crate::dsp::stft::{PadMode, Stft};
use crate::engine::operator::require_inputs;
use crate::engine::{
    BatchStream, Component, ConfigContext, Operator, OperatorConfig, PlanInput, Problem, Role,
    TaskContext,
};
use crate::error::Result;
use crate::schema::{self, TableKind, col};

/// Schema metadata key holding the feature settings (JSON).
pub const FEATURES_KEY: &str = "sermo.features";

/// Mel filter settings (librosa.filters.mel).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MelOpts {
    #[serde(default = "d_n_mels")]
    pub n_mels: usize,
    #[serde(default)]
    pub fmin: f64,
    pub fmax: Option<f64>,
    #[serde(default)]
    pub htk: bool,
    /// "slaney" (default) or "none".
    #[serde(default = "d_norm")]
    pub norm: String,
    #[serde(default)]
    pub deltas: usize,
}

/// `log_mel`: mel + power_to_db.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogMelOpts {
    #[serde(default = "d_n_mels")]
    pub n_mels: usize,
    #[serde(default)]
    pub fmin: f64,
    pub fmax: Option<f64>,
    #[serde(default)]
    pub htk: bool,
    /// "slaney" (default) or "none".
    #[serde(default = "d_norm")]
    pub norm: String,
    #[serde(default = "d_ref", rename = "ref")]
    pub reference: f32,
    #[serde(default = "d_amin")]
    pub amin: f32,
    /// `top_db = 80` (default); a negative value disables the floor.
    #[serde(default = "d_top_db")]
    pub top_db: f32,
    #[serde(default)]
    pub deltas: usize,
}

/// Mel filter settings shared by `mel`, `log_mel` and `mfcc`.
#[derive(Debug, Clone, PartialEq)]
pub struct MelOptsInner {
    pub n_mels: usize,
    pub fmin: f64,
    pub fmax: Option<f64>,
    pub htk: bool,
    pub norm: String,
}

macro_rules! mel_inner {
    ($t:ty) => {
        impl $t {
            /// Its mel filter settings.
            pub fn mel(&self) -> MelOptsInner {
                MelOptsInner {
                    n_mels: self.n_mels,
                    fmin: self.fmin,
                    fmax: self.fmax,
                    htk: self.htk,
                    norm: self.norm.clone(),
                }
            }
        }
    };
}
mel_inner!(MelOpts);
mel_inner!(LogMelOpts);
mel_inner!(MfccOpts);

/// `mfcc` (librosa.feature.mfcc: DCT type 2, ortho, on log-mel with top_db 80).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MfccOpts {
    #[serde(default = "d_n_mfcc")]
    pub n_mfcc: usize,
    #[serde(default)]
    pub lifter: f32,
    #[serde(default = "d_dct")]
    pub dct_type: u32,
    #[serde(default = "d_n_mels")]
    pub n_mels: usize,
    #[serde(default)]
    pub fmin: f64,
    pub fmax: Option<f64>,
    #[serde(default)]
    pub htk: bool,
    /// "slaney" (default) or "none".
    #[serde(default = "d_norm")]
    pub norm: String,
    #[serde(default)]
    pub deltas: usize,
}

/// `spectrogram`: |STFT|^power.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpecOpts {
    #[serde(default = "d_power")]
    pub power: f32,
    #[serde(default)]
    pub deltas: usize,
}

/// `chroma` (librosa.feature.chroma_stft on the power spectrogram, norm = inf).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChromaOpts {
    #[serde(default = "d_n_chroma")]
    pub n_chroma: usize,
    /// Tuning in fractions of a bin; omitted = estimated per clip (librosa's default).
    pub tuning: Option<f64>,
    #[serde(default)]
    pub deltas: usize,
}

/// `contrast` (librosa.feature.spectral_contrast on the magnitude spectrogram).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContrastOpts {
    #[serde(default = "d_fmin_contrast")]
    pub fmin: f64,
    #[serde(default = "d_n_bands")]
    pub n_bands: usize,
    #[serde(default = "d_quantile")]
    pub quantile: f64,
    #[serde(default)]
    pub linear: bool,
    #[serde(default)]
    pub deltas: usize,
}

fn d_n_chroma() -> usize {
    12
}
fn d_fmin_contrast() -> f64 {
    200.0
}
fn d_n_bands() -> usize {
    6
}
fn d_quantile() -> f64 {
    0.02
}

/// `zcr` and `rms`: framed on the waveform.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FrameOpts {
    /// Default: the stage's `n_fft`.
    pub frame_length: Option<usize>,
    /// Default: the stage's `hop_length`.
    pub hop_length: Option<usize>,
    /// Default: the stage's `center`.
    pub center: Option<bool>,
    #[serde(default)]
    pub deltas: usize,
}

fn d_n_mels() -> usize {
    128
}
fn d_norm() -> String {
    "slaney".into()
}
fn d_ref() -> f32 {
    1.0
}
fn d_amin() -> f32 {
    1e-10
}
fn d_top_db() -> f32 {
    80.0
}
fn d_n_mfcc() -> usize {
    20
}
fn d_dct() -> u32 {
    2
}
fn d_power() -> f32 {
    2.0
}
fn d_n_fft() -> usize {
    2048
}
fn d_hop() -> usize {
    512
}
fn d_true() -> bool {
    true
}
fn d_window() -> String {
    "hann".into()
}

/// Pooling over time.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Summary {
    Mean,
    MeanStd,
}

/// Config of the `features` stage.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FeaturesConfig {
    #[serde(default = "d_n_fft")]
    pub n_fft: usize,
    #[serde(default = "d_hop")]
    pub hop_length: usize,
    pub win_length: Option<usize>,
    #[serde(default = "d_window")]
    pub window: String,
    #[serde(default = "d_true")]
    pub center: bool,
    #[serde(default)]
    pub pad_mode: PadMode,
    pub summary: Option<Summary>,
    pub stack: Option<Vec<String>>,
    pub spectrogram: Option<SpecOpts>,
    pub mel: Option<MelOpts>,
    pub log_mel: Option<LogMelOpts>,
    pub mfcc: Option<MfccOpts>,
    pub zcr: Option<FrameOpts>,
    pub rms: Option<FrameOpts>,
    pub chroma: Option<ChromaOpts>,
    pub contrast: Option<ContrastOpts>,
}

impl Component for FeaturesConfig {
    const KIND: &'static str = "features";
    const ROLE: Role = Role::Stage;
    const SUMMARY: &'static str = "spectrogram, mel, log_mel, mfcc, zcr, rms, chroma, contrast with librosa parity (+ deltas, summary, stack)";
}

/// Input columns carried over besides the row keys, when present.
const PASSTHROUGH: [&str; 1] = ["variant"];

const ORDER: [&str; 8] = [
    "spectrogram",
    "mel",
    "log_mel",
    "mfcc",
    "zcr",
    "rms",
    "chroma",
    "contrast",
];

impl FeaturesConfig {
    /// Enabled features in output order with their base dimension (per frame,
    /// before deltas) and delta order.
    fn enabled(&self) -> Vec<(&'static str, usize, usize)> {
        let mut v = Vec::new();
        if let Some(s) = &self.spectrogram {
            v.push(("spectrogram", self.n_fft / 2 + 1, s.deltas));
        }
        if let Some(m) = &self.mel {
            v.push(("mel", m.n_mels, m.deltas));
        }
        if let Some(m) = &self.log_mel {
            v.push(("log_mel", m.n_mels, m.deltas));
        }
        if let Some(m) = &self.mfcc {
            v.push(("mfcc", m.n_mfcc, m.deltas));
        }
        if let Some(z) = &self.zcr {
            v.push(("zcr", 1, z.deltas));
        }
        if let Some(r) = &self.rms {
            v.push(("rms", 1, r.deltas));
        }
        if let Some(c) = &self.chroma {
            v.push(("chroma", c.n_chroma, c.deltas));
        }
        if let Some(c) = &self.contrast {
            v.push(("contrast", c.n_bands + 1, c.deltas));
        }
        v
    }

    fn framing(&self, f: &FrameOpts) -> (usize, usize, bool) {
        (
            f.frame_length.unwrap_or(self.n_fft),
            f.hop_length.unwrap_or(self.hop_length),
            f.center.unwrap_or(self.center),
        )
    }

    fn width(&self, name: &str) -> Option<usize> {
        self.enabled()
            .into_iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, d, k)| d * (1 + k))
    }

    fn column_type(&self, d: usize) -> DataType {
        let item = Arc::new(Field::new_list_field(DataType::Float32, false));
        match self.summary {
            None => DataType::List(Arc::new(Field::new_list_field(
                DataType::FixedSizeList(item, d as i32),
                false,
            ))),
            Some(Summary::Mean) => DataType::FixedSizeList(item, d as i32),
            Some(Summary::MeanStd) => DataType::FixedSizeList(item, 2 * d as i32),
        }
    }

    /// Output schema: row keys (plus `variant` when the input has one), then one
    /// column per feature.
    fn output_schema(&self, input: Option<&Schema>) -> SchemaRef {
        let base = schema::features_base_schema();
        let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
        for extra in PASSTHROUGH {
            if let Some(f) = input.and_then(|s| s.field_with_name(extra).ok()) {
                fields.push(f.clone());
            }
        }
        for (name, d, k) in self.enabled() {
            fields.push(Field::new(name, self.column_type(d * (1 + k)), false));
        }
        if let Some(stack) = &self.stack {
            let d: usize = stack.iter().filter_map(|n| self.width(n)).sum();
            fields.push(Field::new("stacked", self.column_type(d), false));
        }
        let mut md = base.metadata().clone();
        md.insert(
            FEATURES_KEY.to_string(),
            serde_json::to_string(self).unwrap_or_default(),
        );
        Arc::new(Schema::new_with_metadata(fields, md))
    }
}

impl OperatorConfig for FeaturesConfig {
    fn check(&self, _ctx: &ConfigContext) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.n_fft < 2 {
            p.push(Problem::new(
                "n_fft",
                format!("must be at least 2, got {}", self.n_fft),
            ));
        }
        if self.hop_length == 0 {
            p.push(Problem::new("hop_length", "must be at least 1, got 0"));
        }
        if self.win_length.is_some_and(|w| w == 0 || w > self.n_fft) {
            p.push(Problem::new(
                "win_length",
                format!("must be between 1 and n_fft = {}", self.n_fft),
            ));
        }
        if self.window != "hann" {
            p.push(Problem::new(
                "window",
                format!("only \"hann\" is supported, got \"{}\"", self.window),
            ));
        }
        if self.enabled().is_empty() {
            p.push(
                Problem::new("kind", "no feature enabled")
                    .with_hint("add a sub-table per feature, e.g. [stages.feat.mfcc]"),
            );
        }
        for (name, _, k) in self.enabled() {
            if k > 2 {
                p.push(Problem::new(
                    &format!("{name}.deltas"),
                    format!("must be 0, 1 or 2, got {k}"),
                ));
            }
        }
        let mels: Vec<(&str, usize, &str)> = [
            self.mel
                .as_ref()
                .map(|m| ("mel", m.n_mels, m.norm.as_str())),
            self.log_mel
                .as_ref()
                .map(|m| ("log_mel", m.n_mels, m.norm.as_str())),
            self.mfcc
                .as_ref()
                .map(|m| ("mfcc", m.n_mels, m.norm.as_str())),
        ]
        .into_iter()
        .flatten()
        .collect();
        for (name, n, norm) in mels {
            if n == 0 {
                p.push(Problem::new(
                    &format!("{name}.n_mels"),
                    "must be at least 1, got 0",
                ));
            }
            if norm != "slaney" && norm != "none" {
                p.push(Problem::new(
                    &format!("{name}.norm"),
                    format!("must be \"slaney\" or \"none\", got \"{norm}\""),
                ));
            }
        }
        if let Some(c) = &self.chroma
            && c.n_chroma == 0
        {
            p.push(Problem::new("chroma.n_chroma", "must be at least 1, got 0"));
        }
        if let Some(c) = &self.contrast {
            if c.n_bands == 0 {
                p.push(Problem::new(
                    "contrast.n_bands",
                    "must be at least 1, got 0",
                ));
            }
            if !(c.quantile > 0.0 && c.quantile < 1.0) {
                p.push(Problem::new(
                    "contrast.quantile",
                    format!("must be in (0, 1), got {}", c.quantile),
                ));
            }
            if c.fmin.is_nan() || c.fmin <= 0.0 {
                p.push(Problem::new(
                    "contrast.fmin",
                    format!("must be positive, got {}", c.fmin),
                ));
            }
        }
        if let Some(m) = &self.mfcc {
            if m.dct_type != 2 {
                p.push(Problem::new(
                    "mfcc.dct_type",
                    format!("only type 2 is supported, got {}", m.dct_type),
                ));
            }
            if m.n_mfcc == 0 || m.n_mfcc > m.n_mels {
                p.push(Problem::new(
                    "mfcc.n_mfcc",
                    format!("must be between 1 and n_mels = {}", m.n_mels),
                ));
            }
        }
        if let Some(stack) = &self.stack {
            for n in stack {
                if !ORDER.contains(&n.as_str()) || self.width(n).is_none() {
                    p.push(Problem::new(
                        "stack",
                        format!("`{n}` is not an enabled feature"),
                    ));
                }
            }
            // Stacked features must have the same frames.
            for (name, f) in [("zcr", &self.zcr), ("rms", &self.rms)] {
                if let Some(f) = f
                    && stack.iter().any(|s| s == name)
                {
                    let (len, hop, center) = self.framing(f);
                    if hop != self.hop_length
                        || center != self.center
                        || (!center && len != self.n_fft)
                    {
                        p.push(Problem::new(
                            "stack",
                            format!("`{name}` must use the stage's hop_length and center (and frame_length = n_fft when center = false) to be stacked"),
                        ));
                    }
                }
            }
        }
        p
    }

    fn plan(&self, inputs: &[PlanInput]) -> std::result::Result<SchemaRef, String> {
        let s = require_inputs(inputs, &[TableKind::Audio])?;
        if let Ok(f) = s.field_with_name(col::SAMPLES)
            && let DataType::List(inner) = f.data_type()
            && matches!(inner.data_type(), DataType::List(_))
        {
            return Err("needs mono audio, but its input keeps channels (set channels = \"mix\" or \"first\" in decode)".into());
        }
        Ok(self.output_schema(Some(&s)))
    }

    fn build(&self, _ctx: &ConfigContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(Features {
            cfg: Arc::new(self.clone()),
        }))
    }
}

struct Features {
    cfg: Arc<FeaturesConfig>,
}

/// Everything planned for one sample rate.
struct Planned {
    stft: Stft,
    mel: Option<MelBank>,
    log_mel: Option<MelBank>,
    /// Mel bank and the DCT matrix, transposed (`n_mels × n_mfcc`).
    mfcc: Option<(MelBank, Vec<f32>)>,
    chroma: Option<ChromaStft>,
    /// Built per sample rate; an error (bands past Nyquist) quarantines the clip.
    contrast: Option<std::result::Result<SpectralContrast, String>>,
}

fn mel_bank(sr: u32, n_fft: usize, m: &MelOptsInner) -> MelBank {
    MelBank::new(
        sr,
        n_fft,
        m.n_mels,
        m.fmin,
        m.fmax,
        m.htk,
        m.norm == "slaney",
    )
}

impl Planned {
    fn new(cfg: &FeaturesConfig, sr: u32) -> Planned {
        Planned {
            stft: Stft::new(
                cfg.n_fft,
                cfg.hop_length,
                cfg.win_length,
                cfg.center,
                cfg.pad_mode,
            ),
            mel: cfg.mel.as_ref().map(|m| mel_bank(sr, cfg.n_fft, &m.mel())),
            log_mel: cfg
                .log_mel
                .as_ref()
                .map(|m| mel_bank(sr, cfg.n_fft, &m.mel())),
            chroma: cfg
                .chroma
                .as_ref()
                .map(|c| ChromaStft::new(sr, cfg.n_fft, c.n_chroma, c.tuning)),
            contrast: cfg.contrast.as_ref().map(|c| {
                SpectralContrast::new(sr, cfg.n_fft, c.fmin, c.n_bands, c.quantile, c.linear)
                    .map_err(|e| e.to_string())
            }),
            mfcc: cfg.mfcc.as_ref().map(|m| {
                (
                    mel_bank(sr, cfg.n_fft, &m.mel()),
                    // Transposed (n_mels × n_mfcc) for `apply_transposed`.
                    transpose(
                        &dct_ortho_matrix(m.n_mels, m.n_mfcc, m.lifter),
                        m.n_mfcc,
                        m.n_mels,
                    ),
                )
            }),
        }
    }
}

/// Per-frame values of one feature: `frames × dims`.
struct Mat {
    dims: usize,
    data: Vec<f32>,
}

impl Mat {
    fn frames(&self) -> usize {
        self.data.len() / self.dims.max(1)
    }
}

fn with_deltas(m: Mat, order: usize) -> Mat {
    if order == 0 {
        return m;
    }
    let frames = m.frames();
    let d1 = delta(&m.data, m.dims, 9, 1);
    let d2 = if order > 1 {
        delta(&m.data, m.dims, 9, 2)
    } else {
        None
    };
    let zeros = vec![0.0; m.data.len()];
    // Clips shorter than 9 frames get zero deltas (librosa refuses them).
    let d1 = d1.unwrap_or_else(|| zeros.clone());
    let d2 = if order > 1 {
        Some(d2.unwrap_or(zeros))
    } else {
        None
    };
    let dims = m.dims * (1 + order);
    let mut data = Vec::with_capacity(frames * dims);
    for t in 0..frames {
        let r = t * m.dims..(t + 1) * m.dims;
        data.extend_from_slice(&m.data[r.clone()]);
        data.extend_from_slice(&d1[r.clone()]);
        if let Some(d2) = &d2 {
            data.extend_from_slice(&d2[r]);
        }
    }
    Mat { dims, data }
}

/// What one pass over the STFT frames of a clip collects.
struct FramePass<'a> {
    /// The whole power spectrogram, kept for `spectrogram` (power 2) and `chroma`.
    power: Option<Vec<f32>>,
    /// `mel`, `log_mel`, `mfcc` banks (in that order) and their mel frames.
    banks: [Option<(&'a MelBank, Vec<f32>)>; 3],
}

impl FramePass<'_> {
    fn wants_power(&self) -> bool {
        self.power.is_some() || self.banks.iter().any(Option::is_some)
    }

    /// Take one power frame: keep it if needed, apply the mel banks to it.
    fn absorb(&mut self, p: &[f32]) {
        if let Some(all) = &mut self.power {
            all.extend_from_slice(p);
        }
        for (bank, out) in self.banks.iter_mut().flatten() {
            bank.apply(p, out);
        }
    }

    fn take_mel(&mut self, k: usize) -> Vec<f32> {
        self.banks[k].take().map(|(_, v)| v).unwrap_or_default()
    }
}

/// All enabled features of one clip, in [`FeaturesConfig::enabled`] order. One STFT
/// pass feeds every spectral feature frame by frame (mel banks applied per frame, so
/// the power spectrogram is only kept when `spectrogram` or `chroma` needs it); with
/// `contrast` that pass runs in float64 and the others use its power.
fn compute(
    cfg: &FeaturesConfig,
    plan: &Planned,
    y: &[f32],
) -> std::result::Result<Vec<(&'static str, Mat)>, String> {
    let bins = plan.stft.n_bins();
    let frames = plan.stft.n_frames(y.len());
    let keep_power =
        cfg.chroma.is_some() || cfg.spectrogram.as_ref().is_some_and(|s| s.power == 2.0);
    let mel_frames = |n: usize| Vec::with_capacity(frames * n);
    let mut pass = FramePass {
        power: keep_power.then(|| Vec::with_capacity(frames * bins)),
        banks: [
            plan.mel.as_ref().map(|b| (b, mel_frames(b.n_mels()))),
            plan.log_mel.as_ref().map(|b| (b, mel_frames(b.n_mels()))),
            plan.mfcc.as_ref().map(|(b, _)| (b, mel_frames(b.n_mels()))),
        ],
    };
    let mut mag = Vec::new();
    if cfg.contrast.is_some() {
        mag.reserve(frames * bins);
        let mut sq = vec![0.0f32; bins];
        let wants = pass.wants_power();
        plan.stft.power_frames_precise(y, 1.0, |m| {
            mag.extend_from_slice(m);
            if wants {
                for (s, v) in sq.iter_mut().zip(m) {
                    *s = v * v;
                }
                pass.absorb(&sq);
            }
        });
    } else if pass.wants_power() {
        plan.stft.power_frames(y, 2.0, |p| pass.absorb(p));
    }
    let mut out = Vec::new();
    if let Some(s) = &cfg.spectrogram {
        let data = match &pass.power {
            Some(p) if s.power == 2.0 => p.clone(),
            _ => {
                let mut v = Vec::new();
                plan.stft.power(y, s.power, &mut v);
                v
            }
        };
        out.push((
            "spectrogram",
            with_deltas(Mat { dims: bins, data }, s.deltas),
        ));
    }
    if let Some(m) = &cfg.mel {
        let data = pass.take_mel(0);
        out.push((
            "mel",
            with_deltas(
                Mat {
                    dims: m.n_mels,
                    data,
                },
                m.deltas,
            ),
        ));
    }
    if let Some(m) = &cfg.log_mel {
        let mut data = pass.take_mel(1);
        power_to_db(
            &mut data,
            m.reference,
            m.amin,
            (m.top_db >= 0.0).then_some(m.top_db),
        );
        out.push((
            "log_mel",
            with_deltas(
                Mat {
                    dims: m.n_mels,
                    data,
                },
                m.deltas,
            ),
        ));
    }
    if let (Some(m), Some((_, dct))) = (&cfg.mfcc, &plan.mfcc) {
        let mut lm = pass.take_mel(2);
        power_to_db(&mut lm, 1.0, 1e-10, Some(80.0));
        let mut data = Vec::with_capacity(frames * m.n_mfcc);
        apply_transposed(&lm, m.n_mels, dct, &mut data);
        out.push((
            "mfcc",
            with_deltas(
                Mat {
                    dims: m.n_mfcc,
                    data,
                },
                m.deltas,
            ),
        ));
    }
    if let Some(z) = &cfg.zcr {
        let (len, hop, center) = cfg.framing(z);
        let data = zero_crossing_rate(y, len, hop, center);
        out.push(("zcr", with_deltas(Mat { dims: 1, data }, z.deltas)));
    }
    if let Some(r) = &cfg.rms {
        let (len, hop, center) = cfg.framing(r);
        let data = rms(y, len, hop, center);
        out.push(("rms", with_deltas(Mat { dims: 1, data }, r.deltas)));
    }
    if let (Some(c), Some(ch)) = (&cfg.chroma, &plan.chroma) {
        let data = ch.compute(pass.power.as_deref().unwrap_or_default());
        out.push((
            "chroma",
            with_deltas(
                Mat {
                    dims: c.n_chroma,
                    data,
                },
                c.deltas,
            ),
        ));
    }
    if let (Some(c), Some(sc)) = (&cfg.contrast, &plan.contrast) {
        let sc = sc.as_ref().map_err(|e| format!("contrast: {e}"))?;
        let data = sc.compute(&mag);
        out.push((
            "contrast",
            with_deltas(
                Mat {
                    dims: c.n_bands + 1,
                    data,
                },
                c.deltas,
            ),
        ));
    }
    Ok(out)
}

fn pooled(m: &Mat, summary: Summary) -> Vec<f32> {
    let frames = m.frames().max(1);
    let mut mean = vec![0.0f64; m.dims];
    for row in m.data.chunks_exact(m.dims) {
        for (a, x) in mean.iter_mut().zip(row) {
            *a += *x as f64;
        }
    }
    mean.iter_mut().for_each(|a| *a /= frames as f64);
    let mut out: Vec<f32> = mean.iter().map(|&a| a as f32).collect();
    if summary == Summary::MeanStd {
        let mut var = vec![0.0f64; m.dims];
        for row in m.data.chunks_exact(m.dims) {
            for ((v, x), mu) in var.iter_mut().zip(row).zip(&mean) {
                *v += (*x as f64 - mu).powi(2);
            }
        }
        out.extend(var.iter().map(|v| (v / frames as f64).sqrt() as f32));
    }
    out
}

/// A column for one row.
fn column(m: &Mat, summary: Option<Summary>) -> ArrayRef {
    let item = Arc::new(Field::new_list_field(DataType::Float32, false));
    match summary {
        None => {
            let inner = FixedSizeListArray::new(
                item.clone(),
                m.dims as i32,
                Arc::new(Float32Array::from(m.data.clone())),
                None,
            );
            Arc::new(ListArray::new(
                Arc::new(Field::new_list_field(inner.data_type().clone(), false)),
                OffsetBuffer::from_lengths([m.frames()]),
                Arc::new(inner),
                None,
            ))
        }
        Some(s) => {
            let v = pooled(m, s);
            let d = v.len();
            Arc::new(FixedSizeListArray::new(
                item,
                d as i32,
                Arc::new(Float32Array::from(v)),
                None,
            ))
        }
    }
}

fn row_features(
    cfg: &FeaturesConfig,
    plans: &PlanCache,
    schema: &SchemaRef,
    row: &RecordBatch,
) -> std::result::Result<RecordBatch, String> {
    let sr = row_u32(row, col::SAMPLE_RATE)?;
    let plan = plans.get(cfg, sr);
    let y = row_planes(row, 0)?.into_iter().next().unwrap_or_default();
    let feats = compute(cfg, &plan, &y)?;
    let mut cols: Vec<ArrayRef> = Vec::new();
    let keys = schema::features_base_schema();
    let carried = keys.fields().iter().map(|f| f.name().as_str()).chain(
        PASSTHROUGH
            .into_iter()
            .filter(|p| schema.field_with_name(p).is_ok()),
    );
    for name in carried {
        cols.push(
            row.column_by_name(name)
                .cloned()
                .ok_or_else(|| format!("missing column `{name}`"))?,
        );
    }
    for (_, m) in &feats {
        cols.push(column(m, cfg.summary));
    }
    if let Some(stack) = &cfg.stack {
        let parts: Vec<&Mat> = stack
            .iter()
            .filter_map(|n| feats.iter().find(|(k, _)| k == n).map(|(_, m)| m))
            .collect();
        let frames = parts.iter().map(|m| m.frames()).min().unwrap_or(0);
        let dims: usize = parts.iter().map(|m| m.dims).sum();
        let mut data = Vec::with_capacity(frames * dims);
        for t in 0..frames {
            for m in &parts {
                data.extend_from_slice(&m.data[t * m.dims..(t + 1) * m.dims]);
            }
        }
        cols.push(column(&Mat { dims, data }, cfg.summary));
    }
    RecordBatch::try_new(schema.clone(), cols).map_err(|e| e.to_string())
}

/// Plans per sample rate, built on first use.
#[derive(Default)]
struct PlanCache {
    by_rate: Mutex<HashMap<u32, Arc<Planned>>>,
}

impl PlanCache {
    fn get(&self, cfg: &FeaturesConfig, sr: u32) -> Arc<Planned> {
        let mut m = match self.by_rate.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.entry(sr)
            .or_insert_with(|| Arc::new(Planned::new(cfg, sr)))
            .clone()
    }
}

impl Operator for Features {
    fn execute(self: Box<Self>, inputs: Vec<BatchStream>, ctx: TaskContext) -> BatchStream {
        let in_schema = inputs
            .first()
            .map(|s| s.schema())
            .unwrap_or_else(|| schema::audio_schema(false));
        let out_schema = self.cfg.output_schema(Some(&in_schema));
        let input = crate::engine::stream::merge_inputs(in_schema, inputs);
        let cfg = self.cfg;
        let plans = PlanCache::default();
        let schema = out_schema.clone();
        map_rows(input, out_schema, ctx, "invalid_format", move |row| {
            row_features(&cfg, &plans, &schema, row).map(|b| vec![b])
        })
    }
}

/// One extracted feature: (name, dims per frame, frames × dims values).
pub type Extracted = (&'static str, usize, Vec<f32>);

/// The stage's extraction outside a pipeline (benchmarks, embedders): the same
/// plans and code as the `features` stage.
pub struct Extractor {
    cfg: FeaturesConfig,
    plans: PlanCache,
}

impl Extractor {
    pub fn new(cfg: FeaturesConfig) -> Self {
        Extractor {
            cfg,
            plans: PlanCache::default(),
        }
    }

    /// Every enabled feature of one mono clip: (name, dims per frame, frames × dims).
    pub fn run(&self, sr: u32, y: &[f32]) -> std::result::Result<Vec<Extracted>, String> {
        let plan = self.plans.get(&self.cfg, sr);
        Ok(compute(&self.cfg, &plan, y)?
            .into_iter()
            .map(|(n, m)| (n, m.dims, m.data))
            .collect())
    }
}

/// The stage's per-row computation for other operators (the `infer` stage turns
/// audio windows into the exact feature rows a model was trained on).
pub struct RowFeaturizer {
    cfg: FeaturesConfig,
    plans: PlanCache,
    schema: SchemaRef,
}

impl RowFeaturizer {
    /// Featurize rows of `audio_schema` with `cfg`.
    pub fn new(cfg: FeaturesConfig, audio_schema: &SchemaRef) -> Self {
        let schema = cfg.output_schema(Some(audio_schema));
        RowFeaturizer {
            cfg,
            plans: PlanCache::default(),
            schema,
        }
    }

    /// The features row of one audio row (a one-row batch).
    pub fn row(&self, row: &RecordBatch) -> std::result::Result<RecordBatch, String> {
        row_features(&self.cfg, &self.plans, &self.schema, row)
    }
}

/// Settings of a features table, from its schema metadata.
pub fn settings_of(schema: &Schema) -> Option<FeaturesConfig> {
    serde_json::from_str(schema.metadata().get(FEATURES_KEY)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_roundtrip_through_schema_metadata() {
        let cfg: FeaturesConfig = toml::from_str(
            "n_fft = 512\nstack = [\"zcr\", \"mfcc\"]\n[mfcc]\nn_mfcc = 13\ndeltas = 1\n[zcr]\n[log_mel]\ntop_db = 60.0\n",
        )
        .unwrap();
        let schema = cfg.output_schema(None);
        let json = &schema.metadata()[FEATURES_KEY];
        let back: FeaturesConfig = serde_json::from_str(json).unwrap();
        assert_eq!(back, cfg);
        assert_eq!(settings_of(&schema), Some(cfg));
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    #[test]
    #[ignore = "profiling aid: cargo test --release --lib features::speed -- --ignored"]
    fn speech_mfcc_loop() {
        // SERMO_PROFILE_FEATURES="[chroma]\n[contrast]" profiles another setting.
        let text = std::env::var("SERMO_PROFILE_FEATURES")
            .map(|t| t.replace("\\n", "\n"))
            .unwrap_or_else(|_| "n_fft = 512\nwin_length = 400\nhop_length = 160\nstack = [\"zcr\", \"rms\", \"mfcc\"]\n[mfcc]\nn_mfcc = 40\nn_mels = 40\n[zcr]\n[rms]\n".into());
        let cfg: FeaturesConfig = toml::from_str(&text).unwrap();
        let ex = Extractor::new(cfg);
        let y: Vec<f32> = (0..48000)
            .map(|i| ((i as f32 * 0.01).sin() + (i as f32 * 0.37).sin()) * 0.3)
            .collect();
        let t = std::time::Instant::now();
        for _ in 0..400 {
            let _ = ex.run(16000, &y).unwrap();
        }
        eprintln!("{:.0}x real time", 400.0 * 3.0 / t.elapsed().as_secs_f64());
    }
}
