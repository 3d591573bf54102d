//! `resample` stage: audio → audio at another sample rate.
//!
//! ```toml
//! [stages.r16k]
//! kind = "resample"
//! input = "audio"
//! rate = 16000          # any target rate
//! quality = "high"      # high (default) | fast
//! ```
//!
//! Streaming and chunk-exact: a long file decoded in chunks is resampled with one
//! resampler per clip carried across its rows, so the result equals resampling the
//! whole file. No delay (the filter delay is trimmed) and exact length
//! (`round(n · rate / source_rate)` frames per clip). Rows already at `rate` pass
//! through untouched. The DSP lives in [`crate::dsp::resample`].

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, UInt32Array};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde::Deserialize;

use super::per_clip::map_clips;
use crate::audio::Reason;
use crate::dsp::resample::{Quality, StreamResampler};
use crate::engine::{
    BatchStream, Component, ConfigContext, Frame, Operator, OperatorConfig, PlanInput, Problem,
    Role, TaskContext,
};
use crate::error::Result;
use crate::rows::{replace_columns, row_planes, samples_array};
use crate::schema::require_inputs;
use crate::schema::{TableKind, col};

/// Config of the `resample` stage.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResampleConfig {
    /// Target sample rate in Hz.
    pub rate: i64,
    #[serde(default)]
    pub quality: Quality,
}

impl Component for ResampleConfig {
    const KIND: &'static str = "resample";
    const ROLE: Role = Role::Stage;
    const SUMMARY: &'static str =
        "resample audio to a target rate (soxr-HQ-matched FFT sinc, chunk-exact, no delay)";
}

impl OperatorConfig for ResampleConfig {
    fn check(&self, _ctx: &ConfigContext) -> Vec<Problem> {
        let mut p = Vec::new();
        if !(1..=crate::limits::MAX_SAMPLE_RATE as i64).contains(&self.rate) {
            p.push(
                Problem::new(
                    "rate",
                    format!(
                        "must be a sample rate from 1 to {} Hz, got {}",
                        crate::limits::MAX_SAMPLE_RATE,
                        self.rate
                    ),
                )
                .with_hint("e.g. rate = 16000"),
            );
        }
        p
    }

    fn plan(&self, inputs: &[PlanInput]) -> std::result::Result<SchemaRef, String> {
        let s = require_inputs(inputs, &[TableKind::Audio])?;
        Ok(crate::schema::with_sample_rate(&s, self.rate as u32))
    }

    fn build(&self, _ctx: &ConfigContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(Resample { cfg: self.clone() }))
    }
}

struct Resample {
    cfg: ResampleConfig,
}

/// Per-clip state: `None` when the clip is already at the target rate.
struct ClipState {
    resampler: Option<StreamResampler>,
    out_frames: u64,
}

impl Operator for Resample {
    fn execute(self: Box<Self>, inputs: Vec<BatchStream>, ctx: TaskContext) -> BatchStream {
        let schema = inputs
            .first()
            .map(|s| s.schema())
            .unwrap_or_else(|| crate::schema::audio_schema(false));
        let keep = crate::rows::keeps_channels(&schema);
        let input = crate::engine::stream::merge_inputs(schema.clone(), inputs);
        let rate = self.cfg.rate as u32;
        let quality = self.cfg.quality;
        // Every row out is at `rate`: the schema says so (`sermo.sample_rate`).
        let out_schema = crate::schema::with_sample_rate(&schema, rate);
        let tagged = out_schema.clone();
        let tag = move |b: RecordBatch| {
            RecordBatch::try_new(tagged.clone(), b.columns().to_vec()).map_err(|e| e.to_string())
        };
        map_clips(
            input,
            out_schema,
            ctx,
            Reason::InvalidFormat,
            move |row| {
                let from = crate::rows::row_u32(row, col::SAMPLE_RATE)?;
                if from == rate {
                    return Ok(ClipState {
                        resampler: None,
                        out_frames: 0,
                    });
                }
                let channels = row_planes(row, 0)?.len();
                let r = StreamResampler::new(from, rate, channels, quality)
                    .map_err(|e| e.to_string())?;
                Ok(ClipState {
                    resampler: Some(r),
                    out_frames: 0,
                })
            },
            move |state, row, last| {
                let Some(r) = state.resampler.as_mut() else {
                    return Ok(vec![Frame::Batch(tag(row)?)]);
                };
                let planes = row_planes(&row, 0)?;
                let slices: Vec<&[f32]> = planes.iter().map(Vec::as_slice).collect();
                let mut out = r.push(&slices).map_err(|e| e.to_string())?;
                if last {
                    let tail = r.finish().map_err(|e| e.to_string())?;
                    for (o, t) in out.iter_mut().zip(tail) {
                        o.extend(t);
                    }
                }
                let n = out.first().map_or(0, Vec::len) as u64;
                let start = state.out_frames as f64 / rate as f64;
                state.out_frames += n;
                let end = state.out_frames as f64 / rate as f64;
                let replaced: Vec<(&str, ArrayRef)> = vec![
                    (col::SAMPLES, samples_array(out, keep)),
                    (col::SAMPLE_RATE, Arc::new(UInt32Array::from(vec![rate]))),
                    (col::START_S, Arc::new(Float64Array::from(vec![start]))),
                    (col::END_S, Arc::new(Float64Array::from(vec![end]))),
                ];
                Ok(vec![Frame::Batch(tag(replace_columns(&row, &replaced)?)?)])
            },
        )
    }
}
