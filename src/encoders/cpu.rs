//! The encoders' inference forward pass on the CPU, on plain `f32` buffers.
//!
//! The same computation as [`super::model::SpeechEncoder::forward`] (which stays
//! the implementation for fine-tuning, where burn's autodiff needs its tensors,
//! and for CUDA), rearranged for a CPU: every convolution is one matrix product
//! on an overlapping strided view of its input (no unfold, no patch copy: a
//! frame's taps are consecutive in memory), the position convolution is one
//! product per group on such a view, the q/k/v projections are one product, the
//! biases are the products' starting values, and attention runs head by head
//! with its scores in a per-thread buffer. [`super::kernels`] has the products
//! and the fused element-wise passes. [`super::Pretrained`] on burn's CPU
//! backend runs this; `tests/encoders.rs` holds both passes to transformers'
//! numbers.
//!
//! Weight norm of the position convolution is folded once at load.

use burn::prelude::*;
use rayon::prelude::*;

use super::attention::bucket;
use super::config::EncoderConfig;
use super::kernels::{self, View};
use super::model::{Dense, Norm, SpeechEncoder};

/// A tensor's values as `f32`.
fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap_or_default()
}

/// LayerNorm / per-channel GroupNorm affine parameters.
struct NormW {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f64,
}

impl NormW {
    fn of<B: Backend>(n: &Norm<B>) -> Self {
        NormW {
            gamma: values(n.gamma.val()),
            beta: values(n.beta.val()),
            eps: n.eps,
        }
    }

    /// LayerNorm of each row of `x` (after adding `residual`), in place.
    fn rows(&self, x: &mut [f32], residual: Option<&[f32]>) {
        kernels::layer_norm(x, residual, &self.gamma, &self.beta, self.eps);
    }
}

/// A linear layer, weight `[in, out]` row-major.
struct Linear {
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    d_in: usize,
    d_out: usize,
}

impl Linear {
    fn of<B: Backend>(d: &Dense<B>) -> Self {
        let [d_in, d_out] = d.weight.dims();
        Linear {
            weight: values(d.weight.val()),
            bias: d.bias.as_ref().map(|b| values(b.val())),
            d_in,
            d_out,
        }
    }

    /// q, k and v as one layer: weights side by side, `[in, 3·out]`.
    fn fused(parts: [&Linear; 3]) -> Self {
        let (d_in, d_out) = (parts[0].d_in, parts[0].d_out);
        let mut weight = Vec::with_capacity(d_in * 3 * d_out);
        for i in 0..d_in {
            for p in parts {
                weight.extend_from_slice(&p.weight[i * d_out..(i + 1) * d_out]);
            }
        }
        let bias = parts.iter().any(|p| p.bias.is_some()).then(|| {
            parts
                .iter()
                .flat_map(|p| p.bias.clone().unwrap_or_else(|| vec![0.0; d_out]))
                .collect()
        });
        Linear {
            weight,
            bias,
            d_in,
            d_out: 3 * d_out,
        }
    }

    /// `x [rows, in]` → `[rows, out]`.
    fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut y = kernels::broadcast(rows, self.bias.as_deref(), self.d_out);
        kernels::matmul(
            rows,
            self.d_out,
            self.d_in,
            &mut y,
            self.d_out,
            self.bias.is_some(),
            View::rows(x, 0, self.d_in),
            View::rows(&self.weight, 0, self.d_out),
            true,
        );
        y
    }
}

/// One convolution of the feature encoder: weight `[kernel·in, out]`, tap-major.
struct Conv {
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    norm: Option<(NormW, bool)>,
    kernel: usize,
    stride: usize,
    d_in: usize,
    d_out: usize,
}

impl Conv {
    /// `x [samples, in]` → `[frames, out]` (`samples ≥ kernel`).
    fn forward(&self, x: &[f32], samples: usize) -> (Vec<f32>, usize) {
        let (k, s, c) = (self.kernel, self.stride, self.d_in);
        let frames = (samples - k) / s + 1;
        let mut y = kernels::broadcast(frames, self.bias.as_deref(), self.d_out);
        // Frame t reads the k·c consecutive values from t·s·c on.
        let taps = View {
            data: x,
            offset: 0,
            row: s * c,
            col: 1,
        };
        kernels::matmul(
            frames,
            self.d_out,
            k * c,
            &mut y,
            self.d_out,
            self.bias.is_some(),
            taps,
            View::rows(&self.weight, 0, self.d_out),
            true,
        );
        match &self.norm {
            Some((n, true)) => {
                kernels::group_norm_columns(&mut y, self.d_out, &n.gamma, &n.beta, n.eps)
            }
            Some((n, false)) => n.rows(&mut y, None),
            None => {}
        }
        kernels::gelu(&mut y);
        (y, frames)
    }
}

/// The grouped position convolution, weight norm folded: per group `[kernel·d, d]`.
struct PositionConv {
    groups: Vec<Vec<f32>>,
    bias: Vec<f32>,
    kernel: usize,
    d: usize,
}

impl PositionConv {
    /// `x [frames, hidden]` → `gelu(conv(x))`, "same" padding, `[frames, hidden]`.
    fn forward(&self, x: &[f32], frames: usize) -> Vec<f32> {
        let (k, d) = (self.kernel, self.d);
        let h = self.bias.len();
        let pad = k / 2;
        let padded = frames + 2 * pad;
        let mut y = kernels::broadcast(frames, Some(&self.bias), h);
        let mut xg = vec![0.0f32; padded * d];
        for (g, w) in self.groups.iter().enumerate() {
            // This group's channels, contiguous and zero-padded, so that the
            // k taps of output frame t are the k·d values from t·d on.
            for t in 0..frames {
                xg[(pad + t) * d..(pad + t + 1) * d]
                    .copy_from_slice(&x[t * h + g * d..t * h + (g + 1) * d]);
            }
            // Into this group's columns of y (which hold the bias).
            kernels::matmul(
                frames,
                d,
                k * d,
                &mut y[g * d..],
                h,
                true,
                View {
                    data: &xg,
                    offset: 0,
                    row: d,
                    col: 1,
                },
                View::rows(w, 0, d),
                true,
            );
        }
        kernels::gelu(&mut y);
        y
    }
}

/// WavLM's gate of one layer.
struct Gate {
    /// `[head_dim, 8]`.
    weight: Vec<f32>,
    bias: Vec<f32>,
    constant: Vec<f32>,
}

struct Layer {
    qkv: Linear,
    out: Linear,
    heads: usize,
    gate: Option<Gate>,
    attn_norm: NormW,
    ff_in: Linear,
    ff_out: Linear,
    final_norm: NormW,
}

/// The encoder's weights laid out for [`CpuEncoder::forward`].
pub struct CpuEncoder {
    convs: Vec<Conv>,
    feat_proj_norm: Option<NormW>,
    projection: Linear,
    pos_conv: PositionConv,
    layer_norm: NormW,
    layers: Vec<Layer>,
    /// WavLM: `[num_buckets, heads]`, buckets, max distance.
    relative: Option<(Vec<f32>, usize, usize)>,
    pre_ln: bool,
    hidden: usize,
}

/// What [`CpuEncoder::forward`] returns for a batch.
#[derive(Debug, Clone)]
pub struct CpuOutput {
    /// Per hidden state `K` (transformers' numbering), `[batch, frames, hidden]`
    /// row-major, `None` where not asked for.
    pub hidden_states: Vec<Option<Vec<f32>>>,
    /// Frames per clip of the padded batch.
    pub frames: usize,
    /// Valid frames per clip.
    pub valid: Vec<usize>,
}

impl CpuEncoder {
    /// Lay out the weights of a loaded module.
    pub fn from_model<B: Backend>(m: &SpeechEncoder<B>) -> Self {
        let convs = m
            .conv_layers
            .iter()
            .map(|c| {
                let [rows, d_out] = c.weight.dims();
                Conv {
                    weight: values(c.weight.val()),
                    bias: c.bias.as_ref().map(|b| values(b.val())),
                    norm: c.norm.as_ref().map(|n| (NormW::of(n), c.norm_over_time)),
                    kernel: c.kernel,
                    stride: c.stride,
                    d_in: rows / c.kernel.max(1),
                    d_out,
                }
            })
            .collect();
        let p = &m.pos_conv;
        let [h, d, k] = p.weight_v.dims();
        let w = values(p.weight()); // [h_out, d_in, k]
        let groups = (0..p.groups)
            .map(|g| {
                let mut wg = vec![0.0f32; k * d * d];
                for co in 0..d {
                    for ci in 0..d {
                        for t in 0..k {
                            wg[(t * d + ci) * d + co] = w[((g * d + co) * d + ci) * k + t];
                        }
                    }
                }
                wg
            })
            .collect();
        let layers = m
            .layers
            .iter()
            .map(|l| {
                let a = &l.attention;
                Layer {
                    qkv: Linear::fused([&Linear::of(&a.q), &Linear::of(&a.k), &Linear::of(&a.v)]),
                    out: Linear::of(&a.out),
                    heads: a.heads,
                    gate: a.gate.as_ref().map(|g| Gate {
                        weight: values(g.linear.weight.val()),
                        bias: g
                            .linear
                            .bias
                            .as_ref()
                            .map(|b| values(b.val()))
                            .unwrap_or_else(|| vec![0.0; 8]),
                        constant: values(g.constant.val()),
                    }),
                    attn_norm: NormW::of(&l.layer_norm),
                    ff_in: Linear::of(&l.feed_forward.intermediate),
                    ff_out: Linear::of(&l.feed_forward.output),
                    final_norm: NormW::of(&l.final_layer_norm),
                }
            })
            .collect();
        CpuEncoder {
            convs,
            feat_proj_norm: m.feat_proj_norm.as_ref().map(NormW::of),
            projection: Linear::of(&m.projection),
            pos_conv: PositionConv {
                groups,
                bias: values(p.bias.val()),
                kernel: k,
                d,
            },
            layer_norm: NormW::of(&m.layer_norm),
            layers,
            relative: m
                .relative
                .as_ref()
                .map(|r| (values(r.embedding.val()), r.num_buckets, r.max_distance)),
            pre_ln: m.pre_ln,
            hidden: h,
        }
    }

    /// Forward a batch: `input` `[batch, samples]` row-major (normalized and
    /// zero-padded; `lengths`: valid samples per clip); `masked` and `keep` as
    /// [`SpeechEncoder::forward`]. Each clip of the batch is run on its own
    /// padded row, which is what the batched tensor computation does.
    pub fn forward(
        &self,
        input: &[f32],
        batch: usize,
        config: &EncoderConfig,
        lengths: &[usize],
        masked: bool,
        keep: &[bool],
    ) -> CpuOutput {
        let samples = input.len() / batch.max(1);
        let frames = config.frames(samples);
        let h = self.hidden;
        let mut hidden_states: Vec<Option<Vec<f32>>> = keep
            .iter()
            .map(|&k| k.then(|| Vec::with_capacity(batch * frames * h)))
            .collect();
        let mut valid = Vec::with_capacity(batch);
        for i in 0..batch {
            let n = lengths
                .get(i)
                .map_or(frames, |&n| config.frames(n).min(frames));
            valid.push(n);
            let clip = &input[i * samples..(i + 1) * samples];
            let states = self.forward_one(clip, masked.then_some(n), keep);
            for (all, one) in hidden_states.iter_mut().zip(states) {
                if let (Some(all), Some(one)) = (all.as_mut(), one) {
                    all.extend_from_slice(&one);
                }
            }
        }
        CpuOutput {
            hidden_states,
            frames,
            valid,
        }
    }

    /// One clip's padded row; `valid`: its valid frames when masked.
    fn forward_one(
        &self,
        clip: &[f32],
        valid: Option<usize>,
        keep: &[bool],
    ) -> Vec<Option<Vec<f32>>> {
        let mut out = vec![None; keep.len()];
        let (mut x, mut n) = (clip.to_vec(), clip.len());
        for conv in &self.convs {
            if n < conv.kernel {
                return out;
            }
            (x, n) = conv.forward(&x, n);
        }
        let frames = n;
        if let Some(norm) = &self.feat_proj_norm {
            norm.rows(&mut x, None);
        }
        let mut x = self.projection.forward(&x, frames);
        let h = self.hidden;
        if let Some(v) = valid {
            x[v.min(frames) * h..].fill(0.0);
        }
        let pos = self.pos_conv.forward(&x, frames);
        kernels::add(&mut x, &pos);
        if !self.pre_ln {
            self.layer_norm.rows(&mut x, None);
        }
        if keep.first().copied().unwrap_or(false) {
            out[0] = Some(x.clone());
        }
        let last = keep.iter().rposition(|&k| k).unwrap_or(0);
        let bias = self.relative.as_ref().map(|(emb, buckets, max)| {
            let heads = emb.len() / buckets.max(&1);
            let mut b = vec![0.0f32; heads * frames * frames];
            for q in 0..frames {
                for k in 0..frames {
                    let e = bucket(k as i64 - q as i64, *buckets, *max);
                    for hd in 0..heads {
                        b[(hd * frames + q) * frames + k] = emb[e * heads + hd];
                    }
                }
            }
            b
        });
        let valid = valid.unwrap_or(frames).min(frames);
        for (i, layer) in self.layers.iter().enumerate().take(last) {
            x = self.layer(layer, x, frames, valid, bias.as_deref());
            if keep.get(i + 1).copied().unwrap_or(false) {
                out[i + 1] = Some(x.clone());
            }
        }
        out
    }

    /// One transformer layer, post-LN or pre-LN.
    fn layer(
        &self,
        l: &Layer,
        mut x: Vec<f32>,
        frames: usize,
        valid: usize,
        bias: Option<&[f32]>,
    ) -> Vec<f32> {
        if self.pre_ln {
            let mut a_in = x.clone();
            l.attn_norm.rows(&mut a_in, None);
            let a = self.attention(l, &a_in, frames, valid, bias);
            kernels::add(&mut x, &a);
            let mut f_in = x.clone();
            l.final_norm.rows(&mut f_in, None);
            let f = feed_forward(l, &f_in, frames);
            kernels::add(&mut x, &f);
            x
        } else {
            let mut a = self.attention(l, &x, frames, valid, bias);
            l.attn_norm.rows(&mut a, Some(&x));
            let mut f = feed_forward(l, &a, frames);
            l.final_norm.rows(&mut f, Some(&a));
            f
        }
    }

    /// Self-attention of `x [frames, hidden]`; keys from `valid` on are masked.
    fn attention(
        &self,
        l: &Layer,
        x: &[f32],
        frames: usize,
        valid: usize,
        bias: Option<&[f32]>,
    ) -> Vec<f32> {
        let h = self.hidden;
        let heads = l.heads;
        let d = h / heads;
        let mut qkv = l.qkv.forward(x, frames);
        let scale = (d as f64).powf(-0.5) as f32;
        for row in qkv.chunks_exact_mut(3 * h) {
            for q in &mut row[..h] {
                *q *= scale;
            }
        }
        let head = |hd: usize| -> Vec<f32> {
            let mut scores = vec![0.0f32; frames * valid];
            kernels::matmul(
                frames,
                valid,
                d,
                &mut scores,
                valid,
                false,
                View {
                    data: &qkv,
                    offset: hd * d,
                    row: 3 * h,
                    col: 1,
                },
                // kᵀ: element (p, j) is key frame j's component p.
                View {
                    data: &qkv,
                    offset: h + hd * d,
                    row: 1,
                    col: 3 * h,
                },
                false,
            );
            if let (Some(g), Some(bias)) = (&l.gate, bias) {
                for q in 0..frames {
                    let xs = &x[q * h + hd * d..q * h + (hd + 1) * d];
                    let mut lin = [0.0f32; 8];
                    for (j, out) in lin.iter_mut().enumerate() {
                        *out = g.bias[j]
                            + xs.iter()
                                .enumerate()
                                .map(|(p, &v)| v * g.weight[p * 8 + j])
                                .sum::<f32>();
                    }
                    let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
                    let a = sig(lin[..4].iter().sum());
                    let b = sig(lin[4..].iter().sum());
                    let gate = a * (b * g.constant[hd] - 1.0) + 2.0;
                    let brow =
                        &bias[(hd * frames + q) * frames..(hd * frames + q) * frames + valid];
                    for (s, &bv) in scores[q * valid..(q + 1) * valid].iter_mut().zip(brow) {
                        *s += gate * bv;
                    }
                }
            }
            for row in scores.chunks_exact_mut(valid.max(1)) {
                kernels::softmax_row(row);
            }
            let mut ctx = vec![0.0f32; frames * d];
            kernels::matmul(
                frames,
                d,
                valid,
                &mut ctx,
                d,
                false,
                View::rows(&scores, 0, valid),
                View {
                    data: &qkv,
                    offset: 2 * h + hd * d,
                    row: 3 * h,
                    col: 1,
                },
                false,
            );
            ctx
        };
        let per_head: Vec<Vec<f32>> = if kernels::threads() > 1 {
            (0..heads).into_par_iter().map(head).collect()
        } else {
            (0..heads).map(head).collect()
        };
        let mut ctx = vec![0.0f32; frames * h];
        for (hd, c) in per_head.iter().enumerate() {
            for t in 0..frames {
                ctx[t * h + hd * d..t * h + (hd + 1) * d].copy_from_slice(&c[t * d..(t + 1) * d]);
            }
        }
        l.out.forward(&ctx, frames)
    }
}

fn feed_forward(l: &Layer, x: &[f32], frames: usize) -> Vec<f32> {
    let mut z = l.ff_in.forward(x, frames);
    kernels::gelu(&mut z);
    l.ff_out.forward(&z, frames)
}
