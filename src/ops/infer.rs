//! `infer` stage: a trained model (its folder, written by the `train` sink) applied
//! to audio windows or to feature rows, one `predictions` row per input row.
//!
//! ```toml
//! [stages.emotion]
//! kind = "infer"
//! input = "segments"           # audio (e.g. 3-s windows) or a features table
//! model = "runs/emodb-cnn1d"   # config.json + model.mpk
//! batch_size = 64              # windows per forward pass
//! device = "cpu"               # cpu | cuda | auto (src/train/device.rs)
//! smooth = { median = 3 }      # optional: per-class median over consecutive segments
//! min_confidence = 0.4         # optional: label `uncertain` below this top probability
//! ```
//! Fed audio, the stage computes the features itself with the settings recorded in
//! the model's `config.json`, so training and inference cannot disagree; fed
//! features, it compares the table's recorded settings with the model's and
//! refuses a mismatch at validation. A model trained on a pretrained encoder's
//! hidden states (an `embed` table) runs that encoder on audio itself: the
//! checkpoint folder the table recorded (or `encoder = "<folder>"`), refused
//! unless its config and weights hash as recorded. A row that cannot be scored
//! (wrong sample rate, too short for one frame) is quarantined; the others go on.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, ListArray, StringArray, UInt32Array};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, SchemaRef};
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::per_row::{Failed, map_batches};
use crate::audio::Reason;
use crate::encoders::embed::{EmbedSettings, Embedder, Loaded};
use crate::engine::{
    BatchStream, Component, ConfigContext, Frame, Operator, OperatorConfig, PlanInput, Problem,
    Role, TaskContext,
};
use crate::error::{Result, SermoError};
use crate::frontend::{FeaturesConfig, RowFeaturizer};
use crate::rows::{row_str, row_u32};
use crate::schema::{self, CLASSES_KEY, FEATURES_KEY, TableKind, col, require_inputs};
use crate::train::data::{Example, Normalize, column_width, examples};
use crate::train::device::DeviceChoice;
use crate::train::inference::{LoadedModel, ModelArtifact};
use crate::train::training::argmax;

/// `smooth = { median = K }`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Smooth {
    /// Odd window length in segments (centered; shorter at a clip's ends).
    pub median: usize,
}

/// Config of the `infer` stage.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InferConfig {
    /// The model folder (`config.json` + `model.mpk`).
    pub model: String,
    /// Rows per forward pass.
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    #[serde(default)]
    pub device: DeviceChoice,
    pub smooth: Option<Smooth>,
    /// For a model trained on an `embed` table, fed audio: the encoder's
    /// checkpoint folder, if not where the table recorded it.
    pub encoder: Option<String>,
    /// Abstain below this: a row whose top class probability (after smoothing)
    /// is under it is labelled `uncertain`; its `confidence` and `probs` are
    /// kept. Between 0 and 1; off when absent.
    pub min_confidence: Option<f32>,
}

fn d_batch() -> usize {
    64
}

impl Component for InferConfig {
    const KIND: &'static str = "infer";
    const ROLE: Role = Role::Stage;
    const SUMMARY: &'static str =
        "apply a trained model to audio windows or feature rows: label, confidence, probs per row";
}

use crate::train::inference::read_artifact;

/// Keys whose values differ between two feature settings (JSON objects).
pub fn settings_diff(model: &serde_json::Value, table: &serde_json::Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let a = model.as_object().unwrap_or(&empty);
    let b = table.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let show = |v: Option<&serde_json::Value>| {
                v.map(|v| v.to_string())
                    .unwrap_or_else(|| "(absent)".into())
            };
            format!("{k}: model {} vs input {}", show(a.get(k)), show(b.get(k)))
        })
        .collect()
}

impl InferConfig {
    /// The encoder folder of a model trained on an `embed` table.
    fn encoder_folder(&self, settings: &EmbedSettings, ctx: &ConfigContext) -> PathBuf {
        match &self.encoder {
            Some(e) => ctx.resolve(e),
            None => PathBuf::from(&settings.encoder.folder),
        }
    }

    fn artifact(&self, ctx: &ConfigContext) -> std::result::Result<ModelArtifact, String> {
        read_artifact(&ctx.resolve(&self.model))
    }

    fn model_path(&self, ctx: &ConfigContext) -> PathBuf {
        ctx.resolve(&self.model)
    }
}

/// The output schema: `predictions` with the class order in its metadata.
pub fn predictions_schema(labels: &[String]) -> SchemaRef {
    let s = schema::predictions_schema();
    let mut md = s.metadata().clone();
    md.insert(CLASSES_KEY.to_string(), labels.join(","));
    Arc::new(s.as_ref().clone().with_metadata(md))
}

impl OperatorConfig for InferConfig {
    fn check(&self, ctx: &ConfigContext) -> Vec<Problem> {
        let mut p = Vec::new();
        if !(1..=crate::limits::MAX_BATCH).contains(&self.batch_size) {
            p.push(Problem::new(
                "batch_size",
                format!(
                    "must be between 1 and {}, got {}",
                    crate::limits::MAX_BATCH,
                    self.batch_size
                ),
            ));
        }
        if let Some(s) = &self.smooth
            && (s.median == 0 || s.median % 2 == 0)
        {
            p.push(Problem::new(
                "smooth",
                format!("median must be an odd number of segments, got {}", s.median),
            ));
        }
        if let Some(m) = self.min_confidence
            && !(m.is_finite() && (0.0..=1.0).contains(&m))
        {
            p.push(Problem::new(
                "min_confidence",
                format!("must be a probability between 0 and 1, got {m}"),
            ));
        }
        if self.device == DeviceChoice::Cuda && !crate::train::device::CUDA_BUILT {
            p.push(
                Problem::new("device", "this build has no CUDA backend").with_hint(
                    "use device = \"cpu\" or \"auto\", or build with the `cuda` feature",
                ),
            );
        }
        match self.artifact(ctx) {
            Err(e) => p.push(Problem::new("model", e)),
            Ok(a) if a.normalize == Normalize::Speaker => p.push(
                Problem::new(
                    "model",
                    "was trained with normalize = \"speaker\", which needs every clip of a speaker before the first prediction",
                )
                .with_hint("train the model for inference with normalize = \"global\"; score stored tables with `sermo eval`"),
            ),
            Ok(a) => {
                if self.min_confidence.is_some()
                    && let Some(l) = a.labels.iter().find(|l| !crate::timeline::is_class(l))
                {
                    p.push(Problem::new(
                        "min_confidence",
                        format!("the model has a class named `{l}`, the label abstention and speech detection give"),
                    ));
                }
            }
        }
        p
    }

    fn plan(&self, _inputs: &[PlanInput]) -> std::result::Result<SchemaRef, String> {
        Err("needs the pipeline's folder to find its model".into())
    }

    fn plan_in(
        &self,
        inputs: &[PlanInput],
        ctx: &ConfigContext,
    ) -> std::result::Result<SchemaRef, String> {
        let a = self.artifact(ctx)?;
        let s = require_inputs(inputs, &[TableKind::Audio, TableKind::Features])?;
        match TableKind::of(&s) {
            TableKind::Audio => {
                schema::require_mono(&s)?;
                if s.field_with_name(col::SPEECH).is_ok()
                    && let Some(l) = a.labels.iter().find(|l| !crate::timeline::is_class(l))
                {
                    return Err(format!(
                        "the model has a class named `{l}`, the label its input's rows without speech get"
                    ));
                }
                // A fine-tuned encoder (`ssl_finetune`) takes the audio itself.
                if let Some(spec) = &a.model.encoder {
                    let want = spec.config.sample_rate;
                    schema::require_sample_rate(&s, want, "the model's encoder", false)?;
                    return Ok(predictions_schema(&a.labels));
                }
                if let Some(es) = &a.encoder_settings {
                    let settings: EmbedSettings =
                        serde_json::from_value(es.clone()).map_err(|e| {
                            format!(
                                "model {}: its encoder settings do not parse: {e}",
                                self.model
                            )
                        })?;
                    let folder = self.encoder_folder(&settings, ctx);
                    settings.check(&folder)?;
                    let want = settings.encoder.sample_rate;
                    schema::require_sample_rate(&s, want, "the model's encoder", false)?;
                    return Ok(predictions_schema(&a.labels));
                }
                let Some(fs) = &a.feature_settings else {
                    return Err(format!(
                        "model {} records no feature settings, so it cannot featurize audio; feed it a features table",
                        self.model
                    ));
                };
                serde_json::from_value::<FeaturesConfig>(fs.clone()).map_err(|e| {
                    format!(
                        "model {}: its feature settings do not parse: {e}",
                        self.model
                    )
                })?;
                // A fixed input rate that is not the model's is known now; decoded
                // files of their own rates are checked per row at run time.
                if let Some(want) = a.sample_rate {
                    schema::require_sample_rate(
                        &s,
                        want,
                        &format!("model {} (trained on {want} Hz audio)", self.model),
                        false,
                    )?;
                }
            }
            _ => {
                for f in &a.features {
                    let field = s.field_with_name(f).map_err(|_| {
                        format!("the model reads feature column `{f}`, which its input lacks")
                    })?;
                    if column_width(field.data_type()).is_none() {
                        return Err(format!(
                            "column `{f}` is {}, not a feature column",
                            field.data_type()
                        ));
                    }
                }
                let table = s
                    .metadata()
                    .get(FEATURES_KEY)
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok());
                if let (Some(m), Some(t)) = (&a.feature_settings, &table) {
                    let diff = settings_diff(m, t);
                    if !diff.is_empty() {
                        return Err(format!(
                            "its input's features were computed with other settings than the model's: {}; feed it audio (the stage then computes the model's features) or recompute the table",
                            diff.join("; ")
                        ));
                    }
                }
            }
        }
        Ok(predictions_schema(&a.labels))
    }

    fn build(&self, ctx: &ConfigContext) -> Result<Box<dyn Operator>> {
        let dir = self.model_path(ctx);
        let model = LoadedModel::load_on(&dir, self.device)
            .map_err(|e| SermoError::stage("infer", Some(dir.clone()), e))?;
        if self.device != DeviceChoice::Cpu {
            eprintln!("sermo: infer: model on the {}", model.device);
        }
        // A model on encoder hidden states: load the encoder once, here.
        let encoder = match &model.artifact.encoder_settings {
            Some(es) => {
                let settings: EmbedSettings = serde_json::from_value(es.clone())
                    .map_err(|e| SermoError::stage("infer", Some(dir.clone()), e.to_string()))?;
                let folder = self.encoder_folder(&settings, ctx);
                let (loaded, _) = settings
                    .load(Some(&folder), self.device)
                    .map_err(|e| SermoError::stage("infer", Some(folder), e))?;
                Some((settings, loaded))
            }
            None => None,
        };
        Ok(Box::new(Infer {
            cfg: self.clone(),
            model: Arc::new(model),
            encoder,
        }))
    }
}

struct Infer {
    cfg: InferConfig,
    model: Arc<LoadedModel>,
    /// The encoder of a model trained on an `embed` table.
    encoder: Option<(EmbedSettings, Loaded)>,
}

/// How audio rows become the model's feature rows.
enum Featurizer {
    /// The input is a features table already.
    None,
    /// The `features` front end with the model's recorded settings.
    Frontend(Box<RowFeaturizer>),
    /// The pretrained encoder the model's table was embedded with.
    Encoder(Embedder),
    /// A fine-tuned encoder's model (`ssl_finetune`) reads the audio itself:
    /// rows at another rate, shorter than one encoder frame or not finite are
    /// refused here.
    Audio { rate: u32, min_samples: usize },
}

/// The rows of an audio batch a fine-tuned encoder can take, and the refused.
fn audio_rows(
    batch: &RecordBatch,
    rate: u32,
    min_samples: usize,
) -> std::result::Result<(RecordBatch, Vec<Failed>), String> {
    use arrow::array::{Array, AsArray, BooleanArray};
    let mut keep = Vec::with_capacity(batch.num_rows());
    let mut failed = Vec::new();
    let samples = batch
        .column_by_name(col::SAMPLES)
        .and_then(|c| c.as_list_opt::<i32>().cloned())
        .ok_or("needs mono audio rows (a `samples` list column)")?;
    for i in 0..batch.num_rows() {
        let row = batch.slice(i, 1);
        let sr = row_u32(&row, col::SAMPLE_RATE)?;
        let v = samples.value(i);
        let values = v.as_primitive_opt::<arrow::datatypes::Float32Type>();
        let problem = if sr != rate {
            Some((
                Reason::InvalidFormat,
                format!(
                    "audio at {sr} Hz, the model's encoder takes {rate} Hz (add a resample stage with rate = {rate})"
                ),
            ))
        } else if v.len() < min_samples {
            Some((
                Reason::TooShort,
                format!(
                    "{} samples, shorter than the encoder's receptive field ({min_samples})",
                    v.len()
                ),
            ))
        } else if values.is_none_or(|a| a.values().iter().any(|x| !x.is_finite())) {
            Some((Reason::NonFinite, "NaN or infinite samples".into()))
        } else {
            None
        };
        keep.push(problem.is_none());
        if let Some((reason, msg)) = problem {
            failed.push((
                row_str(&row, col::PATH),
                row_str(&row, col::CLIP_ID),
                reason,
                msg,
            ));
        }
    }
    let kept = arrow::compute::filter_record_batch(batch, &BooleanArray::from(keep))
        .map_err(|e| e.to_string())?;
    Ok((kept, failed))
}

/// The rows of `batch` without speech (`speech = false`, from `window mode =
/// "speech"`) and the others, when it has any.
fn split_silence(
    batch: &RecordBatch,
) -> std::result::Result<Option<(RecordBatch, RecordBatch)>, String> {
    use arrow::array::{Array, AsArray};
    let Some(speech) = batch
        .column_by_name(col::SPEECH)
        .and_then(|c| c.as_boolean_opt().cloned())
    else {
        return Ok(None);
    };
    let silent: arrow::array::BooleanArray = (0..speech.len())
        .map(|i| Some(speech.is_valid(i) && !speech.value(i)))
        .collect();
    if silent.true_count() == 0 {
        return Ok(None);
    }
    let voiced = arrow::compute::not(&silent).map_err(|e| e.to_string())?;
    let f = |m: &arrow::array::BooleanArray| {
        arrow::compute::filter_record_batch(batch, m).map_err(|e| e.to_string())
    };
    Ok(Some((f(&silent)?, f(&voiced)?)))
}

/// Prediction rows labelled `silence` for rows without speech: not classified
/// (confidence 0, no probabilities).
fn silence_predictions(
    keys: &RecordBatch,
    out_schema: &SchemaRef,
) -> std::result::Result<RecordBatch, String> {
    let n = keys.num_rows();
    let empty: Vec<Vec<f32>> = vec![Vec::new(); n];
    let b = predictions_batch(keys, &empty, &[], out_schema, None)?;
    let mut cols = b.columns().to_vec();
    let at = |name: &str| out_schema.index_of(name).map_err(|e| e.to_string());
    cols[at(col::LABEL)?] = Arc::new(StringArray::from(vec![crate::timeline::SILENCE; n]));
    cols[at("confidence")?] = Arc::new(Float32Array::from(vec![0f32; n]));
    RecordBatch::try_new(out_schema.clone(), cols).map_err(|e| e.to_string())
}

/// `parts` (rows of `input`, each once) in `input`'s order of (clip, segment).
fn in_input_order(
    input: &RecordBatch,
    parts: &[RecordBatch],
    schema: &SchemaRef,
) -> std::result::Result<RecordBatch, String> {
    use arrow::array::AsArray;
    let key = |b: &RecordBatch| -> std::result::Result<Vec<(String, u32)>, String> {
        let clip = b
            .column_by_name(col::CLIP_ID)
            .and_then(|c| c.as_string_opt::<i32>().cloned())
            .ok_or("rows lack `clip_id`")?;
        let seg = b
            .column_by_name(col::SEGMENT)
            .and_then(|c| {
                c.as_primitive_opt::<arrow::datatypes::UInt32Type>()
                    .cloned()
            })
            .ok_or("rows lack `segment`")?;
        Ok((0..b.num_rows())
            .map(|i| (clip.value(i).to_string(), seg.value(i)))
            .collect())
    };
    let position: HashMap<(String, u32), usize> = key(input)?
        .into_iter()
        .enumerate()
        .map(|(i, k)| (k, i))
        .collect();
    let all = arrow::compute::concat_batches(schema, parts).map_err(|e| e.to_string())?;
    let mut idx: Vec<(usize, u32)> = key(&all)?
        .iter()
        .enumerate()
        .map(|(j, k)| (position.get(k).copied().unwrap_or(usize::MAX), j as u32))
        .collect();
    idx.sort();
    let take = UInt32Array::from(idx.into_iter().map(|x| x.1).collect::<Vec<_>>());
    arrow::compute::take_record_batch(&all, &take).map_err(|e| e.to_string())
}

/// Score one input batch: a predictions batch (rows that could be scored) and the
/// rows that could not.
fn infer_batch(
    model: &LoadedModel,
    featurizer: &Featurizer,
    batch: &RecordBatch,
    out_schema: &SchemaRef,
    batch_size: usize,
    abstain: Option<f32>,
) -> std::result::Result<(Option<RecordBatch>, Vec<Failed>), String> {
    // Rows without speech are not classified: labelled `silence`, in place.
    if let Some((silent, voiced)) = split_silence(batch)? {
        let mut parts = vec![silence_predictions(&silent, out_schema)?];
        let mut failed = Vec::new();
        if voiced.num_rows() > 0 {
            let (scored, f) =
                infer_batch(model, featurizer, &voiced, out_schema, batch_size, abstain)?;
            parts.extend(scored);
            failed = f;
        }
        return Ok((Some(in_input_order(batch, &parts, out_schema)?), failed));
    }
    let a = &model.artifact;
    let mut failed = Vec::new();
    // Feature rows (computed here from audio, or given).
    let feats: Vec<RecordBatch> = match featurizer {
        Featurizer::None => vec![batch.clone()],
        Featurizer::Audio { rate, min_samples } => {
            let (kept, refused) = audio_rows(batch, *rate, *min_samples)?;
            failed.extend(refused);
            vec![kept]
        }
        Featurizer::Encoder(e) => {
            let (rows, refused) = e.embed(batch)?;
            failed.extend(refused);
            rows.into_iter().collect()
        }
        Featurizer::Frontend(f) => {
            let mut rows = Vec::new();
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
                if let Some(want) = a.sample_rate
                    && sr != want
                {
                    failed.push(fail(
                        Reason::InvalidFormat,
                        format!(
                            "audio at {sr} Hz, the model was trained on {want} Hz (add a resample stage with rate = {want})"
                        ),
                    ));
                    continue;
                }
                match f.row(&row) {
                    Ok(b) => rows.push(b),
                    Err(e) => failed.push(fail(Reason::InvalidFormat, e)),
                }
            }
            rows
        }
    };
    let index: std::collections::BTreeMap<String, usize> = a
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.clone(), i))
        .collect();
    let mut ex: Vec<Example> = Vec::new();
    let mut keys: Vec<RecordBatch> = Vec::new();
    for fb in &feats {
        let e = examples(fb, &a.features, col::SPEAKER, &index)?;
        for (i, e) in e.into_iter().enumerate() {
            if e.frames == 0 {
                failed.push((
                    row_str(&fb.slice(i, 1), col::PATH),
                    e.clip_id.clone(),
                    Reason::TooShort,
                    "no complete feature frame".into(),
                ));
                continue;
            }
            // Non-finite values never reach the model: the segment is refused.
            if e.x.iter().any(|v| !v.is_finite()) {
                failed.push((
                    row_str(&fb.slice(i, 1), col::PATH),
                    e.clip_id.clone(),
                    Reason::NonFinite,
                    format!(
                        "segment {} ({:.3}–{:.3} s): NaN or infinite values, not scored",
                        e.segment, e.start_s, e.end_s
                    ),
                ));
                continue;
            }
            let dims = e.x.len() / e.frames;
            if dims != a.model.input_dim {
                return Err(format!(
                    "{} values per frame, the model expects {}",
                    dims, a.model.input_dim
                ));
            }
            keys.push(fb.slice(i, 1));
            ex.push(e);
        }
    }
    if ex.is_empty() {
        return Ok((None, failed));
    }
    let refs: Vec<&Example> = ex.iter().collect();
    let probs = model.predict_with(&refs, batch_size)?;
    let keys =
        arrow::compute::concat_batches(&keys[0].schema(), &keys).map_err(|e| e.to_string())?;
    Ok((
        Some(predictions_batch(
            &keys, &probs, &a.labels, out_schema, abstain,
        )?),
        failed,
    ))
}

/// The label of one row's probabilities: the top class, or `uncertain` when its
/// probability is under `abstain`.
fn decide<'a>(p: &[f32], labels: &'a [String], abstain: Option<f32>) -> &'a str {
    let top = argmax(p);
    match (abstain, p.get(top)) {
        (Some(m), Some(&c)) if c < m => crate::timeline::UNCERTAIN,
        _ => labels.get(top).map(String::as_str).unwrap_or(""),
    }
}

/// Row keys of `keys` plus label, confidence and probs.
fn predictions_batch(
    keys: &RecordBatch,
    probs: &[Vec<f32>],
    labels: &[String],
    out_schema: &SchemaRef,
    abstain: Option<f32>,
) -> std::result::Result<RecordBatch, String> {
    let n = keys.num_rows();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for f in out_schema.fields() {
        let name = f.name().as_str();
        let c: ArrayRef = match name {
            // Keys are input rows (`label` = truth) or, when smoothing, rows of
            // this table (which carry `true_label`).
            "true_label" => keys
                .column_by_name("true_label")
                .or_else(|| keys.column_by_name(col::LABEL))
                .cloned()
                .unwrap_or_else(|| Arc::new(StringArray::new_null(n))),
            "label" => Arc::new(StringArray::from_iter_values(
                probs.iter().map(|p| decide(p, labels, abstain)),
            )),
            "confidence" => Arc::new(Float32Array::from_iter_values(
                probs
                    .iter()
                    .map(|p| p.get(argmax(p)).copied().unwrap_or(0.0)),
            )),
            "probs" => {
                let values = Float32Array::from_iter_values(probs.iter().flatten().copied());
                Arc::new(ListArray::new(
                    Arc::new(Field::new_list_field(DataType::Float32, false)),
                    OffsetBuffer::from_lengths(probs.iter().map(|p| p.len())),
                    Arc::new(values),
                    None,
                ))
            }
            col::SEGMENT if keys.column_by_name(name).is_none() => {
                Arc::new(UInt32Array::from(vec![0u32; n]))
            }
            other => keys
                .column_by_name(other)
                .cloned()
                .ok_or_else(|| format!("input lacks column `{other}`"))?,
        };
        cols.push(c);
    }
    RecordBatch::try_new(out_schema.clone(), cols).map_err(|e| e.to_string())
}

/// Per-clip centered median smoothing of `probs` over consecutive rows; emits a
/// row once the rows after it that its window needs have arrived (or its clip
/// is done).
struct Smoother {
    k: usize,
    labels: Vec<String>,
    abstain: Option<f32>,
    schema: SchemaRef,
    clips: HashMap<String, ClipState>,
}

#[derive(Default)]
struct ClipState {
    /// probs of the last rows (at most k), with the index of the first.
    probs: VecDeque<Vec<f32>>,
    first: usize,
    /// Rows not yet emitted (one-row batches) and their index among the
    /// clip's scored rows (`None`: a `silence` row, passed on as it is).
    pending: VecDeque<(Option<usize>, RecordBatch)>,
    seen: usize,
}

fn median(v: &mut [f32]) -> f32 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

impl Smoother {
    fn row_probs(b: &RecordBatch) -> Vec<f32> {
        use arrow::array::{Array, AsArray};
        b.column_by_name("probs")
            .and_then(|c| c.as_list_opt::<i32>().cloned())
            .filter(|l| !l.is_empty())
            .map(|l| {
                l.value(0)
                    .as_primitive::<arrow::datatypes::Float32Type>()
                    .values()
                    .to_vec()
            })
            .unwrap_or_default()
    }

    /// Emit the rows of `clip` whose window is complete (all when `done`).
    fn drain(&mut self, clip: &str, done: bool) -> std::result::Result<Vec<RecordBatch>, String> {
        let h = self.k / 2;
        let mut out = Vec::new();
        let Some(st) = self.clips.get_mut(clip) else {
            return Ok(out);
        };
        while let Some((i, _)) = st.pending.front() {
            let Some(i) = *i else {
                // Silence rows keep their place and their label.
                if let Some((_, row)) = st.pending.pop_front() {
                    out.push(row);
                }
                continue;
            };
            if !done && i + h >= st.seen {
                break;
            }
            let lo = i.saturating_sub(h).max(st.first);
            let hi = (i + h).min(st.seen - 1);
            let classes = self.labels.len();
            let mut sm = vec![0f32; classes];
            for (c, s) in sm.iter_mut().enumerate() {
                let mut v: Vec<f32> = (lo..=hi)
                    .filter_map(|j| st.probs.get(j - st.first).and_then(|p| p.get(c)).copied())
                    .collect();
                *s = if v.is_empty() { 0.0 } else { median(&mut v) };
            }
            let Some((_, row)) = st.pending.pop_front() else {
                break;
            };
            out.push(predictions_batch(
                &row,
                &[sm],
                &self.labels,
                &self.schema,
                self.abstain,
            )?);
            // Keep only the probs later rows' windows still need.
            while st.probs.len() > 1 && st.first + h < i + 1 {
                st.probs.pop_front();
                st.first += 1;
            }
        }
        if done {
            self.clips.remove(clip);
        }
        Ok(out)
    }

    fn push(&mut self, batch: &RecordBatch) -> std::result::Result<Vec<RecordBatch>, String> {
        let mut out = Vec::new();
        for i in 0..batch.num_rows() {
            let row = batch.slice(i, 1);
            let clip = row_str(&row, col::CLIP_ID);
            let st = self.clips.entry(clip.clone()).or_default();
            // A row without probabilities (a `silence` row: not classified) is
            // passed on as it is and does not count in the window.
            let probs = Self::row_probs(&row);
            if probs.is_empty() {
                st.pending.push_back((None, row));
            } else {
                st.probs.push_back(probs);
                st.pending.push_back((Some(st.seen), row));
                st.seen += 1;
            }
            out.extend(self.drain(&clip, false)?);
        }
        Ok(out)
    }

    fn finish(&mut self) -> std::result::Result<Vec<RecordBatch>, String> {
        let clips: Vec<String> = self.clips.keys().cloned().collect();
        let mut out = Vec::new();
        for c in clips {
            out.extend(self.drain(&c, true)?);
        }
        Ok(out)
    }
}

impl Operator for Infer {
    fn execute(mut self: Box<Self>, inputs: Vec<BatchStream>, ctx: TaskContext) -> BatchStream {
        let in_schema = inputs
            .first()
            .map(|s| s.schema())
            .unwrap_or_else(|| schema::audio_schema(false));
        let labels = self.model.artifact.labels.clone();
        let out_schema = predictions_schema(&labels);
        let input = crate::engine::stream::merge_inputs(in_schema.clone(), inputs);
        let finetuned = self
            .model
            .artifact
            .model
            .encoder
            .as_ref()
            .map(|e| &e.config);
        let featurizer = match (TableKind::of(&in_schema), finetuned, self.encoder.take()) {
            (TableKind::Audio, Some(c), _) => Featurizer::Audio {
                rate: c.sample_rate,
                min_samples: c.receptive_field(),
            },
            (TableKind::Audio, None, Some((settings, loaded))) => {
                Featurizer::Encoder(settings.embedder(loaded, &in_schema))
            }
            (TableKind::Audio, None, None) => self
                .model
                .artifact
                .feature_settings
                .clone()
                .and_then(|v| serde_json::from_value::<FeaturesConfig>(v).ok())
                .map(|c| Featurizer::Frontend(Box::new(RowFeaturizer::new(c, &in_schema))))
                .unwrap_or(Featurizer::None),
            _ => Featurizer::None,
        };
        let featurizer = Arc::new(featurizer);
        let model = self.model.clone();
        let batch_size = self.cfg.batch_size.max(1);
        let schema = out_schema.clone();
        let smooth = self.cfg.smooth.clone().filter(|s| s.median > 1);
        // With smoothing, the smoother decides (on the smoothed probabilities).
        let abstain = self.cfg.min_confidence;
        let first = if smooth.is_some() { None } else { abstain };
        let scored = map_batches(input, out_schema.clone(), ctx.clone(), move |batch| {
            let (b, failed) = infer_batch(&model, &featurizer, &batch, &schema, batch_size, first)?;
            Ok((b.into_iter().collect(), failed))
        });
        let Some(smooth) = smooth else {
            return scored;
        };
        let mut sm = Smoother {
            k: smooth.median,
            labels,
            abstain,
            schema: out_schema.clone(),
            clips: HashMap::new(),
        };
        let node = ctx.node_id.clone();
        let smoothed = async_stream::stream! {
            let mut scored = Box::pin(scored);
            while let Some(item) = scored.next().await {
                match item {
                    Ok(Frame::Batch(b)) => match sm.push(&b) {
                        Ok(out) => for b in out { yield Ok(Frame::Batch(b)); },
                        Err(e) => { yield Err(SermoError::stage(&node, None, e)); return; }
                    },
                    Ok(Frame::Done(clip)) => {
                        match sm.drain(&clip, true) {
                            Ok(out) => for b in out { yield Ok(Frame::Batch(b)); },
                            Err(e) => { yield Err(SermoError::stage(&node, None, e)); return; }
                        }
                        yield Ok(Frame::Done(clip));
                    }
                    other => yield other,
                }
            }
            match sm.finish() {
                Ok(out) => for b in out { yield Ok(Frame::Batch(b)); },
                Err(e) => yield Err(SermoError::stage(&node, None, e)),
            }
        };
        BatchStream::new(out_schema, smoothed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_diff_names_the_keys() {
        let a = serde_json::json!({"n_fft": 1024, "mfcc": {"n_mfcc": 40}});
        let b = serde_json::json!({"n_fft": 512, "mfcc": {"n_mfcc": 40}});
        assert_eq!(
            settings_diff(&a, &b),
            vec!["n_fft: model 1024 vs input 512".to_string()]
        );
        assert!(settings_diff(&a, &a).is_empty());
    }

    #[test]
    fn a_row_under_min_confidence_is_uncertain() {
        let labels = vec!["angry".to_string(), "sad".to_string()];
        assert_eq!(decide(&[0.3, 0.7], &labels, None), "sad");
        assert_eq!(decide(&[0.3, 0.7], &labels, Some(0.7)), "sad");
        assert_eq!(decide(&[0.3, 0.7], &labels, Some(0.71)), "uncertain");
        assert_eq!(decide(&[0.55, 0.45], &labels, Some(0.6)), "uncertain");
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0]), 2.5);
    }
}
