//! Reading and writing the row keys that identify a clip.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::record_batch::RecordBatch;

use crate::schema::col;

/// The identity of a clip, as carried by every table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipRow {
    pub clip_id: String,
    pub path: String,
    pub corpus: String,
    pub speaker: Option<String>,
    pub label: Option<String>,
}

fn utf8<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, String> {
    batch
        .column_by_name(name)
        .ok_or_else(|| format!("missing column `{name}`"))?
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| format!("column `{name}` is not Utf8"))
}

fn get(a: &StringArray, i: usize) -> Option<String> {
    (!a.is_null(i)).then(|| a.value(i).to_string())
}

/// The clip identity of every row of `batch`.
pub fn clip_rows(batch: &RecordBatch) -> Result<Vec<ClipRow>, String> {
    let ids = utf8(batch, col::CLIP_ID)?;
    let paths = utf8(batch, col::PATH)?;
    let corpus = utf8(batch, col::CORPUS)?;
    let speaker = utf8(batch, col::SPEAKER)?;
    let label = utf8(batch, col::LABEL)?;
    Ok((0..batch.num_rows())
        .map(|i| ClipRow {
            clip_id: get(ids, i).unwrap_or_default(),
            path: get(paths, i).unwrap_or_default(),
            corpus: get(corpus, i).unwrap_or_default(),
            speaker: get(speaker, i),
            label: get(label, i),
        })
        .collect())
}

/// The five identity columns for `rows`, in schema order.
pub fn clip_columns(rows: &[&ClipRow]) -> Vec<ArrayRef> {
    let s = |f: &dyn Fn(&ClipRow) -> Option<&str>| -> ArrayRef {
        Arc::new(rows.iter().map(|r| f(r)).collect::<StringArray>())
    };
    vec![
        s(&|r| Some(r.clip_id.as_str())),
        s(&|r| Some(r.path.as_str())),
        s(&|r| Some(r.corpus.as_str())),
        s(&|r| r.speaker.as_deref()),
        s(&|r| r.label.as_deref()),
    ]
}
