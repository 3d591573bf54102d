//! Stateful per-clip processing for streaming stages (resample, window, ...).
//!
//! Rows of one clip are processed strictly in order, each with the state the
//! previous row left; rows of different clips run in parallel on the worker pool.
//! Output keeps the input order (`buffered`), so a clip's rows stay in order.
//! The state of a clip is dropped after its `last_chunk` row (or when a quarantine
//! record for it passes), so memory holds only the clips in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::Array;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::{FutureExt, StreamExt};
use tokio::sync::oneshot;

use crate::audio::Reason;
use crate::engine::{BatchStream, Frame, FrameResult, TaskContext};
use crate::error::SermoError;
use crate::rows::row_is_last;
use crate::schema::col;

/// A clip in flight: its state slot and the completion of its previous row.
type InFlight<S> = (Arc<Slot<S>>, Option<oneshot::Receiver<()>>);

/// What a step returns for one input row.
pub type StepOutput = Result<Vec<Frame>, String>;

struct Slot<S> {
    state: Mutex<Option<S>>,
    /// The clip was quarantined: its remaining rows are dropped.
    failed: AtomicBool,
}

/// Apply `step(&mut state, row, is_last)` to every row (a one-row batch) of `input`,
/// with `init(row)` creating a clip's state at its first row. Errors from `init` or
/// `step` quarantine the clip with `reason`.
pub fn map_clips<S, I, F>(
    input: BatchStream,
    out_schema: SchemaRef,
    ctx: TaskContext,
    reason: Reason,
    init: I,
    step: F,
) -> BatchStream
where
    S: Send + 'static,
    I: Fn(&RecordBatch) -> Result<S, String> + Send + Sync + 'static,
    F: Fn(&mut S, RecordBatch, bool) -> StepOutput + Send + Sync + 'static,
{
    let init = Arc::new(init);
    let step = Arc::new(step);
    let concurrency = ctx.pool.threads() * 2;
    // clip_id -> (state slot, completion of the clip's previous row)
    let mut clips: HashMap<String, InFlight<S>> = HashMap::new();
    let node = ctx.node_id.clone();
    let rows = input.flat_map(move |item| {
        let v: Vec<FrameResult> = match item {
            Ok(Frame::Batch(b)) if b.num_rows() > 1 => (0..b.num_rows())
                .map(|i| Ok(Frame::Batch(b.slice(i, 1))))
                .collect(),
            other => vec![other],
        };
        futures::stream::iter(v)
    });
    let futures = rows.map(move |item| {
        let ctx = ctx.clone();
        let init = init.clone();
        let step = step.clone();
        let node = node.clone();
        let (row, clip_id) = match item {
            Ok(Frame::Batch(row)) => {
                let id = clip_id_of(&row).unwrap_or_default();
                (row, id)
            }
            Ok(Frame::Quarantine(q)) => {
                clips.remove(&q.clip_id);
                return futures::future::ready(vec![Ok(Frame::Quarantine(q))]).boxed();
            }
            Ok(Frame::Done(id)) => {
                return futures::future::ready(vec![Ok(Frame::Done(id))]).boxed();
            }
            Err(e) => return futures::future::ready(vec![Err(e)]).boxed(),
        };
        let last = row_is_last(&row, 0);
        let (slot, prev) = match clips.remove(&clip_id) {
            Some((slot, prev)) => (slot, prev),
            None => (
                Arc::new(Slot {
                    state: Mutex::new(None),
                    failed: AtomicBool::new(false),
                }),
                None,
            ),
        };
        let (done_tx, done_rx) = oneshot::channel::<()>();
        if !last {
            clips.insert(clip_id.clone(), (slot.clone(), Some(done_rx)));
        }
        async move {
            if let Some(prev) = prev {
                let _ = prev.await;
            }
            let path = row_path(&row);
            let job_slot = slot.clone();
            let result = ctx
                .pool
                .run(move || -> StepOutput {
                    if job_slot.failed.load(Ordering::SeqCst) {
                        return Ok(Vec::new());
                    }
                    let mut guard = match job_slot.state.lock() {
                        Ok(g) => g,
                        Err(p) => p.into_inner(),
                    };
                    if guard.is_none() {
                        match init(&row) {
                            Ok(s) => *guard = Some(s),
                            Err(e) => {
                                job_slot.failed.store(true, Ordering::SeqCst);
                                return Err(e);
                            }
                        }
                    }
                    let Some(state) = guard.as_mut() else {
                        return Err("no state".into());
                    };
                    let out = step(state, row, last);
                    if out.is_err() {
                        job_slot.failed.store(true, Ordering::SeqCst);
                    }
                    if last || out.is_err() {
                        *guard = None;
                    }
                    out
                })
                .await;
            let _ = done_tx.send(());
            match result {
                Ok(Ok(frames)) => frames.into_iter().map(Ok).collect(),
                Ok(Err(msg)) => vec![Ok(ctx.quarantine(&path, &clip_id, reason.as_str(), msg))],
                Err(panic) => vec![Err(SermoError::stage(
                    &node,
                    Some(path.into()),
                    panic.to_string(),
                ))],
            }
        }
        .boxed()
    });
    let out = futures
        .buffered(concurrency)
        .flat_map(futures::stream::iter);
    BatchStream::new(out_schema, out)
}

fn clip_id_of(row: &RecordBatch) -> Option<String> {
    use arrow::array::AsArray;
    let c = row.column_by_name(col::CLIP_ID)?.as_string_opt::<i32>()?;
    (!c.is_empty()).then(|| c.value(0).to_string())
}

fn row_path(row: &RecordBatch) -> String {
    use arrow::array::AsArray;
    row.column_by_name(col::PATH)
        .and_then(|c| c.as_string_opt::<i32>().map(|a| a.value(0).to_string()))
        .unwrap_or_default()
}
