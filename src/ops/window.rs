//! `window` stage: audio → audio cut to fixed lengths or segments.
//!
//! ```toml
//! [stages.win]
//! kind = "window"
//! input = "audio16k"
//! mode = "segments"     # fixed | segments | random_crop | speech
//! length_s = 3.0        # speech: the longest segment
//! hop_s = 3.0           # segments, speech: default length_s
//! last = "pad"          # segments: last partial segment pad | drop | keep
//! align = "start"       # fixed: start | center
//! seed = 0              # random_crop: crops depend on (seed, clip_id) only
//! min_s = 1.0           # speech: the shortest segment
//! vad = { method = "energy", threshold = 0.7 }    # speech: the detector
//! ```
//! - `fixed`: trim or zero-pad each clip to `length_s` (one row per clip).
//! - `segments`: rows of `length_s` every `hop_s`; works on streamed long recordings
//!   (segments straddling decode chunks are exact: only the samples not yet needed
//!   are kept). A last partial segment is emitted only if it holds samples no full
//!   segment covered.
//! - `random_crop`: one crop of `length_s` per clip at an offset drawn from
//!   (`seed`, `clip_id`) (clips shorter than `length_s` are zero-padded).
//! - `speech`: cut along detected speech (`crate::dsp::vad`, streamed, exact across
//!   decode chunks): segments of `min_s`..`length_s` inside speech regions (a
//!   longer region split every `hop_s`, a shorter one widened around its centre),
//!   and the stretches between as rows without samples, `speech = false`, of at
//!   most `length_s`, so the rows cover the whole recording; a `speech` column
//!   says which is which (`infer` labels the others `silence`). Holds at most
//!   a segment, the detector's padding and one decode chunk of audio.
//!
//! Each output row is a complete unit (`last_chunk = true`): `segment` counts the
//! rows of the clip, `start_s`/`end_s` give their position in the clip. `fixed` and
//! `random_crop` need the whole clip, so they hold one clip in memory; for long
//! recordings use `segments`.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, UInt32Array};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde::Deserialize;

use super::per_clip::map_clips;
use crate::audio::Reason;
use crate::dsp::vad::{Cut, CutSettings, Cutter, GateSettings, Method, Vad};
use crate::engine::{
    BatchStream, Component, ConfigContext, Frame, Operator, OperatorConfig, PlanInput, Problem,
    Role, TaskContext,
};
use crate::error::Result;
use crate::limits::MAX_WINDOW_S;
use crate::rows::{replace_columns, row_planes, samples_array};
use crate::schema::require_inputs;
use crate::schema::{TableKind, col};

/// Windowing mode.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Fixed,
    Segments,
    RandomCrop,
    /// Segments along detected speech, silence rows between.
    Speech,
}

/// What to do with the last partial segment.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Last {
    #[default]
    Pad,
    Drop,
    Keep,
}

/// Where a fixed window sits in a longer clip (and a shorter one in the window).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Align {
    #[default]
    Start,
    Center,
}

/// Config of the `window` stage.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    pub mode: Mode,
    /// Window length in seconds.
    pub length_s: f64,
    /// `segments`, `speech`: step between segment starts in seconds (default:
    /// `length_s`, no overlap; `speech`: at most `length_s`).
    pub hop_s: Option<f64>,
    #[serde(default)]
    pub last: Last,
    #[serde(default)]
    pub align: Align,
    /// `random_crop`: the crop offset depends only on (`seed`, `clip_id`).
    #[serde(default)]
    pub seed: u64,
    /// `speech`: the shortest segment in seconds (a shorter speech region is
    /// widened around its centre); default 1.0, at most `length_s`.
    pub min_s: Option<f64>,
    /// `speech`: the speech detector and its gate.
    pub vad: Option<VadConfig>,
}

/// `vad = { ... }`: the speech detector of `mode = "speech"` (src/dsp/vad.rs).
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VadConfig {
    /// `energy` (energy over a tracked noise floor; any loud sound counts as
    /// speech) or `earshot` (a small neural detector: better at 5 dB SNR, 15
    /// times slower).
    #[serde(default)]
    pub method: Method,
    /// Speech starts at a 16-ms frame with at least this probability and ends
    /// after `min_silence_s` under `threshold − 0.15`.
    #[serde(default = "d_threshold")]
    pub threshold: f32,
    /// Speech regions shorter than this are dropped (seconds).
    #[serde(default = "d_min_speech")]
    pub min_speech_s: f64,
    /// Pauses shorter than this do not end a region (seconds).
    #[serde(default = "d_min_silence")]
    pub min_silence_s: f64,
    /// Added before and after each region (seconds).
    #[serde(default = "d_pad")]
    pub pad_s: f64,
}

fn d_threshold() -> f32 {
    GateSettings::default().threshold
}
fn d_min_speech() -> f64 {
    GateSettings::default().min_speech_s
}
fn d_min_silence() -> f64 {
    GateSettings::default().min_silence_s
}
fn d_pad() -> f64 {
    GateSettings::default().pad_s
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            method: Method::default(),
            threshold: d_threshold(),
            min_speech_s: d_min_speech(),
            min_silence_s: d_min_silence(),
            pad_s: d_pad(),
        }
    }
}

impl VadConfig {
    fn gate(&self) -> GateSettings {
        GateSettings {
            threshold: self.threshold,
            min_speech_s: self.min_speech_s,
            min_silence_s: self.min_silence_s,
            pad_s: self.pad_s,
        }
    }
}

/// The default shortest speech segment.
const MIN_S: f64 = 1.0;

impl Component for WindowConfig {
    const KIND: &'static str = "window";
    const ROLE: Role = Role::Stage;
    const SUMMARY: &'static str =
        "cut clips to a fixed length, into segments, a random crop, or along detected speech";
}

impl OperatorConfig for WindowConfig {
    fn check(&self, _ctx: &ConfigContext) -> Vec<Problem> {
        let mut p = Vec::new();
        if !(self.length_s.is_finite() && self.length_s > 0.0 && self.length_s <= MAX_WINDOW_S) {
            p.push(Problem::new(
                "length_s",
                format!(
                    "must be a number of seconds in (0, {MAX_WINDOW_S}], got {}",
                    self.length_s
                ),
            ));
        }
        if let Some(h) = self.hop_s {
            if !(h.is_finite() && h > 0.0 && h <= MAX_WINDOW_S) {
                p.push(Problem::new(
                    "hop_s",
                    format!("must be a number of seconds in (0, {MAX_WINDOW_S}], got {h}"),
                ));
            }
            if !matches!(self.mode, Mode::Segments | Mode::Speech) {
                p.push(Problem::new(
                    "hop_s",
                    "only applies to mode = \"segments\" or \"speech\"",
                ));
            } else if self.mode == Mode::Speech && h > self.length_s {
                p.push(Problem::new(
                    "hop_s",
                    format!(
                        "must not exceed length_s ({}) in mode = \"speech\" (segments of a long region would leave gaps), got {h}",
                        self.length_s
                    ),
                ));
            }
        }
        if self.mode != Mode::Speech {
            for (key, set) in [("min_s", self.min_s.is_some()), ("vad", self.vad.is_some())] {
                if set {
                    p.push(Problem::new(key, "only applies to mode = \"speech\""));
                }
            }
        } else {
            let min = self.min_s.unwrap_or(MIN_S.min(self.length_s));
            if !(min.is_finite() && min > 0.0 && min <= self.length_s) {
                p.push(Problem::new(
                    "min_s",
                    format!(
                        "must be a number of seconds in (0, length_s = {}], got {min}",
                        self.length_s
                    ),
                ));
            }
            let v = self.vad.clone().unwrap_or_default();
            if !(v.threshold.is_finite() && v.threshold > 0.15 && v.threshold < 1.0) {
                p.push(Problem::new(
                    "vad.threshold",
                    format!("must be a probability in (0.15, 1), got {}", v.threshold),
                ));
            }
            for (key, x) in [
                ("vad.min_speech_s", v.min_speech_s),
                ("vad.min_silence_s", v.min_silence_s),
                ("vad.pad_s", v.pad_s),
            ] {
                if !(x.is_finite() && (0.0..=MAX_WINDOW_S).contains(&x)) {
                    p.push(Problem::new(
                        key,
                        format!("must be a number of seconds in [0, {MAX_WINDOW_S}], got {x}"),
                    ));
                }
            }
        }
        p
    }

    fn plan(&self, inputs: &[PlanInput]) -> std::result::Result<SchemaRef, String> {
        let s = require_inputs(inputs, &[TableKind::Audio])?;
        Ok(if self.mode == Mode::Speech {
            crate::schema::with_speech(&s)
        } else {
            s
        })
    }

    fn build(&self, _ctx: &ConfigContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(Window { cfg: self.clone() }))
    }
}

struct Window {
    cfg: WindowConfig,
}

/// Per-clip state of `mode = "speech"`.
struct Speech {
    vad: Vad,
    cutter: Cutter,
}

/// Per-clip state.
struct State {
    rate: u32,
    len: usize,
    hop: usize,
    /// Samples from absolute index `buf_start`, one Vec per channel.
    buf: Vec<Vec<f32>>,
    buf_start: u64,
    total: u64,
    next_start: u64,
    last_full_end: Option<u64>,
    segment: u32,
    clip_id: String,
    speech: Option<Box<Speech>>,
}

/// FNV-1a 64: a hash that stays the same across Rust versions and machines.
pub fn stable_hash(seed: u64, text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.to_le_bytes().iter().chain(text.as_bytes()) {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn slice_padded(planes: &[Vec<f32>], from: usize, len: usize, pad_before: usize) -> Vec<Vec<f32>> {
    planes
        .iter()
        .map(|p| {
            let mut out = vec![0.0; pad_before];
            let end = (from + len.saturating_sub(pad_before)).min(p.len());
            if from < end {
                out.extend_from_slice(&p[from..end]);
            }
            out.resize(len, 0.0);
            out
        })
        .collect()
}

/// One output row: `row`'s keys with `planes` as its samples at `start`..`end`;
/// with `speech` (mode = "speech") the `speech` column appended.
#[allow(clippy::too_many_arguments)]
fn emit(
    row: &RecordBatch,
    planes: Vec<Vec<f32>>,
    keep: bool,
    segment: u32,
    start: f64,
    end: f64,
    speech: Option<bool>,
) -> std::result::Result<Frame, String> {
    let cols: Vec<(&str, ArrayRef)> = vec![
        (col::SAMPLES, samples_array(planes, keep)),
        (col::SEGMENT, Arc::new(UInt32Array::from(vec![segment]))),
        (col::START_S, Arc::new(Float64Array::from(vec![start]))),
        (col::END_S, Arc::new(Float64Array::from(vec![end]))),
        (col::LAST_CHUNK, Arc::new(BooleanArray::from(vec![true]))),
    ];
    let b = replace_columns(row, &cols)?;
    let Some(speech) = speech.filter(|_| b.column_by_name(col::SPEECH).is_none()) else {
        return Ok(Frame::Batch(b));
    };
    let mut cols = b.columns().to_vec();
    cols.push(Arc::new(BooleanArray::from(vec![speech])));
    let schema = crate::schema::with_speech(&b.schema());
    Ok(Frame::Batch(
        RecordBatch::try_new(schema, cols).map_err(|e| e.to_string())?,
    ))
}

impl State {
    /// Speech mode: the rows `cuts` names, then the audio no later row needs
    /// is dropped.
    fn speech_rows(
        &mut self,
        row: &RecordBatch,
        keep: bool,
        cuts: Vec<Cut>,
        out: &mut Vec<Frame>,
    ) -> std::result::Result<(), String> {
        let r = self.rate as f64;
        let channels = self.buf.len().max(1);
        for c in cuts {
            let planes = if c.speech {
                // Never before the audio kept (the cutter keeps what it needs).
                let start = c.start.max(self.buf_start);
                let from = (start - self.buf_start) as usize;
                slice_padded(&self.buf, from, (c.end - start) as usize, 0)
            } else {
                vec![Vec::new(); channels]
            };
            out.push(emit(
                row,
                planes,
                keep,
                self.segment,
                c.start as f64 / r,
                c.end as f64 / r,
                Some(c.speech),
            )?);
            self.segment += 1;
        }
        if let Some(sp) = &self.speech {
            let need = sp.cutter.needed_from();
            let drop = (need.saturating_sub(self.buf_start) as usize)
                .min(self.buf.first().map_or(0, Vec::len));
            for p in &mut self.buf {
                p.drain(..drop);
            }
            self.buf_start += drop as u64;
        }
        Ok(())
    }

    /// Segments mode: emit every complete segment now available.
    fn segments(
        &mut self,
        row: &RecordBatch,
        keep: bool,
        out: &mut Vec<Frame>,
    ) -> std::result::Result<(), String> {
        let r = self.rate as f64;
        while self.next_start + self.len as u64 <= self.total {
            let from = (self.next_start - self.buf_start) as usize;
            let planes = slice_padded(&self.buf, from, self.len, 0);
            let s = self.next_start as f64 / r;
            out.push(emit(
                row,
                planes,
                keep,
                self.segment,
                s,
                s + self.len as f64 / r,
                None,
            )?);
            self.last_full_end = Some(self.next_start + self.len as u64);
            self.next_start += self.hop as u64;
            self.segment += 1;
        }
        // Keep only what a future segment needs.
        let drop = (self.next_start.saturating_sub(self.buf_start) as usize).min(self.buf[0].len());
        for p in &mut self.buf {
            p.drain(..drop);
        }
        self.buf_start += drop as u64;
        Ok(())
    }
}

impl Operator for Window {
    fn execute(self: Box<Self>, inputs: Vec<BatchStream>, ctx: TaskContext) -> BatchStream {
        let schema = inputs
            .first()
            .map(|s| s.schema())
            .unwrap_or_else(|| crate::schema::audio_schema(false));
        let keep = crate::rows::keeps_channels(&schema);
        let input = crate::engine::stream::merge_inputs(schema.clone(), inputs);
        let cfg = Arc::new(self.cfg);
        let init_cfg = cfg.clone();
        let dropped = ctx.metrics.counter("window.dropped");
        map_clips(
            input,
            schema,
            ctx,
            Reason::InvalidFormat,
            move |row| {
                let rate = crate::rows::row_u32(row, col::SAMPLE_RATE)?;
                let clip_id = crate::rows::row_str(row, col::CLIP_ID);
                let len = ((init_cfg.length_s * rate as f64).round() as usize).max(1);
                let hop = ((init_cfg.hop_s.unwrap_or(init_cfg.length_s) * rate as f64).round()
                    as usize)
                    .max(1);
                let speech = if init_cfg.mode == Mode::Speech {
                    let v = init_cfg.vad.clone().unwrap_or_default();
                    let cut = CutSettings {
                        min_s: init_cfg.min_s.unwrap_or(MIN_S.min(init_cfg.length_s)),
                        max_s: init_cfg.length_s,
                        overlap_s: init_cfg.length_s - init_cfg.hop_s.unwrap_or(init_cfg.length_s),
                    };
                    Some(Box::new(Speech {
                        vad: Vad::new(rate, v.method, &v.gate())?,
                        cutter: Cutter::new(rate, &cut),
                    }))
                } else {
                    None
                };
                Ok(State {
                    rate,
                    len,
                    hop,
                    buf: Vec::new(),
                    buf_start: 0,
                    total: 0,
                    next_start: 0,
                    last_full_end: None,
                    segment: 0,
                    clip_id,
                    speech,
                })
            },
            move |st, row, last| {
                let planes = row_planes(&row, 0)?;
                let n = planes.first().map_or(0, Vec::len);
                if st.buf.is_empty() {
                    st.buf = vec![Vec::new(); planes.len()];
                }
                if let Some(mut sp) = st.speech.take() {
                    // The detector hears the channels' mean.
                    let mixed: Vec<f32>;
                    let mono: &[f32] = if planes.len() == 1 {
                        &planes[0]
                    } else {
                        let k = planes.len() as f32;
                        mixed = (0..n)
                            .map(|i| planes.iter().map(|p| p[i]).sum::<f32>() / k)
                            .collect();
                        &mixed
                    };
                    let events = sp.vad.push(mono)?;
                    for (b, p) in st.buf.iter_mut().zip(planes) {
                        b.extend(p);
                    }
                    st.total += n as u64;
                    let mut cuts = Vec::new();
                    if last {
                        let mut events = events;
                        events.extend(sp.vad.finish()?);
                        sp.cutter.finish(&events, st.total, &mut cuts);
                    } else {
                        let g = sp.vad.gate();
                        let (settled, until) = (g.settled(), g.speech_until());
                        sp.cutter.step(&events, st.total, settled, until, &mut cuts);
                    }
                    st.speech = Some(sp);
                    let mut out = Vec::new();
                    st.speech_rows(&row, keep, cuts, &mut out)?;
                    return Ok(out);
                }
                for (b, p) in st.buf.iter_mut().zip(planes) {
                    b.extend(p);
                }
                st.total += n as u64;
                let mut out = Vec::new();
                let r = st.rate as f64;
                match cfg.mode {
                    Mode::Segments => {
                        st.segments(&row, keep, &mut out)?;
                        if last {
                            let uncovered = st.last_full_end.is_none_or(|e| e < st.total);
                            if st.next_start < st.total && uncovered {
                                let from = (st.next_start - st.buf_start) as usize;
                                let s = st.next_start as f64 / r;
                                match cfg.last {
                                    Last::Pad => {
                                        let planes = slice_padded(&st.buf, from, st.len, 0);
                                        out.push(emit(
                                            &row,
                                            planes,
                                            keep,
                                            st.segment,
                                            s,
                                            s + st.len as f64 / r,
                                            None,
                                        )?);
                                    }
                                    Last::Keep => {
                                        let k = (st.total - st.next_start) as usize;
                                        let planes = slice_padded(&st.buf, from, k, 0);
                                        out.push(emit(
                                            &row,
                                            planes,
                                            keep,
                                            st.segment,
                                            s,
                                            st.total as f64 / r,
                                            None,
                                        )?);
                                    }
                                    Last::Drop => dropped.add(1),
                                }
                            }
                        }
                    }
                    Mode::Fixed | Mode::RandomCrop if last => {
                        let total = st.total as usize;
                        let (from, pad_before) = if total >= st.len {
                            let room = total - st.len;
                            let off = match (cfg.mode, cfg.align) {
                                (Mode::RandomCrop, _) => {
                                    (stable_hash(cfg.seed, &st.clip_id) % (room as u64 + 1))
                                        as usize
                                }
                                (_, Align::Center) => room / 2,
                                _ => 0,
                            };
                            (off, 0)
                        } else {
                            let pad = if cfg.align == Align::Center && cfg.mode == Mode::Fixed {
                                (st.len - total) / 2
                            } else {
                                0
                            };
                            (0, pad)
                        };
                        let planes = slice_padded(&st.buf, from, st.len, pad_before);
                        let s = from as f64 / r;
                        out.push(emit(&row, planes, keep, 0, s, s + st.len as f64 / r, None)?);
                    }
                    Mode::Speech | Mode::Fixed | Mode::RandomCrop => {}
                }
                Ok(out)
            },
        )
    }
}
