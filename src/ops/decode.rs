//! `decode` stage: files → audio. Decodes every file with symphonia (format detected
//! by content), f32 samples in [-1, 1], in chunks of at most `chunk_s` seconds so
//! memory does not grow with file length. A file that fails becomes a quarantine
//! record with a reason; the run goes on.
//!
//! ```toml
//! [stages.audio]
//! kind = "decode"
//! input = "clips"
//! channels = "mix"      # mix (mean) | first | keep
//! chunk_s = 30          # longest row, in seconds
//! min_duration_s = 0.0  # shorter clips are quarantined as `too_short`
//! ```
//!
//! Files are decoded concurrently on the worker pool; the chunks of one file stay in
//! order, different files may complete out of order.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, ListArray, StringArray, UInt16Array,
    UInt32Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, SchemaRef};
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use serde::Deserialize;

use crate::audio::channels::to_mono;
use crate::audio::decoder::Chunk;
use crate::audio::{ChannelMode, ClipInfo, ClipReader, DecodeFailure, Reason};
use crate::engine::{
    BatchStream, Component, ConfigContext, Frame, FrameResult, Operator, OperatorConfig, PlanInput,
    Problem, Role, TaskContext,
};
use crate::error::{Result, SermoError};
use crate::limits::MAX_CHUNK_S;
use crate::rows::{ClipRow, clip_columns, clip_rows};
use crate::schema::require_inputs;
use crate::schema::{self, TableKind};

/// Config of the `decode` stage.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecodeConfig {
    #[serde(default)]
    pub channels: ChannelMode,
    /// Longest row in seconds (default 30).
    #[serde(default = "default_chunk_s")]
    pub chunk_s: f64,
    /// Clips shorter than this are quarantined as `too_short` (default 0: none).
    #[serde(default)]
    pub min_duration_s: f64,
}

fn default_chunk_s() -> f64 {
    30.0
}

impl Component for DecodeConfig {
    const KIND: &'static str = "decode";
    const ROLE: Role = Role::Stage;
    const SUMMARY: &'static str =
        "decode audio files (WAV, FLAC, MP3, OGG, AIFF, CAF, ALAC, AAC) to f32 samples";
}

impl OperatorConfig for DecodeConfig {
    fn check(&self, _ctx: &ConfigContext) -> Vec<Problem> {
        let mut p = Vec::new();
        if !(self.chunk_s.is_finite() && self.chunk_s > 0.0 && self.chunk_s <= MAX_CHUNK_S) {
            p.push(Problem::new(
                "chunk_s",
                format!(
                    "must be a number of seconds in (0, {MAX_CHUNK_S}], got {}",
                    self.chunk_s
                ),
            ));
        }
        if !(self.min_duration_s.is_finite() && self.min_duration_s >= 0.0) {
            p.push(Problem::new(
                "min_duration_s",
                format!(
                    "must be zero or a positive number of seconds, got {}",
                    self.min_duration_s
                ),
            ));
        }
        p
    }

    fn plan(&self, inputs: &[PlanInput]) -> std::result::Result<SchemaRef, String> {
        require_inputs(inputs, &[TableKind::Files])?;
        Ok(schema::audio_schema(self.channels == ChannelMode::Keep))
    }

    fn build(&self, _ctx: &ConfigContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(Decode { cfg: self.clone() }))
    }
}

struct Decode {
    cfg: DecodeConfig,
}

enum Item {
    File(ClipRow),
    Pass(FrameResult),
}

impl Operator for Decode {
    fn execute(self: Box<Self>, inputs: Vec<BatchStream>, ctx: TaskContext) -> BatchStream {
        let in_schema = inputs
            .first()
            .map(|s| s.schema())
            .unwrap_or_else(schema::files_schema);
        let input = crate::engine::stream::merge_inputs(in_schema, inputs);
        let out_schema = schema::audio_schema(self.cfg.channels == ChannelMode::Keep);
        let cfg = Arc::new(self.cfg);
        let parallel = ctx.pool.threads() * 2;
        let node = ctx.node_id.clone();
        // Clips received as rows whose upstream `Done` has not arrived yet: decode
        // emits its own `Done` after a clip's last chunk (files finish out of order),
        // so the upstream one is dropped; others (clips quarantined upstream) pass.
        let mut decoding: HashSet<Arc<str>> = HashSet::new();
        let items = input.flat_map(move |frame| {
            let items: Vec<Item> = match frame {
                Ok(Frame::Batch(b)) => match clip_rows(&b) {
                    Ok(rows) => {
                        for r in &rows {
                            decoding.insert(Arc::from(r.clip_id.as_str()));
                        }
                        rows.into_iter().map(Item::File).collect()
                    }
                    Err(e) => vec![Item::Pass(Err(SermoError::stage(&node, None, e)))],
                },
                Ok(Frame::Done(id)) if decoding.remove(&id) => Vec::new(),
                other => vec![Item::Pass(other)],
            };
            futures::stream::iter(items)
        });
        let schema_for_files = out_schema.clone();
        let per_file = items.map(move |item| match item {
            Item::Pass(x) => futures::stream::once(async move { x }).boxed(),
            Item::File(row) => {
                decode_file(row, cfg.clone(), schema_for_files.clone(), ctx.clone()).boxed()
            }
        });
        BatchStream::new(out_schema, per_file.flatten_unordered(parallel))
    }
}

/// The frames of one file: its chunks in order, or one quarantine record.
fn decode_file(
    row: ClipRow,
    cfg: Arc<DecodeConfig>,
    schema: SchemaRef,
    ctx: TaskContext,
) -> impl futures::Stream<Item = FrameResult> + Send {
    async_stream::stream! {
        let path = PathBuf::from(&row.path);
        let opened = ctx.pool.run(move || ClipReader::open(&path)).await;
        let mut reader = match opened {
            Ok(Ok(r)) => r,
            Ok(Err(f)) => {
                yield Ok(ctx.quarantine(&row.path, &row.clip_id, f.reason.as_str(), f.message));
                yield Ok(Frame::Done(Arc::from(row.clip_id.as_str())));
                return;
            }
            Err(panic) => {
                yield Ok(ctx.quarantine(&row.path, &row.clip_id, Reason::DecoderPanic.as_str(), panic.to_string()));
                yield Ok(Frame::Done(Arc::from(row.clip_id.as_str())));
                return;
            }
        };
        let info = reader.info().clone();
        let max_frames = crate::limits::chunk_frames(cfg.chunk_s, info.sample_rate, info.channels);
        let audio_us = ctx.metrics.counter("audio.micros");
        let mut segment: u32 = 0;
        loop {
            if ctx.cancel.is_cancelled() {
                return;
            }
            let job = ctx.pool.run(move || {
                let r = reader.next_chunk(max_frames);
                (reader, r)
            }).await;
            let (back, result) = match job {
                Ok(x) => x,
                Err(panic) => {
                    yield Ok(ctx.quarantine(&row.path, &row.clip_id, Reason::DecoderPanic.as_str(), panic.to_string()));
                    yield Ok(Frame::Done(Arc::from(row.clip_id.as_str())));
                    return;
                }
            };
            reader = back;
            let chunk = match result {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(f) => {
                    yield Ok(ctx.quarantine(&row.path, &row.clip_id, f.reason.as_str(), f.message));
                    yield Ok(Frame::Done(Arc::from(row.clip_id.as_str())));
                    return;
                }
            };
            let secs = chunk.frames() as f64 / info.sample_rate as f64;
            if chunk.first_frame == 0 && chunk.last && secs < cfg.min_duration_s {
                let f = DecodeFailure::new(
                    Reason::TooShort,
                    format!("{secs:.3} s is shorter than min_duration_s = {}", cfg.min_duration_s),
                );
                yield Ok(ctx.quarantine(&row.path, &row.clip_id, f.reason.as_str(), f.message));
                yield Ok(Frame::Done(Arc::from(row.clip_id.as_str())));
                return;
            }
            let last = chunk.last;
            match audio_batch(&schema, &row, &info, segment, chunk, cfg.channels) {
                Ok(b) => {
                    audio_us.add((secs * 1e6) as u64);
                    segment += 1;
                    yield Ok(Frame::Batch(b));
                }
                Err(e) => {
                    yield Err(SermoError::stage_source(&ctx.node_id, Some(PathBuf::from(&row.path)), e));
                    return;
                }
            }
            if last {
                break;
            }
        }
        ctx.metrics.counter("files.done").add(1);
        yield Ok(Frame::Done(Arc::from(row.clip_id.as_str())));
    }
}

fn f32_list(values: Vec<f32>) -> ListArray {
    let n = values.len();
    ListArray::new(
        Arc::new(Field::new_list_field(DataType::Float32, false)),
        OffsetBuffer::from_lengths([n]),
        Arc::new(Float32Array::from(values)),
        None,
    )
}

/// One row of the audio schema for one decoded chunk.
fn audio_batch(
    schema: &SchemaRef,
    row: &ClipRow,
    info: &ClipInfo,
    segment: u32,
    chunk: Chunk,
    mode: ChannelMode,
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    let rate = info.sample_rate as f64;
    let frames = chunk.frames();
    let chunk_last = chunk.last;
    let start = chunk.first_frame as f64 / rate;
    let end = (chunk.first_frame + frames as u64) as f64 / rate;
    let source_channels = chunk.planes.len() as u16;
    let samples: ArrayRef = if mode == ChannelMode::Keep {
        let nch = chunk.planes.len();
        let flat: Vec<f32> = chunk.planes.into_iter().flatten().collect();
        let inner = ListArray::new(
            Arc::new(Field::new_list_field(DataType::Float32, false)),
            OffsetBuffer::from_lengths(std::iter::repeat_n(frames, nch)),
            Arc::new(Float32Array::from(flat)),
            None,
        );
        Arc::new(ListArray::new(
            Arc::new(Field::new_list_field(inner.data_type().clone(), false)),
            OffsetBuffer::from_lengths([nch]),
            Arc::new(inner),
            None,
        ))
    } else {
        Arc::new(f32_list(to_mono(chunk.planes, mode)))
    };
    let mut cols = clip_columns(&[row]);
    cols.extend([
        Arc::new(UInt32Array::from(vec![segment])) as ArrayRef,
        Arc::new(Float64Array::from(vec![start])),
        Arc::new(Float64Array::from(vec![end])),
        Arc::new(UInt32Array::from(vec![info.sample_rate])),
        samples,
        Arc::new(UInt32Array::from(vec![info.sample_rate])),
        Arc::new(UInt16Array::from(vec![source_channels])),
        Arc::new(StringArray::from(vec![info.codec.as_str()])),
        Arc::new(Float64Array::from(vec![
            info.n_frames.map(|n| n as f64 / rate),
        ])),
        Arc::new(BooleanArray::from(vec![chunk_last])),
    ]);
    RecordBatch::try_new(schema.clone(), cols)
}
