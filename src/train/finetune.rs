//! `ssl_finetune`: a pretrained speech encoder (wav2vec2, HuBERT, WavLM, from
//! [`crate::encoders`]) and the SUPERB head ([`SslHead`]) trained end to end on
//! raw audio, as transformers' `*ForSequenceClassification` fine-tuning does:
//! feature encoder frozen by default (`freeze_feature_encoder`), optionally the
//! first transformer layers too (`freeze_layers`), LayerDrop (`layerdrop`), time
//! masking of the projected features with the learned mask embedding
//! (`mask_time_prob`, `mask_time_length`, `mask_time_min_masks`, transformers'
//! `_compute_mask_indices`), and the encoder's own learning rate
//! (`encoder_learning_rate`; the sink's `learning_rate` trains the head).
//!
//! Departures from transformers, both so that a clip's logits never depend on
//! its batch neighbours: the group-norm feature encoders (base models) run each
//! clip unpadded (transformers takes GroupNorm statistics over a padded batch's
//! padding too), and padded frames are always masked as attention keys (the
//! base models' reference passes no mask). On a batch of one clip both agree
//! with transformers exactly. The encoders' internal dropouts are not applied
//! (as with `hidden_dropout = attention_dropout = feat_proj_dropout = 0`).
//!
//! Examples are raw samples at the encoder's rate (`frames` = samples, one value
//! per frame); clips are cut to their first `max_s` seconds.
//!
//! Inference of a saved model on burn's CPU backend (`sermo infer`, `eval`,
//! `serve`, the `infer` stage) runs the encoder through the CPU pass
//! ([`crate::encoders::cpu`], the `embed` stage's, several times faster than the
//! modules) and the head through burn; training and CUDA run the modules.

use std::path::Path;
use std::sync::Arc;

use burn::module::{Initializer, Param};
use burn::nn::LinearConfig;
use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use serde::{Deserialize, Serialize};

use super::model::SslHead;
use crate::encoders::cpu::CpuEncoder;
use crate::encoders::{self, EncoderConfig, Identity, SpeechEncoder, checkpoint::Checkpoint};

/// `[params]` of `model = "ssl_finetune"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SslFinetuneParams {
    /// Dropout before the head's classifier.
    pub dropout: f64,
    /// Head projector width (transformers' `classifier_proj_size`).
    pub projector: usize,
    /// Learned softmax-weighted sum of every hidden state (SUPERB,
    /// `use_weighted_layer_sum`); `false`: the last hidden state only.
    pub weighted_layer_sum: bool,
    /// Keep the convolutional feature encoder fixed (transformers'
    /// `freeze_feature_encoder()`, the usual recipe).
    pub freeze_feature_encoder: bool,
    /// Also keep the feature projection, the position embedding and the first N
    /// transformer layers fixed.
    pub freeze_layers: usize,
    /// Probability of skipping each transformer layer in a training step.
    pub layerdrop: f64,
    /// Time masking of the projected features (SpecAugment on the encoder's
    /// frames): expected fraction of frames starting a masked span.
    pub mask_time_prob: f64,
    /// Frames per masked span.
    pub mask_time_length: usize,
    /// Masked spans per clip at least.
    pub mask_time_min_masks: usize,
    /// Learning rate of the encoder (the sink's `learning_rate` is the head's);
    /// the same schedule scales both.
    pub encoder_learning_rate: f64,
    /// Clips are cut to their first `max_s` seconds (training and inference).
    pub max_s: f64,
    /// Normalize each clip to zero mean, unit variance before the encoder;
    /// default: the folder's `do_normalize` (`preprocessor_config.json`).
    pub normalize: Option<bool>,
}

impl Default for SslFinetuneParams {
    fn default() -> Self {
        SslFinetuneParams {
            dropout: 0.0,
            projector: 256,
            weighted_layer_sum: true,
            freeze_feature_encoder: true,
            freeze_layers: 0,
            layerdrop: 0.05,
            mask_time_prob: 0.05,
            mask_time_length: 10,
            mask_time_min_masks: 2,
            encoder_learning_rate: 5e-5,
            max_s: 10.0,
            normalize: None,
        }
    }
}

/// Longest clip `max_s` allows (attention memory grows with the square of the
/// frames).
pub const MAX_S: f64 = 60.0;

impl SslFinetuneParams {
    /// Problems with the values (empty when fine).
    pub fn check(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.projector == 0 {
            out.push("projector must be at least 1".into());
        }
        for (k, v) in [
            ("layerdrop", self.layerdrop),
            ("mask_time_prob", self.mask_time_prob),
        ] {
            if !(0.0..1.0).contains(&v) {
                out.push(format!("{k} must be in [0, 1), got {v}"));
            }
        }
        if self.mask_time_prob > 0.0 && self.mask_time_length == 0 {
            out.push("mask_time_length must be at least 1".into());
        }
        if !(self.encoder_learning_rate.is_finite() && self.encoder_learning_rate >= 0.0) {
            out.push(format!(
                "encoder_learning_rate must be 0 or more, got {}",
                self.encoder_learning_rate
            ));
        }
        if !(self.max_s.is_finite() && self.max_s > 0.0 && self.max_s <= MAX_S) {
            out.push(format!("max_s must be in (0, {MAX_S}], got {}", self.max_s));
        }
        out
    }
}

/// The pretrained encoder a fine-tuned model started from, recorded in its
/// `config.json`: the identity (folder, hashes, normalization) and the
/// folder's two config files, so the model rebuilds without the folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawEncoderSpec", into = "RawEncoderSpec")]
pub struct EncoderSpec {
    pub identity: Identity,
    pub config_json: String,
    pub preprocessor_json: Option<String>,
    /// `config_json` parsed.
    pub config: EncoderConfig,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEncoderSpec {
    identity: Identity,
    config_json: String,
    #[serde(default)]
    preprocessor_json: Option<String>,
}

impl TryFrom<RawEncoderSpec> for EncoderSpec {
    type Error = String;
    fn try_from(r: RawEncoderSpec) -> Result<Self, String> {
        let config = EncoderConfig::from_json(&r.config_json, r.preprocessor_json.as_deref())
            .map_err(|e| format!("the recorded encoder config.json: {e}"))?;
        Ok(EncoderSpec {
            identity: r.identity,
            config_json: r.config_json,
            preprocessor_json: r.preprocessor_json,
            config,
        })
    }
}

impl From<EncoderSpec> for RawEncoderSpec {
    fn from(s: EncoderSpec) -> Self {
        RawEncoderSpec {
            identity: s.identity,
            config_json: s.config_json,
            preprocessor_json: s.preprocessor_json,
        }
    }
}

impl EncoderSpec {
    /// Read the checkpoint folder's configs and identity (hashing its weights).
    pub fn read(folder: &Path, normalize: Option<bool>) -> Result<EncoderSpec, String> {
        let config = EncoderConfig::from_folder(folder).map_err(|e| e.to_string())?;
        let identity = encoders::identity(folder, &config, normalize).map_err(|e| e.to_string())?;
        let config_json =
            encoders::config::read_small(&folder.join("config.json")).map_err(|e| e.to_string())?;
        let pre = folder.join("preprocessor_config.json");
        let preprocessor_json = if pre.exists() {
            Some(encoders::config::read_small(&pre).map_err(|e| e.to_string())?)
        } else {
            None
        };
        Ok(EncoderSpec {
            identity,
            config_json,
            preprocessor_json,
            config,
        })
    }

    /// Samples of `max_s` seconds at the encoder's rate.
    pub fn max_samples(&self, max_s: f64) -> usize {
        (max_s * self.config.sample_rate as f64).round().max(1.0) as usize
    }
}

/// What the forward pass needs besides weights.
#[derive(Debug, Clone)]
pub struct Setup {
    pub config: EncoderConfig,
    pub normalize: bool,
    pub weighted: bool,
    pub layerdrop: f64,
    pub mask_prob: f64,
    pub mask_length: usize,
    pub min_masks: usize,
}

/// The encoder's weights laid out for the CPU pass ([`CpuEncoder`]), set only
/// on a model loaded for inference ([`SslFinetune::with_cpu_pass`]): they are a
/// copy, so a model that trains further must not carry them.
#[derive(Clone, Default)]
pub struct CpuPass(Option<Arc<CpuEncoder>>);

impl std::fmt::Debug for CpuPass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "CpuPass(on)"
        } else {
            "CpuPass(off)"
        })
    }
}

/// The encoder and its head.
#[derive(Module, Debug)]
pub struct SslFinetune<B: Backend> {
    pub encoder: SpeechEncoder<B>,
    pub head: SslHead<B>,
    /// Replaces masked frames in training (the checkpoint's
    /// `masked_spec_embed`; uniform in [0, 1) when it has none, as transformers).
    pub mask_embedding: Param<Tensor<B, 1>>,
    #[module(skip)]
    pub setup: Setup,
    /// Inference only: the encoder's forward by the CPU pass.
    #[module(skip)]
    pub cpu: CpuPass,
}

fn setup(spec: &EncoderSpec, p: &SslFinetuneParams) -> Setup {
    Setup {
        config: spec.config.clone(),
        normalize: spec.identity.normalize,
        weighted: p.weighted_layer_sum,
        layerdrop: p.layerdrop,
        mask_prob: p.mask_time_prob,
        mask_length: p.mask_time_length,
        min_masks: p.mask_time_min_masks,
    }
}

fn head<B: Backend>(
    spec: &EncoderSpec,
    p: &SslFinetuneParams,
    classes: usize,
    dropout: Dropout,
    device: &B::Device,
) -> SslHead<B> {
    let layers = if p.weighted_layer_sum {
        spec.config.num_hidden_states()
    } else {
        1
    };
    SslHead {
        layer_weights: Initializer::Ones.init([layers], device),
        projector: LinearConfig::new(spec.config.hidden_size, p.projector).init(device),
        classifier: LinearConfig::new(p.projector, classes).init(device),
        dropout,
        layers,
    }
}

/// The model's structure with a zero encoder (weights come from a record).
pub fn skeleton<B: Backend>(
    spec: &EncoderSpec,
    p: &SslFinetuneParams,
    classes: usize,
    device: &B::Device,
) -> SslFinetune<B> {
    let h = spec.config.hidden_size;
    SslFinetune {
        encoder: encoders::load::skeleton(&spec.config, device),
        head: head(
            spec,
            p,
            classes,
            DropoutConfig::new(p.dropout).init(),
            device,
        ),
        mask_embedding: Initializer::Zeros.init([h], device),
        setup: setup(spec, p),
        cpu: CpuPass::default(),
    }
}

/// The model to fine-tune: the pretrained encoder from its folder (checked
/// against the recorded hashes), a fresh head, the freezing applied.
pub fn pretrained<B: Backend>(
    spec: &EncoderSpec,
    p: &SslFinetuneParams,
    classes: usize,
    device: &B::Device,
) -> Result<SslFinetune<B>, String> {
    let folder = Path::new(&spec.identity.folder);
    let now = encoders::identity(folder, &spec.config, Some(spec.identity.normalize))
        .map_err(|e| e.to_string())?;
    if now.weights_hash != spec.identity.weights_hash
        || now.config_hash != spec.identity.config_hash
    {
        return Err(format!(
            "the checkpoint in {} changed since the run was planned (weights hash {} vs {})",
            folder.display(),
            now.weights_hash,
            spec.identity.weights_hash
        ));
    }
    let file = Checkpoint::weights_file(folder).map_err(|e| e.to_string())?;
    let mut ck = Checkpoint::open(&file, spec.config.family).map_err(|e| e.to_string())?;
    let h = spec.config.hidden_size;
    let embed = encoders::load::mask_embedding(&mut ck, h).map_err(|e| e.to_string())?;
    let encoder =
        encoders::load::build::<B>(&spec.config, ck, device).map_err(|e| e.to_string())?;
    let mask_embedding = match embed {
        Some(v) => Param::from_tensor(Tensor::from_data(TensorData::new(v, [h]), device)),
        None => Param::from_tensor(Tensor::random([h], Distribution::Uniform(0.0, 1.0), device)),
    };
    let model = SslFinetune {
        encoder,
        head: head(
            spec,
            p,
            classes,
            DropoutConfig::new(p.dropout).init(),
            device,
        ),
        mask_embedding,
        setup: setup(spec, p),
        cpu: CpuPass::default(),
    };
    Ok(model.freeze(p))
}

/// Transformers' `_compute_mask_indices` for one batch: 1.0 on masked frames
/// (`[b × f]`). `u` holds `1 + b · f` uniform draws: the batch's ε, then one
/// key per (clip, start position) whose smallest values choose the starts.
pub fn time_mask(
    frames: &[usize],
    f: usize,
    prob: f64,
    length: usize,
    min_masks: usize,
    u: &[f32],
) -> Vec<f32> {
    let b = frames.len();
    let mut m = vec![0.0f32; b * f];
    if length == 0 || u.len() < 1 + b * f {
        return m;
    }
    let eps = u[0] as f64;
    for (i, &n) in frames.iter().enumerate() {
        let n = n.min(f);
        let mut spans = ((prob * n as f64 / length as f64 + eps) as usize).max(min_masks);
        if spans * length > n {
            spans = n / length;
        }
        let starts = (n + 1).saturating_sub(length);
        spans = spans.min(starts);
        if spans == 0 {
            continue;
        }
        let keys = &u[1 + i * f..1 + i * f + starts];
        let mut order: Vec<usize> = (0..starts).collect();
        order.sort_by(|&a, &c| keys[a].total_cmp(&keys[c]).then(a.cmp(&c)));
        for &s in &order[..spans] {
            for t in s..(s + length).min(f) {
                m[i * f + t] = 1.0;
            }
        }
    }
    m
}

impl<B: Backend> SslFinetune<B> {
    /// Fix the parts `p` freezes (no gradient is computed for them).
    pub fn freeze(mut self, p: &SslFinetuneParams) -> Self {
        if p.freeze_feature_encoder {
            self.encoder.conv_layers = self
                .encoder
                .conv_layers
                .into_iter()
                .map(|c| c.no_grad())
                .collect();
        }
        if p.freeze_layers > 0 {
            let e = &mut self.encoder;
            e.feat_proj_norm = e.feat_proj_norm.take().map(|n| n.no_grad());
            e.projection = e.projection.clone().no_grad();
            e.pos_conv = e.pos_conv.clone().no_grad();
            if !e.pre_ln {
                e.layer_norm = e.layer_norm.clone().no_grad();
            }
            e.relative = e.relative.take().map(|r| r.no_grad());
            let n = p.freeze_layers.min(e.layers.len());
            e.layers = std::mem::take(&mut e.layers)
                .into_iter()
                .enumerate()
                .map(|(i, l)| if i < n { l.no_grad() } else { l })
                .collect();
        }
        self
    }

    /// The convolutional features `[b, frames, channels]` of `x: [b, samples]`
    /// with `lengths` valid samples per clip; a group-norm feature encoder runs
    /// each clip unpadded, so no clip's features see another's padding.
    fn conv_features(&self, x: Tensor<B, 2>, lengths: &[usize]) -> Tensor<B, 3> {
        let [b, s] = x.dims();
        let cfg = &self.setup.config;
        let exact = cfg.conv_norm == encoders::ConvNorm::Layer || lengths.iter().all(|&n| n == s);
        if exact {
            return self.encoder.conv_features(x);
        }
        let f = cfg.frames(s);
        let parts: Vec<Tensor<B, 3>> = (0..b)
            .map(|i| {
                let n = lengths
                    .get(i)
                    .copied()
                    .unwrap_or(s)
                    .clamp(cfg.receptive_field().min(s), s);
                let h = self
                    .encoder
                    .conv_features(x.clone().slice([i..i + 1, 0..n]));
                let [_, fi, c] = h.dims();
                if fi < f {
                    Tensor::cat(vec![h, Tensor::zeros([1, f - fi, c], &x.device())], 1)
                } else {
                    h
                }
            })
            .collect();
        Tensor::cat(parts, 0)
    }

    /// Logits `[b, classes]` of raw clips `x: [b, samples, 1]` (zero on padding)
    /// with `mask: [b, samples]`. Under autodiff (training) LayerDrop and time
    /// masking apply, drawn from the backend's seeded generator.
    pub fn forward(&self, x: Tensor<B, 3>, mask: Tensor<B, 2>) -> Tensor<B, 2> {
        let device = x.device();
        let [b, s, _] = x.dims();
        let st = &self.setup;
        let lengths: Vec<usize> = mask
            .clone()
            .sum_dim(1)
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .unwrap_or_default()
            .iter()
            .map(|v| v.round().max(0.0) as usize)
            .collect();
        let mut x = x.reshape([b, s]);
        if st.normalize {
            // transformers' feature extractor: (x − mean) / √(var + 1e-7) over
            // the clip's own samples, padding left at zero.
            let n = mask.clone().sum_dim(1).clamp_min(1.0);
            let mean = x.clone().sum_dim(1).div(n.clone());
            let centered = (x - mean) * mask.clone();
            let var = centered.clone().powi_scalar(2).sum_dim(1).div(n);
            x = centered.div(var.add_scalar(1e-7).sqrt()) * mask;
        }
        let training = B::ad_enabled(&device);
        let cfg = &st.config;
        let hidden = cfg.hidden_size;
        let n_states = cfg.num_hidden_states();
        let keep: Vec<bool> = (0..n_states)
            .map(|k| st.weighted || k == n_states - 1)
            .collect();
        let (states, valid, f) = match (&self.cpu.0, training) {
            (Some(cpu), false) => cpu_states(cpu, cfg, x, &lengths, &keep),
            _ => self.module_states(x, &lengths, &keep, training),
        };
        let x = if st.weighted {
            let stacked: Vec<Tensor<B, 4>> = states
                .into_iter()
                .map(|t| t.unsqueeze_dim::<4>(2))
                .collect();
            Tensor::cat(stacked, 2).reshape([b, f, n_states * hidden])
        } else {
            match states.into_iter().last() {
                Some(t) => self.encoder.final_norm(t),
                None => Tensor::zeros([b, f, hidden], &device),
            }
        };
        let keep_frame: Vec<f32> = valid
            .iter()
            .flat_map(|&n| (0..f).map(move |t| if t < n { 1.0 } else { 0.0 }))
            .collect();
        let fm = Tensor::<B, 2>::from_data(TensorData::new(keep_frame, [b, f]), &device);
        let x = x * fm.clone().unsqueeze_dim::<3>(2);
        self.head.forward(x, fm)
    }

    /// This model with the CPU pass on when it lives on burn's CPU backend (a
    /// model loaded for inference); unchanged elsewhere.
    pub fn with_cpu_pass(mut self) -> Self {
        if std::any::TypeId::of::<B>() == std::any::TypeId::of::<crate::train::Cpu>() {
            self.cpu = CpuPass(Some(Arc::new(CpuEncoder::from_model(&self.encoder))));
        }
        self
    }

    /// This model with the CPU pass off: the modules run the encoder.
    pub fn without_cpu_pass(mut self) -> Self {
        self.cpu = CpuPass::default();
        self
    }

    /// Whether inference runs the encoder through the CPU pass.
    pub fn has_cpu_pass(&self) -> bool {
        self.cpu.0.is_some()
    }

    /// The kept hidden states `[b, f, hidden]` of the normalized clips `x`
    /// `[b, samples]` by the burn modules (in training with time masking and
    /// LayerDrop), the valid frames per clip and f.
    fn module_states(
        &self,
        x: Tensor<B, 2>,
        lengths: &[usize],
        keep: &[bool],
        training: bool,
    ) -> (Vec<Tensor<B, 3>>, Vec<usize>, usize) {
        let device = x.device();
        let [b, _] = x.dims();
        let st = &self.setup;
        let mut h = self.encoder.project(self.conv_features(x, lengths));
        let [_, f, hidden] = h.dims();
        let cfg = &st.config;
        let frames: Vec<usize> = lengths.iter().map(|&n| cfg.frames(n).min(f)).collect();
        if training && st.mask_prob > 0.0 {
            let u: Vec<f32> =
                Tensor::<B, 1>::random([1 + b * f], Distribution::Uniform(0.0, 1.0), &device)
                    .into_data()
                    .convert::<f32>()
                    .to_vec::<f32>()
                    .unwrap_or_default();
            let m = time_mask(&frames, f, st.mask_prob, st.mask_length, st.min_masks, &u);
            if m.iter().any(|&v| v > 0.0) {
                let m = Tensor::<B, 3>::from_data(TensorData::new(m, [b, f, 1]), &device);
                let e = self.mask_embedding.val().reshape([1, 1, hidden]);
                h = h * (m.clone().neg() + 1.0) + m * e;
            }
        }
        let skip: Vec<bool> = if training && st.layerdrop > 0.0 {
            Tensor::<B, 1>::random([cfg.num_layers], Distribution::Uniform(0.0, 1.0), &device)
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .unwrap_or_default()
                .iter()
                .map(|&v| (v as f64) < st.layerdrop)
                .collect()
        } else {
            Vec::new()
        };
        let out = self
            .encoder
            .forward_skipping(h, cfg, lengths, true, keep, &skip);
        let states: Vec<Tensor<B, 3>> = out.hidden_states.into_iter().flatten().collect();
        (states, out.frames, f)
    }

    /// Write the encoder as a Hugging Face checkpoint folder (`dir`).
    pub fn save_encoder(&self, spec: &EncoderSpec, dir: &Path) -> Result<(), String> {
        let embed = self
            .mask_embedding
            .val()
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .unwrap_or_default();
        encoders::export::save_folder(
            &self.encoder,
            Some(embed),
            &spec.config_json,
            spec.preprocessor_json.as_deref(),
            dir,
        )
        .map_err(|e| e.to_string())
    }
}

/// [`SslFinetune`]'s kept hidden states by the CPU pass: the same numbers as its
/// modules at inference. A layer-norm feature encoder (or clips of one length)
/// runs as one padded batch; a group-norm one runs each length's clips unpadded,
/// as [`SslFinetune`] does. Padded frames are zero. Returns the states, the valid
/// frames per clip and the padded frame count.
fn cpu_states<B: Backend>(
    cpu: &CpuEncoder,
    cfg: &EncoderConfig,
    x: Tensor<B, 2>,
    lengths: &[usize],
    keep: &[bool],
) -> (Vec<Tensor<B, 3>>, Vec<usize>, usize) {
    let device = x.device();
    let [b, s] = x.dims();
    let input: Vec<f32> = x
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap_or_default();
    let (f, h) = (cfg.frames(s), cfg.hidden_size);
    let len = |i: usize| lengths.get(i).copied().unwrap_or(s);
    let exact = cfg.conv_norm == encoders::ConvNorm::Layer || (0..b).all(|i| len(i) == s);
    // (clips, samples each clip runs with): one padded batch, or per length.
    let mut groups: Vec<(Vec<usize>, usize)> = Vec::new();
    if exact {
        groups.push(((0..b).collect(), s));
    } else {
        let run_len = |i: usize| len(i).clamp(cfg.receptive_field().min(s), s);
        let mut order: Vec<usize> = (0..b).collect();
        order.sort_by_key(|&i| (run_len(i), i));
        for i in order {
            match groups.last_mut() {
                Some((g, n)) if *n == run_len(i) => g.push(i),
                _ => groups.push((vec![i], run_len(i))),
            }
        }
    }
    let kept = keep.iter().filter(|&&k| k).count();
    let mut states: Vec<Vec<f32>> = vec![vec![0.0; b * f * h]; kept];
    let mut valid = vec![0usize; b];
    for (g, n) in &groups {
        let mut batch = Vec::with_capacity(g.len() * n);
        for &i in g {
            batch.extend_from_slice(&input[i * s..i * s + n]);
        }
        let glens: Vec<usize> = g.iter().map(|&i| len(i)).collect();
        let out = cpu.forward(&batch, g.len(), cfg, &glens, true, keep);
        for (j, &i) in g.iter().enumerate() {
            let v = out.valid[j].min(f);
            valid[i] = v;
            for (dst, src) in states.iter_mut().zip(out.hidden_states.iter().flatten()) {
                let from = j * out.frames * h;
                dst[i * f * h..(i * f + v) * h].copy_from_slice(&src[from..from + v * h]);
            }
        }
    }
    let states = states
        .into_iter()
        .map(|v| Tensor::<B, 3>::from_data(TensorData::new(v, [b, f, h]), &device))
        .collect();
    (states, valid, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_mask_follows_transformers_rules() {
        // 100 valid frames, p = 0.05, length 10, ε = 0.5: int(0.5 + 0.5) = 1 span,
        // raised to min_masks = 2; spans never start past n − length.
        let f = 120;
        let mut u = vec![0.9f32; 1 + 2 * f];
        u[0] = 0.5;
        u[1 + 7] = 0.1; // clip 0: starts 7 and 40 have the smallest keys
        u[1 + 40] = 0.2;
        u[1 + f + 95] = 0.0; // clip 1 (20 frames): start 95 is past its range
        let m = time_mask(&[100, 20], f, 0.05, 10, 2, &u);
        let masked0: Vec<usize> = (0..f).filter(|&t| m[t] > 0.0).collect();
        assert_eq!(masked0, (7..17).chain(40..50).collect::<Vec<_>>());
        // Clip 1: 20 frames hold 2 spans of 10 at most, inside its frames.
        let masked1: Vec<usize> = (0..f).filter(|&t| m[f + t] > 0.0).collect();
        assert!(
            !masked1.is_empty() && masked1.iter().all(|&t| t < 20),
            "{masked1:?}"
        );
        // A clip shorter than one span is not masked.
        let m = time_mask(&[5], 5, 0.5, 10, 2, &[0.3; 6]);
        assert!(m.iter().all(|&v| v == 0.0));
    }
}
