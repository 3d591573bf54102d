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
//! `model = "ssl_finetune"` trains a pretrained encoder end to end on audio rows
//! at the encoder's rate (`input` = a `resample` stage): `encoder = "<checkpoint
//! folder>"` names it, `features` defaults to the audio's `samples`, and the
//! fine-tuned encoder is also written as a checkpoint folder `encoder/` beside
//! `model.mpk` (src/train/finetune.rs). `grad_accumulation = N` sums the
//! gradients of N batches per optimizer step (any model).
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
//!
//! This module is the adaptor: validation and planning of the recipe
//! ([`crate::train::recipe::TrainConfig`]) and the operator that gathers the rows;
//! the training run itself is [`crate::train::cv`].

use std::path::PathBuf;

use arrow::datatypes::{Schema, SchemaRef};
use futures::StreamExt;

use crate::encoders::EncoderConfig;
use crate::engine::{
    BatchStream, Component, ConfigContext, Frame, Operator, OperatorConfig, PlanInput, Problem,
    Role, TaskContext,
};
use crate::error::{Result, SermoError};
use crate::schema::{self, col};
use crate::schema::{TableKind, require_inputs};
use crate::train::cv::{TrainRun, TrainingRows};
use crate::train::data::Normalize;
use crate::train::data::column_width;
use crate::train::model::{EncoderSpec, ModelConfig, ModelKind, ModelSpec};
pub use crate::train::recipe::{DeviceChoice, TrainConfig};

impl Component for TrainConfig {
    const KIND: &'static str = "train";
    const ROLE: Role = Role::Sink;
    const SUMMARY: &'static str = "train an SER model (mlp, cnn1d, cnn2d, lstm, attention_fcn, q2l, ssl_head; ssl_finetune on audio) with speaker-independent splits or CV; write model, metrics, history, plots";
}

impl OperatorConfig for TrainConfig {
    fn check(&self, ctx: &ConfigContext) -> Vec<Problem> {
        let mut p = Vec::new();
        let finetune = self.model == ModelKind::SslFinetune;
        if finetune {
            p.extend(self.finetune_problems(ctx));
        } else if let Some(e) = &self.encoder {
            p.push(
                Problem::new("encoder", format!("`{e}` applies only to model = \"ssl_finetune\""))
                    .with_hint("for a table of embeddings the `embed` stage names the encoder; train it with model = \"ssl_head\""),
            );
        }
        if self.features.is_empty() && !finetune {
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
        use crate::limits::{MAX_BATCH, MAX_ENSEMBLE, MAX_EPOCHS, MAX_EXAMPLE_FRAMES};
        for (k, v, most) in [
            ("epochs", self.epochs, MAX_EPOCHS),
            ("batch_size", self.batch_size, MAX_BATCH),
            ("max_frames", self.max_frames, MAX_EXAMPLE_FRAMES),
            ("grad_accumulation", self.grad_accumulation, MAX_BATCH),
            ("ensemble", self.ensemble, MAX_ENSEMBLE),
        ] {
            if !(1..=most).contains(&v) {
                p.push(Problem::new(
                    k,
                    format!("must be between 1 and {most}, got {v}"),
                ));
            }
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
        match self.model_spec() {
            Ok(ModelSpec::SslFinetune(params)) => {
                for msg in params.check() {
                    p.push(Problem::new("params", msg));
                }
            }
            Ok(spec) => {
                let cfg = ModelConfig {
                    spec,
                    input_dim: 1,
                    classes: 2,
                    encoder: None,
                };
                for msg in cfg.check() {
                    p.push(Problem::new("params", msg));
                }
            }
            Err(errors) => {
                for (key, msg) in errors {
                    let key = if key.is_empty() {
                        "params".to_string()
                    } else {
                        format!("params.{key}")
                    };
                    p.push(Problem::new(&key, msg));
                }
            }
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
        self.check_label_and_group(&s)?;
        Ok(schema::empty_schema())
    }

    fn plan_in(
        &self,
        inputs: &[PlanInput],
        ctx: &ConfigContext,
    ) -> std::result::Result<SchemaRef, String> {
        if self.model != ModelKind::SslFinetune {
            return self.plan(inputs);
        }
        let s = require_inputs(inputs, &[TableKind::Audio])?;
        if s.field_with_name(col::SAMPLES).is_err() {
            return Err("needs audio rows (a `samples` column)".into());
        }
        schema::require_mono(&s)?;
        let folder = self
            .encoder
            .as_ref()
            .map(|e| ctx.resolve(e))
            .ok_or("model = \"ssl_finetune\" needs `encoder`")?;
        let want = encoder_config(&folder)?.sample_rate;
        schema::require_sample_rate(&s, want, "the encoder", true)?;
        self.check_label_and_group(&s)?;
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
            encoder: self.encoder.as_ref().map(|e| ctx.resolve(e)),
            lock: None,
        }))
    }
}

impl TrainConfig {
    /// Validation: the input has the `label` column and the column the split
    /// groups by.
    fn check_label_and_group(&self, s: &Schema) -> std::result::Result<(), String> {
        if s.field_with_name(col::LABEL).is_err() {
            return Err("needs a `label` column".into());
        }
        if let Some(g) = self.group_column()
            && s.field_with_name(g).is_err()
        {
            return Err(format!("splits by `{g}`, which its input lacks"));
        }
        Ok(())
    }

    /// What `ssl_finetune` refuses or needs, at validation.
    fn finetune_problems(&self, ctx: &ConfigContext) -> Vec<Problem> {
        let mut p = Vec::new();
        match &self.encoder {
            None => p.push(
                Problem::new("encoder", "is needed by model = \"ssl_finetune\"")
                    .with_hint("point `encoder` at a Hugging Face checkpoint folder, e.g. encoder = \"checkpoints/wav2vec2-base\" (docs/models.md)"),
            ),
            Some(e) => {
                if let Err(err) = encoder_config(&ctx.resolve(e)) {
                    p.push(Problem::new("encoder", err).with_hint(
                        "point `encoder` at a Hugging Face checkpoint folder (see docs/models.md)",
                    ));
                }
            }
        }
        if !(self.features.is_empty() || self.features == [col::SAMPLES]) {
            p.push(Problem::new(
                "features",
                format!(
                    "{:?}: ssl_finetune trains on the audio's `samples`; leave `features` out",
                    self.features
                ),
            ));
        }
        if self.spec_mask.is_some() {
            p.push(Problem::new("spec_mask", "does not apply to raw audio").with_hint(
                "ssl_finetune masks the encoder's frames: params.mask_time_prob, mask_time_length",
            ));
        }
        if self.crop.is_some() {
            p.push(
                Problem::new("crop", "does not apply to ssl_finetune")
                    .with_hint("clips are cut to params.max_s seconds"),
            );
        }
        if self.normalize != Normalize::Global {
            p.push(Problem::new("normalize", "does not apply to ssl_finetune").with_hint(
                "the encoder normalizes each clip itself (params.normalize, default: the checkpoint's do_normalize)",
            ));
        }
        p
    }
}

/// The configuration of the checkpoint folder `encoder` names.
fn encoder_config(folder: &std::path::Path) -> std::result::Result<EncoderConfig, String> {
    if !folder.is_dir() {
        return Err(format!(
            "checkpoint folder {} does not exist",
            folder.display()
        ));
    }
    EncoderConfig::from_folder(folder).map_err(|e| e.to_string())
}

struct TrainSink {
    cfg: TrainConfig,
    out: PathBuf,
    /// `reuse`, resolved.
    reuse: Vec<PathBuf>,
    /// `encoder`, resolved (`ssl_finetune`).
    encoder: Option<PathBuf>,
    /// The run folder's `.sermo.lock`, held until training ends.
    lock: Option<crate::store::lock::DirLock>,
}

impl Operator for TrainSink {
    /// One run trains into a folder at a time: a second run on the same `out` is
    /// refused naming the holder. Under `--shard I/N` the shards of one CV run
    /// share the folder (each writes its own `fold-K/`), so none locks it.
    fn claim(&mut self, ctx: &TaskContext) -> Result<()> {
        if ctx.shard.is_some() {
            return Ok(());
        }
        let stage = ctx.node_id.to_string();
        std::fs::create_dir_all(&self.out)
            .map_err(|e| SermoError::io(&stage, "create directory", self.out.clone(), e))?;
        let lock = crate::store::lock::DirLock::acquire(&self.out, "sermo run")
            .map_err(|m| SermoError::stage(&stage, Some(self.out.clone()), m))?;
        self.lock = Some(lock);
        Ok(())
    }

    fn execute(self: Box<Self>, inputs: Vec<BatchStream>, ctx: TaskContext) -> BatchStream {
        let in_schema = inputs
            .first()
            .map(|s| s.schema())
            .unwrap_or_else(schema::empty_schema);
        let mut input = crate::engine::stream::merge_inputs(in_schema.clone(), inputs);
        let stream = async_stream::stream! {
            // Held until training ends (or the stream is dropped).
            let _lock = self.lock;
            let stage = ctx.node_id.to_string();
            let cfg = self.cfg;
            let mut batches = Vec::new();
            // Clips quarantined upstream: none of their rows is trained on.
            let mut failed = std::collections::BTreeSet::new();
            while let Some(item) = input.next().await {
                match item {
                    Ok(Frame::Batch(b)) => batches.push(b),
                    Ok(Frame::Quarantine(q)) if q.whole_clip => { failed.insert(q.clip_id); }
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
                .get(crate::schema::FEATURES_KEY)
                .and_then(|s| serde_json::from_str(s).ok());
            let encoder_settings = in_schema
                .metadata()
                .get(crate::schema::ENCODER_KEY)
                .and_then(|s| serde_json::from_str(s).ok());
            let encoder = self.encoder.clone();
            let job = ctx.pool.run(move || -> std::result::Result<(), String> {
                let mut rows = TrainingRows::gather(&cfg, batches, &failed)?;
                let spec = match (&encoder, cfg.model_spec()) {
                    (Some(folder), Ok(ModelSpec::SslFinetune(p))) => {
                        let spec = EncoderSpec::read(folder, p.normalize)?;
                        // Clips shorter than one encoder frame cannot be learned.
                        let min = spec.config.receptive_field();
                        let before = rows.examples.len();
                        rows.examples.retain(|e| e.frames >= min);
                        if rows.examples.len() < before {
                            eprintln!(
                                "sermo: train: {} shorter than the encoder's receptive field ({min} samples) left out",
                                crate::error::count(before - rows.examples.len(), "clip")
                            );
                        }
                        Some(spec)
                    }
                    _ => None,
                };
                TrainRun {
                    cfg: &cfg,
                    out: &out,
                    reuse: &reuse,
                    labels: rows.labels,
                    dims: rows.dims,
                    feature_settings,
                    encoder_settings,
                    sample_rate: rows.sample_rate,
                    cancel: &cancel,
                    shard,
                    config_hash: &config_hash,
                    encoder: spec.as_ref(),
                }
                .fit_all(rows.examples)
            }).await;
            match job {
                Ok(Ok(())) => {}
                // Interrupted: the engine reports the cancellation (exit 130).
                Ok(Err(_)) if ctx.cancel.is_cancelled() => {}
                Ok(Err(m)) => yield Err(SermoError::stage(&stage, Some(self.out.clone()), m)),
                Err(p) => yield Err(SermoError::stage_source(&stage, None, p)),
            }
        };
        BatchStream::new(schema::empty_schema(), stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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
    fn a_params_key_of_another_model_is_refused_at_validation() {
        let ctx = ConfigContext {
            base_dir: Path::new("."),
            seed: 0,
        };
        let c: TrainConfig = toml::from_str(
            "model = \"mlp\"\nfeatures = [\"x\"]\nout = \"o\"\ncv = { by = \"speaker\", folds = 2 }\n[params]\nhidden = 8\nheads = 4\nfcn_channels = [1]\n",
        )
        .unwrap();
        let problems = c.check(&ctx);
        let keys: Vec<&str> = problems.iter().filter_map(|p| p.key.as_deref()).collect();
        assert_eq!(
            keys,
            vec!["params.fcn_channels", "params.heads"],
            "{problems:?}"
        );
        assert!(
            problems[1]
                .message
                .contains("does not apply to model `mlp`")
        );
        // The same keys on the models they belong to are fine.
        let ok: TrainConfig = toml::from_str(
            "model = \"q2l\"\nfeatures = [\"x\"]\nout = \"o\"\ncv = { by = \"speaker\", folds = 2 }\n[params]\nheads = 4\n",
        )
        .unwrap();
        assert!(ok.check(&ctx).is_empty(), "{:?}", ok.check(&ctx));
    }
}
