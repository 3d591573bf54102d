//! Building a [`SpeechEncoder`] from a configuration and a checkpoint's tensors,
//! under transformers' key names (see [`super::checkpoint`] for the spellings
//! accepted). Every tensor is taken with its expected shape, so a missing or
//! mis-shaped one is a sentence naming it.

use burn::module::Param;
use burn::prelude::*;

use super::EncoderError;
use super::attention::{Gate, RelativeBias, SelfAttention};
use super::checkpoint::Checkpoint;
use super::config::{EncoderConfig, Family};
use super::model::{
    ConvLayer, Dense, EncoderLayer, FeedForward, Norm, PositionConv, SpeechEncoder, conv_norms,
};

/// `[in·k, out]` (in-major rows, PyTorch's flattening) → `[k·in, out]` (tap-major),
/// the layout of [`ConvLayer`].
fn tap_major(w: Vec<f32>, c_in: usize, k: usize, out: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; w.len()];
    for c in 0..c_in {
        for tap in 0..k {
            let from = (c * k + tap) * out;
            let to = (tap * c_in + c) * out;
            t[to..to + out].copy_from_slice(&w[from..from + out]);
        }
    }
    t
}

/// The eps of the feature encoder's norms (PyTorch's default; not in config.json).
const CONV_NORM_EPS: f64 = 1e-5;

struct Loader<'a, B: Backend> {
    ck: &'a mut Checkpoint,
    device: &'a B::Device,
}

impl<B: Backend> Loader<'_, B> {
    fn tensor<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Tensor<B, D>, EncoderError> {
        let data = self.ck.take(name, &shape)?;
        Ok(Tensor::from_data(TensorData::new(data, shape), self.device))
    }

    fn param<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Param<Tensor<B, D>>, EncoderError> {
        Ok(Param::from_tensor(self.tensor(name, shape)?))
    }

    /// A PyTorch `Linear(d_in → d_out)` at `prefix`.
    fn dense(
        &mut self,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Result<Dense<B>, EncoderError> {
        let w = self
            .ck
            .take_transposed(&format!("{prefix}.weight"), &[d_out, d_in])?;
        let weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(w, [d_in, d_out]),
            self.device,
        ));
        let bias = if bias {
            Some(self.param(&format!("{prefix}.bias"), [d_out])?)
        } else {
            None
        };
        Ok(Dense { weight, bias })
    }

    fn norm(&mut self, prefix: &str, n: usize, eps: f64) -> Result<Norm<B>, EncoderError> {
        Ok(Norm {
            gamma: self.param(&format!("{prefix}.weight"), [n])?,
            beta: self.param(&format!("{prefix}.bias"), [n])?,
            eps,
        })
    }
}

/// Build the encoder of `config` from `ck`'s tensors on `device`, then check
/// nothing of the encoder's own parts was left over.
pub fn build<B: Backend>(
    config: &EncoderConfig,
    mut ck: Checkpoint,
    device: &B::Device,
) -> Result<SpeechEncoder<B>, EncoderError> {
    let mut l = Loader::<B> {
        ck: &mut ck,
        device,
    };
    let h = config.hidden_size;
    let eps = config.layer_norm_eps;

    let mut conv_layers = Vec::with_capacity(config.conv_layers.len());
    let mut c_in = 1;
    for (i, &(c_out, k, s)) in config.conv_layers.iter().enumerate() {
        let p = format!("feature_extractor.conv_layers.{i}");
        let w = tap_major(
            l.ck.take_transposed(&format!("{p}.conv.weight"), &[c_out, c_in, k])?,
            c_in,
            k,
            c_out,
        );
        let weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(w, [c_in * k, c_out]),
            device,
        ));
        let bias = if config.conv_bias {
            Some(l.param(&format!("{p}.conv.bias"), [c_out])?)
        } else {
            None
        };
        let over_time = conv_norms(config, i);
        let norm = match over_time {
            Some(_) => Some(l.norm(&format!("{p}.layer_norm"), c_out, CONV_NORM_EPS)?),
            None => None,
        };
        conv_layers.push(ConvLayer {
            weight,
            bias,
            norm,
            norm_over_time: over_time.unwrap_or(false),
            kernel: k,
            stride: s,
        });
        c_in = c_out;
    }
    let conv_out = config.conv_out();
    let feat_proj_norm = if config.feat_proj_layer_norm {
        Some(l.norm("feature_projection.layer_norm", conv_out, eps)?)
    } else {
        None
    };
    let projection = l.dense("feature_projection.projection", conv_out, h, true)?;

    let (kernel, groups) = (config.pos_kernel, config.pos_groups);
    let d = h / groups;
    let pc = "encoder.pos_conv_embed.conv";
    let (weight_g, weight_v) = if l.ck.has(&format!("{pc}.weight_g")) {
        let g = l.ck.take(&format!("{pc}.weight_g"), &[1, 1, kernel])?;
        let v = l.tensor(&format!("{pc}.weight_v"), [h, d, kernel])?;
        (Tensor::from_data(TensorData::new(g, [kernel]), device), v)
    } else {
        // Weight norm already removed: g = ‖w‖ per tap makes g · w / ‖w‖ = w.
        let w = l.tensor(&format!("{pc}.weight"), [h, d, kernel])?;
        let g = w
            .clone()
            .powi_scalar(2)
            .sum_dim(0)
            .sum_dim(1)
            .sqrt()
            .reshape([kernel]);
        (g, w)
    };
    let pos_conv = PositionConv {
        weight_g: Param::from_tensor(weight_g),
        weight_v: Param::from_tensor(weight_v),
        bias: l.param(&format!("{pc}.bias"), [h])?,
        groups,
        kernel,
    };
    let layer_norm = l.norm("encoder.layer_norm", h, eps)?;

    let heads = config.num_heads;
    let mut layers = Vec::with_capacity(config.num_layers);
    for i in 0..config.num_layers {
        let p = format!("encoder.layers.{i}");
        let a = format!("{p}.attention");
        let gate = if config.family == Family::WavLm {
            let c =
                l.ck.take(&format!("{a}.gru_rel_pos_const"), &[1, heads, 1, 1])?;
            Some(Gate {
                linear: l.dense(&format!("{a}.gru_rel_pos_linear"), h / heads, 8, true)?,
                constant: Param::from_tensor(Tensor::from_data(
                    TensorData::new(c, [heads]),
                    device,
                )),
            })
        } else {
            None
        };
        let attention = SelfAttention {
            q: l.dense(&format!("{a}.q_proj"), h, h, true)?,
            k: l.dense(&format!("{a}.k_proj"), h, h, true)?,
            v: l.dense(&format!("{a}.v_proj"), h, h, true)?,
            out: l.dense(&format!("{a}.out_proj"), h, h, true)?,
            heads,
            gate,
        };
        layers.push(EncoderLayer {
            attention,
            layer_norm: l.norm(&format!("{p}.layer_norm"), h, eps)?,
            feed_forward: FeedForward {
                intermediate: l.dense(
                    &format!("{p}.feed_forward.intermediate_dense"),
                    h,
                    config.intermediate_size,
                    true,
                )?,
                output: l.dense(
                    &format!("{p}.feed_forward.output_dense"),
                    config.intermediate_size,
                    h,
                    true,
                )?,
            },
            final_layer_norm: l.norm(&format!("{p}.final_layer_norm"), h, eps)?,
            pre_ln: config.stable_layer_norm,
        });
    }
    let relative = match config.relative_buckets {
        Some((num_buckets, max_distance)) => Some(RelativeBias {
            embedding: l.param(
                "encoder.layers.0.attention.rel_attn_embed.weight",
                [num_buckets, heads],
            )?,
            num_buckets,
            max_distance,
        }),
        None => None,
    };
    ck.finish()?;
    Ok(SpeechEncoder {
        conv_layers,
        feat_proj_norm,
        projection,
        pos_conv,
        layer_norm,
        layers,
        relative,
        pre_ln: config.stable_layer_norm,
    })
}

/// The learned embedding that replaces masked frames (`masked_spec_embed`,
/// `[hidden]`), when the checkpoint has one (pre-trained checkpoints do).
pub fn mask_embedding(
    ck: &mut Checkpoint,
    hidden: usize,
) -> Result<Option<Vec<f32>>, EncoderError> {
    if ck.has("masked_spec_embed") {
        ck.take("masked_spec_embed", &[hidden]).map(Some)
    } else {
        Ok(None)
    }
}

/// The encoder of `config` with every weight zero: the structure a fine-tuned
/// model's record fills.
pub fn skeleton<B: Backend>(config: &EncoderConfig, device: &B::Device) -> SpeechEncoder<B> {
    build::<B>(config, Checkpoint::zeros(), device)
        .expect("a zero checkpoint holds every tensor the architecture asks for")
}
