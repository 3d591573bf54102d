//! Arrow schemas of every edge type. The JSON files in `schemas/` are generated from
//! these functions and a test keeps the two equal (`sermo schema NAME` prints one).
//!
//! Every table carries its kind in the schema metadata under [`TABLE_KIND_KEY`], so a
//! stage can check before anything runs that it is fed the right kind of table.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::engine::PlanInput;

/// Schema metadata key holding the table kind (`files`, `audio`, ...).
pub const TABLE_KIND_KEY: &str = "sermo.table";

/// The kinds of table that flow along edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// One row per input file, before decoding.
    Files,
    /// Decoded audio, one row per clip or chunk of a clip.
    Audio,
    /// Extracted features.
    Features,
    /// Model predictions.
    Predictions,
    /// Per-file failures.
    Quarantine,
    /// Sinks produce nothing.
    Empty,
    /// Any other table (e.g. a Parquet dataset not written by sermo).
    Other,
}

impl TableKind {
    pub const ALL: [TableKind; 7] = [
        TableKind::Files,
        TableKind::Audio,
        TableKind::Features,
        TableKind::Predictions,
        TableKind::Quarantine,
        TableKind::Empty,
        TableKind::Other,
    ];

    /// Every kind that carries rows (all but `Empty`): what a generic sink accepts.
    pub fn data_kinds() -> Vec<TableKind> {
        Self::ALL
            .into_iter()
            .filter(|k| *k != TableKind::Empty)
            .collect()
    }

    pub fn name(self) -> &'static str {
        match self {
            TableKind::Files => "files",
            TableKind::Audio => "audio",
            TableKind::Features => "features",
            TableKind::Predictions => "predictions",
            TableKind::Quarantine => "quarantine",
            TableKind::Empty => "empty",
            TableKind::Other => "other",
        }
    }

    /// The kind recorded in a schema's metadata (`Other` when absent or unknown).
    pub fn of(schema: &Schema) -> TableKind {
        let name = schema.metadata().get(TABLE_KIND_KEY).map(String::as_str);
        TableKind::ALL
            .into_iter()
            .find(|k| Some(k.name()) == name)
            .unwrap_or(TableKind::Other)
    }
}

/// Column names of the row keys shared by every table.
pub mod col {
    pub const CLIP_ID: &str = "clip_id";
    pub const PATH: &str = "path";
    pub const CORPUS: &str = "corpus";
    pub const SPEAKER: &str = "speaker";
    pub const LABEL: &str = "label";
    pub const SEGMENT: &str = "segment";
    pub const START_S: &str = "start_s";
    pub const END_S: &str = "end_s";
    pub const SAMPLE_RATE: &str = "sample_rate";
    pub const SAMPLES: &str = "samples";
    pub const SOURCE_SAMPLE_RATE: &str = "source_sample_rate";
    pub const SOURCE_CHANNELS: &str = "source_channels";
    pub const CODEC: &str = "codec";
    pub const DURATION_S: &str = "duration_s";
    pub const LAST_CHUNK: &str = "last_chunk";
    /// Which augmentation variant a row is (`clean`, `noise_10db`, ...), added by the
    /// `augment` stage and kept by `features`.
    pub const VARIANT: &str = "variant";
    /// Whether an audio row is speech (`window mode = "speech"`): rows without
    /// speech carry no samples and are labelled `silence` by `infer`.
    pub const SPEECH: &str = "speech";
}

/// `schema` with the [`col::SPEECH`] column appended (once).
pub fn with_speech(schema: &Schema) -> SchemaRef {
    if schema.field_with_name(col::SPEECH).is_ok() {
        return Arc::new(schema.clone());
    }
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(col::SPEECH, DataType::Boolean, false));
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn with_kind(fields: Vec<Field>, kind: TableKind, extra: &[(&str, &str)]) -> SchemaRef {
    let mut md = HashMap::new();
    md.insert(TABLE_KIND_KEY.to_string(), kind.name().to_string());
    for (k, v) in extra {
        md.insert(k.to_string(), v.to_string());
    }
    Arc::new(Schema::new_with_metadata(fields, md))
}

/// Identity of a clip: `clip_id`, `path`, `corpus`, `speaker`, `label`.
pub fn clip_fields() -> Vec<Field> {
    vec![
        Field::new(col::CLIP_ID, DataType::Utf8, false),
        Field::new(col::PATH, DataType::Utf8, false),
        Field::new(col::CORPUS, DataType::Utf8, false),
        Field::new(col::SPEAKER, DataType::Utf8, true),
        Field::new(col::LABEL, DataType::Utf8, true),
    ]
}

/// Position of a row within its clip: `segment`, `start_s`, `end_s`, `sample_rate`.
pub fn position_fields() -> Vec<Field> {
    vec![
        Field::new(col::SEGMENT, DataType::UInt32, false),
        Field::new(col::START_S, DataType::Float64, false),
        Field::new(col::END_S, DataType::Float64, false),
        Field::new(col::SAMPLE_RATE, DataType::UInt32, false),
    ]
}

/// The full row keys (clip identity + position), in order.
pub fn row_key_fields() -> Vec<Field> {
    let mut f = clip_fields();
    f.extend(position_fields());
    f
}

/// `files`: one row per input file.
pub fn files_schema() -> SchemaRef {
    with_kind(clip_fields(), TableKind::Files, &[])
}

/// Data type of the `samples` column: `List<Float32>` (mono) or
/// `List<List<Float32>>` (one list per channel) when channels are kept.
pub fn samples_type(keep_channels: bool) -> DataType {
    let mono = DataType::List(Arc::new(Field::new_list_field(DataType::Float32, false)));
    if keep_channels {
        DataType::List(Arc::new(Field::new_list_field(mono, false)))
    } else {
        mono
    }
}

/// `audio`: decoded samples, one row per clip (or per chunk of a long clip, in order;
/// `last_chunk` marks the clip's final row so streaming stages can flush).
pub fn audio_schema(keep_channels: bool) -> SchemaRef {
    let mut f = row_key_fields();
    f.push(Field::new(col::SAMPLES, samples_type(keep_channels), false));
    f.push(Field::new(col::SOURCE_SAMPLE_RATE, DataType::UInt32, false));
    f.push(Field::new(col::SOURCE_CHANNELS, DataType::UInt16, false));
    f.push(Field::new(col::CODEC, DataType::Utf8, false));
    f.push(Field::new(col::DURATION_S, DataType::Float64, true));
    f.push(Field::new(col::LAST_CHUNK, DataType::Boolean, false));
    with_kind(f, TableKind::Audio, &[])
}

/// Metadata key listing the feature columns of a `features` table.
pub const FEATURE_COLUMNS_KEY: &str = "sermo.feature_columns";

/// Metadata key of a `features` table holding the settings that made it (JSON of
/// the `features` stage config): `infer` and `sermo eval` featurize audio with them.
pub const FEATURES_KEY: &str = "sermo.features";

/// Metadata key of an `audio` table whose rows all have one sample rate (set by
/// `resample`): stages that need a rate (`embed`) check it before anything runs.
pub const RATE_KEY: &str = "sermo.sample_rate";

/// `schema` with [`RATE_KEY`] set to `rate`.
pub fn with_sample_rate(schema: &Schema, rate: u32) -> SchemaRef {
    let mut md = schema.metadata().clone();
    md.insert(RATE_KEY.to_string(), rate.to_string());
    Arc::new(schema.clone().with_metadata(md))
}

/// The one sample rate of an `audio` table's rows, when a stage fixed it.
pub fn sample_rate_of(schema: &Schema) -> Option<u32> {
    schema.metadata().get(RATE_KEY)?.parse().ok()
}

/// Validation of a stage that takes mono audio: refuses an `audio` table that
/// keeps channels (`samples` a list of lists), naming the fix.
pub fn require_mono(schema: &Schema) -> std::result::Result<(), String> {
    if let Ok(f) = schema.field_with_name(col::SAMPLES)
        && let DataType::List(inner) = f.data_type()
        && matches!(inner.data_type(), DataType::List(_))
    {
        return Err("needs mono audio, but its input keeps channels (set channels = \"mix\" or \"first\" in decode)".into());
    }
    Ok(())
}

/// Validation of a stage that needs its audio at `want` Hz (`who` takes it: "the
/// encoder", "the model's encoder"). A table with another fixed rate is refused
/// with the fix; one without a fixed rate (decoded files keep their own) is
/// refused too when `fixed_rate_required`, else left to the rows (quarantined
/// one by one at run time).
pub fn require_sample_rate(
    schema: &Schema,
    want: u32,
    who: &str,
    fixed_rate_required: bool,
) -> std::result::Result<(), String> {
    match sample_rate_of(schema) {
        Some(r) if r == want => Ok(()),
        Some(r) => Err(format!(
            "its input is at {r} Hz; {who} takes {want} Hz: set the resample stage's rate = {want}"
        )),
        None if fixed_rate_required => Err(format!(
            "its input has no fixed sample rate (decoded files keep their own); {who} takes {want} Hz: add a resample stage with rate = {want} before it"
        )),
        None => Ok(()),
    }
}

/// Metadata key of a `features` table made by the `embed` stage: the encoder's
/// identity (folder, config and weights hashes, normalization), the layers and
/// the pooling (JSON of `encoders::embed::EmbedSettings`).
pub const ENCODER_KEY: &str = "sermo.encoder";

/// `features`: row keys; each enabled feature then adds one column named after it,
/// `List<FixedSizeList<Float32, D>>` (frames × D, librosa's output transposed), or
/// `FixedSizeList<Float32, D>` when pooled over time. The settings that produced them
/// are recorded in the schema metadata.
pub fn features_base_schema() -> SchemaRef {
    with_kind(
        row_key_fields(),
        TableKind::Features,
        &[(
            FEATURE_COLUMNS_KEY,
            "one column per enabled feature: List<FixedSizeList<Float32, D>> (frames x D) or FixedSizeList<Float32, D> when pooled",
        )],
    )
}

/// An `embed` stage's table as documented (`schemas/embeddings.json`): a
/// `features` table whose feature columns are the chosen hidden states,
/// `layer_K`, shown for a base-size encoder (hidden size 768, 12 layers,
/// `layers = "all"`, `pooling = "mean"`: `FixedSizeList<Float32, 768>`; per
/// frame they are `List<FixedSizeList<Float32, 768>>`, with `mean_std`
/// `FixedSizeList<Float32, 1536>`). The encoder's identity is under
/// `sermo.encoder`.
pub fn embeddings_schema() -> SchemaRef {
    let base = features_base_schema();
    let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
    let item = Arc::new(Field::new_list_field(DataType::Float32, false));
    for k in 0..=12 {
        fields.push(Field::new(
            format!("layer_{k}"),
            DataType::FixedSizeList(item.clone(), 768),
            false,
        ));
    }
    let mut md = base.metadata().clone();
    md.insert(
        ENCODER_KEY.to_string(),
        "the encoder's identity (folder, model_type, config_hash, weights_hash, normalize, sample_rate, hidden_size, num_layers), layers and pooling (JSON)".to_string(),
    );
    Arc::new(Schema::new_with_metadata(fields, md))
}

/// Metadata key with the class order of `probs` in a `predictions` table.
pub const CLASSES_KEY: &str = "sermo.classes";

/// `predictions`: row keys with the ground-truth label (if known) in `true_label`,
/// then the predicted `label`, its `confidence` and `probs` in class order
/// (comma-separated under the `sermo.classes` metadata key).
pub fn predictions_schema() -> SchemaRef {
    let mut f = clip_fields();
    f.retain(|x| x.name() != col::LABEL);
    f.push(Field::new("true_label", DataType::Utf8, true));
    f.extend(position_fields());
    f.push(Field::new(col::LABEL, DataType::Utf8, false));
    f.push(Field::new("confidence", DataType::Float32, false));
    f.push(Field::new(
        "probs",
        DataType::List(Arc::new(Field::new_list_field(DataType::Float32, false))),
        false,
    ));
    with_kind(f, TableKind::Predictions, &[(CLASSES_KEY, "")])
}

/// `quarantine`: one row per file that failed, with the stage and a reason code;
/// `partial` when the rows it had before failing were kept (`keep_partial`).
pub fn quarantine_schema() -> SchemaRef {
    with_kind(
        vec![
            Field::new(col::PATH, DataType::Utf8, false),
            Field::new(col::CLIP_ID, DataType::Utf8, false),
            Field::new("stage", DataType::Utf8, false),
            Field::new("reason", DataType::Utf8, false),
            Field::new("message", DataType::Utf8, false),
            Field::new("partial", DataType::Boolean, false),
        ],
        TableKind::Quarantine,
        &[],
    )
}

/// The schema with no columns that sinks produce.
pub fn empty_schema() -> SchemaRef {
    with_kind(vec![], TableKind::Empty, &[])
}

/// Named schemas documented in `schemas/*.json`.
pub fn documented() -> Vec<(&'static str, SchemaRef)> {
    vec![
        ("files", files_schema()),
        ("audio", audio_schema(false)),
        ("audio_multichannel", audio_schema(true)),
        ("features", features_base_schema()),
        ("embeddings", embeddings_schema()),
        ("predictions", predictions_schema()),
        ("quarantine", quarantine_schema()),
    ]
}

/// A column type in a few words: `string`, `float32`, `list<fixed_size_list<float32, 42>>`.
pub fn type_name(dt: &DataType) -> String {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => {
            format!("list<{}>", type_name(f.data_type()))
        }
        DataType::FixedSizeList(f, n) => {
            format!("fixed_size_list<{}, {n}>", type_name(f.data_type()))
        }
        DataType::Struct(fs) => format!(
            "struct<{}>",
            fs.iter()
                .map(|f| format!("{}: {}", f.name(), type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => format!("{other}").to_lowercase(),
    }
}

/// A schema as a table for people: one line per column (name, type, whether it
/// may be null), then the schema metadata.
pub fn to_text(name: &str, schema: &Schema) -> String {
    let w = schema
        .fields()
        .iter()
        .map(|f| f.name().len())
        .max()
        .unwrap_or(0)
        .max("column".len());
    let types: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| type_name(f.data_type()))
        .collect();
    let tw = types.iter().map(|t| t.len()).max().unwrap_or(0).max(4);
    let mut out = format!(
        "{name}: {} columns\n  {:w$}  {:tw$}  null\n",
        schema.fields().len(),
        "column",
        "type"
    );
    for (f, t) in schema.fields().iter().zip(&types) {
        out.push_str(&format!(
            "  {:w$}  {:tw$}  {}\n",
            f.name(),
            t,
            if f.is_nullable() { "yes" } else { "no" }
        ));
    }
    if !schema.metadata().is_empty() {
        out.push_str("metadata:\n");
        let mut keys: Vec<_> = schema.metadata().iter().collect();
        keys.sort();
        for (k, v) in keys {
            out.push_str(&format!("  {k} = {v}\n"));
        }
    }
    out
}

/// Pretty JSON of a schema, as stored in `schemas/`.
pub fn to_json(schema: &Schema) -> String {
    // Sort metadata for stable output.
    let v = serde_json::to_value(schema).unwrap_or(serde_json::Value::Null);
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

/// Check that every input is a table of one of `accepted` kinds with one common
/// schema, and return that schema.
pub fn require_inputs(
    inputs: &[PlanInput],
    accepted: &[TableKind],
) -> std::result::Result<SchemaRef, String> {
    let names: Vec<&str> = accepted.iter().map(|k| k.name()).collect();
    let want = match names.as_slice() {
        [one] => format!("{} {one} table", article(one)),
        many => format!("one of the tables {}", many.join(", ")),
    };
    let mut first: Option<SchemaRef> = None;
    for input in inputs {
        let kind = TableKind::of(&input.schema);
        if !accepted.contains(&kind) {
            return Err(format!(
                "accepts {want} as input, but input `{}` ({}) produces {} {} table",
                input.id,
                input.kind,
                article(kind.name()),
                kind.name()
            ));
        }
        match &first {
            None => first = Some(input.schema.clone()),
            Some(s) if s.fields() != input.schema.fields() => {
                return Err(format!(
                    "its inputs have different schemas (`{}` differs from `{}`)",
                    input.id, inputs[0].id
                ));
            }
            Some(_) => {}
        }
    }
    first.ok_or_else(|| "has no input".to_string())
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn a_schema_reads_as_a_table() {
        let t = to_text("audio", &audio_schema(false));
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("audio: "), "{t}");
        assert!(
            lines[1].contains("column") && lines[1].contains("type"),
            "{t}"
        );
        assert!(
            lines.iter().any(|l| l.trim_start().starts_with("clip_id")
                && l.contains("string")
                && l.trim_end().ends_with("no")),
            "{t}"
        );
        assert!(t.contains("list<float32>") || t.contains("float32"), "{t}");
        assert!(
            t.contains("metadata:") && t.contains("sermo.table = audio"),
            "{t}"
        );
    }
}
