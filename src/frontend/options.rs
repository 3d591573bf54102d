//! The settings of the feature front end ([`FeaturesConfig`]): what the `features`
//! stage reads from a pipeline file, what a features table records in its schema
//! metadata (`sermo.features`), and what `infer`/`sermo eval` rebuild a model's
//! input from. Parsing, defaults (librosa's), validation ([`FeaturesConfig::problems`])
//! and the output schema; no computation (that is [`super::compute`]).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::dsp::stft::PadMode;
use crate::engine::Problem;
use crate::limits::{MAX_BANDS, MAX_FRAME};
use crate::schema::{self, FEATURES_KEY};

/// Mel filter normalization (librosa's `norm`): `"slaney"` (area-normalized
/// triangles, the default) or `"none"`.
#[derive(
    Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MelNorm {
    #[default]
    Slaney,
    None,
}

/// The STFT analysis window (`window`): only `"hann"` (librosa's default) today.
#[derive(
    Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    #[default]
    Hann,
}

/// Mel filter settings (librosa.filters.mel).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MelOpts {
    /// Number of mel bands.
    #[serde(default = "d_n_mels")]
    pub n_mels: usize,
    /// Lowest frequency of the filter bank in Hz.
    #[serde(default)]
    pub fmin: f64,
    /// Highest frequency in Hz (default: half the sample rate).
    pub fmax: Option<f64>,
    /// HTK mel scale instead of Slaney's.
    #[serde(default)]
    pub htk: bool,
    /// `"slaney"` (default) or `"none"`.
    #[serde(default)]
    pub norm: MelNorm,
    /// Append this many orders of deltas (1: Δ, 2: Δ and ΔΔ).
    #[serde(default)]
    pub deltas: usize,
}

/// `log_mel`: mel + power_to_db.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogMelOpts {
    /// Number of mel bands.
    #[serde(default = "d_n_mels")]
    pub n_mels: usize,
    /// Lowest frequency of the filter bank in Hz.
    #[serde(default)]
    pub fmin: f64,
    /// Highest frequency in Hz (default: half the sample rate).
    pub fmax: Option<f64>,
    /// HTK mel scale instead of Slaney's.
    #[serde(default)]
    pub htk: bool,
    /// `"slaney"` (default) or `"none"`.
    #[serde(default)]
    pub norm: MelNorm,
    /// `ref` of power_to_db: the power that maps to 0 dB.
    #[serde(default = "d_ref", rename = "ref")]
    pub reference: f32,
    /// Floor of the power before the logarithm (power_to_db's `amin`).
    #[serde(default = "d_amin")]
    pub amin: f32,
    /// `top_db = 80` (default); a negative value disables the floor.
    #[serde(default = "d_top_db")]
    pub top_db: f32,
    /// Append this many orders of deltas (1: Δ, 2: Δ and ΔΔ).
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
    pub norm: MelNorm,
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
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MfccOpts {
    /// Number of coefficients.
    #[serde(default = "d_n_mfcc")]
    pub n_mfcc: usize,
    /// Cepstral liftering coefficient (0: none).
    #[serde(default)]
    pub lifter: f32,
    /// DCT type (2, as librosa's default).
    #[serde(default = "d_dct")]
    pub dct_type: u32,
    /// Mel bands the coefficients are computed from.
    #[serde(default = "d_n_mels")]
    pub n_mels: usize,
    /// Lowest frequency of the filter bank in Hz.
    #[serde(default)]
    pub fmin: f64,
    /// Highest frequency in Hz (default: half the sample rate).
    pub fmax: Option<f64>,
    /// HTK mel scale instead of Slaney's.
    #[serde(default)]
    pub htk: bool,
    /// `"slaney"` (default) or `"none"`.
    #[serde(default)]
    pub norm: MelNorm,
    /// Append this many orders of deltas (1: Δ, 2: Δ and ΔΔ).
    #[serde(default)]
    pub deltas: usize,
}

/// `spectrogram`: |STFT|^power.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecOpts {
    /// Exponent of the magnitude (1 = magnitude, 2 = power).
    #[serde(default = "d_power")]
    pub power: f32,
    /// Append this many orders of deltas (librosa.feature.delta, width 9): 1 adds Δ, 2
    /// adds Δ and ΔΔ.
    #[serde(default)]
    pub deltas: usize,
}

/// `chroma` (librosa.feature.chroma_stft on the power spectrogram, norm = inf).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChromaOpts {
    /// Chroma bins per octave.
    #[serde(default = "d_n_chroma")]
    pub n_chroma: usize,
    /// Tuning in fractions of a bin; omitted = estimated per clip (librosa's default).
    pub tuning: Option<f64>,
    /// Append this many orders of deltas (1: Δ, 2: Δ and ΔΔ).
    #[serde(default)]
    pub deltas: usize,
}

/// `contrast` (librosa.feature.spectral_contrast on the magnitude spectrogram).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContrastOpts {
    /// Upper edge of the lowest band in Hz (each further band is an octave).
    #[serde(default = "d_fmin_contrast")]
    pub fmin: f64,
    /// Number of octave bands (the output has n_bands + 1 values per frame).
    #[serde(default = "d_n_bands")]
    pub n_bands: usize,
    /// Share of a band's bins that make its peak and its valley.
    #[serde(default = "d_quantile")]
    pub quantile: f64,
    /// Linear difference of peak and valley instead of the difference in dB.
    #[serde(default)]
    pub linear: bool,
    /// Append this many orders of deltas (1: Δ, 2: Δ and ΔΔ).
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
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FrameOpts {
    /// Default: the stage's `n_fft`.
    pub frame_length: Option<usize>,
    /// Default: the stage's `hop_length`.
    pub hop_length: Option<usize>,
    /// Default: the stage's `center`.
    pub center: Option<bool>,
    /// Append this many orders of deltas (1: Δ, 2: Δ and ΔΔ).
    #[serde(default)]
    pub deltas: usize,
}

fn d_n_mels() -> usize {
    128
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

/// Pooling over time.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Summary {
    Mean,
    MeanStd,
}

/// Config of the `features` stage.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeaturesConfig {
    /// FFT size in samples (librosa's `n_fft`).
    #[serde(default = "d_n_fft")]
    pub n_fft: usize,
    /// Samples between frames.
    #[serde(default = "d_hop")]
    pub hop_length: usize,
    /// Window length in samples (default: `n_fft`).
    pub win_length: Option<usize>,
    #[serde(default)]
    pub window: WindowKind,
    /// Pad the signal so frame t is centred on sample t · hop_length (librosa's
    /// `center`).
    #[serde(default = "d_true")]
    pub center: bool,
    #[serde(default)]
    pub pad_mode: PadMode,
    pub summary: Option<Summary>,
    /// Concatenate these features per frame into one `stacked` column (e.g. `["zcr",
    /// "rms", "mfcc"]`).
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

/// Input columns carried over besides the row keys, when present.
pub(super) const PASSTHROUGH: [&str; 1] = [schema::col::VARIANT];

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
    pub(crate) fn enabled(&self) -> Vec<(&'static str, usize, usize)> {
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

    pub(crate) fn framing(&self, f: &FrameOpts) -> (usize, usize, bool) {
        (
            f.frame_length.unwrap_or(self.n_fft),
            f.hop_length.unwrap_or(self.hop_length),
            f.center.unwrap_or(self.center),
        )
    }

    pub(crate) fn width(&self, name: &str) -> Option<usize> {
        self.enabled()
            .into_iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, d, k)| d * (1 + k))
    }

    pub(crate) fn column_type(&self, d: usize) -> DataType {
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
    pub(crate) fn output_schema(&self, input: Option<&Schema>) -> SchemaRef {
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

impl FeaturesConfig {
    /// Problems with the settings (all of them), before anything runs.
    pub fn problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if !(2..=MAX_FRAME).contains(&self.n_fft) {
            p.push(Problem::new(
                "n_fft",
                format!("must be between 2 and {MAX_FRAME}, got {}", self.n_fft),
            ));
        }
        if !(1..=MAX_FRAME).contains(&self.hop_length) {
            p.push(Problem::new(
                "hop_length",
                format!("must be between 1 and {MAX_FRAME}, got {}", self.hop_length),
            ));
        }
        for (name, f) in [("zcr", &self.zcr), ("rms", &self.rms)] {
            let Some(f) = f else { continue };
            for (key, v) in [
                ("frame_length", f.frame_length),
                ("hop_length", f.hop_length),
            ] {
                if let Some(v) = v
                    && !(1..=MAX_FRAME).contains(&v)
                {
                    p.push(Problem::new(
                        &format!("{name}.{key}"),
                        format!("must be between 1 and {MAX_FRAME}, got {v}"),
                    ));
                }
            }
        }
        if let Some(w) = self.win_length
            && (w == 0 || w > self.n_fft)
        {
            p.push(Problem::new(
                "win_length",
                format!("must be between 1 and n_fft = {}, got {w}", self.n_fft),
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
        let mels: Vec<(&str, usize)> = [
            self.mel.as_ref().map(|m| ("mel", m.n_mels)),
            self.log_mel.as_ref().map(|m| ("log_mel", m.n_mels)),
            self.mfcc.as_ref().map(|m| ("mfcc", m.n_mels)),
        ]
        .into_iter()
        .flatten()
        .collect();
        let bands = [
            self.chroma
                .as_ref()
                .map(|c| ("chroma.n_chroma", c.n_chroma)),
            self.contrast
                .as_ref()
                .map(|c| ("contrast.n_bands", c.n_bands)),
        ];
        let mel_keys: Vec<(String, usize)> = mels
            .into_iter()
            .map(|(name, n)| (format!("{name}.n_mels"), n))
            .chain(bands.into_iter().flatten().map(|(k, n)| (k.to_string(), n)))
            .collect();
        for (key, n) in mel_keys {
            if !(1..=MAX_BANDS).contains(&n) {
                p.push(Problem::new(
                    &key,
                    format!("must be between 1 and {MAX_BANDS}, got {n}"),
                ));
            }
        }
        if let Some(c) = &self.contrast {
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
}
