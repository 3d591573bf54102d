//! The unit of exchange between operators: a stream of [`Frame`]s that carries its
//! Arrow schema. Like DataFusion's `SendableRecordBatchStream`, a stream does no work
//! until polled, errors travel in it, and dropping it frees everything upstream of it.

use std::pin::Pin;
use std::task::{Context, Poll};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::Stream;

use crate::error::SermoError;

/// A per-file failure that does not stop the run. It travels downstream to every
/// sink, which records it in its quarantine table.
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantined {
    pub path: String,
    pub clip_id: String,
    /// Id of the stage that rejected the file.
    pub stage: String,
    /// Machine-readable reason code (`missing`, `corrupt`, ...).
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
    /// The clip as a whole failed (its stream broke: decode, resample, window);
    /// rows it had already sent are not kept. False for one row that a per-row
    /// stage refused (a segment too short for one frame): the clip's other rows
    /// stand.
    pub whole_clip: bool,
}

/// What flows along an edge.
#[derive(Debug, Clone)]
pub enum Frame {
    /// Rows, all with the stream's schema.
    Batch(RecordBatch),
    /// A file that failed upstream; forwarded untouched by every stage.
    Quarantine(Quarantined),
    /// Unit `key` (a clip) is complete: every row and quarantine record of it has
    /// been sent before this frame. Stages that keep order forward it in place; a
    /// stage that reorders units (decode) emits its own after a unit's last output.
    /// Sinks use it to commit whole units only (resume).
    Done(std::sync::Arc<str>),
}

/// One item of a [`BatchStream`]: a frame, or a fatal error that ends the run.
pub type FrameResult = Result<Frame, SermoError>;

/// A boxed stream of frames with a known schema.
pub struct BatchStream {
    schema: SchemaRef,
    inner: Pin<Box<dyn Stream<Item = FrameResult> + Send>>,
}

impl BatchStream {
    pub fn new(schema: SchemaRef, inner: impl Stream<Item = FrameResult> + Send + 'static) -> Self {
        BatchStream {
            schema,
            inner: Box::pin(inner),
        }
    }

    /// A stream that yields nothing (what sinks return).
    pub fn empty(schema: SchemaRef) -> Self {
        BatchStream::new(schema, futures::stream::empty())
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl Stream for BatchStream {
    type Item = FrameResult;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<FrameResult>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Merge several input streams into one (arrival order; rows of one input stay in
/// order). Operators with a single logical input use it for `inputs = [..]`.
pub fn merge_inputs(schema: SchemaRef, inputs: Vec<BatchStream>) -> BatchStream {
    if inputs.len() == 1 {
        if let Some(only) = inputs.into_iter().next() {
            return only;
        }
        return BatchStream::empty(schema);
    }
    BatchStream::new(schema, futures::stream::select_all(inputs))
}
