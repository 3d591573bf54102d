//! Pretrained speech encoders — wav2vec2, HuBERT and WavLM — loaded from the
//! Hugging Face checkpoint folders users already have, run with burn on the CPU
//! or CUDA.
//!
//! - [`config`]: `config.json` / `preprocessor_config.json` → [`EncoderConfig`],
//!   sizes bounded, unsupported options refused by name;
//! - [`checkpoint`]: `model.safetensors` or `pytorch_model.bin` → tensors under
//!   one naming (prefixes and both weight-norm spellings);
//! - [`model`], [`attention`]: the modules (ported from transformers 5.25's
//!   modeling files, Apache-2.0);
//! - [`load`]: tensors → modules, every shape checked;
//! - [`Pretrained`]: a loaded encoder with its identity, run on raw clips.
//!
//! No pretrained checkpoint can be downloaded where sermo is developed; the port
//! is proven by parity with transformers on small random-init models whose
//! parameters are all perturbed (`scripts/encoder_fixtures.py`,
//! `tests/encoders.rs`), and on a base-size random-init wav2vec2 at chosen
//! positions.

pub mod attention;
pub mod checkpoint;
pub mod config;
pub mod cpu;
pub mod embed;
pub mod export;
pub mod kernels;
pub mod load;
pub mod model;

use std::io::Read;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::{Deserialize, Serialize};

pub use config::{ConvNorm, EncoderConfig, Family};
pub use model::{EncoderOutput, SpeechEncoder};

use crate::engine::hash;

/// What can go wrong loading or running an encoder; each message names the
/// file at fault.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    /// `config.json` or `preprocessor_config.json` is unusable.
    #[error("encoder: {}: {message}", .path.display())]
    Config { path: PathBuf, message: String },
    /// The weights file is unusable or disagrees with the config.
    #[error("encoder: weights {}: {message}", .file.display())]
    Weights { file: PathBuf, message: String },
    #[error("encoder: {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Input the encoder cannot run (e.g. a clip shorter than one frame).
    #[error("encoder: {0}")]
    Input(String),
}

/// Which encoder made a table: recorded in the table's metadata so a model
/// trained on it can check what it is fed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The checkpoint folder (absolute when it could be resolved), where
    /// inference from audio finds the encoder again.
    pub folder: String,
    pub model_type: String,
    /// Stable hash of `config.json`'s bytes.
    pub config_hash: String,
    /// Stable hash of the weights file's bytes.
    pub weights_hash: String,
    /// Whether the input was normalized to zero mean, unit variance.
    pub normalize: bool,
    pub sample_rate: u32,
    pub hidden_size: usize,
    pub num_layers: usize,
}

/// A loaded encoder.
pub struct Pretrained<B: Backend> {
    pub config: EncoderConfig,
    pub model: SpeechEncoder<B>,
    pub identity: Identity,
    /// On burn's CPU backend, the weights laid out for [`cpu::CpuEncoder`],
    /// which [`Pretrained::run`] then uses instead of the burn modules (same
    /// numbers, several times faster); `None` elsewhere, or set to `None` to
    /// run the modules.
    pub cpu: Option<cpu::CpuEncoder>,
    device: B::Device,
}

/// One clip's hidden states.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipStates {
    pub frames: usize,
    /// Per requested layer, `frames × hidden` values, time-major.
    pub layers: Vec<Vec<f32>>,
}

/// Stable hash of a file's bytes, read in 1 MiB pieces.
fn file_hash(path: &Path) -> Result<String, EncoderError> {
    let io = |e| EncoderError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut parts: Vec<u64> = Vec::new();
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        parts.push(hash::stable_hash(&buf[..n]));
    }
    let bytes: Vec<u8> = parts.iter().flat_map(|h| h.to_le_bytes()).collect();
    Ok(hash::hex(hash::stable_hash(&bytes)))
}

/// The identity of the encoder in `folder` (hashing its config and weights).
/// `normalize` overrides the folder's `do_normalize`; a folder without
/// `preprocessor_config.json` needs it.
pub fn identity(
    folder: &Path,
    config: &EncoderConfig,
    normalize: Option<bool>,
) -> Result<Identity, EncoderError> {
    let normalize = match (normalize, config.do_normalize) {
        (Some(n), _) | (None, Some(n)) => n,
        (None, None) => {
            return Err(EncoderError::Config {
                path: folder.join("preprocessor_config.json"),
                message: "is missing, so whether the encoder expects normalized input is unknown: \
                          copy it from the model's hub page or set `normalize = true|false`"
                    .into(),
            });
        }
    };
    let file = checkpoint::Checkpoint::weights_file(folder)?;
    let config_bytes = std::fs::read(folder.join("config.json")).map_err(|e| EncoderError::Io {
        path: folder.join("config.json"),
        source: e,
    })?;
    let absolute = std::fs::canonicalize(folder).unwrap_or_else(|_| folder.to_path_buf());
    Ok(Identity {
        folder: absolute.display().to_string(),
        model_type: config.family.model_type().to_string(),
        config_hash: hash::hex(hash::stable_hash(&config_bytes)),
        weights_hash: file_hash(&file)?,
        normalize,
        sample_rate: config.sample_rate,
        hidden_size: config.hidden_size,
        num_layers: config.num_layers,
    })
}

impl<B: Backend> Pretrained<B> {
    /// Load the encoder of a checkpoint folder. `normalize` overrides the
    /// folder's `do_normalize`; a folder without `preprocessor_config.json`
    /// needs it.
    pub fn load(
        folder: &Path,
        normalize: Option<bool>,
        device: &B::Device,
    ) -> Result<Self, EncoderError> {
        let config = EncoderConfig::from_folder(folder)?;
        let identity = identity(folder, &config, normalize)?;
        let file = checkpoint::Checkpoint::weights_file(folder)?;
        let ck = checkpoint::Checkpoint::open(&file, config.family)?;
        let model = load::build::<B>(&config, ck, device)?;
        let on_cpu = std::any::TypeId::of::<B>() == std::any::TypeId::of::<crate::train::Cpu>();
        Ok(Pretrained {
            cpu: on_cpu.then(|| cpu::CpuEncoder::from_model(&model)),
            config,
            model,
            identity,
            device: device.clone(),
        })
    }

    /// The device the encoder runs on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Run raw clips (at the encoder's rate) and return `layers`' hidden
    /// states per clip. A layer-norm model run with an attention mask (the
    /// large models) takes the clips as one padded, masked batch, which gives
    /// each clip exactly its unpadded result; the group-norm models (base
    /// models) are run in batches of equal-length clips only, since their first
    /// norm takes statistics over time, padding included, whatever the mask.
    /// Either way a clip's states do not depend on its batch neighbours.
    pub fn run(&self, clips: &[&[f32]], layers: &[usize]) -> Result<Vec<ClipStates>, EncoderError> {
        let n_states = self.config.num_hidden_states();
        if let Some(&k) = layers.iter().find(|&&k| k >= n_states) {
            return Err(EncoderError::Input(format!(
                "layer {k} does not exist: the encoder has hidden states 0..={}",
                n_states - 1
            )));
        }
        let min = self.config.receptive_field();
        if let Some(c) = clips.iter().find(|c| c.len() < min) {
            return Err(EncoderError::Input(format!(
                "a clip of {} samples is shorter than the encoder's receptive field ({min} samples)",
                c.len()
            )));
        }
        let mut out: Vec<Option<ClipStates>> = vec![None; clips.len()];
        let mut groups: Vec<Vec<usize>> = Vec::new();
        if self.padding_is_exact() {
            groups.push((0..clips.len()).collect());
        } else {
            let mut order: Vec<usize> = (0..clips.len()).collect();
            order.sort_by_key(|&i| clips[i].len());
            for i in order {
                match groups.last_mut() {
                    Some(g) if clips[g[0]].len() == clips[i].len() => g.push(i),
                    _ => groups.push(vec![i]),
                }
            }
        }
        for g in groups.iter().filter(|g| !g.is_empty()) {
            let batch: Vec<&[f32]> = g.iter().map(|&i| clips[i]).collect();
            for (i, states) in g.iter().zip(self.run_batch(&batch, layers)) {
                out[*i] = Some(states);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Whether a padded, masked batch gives each clip its unpadded result.
    pub fn padding_is_exact(&self) -> bool {
        self.config.attention_mask && self.config.conv_norm == ConvNorm::Layer
    }

    fn run_batch(&self, clips: &[&[f32]], layers: &[usize]) -> Vec<ClipStates> {
        let b = clips.len();
        let l = clips.iter().map(|c| c.len()).max().unwrap_or(0);
        let mut input = vec![0.0f32; b * l];
        for (i, c) in clips.iter().enumerate() {
            let row = &mut input[i * l..i * l + c.len()];
            row.copy_from_slice(c);
            if self.identity.normalize {
                normalize(row);
            }
        }
        let lengths: Vec<usize> = clips.iter().map(|c| c.len()).collect();
        let mut keep = vec![false; self.config.num_hidden_states()];
        for &k in layers {
            keep[k] = true;
        }
        // Per requested layer `[b, f, hidden]`, the padded frame count f and
        // each clip's valid frames: from the CPU pass or the burn modules.
        let (per_layer, f, valid): (Vec<Vec<f32>>, usize, Vec<usize>) = match &self.cpu {
            Some(cpu) => {
                let out = cpu.forward(
                    &input,
                    b,
                    &self.config,
                    &lengths,
                    self.config.attention_mask,
                    &keep,
                );
                let per_layer = layers
                    .iter()
                    .map(|&k| out.hidden_states[k].clone().unwrap_or_default())
                    .collect();
                (per_layer, out.frames, out.valid)
            }
            None => {
                let x = Tensor::<B, 2>::from_data(TensorData::new(input, [b, l]), &self.device);
                let out = self.model.forward(
                    x,
                    &self.config,
                    &lengths,
                    self.config.attention_mask,
                    &keep,
                );
                let per_layer: Vec<Vec<f32>> = layers
                    .iter()
                    .map(|&k| match &out.hidden_states[k] {
                        Some(t) => t
                            .clone()
                            .into_data()
                            .convert::<f32>()
                            .to_vec::<f32>()
                            .unwrap_or_default(),
                        None => Vec::new(),
                    })
                    .collect();
                let f = per_layer
                    .first()
                    .map(|v| v.len() / (b * self.config.hidden_size).max(1))
                    .unwrap_or(0);
                (per_layer, f, out.frames)
            }
        };
        let h = self.config.hidden_size;
        (0..b)
            .map(|i| ClipStates {
                frames: valid[i],
                layers: per_layer
                    .iter()
                    .map(|v| {
                        v.get(i * f * h..(i * f + valid[i]) * h)
                            .map_or_else(Vec::new, <[f32]>::to_vec)
                    })
                    .collect(),
            })
            .collect()
    }
}

/// Zero-mean, unit-variance normalization of one clip, as transformers'
/// `Wav2Vec2FeatureExtractor` (`do_normalize`): `(x − mean) / √(var + 1e-7)`.
pub fn normalize(x: &mut [f32]) {
    if x.is_empty() {
        return;
    }
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let scale = 1.0 / (var + 1e-7).sqrt();
    for v in x.iter_mut() {
        *v = ((*v as f64 - mean) * scale) as f32;
    }
}
