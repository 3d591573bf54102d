//! Reading and writing rows of sermo tables: the row keys that identify a clip
//! ([`ClipRow`]), the samples column (planes in, planes out) and single-row values.
//! Shared by the operators (`ops/`) and the library modules beneath them
//! (`frontend/`).

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

/// Planar samples of row `i` of an audio batch (one Vec for mono, one per channel
/// when channels are kept).
pub fn row_planes(batch: &RecordBatch, i: usize) -> Result<Vec<Vec<f32>>, String> {
    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, Float32Type};
    let col = batch
        .column_by_name(crate::schema::col::SAMPLES)
        .ok_or("missing column `samples`")?;
    let list = col
        .as_list_opt::<i32>()
        .ok_or("column `samples` is not a list")?;
    let row = list.value(i);
    match row.data_type() {
        DataType::Float32 => Ok(vec![row.as_primitive::<Float32Type>().values().to_vec()]),
        DataType::List(_) => {
            let chans = row.as_list::<i32>();
            Ok((0..chans.len())
                .map(|c| {
                    chans
                        .value(c)
                        .as_primitive::<Float32Type>()
                        .values()
                        .to_vec()
                })
                .collect())
        }
        other => Err(format!("column `samples` has unexpected type {other}")),
    }
}

/// Whether row `i` is the last of its clip (`last_chunk`, true when absent).
pub fn row_is_last(batch: &RecordBatch, i: usize) -> bool {
    use arrow::array::AsArray;
    batch
        .column_by_name(crate::schema::col::LAST_CHUNK)
        .and_then(|c| c.as_boolean_opt().map(|b| b.value(i)))
        .unwrap_or(true)
}

/// Samples column for one row from planes: `List<Float32>` (one plane, `keep` false)
/// or `List<List<Float32>>`.
pub fn samples_array(planes: Vec<Vec<f32>>, keep: bool) -> ArrayRef {
    use arrow::array::{Float32Array, ListArray};
    use arrow::buffer::OffsetBuffer;
    use arrow::datatypes::{DataType, Field};
    let item = || Arc::new(Field::new_list_field(DataType::Float32, false));
    if !keep {
        let mono = planes.into_iter().next().unwrap_or_default();
        let n = mono.len();
        return Arc::new(ListArray::new(
            item(),
            OffsetBuffer::from_lengths([n]),
            Arc::new(Float32Array::from(mono)),
            None,
        ));
    }
    let nch = planes.len();
    let lens: Vec<usize> = planes.iter().map(Vec::len).collect();
    let flat: Vec<f32> = planes.into_iter().flatten().collect();
    let inner = ListArray::new(
        item(),
        OffsetBuffer::from_lengths(lens),
        Arc::new(Float32Array::from(flat)),
        None,
    );
    let inner_type = DataType::List(item());
    Arc::new(ListArray::new(
        Arc::new(Field::new_list_field(inner_type, false)),
        OffsetBuffer::from_lengths([nch]),
        Arc::new(inner),
        None,
    ))
}

/// A copy of the one-row batch `row` with some columns replaced.
pub fn replace_columns(
    row: &RecordBatch,
    replace: &[(&str, ArrayRef)],
) -> Result<RecordBatch, String> {
    let schema = row.schema();
    let mut cols = row.columns().to_vec();
    for (name, array) in replace {
        let idx = schema.index_of(name).map_err(|e| e.to_string())?;
        cols[idx] = array.clone();
    }
    RecordBatch::try_new(schema, cols).map_err(|e| e.to_string())
}

/// The Utf8 value of column `name` in row 0 (empty when absent or null).
pub fn row_str(row: &RecordBatch, name: &str) -> String {
    use arrow::array::AsArray;
    row.column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .filter(|a| !a.is_empty() && a.is_valid(0))
        .map(|a| a.value(0).to_string())
        .unwrap_or_default()
}

/// The UInt32 value of column `name` in row 0.
pub fn row_u32(row: &RecordBatch, name: &str) -> Result<u32, String> {
    use arrow::array::AsArray;
    row.column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<arrow::datatypes::UInt32Type>())
        .filter(|a| !a.is_empty())
        .map(|a| a.value(0))
        .ok_or_else(|| format!("missing UInt32 column `{name}`"))
}

/// Whether an audio schema keeps channels (`samples` is `List<List<Float32>>`).
pub fn keeps_channels(schema: &arrow::datatypes::Schema) -> bool {
    use arrow::datatypes::DataType;
    matches!(
        schema.field_with_name(crate::schema::col::SAMPLES).map(|f| f.data_type()),
        Ok(DataType::List(f)) if matches!(f.data_type(), DataType::List(_))
    )
}
