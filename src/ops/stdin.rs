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

use crate::engine::{
    BatchStream, Component, ConfigContext, Frame, Operator, OperatorConfig, PlanInput, Problem,
    Role, TaskContext,
};
use crate::error::{Result, SermoError};
use crate::schema;

/// Sample format of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PcmFormat {
    /// RIFF/WAVE: the header says the rest.
    #[default]
    Wav,
    /// Raw signed 16-bit little-endian.
    S16le,
    /// Raw 32-bit float little-endian.
    F32le,
}

/// Config of the `stdin` source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {
    #[serde(default)]
    pub format: PcmFormat,
    pub rate: Option<u32>,
    #[serde(default = "d_channels")]
    pub channels: u16,
    #[serde(default = "d_chunk")]
    pub chunk_s: f64,
    #[serde(default = "d_path")]
    pub path: String,
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
                _ => {}
            }
            if self.channels == 0 {
                p.push(Problem::new("channels", "must be at least 1"));
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

/// Layout of the samples in the stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    pub rate: u32,
    pub channels: u16,
    pub encoding: Encoding,
}

/// Sample encoding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Encoding {
    U8,
    S16,
    S24,
    S32,
    F32,
    F64,
}

impl Encoding {
    pub fn bytes(self) -> usize {
        match self {
            Encoding::U8 => 1,
            Encoding::S16 => 2,
            Encoding::S24 => 3,
            Encoding::S32 | Encoding::F32 => 4,
            Encoding::F64 => 8,
        }
    }

    fn codec(self) -> &'static str {
        match self {
            Encoding::U8 => "pcm_u8",
            Encoding::S16 => "pcm_s16le",
            Encoding::S24 => "pcm_s24le",
            Encoding::S32 => "pcm_s32le",
            Encoding::F32 => "pcm_f32le",
            Encoding::F64 => "pcm_f64le",
        }
    }

    /// One sample from its little-endian bytes, in [-1, 1].
    pub fn sample(self, b: &[u8]) -> f32 {
        match self {
            Encoding::U8 => (b[0] as f32 - 128.0) / 128.0,
            Encoding::S16 => i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0,
            Encoding::S24 => {
                let v = i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8;
                v as f32 / 8_388_608.0
            }
            Encoding::S32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0,
            Encoding::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Encoding::F64 => {
                f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }
        }
    }
}

fn read_exact_or_eof(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Read a RIFF/WAVE header up to the start of the `data` chunk's samples.
pub fn read_wav_header(r: &mut dyn Read) -> std::result::Result<Layout, String> {
    let mut h = [0u8; 12];
    if read_exact_or_eof(r, &mut h).map_err(|e| e.to_string())? < 12
        || &h[0..4] != b"RIFF"
        || &h[8..12] != b"WAVE"
    {
        return Err("not a RIFF/WAVE stream (give --format s16le|f32le for raw PCM)".into());
    }
    let mut layout = None;
    loop {
        let mut c = [0u8; 8];
        if read_exact_or_eof(r, &mut c).map_err(|e| e.to_string())? < 8 {
            return Err("the WAV stream ended before its data chunk".into());
        }
        let size = u32::from_le_bytes([c[4], c[5], c[6], c[7]]) as usize;
        match &c[0..4] {
            b"fmt " => {
                if !(16..=1024).contains(&size) {
                    return Err(format!("bad fmt chunk size {size}"));
                }
                let mut f = vec![0u8; size + (size & 1)];
                if read_exact_or_eof(r, &mut f).map_err(|e| e.to_string())? < f.len() {
                    return Err("the WAV stream ended inside its fmt chunk".into());
                }
                let mut tag = u16::from_le_bytes([f[0], f[1]]);
                let channels = u16::from_le_bytes([f[2], f[3]]);
                let rate = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
                let bits = u16::from_le_bytes([f[14], f[15]]);
                if tag == 0xFFFE && size >= 26 {
                    tag = u16::from_le_bytes([f[24], f[25]]);
                }
                let encoding = match (tag, bits) {
                    (1, 8) => Encoding::U8,
                    (1, 16) => Encoding::S16,
                    (1, 24) => Encoding::S24,
                    (1, 32) => Encoding::S32,
                    (3, 32) => Encoding::F32,
                    (3, 64) => Encoding::F64,
                    _ => {
                        return Err(format!(
                            "WAV format tag {tag} with {bits} bits is not streamable PCM"
                        ));
                    }
                };
                if channels == 0 || rate == 0 {
                    return Err(format!("WAV header says {channels} channels at {rate} Hz"));
                }
                layout = Some(Layout {
                    rate,
                    channels,
                    encoding,
                });
            }
            b"data" => return layout.ok_or("the WAV stream has data before its fmt chunk".into()),
            _ => {
                let mut skip = (size + (size & 1)) as u64;
                let copied = std::io::copy(&mut r.take(skip), &mut std::io::sink())
                    .map_err(|e| e.to_string())?;
                skip -= copied;
                if skip > 0 {
                    return Err("the WAV stream ended inside a chunk".into());
                }
            }
        }
    }
}

/// Chunks of mono samples (`last` on the final one) read on a thread.
type Chunk = std::result::Result<(Vec<f32>, bool), String>;

fn reader_thread(
    mut input: Box<dyn Read + Send>,
    layout: Layout,
    chunk_frames: usize,
    tx: tokio::sync::mpsc::Sender<Chunk>,
) {
    let width = layout.encoding.bytes() * layout.channels as usize;
    let mut buf = vec![0u8; chunk_frames * width];
    loop {
        let n = match read_exact_or_eof(&mut *input, &mut buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.blocking_send(Err(format!("reading the stream: {e}")));
                return;
            }
        };
        let frames = n / width;
        let ch = layout.channels as usize;
        let bytes = layout.encoding.bytes();
        let mono: Vec<f32> = (0..frames)
            .map(|f| {
                let mut s = 0.0;
                for c in 0..ch {
                    let o = (f * ch + c) * bytes;
                    s += layout.encoding.sample(&buf[o..o + bytes]);
                }
                s / ch as f32
            })
            .collect();
        let last = n < buf.len();
        if tx.blocking_send(Ok((mono, last))).is_err() || last {
            return;
        }
    }
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
                            let frames = ((chunk_s * l.rate as f64).round() as usize).max(1);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_header_with_extra_chunks_is_read() {
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF\xff\xff\xff\xffWAVE");
        b.extend_from_slice(b"LIST");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(b"abc\0");
        b.extend_from_slice(b"fmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&16000u32.to_le_bytes());
        b.extend_from_slice(&64000u32.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&16u16.to_le_bytes());
        b.extend_from_slice(b"data\xff\xff\xff\xff");
        let mut r: &[u8] = &b;
        let l = read_wav_header(&mut r).unwrap();
        assert_eq!(
            l,
            Layout {
                rate: 16000,
                channels: 2,
                encoding: Encoding::S16
            }
        );
        assert!(read_wav_header(&mut &b"garbage"[..]).is_err());
    }

    #[test]
    fn samples_decode_to_unit_range() {
        assert_eq!(Encoding::S16.sample(&(-32768i16).to_le_bytes()), -1.0);
        assert_eq!(Encoding::U8.sample(&[128]), 0.0);
        let v = Encoding::S24.sample(&[0xff, 0xff, 0x7f]);
        assert!((v - 1.0).abs() < 1e-6);
    }
}
