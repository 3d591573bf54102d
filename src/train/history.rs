//! `history.parquet`: one row per epoch of every ensemble member (epoch,
//! train_loss, train_acc, val_loss, val_acc, lr, seconds, member), written after a
//! fold trains and read back when a member is reused (`reuse`, [`super::reuse`]).

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array, UInt32Array};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, UInt32Type};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::training::Epoch;

/// File name of a fold's training history.
pub const HISTORY_FILE: &str = "history.parquet";

/// The history of every member as one batch (`member` 0, 1, ...).
pub fn to_batch(h: &[(usize, Epoch)]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let f = |name: &str, t: DataType, n: bool| Field::new(name, t, n);
    let schema = Arc::new(Schema::new(vec![
        f("epoch", DataType::UInt32, false),
        f("train_loss", DataType::Float64, false),
        f("train_acc", DataType::Float64, false),
        f("val_loss", DataType::Float64, true),
        f("val_acc", DataType::Float64, true),
        f("lr", DataType::Float64, false),
        f("seconds", DataType::Float64, false),
        f("member", DataType::UInt32, false),
    ]));
    let e = |g: fn(&Epoch) -> f64| Float64Array::from_iter_values(h.iter().map(|(_, e)| g(e)));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(UInt32Array::from_iter_values(
                h.iter().map(|(_, e)| e.epoch as u32),
            )),
            Arc::new(e(|e| e.train_loss)),
            Arc::new(e(|e| e.train_acc)),
            Arc::new(Float64Array::from_iter(h.iter().map(|(_, e)| e.val_loss))),
            Arc::new(Float64Array::from_iter(h.iter().map(|(_, e)| e.val_acc))),
            Arc::new(e(|e| e.lr)),
            Arc::new(e(|e| e.seconds)),
            Arc::new(UInt32Array::from_iter_values(
                h.iter().map(|&(m, _)| m as u32),
            )),
        ],
    )
}

/// Write [`to_batch`] of `h` to `path`.
pub fn write(path: &Path, h: &[(usize, Epoch)]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("cannot write {}: {e}", path.display());
    let batch = to_batch(h).map_err(|e| err(&e))?;
    let f = std::fs::File::create(path).map_err(|e| err(&e))?;
    let mut w =
        parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).map_err(|e| err(&e))?;
    w.write(&batch).map_err(|e| err(&e))?;
    w.close().map_err(|e| err(&e))?;
    Ok(())
}

/// Read a history written by [`write`]: `(member, epoch)` rows in file order.
/// A file without a `member` column (a single model) reads as member 0.
pub fn read(path: &Path) -> Result<Vec<(usize, Epoch)>, String> {
    let err = |e: &dyn std::fmt::Display| format!("cannot read {}: {e}", path.display());
    let f = std::fs::File::open(path).map_err(|e| err(&e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .and_then(|b| b.build())
        .map_err(|e| err(&e))?;
    let mut out = Vec::new();
    for batch in reader {
        let b = batch.map_err(|e| err(&e))?;
        let f64s = |name: &str| -> Result<&Float64Array, String> {
            b.column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<Float64Type>())
                .ok_or_else(|| err(&format!("no Float64 column `{name}`")))
        };
        let epoch = b
            .column_by_name("epoch")
            .and_then(|c| c.as_primitive_opt::<UInt32Type>())
            .ok_or_else(|| err(&"no UInt32 column `epoch`"))?;
        let member = b
            .column_by_name("member")
            .and_then(|c| c.as_primitive_opt::<UInt32Type>());
        let (tl, ta, vl, va, lr, sec) = (
            f64s("train_loss")?,
            f64s("train_acc")?,
            f64s("val_loss")?,
            f64s("val_acc")?,
            f64s("lr")?,
            f64s("seconds")?,
        );
        let opt = |a: &Float64Array, i: usize| a.is_valid(i).then(|| a.value(i));
        for i in 0..b.num_rows() {
            out.push((
                member.map_or(0, |m| m.value(i) as usize),
                Epoch {
                    epoch: epoch.value(i) as usize,
                    train_loss: tl.value(i),
                    train_acc: ta.value(i),
                    val_loss: opt(vl, i),
                    val_acc: opt(va, i),
                    lr: lr.value(i),
                    seconds: sec.value(i),
                },
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_round_trips_with_members_and_missing_validation() {
        let e = |epoch: usize, v: Option<f64>| Epoch {
            epoch,
            train_loss: 1.5 / epoch as f64,
            train_acc: 0.1 * epoch as f64,
            val_loss: v,
            val_acc: v.map(|x| x / 2.0),
            lr: 1e-3,
            seconds: 2.25,
        };
        let h = vec![(0, e(1, Some(1.0))), (0, e(2, None)), (1, e(1, Some(0.5)))];
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(HISTORY_FILE);
        write(&p, &h).unwrap();
        assert_eq!(read(&p).unwrap(), h);
        let missing = read(&dir.path().join("nope.parquet")).unwrap_err();
        assert!(missing.contains("nope.parquet"), "{missing}");
    }
}
