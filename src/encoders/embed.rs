//! The `embed` stage's settings and row computation (the adaptor is
//! `ops/embed.rs`): audio rows at the encoder's rate in, one features row out per
//! clip with a column per chosen hidden state, `layer_K`, numbered as
//! transformers numbers `hidden_states` (`layer_0` = the input of the first
//! transformer layer).
//!
//! Columns are time-major `List<FixedSizeList<f32, hidden>>` (`pooling =
//! "none"`), or pooled over the clip's valid frames: `FixedSizeList<f32,
//! hidden>` (`"mean"`) or `2 × hidden` (`"mean_std"`: mean, then population
//! standard deviation). The encoder's identity (folder, config and weights
//! hashes, normalization, layers, pooling) is written to the table's metadata
//! under `sermo.encoder`, so a model trained on the table can check what it is fed.

use std::path::Path;
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use super::{EncoderConfig, Identity, Pretrained};
use crate::audio::Reason;
use crate::engine::Problem;
use crate::frontend::Summary;
use crate::frontend::compute::{Mat, column};
use crate::rows::{row_planes, row_str, row_u32};
use crate::schema::{self, ENCODER_KEY, col};
use crate::train::device::{Device, DeviceChoice, resolve};

/// `layers = "all" | "last" | [K, ...]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Layers {
    Named(String),
    List(Vec<usize>),
}

impl Default for Layers {
    fn default() -> Self {
        Layers::Named("all".into())
    }
}

impl Layers {
    /// The hidden-state indices for an encoder with `n_states` of them.
    pub fn resolve(&self, n_states: usize) -> Result<Vec<usize>, String> {
        match self {
            Layers::Named(n) if n == "all" => Ok((0..n_states).collect()),
            Layers::Named(n) if n == "last" => Ok(vec![n_states - 1]),
            Layers::Named(n) => Err(format!(
                "`{n}` is not a layer choice: \"all\", \"last\" or a list of hidden-state numbers like [6, 12]"
            )),
            Layers::List(v) if v.is_empty() => Err("the list of layers is empty".into()),
            Layers::List(v) => {
                let mut out = v.clone();
                out.sort_unstable();
                out.dedup();
                if out.len() != v.len() {
                    return Err(format!("{v:?} names a layer twice"));
                }
                if let Some(k) = out.iter().find(|&&k| k >= n_states) {
                    return Err(format!(
                        "layer {k} does not exist: the encoder has hidden states 0..={} (0 = the input of the first transformer layer)",
                        n_states - 1
                    ));
                }
                Ok(out)
            }
        }
    }
}

/// Pooling over a clip's valid frames.
#[derive(
    Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    #[default]
    None,
    Mean,
    MeanStd,
}

impl Pooling {
    fn summary(self) -> Option<Summary> {
        match self {
            Pooling::None => None,
            Pooling::Mean => Some(Summary::Mean),
            Pooling::MeanStd => Some(Summary::MeanStd),
        }
    }
}

/// Config of the `embed` stage.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedConfig {
    /// The checkpoint folder (`config.json`, `preprocessor_config.json`,
    /// `model.safetensors` or `pytorch_model.bin`), relative to the pipeline file.
    pub encoder: String,
    #[serde(default)]
    pub layers: Layers,
    #[serde(default)]
    pub pooling: Pooling,
    /// Clips per forward pass.
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    #[serde(default)]
    pub device: DeviceChoice,
    /// Longest clip accepted, in seconds; longer ones are quarantined
    /// (`too_long`): cut them with a `window` stage first.
    #[serde(default = "d_max_s")]
    pub max_s: f64,
    /// Overrides the folder's `do_normalize`.
    pub normalize: Option<bool>,
}

fn d_batch() -> usize {
    4
}

fn d_max_s() -> f64 {
    30.0
}

/// Longest `max_s` accepted: attention is quadratic in frames (60 s = 3000
/// frames: each `[heads, frames, frames]` score tensor of a base model is then
/// 430 MB), so memory stays bounded whatever the input.
const MAX_MAX_S: f64 = 60.0;

/// What the table records under `sermo.encoder`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedSettings {
    pub encoder: Identity,
    pub layers: Vec<usize>,
    pub pooling: Pooling,
}

/// The column name of hidden state `k`.
pub fn layer_column(k: usize) -> String {
    format!("layer_{k}")
}

impl EmbedConfig {
    /// Problems with the values, before anything is read.
    pub fn problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.batch_size == 0 || self.batch_size > 1024 {
            p.push(Problem::new(
                "batch_size",
                format!("must be between 1 and 1024, got {}", self.batch_size),
            ));
        }
        if !(self.max_s > 0.0 && self.max_s <= MAX_MAX_S) {
            p.push(
                Problem::new(
                    "max_s",
                    format!("must be in (0, {MAX_MAX_S}] seconds, got {}", self.max_s),
                )
                .with_hint("cut long recordings with a `window` stage (e.g. 10-s windows)"),
            );
        }
        if self.device == DeviceChoice::Cuda && !crate::train::device::CUDA_BUILT {
            p.push(
                Problem::new("device", "this build has no CUDA backend").with_hint(
                    "use device = \"cpu\" or \"auto\", or build with the `cuda` feature",
                ),
            );
        }
        p
    }

    /// The settings the table will record (identity hashed from the folder).
    pub fn settings(&self, folder: &Path) -> Result<EmbedSettings, String> {
        if !folder.is_dir() {
            return Err(format!(
                "checkpoint folder {} does not exist",
                folder.display()
            ));
        }
        let config = EncoderConfig::from_folder(folder).map_err(|e| e.to_string())?;
        let layers = self.layers.resolve(config.num_hidden_states())?;
        let encoder =
            super::identity(folder, &config, self.normalize).map_err(|e| e.to_string())?;
        Ok(EmbedSettings {
            encoder,
            layers,
            pooling: self.pooling,
        })
    }

    /// The output schema for an audio input schema.
    pub fn output_schema(&self, input: &Schema, settings: &EmbedSettings) -> SchemaRef {
        let base = schema::features_base_schema();
        let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
        if let Ok(f) = input.field_with_name(col::VARIANT) {
            fields.push(f.clone());
        }
        let h = settings.encoder.hidden_size;
        let item = Arc::new(Field::new_list_field(DataType::Float32, false));
        let ty = match self.pooling {
            Pooling::None => DataType::List(Arc::new(Field::new_list_field(
                DataType::FixedSizeList(item, h as i32),
                false,
            ))),
            Pooling::Mean => DataType::FixedSizeList(item, h as i32),
            Pooling::MeanStd => DataType::FixedSizeList(item, 2 * h as i32),
        };
        for &k in &settings.layers {
            fields.push(Field::new(layer_column(k), ty.clone(), false));
        }
        let mut md = base.metadata().clone();
        md.insert(
            ENCODER_KEY.to_string(),
            serde_json::to_string(settings).unwrap_or_default(),
        );
        Arc::new(Schema::new_with_metadata(fields, md))
    }
}

impl EmbedSettings {
    /// Load the recorded encoder for inference: from `folder` (default: the
    /// recorded one), refused unless its config and weights hash as recorded.
    pub fn load(
        &self,
        folder: Option<&Path>,
        choice: DeviceChoice,
    ) -> Result<(Loaded, String), String> {
        let folder = folder
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.encoder.folder.clone().into());
        self.check(&folder)?;
        Loaded::load(&folder, Some(self.encoder.normalize), choice)
    }

    /// Whether `folder` holds the recorded encoder (config and weights hashes).
    pub fn check(&self, folder: &Path) -> Result<(), String> {
        let config = EncoderConfig::from_folder(folder).map_err(|e| e.to_string())?;
        let found = super::identity(folder, &config, Some(self.encoder.normalize))
            .map_err(|e| e.to_string())?;
        let mut differs = Vec::new();
        if found.config_hash != self.encoder.config_hash {
            differs.push("config.json");
        }
        if found.weights_hash != self.encoder.weights_hash {
            differs.push("weights");
        }
        if differs.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the encoder at {} is not the one the model was trained on (its {} differ from the table's record); point `encoder` at the original checkpoint folder",
                folder.display(),
                differs.join(" and ")
            ))
        }
    }

    /// An [`Embedder`] of `encoder` giving these settings' columns for audio
    /// rows of `input`.
    pub fn embedder(&self, encoder: Loaded, input: &Schema) -> Embedder {
        let cfg = EmbedConfig {
            encoder: self.encoder.folder.clone(),
            layers: Layers::List(self.layers.clone()),
            pooling: self.pooling,
            batch_size: d_batch(),
            device: DeviceChoice::Cpu,
            max_s: MAX_MAX_S,
            normalize: Some(self.encoder.normalize),
        };
        Embedder {
            encoder,
            layers: self.layers.clone(),
            pooling: self.pooling,
            batch_size: d_batch(),
            max_s: MAX_MAX_S,
            schema: cfg.output_schema(input, self),
        }
    }
}

/// The settings recorded in a table's metadata, if it was made by `embed`.
pub fn settings_of(schema: &Schema) -> Option<EmbedSettings> {
    serde_json::from_str(schema.metadata().get(ENCODER_KEY)?).ok()
}

/// A loaded encoder on its device.
pub enum Loaded {
    Cpu(Box<Pretrained<crate::train::Cpu>>),
    #[cfg(feature = "cuda")]
    Gpu(Box<Pretrained<crate::train::Gpu>>),
}

impl Loaded {
    /// Load `folder` on the device `choice` resolves to; the line says which.
    pub fn load(
        folder: &Path,
        normalize: Option<bool>,
        choice: DeviceChoice,
    ) -> Result<(Loaded, String), String> {
        let r = resolve(choice)?;
        let loaded = match r.device {
            Device::Cpu => Loaded::Cpu(Box::new(
                Pretrained::load(folder, normalize, &Default::default())
                    .map_err(|e| e.to_string())?,
            )),
            #[cfg(feature = "cuda")]
            Device::Cuda(i) => {
                let device = burn::backend::cuda::CudaDevice::new(i);
                Loaded::Gpu(Box::new(
                    Pretrained::load(folder, normalize, &device).map_err(|e| e.to_string())?,
                ))
            }
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(_) => return Err("this build has no CUDA backend".into()),
        };
        Ok((loaded, r.description))
    }

    pub fn config(&self) -> &EncoderConfig {
        match self {
            Loaded::Cpu(p) => &p.config,
            #[cfg(feature = "cuda")]
            Loaded::Gpu(p) => &p.config,
        }
    }

    pub fn identity(&self) -> &Identity {
        match self {
            Loaded::Cpu(p) => &p.identity,
            #[cfg(feature = "cuda")]
            Loaded::Gpu(p) => &p.identity,
        }
    }

    pub fn run(
        &self,
        clips: &[&[f32]],
        layers: &[usize],
    ) -> Result<Vec<super::ClipStates>, String> {
        match self {
            Loaded::Cpu(p) => p.run(clips, layers),
            #[cfg(feature = "cuda")]
            Loaded::Gpu(p) => p.run(clips, layers),
        }
        .map_err(|e| e.to_string())
    }
}

/// A row that could not be embedded: path, clip id, reason, message.
pub type Refused = (String, String, Reason, String);

/// Embeds audio batches.
pub struct Embedder {
    pub encoder: Loaded,
    pub layers: Vec<usize>,
    pub pooling: Pooling,
    pub batch_size: usize,
    pub max_s: f64,
    pub schema: SchemaRef,
}

impl Embedder {
    /// Embed every row of `batch` (audio): the features rows, in input order,
    /// and the rows refused (wrong rate, too short or too long).
    pub fn embed(
        &self,
        batch: &RecordBatch,
    ) -> Result<(Option<RecordBatch>, Vec<Refused>), String> {
        let config = self.encoder.config();
        let rate = config.sample_rate;
        let min = config.receptive_field();
        let max = (self.max_s * rate as f64) as usize;
        let mut refused = Vec::new();
        let mut rows: Vec<(RecordBatch, Vec<f32>)> = Vec::new();
        for i in 0..batch.num_rows() {
            let row = batch.slice(i, 1);
            let fail = |reason, msg: String| {
                (
                    row_str(&row, col::PATH),
                    row_str(&row, col::CLIP_ID),
                    reason,
                    msg,
                )
            };
            let sr = row_u32(&row, col::SAMPLE_RATE)?;
            if sr != rate {
                refused.push(fail(
                    Reason::InvalidFormat,
                    format!("embed: audio at {sr} Hz, the encoder takes {rate} Hz (add a resample stage with rate = {rate})"),
                ));
                continue;
            }
            let mut planes = row_planes(&row, 0)?;
            if planes.len() != 1 {
                refused.push(fail(
                    Reason::InvalidFormat,
                    format!(
                        "embed: {} channels; the encoder takes mono (channels = \"mix\" in decode)",
                        planes.len()
                    ),
                ));
                continue;
            }
            let y = planes.pop().unwrap_or_default();
            if y.len() < min {
                refused.push(fail(
                    Reason::TooShort,
                    format!(
                        "embed: {} samples, shorter than the encoder's receptive field ({min} samples, {:.3} s)",
                        y.len(),
                        min as f64 / rate as f64
                    ),
                ));
                continue;
            }
            if y.len() > max {
                refused.push(fail(
                    Reason::TooLong,
                    format!(
                        "embed: {:.1} s, longer than max_s = {} s (cut it with a `window` stage, or raise max_s)",
                        y.len() as f64 / rate as f64,
                        self.max_s
                    ),
                ));
                continue;
            }
            if y.iter().any(|v| !v.is_finite()) {
                refused.push(fail(
                    Reason::NonFinite,
                    "embed: NaN or infinite samples".into(),
                ));
                continue;
            }
            rows.push((row, y));
        }
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(self.batch_size.max(1)) {
            let clips: Vec<&[f32]> = chunk.iter().map(|(_, y)| y.as_slice()).collect();
            let states = self.encoder.run(&clips, &self.layers)?;
            for ((row, _), s) in chunk.iter().zip(states) {
                out.push(self.row(row, s)?);
            }
        }
        if out.is_empty() {
            return Ok((None, refused));
        }
        let b = arrow::compute::concat_batches(&self.schema, &out).map_err(|e| e.to_string())?;
        Ok((Some(b), refused))
    }

    fn row(&self, row: &RecordBatch, s: super::ClipStates) -> Result<RecordBatch, String> {
        let h = self.encoder.config().hidden_size;
        let mut cols: Vec<ArrayRef> = Vec::new();
        let n_keys = self.schema.fields().len() - self.layers.len();
        for f in self.schema.fields().iter().take(n_keys) {
            cols.push(
                row.column_by_name(f.name())
                    .cloned()
                    .ok_or_else(|| format!("missing column `{}`", f.name()))?,
            );
        }
        for data in s.layers {
            cols.push(column(&Mat { dims: h, data }, self.pooling.summary()));
        }
        RecordBatch::try_new(self.schema.clone(), cols).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_choices() {
        assert_eq!(Layers::default().resolve(3).unwrap(), vec![0, 1, 2]);
        assert_eq!(Layers::Named("last".into()).resolve(13).unwrap(), vec![12]);
        assert_eq!(Layers::List(vec![12, 6]).resolve(13).unwrap(), vec![6, 12]);
        let e = Layers::List(vec![13]).resolve(13).unwrap_err();
        assert!(e.contains("layer 13 does not exist"), "{e}");
        let e = Layers::Named("best".into()).resolve(13).unwrap_err();
        assert!(e.contains("`best` is not a layer choice"), "{e}");
        assert!(Layers::List(vec![1, 1]).resolve(3).is_err());
    }
}
