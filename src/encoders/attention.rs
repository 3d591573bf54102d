//! Multi-head self-attention of the encoders, with WavLM's gated relative
//! position bias (transformers 5.25 `WavLMAttention`, Apache-2.0).
//!
//! WavLM's bias: layer 0 owns an embedding of `num_buckets` relative-distance
//! buckets × heads; the bias it gives (`[heads, frames, frames]`) is computed
//! once and shared by every layer, and each layer scales it per query frame and
//! head by a gate computed from its own input:
//! `gate = σ(a) · (σ(b) · c_h − 1) + 2`, where `(a, b)` are the two halves of a
//! `Linear(head_dim → 8)` of the head's slice of the input, each summed over 4.
//! Scores are `(q · d^-½) kᵀ + gated bias`, padded keys masked.

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::activation::{sigmoid, softmax};

use super::model::Dense;

/// The gate of one WavLM layer.
#[derive(Module, Debug)]
pub struct Gate<B: Backend> {
    /// `gru_rel_pos_linear`: `head_dim → 8`.
    pub linear: Dense<B>,
    /// `gru_rel_pos_const`: one per head (PyTorch `[1, heads, 1, 1]`).
    pub constant: Param<Tensor<B, 1>>,
}

/// Self-attention; `gate` is set for WavLM.
#[derive(Module, Debug)]
pub struct SelfAttention<B: Backend> {
    pub q: Dense<B>,
    pub k: Dense<B>,
    pub v: Dense<B>,
    pub out: Dense<B>,
    pub heads: usize,
    pub gate: Option<Gate<B>>,
}

impl<B: Backend> SelfAttention<B> {
    /// `x`: `[batch, frames, hidden]`; `mask`: additive `[batch, 1, 1, frames]`;
    /// `bias`: the shared relative bias `[1, heads, frames, frames]`.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        mask: Option<&Tensor<B, 4>>,
        bias: Option<&Tensor<B, 4>>,
    ) -> Tensor<B, 3> {
        let [b, f, h] = x.dims();
        let d = h / self.heads;
        let split = |t: Tensor<B, 3>| t.reshape([b, f, self.heads, d]).swap_dims(1, 2);
        let scale = (d as f64).powf(-0.5);
        let q = split(self.q.forward(x.clone())) * scale;
        let k = split(self.k.forward(x.clone()));
        let v = split(self.v.forward(x.clone()));
        let mut scores = q.matmul(k.swap_dims(2, 3));
        if let (Some(gate), Some(bias)) = (&self.gate, bias) {
            // [b, heads, f, d] → [b, heads, f, 8] → [b, heads, f, 2, 4] → sum.
            let g = gate.linear.forward(split(x));
            let g: Tensor<B, 4> = g
                .reshape([b, self.heads, f, 2, 4])
                .sum_dim(4)
                .squeeze_dim(4);
            let g = sigmoid(g);
            let a = g.clone().slice([0..b, 0..self.heads, 0..f, 0..1]);
            let bb = g.slice([0..b, 0..self.heads, 0..f, 1..2]);
            let c: Tensor<B, 4> = gate.constant.val().reshape([1, self.heads, 1, 1]);
            let gate_out = a * (bb * c - 1.0) + 2.0;
            scores = scores + gate_out * bias.clone();
        }
        if let Some(m) = mask {
            scores = scores + m.clone();
        }
        let p = softmax(scores, 3);
        let y = p.matmul(v).swap_dims(1, 2).reshape([b, f, h]);
        self.out.forward(y)
    }
}

/// WavLM's relative position embedding (layer 0's `rel_attn_embed`).
#[derive(Module, Debug)]
pub struct RelativeBias<B: Backend> {
    /// `[num_buckets, heads]`.
    pub embedding: Param<Tensor<B, 2>>,
    pub num_buckets: usize,
    pub max_distance: usize,
}

impl<B: Backend> RelativeBias<B> {
    /// The bias `[1, heads, frames, frames]` for `frames` query and key frames.
    pub fn bias(&self, frames: usize, device: &B::Device) -> Tensor<B, 4> {
        let mut idx = Vec::with_capacity(frames * frames);
        for q in 0..frames {
            for k in 0..frames {
                let rel = k as i64 - q as i64;
                idx.push(bucket(rel, self.num_buckets, self.max_distance) as i64);
            }
        }
        let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [frames * frames]), device);
        let heads = self.embedding.dims()[1];
        let values = self.embedding.val().select(0, idx); // [f·f, heads]
        values
            .reshape([frames, frames, heads])
            .permute([2, 0, 1])
            .unsqueeze()
    }
}

/// WavLM's bucket of a relative position `key − query` (bidirectional: half the
/// buckets for positive distances; exact below `num_buckets / 4`, log-spaced up
/// to `max_distance`). The logarithm is taken in `f32`, as transformers does.
pub fn bucket(rel: i64, num_buckets: usize, max_distance: usize) -> usize {
    let half = num_buckets / 2;
    let mut out = if rel > 0 { half } else { 0 };
    let n = rel.unsigned_abs() as usize;
    let max_exact = half / 2;
    if n < max_exact {
        out += n;
    } else {
        // torch: log of an f32 tensor, divided by a Python float (made f32).
        let denom = (max_distance as f64 / max_exact as f64).ln() as f32;
        let v = (n as f32 / max_exact as f32).ln() / denom * (half - max_exact) as f32;
        let large = (max_exact as f32 + v) as usize;
        out += large.min(half - 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn buckets_are_symmetric_and_saturate() {
        // WavLM base: 320 buckets, max distance 800.
        assert_eq!(bucket(0, 320, 800), 0);
        assert_eq!(bucket(-5, 320, 800), 5);
        assert_eq!(bucket(5, 320, 800), 165);
        assert_eq!(bucket(-100_000, 320, 800), 159);
        assert_eq!(bucket(100_000, 320, 800), 319);
    }
}
