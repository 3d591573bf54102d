//! An encoder's architecture, read from a Hugging Face checkpoint folder's
//! `config.json` (and `preprocessor_config.json` for the input normalization).
//!
//! Only the keys that change the forward pass are read; each missing key takes
//! the default of the transformers `*Config` class of its `model_type`
//! (transformers 5.25: `Wav2Vec2Config`, `HubertConfig`, `WavLMConfig`). Every size
//! is bounded before anything is allocated, and an option sermo does not
//! implement is refused by name instead of being silently ignored.

use std::path::Path;

use serde::Deserialize;

use super::EncoderError;

/// The encoder families sermo ports from transformers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Wav2Vec2,
    Hubert,
    WavLm,
}

impl Family {
    /// The `model_type` of `config.json`.
    pub fn model_type(self) -> &'static str {
        match self {
            Family::Wav2Vec2 => "wav2vec2",
            Family::Hubert => "hubert",
            Family::WavLm => "wavlm",
        }
    }

    /// The key prefix of the family's task models (`Wav2Vec2ForCTC` etc.).
    pub fn prefix(self) -> &'static str {
        match self {
            Family::Wav2Vec2 => "wav2vec2.",
            Family::Hubert => "hubert.",
            Family::WavLm => "wavlm.",
        }
    }
}

/// Normalization of the convolutional feature encoder (`feat_extract_norm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvNorm {
    /// `group`: a GroupNorm with one group per channel after the first
    /// convolution only (statistics over time), as in the base models.
    Group,
    /// `layer`: a LayerNorm over channels after every convolution (large models).
    Layer,
}

/// Everything of a checkpoint's configuration that shapes the forward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderConfig {
    pub family: Family,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub layer_norm_eps: f64,
    pub conv_norm: ConvNorm,
    /// `(out channels, kernel, stride)` per convolution of the feature encoder.
    pub conv_layers: Vec<(usize, usize, usize)>,
    pub conv_bias: bool,
    pub pos_kernel: usize,
    pub pos_groups: usize,
    /// `do_stable_layer_norm`: pre-LN transformer layers and a final LayerNorm.
    pub stable_layer_norm: bool,
    /// A LayerNorm before the feature projection (`feat_proj_layer_norm`; always
    /// present for wav2vec2 and WavLM).
    pub feat_proj_layer_norm: bool,
    /// WavLM's relative position bias: `(num_buckets, max_bucket_distance)`.
    pub relative_buckets: Option<(usize, usize)>,
    /// The input sample rate (`preprocessor_config.json`, 16000 by default).
    pub sample_rate: u32,
    /// Zero-mean unit-variance input normalization (`do_normalize`), if the
    /// folder says; `None` when it has no `preprocessor_config.json`.
    pub do_normalize: Option<bool>,
    /// Whether the reference passes an attention mask for padded batches
    /// (`return_attention_mask`; by default only the layer-norm models do).
    pub attention_mask: bool,
}

/// Upper bounds on sizes read from `config.json`, checked before allocation.
/// Each is several times the largest published model of these families.
const MAX_HIDDEN: usize = 8192;
const MAX_LAYERS: usize = 128;
const MAX_INTERMEDIATE: usize = 65536;
const MAX_CONV_LAYERS: usize = 16;
const MAX_CONV_DIM: usize = 8192;
const MAX_KERNEL: usize = 1024;
const MAX_BUCKETS: usize = 65536;

/// The keys of `config.json` read here, with their transformers defaults applied
/// after parsing (per family).
#[derive(Debug, Deserialize)]
struct RawConfig {
    model_type: Option<String>,
    hidden_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    intermediate_size: Option<usize>,
    hidden_act: Option<String>,
    feat_extract_activation: Option<String>,
    layer_norm_eps: Option<f64>,
    feat_extract_norm: Option<String>,
    conv_dim: Option<Vec<usize>>,
    conv_stride: Option<Vec<usize>>,
    conv_kernel: Option<Vec<usize>>,
    conv_bias: Option<bool>,
    num_conv_pos_embeddings: Option<usize>,
    num_conv_pos_embedding_groups: Option<usize>,
    do_stable_layer_norm: Option<bool>,
    feat_proj_layer_norm: Option<bool>,
    conv_pos_batch_norm: Option<bool>,
    add_adapter: Option<bool>,
    num_buckets: Option<usize>,
    max_bucket_distance: Option<usize>,
    position_embeddings_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawPreprocessor {
    do_normalize: Option<bool>,
    sampling_rate: Option<u32>,
    return_attention_mask: Option<bool>,
    feature_size: Option<usize>,
}

impl EncoderConfig {
    /// Read `config.json` and `preprocessor_config.json` from a checkpoint folder.
    pub fn from_folder(folder: &Path) -> Result<EncoderConfig, EncoderError> {
        let path = folder.join("config.json");
        let text = read_small(&path)?;
        let raw: RawConfig = serde_json::from_str(&text).map_err(|e| EncoderError::Config {
            path: path.clone(),
            message: format!("not a transformers config: {e}"),
        })?;
        let pre_path = folder.join("preprocessor_config.json");
        let pre = if pre_path.exists() {
            let text = read_small(&pre_path)?;
            Some(serde_json::from_str::<RawPreprocessor>(&text).map_err(|e| {
                EncoderError::Config {
                    path: pre_path.clone(),
                    message: format!("not a feature-extractor config: {e}"),
                }
            })?)
        } else {
            None
        };
        EncoderConfig::from_raw(raw, pre).map_err(|message| EncoderError::Config { path, message })
    }

    /// Parse the two files' text (tests; `from_folder` reads them).
    pub fn from_json(config: &str, preprocessor: Option<&str>) -> Result<EncoderConfig, String> {
        let raw: RawConfig =
            serde_json::from_str(config).map_err(|e| format!("not a transformers config: {e}"))?;
        let pre = match preprocessor {
            Some(t) => Some(
                serde_json::from_str::<RawPreprocessor>(t)
                    .map_err(|e| format!("not a feature-extractor config: {e}"))?,
            ),
            None => None,
        };
        EncoderConfig::from_raw(raw, pre)
    }

    fn from_raw(raw: RawConfig, pre: Option<RawPreprocessor>) -> Result<EncoderConfig, String> {
        let family = match raw.model_type.as_deref() {
            Some("wav2vec2") => Family::Wav2Vec2,
            Some("hubert") => Family::Hubert,
            Some("wavlm") => Family::WavLm,
            Some(other) => {
                return Err(format!(
                    "model_type `{other}` is not supported (sermo runs wav2vec2, hubert and wavlm checkpoints)"
                ));
            }
            None => return Err("has no `model_type` (expected wav2vec2, hubert or wavlm)".into()),
        };
        for (key, act) in [
            ("hidden_act", raw.hidden_act.as_deref()),
            (
                "feat_extract_activation",
                raw.feat_extract_activation.as_deref(),
            ),
        ] {
            if let Some(a) = act
                && a != "gelu"
            {
                return Err(format!(
                    "{key} = \"{a}\" is not supported (only the exact \"gelu\" these encoders use)"
                ));
            }
        }
        if raw.conv_pos_batch_norm == Some(true) {
            return Err("conv_pos_batch_norm = true (a batch-normalized position convolution) is not supported".into());
        }
        if raw.add_adapter == Some(true) {
            return Err(
                "add_adapter = true (a convolutional adapter after the encoder) is not supported"
                    .into(),
            );
        }
        if let Some(p) = raw.position_embeddings_type.as_deref() {
            return Err(format!(
                "position_embeddings_type = \"{p}\" belongs to the conformer models, which are not supported"
            ));
        }
        let hidden_size = raw.hidden_size.unwrap_or(768);
        let num_layers = raw.num_hidden_layers.unwrap_or(12);
        let num_heads = raw.num_attention_heads.unwrap_or(12);
        let intermediate_size = raw.intermediate_size.unwrap_or(3072);
        bounded("hidden_size", hidden_size, 1, MAX_HIDDEN)?;
        bounded("num_hidden_layers", num_layers, 1, MAX_LAYERS)?;
        bounded("num_attention_heads", num_heads, 1, hidden_size)?;
        bounded("intermediate_size", intermediate_size, 1, MAX_INTERMEDIATE)?;
        if !hidden_size.is_multiple_of(num_heads) {
            return Err(format!(
                "hidden_size {hidden_size} is not divisible by num_attention_heads {num_heads}"
            ));
        }
        let layer_norm_eps = raw.layer_norm_eps.unwrap_or(1e-5);
        if !(layer_norm_eps > 0.0 && layer_norm_eps < 1.0) {
            return Err(format!("layer_norm_eps {layer_norm_eps} is outside (0, 1)"));
        }
        let conv_norm = match raw.feat_extract_norm.as_deref().unwrap_or("group") {
            "group" => ConvNorm::Group,
            "layer" => ConvNorm::Layer,
            other => {
                return Err(format!(
                    "feat_extract_norm = \"{other}\" is not supported (group or layer)"
                ));
            }
        };
        let conv_dim = raw.conv_dim.unwrap_or_else(|| vec![512; 7]);
        let conv_kernel = raw
            .conv_kernel
            .unwrap_or_else(|| vec![10, 3, 3, 3, 3, 2, 2]);
        let conv_stride = raw.conv_stride.unwrap_or_else(|| vec![5, 2, 2, 2, 2, 2, 2]);
        if conv_dim.len() != conv_kernel.len() || conv_dim.len() != conv_stride.len() {
            return Err(format!(
                "conv_dim, conv_kernel and conv_stride have different lengths ({}, {}, {})",
                conv_dim.len(),
                conv_kernel.len(),
                conv_stride.len()
            ));
        }
        bounded(
            "the number of convolutions",
            conv_dim.len(),
            1,
            MAX_CONV_LAYERS,
        )?;
        let mut conv_layers = Vec::with_capacity(conv_dim.len());
        for ((&d, &k), &s) in conv_dim.iter().zip(&conv_kernel).zip(&conv_stride) {
            bounded("conv_dim", d, 1, MAX_CONV_DIM)?;
            bounded("conv_kernel", k, 1, MAX_KERNEL)?;
            bounded("conv_stride", s, 1, MAX_KERNEL)?;
            conv_layers.push((d, k, s));
        }
        let pos_kernel = raw.num_conv_pos_embeddings.unwrap_or(128);
        let pos_groups = raw.num_conv_pos_embedding_groups.unwrap_or(16);
        bounded("num_conv_pos_embeddings", pos_kernel, 1, MAX_KERNEL)?;
        bounded("num_conv_pos_embedding_groups", pos_groups, 1, hidden_size)?;
        if !hidden_size.is_multiple_of(pos_groups) {
            return Err(format!(
                "hidden_size {hidden_size} is not divisible by num_conv_pos_embedding_groups {pos_groups}"
            ));
        }
        let stable_layer_norm = raw.do_stable_layer_norm.unwrap_or(false);
        let feat_proj_layer_norm = match family {
            Family::Hubert => raw.feat_proj_layer_norm.unwrap_or(true),
            _ => true,
        };
        let relative_buckets = match family {
            Family::WavLm => {
                let nb = raw.num_buckets.unwrap_or(320);
                let md = raw.max_bucket_distance.unwrap_or(800);
                bounded("num_buckets", nb, 4, MAX_BUCKETS)?;
                // The bucket function divides by log(max_distance / (num_buckets / 4)).
                if md <= nb / 4 {
                    return Err(format!(
                        "max_bucket_distance {md} must exceed num_buckets / 4 = {}",
                        nb / 4
                    ));
                }
                Some((nb, md))
            }
            _ => None,
        };
        let (sample_rate, do_normalize, mask) = match &pre {
            Some(p) => {
                if let Some(f) = p.feature_size
                    && f != 1
                {
                    return Err(format!(
                        "preprocessor_config.json has feature_size {f}: these encoders read raw mono audio (1)"
                    ));
                }
                (
                    p.sampling_rate.unwrap_or(16_000),
                    Some(p.do_normalize.unwrap_or(true)),
                    p.return_attention_mask,
                )
            }
            None => (16_000, None, None),
        };
        if !(1_000..=192_000).contains(&sample_rate) {
            return Err(format!(
                "sampling_rate {sample_rate} is outside 1000..=192000"
            ));
        }
        Ok(EncoderConfig {
            family,
            hidden_size,
            num_layers,
            num_heads,
            intermediate_size,
            layer_norm_eps,
            conv_norm,
            conv_layers,
            conv_bias: raw.conv_bias.unwrap_or(false),
            pos_kernel,
            pos_groups,
            stable_layer_norm,
            feat_proj_layer_norm,
            relative_buckets,
            sample_rate,
            do_normalize,
            attention_mask: mask.unwrap_or(conv_norm == ConvNorm::Layer),
        })
    }

    /// Channels out of the convolutional feature encoder.
    pub fn conv_out(&self) -> usize {
        self.conv_layers.last().map(|l| l.0).unwrap_or(0)
    }

    /// Frames the feature encoder makes of `samples` input samples
    /// (`floor((L - k) / s) + 1` per convolution; 0 when too short).
    pub fn frames(&self, samples: usize) -> usize {
        let mut n = samples;
        for &(_, k, s) in &self.conv_layers {
            if n < k {
                return 0;
            }
            n = (n - k) / s + 1;
        }
        n
    }

    /// The fewest input samples that give one frame (400 for the base models).
    pub fn receptive_field(&self) -> usize {
        let mut field = 1;
        for &(_, k, s) in self.conv_layers.iter().rev() {
            field = (field - 1) * s + k;
        }
        field
    }

    /// Input samples per output frame (320 for the base models: 20 ms at 16 kHz).
    pub fn hop(&self) -> usize {
        self.conv_layers.iter().map(|l| l.2).product()
    }

    /// Number of `hidden_states` entries (transformers numbering): the input of
    /// the first layer plus one per layer.
    pub fn num_hidden_states(&self) -> usize {
        self.num_layers + 1
    }
}

fn bounded(what: &str, v: usize, lo: usize, hi: usize) -> Result<(), String> {
    if v < lo || v > hi {
        return Err(format!("{what} {v} is outside {lo}..={hi}"));
    }
    Ok(())
}

/// Read a JSON config, refusing anything over 1 MiB (configs are a few KiB).
pub(crate) fn read_small(path: &Path) -> Result<String, EncoderError> {
    let meta = std::fs::metadata(path).map_err(|e| EncoderError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    if meta.len() > 1 << 20 {
        return Err(EncoderError::Config {
            path: path.to_path_buf(),
            message: format!("is {} bytes; a config is a few KiB", meta.len()),
        });
    }
    std::fs::read_to_string(path).map_err(|e| EncoderError::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_base_model() {
        let c = EncoderConfig::from_json(r#"{"model_type": "wav2vec2"}"#, None).unwrap();
        assert_eq!(c.hidden_size, 768);
        assert_eq!(c.receptive_field(), 400);
        assert_eq!(c.hop(), 320);
        assert_eq!(c.frames(16_000), 49);
        assert_eq!(c.frames(399), 0);
        assert_eq!(c.frames(400), 1);
        assert!(!c.attention_mask);
        assert_eq!(c.do_normalize, None);
    }

    #[test]
    fn unsupported_options_are_named() {
        let e = EncoderConfig::from_json(r#"{"model_type": "whisper"}"#, None).unwrap_err();
        assert!(e.contains("model_type `whisper`"), "{e}");
        let e = EncoderConfig::from_json(
            r#"{"model_type": "hubert", "conv_pos_batch_norm": true}"#,
            None,
        )
        .unwrap_err();
        assert!(e.contains("conv_pos_batch_norm"), "{e}");
        let e = EncoderConfig::from_json(
            r#"{"model_type": "wav2vec2", "hidden_size": 100000000}"#,
            None,
        )
        .unwrap_err();
        assert!(e.contains("hidden_size 100000000 is outside"), "{e}");
        let e = EncoderConfig::from_json(
            r#"{"model_type": "wav2vec2", "conv_dim": [512, 512], "conv_kernel": [10], "conv_stride": [5]}"#,
            None,
        )
        .unwrap_err();
        assert!(e.contains("different lengths"), "{e}");
        let e =
            EncoderConfig::from_json(r#"{"model_type": "wav2vec2", "hidden_act": "relu"}"#, None)
                .unwrap_err();
        assert!(e.contains("hidden_act = \"relu\""), "{e}");
    }
}
