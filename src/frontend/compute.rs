//! The feature front end's computation: one mono signal → every enabled feature,
//! with the plans (FFT, mel bank, DCT, chroma bank, contrast bands) built once per
//! sample rate and reused. Pure: no I/O, no pipeline. Used by the `features` stage,
//! by `infer` (audio windows → the exact rows a model was trained on) and by
//! benchmarks; an `embed` stage will share [`RowFeaturizer`]'s row contract.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, FixedSizeListArray, Float32Array, ListArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::options::{FeaturesConfig, MelNorm, MelOptsInner, PASSTHROUGH, Summary};
use crate::dsp::chroma::ChromaStft;
use crate::dsp::contrast::SpectralContrast;
use crate::dsp::mel::MelBank;
use crate::dsp::spectral::{
    apply_transposed, dct_ortho_matrix, delta, power_to_db, rms, transpose, zero_crossing_rate,
};
use crate::dsp::stft::Stft;
use crate::rows::{row_planes, row_u32};
use crate::schema::{self, FEATURES_KEY, col};

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
        m.norm == MelNorm::Slaney,
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

/// Per-frame values of one feature: `frames × dims`, time-major.
pub struct Mat {
    pub dims: usize,
    pub data: Vec<f32>,
}

impl Mat {
    pub fn frames(&self) -> usize {
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

/// The mean (and population standard deviation) of each dimension over frames.
pub fn pooled(m: &Mat, summary: Summary) -> Vec<f32> {
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

/// One row's column: `List<FixedSizeList<f32, dims>>` per frame, or pooled.
pub fn column(m: &Mat, summary: Option<Summary>) -> ArrayRef {
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
pub(crate) struct PlanCache {
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
