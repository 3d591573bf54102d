//! Stateless per-row processing on the worker pool (features, augment).
//!
//! Each input batch goes to the pool as one job; every row (a one-row batch) maps to
//! zero or more output batches. Output keeps the input order (`buffered`). A row
//! whose function fails is quarantined (with `reason`), the others go on.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::StreamExt;

use super::clip::row_str;
use crate::engine::{BatchStream, Frame, FrameResult, TaskContext};
use crate::error::SermoError;
use crate::schema::col;

/// Apply `f` to every row of `input` on the pool.
pub fn map_rows<F>(
    input: BatchStream,
    out_schema: SchemaRef,
    ctx: TaskContext,
    reason: &'static str,
    f: F,
) -> BatchStream
where
    F: Fn(&RecordBatch) -> Result<Vec<RecordBatch>, String> + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let concurrency = ctx.pool.threads() * 2;
    let out = input
        .map(move |item| {
            let ctx = ctx.clone();
            let f = f.clone();
            async move {
                let batch = match item {
                    Ok(Frame::Batch(b)) => b,
                    other => return vec![other],
                };
                let job = ctx
                    .pool
                    .run(move || {
                        (0..batch.num_rows())
                            .map(|i| {
                                let row = batch.slice(i, 1);
                                f(&row).map_err(|e| (row, e))
                            })
                            .collect::<Vec<_>>()
                    })
                    .await;
                match job {
                    Err(p) => vec![Err(SermoError::stage(&ctx.node_id, None, p.to_string()))],
                    Ok(rows) => rows
                        .into_iter()
                        .flat_map(|r| match r {
                            Ok(bs) => bs
                                .into_iter()
                                .map(|b| Ok(Frame::Batch(b)))
                                .collect::<Vec<FrameResult>>(),
                            Err((row, e)) => {
                                let (path, id) =
                                    (row_str(&row, col::PATH), row_str(&row, col::CLIP_ID));
                                vec![Ok(ctx.quarantine(&path, &id, reason, e))]
                            }
                        })
                        .collect(),
                }
            }
        })
        .buffered(concurrency)
        .flat_map(futures::stream::iter);
    BatchStream::new(out_schema, out)
}
