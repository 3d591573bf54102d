//! `train` sink: trains one of the literature's SER models on a feature table,
//! with a speaker-independent split or cross-validation, and writes the artifacts.
//!
//! ```toml
//! [sinks.model]
//! kind = "train"
//! input = "feats"
//! model = "cnn1d"                  # mlp | cnn1d | cnn2d | lstm | attention_fcn | q2l
//! features = ["stacked"]           # feature columns, concatenated per frame
//! epochs = 60
//! batch_size = 32
//! learning_rate = 1e-3
//! weight_decay = 1e-4
//! schedule = "cosine"              # cosine | step | constant
//! warmup_epochs = 0
//! class_weights = "balanced"       # or "none"
//! early_stopping = { patience = 10 }
//! grad_clip = 1.0
//! split = { by = "speaker", test = ["03", "08"], valid = ["09"] }
//! # cv = { by = "speaker", folds = 10 }   (instead of split; folds = speakers: LOSO)
//! # cv = { by = "speaker", folds = 4, valid = 1, seed = 7 }  (seed deals the folds;
//! #   default: `seed` below, so runs of other training seeds deal other folds)
//! seed = 7
//! ensemble = 1                     # N models, seeds seed .. seed + N - 1, averaged
//! reuse = []                       # finished runs whose members stand in (train/reuse.rs)
//! device = "cpu"                   # cpu | cuda | auto (src/train/device.rs)
//! out = "runs/emodb-cnn1d"
//! [sinks.model.params]             # model hyper-parameters (docs/models.md)
//! dropout = 0.3
//! ```
//! Artifacts in `out` (per fold in `fold-K/` with `cv`): `model.mpk` (burn record),
//! `config.json` (model config, labels in order, feature columns and settings, the
//! standardizer, training settings, split, data hash), `metrics.json`,
//! `history.parquet`, `confusion.png`, `curves.png`; with `cv` a top-level
//! `metrics.json` with every fold and mean ± std and `confusion.png` of all folds'
//! test predictions pooled, and `cv.json` (the fold plan). Under `--shard I/N` a
//! CV run trains only folds k with k mod N = I, on the whole table (the engine
//! then leaves the sources unsharded); `sermo commit OUT --shards N` joins the
//! folds (src/train/cv_shards.rs). Training needs the whole table: the rows are held in memory as
//! compact f32 examples (a feature table, not audio).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::engine::hash;
use crate::engine::{
    BatchStream, Cancel, Component, ConfigContext, Frame, Operator, OperatorConfig, PlanInput,
    Problem, Role, Shard, TaskContext,
};
use crate::error::{Result, SermoError};
use crate::schema::{self, col};
use crate::train::cv_shards::{self, CvPlan};
use crate::train::data::{
    Example, Masking, Normalize, Standardizer, column_width, examples, normalize_groups,
};
use crate::train::device::Device;
use crate::train::history::{self, HISTORY_FILE};
use crate::train::inference::{CONFIG_FILE, ModelArtifact, ReusedFrom, member_file};
use crate::train::metrics::{Confusion, Report};
use crate::train::model::{ModelConfig, ModelKind, ModelParams, SerModel};
use crate::train::plots;
use crate::train::reuse;
use crate::train::split::{Assignment, Cv, Part, Split};
use crate::train::training::{
    Checkpoint, ClassWeights, Epoch, Schedule, TrainSettings, argmax, predict, train,
};
use crate::train::{Cpu, CpuAutodiff};
use burn::tensor::backend::{AutodiffBackend, Backend};

/// `early_stopping = { patience = N }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopping {
    pub patience: usize,
}

pub use crate::train::device::DeviceChoice;

/// Config of the `train` sink.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub model: ModelKind,
    pub features: Vec<String>,
    #[serde(default = "d_epochs")]
    pub epochs: usize,
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    #[serde(default = "d_lr")]
    pub learning_rate: f64,
    #[serde(default = "d_wd")]
    pub weight_decay: f64,
    #[serde(default)]
    pub schedule: Schedule,
    #[serde(default)]
    pub warmup_epochs: usize,
    #[serde(default = "d_step")]
    pub step_epochs: usize,
    #[serde(default)]
    pub class_weights: ClassWeights,
    pub early_stopping: Option<EarlyStopping>,
    pub grad_clip: Option<f32>,
    #[serde(default = "d_max_frames")]
    pub max_frames: usize,
    pub split: Option<Split>,
    pub cv: Option<Cv>,
    /// Class order (default: the sorted labels of the table).
    pub labels: Option<Vec<String>>,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub device: DeviceChoice,
    pub out: String,
    #[serde(default)]
    pub params: ModelParams,
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
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Mixup {
    pub alpha: f64,
}

/// `crop = { frames = 150 }`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Crop {
    pub frames: usize,
}

/// How a table with a `variant` column (the `augment` stage) trains.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
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

impl Component for TrainConfig {
    const KIND: &'static str = "train";
    const ROLE: Role = Role::Sink;
    const SUMMARY: &'static str = "train an SER model (mlp, cnn1d, cnn2d, lstm, attention_fcn, q2l) with speaker-independent splits or CV; write model, metrics, history, plots";
}

impl TrainConfig {
    fn settings(&self) -> TrainSettings {
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
        }
    }

    fn group_column(&self) -> Option<&str> {
        match (&self.split, &self.cv) {
            (Some(s), _) if s.by != "random" => Some(&s.by),
            (_, Some(c)) => Some(&c.by),
            _ => None,
        }
    }
}

impl OperatorConfig for TrainConfig {
    fn check(&self, ctx: &ConfigContext) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.features.is_empty() {
            p.push(
                Problem::new("features", "is empty")
                    .with_hint("name feature columns, e.g. features = [\"stacked\"]"),
            );
        }
        match (&self.split, &self.cv) {
            (None, None) => p.push(
                Problem::new("split", "give `split` or `cv`")
                    .with_hint("split = { by = \"speaker\", test = [\"03\"], valid = [\"09\"] } or cv = { by = \"speaker\", folds = 10 }"),
            ),
            (Some(_), Some(_)) => p.push(Problem::new("cv", "give `split` or `cv`, not both")),
            _ => {}
        }
        for (k, v) in [
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("max_frames", self.max_frames),
        ] {
            if v == 0 {
                p.push(Problem::new(k, "must be at least 1"));
            }
        }
        if self.ensemble == 0 {
            p.push(Problem::new("ensemble", "must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            p.push(Problem::new(
                "label_smoothing",
                format!("must be in [0, 1), got {}", self.label_smoothing),
            ));
        }
        if let Some(m) = self.mixup
            && !(m.alpha.is_finite() && m.alpha > 0.0)
        {
            p.push(Problem::new(
                "mixup.alpha",
                format!("must be positive, got {}", m.alpha),
            ));
        }
        if self.crop.is_some_and(|c| c.frames == 0) {
            p.push(Problem::new("crop.frames", "must be at least 1"));
        }
        if let Some(v) = &self.variants.train
            && v.is_empty()
        {
            p.push(
                Problem::new("variants.train", "is empty")
                    .with_hint("list variants of the augment stage, e.g. [\"clean\", \"noise\"], or leave it out for all"),
            );
        }
        if self.learning_rate.is_nan() || self.learning_rate <= 0.0 {
            p.push(Problem::new(
                "learning_rate",
                format!("must be positive, got {}", self.learning_rate),
            ));
        }
        if self.device == DeviceChoice::Cuda && !crate::train::device::CUDA_BUILT {
            p.push(
                Problem::new("device", "this build has no CUDA backend").with_hint(
                    "use device = \"cpu\" or \"auto\", or build with the `cuda` feature",
                ),
            );
        }
        if self.out.trim().is_empty() {
            p.push(Problem::new("out", "is empty"));
        }
        for r in &self.reuse {
            if ctx.resolve(r) == ctx.resolve(&self.out) {
                p.push(
                    Problem::new("reuse", format!("names this sink's own `out` ({r})"))
                        .with_hint("reuse reads finished runs in other folders; set another `out`"),
                );
            }
        }
        let cfg = ModelConfig {
            kind: self.model,
            input_dim: 1,
            classes: 2,
            params: self.params.clone(),
        };
        for msg in cfg.check() {
            p.push(Problem::new("params", msg));
        }
        p
    }

    fn plan(&self, inputs: &[PlanInput]) -> std::result::Result<SchemaRef, String> {
        let s = inputs
            .first()
            .map(|i| i.schema.clone())
            .ok_or("has no input")?;
        for f in &self.features {
            match s.field_with_name(f) {
                Err(_) => {
                    return Err(format!(
                        "needs feature column `{f}`, which its input lacks (columns: {})",
                        s.fields()
                            .iter()
                            .map(|f| f.name().as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                Ok(field) if column_width(field.data_type()).is_none() => {
                    return Err(format!(
                        "column `{f}` is {}, not a feature column",
                        field.data_type()
                    ));
                }
                Ok(_) => {}
            }
        }
        if s.field_with_name(col::LABEL).is_err() {
            return Err("needs a `label` column".into());
        }
        if let Some(g) = self.group_column()
            && s.field_with_name(g).is_err()
        {
            return Err(format!("splits by `{g}`, which its input lacks"));
        }
        Ok(schema::empty_schema())
    }

    fn output_path(&self, ctx: &ConfigContext) -> Option<PathBuf> {
        Some(ctx.resolve(&self.out))
    }

    /// Under `--shard I/N` a CV run trains folds k with k mod N = I on the whole
    /// table (train/cv_shards.rs).
    fn shards_itself(&self) -> bool {
        true
    }

    fn build(&self, ctx: &ConfigContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(TrainSink {
            cfg: self.clone(),
            out: ctx.resolve(&self.out),
            reuse: self.reuse.iter().map(|r| ctx.resolve(r)).collect(),
        }))
    }
}

struct TrainSink {
    cfg: TrainConfig,
    out: PathBuf,
    /// `reuse`, resolved.
    reuse: Vec<PathBuf>,
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> std::result::Result<(), String> {
    let s = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    std::fs::write(path, s + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn data_hash(ex: &[Example], idx: &[usize]) -> String {
    let mut ids: Vec<&str> = idx.iter().map(|&i| ex[i].clip_id.as_str()).collect();
    ids.sort_unstable();
    hash::hex(hash::stable_hash(ids.join("\n").as_bytes()))
}

/// An indicatif bar over the epochs when stderr is a terminal (else `None`: the
/// caller prints a line every ten epochs, which suits logs and Slurm output).
fn progress_bar(epochs: usize, name: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new(epochs as u64);
    let style =
        indicatif::ProgressStyle::with_template("  {prefix} epoch {pos:>3}/{len} [{bar:20}] {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
    b.set_style(style);
    b.set_prefix(name.to_string());
    Some(b)
}

/// One fold's training inputs, on whichever backend runs it.
struct FoldJob<'a> {
    model: &'a ModelConfig,
    settings: &'a TrainSettings,
    train: &'a [&'a Example],
    valid: &'a [&'a Example],
    test: &'a [&'a Example],
    norm: &'a Standardizer,
    model_path: PathBuf,
}

/// What a fold's training leaves (the best model is saved at `model_path`).
struct Fitted {
    history: Vec<Epoch>,
    best_epoch: usize,
    /// Class probabilities of the test rows.
    probs: Vec<Vec<f32>>,
}

impl FoldJob<'_> {
    /// Train on backend `B`, save the best model, predict the test rows.
    fn fit<B: AutodiffBackend>(
        &self,
        device: &B::Device,
        progress: &mut dyn FnMut(&Epoch) -> ControlFlow<()>,
    ) -> std::result::Result<Fitted, String> {
        let trained = train::<B>(
            self.model,
            self.settings,
            self.train,
            self.valid,
            self.norm,
            device,
            progress,
        );
        if trained.stopped {
            return Err(STOPPED.into());
        }
        let probs = self.score::<B::InnerBackend>(&trained.model, device);
        let rec = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        trained
            .model
            .save_file(&self.model_path, &rec)
            .map_err(|e| {
                format!(
                    "cannot save the model in {}: {e}",
                    self.model_path.display()
                )
            })?;
        Ok(Fitted {
            history: trained.history,
            best_epoch: trained.best_epoch,
            probs,
        })
    }

    /// Class probabilities of the test rows under `model`.
    fn score<B: Backend>(&self, model: &SerModel<B>, device: &B::Device) -> Vec<Vec<f32>> {
        predict::<B>(
            model,
            self.test,
            self.model.input_dim,
            self.norm,
            self.settings.batch_size,
            self.settings.max_frames,
            device,
        )
    }

    /// Stand `m` (a finished run's member, [`reuse`]) in for training on backend
    /// `B`: copy its weights to `model_path`, predict the test rows.
    fn reuse<B: Backend>(
        &self,
        m: &reuse::Member,
        device: &B::Device,
    ) -> std::result::Result<Fitted, String> {
        let rec = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        let model = self
            .model
            .init::<B>(device)
            .load_file(m.weights.clone(), &rec, device)
            .map_err(|e| format!("cannot load the weights in {}: {e}", m.weights.display()))?;
        let probs = self.score::<B>(&model, device);
        let to = self.model_path.with_extension("mpk");
        std::fs::copy(&m.weights, &to).map_err(|e| {
            format!(
                "cannot copy {} to {}: {e}",
                m.weights.display(),
                to.display()
            )
        })?;
        Ok(Fitted {
            history: m.history.clone(),
            best_epoch: m.best_epoch,
            probs,
        })
    }
}

/// The examples of one fold's parts.
struct FoldParts<'a> {
    train: Vec<&'a Example>,
    valid: Vec<&'a Example>,
    test: Vec<&'a Example>,
}

/// Split `ex` by `assignment`. Augmented rows (a `variant` other than `clean`)
/// train only: validation and test take the clean rows, so every held-out clip
/// is scored once, unaugmented. `train_variants` (when given) selects the
/// variants that train.
fn fold_parts<'a>(
    ex: &'a [Example],
    assignment: &Assignment,
    train_variants: Option<&[String]>,
) -> std::result::Result<FoldParts<'a>, String> {
    let pick = |p: Part, keep: &dyn Fn(&Example) -> bool| -> Vec<&'a Example> {
        assignment
            .indices(p)
            .into_iter()
            .map(|i| &ex[i])
            .filter(|e| keep(e))
            .collect()
    };
    let train_keep = |e: &Example| match (train_variants, e.variant.as_deref()) {
        (Some(list), Some(v)) => list.iter().any(|l| l == v),
        _ => true,
    };
    let parts = FoldParts {
        train: pick(Part::Train, &train_keep),
        valid: pick(Part::Valid, &|e| e.is_clean()),
        test: pick(Part::Test, &|e| e.is_clean()),
    };
    if parts.train.is_empty() || parts.test.is_empty() {
        let variants: BTreeSet<&str> = ex.iter().filter_map(|e| e.variant.as_deref()).collect();
        let why = if variants.is_empty() {
            String::new()
        } else {
            format!(
                "; the table's variants are {} (test rows must be `clean`{})",
                variants.into_iter().collect::<Vec<_>>().join(", "),
                match train_variants {
                    Some(l) => format!(", training rows one of {}", l.join(", ")),
                    None => String::new(),
                }
            )
        };
        return Err(format!(
            "empty train or test set ({}){why}",
            assignment.describe()
        ));
    }
    Ok(parts)
}

/// Train and evaluate one assignment; write its artifacts into `dir`.
#[allow(clippy::too_many_arguments)] // one call site; the inputs are distinct
fn run_fold(
    cfg: &TrainConfig,
    ex: &[Example],
    labels: &[String],
    dims: usize,
    assignment: &Assignment,
    feature_settings: &Option<serde_json::Value>,
    sample_rate: Option<u32>,
    dir: &Path,
    reuse_dirs: &[PathBuf],
    name: &str,
    device: Device,
    cancel: &Cancel,
) -> std::result::Result<Report, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let FoldParts {
        train: tr,
        valid: va,
        test: te,
    } = fold_parts(ex, assignment, cfg.variants.train.as_deref())
        .map_err(|e| format!("{name}: {e}"))?;
    let clean_train: Vec<&Example> = tr.iter().copied().filter(|e| e.is_clean()).collect();
    let norm = Standardizer::fit_with(
        if clean_train.is_empty() {
            &tr
        } else {
            &clean_train
        },
        dims,
        cfg.normalize == Normalize::Utterance,
    );
    let model_cfg = ModelConfig {
        kind: cfg.model,
        input_dim: dims,
        classes: labels.len(),
        params: cfg.params.clone(),
    };
    let settings = cfg.settings();
    let members = settings.ensemble.max(1);
    let bar = progress_bar(settings.epochs * members, name);
    let mut progress = |e: &Epoch| {
        let line = format!(
            "train loss {:.4} acc {:.3}{} ({:.1} s)",
            e.train_loss,
            e.train_acc,
            match (e.val_loss, e.val_acc) {
                (Some(l), Some(a)) => format!(", valid loss {l:.4} acc {a:.3}"),
                _ => String::new(),
            },
            e.seconds
        );
        match &bar {
            Some(b) => {
                b.set_message(line);
                b.inc(1);
            }
            None if e.epoch == 1 || e.epoch.is_multiple_of(10) || e.epoch == settings.epochs => {
                eprintln!("  {name} epoch {:>3}: {line}", e.epoch)
            }
            None => {}
        }
        if cancel.is_cancelled() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let mut hashes = BTreeMap::new();
    for p in Part::ALL {
        hashes.insert(p.name().to_string(), data_hash(ex, &assignment.indices(p)));
    }
    // config.json as it will be written; the kept epochs and reused members are
    // filled in after the members.
    let mut artifact = ModelArtifact {
        sermo_version: env!("CARGO_PKG_VERSION").to_string(),
        model: model_cfg.clone(),
        labels: labels.to_vec(),
        features: cfg.features.clone(),
        feature_settings: feature_settings.clone(),
        standardizer: norm.clone(),
        max_frames: settings.max_frames,
        training: settings.clone(),
        split: assignment.describe(),
        leakage: assignment.leakage(),
        best_epoch: 0,
        member_best_epochs: Vec::new(),
        reused: Vec::new(),
        data_hash: hashes,
        normalize: cfg.normalize,
        sample_rate,
    };
    let seeds: Vec<u64> = (0..members)
        .map(|k| settings.seed.wrapping_add(k as u64))
        .collect();
    let (mut offered, notes) = reuse::find(reuse_dirs, &artifact, &seeds);
    for n in notes {
        eprintln!("sermo: {name}: reuse: {n}");
    }
    // Ensemble members: seeds seed, seed + 1, ...; member 0 is `model.mpk`, member
    // k `model-k.mpk`; test probabilities are averaged. A member a finished run
    // offers (`reuse`) is loaded instead of trained.
    let mut history: Vec<(usize, Epoch)> = Vec::new();
    let mut best_epochs = Vec::with_capacity(members);
    let mut probs: Vec<Vec<f32>> = vec![vec![0.0; labels.len()]; te.len()];
    for (k, &seed) in seeds.iter().enumerate() {
        let mut member_settings = settings.clone();
        member_settings.seed = seed;
        let job = FoldJob {
            model: &model_cfg,
            settings: &member_settings,
            train: &tr,
            valid: &va,
            test: &te,
            norm: &norm,
            model_path: dir.join(member_file(k)),
        };
        let fitted = match (offered.remove(&seed), device) {
            (Some(m), Device::Cpu) => {
                let f = job.reuse::<Cpu>(&m, &Default::default())?;
                artifact.reused.push(reused_from(k, &m));
                f
            }
            #[cfg(feature = "cuda")]
            (Some(m), Device::Cuda(i)) => {
                let f = crate::train::device::guard("loading a reused member", || {
                    job.reuse::<crate::train::Gpu>(&m, &burn::backend::cuda::CudaDevice::new(i))
                })??;
                artifact.reused.push(reused_from(k, &m));
                f
            }
            (None, Device::Cpu) => job.fit::<CpuAutodiff>(&Default::default(), &mut progress)?,
            #[cfg(feature = "cuda")]
            (None, Device::Cuda(i)) => crate::train::device::guard("training", || {
                job.fit::<crate::train::GpuAutodiff>(
                    &burn::backend::cuda::CudaDevice::new(i),
                    &mut progress,
                )
            })??,
            #[cfg(not(feature = "cuda"))]
            (_, Device::Cuda(_)) => return Err("this build has no CUDA backend".into()),
        };
        for (acc, p) in probs.iter_mut().zip(&fitted.probs) {
            for (a, v) in acc.iter_mut().zip(p) {
                *a += v / members as f32;
            }
        }
        best_epochs.push(fitted.best_epoch);
        history.extend(fitted.history.into_iter().map(|e| (k, e)));
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    for r in &artifact.reused {
        eprintln!(
            "sermo: {name}: member {} (seed {}) reused from {}",
            r.member, r.seed, r.from
        );
    }
    let mut conf = Confusion::new(labels.to_vec());
    for (p, e) in probs.iter().zip(&te) {
        if let Some(t) = e.label {
            conf.add(t, argmax(p));
        }
    }
    let report = conf.report();
    artifact.best_epoch = best_epochs.first().copied().unwrap_or(0);
    if members > 1 {
        artifact.member_best_epochs = best_epochs.clone();
    }
    write_json(&dir.join(CONFIG_FILE), &artifact)?;
    history::write(&dir.join(HISTORY_FILE), &history)?;
    let title = format!("{} {}", cfg.model.name(), name);
    plots::confusion(&report, &title, &dir.join(plots::CONFUSION_PNG))?;
    let first: Vec<Epoch> = history
        .iter()
        .filter(|(k, _)| *k == 0)
        .map(|(_, e)| e.clone())
        .collect();
    plots::curves(
        &first,
        best_epochs.first().copied().unwrap_or(0),
        &title,
        &dir.join(plots::CURVES_PNG),
    )?;
    // Last: a fold is complete once its metrics exist (train/cv_shards.rs).
    write_json(&dir.join(cv_shards::METRICS_FILE), &report)?;
    eprintln!(
        "sermo: {name}: {} — accuracy {:.3}, UAR {:.3} on {} test rows (kept epoch {})",
        assignment.describe(),
        report.accuracy,
        report.uar,
        te.len(),
        best_epochs
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(report)
}

fn reused_from(member: usize, m: &reuse::Member) -> ReusedFrom {
    ReusedFrom {
        member,
        seed: m.seed,
        from: m.weights.display().to_string(),
    }
}

/// Why a fold ended early: the run was cancelled (Ctrl-C / SIGTERM).
const STOPPED: &str = "training stopped: the run was interrupted";

/// Everything after the input: splits, folds, artifacts.
#[allow(clippy::too_many_arguments)] // one call site; the inputs are distinct
fn fit_all(
    cfg: &TrainConfig,
    out: &Path,
    ex: Vec<Example>,
    labels: Vec<String>,
    dims: usize,
    feature_settings: Option<serde_json::Value>,
    sample_rate: Option<u32>,
    cancel: &Cancel,
    shard: Option<Shard>,
    config_hash: &str,
    reuse: &[PathBuf],
) -> std::result::Result<(), String> {
    let groups: Vec<String> = ex.iter().map(|e| e.group.clone()).collect();
    let resolved = crate::train::device::resolve(cfg.device)?;
    eprintln!("sermo: train: training on the {}", resolved.description);
    let device = resolved.device;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    match (&cfg.split, &cfg.cv) {
        (Some(_), _) if shard.is_some() => {
            return Err(
                "--shard splits a train sink's CV folds across shards, but this sink has one `split`: run it without --shard (or use `cv`)".into(),
            );
        }
        (Some(split), _) => {
            let a = split
                .assign_seeded(&groups, cfg.seed)
                .map_err(|e| e.to_string())?;
            let r = run_fold(
                cfg,
                &ex,
                &labels,
                dims,
                &a,
                &feature_settings,
                sample_rate,
                out,
                reuse,
                "split",
                device,
                cancel,
            )?;
            println!("{}", r.render());
        }
        (None, Some(cv)) => {
            let folds = cv.folds(&groups, cfg.seed).map_err(|e| e.to_string())?;
            let plan = CvPlan {
                model: cfg.model.name().to_string(),
                by: cv.by.clone(),
                tests: folds.iter().map(|a| a.groups(Part::Test)).collect(),
                labels: labels.clone(),
                config_hash: config_hash.to_string(),
            };
            cv_shards::start(out, &plan, shard.is_some())?;
            let mut reports = Vec::new();
            for (k, a) in folds.iter().enumerate() {
                if !cv_shards::owns_fold(shard, k) {
                    continue;
                }
                let dir = cv_shards::fold_dir(out, k);
                reports.push(run_fold(
                    cfg,
                    &ex,
                    &labels,
                    dims,
                    a,
                    &feature_settings,
                    sample_rate,
                    &dir,
                    &reuse
                        .iter()
                        .map(|r| cv_shards::fold_dir(r, k))
                        .collect::<Vec<_>>(),
                    &format!("fold {k}"),
                    device,
                    cancel,
                )?);
            }
            match shard {
                None => println!("{}", cv_shards::finish(out, &plan, reports)?.render()),
                Some(s) => {
                    let mine: Vec<String> = (0..folds.len())
                        .filter(|&k| cv_shards::owns_fold(shard, k))
                        .map(|k| k.to_string())
                        .collect();
                    if mine.is_empty() {
                        eprintln!(
                            "sermo: train: shard {}/{} has no fold of {} (fold k runs in shard k mod {}): nothing to train",
                            s.index,
                            s.count,
                            folds.len(),
                            s.count
                        );
                    } else {
                        eprintln!(
                            "sermo: train: shard {}/{} trained fold{} {} of {}; when every shard is done: sermo commit {} --shards {}",
                            s.index,
                            s.count,
                            if mine.len() == 1 { "" } else { "s" },
                            mine.join(", "),
                            folds.len(),
                            out.display(),
                            s.count
                        );
                    }
                }
            }
        }
        (None, None) => return Err("give `split` or `cv`".into()),
    }
    Ok(())
}

impl Operator for TrainSink {
    fn execute(self: Box<Self>, inputs: Vec<BatchStream>, ctx: TaskContext) -> BatchStream {
        let in_schema = inputs
            .first()
            .map(|s| s.schema())
            .unwrap_or_else(schema::empty_schema);
        let mut input = crate::engine::stream::merge_inputs(in_schema.clone(), inputs);
        let stream = async_stream::stream! {
            let stage = ctx.node_id.to_string();
            let cfg = self.cfg;
            let group_by = cfg.group_column().unwrap_or(col::SPEAKER).to_string();
            let mut batches = Vec::new();
            while let Some(item) = input.next().await {
                match item {
                    Ok(Frame::Batch(b)) => batches.push(b),
                    Ok(_) => {}
                    Err(e) => { yield Err(e); return; }
                }
            }
            if ctx.cancel.is_cancelled() {
                return;
            }
            let out = self.out.clone();
            let reuse = self.reuse.clone();
            let cancel = ctx.cancel.clone();
            let shard = ctx.shard;
            let config_hash = ctx.lineage.node_hash.clone();
            let feature_settings = in_schema
                .metadata()
                .get(crate::ops::features::FEATURES_KEY)
                .and_then(|s| serde_json::from_str(s).ok());
            let job = ctx.pool.run(move || -> std::result::Result<(), String> {
                // Labels: the configured order, else the sorted labels present.
                let present: BTreeSet<String> = batches.iter().flat_map(|b| {
                    use arrow::array::{Array, AsArray};
                    b.column_by_name(col::LABEL)
                        .and_then(|c| c.as_string_opt::<i32>().cloned())
                        .map(|c| (0..c.len()).filter(|&i| c.is_valid(i)).map(|i| c.value(i).to_string()).collect::<Vec<_>>())
                        .unwrap_or_default()
                }).collect();
                let labels: Vec<String> = cfg.labels.clone().unwrap_or_else(|| present.into_iter().collect());
                if labels.len() < 2 {
                    return Err(format!("needs at least 2 classes, found {labels:?}"));
                }
                let index: BTreeMap<String, usize> = labels.iter().enumerate().map(|(i, l)| (l.clone(), i)).collect();
                let mut ex = Vec::new();
                for b in &batches {
                    ex.extend(examples(b, &cfg.features, &group_by, &index)?);
                }
                let batches_rate = batches.iter().find_map(|b| {
                    use arrow::array::{Array, AsArray};
                    let c = b.column_by_name(col::SAMPLE_RATE)?;
                    let c = c.as_primitive_opt::<arrow::datatypes::UInt32Type>()?;
                    (!c.is_empty() && c.is_valid(0)).then(|| c.value(0))
                });
                drop(batches);
                // Rows without a known class cannot be learned or scored.
                let before = ex.len();
                ex.retain(|e| e.label.is_some() && e.frames > 0);
                if ex.len() < before {
                    eprintln!("sermo: train: {} rows without a class in {labels:?} left out", before - ex.len());
                }
                let dims = ex.first().map(|e| e.x.len() / e.frames.max(1)).ok_or("no rows to train on")?;
                if cfg.normalize == Normalize::Speaker {
                    normalize_groups(&mut ex, dims);
                }
                let sample_rate = batches_rate;
                fit_all(&cfg, &out, ex, labels, dims, feature_settings, sample_rate, &cancel, shard, &config_hash, &reuse)
            }).await;
            match job {
                Ok(Ok(())) => {}
                // Interrupted: the engine reports the cancellation (exit 130).
                Ok(Err(_)) if ctx.cancel.is_cancelled() => {}
                Ok(Err(m)) => yield Err(SermoError::stage(&stage, Some(self.out.clone()), m)),
                Err(p) => yield Err(SermoError::stage(&stage, None, p.to_string())),
            }
        };
        BatchStream::new(schema::empty_schema(), stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::split::Split;

    /// Three speakers × two clips × variants clean/noise/pitch, one frame each.
    fn augmented_rows() -> Vec<Example> {
        let mut out = Vec::new();
        for spk in ["a", "b", "c"] {
            for clip in 0..2 {
                for v in ["clean", "noise", "pitch"] {
                    out.push(Example {
                        x: vec![0.0; 3],
                        frames: 1,
                        label: Some(clip),
                        label_text: Some(clip.to_string()),
                        group: spk.into(),
                        clip_id: format!("{spk}-{clip}"),
                        segment: 0,
                        start_s: 0.0,
                        end_s: 0.0,
                        variant: Some(v.into()),
                    });
                }
            }
        }
        out
    }

    #[test]
    fn augmented_rows_only_train() {
        let ex = augmented_rows();
        let groups: Vec<String> = ex.iter().map(|e| e.group.clone()).collect();
        let a = Split::by_groups("speaker", &["b"], &["c"])
            .assign(&groups)
            .unwrap();
        let parts = fold_parts(&ex, &a, None).unwrap();
        // Every variant of speaker a trains; speakers b and c are tested and
        // validated once per clip, on clean rows.
        assert_eq!(parts.train.len(), 6);
        assert!(parts.train.iter().all(|e| e.group == "a"));
        assert_eq!(parts.test.len(), 2, "augmented rows reached the test set");
        assert_eq!(parts.valid.len(), 2, "augmented rows reached validation");
        for (part, spk) in [(&parts.test, "b"), (&parts.valid, "c")] {
            assert!(
                part.iter()
                    .all(|e| e.group == spk && e.variant.as_deref() == Some("clean"))
            );
        }
        // A selection of training variants.
        let sel = ["clean".to_string(), "pitch".to_string()];
        let parts = fold_parts(&ex, &a, Some(&sel)).unwrap();
        assert_eq!(parts.train.len(), 4);
        assert!(
            parts
                .train
                .iter()
                .all(|e| e.variant.as_deref() != Some("noise"))
        );
        // Without clean rows there is nothing to test on, and the error says why.
        let noisy: Vec<Example> = ex.iter().filter(|e| !e.is_clean()).cloned().collect();
        let groups: Vec<String> = noisy.iter().map(|e| e.group.clone()).collect();
        let a = Split::by_groups("speaker", &["b"], &[])
            .assign(&groups)
            .unwrap();
        let err = fold_parts(&noisy, &a, None).err().unwrap();
        assert!(err.contains("test rows must be `clean`"), "{err}");
    }

    #[test]
    fn validation_lists_every_recipe_problem() {
        let c: TrainConfig = toml::from_str(
            r#"model = "cnn1d"
features = ["stacked"]
out = "runs/x"
cv = { by = "speaker", folds = 10 }
ensemble = 0
label_smoothing = 1.0
mixup = { alpha = -1.0 }
crop = { frames = 0 }
variants = { train = [] }
"#,
        )
        .unwrap();
        let ctx = ConfigContext {
            base_dir: Path::new("."),
            seed: 0,
        };
        let all: String = c
            .check(&ctx)
            .iter()
            .map(|p| format!("{}: {}\n", p.key.as_deref().unwrap_or(""), p.message))
            .collect();
        for k in [
            "ensemble",
            "label_smoothing",
            "mixup.alpha",
            "crop.frames",
            "variants.train",
        ] {
            assert!(all.contains(k), "no problem about {k}: {all}");
        }
        assert!(
            toml::from_str::<TrainConfig>(
                "model = \"mlp\"\nfeatures = [\"x\"]\nout = \"o\"\nvariants = { mode = \"each\" }\n"
            )
            .is_err()
        );
    }

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
        assert_eq!(c.params.filters, vec![128, 64, 32]);
        assert_eq!(c.params.dropout, 0.2);
    }
}
