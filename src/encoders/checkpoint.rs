//! The tensors of a checkpoint folder: `model.safetensors` (safetensors crate) or
//! `pytorch_model.bin` (burn-store's pickle reader), as `f32`, under one naming.
//!
//! Names are normalized so the loader sees one spelling whatever saved the file:
//! - the task-model prefix (`wav2vec2.`, `hubert.`, `wavlm.`) is dropped;
//! - weight norm's two spellings, `conv.weight_g`/`conv.weight_v` (published hub
//!   checkpoints) and `conv.parametrizations.weight.original0`/`original1`
//!   (saved by transformers 5), become `weight_g`/`weight_v`.
//!
//! [`Checkpoint::take`] hands a tensor out once, checking its shape; what is left
//! at the end is checked by [`Checkpoint::finish`]: tensors of the encoder's own
//! parts the configuration did not ask for mean the folder's `config.json` and
//! weights disagree, and are refused; heads (CTC, classifiers) and pre-training
//! parts are ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::EncoderError;
use super::config::Family;

/// Tensors by normalized name.
pub struct Checkpoint {
    file: PathBuf,
    tensors: BTreeMap<String, Entry>,
    /// [`Checkpoint::zeros`]: every tensor asked for is there, all zeros.
    zeros: bool,
}

struct Entry {
    /// The name in the file (for messages).
    original: String,
    shape: Vec<usize>,
    data: Vec<f32>,
}

/// Largest weights file read (a few times the largest published encoder).
const MAX_FILE_BYTES: u64 = 16 << 30;

/// Parts of checkpoints that an encoder does not use: pre-training heads and
/// task heads.
const IGNORED: &[&str] = &[
    "quantizer.",
    "project_q.",
    "project_hid.",
    "masked_spec_embed",
    "label_embeddings_concat",
    "final_proj.",
    "lm_head.",
    "classifier.",
    "projector.",
    "layer_weights",
    "dropout_features",
    "feature_projection.projection_q",
];

impl Checkpoint {
    /// The weights file of a folder: `model.safetensors`, else `pytorch_model.bin`.
    pub fn weights_file(folder: &Path) -> Result<PathBuf, EncoderError> {
        for name in ["model.safetensors", "pytorch_model.bin"] {
            let p = folder.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
        if folder.join("model.safetensors.index.json").exists() {
            return Err(EncoderError::Weights {
                file: folder.to_path_buf(),
                message: "holds a sharded checkpoint (model.safetensors.index.json); \
                          merge it into one model.safetensors (e.g. load and save_pretrained with \
                          max_shard_size=\"100GB\")"
                    .into(),
            });
        }
        Err(EncoderError::Weights {
            file: folder.to_path_buf(),
            message: "has neither model.safetensors nor pytorch_model.bin".into(),
        })
    }

    /// Read every tensor of `file`, normalizing names for `family`.
    pub fn open(file: &Path, family: Family) -> Result<Checkpoint, EncoderError> {
        let err = |message: String| EncoderError::Weights {
            file: file.to_path_buf(),
            message,
        };
        let len = std::fs::metadata(file)
            .map_err(|e| EncoderError::Io {
                path: file.to_path_buf(),
                source: e,
            })?
            .len();
        if len > MAX_FILE_BYTES {
            return Err(err(format!(
                "is {len} bytes, over the {MAX_FILE_BYTES}-byte limit"
            )));
        }
        let is_safetensors = file.extension().is_some_and(|e| e == "safetensors");
        let raw = if is_safetensors {
            read_safetensors(file).map_err(err)?
        } else {
            read_pytorch(file).map_err(err)?
        };
        let mut tensors = BTreeMap::new();
        for (name, shape, data) in raw {
            let key = normalize(&name, family);
            if let Some(prev) = tensors.insert(
                key.clone(),
                Entry {
                    original: name.clone(),
                    shape,
                    data,
                },
            ) {
                return Err(err(format!(
                    "has both `{}` and `{name}`, which are the same tensor `{key}`",
                    prev.original
                )));
            }
        }
        Ok(Checkpoint {
            file: file.to_path_buf(),
            tensors,
            zeros: false,
        })
    }

    /// A checkpoint that holds every tensor asked for, as zeros: builds an
    /// encoder's structure whose weights come from elsewhere (a fine-tuned
    /// model's burn record).
    pub fn zeros() -> Checkpoint {
        Checkpoint {
            file: PathBuf::from("<zeros>"),
            tensors: BTreeMap::new(),
            zeros: true,
        }
    }

    /// The file read.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Whether a tensor is present.
    pub fn has(&self, name: &str) -> bool {
        self.zeros || self.tensors.contains_key(name)
    }

    /// Take a tensor, checking it has `shape`.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, EncoderError> {
        if self.zeros {
            return Ok(vec![0.0; shape.iter().product()]);
        }
        let Some(e) = self.tensors.remove(name) else {
            return Err(EncoderError::Weights {
                file: self.file.clone(),
                message: format!(
                    "has no tensor `{name}`, which the config.json's architecture needs"
                ),
            });
        };
        if e.shape != shape {
            return Err(EncoderError::Weights {
                file: self.file.clone(),
                message: format!(
                    "tensor `{}` has shape {:?}; config.json's architecture needs {:?}",
                    e.original, e.shape, shape
                ),
            });
        }
        Ok(e.data)
    }

    /// Take a PyTorch `Linear`/conv weight `[out, rest...]` as `[rest, out]`
    /// (row-major), the layout of `x · W`.
    pub fn take_transposed(
        &mut self,
        name: &str,
        shape: &[usize],
    ) -> Result<Vec<f32>, EncoderError> {
        let data = self.take(name, shape)?;
        let out = shape[0];
        let rest: usize = shape[1..].iter().product();
        let mut t = vec![0.0f32; data.len()];
        for o in 0..out {
            for r in 0..rest {
                t[r * out + o] = data[o * rest + r];
            }
        }
        Ok(t)
    }

    /// Refuse leftover tensors of the encoder's own parts (the config and the
    /// weights disagree); ignore heads and pre-training parts.
    pub fn finish(self) -> Result<(), EncoderError> {
        let extra: Vec<&str> = self
            .tensors
            .iter()
            .filter(|(k, _)| !IGNORED.iter().any(|p| k.starts_with(p)))
            .filter(|(k, _)| {
                ["feature_extractor.", "feature_projection.", "encoder."]
                    .iter()
                    .any(|p| k.starts_with(p))
            })
            .map(|(_, e)| e.original.as_str())
            .collect();
        if extra.is_empty() {
            return Ok(());
        }
        let shown: Vec<&str> = extra.iter().take(5).copied().collect();
        Err(EncoderError::Weights {
            file: self.file,
            message: format!(
                "has {} tensor(s) the config.json's architecture does not use ({}{}): the folder's config and weights disagree",
                extra.len(),
                shown.join(", "),
                if extra.len() > 5 { ", ..." } else { "" }
            ),
        })
    }
}

/// The normalized name of a checkpoint key.
pub fn normalize(name: &str, family: Family) -> String {
    let mut n = name
        .strip_prefix(family.prefix())
        .unwrap_or(name)
        .to_string();
    for (from, to) in [
        (".parametrizations.weight.original0", ".weight_g"),
        (".parametrizations.weight.original1", ".weight_v"),
    ] {
        if let Some(stem) = n.strip_suffix(from) {
            n = format!("{stem}{to}");
        }
    }
    n
}

type RawTensor = (String, Vec<usize>, Vec<f32>);

fn read_safetensors(file: &Path) -> Result<Vec<RawTensor>, String> {
    use safetensors::{Dtype, SafeTensors};
    let bytes = std::fs::read(file).map_err(|e| format!("cannot be read: {e}"))?;
    let st =
        SafeTensors::deserialize(&bytes).map_err(|e| format!("is not a safetensors file: {e}"))?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let shape = view.shape().to_vec();
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::F64 => raw
                .chunks_exact(8)
                .map(|b| {
                    f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
                })
                .collect(),
            // Integer buffers (e.g. batch-norm counters) are not weights.
            _ => continue,
        };
        if data.len() != shape.iter().product::<usize>() {
            return Err(format!(
                "tensor `{name}` has {} values for shape {shape:?}",
                data.len()
            ));
        }
        out.push((name, shape, data));
    }
    Ok(out)
}

fn read_pytorch(file: &Path) -> Result<Vec<RawTensor>, String> {
    use burn::tensor::DType;
    let reader = burn_store::pytorch::PytorchReader::new(file)
        .map_err(|e| format!("is not a PyTorch checkpoint burn-store can read: {e}"))?;
    let mut out = Vec::new();
    for (name, snap) in reader.into_tensors() {
        if !matches!(
            snap.dtype,
            DType::F32 | DType::F16 | DType::BF16 | DType::F64
        ) {
            continue;
        }
        let shape = snap.shape.as_slice().to_vec();
        let data = snap
            .to_data()
            .map_err(|e| format!("tensor `{name}` cannot be read: {e:?}"))?
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| format!("tensor `{name}` is not float data: {e:?}"))?;
        if data.len() != shape.iter().product::<usize>() {
            return Err(format!(
                "tensor `{name}` has {} values for shape {shape:?}",
                data.len()
            ));
        }
        out.push((name, shape, data));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized() {
        assert_eq!(
            normalize(
                "wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight.original0",
                Family::Wav2Vec2
            ),
            "encoder.pos_conv_embed.conv.weight_g"
        );
        assert_eq!(
            normalize("encoder.pos_conv_embed.conv.weight_v", Family::Hubert),
            "encoder.pos_conv_embed.conv.weight_v"
        );
        assert_eq!(
            normalize("hubert.encoder.layer_norm.bias", Family::Hubert),
            "encoder.layer_norm.bias"
        );
        // Another family's prefix is not stripped.
        assert_eq!(
            normalize("hubert.encoder.x", Family::WavLm),
            "hubert.encoder.x"
        );
    }
}
