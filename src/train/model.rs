//! The literature's SER models as burn modules, each built from a serde config
//! whose defaults follow the paper it comes from (docs/models.md).
//!
//! Every model takes `x: [batch, frames, dims]` and `mask: [batch, frames]` (1.0 on
//! real frames, 0.0 on padding) and returns logits `[batch, classes]`. Padding never
//! reaches the output: inputs are zeroed on padded frames, convolution outputs are
//! re-masked after every block (the mask is pooled like the signal), pooling over
//! time is a masked mean, and the LSTM reads its state at each sequence's last real
//! frame.

use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool1d, MaxPool1dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, Lstm, LstmConfig,
    PaddingConfig1d, PaddingConfig2d,
};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

/// Which model (`model = "..."` in a `train` sink).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Mlp,
    Cnn1d,
    Cnn2d,
    Lstm,
}

impl ModelKind {
    pub const ALL: [ModelKind; 4] = [
        ModelKind::Mlp,
        ModelKind::Cnn1d,
        ModelKind::Cnn2d,
        ModelKind::Lstm,
    ];
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Mlp => "mlp",
            ModelKind::Cnn1d => "cnn1d",
            ModelKind::Cnn2d => "cnn2d",
            ModelKind::Lstm => "lstm",
        }
    }
}

/// Hyper-parameters of every model (`[sinks.x.params]`); each model reads its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelParams {
    /// Dropout probability (all models).
    pub dropout: f64,
    /// `mlp`: hidden units (300, one layer).
    pub hidden: usize,
    /// `cnn1d`: filters per block (128, 64, 32).
    pub filters: Vec<usize>,
    /// `cnn1d` kernel (5), `cnn2d` kernel (3).
    pub kernel: usize,
    /// `cnn1d`: units of the dense layer before the output (64).
    pub dense: usize,
    /// `cnn2d`: channels per block (five blocks: 16, 32, 64, 64, 64).
    pub channels: Vec<usize>,
    /// `lstm`: hidden size (128) and the two fully connected layers' width (64).
    pub lstm_hidden: usize,
    pub fc: usize,
}

impl Default for ModelParams {
    fn default() -> Self {
        ModelParams {
            dropout: 0.3,
            hidden: 300,
            filters: vec![128, 64, 32],
            kernel: 5,
            dense: 64,
            channels: vec![16, 32, 64, 64, 64],
            lstm_hidden: 128,
            fc: 64,
        }
    }
}

/// Everything needed to build (and rebuild) a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub kind: ModelKind,
    /// Dimensions per frame of the input.
    pub input_dim: usize,
    pub classes: usize,
    pub params: ModelParams,
}

impl ModelConfig {
    /// Problems with the parameters for this model (empty when fine).
    pub fn check(&self) -> Vec<String> {
        let p = &self.params;
        let mut out = Vec::new();
        if !(0.0..1.0).contains(&p.dropout) {
            out.push(format!("dropout must be in [0, 1), got {}", p.dropout));
        }
        match self.kind {
            ModelKind::Cnn1d if p.filters.is_empty() || p.filters.contains(&0) => {
                out.push("filters must be a non-empty list of positive counts".into())
            }
            ModelKind::Cnn2d if p.channels.is_empty() || p.channels.contains(&0) => {
                out.push("channels must be a non-empty list of positive counts".into())
            }
            _ => {}
        }
        if p.kernel == 0 {
            out.push("kernel must be at least 1".into());
        }
        out
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> SerModel<B> {
        let p = &self.params;
        let drop = DropoutConfig::new(p.dropout).init();
        match self.kind {
            ModelKind::Mlp => SerModel::Mlp(Mlp {
                fc1: LinearConfig::new(self.input_dim, p.hidden).init(device),
                fc2: LinearConfig::new(p.hidden, self.classes).init(device),
                dropout: drop,
            }),
            ModelKind::Cnn1d => {
                let mut blocks = Vec::new();
                let mut c_in = self.input_dim;
                for &c in &p.filters {
                    blocks.push(Block1d {
                        conv: Conv1dConfig::new(c_in, c, p.kernel)
                            .with_padding(PaddingConfig1d::Same)
                            .init(device),
                        norm: BatchNormConfig::new(c).init(device),
                        pool: MaxPool1dConfig::new(2).with_stride(2).init(),
                        dropout: drop.clone(),
                    });
                    c_in = c;
                }
                SerModel::Cnn1d(Cnn1d {
                    blocks,
                    dense: LinearConfig::new(c_in, p.dense).init(device),
                    out: LinearConfig::new(p.dense, self.classes).init(device),
                    dropout: drop,
                })
            }
            ModelKind::Cnn2d => {
                let mut blocks = Vec::new();
                let mut c_in = 1;
                for &c in &p.channels {
                    blocks.push(Block2d {
                        conv: Conv2dConfig::new([c_in, c], [p.kernel, p.kernel])
                            .with_padding(PaddingConfig2d::Same)
                            .init(device),
                        pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
                        dropout: drop.clone(),
                    });
                    c_in = c;
                }
                SerModel::Cnn2d(Cnn2d {
                    blocks,
                    out: LinearConfig::new(c_in, self.classes).init(device),
                    fc: LinearConfig::new(c_in, c_in).init(device),
                    dropout: drop,
                })
            }
            ModelKind::Lstm => SerModel::Lstm(LstmNet {
                lstm: LstmConfig::new(self.input_dim, p.lstm_hidden, true).init(device),
                fc1: LinearConfig::new(p.lstm_hidden, p.fc).init(device),
                fc2: LinearConfig::new(p.fc, self.classes).init(device),
                dropout: drop,
            }),
        }
    }
}

/// ELU (alpha 1) as relu(x) + exp(min(x, 0)) − 1: the exponential never sees a
/// large positive input, so neither it nor its gradient overflows (burn's `elu`
/// evaluates both branches and its gradient became NaN in training).
pub fn elu<B: Backend, const D: usize>(x: Tensor<B, D>, alpha: f64) -> Tensor<B, D> {
    relu(x.clone()) + x.clamp_max(0.0).exp().sub_scalar(1.0).mul_scalar(alpha)
}

/// Masked mean over the last axis: `x: [b, c, t]`, `mask: [b, t]` → `[b, c]`.
pub fn masked_mean<B: Backend>(x: Tensor<B, 3>, mask: Tensor<B, 2>) -> Tensor<B, 2> {
    let m = mask.unsqueeze_dim::<3>(1);
    let n = m.clone().sum_dim(2).clamp_min(1.0);
    (x * m).sum_dim(2).div(n).squeeze_dim::<2>(2)
}

#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    fc1: Linear<B>,
    fc2: Linear<B>,
    dropout: Dropout,
}

#[derive(Module, Debug)]
pub struct Block1d<B: Backend> {
    conv: Conv1d<B>,
    norm: BatchNorm<B>,
    pool: MaxPool1d,
    dropout: Dropout,
}

#[derive(Module, Debug)]
pub struct Cnn1d<B: Backend> {
    blocks: Vec<Block1d<B>>,
    dense: Linear<B>,
    out: Linear<B>,
    dropout: Dropout,
}

#[derive(Module, Debug)]
pub struct Block2d<B: Backend> {
    conv: Conv2d<B>,
    pool: MaxPool2d,
    dropout: Dropout,
}

#[derive(Module, Debug)]
pub struct Cnn2d<B: Backend> {
    blocks: Vec<Block2d<B>>,
    fc: Linear<B>,
    out: Linear<B>,
    dropout: Dropout,
}

#[derive(Module, Debug)]
pub struct LstmNet<B: Backend> {
    lstm: Lstm<B>,
    fc1: Linear<B>,
    fc2: Linear<B>,
    dropout: Dropout,
}

/// One of the models.
#[derive(Module, Debug)]
pub enum SerModel<B: Backend> {
    Mlp(Mlp<B>),
    Cnn1d(Cnn1d<B>),
    Cnn2d(Cnn2d<B>),
    Lstm(LstmNet<B>),
}

impl<B: Backend> SerModel<B> {
    /// Logits `[batch, classes]` for `x: [batch, frames, dims]`, `mask: [batch, frames]`.
    pub fn forward(&self, x: Tensor<B, 3>, mask: Tensor<B, 2>) -> Tensor<B, 2> {
        let x = x * mask.clone().unsqueeze_dim::<3>(2);
        match self {
            SerModel::Mlp(m) => {
                // Time-pooled features (a pooled table has one frame per clip).
                let pooled = masked_mean(x.swap_dims(1, 2), mask);
                let h = m.dropout.forward(relu(m.fc1.forward(pooled)));
                m.fc2.forward(h)
            }
            SerModel::Cnn1d(m) => {
                let mut h = x.swap_dims(1, 2); // [b, d, t]
                let mut mk = mask;
                for b in &m.blocks {
                    h = relu(b.norm.forward(b.conv.forward(h)));
                    h = b.pool.forward(h);
                    mk = b.pool.forward(mk.unsqueeze_dim::<3>(1)).squeeze_dim::<2>(1);
                    h = b.dropout.forward(h) * mk.clone().unsqueeze_dim::<3>(1);
                }
                let pooled = masked_mean(h, mk);
                let d = m.dropout.forward(relu(m.dense.forward(pooled)));
                m.out.forward(d)
            }
            SerModel::Cnn2d(m) => {
                let mut h = x.unsqueeze_dim::<4>(1); // [b, 1, t, d]
                let mut mk = mask; // [b, t]
                let halve = MaxPool1dConfig::new(2).with_stride(2).init();
                for b in &m.blocks {
                    h = elu(b.conv.forward(h), 1.0);
                    let [_, _, t, d] = h.dims();
                    if t >= 2 && d >= 2 {
                        h = b.pool.forward(h);
                        mk = halve.forward(mk.unsqueeze_dim::<3>(1)).squeeze_dim::<2>(1);
                    }
                    let [bb, tm] = mk.dims();
                    h = b.dropout.forward(h) * mk.clone().reshape([bb, 1, tm, 1]);
                }
                // [b, c, t, d] → mean over d, masked mean over t.
                let [bb, c, t, _] = h.dims();
                let over_d = h.mean_dim(3).reshape([bb, c, t]);
                let pooled = masked_mean(over_d, mk);
                let f = m.dropout.forward(elu(m.fc.forward(pooled), 1.0));
                m.out.forward(f)
            }
            SerModel::Lstm(m) => {
                let (out, _) = m.lstm.forward(x, None); // [b, t, h]
                // The state at each sequence's last real frame.
                let [b, t, _] = out.dims();
                let lengths = mask.clone().sum_dim(1); // [b, 1]
                let idx = Tensor::<B, 1, Int>::arange(0..t as i64, &out.device())
                    .float()
                    .reshape([1, t])
                    .expand([b, t]);
                let last = idx.equal(lengths.sub_scalar(1.0).expand([b, t])).float();
                let h = (out * last.unsqueeze_dim::<3>(2))
                    .sum_dim(1)
                    .squeeze_dim::<2>(1);
                let f = m.dropout.forward(relu(m.fc1.forward(h)));
                m.fc2.forward(f)
            }
        }
    }
}
