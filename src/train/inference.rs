//! A trained model back from its directory (burn's `inference.rs`): `config.json`
//! rebuilds the module, `model.mpk` fills its weights, and the saved standardizer
//! and feature columns turn feature rows into the same inputs as in training.
//! Also `sermo eval`: score a model on another feature table (cross-corpus).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use super::Cpu;
use super::data::{
    Example, Normalize, Standardizer, corpus_of, examples, normalize_groups, qualify_groups,
};
use super::device::{self, Device, DeviceChoice};
use super::metrics::{Confusion, Report};
use super::model::{ModelConfig, SerModel};
use super::training::{TrainSettings, argmax, predict};
use crate::schema::col;
use crate::store::dataset::{DataFile, list_dataset};

/// File name of the burn record (the recorder adds `.mpk`).
pub const MODEL_FILE: &str = "model";
/// File name of the model's description.
pub const CONFIG_FILE: &str = "config.json";

/// File name (without `.mpk`) of ensemble member `k`: `model`, `model-1`, ...
pub fn member_file(k: usize) -> String {
    if k == 0 {
        MODEL_FILE.to_string()
    } else {
        format!("{MODEL_FILE}-{k}")
    }
}

/// `config.json` of a trained model: everything inference needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelArtifact {
    pub sermo_version: String,
    pub model: ModelConfig,
    pub labels: Vec<String>,
    pub features: Vec<String>,
    /// The feature stage's settings (`sermo.features` of the table), if known.
    pub feature_settings: Option<serde_json::Value>,
    /// The `embed` stage's settings (`sermo.encoder` of the table: the encoder's
    /// folder and hashes, layers, pooling) when the model was trained on
    /// pretrained-encoder hidden states: inference fed audio runs that encoder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder_settings: Option<serde_json::Value>,
    pub standardizer: Standardizer,
    pub max_frames: usize,
    pub training: TrainSettings,
    pub split: String,
    pub leakage: bool,
    pub best_epoch: usize,
    /// The kept epoch of every ensemble member (empty for a single model).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub member_best_epochs: Vec<usize>,
    /// Members loaded from a finished run (`reuse`) instead of trained.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reused: Vec<ReusedFrom>,
    /// Hash of the clip ids of each part.
    pub data_hash: BTreeMap<String, String>,
    /// Per-speaker normalization before the standardizer (`normalize`).
    #[serde(default)]
    pub normalize: Normalize,
    /// Sample rate of the audio the features were computed from, when the
    /// table had a `sample_rate` column.
    #[serde(default)]
    pub sample_rate: Option<u32>,
}

/// An ensemble member taken from another run's fold (`reuse` of the train sink).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReusedFrom {
    /// Member index in this model.
    pub member: usize,
    pub seed: u64,
    /// The weights file it was copied from.
    pub from: String,
}

/// A model loaded for inference, on the CPU or a CUDA device.
pub struct LoadedModel {
    pub artifact: ModelArtifact,
    /// One module per ensemble member (`model.mpk`, `model-1.mpk`, ...).
    nets: Vec<Net>,
    pub dir: PathBuf,
    /// Where it runs, for the user (`CPU`, `CUDA device 0 (…)`).
    pub device: String,
}

/// The module on its backend (one per loaded model: its size does not matter).
#[allow(clippy::large_enum_variant)]
enum Net {
    Cpu(SerModel<Cpu>),
    #[cfg(feature = "cuda")]
    Cuda(Box<(SerModel<crate::train::Gpu>, burn::backend::cuda::CudaDevice)>),
}

/// The directory holding a model: `dir` itself, or for a cross-validation run
/// (no `config.json` at the top) an error naming the fold folders to choose from.
pub fn model_dir(dir: &Path) -> Result<PathBuf, String> {
    if dir.join(CONFIG_FILE).is_file() {
        return Ok(dir.to_path_buf());
    }
    let folds: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read model directory {}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(CONFIG_FILE).is_file())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    if folds.is_empty() {
        Err(format!(
            "{} holds no trained model ({CONFIG_FILE} and {MODEL_FILE}.mpk)",
            dir.display()
        ))
    } else {
        let mut folds = folds;
        folds.sort();
        Err(format!(
            "{} is a cross-validation run; name one fold's model: {}",
            dir.display(),
            folds
                .iter()
                .map(|f| dir.join(f).display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// Read a model folder's `config.json` (not the weights); `dir` as for
/// [`model_dir`].
pub fn read_artifact(dir: &Path) -> Result<ModelArtifact, String> {
    let p = model_dir(dir)?.join(CONFIG_FILE);
    let text =
        std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a sermo model config: {e}", p.display()))
}

impl LoadedModel {
    /// Load `config.json` and the weights from `dir` onto the CPU.
    pub fn load(dir: &Path) -> Result<LoadedModel, String> {
        Self::load_on(dir, DeviceChoice::Cpu)
    }

    /// Load `config.json` and the weights from `dir` onto the device `choice`
    /// resolves to ([`device::resolve`]).
    pub fn load_on(dir: &Path, choice: DeviceChoice) -> Result<LoadedModel, String> {
        let dir = model_dir(dir)?;
        let cfg_path = dir.join(CONFIG_FILE);
        let artifact = read_artifact(&dir)?;
        let problems = artifact.model.check();
        if !problems.is_empty() {
            return Err(format!("{}: {}", cfg_path.display(), problems.join("; ")));
        }
        if artifact.standardizer.mean.len() != artifact.model.input_dim
            || artifact.standardizer.std.len() != artifact.model.input_dim
        {
            return Err(format!(
                "{}: the standardizer has {} dimensions, the model {}",
                cfg_path.display(),
                artifact.standardizer.mean.len(),
                artifact.model.input_dim
            ));
        }
        let resolved = device::resolve(choice)?;
        let mut nets = Vec::new();
        for k in 0..artifact.training.ensemble.max(1) {
            nets.push(Self::load_net(&artifact, &dir, k, resolved.device)?);
        }
        Ok(LoadedModel {
            artifact,
            nets,
            dir,
            device: resolved.description,
        })
    }

    /// The weights of ensemble member `k` (`model.mpk`, `model-1.mpk`, ...).
    fn load_net(artifact: &ModelArtifact, dir: &Path, k: usize, on: Device) -> Result<Net, String> {
        let rec = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        let path = dir.join(member_file(k));
        let bad = |e: burn::record::RecorderError| {
            format!("cannot load the weights in {}: {e}", path.display())
        };
        let net = match on {
            Device::Cpu => {
                let d = Default::default();
                let m = artifact
                    .model
                    .init::<Cpu>(&d)
                    .load_file(&path, &rec, &d)
                    .map_err(bad)?;
                // A fine-tuned encoder runs through the CPU pass (same numbers).
                Net::Cpu(match m {
                    SerModel::SslFinetune(f) => SerModel::SslFinetune(f.with_cpu_pass()),
                    m => m,
                })
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(i) => {
                let d = burn::backend::cuda::CudaDevice::new(i);
                let m = device::guard("loading the model", || {
                    artifact
                        .model
                        .init::<crate::train::Gpu>(&d)
                        .load_file(&path, &rec, &d)
                })?
                .map_err(bad)?;
                Net::Cuda(Box::new((m, d)))
            }
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(_) => return Err("this build has no CUDA backend".into()),
        };
        Ok(net)
    }

    /// Whether a fine-tuned encoder (`ssl_finetune`) of this model runs through
    /// the CPU pass ([`crate::encoders::cpu`]): on the CPU, after loading.
    pub fn has_cpu_pass(&self) -> bool {
        self.nets.iter().any(|n| match n {
            Net::Cpu(SerModel::SslFinetune(f)) => f.has_cpu_pass(),
            _ => false,
        })
    }

    /// Run a fine-tuned encoder through burn's modules instead of the CPU pass
    /// (for comparisons; the numbers agree to about 1e-5).
    pub fn without_cpu_pass(mut self) -> Self {
        self.nets = self
            .nets
            .into_iter()
            .map(|n| match n {
                Net::Cpu(SerModel::SslFinetune(f)) => {
                    Net::Cpu(SerModel::SslFinetune(f.without_cpu_pass()))
                }
                n => n,
            })
            .collect();
        self
    }

    /// Class probabilities for each example (rows of [`ModelArtifact::labels`]).
    pub fn predict(&self, ex: &[&Example]) -> Result<Vec<Vec<f32>>, String> {
        self.predict_with(ex, self.artifact.training.batch_size)
    }

    /// [`LoadedModel::predict`] with `batch_size` examples per forward pass.
    pub fn predict_with(
        &self,
        ex: &[&Example],
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>, String> {
        let a = &self.artifact;
        let (dims, norm, frames) = (a.model.input_dim, &a.standardizer, a.max_frames);
        let mut out: Option<Vec<Vec<f32>>> = None;
        let members = self.nets.len().max(1) as f32;
        for net in &self.nets {
            let probs = match net {
                Net::Cpu(m) => {
                    predict::<Cpu>(m, ex, dims, norm, batch_size, frames, &Default::default())
                }
                #[cfg(feature = "cuda")]
                Net::Cuda(md) => device::guard("inference", || {
                    let (m, d) = &**md;
                    predict::<crate::train::Gpu>(m, ex, dims, norm, batch_size, frames, d)
                })?,
            };
            // Ensemble: the mean of the members' probabilities, summed in member
            // order as in training.
            let acc =
                out.get_or_insert_with(|| probs.iter().map(|p| vec![0.0f32; p.len()]).collect());
            for (a, p) in acc.iter_mut().zip(probs) {
                for (x, v) in a.iter_mut().zip(p) {
                    *x += v / members;
                }
            }
        }
        Ok(out.unwrap_or_default())
    }
}

/// Which labels `sermo eval` scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EvalLabels {
    /// Every row whose label the model knows; the model may predict any class.
    #[default]
    Model,
    /// Only the labels both the model and the table have; predictions are
    /// restricted to them (cross-corpus evaluation).
    Common,
}

/// Result of `sermo eval`.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub model: String,
    pub table: String,
    pub labels_mode: String,
    /// Rows of the table, rows scored, rows left out (label not scored).
    pub rows: usize,
    pub scored: usize,
    pub left_out: BTreeMap<String, usize>,
    /// Differences between the table's feature settings and the model's.
    pub feature_settings_match: Option<bool>,
    /// Rows of clips the model saw in training or validation
    /// ([`TRAIN_CLIPS_FILE`]); `None` when the model folder does not say.
    pub trained_rows: Option<usize>,
    /// Whether those rows were left out (`--exclude-trained`).
    pub excluded_trained: bool,
    #[serde(flatten)]
    pub report: Report,
}

/// The clip ids a model saw in training or validation, one per line, sorted:
/// `sermo eval` warns when a table holds them (and can leave them out).
pub const TRAIN_CLIPS_FILE: &str = "train_clips.txt";

/// Write [`TRAIN_CLIPS_FILE`] into `dir`.
pub fn write_train_clips<'a>(
    dir: &Path,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<(), String> {
    let set: std::collections::BTreeSet<&str> = ids.into_iter().collect();
    let mut text = String::with_capacity(set.len() * 16);
    for id in set {
        text.push_str(id);
        text.push('\n');
    }
    let path = dir.join(TRAIN_CLIPS_FILE);
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The ids of [`TRAIN_CLIPS_FILE`] in `dir` (`None` when the model has none:
/// trained by an older sermo).
pub fn read_train_clips(dir: &Path) -> Option<std::collections::HashSet<String>> {
    let text = std::fs::read_to_string(dir.join(TRAIN_CLIPS_FILE)).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// Read the rows of a feature table (a sermo table directory, a Parquet file or
/// any Parquet dataset) with only `columns`; hive partition values become text
/// columns. Returns the batches and the table's `sermo.features` settings.
pub fn read_table(
    path: &Path,
    columns: &[String],
) -> Result<(Vec<RecordBatch>, Option<serde_json::Value>), String> {
    let files = if path.is_file() {
        vec![DataFile::plain(path)]
    } else {
        list_dataset(path)?
    };
    if files.is_empty() {
        return Err(format!("{} holds no Parquet files", path.display()));
    }
    let mut out = Vec::new();
    let mut settings = None;
    for file in &files {
        file.verify()?;
        let f = File::open(&file.path)
            .map_err(|e| format!("cannot open {}: {e}", file.path.display()))?;
        let b = ParquetRecordBatchReaderBuilder::try_new(f)
            .map_err(|e| format!("{} is not readable Parquet: {e}", file.path.display()))?;
        let schema = b.schema().clone();
        if settings.is_none() {
            settings = schema
                .metadata()
                .get(crate::schema::FEATURES_KEY)
                .and_then(|s| serde_json::from_str(s).ok());
        }
        let idx: Vec<usize> = columns
            .iter()
            .filter_map(|c| schema.index_of(c).ok())
            .collect();
        let mask = ProjectionMask::roots(b.parquet_schema(), idx);
        let reader = b
            .with_projection(mask)
            .with_batch_size(1024)
            .build()
            .map_err(|e| format!("cannot read {}: {e}", file.path.display()))?;
        for batch in reader {
            let batch = batch.map_err(|e| format!("cannot read {}: {e}", file.path.display()))?;
            let mut fields: Vec<Field> = batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
            for (k, v) in &file.partitions {
                if columns.contains(k) && batch.column_by_name(k).is_none() {
                    fields.push(Field::new(k, DataType::Utf8, true));
                    cols.push(Arc::new(StringArray::from(vec![
                        v.as_str();
                        batch.num_rows()
                    ])));
                }
            }
            let b = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
                .map_err(|e| format!("{}: {e}", file.path.display()))?;
            out.push(b);
        }
    }
    Ok((out, settings))
}

/// `sermo eval`: score the model in `model_dir` on the table at `table`.
pub fn evaluate(
    model_dir: &Path,
    table: &Path,
    mode: EvalLabels,
    device: DeviceChoice,
    exclude_trained: bool,
) -> Result<EvalReport, String> {
    let m = LoadedModel::load_on(model_dir, device)?;
    let a = &m.artifact;
    let mut columns = a.features.clone();
    columns.extend([col::LABEL, col::CLIP_ID, col::SPEAKER, col::CORPUS].map(String::from));
    let (batches, settings) = read_table(table, &columns)?;
    for b in batches.iter().take(1) {
        for f in &a.features {
            if b.column_by_name(f).is_none() {
                return Err(format!(
                    "{} has no feature column `{f}`, which the model reads",
                    table.display()
                ));
            }
        }
        if b.column_by_name(col::LABEL).is_none() {
            return Err(format!("{} has no `label` column", table.display()));
        }
    }
    let index: BTreeMap<String, usize> = a
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.clone(), i))
        .collect();
    let mut ex = Vec::new();
    let mut corpus = Vec::new();
    for b in &batches {
        ex.extend(examples(b, &a.features, col::SPEAKER, &index)?);
        corpus.extend(corpus_of(b));
    }
    drop(batches);
    // Speakers of two corpora with the same id are two people (as in training).
    qualify_groups(&mut ex, &corpus);
    if a.normalize == Normalize::Speaker {
        normalize_groups(&mut ex, a.model.input_dim);
    }
    let rows = ex.len();
    if let Some(e) = ex.iter().find(|e| e.frames > 0) {
        let dims = e.x.len() / e.frames;
        if dims != a.model.input_dim {
            return Err(format!(
                "{} gives {dims} values per frame for {}, the model expects {}",
                table.display(),
                a.features.join(" + "),
                a.model.input_dim
            ));
        }
    }
    let present: std::collections::BTreeSet<&str> =
        ex.iter().filter_map(|e| e.label_text.as_deref()).collect();
    let scored_labels: Vec<usize> = match mode {
        EvalLabels::Model => (0..a.labels.len()).collect(),
        EvalLabels::Common => (0..a.labels.len())
            .filter(|&i| present.contains(a.labels[i].as_str()))
            .collect(),
    };
    if scored_labels.is_empty() {
        return Err(format!(
            "the model's labels {:?} and the table's {:?} have none in common",
            a.labels, present
        ));
    }
    let trained = read_train_clips(model_dir);
    let was_trained = |e: &Example| {
        trained
            .as_ref()
            .is_some_and(|t| t.contains(e.clip_id.as_str()))
    };
    let trained_rows = trained
        .as_ref()
        .map(|_| ex.iter().filter(|e| was_trained(e)).count());
    if exclude_trained && trained.is_none() {
        return Err(format!(
            "--exclude-trained: {} has no {TRAIN_CLIPS_FILE} (a model trained by an older sermo): it cannot tell which clips it was trained on",
            model_dir.display()
        ));
    }
    let mut left_out: BTreeMap<String, usize> = BTreeMap::new();
    if exclude_trained && let Some(n) = trained_rows.filter(|&n| n > 0) {
        left_out.insert("(clips the model was trained on)".into(), n);
    }
    let keep: Vec<&Example> = ex
        .iter()
        .filter(|e| !(exclude_trained && was_trained(e)))
        .filter(|e| {
            let ok = e.frames > 0 && e.label.is_some_and(|l| scored_labels.contains(&l));
            if !ok {
                *left_out
                    .entry(e.label_text.clone().unwrap_or_else(|| "(null)".into()))
                    .or_default() += 1;
            }
            ok
        })
        .collect();
    let probs = m.predict(&keep)?;
    let names: Vec<String> = scored_labels.iter().map(|&i| a.labels[i].clone()).collect();
    let mut conf = Confusion::new(match mode {
        EvalLabels::Model => a.labels.clone(),
        EvalLabels::Common => names.clone(),
    });
    for (p, e) in probs.iter().zip(&keep) {
        let Some(t) = e.label else { continue };
        match mode {
            EvalLabels::Model => conf.add(t, argmax(p)),
            EvalLabels::Common => {
                let sub: Vec<f32> = scored_labels.iter().map(|&i| p[i]).collect();
                let ti = scored_labels.iter().position(|&i| i == t).unwrap_or(0);
                conf.add(ti, argmax(&sub));
            }
        }
    }
    let feature_settings_match = match (&a.feature_settings, &settings) {
        (Some(x), Some(y)) => Some(x == y),
        _ => None,
    };
    Ok(EvalReport {
        model: m.dir.display().to_string(),
        table: table.display().to_string(),
        labels_mode: match mode {
            EvalLabels::Model => "model".into(),
            EvalLabels::Common => "common".into(),
        },
        rows,
        scored: keep.len(),
        left_out,
        feature_settings_match,
        trained_rows,
        excluded_trained: exclude_trained,
        report: conf.report(),
    })
}
