//! The recipe of a `train` sink ([`TrainConfig`]): model, features, optimizer,
//! schedule, regularization, split or CV, ensemble, reuse, device — what a pipeline
//! file says under `[sinks.ID]` with `kind = "train"`, parsed with serde
//! (`deny_unknown_fields`) and validated by the operator (`ops/train.rs`). The keys
//! are documented in `ops/train.rs` and docs/models.md.

use serde::{Deserialize, Serialize};

use super::data::{Masking, Normalize};
pub use super::device::DeviceChoice;
use super::model::{ModelKind, ModelSpec};
use super::split::{Cv, Split};
use super::training::{Checkpoint, ClassWeights, Schedule, TrainSettings};

/// `early_stopping = { patience = N }`.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopping {
    /// Stop after this many epochs without a lower validation loss.
    pub patience: usize,
}

/// Config of the `train` sink.
///
/// ```toml
/// [sinks.model]
/// kind = "train"
/// input = "feats"                 # a features table: a parquet source or a features stage
/// model = "attention_fcn"
/// features = ["log_mel"]
/// normalize = "speaker"
/// epochs = 30
/// batch_size = 32
/// learning_rate = 1e-3
/// schedule = "cosine"
/// class_weights = "balanced"
/// cv = { by = "speaker", folds = 10, valid = 0, final = true }
/// seed = 7
/// out = "../runs/emodb-attention_fcn"
/// [sinks.model.params]
/// dropout = 0.3
/// ```
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub model: ModelKind,
    /// Feature columns, concatenated per frame (`ssl_finetune`: the audio's
    /// `samples`, the default there).
    #[serde(default)]
    pub features: Vec<String>,
    /// `ssl_finetune`: the Hugging Face checkpoint folder to fine-tune.
    pub encoder: Option<String>,
    /// Batches whose gradients are summed before one optimizer step.
    #[serde(default = "d_ensemble")]
    pub grad_accumulation: usize,
    /// Training epochs (the most; with `early_stopping`, fewer).
    #[serde(default = "d_epochs")]
    pub epochs: usize,
    /// Clips per training batch.
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Peak learning rate of AdamW.
    #[serde(default = "d_lr")]
    pub learning_rate: f64,
    /// AdamW weight decay.
    #[serde(default = "d_wd")]
    pub weight_decay: f64,
    #[serde(default)]
    pub schedule: Schedule,
    /// Epochs of linear learning-rate warmup before the `schedule`.
    #[serde(default)]
    pub warmup_epochs: usize,
    /// `schedule = "step"`: epochs between halvings.
    #[serde(default = "d_step")]
    pub step_epochs: usize,
    #[serde(default)]
    pub class_weights: ClassWeights,
    pub early_stopping: Option<EarlyStopping>,
    /// Clip the gradient norm to this value (default: no clipping).
    pub grad_clip: Option<f32>,
    /// Frames per clip at most: longer clips are cut to their first frames.
    #[serde(default = "d_max_frames")]
    pub max_frames: usize,
    pub split: Option<Split>,
    pub cv: Option<Cv>,
    /// Class order (default: the sorted labels of the table).
    pub labels: Option<Vec<String>>,
    /// Seed of initialization, batch order and augmentation draws; CPU training is
    /// deterministic given the table's content and the settings.
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub device: DeviceChoice,
    /// Output folder of the model (or of the CV run: `fold-K/` per fold, `cv.json`,
    /// `metrics.json`), relative to the pipeline file.
    pub out: String,
    /// The model's hyper-parameters (`[sinks.x.params]`; each model's keys and
    /// defaults are in docs/models.md), checked against the model's own config
    /// type at validation.
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, serde_json::Value>")]
    pub params: toml::Table,
    /// `"global"` (default) or `"speaker"`: z-normalize each group (speaker)
    /// with its own statistics first (docs/models.md).
    #[serde(default)]
    pub normalize: Normalize,
    /// SpecAugment-style masking of training batches:
    /// `spec_mask = { time = 2, time_width = 20, feature = 2, feature_width = 6 }`
    /// (every key optional, these are the defaults).
    pub spec_mask: Option<Masking>,
    /// Label smoothing ε in [0, 1) of the training loss (0 = off).
    #[serde(default)]
    pub label_smoothing: f32,
    /// `mixup = { alpha = 0.2 }`: mix training batches with λ ~ Beta(α, α).
    pub mixup: Option<Mixup>,
    /// `crop = { frames = 150 }`: train on a random window of each clip every
    /// epoch (validation and test see whole clips).
    pub crop: Option<Crop>,
    /// `"best"` (lowest validation loss, default) or `"last"` epoch.
    #[serde(default)]
    pub checkpoint: Checkpoint,
    /// Train this many models (seeds seed, seed + 1, ...) and average their
    /// class probabilities (default 1).
    #[serde(default = "d_ensemble")]
    pub ensemble: usize,
    /// Augmented rows (a `variant` column from the `augment` stage): which
    /// variants train and how. Validation and test always use `clean` rows only.
    #[serde(default)]
    pub variants: Variants,
    /// Finished runs whose ensemble members stand in for training: a member of
    /// this run (seed s) is loaded from `RUN/fold-K` (`RUN` for a `split`) when that
    /// fold was trained on the same rows, standardizer, model and settings apart
    /// from `seed` and `ensemble`, and holds a member of seed s. Grows an ensemble
    /// without retraining the members it already has.
    #[serde(default)]
    pub reuse: Vec<String>,
}

/// `mixup = { alpha = 0.2 }`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mixup {
    /// α of the Beta(α, α) distribution λ is drawn from.
    pub alpha: f64,
}

/// `crop = { frames = 150 }`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Crop {
    /// Frames of the random training window.
    pub frames: usize,
}

/// How a table with a `variant` column (the `augment` stage) trains.
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Variants {
    /// Variants whose rows train (default: every variant in the table).
    pub train: Option<Vec<String>>,
    /// `"all"` (default): every variant row is a training example, so an epoch
    /// sees each clip once per variant; `"sample"`: each epoch trains one randomly
    /// drawn variant of every clip (same epoch cost as without augmentation).
    #[serde(default)]
    pub mode: VariantMode,
}

/// See [`Variants::mode`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum VariantMode {
    #[default]
    All,
    Sample,
}

fn d_ensemble() -> usize {
    1
}

fn d_epochs() -> usize {
    60
}
fn d_batch() -> usize {
    32
}
fn d_lr() -> f64 {
    1e-3
}
fn d_wd() -> f64 {
    1e-4
}
fn d_step() -> usize {
    20
}
fn d_max_frames() -> usize {
    2000
}

impl TrainConfig {
    /// The training loop's settings.
    pub fn settings(&self) -> TrainSettings {
        TrainSettings {
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            weight_decay: self.weight_decay,
            schedule: self.schedule,
            warmup_epochs: self.warmup_epochs,
            step_epochs: self.step_epochs,
            class_weights: self.class_weights,
            patience: self.early_stopping.as_ref().map(|e| e.patience),
            grad_clip: self.grad_clip,
            max_frames: self.max_frames,
            seed: self.seed,
            spec_mask: self.spec_mask,
            label_smoothing: self.label_smoothing,
            mixup: self.mixup.map(|m| m.alpha),
            crop_frames: self.crop.map(|c| c.frames),
            checkpoint: self.checkpoint,
            sample_variants: self.variants.mode == VariantMode::Sample,
            ensemble: self.ensemble,
            grad_accumulation: self.grad_accumulation,
        }
    }

    /// The columns examples are made of: `features`, or for `ssl_finetune`
    /// without them the audio's `samples`.
    pub fn feature_columns(&self) -> Vec<String> {
        if self.model == ModelKind::SslFinetune && self.features.is_empty() {
            vec![crate::schema::col::SAMPLES.to_string()]
        } else {
            self.features.clone()
        }
    }

    /// `model` with its `params`, parsed strictly: each key that does not apply to
    /// the model, or has a bad value, comes back as (key, message).
    pub fn model_spec(&self) -> Result<ModelSpec, Vec<(String, String)>> {
        let v =
            serde_json::to_value(&self.params).map_err(|e| vec![(String::new(), e.to_string())])?;
        ModelSpec::parse(self.model, &v)
    }

    /// The column the split or the folds group by (`speaker`), if any.
    pub fn group_column(&self) -> Option<&str> {
        match (&self.split, &self.cv) {
            (Some(s), _) if s.by != "random" => Some(&s.by),
            (_, Some(c)) => Some(&c.by),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_with_defaults() {
        let c: TrainConfig = toml::from_str(
            r#"model = "cnn1d"
features = ["stacked"]
out = "runs/x"
cv = { by = "speaker", folds = 10 }
[params]
dropout = 0.2
"#,
        )
        .unwrap();
        assert_eq!(c.epochs, 60);
        let Ok(crate::train::model::ModelSpec::Cnn1d(p)) = c.model_spec() else {
            panic!("not a cnn1d: {:?}", c.model_spec());
        };
        assert_eq!(p.filters, vec![128, 64, 32]);
        assert_eq!(p.dropout, 0.2);
    }

    #[test]
    fn a_key_of_another_model_is_refused_by_name() {
        let c: TrainConfig = toml::from_str(
            "model = \"mlp\"\nfeatures = [\"x\"]\nout = \"o\"\n[params]\nhidden = 8\nheads = 2\n",
        )
        .unwrap();
        let e = c.model_spec().unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, "heads");
        assert!(
            e[0].1.contains("does not apply to model `mlp`"),
            "{}",
            e[0].1
        );
        assert!(e[0].1.contains("dropout, hidden"), "{}", e[0].1);
        // A bad value of a key the model has names the key too.
        let c: TrainConfig = toml::from_str(
            "model = \"cnn1d\"\nfeatures = [\"x\"]\nout = \"o\"\n[params]\nfilters = \"many\"\n",
        )
        .unwrap();
        let e = c.model_spec().unwrap_err();
        assert!(e[0].1.contains("filters") || e[0].0 == "filters", "{e:?}");
    }
}
