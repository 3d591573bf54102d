//! `stdin` source: audio streamed from standard input (or a FIFO / growing file),
//! as WAV or raw PCM, emitted as `audio` rows of `chunk_s` seconds while it
//! arrives — so `ffmpeg … -f s16le -ac 1 -ar 16000 - | sermo infer … -` gets each
//! segment's prediction as soon as the segment is complete.
//!
//! ```toml
//! [sources.live]
//! kind = "stdin"
//! format = "s16le"     # wav (header read from the stream) | s16le | f32le
//! rate = 16000         # raw formats: sample rate
//! channels = 1         # raw formats: interleaved channels (mixed to mono)
//! chunk_s = 0.1        # seconds per emitted row
//! path = "-"           # "-" = standard input; or a file / FIFO read as a stream
//! clip_id = "stdin"
//! ```
//! Reading happens on its own thread (it blocks on the pipe), handing chunks over a
//! bounded channel, so memory stays at a few chunks however long the stream runs.

use std::io::Read;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, ListArray, StringArray, UInt16Array, UInt32Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde::Deserialize;
use std::sync::Arc;

use crate::audio::pcm::{Chunk, Encoding, Layout, PcmFormat, read_wav_header, reader_thread};
use crate::engine::{
    BatchStream, Component, ConfigContext, Frame, Operator, OperatorConfig, PlanInput, Problem,
    Role, TaskContext,
};
use crate::error::{Result, SermoError};
use crate::limits::{MAX_CHANNELS, MAX_SAMPLE_RATE};
use crate::schema;

/// Config of the `stdin` source.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {
    #[serde(default)]
    pub format: PcmFormat,
    /// Sample rate of raw PCM (`s16le`, `f32le`): required for those; a WAV stream
    /// states its own.
    pub rate: Option<u32>,
    /// Interleaved channels of raw PCM, mixed to mono.
    #[serde(default = "d_channels")]
    pub channels: u16,
    /// Seconds of audio per emitted `audio` row.
    #[serde(default = "d_chunk")]
    pub chunk_s: f64,
    /// `"-"` is standard input; a file or FIFO path is read the same way, as the bytes
    /// arrive.
    #[serde(default = "d_path")]
    pub path: String,
    /// The `clip_id` of every row.
    #[serde(default = "d_clip")]
    pub clip_id: String,
}

fn d_channels() -> u16 {
    1
}
fn d_chunk() -> f64 {
    0.1
}
fn d_path() -> String {
    "-".into()
}
fn d_clip() -> String {
    "stdin".into()
}

impl Component for StdinConfig {
    const KIND: &'static str = "stdin";
    const ROLE: Role = Role::Source;
    const SUMMARY: &'static str =
        "audio streamed from standard input or a FIFO (WAV, s16le, f32le), emitted as it arrives";
}

impl OperatorConfig for StdinConfig {
    fn check(&self, _ctx: &ConfigContext) -> Vec<Problem> {
        let mut p = Vec::new();
        if !(self.chunk_s.is_finite() && self.chunk_s > 0.0 && self.chunk_s <= 60.0) {
            p.push(Problem::new(
                "chunk_s",
                format!("must be in (0, 60] seconds, got {}", self.chunk_s),
            ));
        }
        if self.format != PcmFormat::Wav {
            match self.rate {
                None | Some(0) => p.push(
                    Problem::new("rate", "raw PCM needs its sample rate")
                        .with_hint("e.g. rate = 16000"),
                ),
                Some(r) if r > MAX_SAMPLE_RATE => p.push(Problem::new(
                    "rate",
                    format!("must be at most {MAX_SAMPLE_RATE} Hz, got {r}"),
                )),
                _ => {}
            }
            if self.channels == 0 || self.channels as usize > MAX_CHANNELS {
                p.push(Problem::new(
                    "channels",
                    format!(
                        "must be between 1 and {MAX_CHANNELS}, got {}",
                        self.channels
                    ),
                ));
            }
        }
        p
    }

    fn plan(&self, _inputs: &[PlanInput]) -> std::result::Result<SchemaRef, String> {
        Ok(schema::audio_schema(false))
    }

    fn build(&self, ctx: &ConfigContext) -> Result<Box<dyn Operator>> {
        let path = if self.path == "-" {
            None
        } else {
            Some(ctx.resolve(&self.path))
        };
        Ok(Box::new(StdinSource {
            cfg: self.clone(),
            path,
        }))
    }
}

struct StdinSource {
    cfg: StdinConfig,
    path: Option<std::path::PathBuf>,
}

fn row(
    schema: &SchemaRef,
    cfg: &StdinConfig,
    layout: Layout,
    segment: u32,
    start: u64,
    samples: Vec<f32>,
    last: bool,
) -> std::result::Result<RecordBatch, String> {
    let n = samples.len();
    let rate = layout.rate as f64;
    let s = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
    let cols: Vec<ArrayRef> = vec![
        s(&cfg.clip_id),
        s(&cfg.path),
        s("stdin"),
        Arc::new(StringArray::new_null(1)),
        Arc::new(StringArray::new_null(1)),
        Arc::new(UInt32Array::from(vec![segment])),
        Arc::new(Float64Array::from(vec![start as f64 / rate])),
        Arc::new(Float64Array::from(vec![(start + n as u64) as f64 / rate])),
        Arc::new(UInt32Array::from(vec![layout.rate])),
        Arc::new(ListArray::new(
            Arc::new(Field::new_list_field(DataType::Float32, false)),
            OffsetBuffer::from_lengths([n]),
            Arc::new(arrow::array::Float32Array::from(samples)),
            None,
        )),
        Arc::new(UInt32Array::from(vec![layout.rate])),
        Arc::new(UInt16Array::from(vec![layout.channels])),
        s(layout.encoding.codec()),
        Arc::new(Float64Array::new_null(1)),
        Arc::new(BooleanArray::from(vec![last])),
    ];
    RecordBatch::try_new(schema.clone(), cols).map_err(|e| e.to_string())
}

impl Operator for StdinSource {
    fn execute(self: Box<Self>, _inputs: Vec<BatchStream>, ctx: TaskContext) -> BatchStream {
        let schema = schema::audio_schema(false);
        let out_schema = schema.clone();
        let cfg = self.cfg;
        let path = self.path;
        let stream = async_stream::stream! {
            let node = ctx.node_id.to_string();
            let open: std::result::Result<Box<dyn Read + Send>, String> = match &path {
                None => Ok(Box::new(std::io::stdin())),
                Some(p) => std::fs::File::open(p)
                    .map(|f| Box::new(f) as Box<dyn Read + Send>)
                    .map_err(|e| format!("cannot open {}: {e}", p.display())),
            };
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(4);
            let (ltx, lrx) = tokio::sync::oneshot::channel::<std::result::Result<Layout, String>>();
            let fmt = cfg.format;
            let (rate, channels, chunk_s) = (cfg.rate.unwrap_or(0), cfg.channels, cfg.chunk_s);
            match open {
                Err(e) => { yield Err(SermoError::stage(&node, path.clone(), e)); return; }
                Ok(mut input) => {
                    // A plain thread: it blocks on the pipe, which must not pin a
                    // pool worker. It ends at EOF or when this stream is dropped.
                    std::thread::spawn(move || {
                        let layout = match fmt {
                            PcmFormat::Wav => read_wav_header(&mut *input),
                            PcmFormat::S16le => Ok(Layout { rate, channels, encoding: Encoding::S16 }),
                            PcmFormat::F32le => Ok(Layout { rate, channels, encoding: Encoding::F32 }),
                        };
                        let ok = layout.clone().ok();
                        let _ = ltx.send(layout);
                        if let Some(l) = ok {
                            let frames = crate::limits::chunk_frames(chunk_s, l.rate, l.channels as usize);
                            reader_thread(input, l, frames, tx);
                        }
                    });
                }
            }
            let layout = match lrx.await {
                Ok(Ok(l)) => l,
                Ok(Err(e)) => { yield Err(SermoError::stage(&node, path.clone(), e)); return; }
                Err(_) => { yield Err(SermoError::stage(&node, None, "the reader thread ended")); return; }
            };
            ctx.metrics.counter("files.total").add(1);
            let (mut segment, mut start) = (0u32, 0u64);
            while let Some(chunk) = rx.recv().await {
                let (samples, last) = match chunk {
                    Ok(c) => c,
                    Err(e) => { yield Err(SermoError::stage(&node, path.clone(), e)); return; }
                };
                let n = samples.len() as u64;
                ctx.metrics.counter("audio.samples_in").add(n);
                match row(&out_schema, &cfg, layout, segment, start, samples, last) {
                    Ok(b) => yield Ok(Frame::Batch(b)),
                    Err(e) => { yield Err(SermoError::stage(&node, None, e)); return; }
                }
                segment += 1;
                start += n;
                if last {
                    break;
                }
            }
            ctx.metrics.counter("files.done").add(1);
            yield Ok(Frame::Done(cfg.clip_id.as_str().into()));
        };
        BatchStream::new(schema, stream)
    }
}
