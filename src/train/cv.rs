//! Training orchestration of a `train` sink: from the gathered feature rows to the
//! artifacts. [`TrainingRows::gather`] turns record batches into examples (labels in
//! order, dimensions, sample rate); [`TrainRun::fit_all`] deals the split or the CV
//! folds (under `--shard I/N` only this shard's folds), and per fold fits the
//! standardizer, trains each ensemble member (or loads a finished run's member,
//! [`super::reuse`]) on the resolved device, predicts the test rows and writes
//! `model*.mpk`, `config.json`, `history.parquet`, the plots and — last, the fold's
//! commit point — `metrics.json`. The `train` operator (`ops/train.rs`) only
//! collects the rows and calls these.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::Serialize;

use super::cv_shards::{self, CvPlan};
use super::data::{
    Example, Normalize, Standardizer, corpus_of, examples, normalize_groups, qualify_groups,
};
use super::device::Device;
use super::finetune::EncoderSpec;
use super::history::{self, HISTORY_FILE};
use super::inference::{CONFIG_FILE, ModelArtifact, ReusedFrom, member_file, write_train_clips};
use super::metrics::{Confusion, Report};
use super::model::{ModelConfig, SerModel};
use super::plots;
use super::recipe::TrainConfig;
use super::reuse;
use super::split::{Assignment, Part};
use super::training::{Checkpoint, Epoch, TrainSettings, argmax, predict, train};
use super::{Cpu, CpuAutodiff};
use crate::engine::{Cancel, Shard, hash};
use crate::error::count;
use crate::schema::col;

/// The rows a `train` sink gathered, as examples.
pub struct TrainingRows {
    pub examples: Vec<Example>,
    /// Class names in order (index = class).
    pub labels: Vec<String>,
    /// Feature dimensions per frame.
    pub dims: usize,
    /// The table's sample rate (recorded for inference), when it has one.
    pub sample_rate: Option<u32>,
}

impl TrainingRows {
    /// Examples of `batches` under `cfg`: labels in `cfg.labels` order (else the
    /// sorted labels present), rows without a known class or without frames left
    /// out (said on stderr), per-speaker normalization applied when asked.
    ///
    /// One clip, one outcome: every row of a clip in `failed` (quarantined
    /// upstream after some of its rows were emitted, e.g. a file truncated half-way)
    /// is left out, and so is every row of a clip with a non-finite value (NaN or
    /// infinity never reaches a model); both are named on stderr.
    pub fn gather(
        cfg: &TrainConfig,
        batches: Vec<RecordBatch>,
        failed: &BTreeSet<String>,
    ) -> std::result::Result<TrainingRows, String> {
        let group_by = cfg.group_column().unwrap_or(col::SPEAKER).to_string();
        // Labels: the configured order, else the sorted labels present.
        let present: BTreeSet<String> = batches
            .iter()
            .flat_map(|b| {
                use arrow::array::{Array, AsArray};
                b.column_by_name(col::LABEL)
                    .and_then(|c| c.as_string_opt::<i32>().cloned())
                    .map(|c| {
                        (0..c.len())
                            .filter(|&i| c.is_valid(i))
                            .map(|i| c.value(i).to_string())
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            })
            .collect();
        let labels: Vec<String> = cfg
            .labels
            .clone()
            .unwrap_or_else(|| present.into_iter().collect());
        if labels.len() < 2 {
            return Err(format!("needs at least 2 classes, found {labels:?}"));
        }
        let index: BTreeMap<String, usize> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), i))
            .collect();
        let mut ex = Vec::new();
        let mut corpus = Vec::new();
        for b in &batches {
            ex.extend(examples(b, &cfg.feature_columns(), &group_by, &index)?);
            corpus.extend(corpus_of(b));
        }
        if group_by != col::CORPUS
            && let Some(names) = qualify_groups(&mut ex, &corpus)
        {
            eprintln!(
                "sermo: train: the rows come from {} ({}): each {group_by} is named corpus/{group_by} (e.g. `{}/...`), so equal ids of two corpora stay two groups",
                crate::error::count_as(names.len(), "corpus", "corpora"),
                names.join(", "),
                names[0]
            );
        }
        drop(corpus);
        let sample_rate = batches.iter().find_map(|b| {
            use arrow::array::{Array, AsArray};
            let c = b.column_by_name(col::SAMPLE_RATE)?;
            let c = c.as_primitive_opt::<arrow::datatypes::UInt32Type>()?;
            (!c.is_empty() && c.is_valid(0)).then(|| c.value(0))
        });
        drop(batches);
        // One canonical order, so that training depends on the rows and never on
        // how a table was laid out: which part file a clip landed in is decided by
        // writer timing, and the order of the examples drives the batch shuffle
        // and the standardizer's sums.
        ex.sort_by(canonical_order);
        let before = ex.len();
        ex.retain(|e| !failed.contains(&e.clip_id));
        if ex.len() < before {
            eprintln!(
                "sermo: train: {} of {} quarantined upstream left out (a clip is used whole or not at all)",
                count(before - ex.len(), "row"),
                count(failed.len(), "clip")
            );
        }
        let non_finite: BTreeSet<String> = ex
            .iter()
            .filter(|e| e.x.iter().any(|v| !v.is_finite()))
            .map(|e| e.clip_id.clone())
            .collect();
        if !non_finite.is_empty() {
            ex.retain(|e| !non_finite.contains(&e.clip_id));
            let shown: Vec<&str> = non_finite.iter().take(10).map(String::as_str).collect();
            eprintln!(
                "sermo: train: {} with NaN or infinite feature values left out (non_finite): {}{}",
                count(non_finite.len(), "clip"),
                shown.join(", "),
                if non_finite.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                }
            );
        }
        // Rows without a known class cannot be learned or scored.
        let before = ex.len();
        ex.retain(|e| e.label.is_some() && e.frames > 0);
        if ex.len() < before {
            eprintln!(
                "sermo: train: {} without a class in {labels:?} left out",
                count(before - ex.len(), "row")
            );
        }
        let dims = ex
            .first()
            .map(|e| e.x.len() / e.frames.max(1))
            .ok_or("no rows to train on")?;
        if cfg.normalize == Normalize::Speaker {
            normalize_groups(&mut ex, dims);
        }
        Ok(TrainingRows {
            examples: ex,
            labels,
            dims,
            sample_rate,
        })
    }
}

/// The order of training examples: by clip, segment, start, variant, then the
/// rest of the row, so that equal keys (duplicated rows) are equal examples.
fn canonical_order(a: &Example, b: &Example) -> std::cmp::Ordering {
    a.clip_id
        .cmp(&b.clip_id)
        .then(a.segment.cmp(&b.segment))
        .then(a.start_s.total_cmp(&b.start_s))
        .then(a.end_s.total_cmp(&b.end_s))
        .then_with(|| a.variant.cmp(&b.variant))
        .then_with(|| a.group.cmp(&b.group))
        .then(a.label.cmp(&b.label))
        .then(a.frames.cmp(&b.frames))
        .then_with(|| {
            a.x.iter()
                .zip(&b.x)
                .map(|(p, q)| p.total_cmp(q))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        })
}

/// One training run of a `train` sink: the recipe, where it writes, what it knows
/// of the rows, and the run's context (cancellation, shard, lineage hash).
pub struct TrainRun<'a> {
    pub cfg: &'a TrainConfig,
    /// The run folder (`out`, resolved).
    pub out: &'a Path,
    /// Finished runs whose members may stand in (`reuse`, resolved).
    pub reuse: &'a [PathBuf],
    pub labels: Vec<String>,
    pub dims: usize,
    /// The feature table's `sermo.features` settings (recorded for inference).
    pub feature_settings: Option<serde_json::Value>,
    /// The table's `sermo.encoder` settings (an `embed` table), recorded likewise.
    pub encoder_settings: Option<serde_json::Value>,
    pub sample_rate: Option<u32>,
    /// Checked between epochs: a cancelled run stops training.
    pub cancel: &'a Cancel,
    /// `--shard I/N`: train only the CV folds k with k mod N = I.
    pub shard: Option<Shard>,
    /// The sink's lineage hash (recorded in `cv.json`; shards must agree).
    pub config_hash: &'a str,
    /// `ssl_finetune`: the pretrained encoder (read once, before the folds).
    pub encoder: Option<&'a EncoderSpec>,
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

/// Folder of ensemble member `k`'s fine-tuned encoder (`ssl_finetune`):
/// `encoder`, `encoder-1`, ...
pub fn encoder_folder(k: usize) -> String {
    if k == 0 {
        "encoder".to_string()
    } else {
        format!("encoder-{k}")
    }
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
    /// `ssl_finetune`: where the fine-tuned encoder is written as a checkpoint
    /// folder.
    encoder_dir: Option<PathBuf>,
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
        )?;
        if trained.stopped {
            return Err(STOPPED.into());
        }
        let probs = self.score::<B::InnerBackend>(&trained.model, device);
        if let (Some(dir), SerModel::SslFinetune(m), Some(spec)) =
            (&self.encoder_dir, &trained.model, &self.model.encoder)
        {
            m.save_encoder(spec, dir)?;
        }
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
    needs_test: bool,
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
    if parts.train.is_empty() || (needs_test && parts.test.is_empty()) {
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

/// What one call of [`TrainRun::run_fold`] trains.
#[derive(Debug, Clone, Copy, PartialEq)]
enum FoldMode {
    /// A fold or the split: train, then score the test part (`metrics.json`).
    Evaluate,
    /// The final model after cross-validation (`cv.final`): every group trains
    /// for `epochs`, the last epoch is kept, nothing is scored.
    Final { epochs: usize },
}

/// What a fold leaves: its test report (none for the final model) and the
/// kept epoch of each ensemble member.
struct FoldResult {
    report: Option<Report>,
    kept_epochs: Vec<usize>,
}

/// The final model's epochs: a recipe whose epoch is chosen on validation
/// groups (`checkpoint = "best"` or early stopping, with `valid` > 0) trains the
/// median of the folds' kept epochs (no group is left to choose on); a fixed
/// schedule trains its `epochs`.
pub fn final_epochs(settings: &TrainSettings, valid: usize, kept: &[usize]) -> usize {
    if !chosen_on_validation(settings, valid) {
        return settings.epochs;
    }
    let mut k: Vec<usize> = kept.iter().copied().filter(|&e| e > 0).collect();
    if k.is_empty() {
        return settings.epochs;
    }
    k.sort_unstable();
    let n = k.len();
    // The lower median of an even count: an epoch some fold actually kept.
    k[(n - 1) / 2].max(1)
}

/// Whether the kept epoch is chosen on validation groups.
fn chosen_on_validation(settings: &TrainSettings, valid: usize) -> bool {
    valid > 0 && (settings.checkpoint == Checkpoint::Best || settings.patience.is_some())
}

/// `final.json`: how the final model of a CV run was trained.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FinalInfo {
    pub epochs: usize,
    /// `fixed` (the recipe's `epochs`) or `median of the folds' kept epochs`.
    pub epochs_from: String,
    pub by: String,
    pub groups: Vec<String>,
    pub rows: usize,
}

impl TrainRun<'_> {
    /// Train and evaluate one assignment; write its artifacts into `dir`.
    #[allow(clippy::too_many_arguments)]
    fn run_fold(
        &self,
        ex: &[Example],
        assignment: &Assignment,
        dir: &Path,
        reuse_dirs: &[PathBuf],
        name: &str,
        device: Device,
        mode: FoldMode,
    ) -> std::result::Result<FoldResult, String> {
        let TrainRun {
            cfg,
            labels,
            dims,
            feature_settings,
            encoder_settings,
            sample_rate,
            cancel,
            encoder,
            ..
        } = self;
        let (dims, sample_rate) = (*dims, *sample_rate);
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let FoldParts {
            train: tr,
            valid: va,
            test: te,
        } = fold_parts(
            ex,
            assignment,
            cfg.variants.train.as_deref(),
            mode == FoldMode::Evaluate,
        )
        .map_err(|e| format!("{name}: {e}"))?;
        let clean_train: Vec<&Example> = tr.iter().copied().filter(|e| e.is_clean()).collect();
        let finetune = cfg.model == crate::train::model::ModelKind::SslFinetune;
        let norm = if finetune {
            // Raw samples go to the encoder as they are (it normalizes each clip
            // itself when the checkpoint asks).
            Standardizer {
                mean: vec![0.0; dims],
                std: vec![1.0; dims],
                per_clip: false,
            }
        } else {
            Standardizer::fit_with(
                if clean_train.is_empty() {
                    &tr
                } else {
                    &clean_train
                },
                dims,
                cfg.normalize == Normalize::Utterance,
            )
        };
        let mut spec = cfg.model_spec().map_err(|e| {
            e.into_iter()
                .map(|(k, m)| format!("params.{k}: {m}"))
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        if let crate::train::model::ModelSpec::SslHead(p) = &mut spec
            && p.layers == 0
        {
            // One hidden state per feature column (`layer_K`).
            p.layers = cfg.features.len();
        }
        let mut settings = cfg.settings();
        if let (crate::train::model::ModelSpec::SslFinetune(p), Some(e)) = (&spec, encoder) {
            // Frames are samples: clips are cut to their first `max_s` seconds.
            settings.max_frames = e.max_samples(p.max_s);
        }
        if let FoldMode::Final { epochs } = mode {
            // No group is held out: the schedule decides, the last epoch is kept.
            settings.epochs = epochs;
            settings.checkpoint = Checkpoint::Last;
            settings.patience = None;
        }
        let model_cfg = ModelConfig {
            spec,
            input_dim: dims,
            classes: labels.len(),
            encoder: if finetune { encoder.cloned() } else { None },
        };
        let problems = model_cfg.check();
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
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
                None if e.epoch == 1
                    || e.epoch.is_multiple_of(10)
                    || e.epoch == settings.epochs =>
                {
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
            features: cfg.feature_columns(),
            feature_settings: feature_settings.clone(),
            encoder_settings: encoder_settings.clone(),
            standardizer: norm.clone(),
            max_frames: settings.max_frames,
            training: settings.clone(),
            split: match mode {
                FoldMode::Evaluate => assignment.describe(),
                FoldMode::Final { epochs } => format!(
                    "final model after cross-validation: every {} trains ({} groups), {epochs} epochs, no test",
                    assignment.by(),
                    assignment.groups(Part::Train).len()
                ),
            },
            leakage: assignment.leakage(),
            best_epoch: 0,
            member_best_epochs: Vec::new(),
            reused: Vec::new(),
            data_hash: hashes,
            normalize: cfg.normalize,
            sample_rate,
        };
        if mode == FoldMode::Evaluate && dir != self.out {
            // Resume (CV folds, `OUT/fold-K`; a `split` run trains again): a fold this run already finished (same rows, settings, seed
            // and members) is kept; otherwise it is no longer complete until it
            // has trained again (`sermo status` must not count it meanwhile).
            let encoders_kept =
                || !finetune || (0..members).all(|k| dir.join(encoder_folder(k)).is_dir());
            match reuse::completed(dir, &artifact) {
                Some(Ok(done)) if encoders_kept() => {
                    if let Some(b) = &bar {
                        b.finish_and_clear();
                    }
                    eprintln!(
                        "sermo: {name}: already complete in {} (same rows, settings and seed): kept, not trained again — accuracy {:.3}, UAR {:.3} (remove the folder to train it again)",
                        dir.display(),
                        done.report.accuracy,
                        done.report.uar
                    );
                    return Ok(FoldResult {
                        report: Some(done.report),
                        kept_epochs: done.kept_epochs,
                    });
                }
                Some(Ok(_)) => eprintln!(
                    "sermo: {name}: {} lacks a fine-tuned encoder folder: training the fold again",
                    dir.display()
                ),
                Some(Err(why)) => eprintln!("sermo: {name}: {why}: training the fold again"),
                None => {}
            }
            let metrics = dir.join(cv_shards::METRICS_FILE);
            match std::fs::remove_file(&metrics) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot remove {}: {e}", metrics.display())),
            }
        }
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
                encoder_dir: finetune.then(|| dir.join(encoder_folder(k))),
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
                (None, Device::Cpu) => {
                    job.fit::<CpuAutodiff>(&Default::default(), &mut progress)?
                }
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
        // The model's own files, for a fold and the final model alike.
        artifact.best_epoch = best_epochs.first().copied().unwrap_or(0);
        if members > 1 {
            artifact.member_best_epochs = best_epochs.clone();
        }
        write_json(&dir.join(CONFIG_FILE), &artifact)?;
        write_train_clips(dir, tr.iter().chain(&va).map(|e| e.clip_id.as_str()))?;
        history::write(&dir.join(HISTORY_FILE), &history)?;
        let title = format!("{} {}", cfg.model.name(), name);
        let first: Vec<Epoch> = history
            .iter()
            .filter(|(k, _)| *k == 0)
            .map(|(_, e)| e.clone())
            .collect();
        plots::curves(
            &first,
            artifact.best_epoch,
            &title,
            &dir.join(plots::CURVES_PNG),
        )?;
        if mode != FoldMode::Evaluate {
            // The final model is not scored: nothing is held out.
            return Ok(FoldResult {
                report: None,
                kept_epochs: best_epochs,
            });
        }
        let mut conf = Confusion::new(labels.to_vec());
        for (p, e) in probs.iter().zip(&te) {
            if let Some(t) = e.label {
                conf.add(t, argmax(p));
            }
        }
        let report = conf.report();
        plots::confusion(&report, &title, &dir.join(plots::CONFUSION_PNG))?;
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
        Ok(FoldResult {
            report: Some(report),
            kept_epochs: best_epochs,
        })
    }

    /// Everything after the input: the split or the folds (under `--shard`, this
    /// shard's folds), each trained and written; the CV summary when complete.
    pub fn fit_all(&self, ex: Vec<Example>) -> std::result::Result<(), String> {
        let TrainRun {
            cfg,
            out,
            reuse,
            labels,
            shard,
            config_hash,
            ..
        } = self;
        let (out, reuse, shard) = (*out, *reuse, *shard);
        let groups: Vec<String> = ex.iter().map(|e| e.group.clone()).collect();
        let resolved = crate::train::device::resolve(cfg.device)?;
        eprintln!("sermo: train: training on the {}", resolved.description);
        let device = resolved.device;
        std::fs::create_dir_all(out)
            .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
        match (&cfg.split, &cfg.cv) {
            (Some(_), _) if shard.is_some() => {
                return Err(
                "--shard splits a train sink's CV folds across shards, but this sink has one `split`: run it without --shard (or use `cv`)".into(),
            );
            }
            (Some(split), _) => {
                let a = split
                    .qualified(&groups)?
                    .assign_seeded(&groups, cfg.seed)
                    .map_err(|e| e.to_string())?;
                let r = self.run_fold(&ex, &a, out, reuse, "split", device, FoldMode::Evaluate)?;
                if let Some(r) = r.report {
                    println!("{}", r.render());
                }
            }
            (None, Some(cv)) => {
                let settings = cfg.settings();
                let by_validation = chosen_on_validation(&settings, cv.valid_groups());
                if cv.final_model && shard.is_some() && by_validation {
                    return Err(
                        "cv.final with the epoch chosen on validation groups (valid > 0 with checkpoint = \"best\" or early_stopping) trains the folds' median kept epoch, known only when every fold is done: run without --shard, or give the recipe a fixed schedule (checkpoint = \"last\", no early_stopping)".into(),
                    );
                }
                let folds = cv.folds(&groups, cfg.seed).map_err(|e| e.to_string())?;
                let plan = CvPlan {
                    model: cfg.model.name().to_string(),
                    by: cv.by.clone(),
                    tests: folds.iter().map(|a| a.groups(Part::Test)).collect(),
                    labels: labels.clone(),
                    config_hash: config_hash.to_string(),
                    final_model: cv.final_model,
                };
                cv_shards::start(out, &plan, shard.is_some())?;
                let mut reports = Vec::new();
                let mut kept = Vec::new();
                for (k, a) in folds.iter().enumerate() {
                    if !cv_shards::owns_fold(shard, k) {
                        continue;
                    }
                    let dir = cv_shards::fold_dir(out, k);
                    let reuse_dirs: Vec<PathBuf> =
                        reuse.iter().map(|r| cv_shards::fold_dir(r, k)).collect();
                    let r = self.run_fold(
                        &ex,
                        a,
                        &dir,
                        &reuse_dirs,
                        &format!("fold {k}"),
                        device,
                        FoldMode::Evaluate,
                    )?;
                    kept.extend(r.kept_epochs);
                    reports.extend(r.report);
                }
                // The final model: job K, after the folds (in a sharded run, shard
                // K mod N trains it; its schedule is then fixed, checked above).
                if cv.final_model && cv_shards::owns_fold(shard, folds.len()) {
                    let epochs = final_epochs(&settings, cv.valid_groups(), &kept);
                    let everything = Assignment::everything_trains(&cv.by, &groups);
                    let _ = std::fs::remove_file(out.join(cv_shards::FINAL_FILE));
                    // `reuse` covers the final model too: a run's own top level
                    // holds its final model.
                    self.run_fold(
                        &ex,
                        &everything,
                        out,
                        reuse,
                        "final model",
                        device,
                        FoldMode::Final { epochs },
                    )?;
                    let info = FinalInfo {
                        epochs,
                        epochs_from: if by_validation {
                            format!(
                                "median of the folds' kept epochs ({})",
                                kept.iter()
                                    .map(|e| e.to_string())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        } else {
                            "fixed: the recipe's epochs".to_string()
                        },
                        by: cv.by.clone(),
                        groups: everything.groups(Part::Train),
                        rows: ex.len(),
                    };
                    // Last: the final model is complete once this exists.
                    write_json(&out.join(cv_shards::FINAL_FILE), &info)?;
                    eprintln!(
                        "sermo: final model: every {} trained ({} groups, {epochs} epochs, {}); {} is the model to use (`sermo infer --model {}`); the CV figures estimate its quality",
                        cv.by,
                        info.groups.len(),
                        info.epochs_from,
                        out.display(),
                        out.display()
                    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::split::Split;
    use std::sync::Arc;

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

    /// Pooled rows (clip, speaker, label, a 2-wide `feat`), one per clip.
    fn pooled(rows: &[(&str, &str, &str, [f32; 2])]) -> RecordBatch {
        use arrow::array::{FixedSizeListArray, Float32Array, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        let values = Float32Array::from(rows.iter().flat_map(|r| r.3).collect::<Vec<_>>());
        let feat = FixedSizeListArray::new(item.clone(), 2, Arc::new(values), None);
        let s = |k: usize| -> Arc<StringArray> {
            Arc::new(StringArray::from(
                rows.iter().map(|r| [r.0, r.1, r.2][k]).collect::<Vec<_>>(),
            ))
        };
        let schema = Schema::new(vec![
            Field::new(col::CLIP_ID, DataType::Utf8, false),
            Field::new(col::SPEAKER, DataType::Utf8, false),
            Field::new(col::LABEL, DataType::Utf8, false),
            Field::new("feat", DataType::FixedSizeList(item, 2), false),
        ]);
        RecordBatch::try_new(Arc::new(schema), vec![s(0), s(1), s(2), Arc::new(feat)]).unwrap()
    }

    /// One clip, one outcome: rows of a clip quarantined upstream and rows with
    /// NaN or infinity never become training examples.
    #[test]
    fn failed_and_non_finite_clips_are_left_out() {
        let cfg: TrainConfig = toml::from_str(
            "model = \"mlp\"\nfeatures = [\"feat\"]\nout = \"x\"\ncv = { by = \"speaker\", folds = 2 }\n",
        )
        .unwrap();
        let b = pooled(&[
            ("a1", "a", "angry", [0.1, 0.2]),
            ("a2", "a", "sad", [0.3, f32::NAN]),
            ("b1", "b", "angry", [0.5, 0.6]),
            ("b2", "b", "sad", [0.7, f32::INFINITY]),
            ("c1", "c", "sad", [0.9, 1.0]),
            ("c2", "c", "angry", [1.1, 1.2]),
        ]);
        let failed = BTreeSet::from(["c1".to_string()]);
        let rows = TrainingRows::gather(&cfg, vec![b], &failed).unwrap();
        let ids: Vec<&str> = rows.examples.iter().map(|e| e.clip_id.as_str()).collect();
        assert_eq!(ids, vec!["a1", "b1", "c2"]);
        assert!(
            rows.examples
                .iter()
                .all(|e| e.x.iter().all(|v| v.is_finite()))
        );
    }

    #[test]
    fn augmented_rows_only_train() {
        let ex = augmented_rows();
        let groups: Vec<String> = ex.iter().map(|e| e.group.clone()).collect();
        let a = Split::by_groups("speaker", &["b"], &["c"])
            .assign(&groups)
            .unwrap();
        let parts = fold_parts(&ex, &a, None, true).unwrap();
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
        let parts = fold_parts(&ex, &a, Some(&sel), true).unwrap();
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
        let err = fold_parts(&noisy, &a, None, true).err().unwrap();
        assert!(err.contains("test rows must be `clean`"), "{err}");
    }

    #[test]
    fn the_final_model_trains_the_median_kept_epoch_only_when_validation_chose_it() {
        let cfg: TrainConfig = toml::from_str(
            "model = \"mlp\"\nfeatures = [\"feat\"]\nout = \"x\"\nepochs = 30\ncheckpoint = \"best\"\ncv = { by = \"speaker\", folds = 2 }\n",
        )
        .unwrap();
        let mut st = cfg.settings();
        assert_eq!(st.patience, None);
        // Chosen on one validation group per fold: the lower median of the folds'.
        assert_eq!(final_epochs(&st, 1, &[12, 30, 7, 20]), 12);
        assert_eq!(final_epochs(&st, 1, &[12, 30, 7]), 12);
        // No validation group: the schedule decides (the last epoch is kept).
        assert_eq!(final_epochs(&st, 0, &[12, 30, 7]), 30);
        st.checkpoint = Checkpoint::Last;
        assert_eq!(final_epochs(&st, 1, &[12, 30, 7]), 30);
        // Early stopping chooses on validation too.
        st.patience = Some(5);
        assert_eq!(final_epochs(&st, 2, &[9, 11]), 9);
    }

    #[test]
    fn examples_have_one_order_whatever_the_rows_order() {
        let ex = augmented_rows();
        let mut a = ex.clone();
        let mut b: Vec<Example> = ex.into_iter().rev().collect();
        a.sort_by(canonical_order);
        b.sort_by(canonical_order);
        let key = |e: &Example| (e.clip_id.clone(), e.variant.clone());
        assert_eq!(
            a.iter().map(key).collect::<Vec<_>>(),
            b.iter().map(key).collect::<Vec<_>>()
        );
        assert_eq!(a[0].clip_id, "a-0");
    }
}
