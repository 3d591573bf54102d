//! The literature's SER models as burn modules, each built from a serde config
//! whose defaults follow the paper it comes from (docs/models.md).
//!
//! Every model takes `x: [batch, frames, dims]` and `mask: [batch, frames]` (1.0 on
//! real frames, 0.0 on padding) and returns logits `[batch, classes]`. Padding never
//! reaches the output: inputs are zeroed on padded frames, convolution outputs are
//! re-masked after every block (the mask is pooled like the signal), pooling over
//! time is a masked mean, and the LSTM reads its state at each sequence's last real
//! frame.

use burn::module::{Initializer, Param};
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::pool::{MaxPool1d, MaxPool1dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::transformer::{
    TransformerDecoder, TransformerDecoderConfig, TransformerDecoderInput,
};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, Lstm, LstmConfig,
    PaddingConfig1d,
};
use burn::prelude::*;
use burn::tensor::activation::{relu, softmax};
use serde::{Deserialize, Serialize};

use super::conv::{GemmConv1d, GemmConv2d, GemmConv2dConfig};
pub use super::finetune::{EncoderSpec, SslFinetune, SslFinetuneParams};

/// Which model (`model = "..."` in a `train` sink).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Mlp,
    Cnn1d,
    Cnn2d,
    Lstm,
    AttentionFcn,
    Q2l,
    SslHead,
    SslFinetune,
}

impl ModelKind {
    pub const ALL: [ModelKind; 8] = [
        ModelKind::Mlp,
        ModelKind::Cnn1d,
        ModelKind::Cnn2d,
        ModelKind::Lstm,
        ModelKind::AttentionFcn,
        ModelKind::Q2l,
        ModelKind::SslHead,
        ModelKind::SslFinetune,
    ];
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Mlp => "mlp",
            ModelKind::Cnn1d => "cnn1d",
            ModelKind::Cnn2d => "cnn2d",
            ModelKind::Lstm => "lstm",
            ModelKind::AttentionFcn => "attention_fcn",
            ModelKind::Q2l => "q2l",
            ModelKind::SslHead => "ssl_head",
            ModelKind::SslFinetune => "ssl_finetune",
        }
    }
}

/// Time pooling of `cnn1d` / `cnn2d` (`params.pooling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    #[default]
    Mean,
    MeanStd,
}

/// Default dropout of every model.
fn d_dropout() -> f64 {
    0.3
}
fn d_kernel() -> usize {
    5
}

/// `mlp` (`[sinks.x.params]`): one hidden layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlpParams {
    /// Dropout probability (0.3).
    pub dropout: f64,
    /// Hidden units (300).
    pub hidden: usize,
}

impl Default for MlpParams {
    fn default() -> Self {
        MlpParams {
            dropout: d_dropout(),
            hidden: 300,
        }
    }
}

/// `cnn1d`: convolution blocks over time, a dense layer, the output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cnn1dParams {
    /// Dropout probability (0.3).
    pub dropout: f64,
    /// Filters per block (128, 64, 32).
    pub filters: Vec<usize>,
    /// Kernel width (5).
    pub kernel: usize,
    /// Units of the dense layer before the output (64).
    pub dense: usize,
    /// How the last feature map is pooled over time: `"mean"` (masked average, the
    /// papers') or `"mean_std"` (masked mean and standard deviation concatenated:
    /// statistics pooling, as in x-vector networks).
    pub pooling: Pooling,
}

impl Default for Cnn1dParams {
    fn default() -> Self {
        Cnn1dParams {
            dropout: d_dropout(),
            filters: vec![128, 64, 32],
            kernel: d_kernel(),
            dense: 64,
            pooling: Pooling::Mean,
        }
    }
}

/// `cnn2d`: 2-D convolution blocks over (time, frequency).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cnn2dParams {
    /// Dropout probability (0.3).
    pub dropout: f64,
    /// Channels per block (five blocks: 16, 32, 64, 64, 64).
    pub channels: Vec<usize>,
    /// Kernel size (5 × 5).
    pub kernel: usize,
    /// Time pooling of the last feature map (`"mean"` | `"mean_std"`).
    pub pooling: Pooling,
}

impl Default for Cnn2dParams {
    fn default() -> Self {
        Cnn2dParams {
            dropout: d_dropout(),
            channels: vec![16, 32, 64, 64, 64],
            kernel: d_kernel(),
            pooling: Pooling::Mean,
        }
    }
}

/// `lstm`: one LSTM layer, two fully connected layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LstmParams {
    /// Dropout probability (0.3).
    pub dropout: f64,
    /// LSTM hidden size (128).
    pub lstm_hidden: usize,
    /// Width of the fully connected layer (64).
    pub fc: usize,
}

impl Default for LstmParams {
    fn default() -> Self {
        LstmParams {
            dropout: d_dropout(),
            lstm_hidden: 128,
            fc: 64,
        }
    }
}

/// `attention_fcn`: a fully convolutional encoder with attention pooling (Zhang et
/// al. 2019).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttentionFcnParams {
    /// Dropout probability (0.3).
    pub dropout: f64,
    /// Channels of the encoder (five blocks, AlexNet's layout narrowed: 32, 64,
    /// 96, 96, 64).
    pub fcn_channels: Vec<usize>,
    /// Kernel size (5 × 5).
    pub kernel: usize,
    /// Attention size (64).
    pub attention_dim: usize,
    /// Softmax sharpness λ (0.3).
    pub lambda: f64,
}

impl Default for AttentionFcnParams {
    fn default() -> Self {
        AttentionFcnParams {
            dropout: d_dropout(),
            fcn_channels: vec![32, 64, 96, 96, 64],
            kernel: d_kernel(),
            attention_dim: 64,
            lambda: 0.3,
        }
    }
}

/// `q2l`: Query2Label, a transformer decoder with one query per class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Q2lParams {
    /// Dropout probability (0.3).
    pub dropout: f64,
    /// Model width (128).
    pub d_model: usize,
    /// Attention heads (4).
    pub heads: usize,
    /// Feed-forward width (256).
    pub d_ff: usize,
    /// Decoder layers (1).
    pub layers: usize,
}

impl Default for Q2lParams {
    fn default() -> Self {
        Q2lParams {
            dropout: d_dropout(),
            d_model: 128,
            heads: 4,
            d_ff: 256,
            layers: 1,
        }
    }
}

/// `ssl_head`: the SUPERB downstream head on stored encoder hidden states
/// (an `embed` table): a learned softmax-weighted sum of the layers, a linear
/// projector per frame, a masked mean over frames, a linear classifier — the
/// head of transformers' `*ForSequenceClassification` with
/// `use_weighted_layer_sum` (parity-tested on its weights).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SslHeadParams {
    pub dropout: f64,
    /// Projector width (SUPERB and transformers' `classifier_proj_size`: 256).
    pub projector: usize,
    /// Hidden states stacked per frame (one per feature column, `layer_K`);
    /// 0 = one per column of the train sink's `features`.
    pub layers: usize,
}

impl Default for SslHeadParams {
    fn default() -> Self {
        SslHeadParams {
            dropout: 0.0,
            projector: 256,
            layers: 0,
        }
    }
}

/// A model and its hyper-parameters: one config type per model, so a key that
/// does not apply to the chosen model is refused by name instead of ignored.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSpec {
    Mlp(MlpParams),
    Cnn1d(Cnn1dParams),
    Cnn2d(Cnn2dParams),
    Lstm(LstmParams),
    AttentionFcn(AttentionFcnParams),
    Q2l(Q2lParams),
    SslHead(SslHeadParams),
    SslFinetune(SslFinetuneParams),
}

/// The keys of a params struct, from its serialized default.
fn keys_of<T: Serialize + Default>() -> Vec<String> {
    match serde_json::to_value(T::default()) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

impl ModelSpec {
    /// The defaults of `kind`.
    pub fn default_of(kind: ModelKind) -> ModelSpec {
        match kind {
            ModelKind::Mlp => ModelSpec::Mlp(Default::default()),
            ModelKind::Cnn1d => ModelSpec::Cnn1d(Default::default()),
            ModelKind::Cnn2d => ModelSpec::Cnn2d(Default::default()),
            ModelKind::Lstm => ModelSpec::Lstm(Default::default()),
            ModelKind::AttentionFcn => ModelSpec::AttentionFcn(Default::default()),
            ModelKind::Q2l => ModelSpec::Q2l(Default::default()),
            ModelKind::SslHead => ModelSpec::SslHead(Default::default()),
            ModelKind::SslFinetune => ModelSpec::SslFinetune(Default::default()),
        }
    }

    pub fn kind(&self) -> ModelKind {
        match self {
            ModelSpec::Mlp(_) => ModelKind::Mlp,
            ModelSpec::Cnn1d(_) => ModelKind::Cnn1d,
            ModelSpec::Cnn2d(_) => ModelKind::Cnn2d,
            ModelSpec::Lstm(_) => ModelKind::Lstm,
            ModelSpec::AttentionFcn(_) => ModelKind::AttentionFcn,
            ModelSpec::Q2l(_) => ModelKind::Q2l,
            ModelSpec::SslHead(_) => ModelKind::SslHead,
            ModelSpec::SslFinetune(_) => ModelKind::SslFinetune,
        }
    }

    /// The keys `[params]` of `kind` accepts, sorted.
    pub fn keys(kind: ModelKind) -> Vec<String> {
        match kind {
            ModelKind::Mlp => keys_of::<MlpParams>(),
            ModelKind::Cnn1d => keys_of::<Cnn1dParams>(),
            ModelKind::Cnn2d => keys_of::<Cnn2dParams>(),
            ModelKind::Lstm => keys_of::<LstmParams>(),
            ModelKind::AttentionFcn => keys_of::<AttentionFcnParams>(),
            ModelKind::Q2l => keys_of::<Q2lParams>(),
            ModelKind::SslHead => keys_of::<SslHeadParams>(),
            ModelKind::SslFinetune => keys_of::<SslFinetuneParams>(),
        }
    }

    /// The parameters of `kind` from a `[params]` value (a JSON object), strictly:
    /// every problem is returned as (key, message); a key of another model is
    /// refused with its name and the keys this model has.
    pub fn parse(
        kind: ModelKind,
        params: &serde_json::Value,
    ) -> Result<ModelSpec, Vec<(String, String)>> {
        let empty = serde_json::Map::new();
        let obj = match params {
            serde_json::Value::Object(m) => m,
            serde_json::Value::Null => &empty,
            other => {
                return Err(vec![(
                    String::new(),
                    format!("must be a table, got {other}"),
                )]);
            }
        };
        let known = Self::keys(kind);
        let foreign: Vec<(String, String)> = obj
            .keys()
            .filter(|k| !known.contains(k))
            .map(|k| {
                (
                    k.clone(),
                    format!(
                        "does not apply to model `{}` (its keys: {})",
                        kind.name(),
                        known.join(", ")
                    ),
                )
            })
            .collect();
        if !foreign.is_empty() {
            return Err(foreign);
        }
        Self::from_object(kind, serde_json::Value::Object(obj.clone())).map_err(|e| {
            // Name the keys at fault: each one alone over the defaults.
            let bad: Vec<(String, String)> = obj
                .iter()
                .filter_map(|(k, v)| {
                    let one =
                        serde_json::Value::Object([(k.clone(), v.clone())].into_iter().collect());
                    Self::from_object(kind, one).err().map(|e| (k.clone(), e))
                })
                .collect();
            if bad.is_empty() {
                vec![(String::new(), e)]
            } else {
                bad
            }
        })
    }

    /// The parameters of `kind` from a model folder's `config.json`, leniently:
    /// keys of other models are dropped (folders written before each model had its
    /// own config type carry every model's keys).
    pub fn from_artifact(kind: ModelKind, params: &serde_json::Value) -> Result<ModelSpec, String> {
        let known = Self::keys(kind);
        let kept: serde_json::Map<String, serde_json::Value> = match params {
            serde_json::Value::Object(m) => m
                .iter()
                .filter(|(k, _)| known.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            _ => serde_json::Map::new(),
        };
        Self::from_object(kind, serde_json::Value::Object(kept))
    }

    fn from_object(kind: ModelKind, v: serde_json::Value) -> Result<ModelSpec, String> {
        fn de<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, String> {
            serde_json::from_value(v).map_err(|e| e.to_string())
        }
        Ok(match kind {
            ModelKind::Mlp => ModelSpec::Mlp(de(v)?),
            ModelKind::Cnn1d => ModelSpec::Cnn1d(de(v)?),
            ModelKind::Cnn2d => ModelSpec::Cnn2d(de(v)?),
            ModelKind::Lstm => ModelSpec::Lstm(de(v)?),
            ModelKind::AttentionFcn => ModelSpec::AttentionFcn(de(v)?),
            ModelKind::Q2l => ModelSpec::Q2l(de(v)?),
            ModelKind::SslHead => ModelSpec::SslHead(de(v)?),
            ModelKind::SslFinetune => ModelSpec::SslFinetune(de(v)?),
        })
    }

    /// The parameters as a JSON object (`config.json`'s `params`).
    pub fn params_json(&self) -> serde_json::Value {
        let v = match self {
            ModelSpec::Mlp(p) => serde_json::to_value(p),
            ModelSpec::Cnn1d(p) => serde_json::to_value(p),
            ModelSpec::Cnn2d(p) => serde_json::to_value(p),
            ModelSpec::Lstm(p) => serde_json::to_value(p),
            ModelSpec::AttentionFcn(p) => serde_json::to_value(p),
            ModelSpec::Q2l(p) => serde_json::to_value(p),
            ModelSpec::SslHead(p) => serde_json::to_value(p),
            ModelSpec::SslFinetune(p) => serde_json::to_value(p),
        };
        v.unwrap_or(serde_json::Value::Null)
    }

    /// Dropout probability (every model has one).
    pub fn dropout(&self) -> f64 {
        match self {
            ModelSpec::Mlp(p) => p.dropout,
            ModelSpec::Cnn1d(p) => p.dropout,
            ModelSpec::Cnn2d(p) => p.dropout,
            ModelSpec::Lstm(p) => p.dropout,
            ModelSpec::AttentionFcn(p) => p.dropout,
            ModelSpec::Q2l(p) => p.dropout,
            ModelSpec::SslHead(p) => p.dropout,
            ModelSpec::SslFinetune(p) => p.dropout,
        }
    }

    /// Time pooling, for the models that have the choice.
    pub fn pooling(&self) -> Option<Pooling> {
        match self {
            ModelSpec::Cnn1d(p) => Some(p.pooling),
            ModelSpec::Cnn2d(p) => Some(p.pooling),
            _ => None,
        }
    }
}

/// Everything needed to build (and rebuild) a model. In `config.json` it reads
/// `{"kind": "cnn1d", "input_dim": .., "classes": .., "params": {..}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawModelConfig", into = "RawModelConfig")]
pub struct ModelConfig {
    pub spec: ModelSpec,
    /// Dimensions per frame of the input.
    pub input_dim: usize,
    pub classes: usize,
    /// `ssl_finetune`: the pretrained encoder it starts from (its configs and
    /// identity), so the model rebuilds without the checkpoint folder.
    pub encoder: Option<EncoderSpec>,
}

/// [`ModelConfig`] as stored.
#[derive(Serialize, Deserialize)]
struct RawModelConfig {
    kind: ModelKind,
    input_dim: usize,
    classes: usize,
    #[serde(default)]
    params: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encoder: Option<EncoderSpec>,
}

impl TryFrom<RawModelConfig> for ModelConfig {
    type Error = String;
    fn try_from(r: RawModelConfig) -> Result<Self, String> {
        Ok(ModelConfig {
            spec: ModelSpec::from_artifact(r.kind, &r.params)?,
            input_dim: r.input_dim,
            classes: r.classes,
            encoder: r.encoder,
        })
    }
}

impl From<ModelConfig> for RawModelConfig {
    fn from(c: ModelConfig) -> Self {
        RawModelConfig {
            kind: c.kind(),
            input_dim: c.input_dim,
            classes: c.classes,
            params: c.spec.params_json(),
            encoder: c.encoder,
        }
    }
}

fn positive_counts(v: &[usize]) -> bool {
    !v.is_empty() && !v.contains(&0)
}

impl ModelConfig {
    pub fn kind(&self) -> ModelKind {
        self.spec.kind()
    }

    /// Problems with the parameters for this model (empty when fine).
    pub fn check(&self) -> Vec<String> {
        let mut out = Vec::new();
        let dropout = self.spec.dropout();
        if !(0.0..1.0).contains(&dropout) {
            out.push(format!("dropout must be in [0, 1), got {dropout}"));
        }
        match &self.spec {
            ModelSpec::Cnn1d(p) => {
                if !positive_counts(&p.filters) {
                    out.push("filters must be a non-empty list of positive counts".into())
                }
            }
            ModelSpec::Cnn2d(p) => {
                if !positive_counts(&p.channels) {
                    out.push("channels must be a non-empty list of positive counts".into())
                }
            }
            ModelSpec::AttentionFcn(p) => {
                if !positive_counts(&p.fcn_channels) {
                    out.push("fcn_channels must be a non-empty list of positive counts".into())
                }
                if p.attention_dim == 0 {
                    out.push("attention_dim must be at least 1".into())
                }
                if !(p.lambda.is_finite() && p.lambda > 0.0) {
                    out.push(format!("lambda must be positive, got {}", p.lambda))
                }
            }
            ModelSpec::Q2l(p) => {
                if p.d_model == 0 || p.heads == 0 || !p.d_model.is_multiple_of(p.heads) {
                    out.push(format!(
                        "d_model ({}) must be a positive multiple of heads ({})",
                        p.d_model, p.heads
                    ))
                }
                if p.d_ff == 0 || p.layers == 0 {
                    out.push("d_ff and layers must be at least 1".into())
                }
            }
            ModelSpec::SslHead(p) => {
                if p.projector == 0 {
                    out.push("projector must be at least 1".into())
                }
                if p.layers > 0 && !self.input_dim.is_multiple_of(p.layers) {
                    out.push(format!(
                        "{} values per frame do not split into {} layers of equal width",
                        self.input_dim, p.layers
                    ))
                }
            }
            ModelSpec::SslFinetune(p) => {
                out.extend(p.check());
                if self.encoder.is_none() {
                    out.push(
                        "ssl_finetune needs its pretrained encoder (the train sink's `encoder`)"
                            .into(),
                    )
                }
                if self.input_dim != 1 {
                    out.push(format!(
                        "ssl_finetune takes raw audio (one value per sample), not {} values per frame",
                        self.input_dim
                    ))
                }
            }
            ModelSpec::Mlp(_) | ModelSpec::Lstm(_) => {}
        }
        let kernel = match &self.spec {
            ModelSpec::Cnn1d(p) => Some(p.kernel),
            ModelSpec::Cnn2d(p) => Some(p.kernel),
            ModelSpec::AttentionFcn(p) => Some(p.kernel),
            _ => None,
        };
        if kernel == Some(0) {
            out.push("kernel must be at least 1".into());
        }
        out
    }

    /// The model to train: [`ModelConfig::init`], except that `ssl_finetune`
    /// starts from its pretrained encoder (read from the checkpoint folder).
    pub fn init_training<B: Backend>(&self, device: &B::Device) -> Result<SerModel<B>, String> {
        match (&self.spec, &self.encoder) {
            (ModelSpec::SslFinetune(p), Some(e)) => Ok(SerModel::SslFinetune(
                super::finetune::pretrained(e, p, self.classes, device)?,
            )),
            (ModelSpec::SslFinetune(_), None) => {
                Err("ssl_finetune needs its pretrained encoder (the train sink's `encoder`)".into())
            }
            _ => Ok(self.init(device)),
        }
    }

    /// The model with fresh weights (`ssl_finetune`: a zero encoder, for a
    /// record to fill). Call [`ModelConfig::check`] first.
    pub fn init<B: Backend>(&self, device: &B::Device) -> SerModel<B> {
        let drop = DropoutConfig::new(self.spec.dropout()).init();
        match &self.spec {
            ModelSpec::Mlp(p) => SerModel::Mlp(Mlp {
                fc1: LinearConfig::new(self.input_dim, p.hidden).init(device),
                fc2: LinearConfig::new(p.hidden, self.classes).init(device),
                dropout: drop,
            }),
            ModelSpec::Cnn1d(p) => {
                let mut blocks = Vec::new();
                let mut c_in = self.input_dim;
                for &c in &p.filters {
                    blocks.push(Block1d {
                        conv: GemmConv1d::new(c_in, c, p.kernel, device),
                        norm: BatchNormConfig::new(c).init(device),
                        pool: MaxPool1dConfig::new(2).with_stride(2).init(),
                        dropout: drop.clone(),
                    });
                    c_in = c;
                }
                let std_pool = p.pooling == Pooling::MeanStd;
                let pooled = if std_pool { 2 * c_in } else { c_in };
                SerModel::Cnn1d(Cnn1d {
                    blocks,
                    std_pool,
                    dense: LinearConfig::new(pooled, p.dense).init(device),
                    out: LinearConfig::new(p.dense, self.classes).init(device),
                    dropout: drop,
                })
            }
            ModelSpec::Cnn2d(p) => {
                let mut blocks = Vec::new();
                let mut c_in = 1;
                for &c in &p.channels {
                    blocks.push(Block2d {
                        conv: GemmConv2dConfig::new([c_in, c], [p.kernel, p.kernel]).init(device),
                        pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
                        dropout: drop.clone(),
                    });
                    c_in = c;
                }
                let std_pool = p.pooling == Pooling::MeanStd;
                let pooled = if std_pool { 2 * c_in } else { c_in };
                SerModel::Cnn2d(Cnn2d {
                    blocks,
                    std_pool,
                    out: LinearConfig::new(c_in, self.classes).init(device),
                    fc: LinearConfig::new(pooled, c_in).init(device),
                    dropout: drop,
                })
            }
            ModelSpec::Lstm(p) => SerModel::Lstm(LstmNet {
                lstm: LstmConfig::new(self.input_dim, p.lstm_hidden, true).init(device),
                fc1: LinearConfig::new(p.lstm_hidden, p.fc).init(device),
                fc2: LinearConfig::new(p.fc, self.classes).init(device),
                dropout: drop,
            }),
            ModelSpec::AttentionFcn(p) => {
                let mut blocks = Vec::new();
                let mut c_in = 1;
                for &c in &p.fcn_channels {
                    blocks.push(FcnBlock {
                        conv: GemmConv2dConfig::new([c_in, c], [p.kernel, p.kernel]).init(device),
                        norm: BatchNormConfig::new(c).init(device),
                        pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
                    });
                    c_in = c;
                }
                SerModel::AttentionFcn(AttentionFcn {
                    blocks,
                    w: LinearConfig::new(c_in, p.attention_dim).init(device),
                    u: LinearConfig::new(p.attention_dim, 1)
                        .with_bias(false)
                        .init(device),
                    out: LinearConfig::new(c_in, self.classes).init(device),
                    dropout: drop,
                    lambda: p.lambda,
                })
            }
            ModelSpec::SslHead(p) => {
                let layers = p.layers.max(1);
                let hidden = self.input_dim / layers;
                SerModel::SslHead(SslHead {
                    // transformers initializes the weights equal: a plain mean.
                    layer_weights: Initializer::Ones.init([layers], device),
                    projector: LinearConfig::new(hidden, p.projector).init(device),
                    classifier: LinearConfig::new(p.projector, self.classes).init(device),
                    dropout: drop,
                    layers,
                })
            }
            ModelSpec::SslFinetune(p) => SerModel::SslFinetune(super::finetune::skeleton(
                self.encoder
                    .as_ref()
                    .expect("ModelConfig::check refuses ssl_finetune without its encoder"),
                p,
                self.classes,
                device,
            )),
            ModelSpec::Q2l(p) => SerModel::Q2l(Q2l {
                proj: Conv1dConfig::new(self.input_dim, p.d_model, 3)
                    .with_padding(PaddingConfig1d::Same)
                    .init(device),
                queries: Initializer::Normal {
                    mean: 0.0,
                    std: 0.02,
                }
                .init([self.classes, p.d_model], device),
                decoder: TransformerDecoderConfig::new(p.d_model, p.d_ff, p.heads, p.layers)
                    .with_dropout(p.dropout)
                    .init(device),
                // Query2Label's group fully connected layer: one linear map per class.
                head_w: Initializer::Normal {
                    mean: 0.0,
                    std: 1.0 / (p.d_model as f64).sqrt(),
                }
                .init([self.classes, p.d_model], device),
                head_b: Initializer::Zeros.init([self.classes], device),
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

/// Masked mean and standard deviation over the last axis, concatenated:
/// `x: [b, c, t]`, `mask: [b, t]` → `[b, 2c]` (std = sqrt(var + 1e-5)).
pub fn masked_mean_std<B: Backend>(x: Tensor<B, 3>, mask: Tensor<B, 2>) -> Tensor<B, 2> {
    let mean = masked_mean(x.clone(), mask.clone());
    let sq = masked_mean(x.clone() * x, mask);
    let std = (sq - mean.clone() * mean.clone())
        .clamp_min(0.0)
        .add_scalar(1e-5)
        .sqrt();
    Tensor::cat(vec![mean, std], 1)
}

/// Time pooling of the CNNs: mean, or mean and std ([`Pooling`]).
fn pool_time<B: Backend>(x: Tensor<B, 3>, mask: Tensor<B, 2>, std_pool: bool) -> Tensor<B, 2> {
    if std_pool {
        masked_mean_std(x, mask)
    } else {
        masked_mean(x, mask)
    }
}

#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    fc1: Linear<B>,
    fc2: Linear<B>,
    dropout: Dropout,
}

#[derive(Module, Debug)]
pub struct Block1d<B: Backend> {
    conv: GemmConv1d<B>,
    norm: BatchNorm<B>,
    pool: MaxPool1d,
    dropout: Dropout,
}

#[derive(Module, Debug)]
pub struct Cnn1d<B: Backend> {
    blocks: Vec<Block1d<B>>,
    std_pool: bool,
    dense: Linear<B>,
    out: Linear<B>,
    dropout: Dropout,
}

#[derive(Module, Debug)]
pub struct Block2d<B: Backend> {
    conv: GemmConv2d<B>,
    pool: MaxPool2d,
    dropout: Dropout,
}

#[derive(Module, Debug)]
pub struct Cnn2d<B: Backend> {
    blocks: Vec<Block2d<B>>,
    std_pool: bool,
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

#[derive(Module, Debug)]
pub struct FcnBlock<B: Backend> {
    conv: GemmConv2d<B>,
    norm: BatchNorm<B>,
    pool: MaxPool2d,
}

/// Fully convolutional encoder + attention pooling over its time-frequency cells
/// (Zhang et al. 2019): e_i = uᵀ tanh(W a_i + b), α = softmax(λ e).
#[derive(Module, Debug)]
pub struct AttentionFcn<B: Backend> {
    blocks: Vec<FcnBlock<B>>,
    w: Linear<B>,
    u: Linear<B>,
    out: Linear<B>,
    dropout: Dropout,
    lambda: f64,
}

/// The SUPERB head ([`SslHeadParams`]).
#[derive(Module, Debug)]
pub struct SslHead<B: Backend> {
    /// Softmax-normalized weights of the stacked hidden states.
    pub layer_weights: Param<Tensor<B, 1>>,
    pub projector: Linear<B>,
    pub classifier: Linear<B>,
    pub dropout: Dropout,
    pub layers: usize,
}

impl<B: Backend> SslHead<B> {
    /// `x: [b, t, layers·hidden]` (padding already zeroed), `mask: [b, t]`.
    pub fn forward(&self, x: Tensor<B, 3>, mask: Tensor<B, 2>) -> Tensor<B, 2> {
        let [b, t, d] = x.dims();
        let h = d / self.layers;
        let w = softmax(self.layer_weights.val(), 0).reshape([1, 1, self.layers, 1]);
        let mixed: Tensor<B, 3> = (x.reshape([b, t, self.layers, h]) * w)
            .sum_dim(2)
            .squeeze_dim(2);
        let p = self.projector.forward(mixed); // [b, t, projector]
        let pooled = masked_mean(p.swap_dims(1, 2), mask);
        self.classifier.forward(self.dropout.forward(pooled))
    }
}

/// Query2Label: learnable label queries cross-attend over projected frames in a
/// transformer decoder; one logit per class from its own query.
#[derive(Module, Debug)]
pub struct Q2l<B: Backend> {
    proj: Conv1d<B>,
    queries: Param<Tensor<B, 2>>,
    decoder: TransformerDecoder<B>,
    head_w: Param<Tensor<B, 2>>,
    head_b: Param<Tensor<B, 1>>,
}

/// One of the models.
// Built once per run; the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum SerModel<B: Backend> {
    Mlp(Mlp<B>),
    Cnn1d(Cnn1d<B>),
    Cnn2d(Cnn2d<B>),
    Lstm(LstmNet<B>),
    AttentionFcn(AttentionFcn<B>),
    Q2l(Q2l<B>),
    SslHead(SslHead<B>),
    SslFinetune(SslFinetune<B>),
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
                let pooled = pool_time(h, mk, m.std_pool);
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
                let pooled = pool_time(over_d, mk, m.std_pool);
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
            SerModel::AttentionFcn(m) => {
                let mut h = x.unsqueeze_dim::<4>(1); // [b, 1, t, d]
                let mut mk = mask; // [b, t]
                let halve = MaxPool1dConfig::new(2).with_stride(2).init();
                for b in &m.blocks {
                    h = relu(b.norm.forward(b.conv.forward(h)));
                    let [_, _, t, d] = h.dims();
                    if t >= 2 && d >= 2 {
                        h = b.pool.forward(h);
                        mk = halve.forward(mk.unsqueeze_dim::<3>(1)).squeeze_dim::<2>(1);
                    }
                    let [bb, tm] = mk.dims();
                    h = h * mk.clone().reshape([bb, 1, tm, 1]);
                }
                // Cells a_i: [b, t·d, c]; cells on padded frames get no weight.
                let [bb, c, t, d] = h.dims();
                let a = h.reshape([bb, c, t * d]).swap_dims(1, 2);
                let e =
                    m.u.forward(m.w.forward(a.clone()).tanh())
                        .reshape([bb, t * d]);
                let cell_mask = mk
                    .reshape([bb, t, 1])
                    .expand([bb, t, d])
                    .reshape([bb, t * d]);
                let e = e.mul_scalar(m.lambda) + (cell_mask - 1.0).mul_scalar(1e4);
                let alpha = softmax(e, 1); // [b, t·d]
                let pooled = (a * alpha.unsqueeze_dim::<3>(2))
                    .sum_dim(1)
                    .squeeze_dim::<2>(1);
                m.out.forward(m.dropout.forward(pooled))
            }
            SerModel::SslHead(m) => m.forward(x, mask),
            SerModel::SslFinetune(m) => m.forward(x, mask),
            SerModel::Q2l(m) => {
                let mem = m.proj.forward(x.swap_dims(1, 2)).swap_dims(1, 2); // [b, t, d_model]
                let [b, _, _] = mem.dims();
                let [k, dm] = m.queries.dims();
                let q = m.queries.val().unsqueeze_dim::<3>(0).expand([b, k, dm]);
                let pad = mask.lower_equal_elem(0.5); // true on padding
                let out = m
                    .decoder
                    .forward(TransformerDecoderInput::new(q, mem).memory_mask_pad(pad));
                (out * m.head_w.val().unsqueeze_dim::<3>(0))
                    .sum_dim(2)
                    .squeeze_dim::<2>(2)
                    + m.head_b.val().unsqueeze_dim::<2>(0)
            }
        }
    }
}
