//! The wav2vec2 / HuBERT / WavLM encoder as burn modules, ported from
//! transformers 5.25's `modeling_wav2vec2.py`, `modeling_hubert.py` and
//! `modeling_wavlm.py` (Apache-2.0, © the Hugging Face team and the fairseq
//! authors). One module serves the three families: they share the
//! convolutional feature encoder, the feature projection, the convolutional
//! position embedding and the transformer; WavLM adds a gated relative position
//! bias to the attention ([`super::attention`]).
//!
//! Tensors are time-major, `[batch, frames, channels]`, from the first
//! convolution on. Every convolution (the feature encoder's and the grouped
//! position convolution) is one unfold and one matrix product, so the CPU
//! backend runs them as GEMMs, and all of it is differentiable for fine-tuning.
//! Weight norm stays as its two parameters `g`, `v` and is applied each forward
//! (cheap next to the convolution), so a fine-tuned encoder saves back in the
//! checkpoint's own spelling.

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::activation::gelu;

use super::attention::{RelativeBias, SelfAttention};
use super::config::{ConvNorm, EncoderConfig};

/// A LayerNorm's (or per-channel GroupNorm's) affine parameters.
#[derive(Module, Debug)]
pub struct Norm<B: Backend> {
    pub gamma: Param<Tensor<B, 1>>,
    pub beta: Param<Tensor<B, 1>>,
    pub eps: f64,
}

impl<B: Backend> Norm<B> {
    /// LayerNorm over the last dimension (biased variance, as PyTorch).
    pub fn over_channels<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let (var, mean) = x.clone().var_mean_bias(D - 1);
        let x = (x - mean) / (var + self.eps).sqrt();
        x * self.gamma.val().unsqueeze() + self.beta.val().unsqueeze()
    }

    /// GroupNorm with one group per channel of `[batch, frames, channels]`:
    /// statistics over the frames of each channel.
    pub fn over_time(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let (var, mean) = x.clone().var_mean_bias(1);
        let x = (x - mean) / (var + self.eps).sqrt();
        x * self.gamma.val().unsqueeze() + self.beta.val().unsqueeze()
    }
}

/// A linear layer with the weight stored `[in, out]`.
#[derive(Module, Debug)]
pub struct Dense<B: Backend> {
    pub weight: Param<Tensor<B, 2>>,
    pub bias: Option<Param<Tensor<B, 1>>>,
}

impl<B: Backend> Dense<B> {
    /// `[.., in]` → `[.., out]` as one matrix product over all leading dimensions.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let dims = x.dims();
        let d_in = dims[D - 1];
        let rows = x.shape().num_elements() / d_in.max(1);
        let y = x.reshape([rows, d_in]).matmul(self.weight.val());
        let y = match &self.bias {
            Some(b) => y + b.val().unsqueeze(),
            None => y,
        };
        let mut out = dims;
        out[D - 1] = self.weight.dims()[1];
        y.reshape(out)
    }
}

/// One convolution of the feature encoder (+ its norm, + GELU).
///
/// Computed without an unfold (burn-ndarray builds one slice per window, which
/// dominated the forward pass): the input `[batch, samples, in]` is viewed as
/// rows of `stride` samples, `[batch, rows, stride·in]`, so the taps
/// `j·stride .. (j+1)·stride` of every output frame are one row, `j` rows on;
/// the convolution is then `⌈kernel / stride⌉` matrix products of shifted row
/// blocks with the matching tap block of the weight.
#[derive(Module, Debug)]
pub struct ConvLayer<B: Backend> {
    /// `[kernel·in, out]`, tap-major: row `k·in + c` is PyTorch's
    /// `weight[:, c, k]`.
    pub weight: Param<Tensor<B, 2>>,
    pub bias: Option<Param<Tensor<B, 1>>>,
    pub norm: Option<Norm<B>>,
    /// The norm is the per-channel GroupNorm (statistics over time), not a LayerNorm.
    pub norm_over_time: bool,
    pub kernel: usize,
    pub stride: usize,
}

impl<B: Backend> ConvLayer<B> {
    /// `[batch, samples, in]` → `[batch, frames, out]`; the caller makes sure
    /// there is at least one frame (`samples ≥ kernel`).
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, l, c] = x.dims();
        let (k, s) = (self.kernel, self.stride);
        let f = (l - k) / s + 1;
        let groups = k.div_ceil(s);
        let rows = f + groups - 1;
        let need = rows * s;
        // Exactly `rows` rows of `s` samples: cut the tail, or pad with zeros
        // that only reach columns of the last block no tap reads.
        let x = if need > l {
            let zeros = Tensor::<B, 3>::zeros([b, need - l, c], &x.device());
            Tensor::cat(vec![x, zeros], 1)
        } else {
            x.slice([0..b, 0..need, 0..c])
        };
        let r = x.reshape([b, rows, s * c]);
        let out = self.weight.dims()[1];
        let w = self.weight.val();
        let mut y: Option<Tensor<B, 2>> = None;
        for j in 0..groups {
            let taps = (k - j * s).min(s);
            let block = r
                .clone()
                .slice([0..b, j..j + f, 0..taps * c])
                .reshape([b * f, taps * c]);
            let wj = w.clone().slice([j * s * c..(j * s + taps) * c, 0..out]);
            let p = block.matmul(wj);
            y = Some(match y {
                Some(acc) => acc + p,
                None => p,
            });
        }
        let mut y = y.unwrap_or_else(|| Tensor::zeros([b * f, out], &r.device()));
        if let Some(bias) = &self.bias {
            y = y + bias.val().unsqueeze();
        }
        let y = y.reshape([b, f, out]);
        let y = match &self.norm {
            Some(n) if self.norm_over_time => n.over_time(y),
            Some(n) => n.over_channels(y),
            None => y,
        };
        gelu(y)
    }
}

/// The convolutional position embedding: a grouped convolution with weight norm
/// (`dim = 2`: one `g` per kernel tap), "same" padding, GELU.
#[derive(Module, Debug)]
pub struct PositionConv<B: Backend> {
    /// `g`: `[kernel]` (PyTorch `[1, 1, kernel]`).
    pub weight_g: Param<Tensor<B, 1>>,
    /// `v`: `[hidden, hidden / groups, kernel]`.
    pub weight_v: Param<Tensor<B, 3>>,
    pub bias: Param<Tensor<B, 1>>,
    pub groups: usize,
    pub kernel: usize,
}

impl<B: Backend> PositionConv<B> {
    /// The weight-normed kernel `g · v / ‖v‖`, norms over all but the tap axis.
    pub fn weight(&self) -> Tensor<B, 3> {
        let v = self.weight_v.val();
        let norm = v.clone().powi_scalar(2).sum_dim(0).sum_dim(1).sqrt();
        let g: Tensor<B, 3> = self.weight_g.val().unsqueeze();
        v * (g / norm)
    }

    /// `[batch, frames, hidden]` → the same shape. Per group, the taps of its
    /// channels are gathered (`kernel` shifted slices stacked, `[batch ·
    /// windows, kernel · hidden / groups]`, tap-major) and multiplied with its
    /// tap-major weight: one matrix product per group, on a patch matrix a
    /// `groups`-th the size of all taps at once (which cost a large, freshly
    /// faulted allocation per clip).
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, f, h] = x.dims();
        let device = x.device();
        let pad = self.kernel / 2;
        let zeros = || Tensor::<B, 3>::zeros([b, pad, h], &device);
        let xp = if pad > 0 {
            Tensor::cat(vec![zeros(), x, zeros()], 1)
        } else {
            x
        };
        let k = self.kernel;
        let windows = f + 2 * pad + 1 - k;
        let padded = f + 2 * pad;
        let d = h / self.groups;
        // [h_out, d_in, k] → per group [k·d_in, d_out], tap-major.
        let w = self.weight();
        let mut parts = Vec::with_capacity(self.groups);
        for g in 0..self.groups {
            let wg = w
                .clone()
                .slice([g * d..(g + 1) * d, 0..d, 0..k])
                .permute([2, 1, 0])
                .reshape([k * d, d]);
            let xg = xp.clone().slice([0..b, 0..padded, g * d..(g + 1) * d]);
            let taps: Vec<Tensor<B, 4>> = (0..k)
                .map(|t| {
                    xg.clone()
                        .slice([0..b, t..t + windows, 0..d])
                        .unsqueeze_dim(2)
                })
                .collect();
            let pg = Tensor::cat(taps, 2).reshape([b * windows, k * d]);
            parts.push(pg.matmul(wg).reshape([b, windows, d]));
        }
        let y = Tensor::cat(parts, 2) + self.bias.val().unsqueeze();
        // An even kernel gives one frame too many (transformers' SamePadLayer).
        let y = y.slice([0..b, 0..f, 0..h]);
        gelu(y)
    }
}

/// The feed-forward block of a transformer layer.
#[derive(Module, Debug)]
pub struct FeedForward<B: Backend> {
    pub intermediate: Dense<B>,
    pub output: Dense<B>,
}

impl<B: Backend> FeedForward<B> {
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.output.forward(gelu(self.intermediate.forward(x)))
    }
}

/// One transformer layer, post-LN (base models) or pre-LN (`do_stable_layer_norm`).
#[derive(Module, Debug)]
pub struct EncoderLayer<B: Backend> {
    pub attention: SelfAttention<B>,
    pub layer_norm: Norm<B>,
    pub feed_forward: FeedForward<B>,
    pub final_layer_norm: Norm<B>,
    pub pre_ln: bool,
}

impl<B: Backend> EncoderLayer<B> {
    /// `mask`: additive key mask `[batch, 1, 1, frames]`; `bias`: WavLM's shared
    /// relative position bias `[1, heads, frames, frames]`.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        mask: Option<&Tensor<B, 4>>,
        bias: Option<&Tensor<B, 4>>,
    ) -> Tensor<B, 3> {
        if self.pre_ln {
            let a = self
                .attention
                .forward(self.layer_norm.over_channels(x.clone()), mask, bias);
            let x = x + a;
            let f = self
                .feed_forward
                .forward(self.final_layer_norm.over_channels(x.clone()));
            x + f
        } else {
            let a = self.attention.forward(x.clone(), mask, bias);
            let x = self.layer_norm.over_channels(x + a);
            let f = self.feed_forward.forward(x.clone());
            self.final_layer_norm.over_channels(x + f)
        }
    }
}

/// A speech encoder: feature encoder, projection, position embedding, transformer.
#[derive(Module, Debug)]
pub struct SpeechEncoder<B: Backend> {
    pub conv_layers: Vec<ConvLayer<B>>,
    pub feat_proj_norm: Option<Norm<B>>,
    pub projection: Dense<B>,
    pub pos_conv: PositionConv<B>,
    pub layer_norm: Norm<B>,
    pub layers: Vec<EncoderLayer<B>>,
    pub relative: Option<RelativeBias<B>>,
    pub pre_ln: bool,
}

/// What a forward pass returns.
#[derive(Debug, Clone)]
pub struct EncoderOutput<B: Backend> {
    /// `hidden_states[K]` as transformers numbers them (`0` = the input of the
    /// first transformer layer, `K` = the output of layer K; for pre-LN models
    /// the last is before the final LayerNorm, as transformers 5 returns it),
    /// `[batch, frames, hidden]`; `None` where not asked for.
    pub hidden_states: Vec<Option<Tensor<B, 3>>>,
    /// Valid frames per clip.
    pub frames: Vec<usize>,
}

impl<B: Backend> SpeechEncoder<B> {
    /// The convolutional feature encoder and projection: `[batch, samples]` →
    /// `[batch, frames, hidden]` (the transformer's input before the position
    /// embedding).
    pub fn embed_features(&self, x: Tensor<B, 2>) -> Tensor<B, 3> {
        self.project(self.conv_features(x))
    }

    /// The convolutional feature encoder alone: `[batch, samples]` →
    /// `[batch, frames, conv channels]` (what fine-tuning freezes by default).
    pub fn conv_features(&self, x: Tensor<B, 2>) -> Tensor<B, 3> {
        let [b, l] = x.dims();
        let mut h = x.reshape([b, l, 1]);
        for conv in &self.conv_layers {
            h = conv.forward(h);
        }
        h
    }

    /// The feature projection (LayerNorm, Linear) of the convolutional features.
    pub fn project(&self, h: Tensor<B, 3>) -> Tensor<B, 3> {
        let h = match &self.feat_proj_norm {
            Some(n) => n.over_channels(h),
            None => h,
        };
        self.projection.forward(h)
    }

    /// Forward `input` `[batch, samples]` (already normalized and zero-padded;
    /// `lengths`: the valid samples per clip). With `masked`, padded frames are
    /// zeroed before the position embedding and masked as keys, as transformers
    /// does when given an attention mask; without, the padding is computed as
    /// signal (transformers without a mask). `keep[K]` says which hidden states
    /// to return; layers past the last kept one are not run.
    pub fn forward(
        &self,
        input: Tensor<B, 2>,
        config: &EncoderConfig,
        lengths: &[usize],
        masked: bool,
        keep: &[bool],
    ) -> EncoderOutput<B> {
        self.forward_features(self.embed_features(input), config, lengths, masked, keep)
    }

    /// [`SpeechEncoder::forward`] from the output of
    /// [`SpeechEncoder::embed_features`] (fine-tuning with a frozen feature
    /// encoder detaches it in between).
    pub fn forward_features(
        &self,
        x: Tensor<B, 3>,
        config: &EncoderConfig,
        lengths: &[usize],
        masked: bool,
        keep: &[bool],
    ) -> EncoderOutput<B> {
        self.forward_skipping(x, config, lengths, masked, keep, &[])
    }

    /// [`SpeechEncoder::forward_features`] with the transformer layers `i` where
    /// `skip[i]` left out (LayerDrop in training, as transformers: a skipped
    /// layer passes its input on, and its hidden state repeats the previous one).
    pub fn forward_skipping(
        &self,
        mut x: Tensor<B, 3>,
        config: &EncoderConfig,
        lengths: &[usize],
        masked: bool,
        keep: &[bool],
        skip: &[bool],
    ) -> EncoderOutput<B> {
        let [b, f, _] = x.dims();
        let device = x.device();
        let frames: Vec<usize> = (0..b)
            .map(|i| lengths.get(i).map_or(f, |&n| config.frames(n).min(f)))
            .collect();
        let mask = masked.then(|| {
            let mut keep_frame = Vec::with_capacity(b * f);
            for &n in &frames {
                keep_frame.extend((0..f).map(|t| if t < n { 1.0f32 } else { 0.0 }));
            }
            let keep = Tensor::<B, 2>::from_data(TensorData::new(keep_frame, [b, f]), &device);
            let additive = (keep.clone() - 1.0) * 1e30;
            (keep, additive.reshape([b, 1, 1, f]))
        });
        if let Some((keep_frame, _)) = &mask {
            x = x * keep_frame.clone().unsqueeze_dim(2);
        }
        x = x.clone() + self.pos_conv.forward(x);
        if !self.pre_ln {
            x = self.layer_norm.over_channels(x);
        }
        let last = keep.iter().rposition(|&k| k).unwrap_or(0);
        let mut hidden_states = vec![None; keep.len()];
        if keep.first().copied().unwrap_or(false) {
            hidden_states[0] = Some(x.clone());
        }
        let bias = self.relative.as_ref().map(|r| r.bias(f, &device));
        let additive = mask.as_ref().map(|m| &m.1);
        for (i, layer) in self.layers.iter().enumerate().take(last) {
            if !skip.get(i).copied().unwrap_or(false) {
                x = layer.forward(x, additive, bias.as_ref());
            }
            if keep.get(i + 1).copied().unwrap_or(false) {
                hidden_states[i + 1] = Some(x.clone());
            }
        }
        EncoderOutput {
            hidden_states,
            frames,
        }
    }

    /// The final LayerNorm of a pre-LN model (transformers' `last_hidden_state`).
    pub fn final_norm(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        if self.pre_ln {
            self.layer_norm.over_channels(x)
        } else {
            x
        }
    }
}

/// `ConvNorm` → which convolutions carry a norm and of which kind.
pub fn conv_norms(config: &EncoderConfig, layer: usize) -> Option<bool> {
    match config.conv_norm {
        ConvNorm::Group if layer == 0 => Some(true),
        ConvNorm::Group => None,
        ConvNorm::Layer => Some(false),
    }
}
