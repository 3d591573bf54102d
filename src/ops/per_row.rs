//! Stateless per-row processing on the worker pool (features, augment).
//!
//! Each input batch goes to the pool as one job; every row (a one-row batch) maps to
//! zero or more output batches. Output keeps the input order (`buffered`). A row
//! whose function fails is quarantined (with `reason`), the others go on.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::StreamExt;

use crate::audio::Reason;
use crate::engine::{BatchStream, Frame, FrameResult, TaskContext};
use crate::error::SermoError;
use crate::rows::row_str;
use crate::schema::col;

/// A row that could not be processed: path, clip id, quarantine reason, message.
pub type Failed = (String, String, Reason, String);

/// What a batch job gives back: output batches and the rows it quarantines.
pub type BatchResult = Result<(Vec<RecordBatch>, Vec<Failed>), String>;

/// Apply `f` to every input batch on the pool, at most `threads × 2` jobs in
/// flight, output in input order. Quarantined rows become quarantine frames; an
/// `Err` stops the stream naming the stage; other frames pass through in place.
pub fn map_batches<F>(
    input: BatchStream,
    out_schema: SchemaRef,
    ctx: TaskContext,
    f: F,
) -> BatchStream
where
    F: Fn(RecordBatch) -> BatchResult + Send + Sync + 'static,
{
    let concurrency = ctx.pool.threads() * 2;
    map_batches_with(input, out_schema, ctx, concurrency, f)
}

/// [`map_batches`] with at most `concurrency` jobs in flight (1 for a stage
/// whose job already uses every core and whose memory grows per job: `embed`).
pub fn map_batches_with<F>(
    input: BatchStream,
    out_schema: SchemaRef,
    ctx: TaskContext,
    concurrency: usize,
    f: F,
) -> BatchStream
where
    F: Fn(RecordBatch) -> BatchResult + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let concurrency = concurrency.max(1);
    let out = input
        .map(move |item| {
            let ctx = ctx.clone();
            let f = f.clone();
            async move {
                let batch = match item {
                    Ok(Frame::Batch(b)) => b,
                    other => return vec![other],
                };
                match ctx.pool.run(move || f(batch)).await {
                    Err(p) => vec![Err(SermoError::stage_source(&ctx.node_id, None, p))],
                    Ok(Err(e)) => vec![Err(SermoError::stage(&ctx.node_id, None, e))],
                    Ok(Ok((batches, failed))) => failed
                        .into_iter()
                        .map(|(path, id, reason, msg)| {
                            // A format the stage cannot take (a wrong sample
                            // rate) is the file's; anything else (too short for
                            // one frame, non-finite values) is this row's.
                            Ok(if reason == Reason::InvalidFormat {
                                ctx.quarantine(&path, &id, reason.as_str(), msg)
                            } else {
                                ctx.quarantine_row(&path, &id, reason.as_str(), msg)
                            })
                        })
                        .chain(batches.into_iter().map(|b| Ok(Frame::Batch(b))))
                        .collect::<Vec<FrameResult>>(),
                }
            }
        })
        .buffered(concurrency)
        .flat_map(futures::stream::iter);
    BatchStream::new(out_schema, out)
}

/// Apply `f` to every row of `input` on the pool.
pub fn map_rows<F>(
    input: BatchStream,
    out_schema: SchemaRef,
    ctx: TaskContext,
    reason: Reason,
    f: F,
) -> BatchStream
where
    F: Fn(&RecordBatch) -> Result<Vec<RecordBatch>, String> + Send + Sync + 'static,
{
    map_batches(input, out_schema, ctx, move |batch| {
        let (mut out, mut failed) = (Vec::new(), Vec::new());
        for i in 0..batch.num_rows() {
            let row = batch.slice(i, 1);
            match f(&row) {
                Ok(bs) => out.extend(bs),
                Err(e) => failed.push((
                    row_str(&row, col::PATH),
                    row_str(&row, col::CLIP_ID),
                    reason,
                    e,
                )),
            }
        }
        Ok((out, failed))
    })
}
