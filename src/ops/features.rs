//! `features` stage: audio → features, with librosa 0.11's names, parameters,
//! defaults and numbers (parity is tested against librosa fixtures).
//!
//! ```toml
//! [stages.feat]
//! kind = "features"
//! input = "audio16k"
//! n_fft = 2048          # shared STFT settings (librosa names and defaults)
//! hop_length = 512
//! # win_length = 2048, center = true, pad_mode = "constant", window = "hann"
//! summary = "mean"      # optional: pool over time ("mean" | "mean_std")
//! stack = ["zcr", "rms", "mfcc"]   # optional: a `stacked` column, per frame
//! [stages.feat.mfcc]    # one sub-table per feature; its presence enables it
//! n_mfcc = 40
//! deltas = 2            # append delta and delta-delta (width 9)
//! [stages.feat.zcr]
//! [stages.feat.rms]
//! ```
//! Features: `spectrogram` (power or magnitude), `mel`, `log_mel`, `mfcc`, `zcr`,
//! `rms`, `chroma` (chroma_stft, tuning estimated or given), `contrast`
//! (spectral_contrast). Each becomes a column named after it, time-major
//! `List<FixedSizeList<Float32, D>>` (frames × D, librosa's output transposed;
//! deltas are appended along D), or `FixedSizeList<Float32, D>` with `summary`.
//! The settings are written to the schema metadata under `sermo.features`.
//! Features are computed per row: clips, or segments cut by an upstream stage.
//! FFT plans, filter banks and DCT matrices are built once per sample rate.
//!
//! This module is the adaptor only (config → operator); the settings live in
//! [`crate::frontend::options`], the computation in [`crate::frontend::compute`].

use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use super::per_row::map_rows;
use crate::audio::Reason;
use crate::engine::{
    BatchStream, Component, ConfigContext, Operator, OperatorConfig, PlanInput, Problem, Role,
    TaskContext,
};
use crate::error::Result;
pub use crate::frontend::FeaturesConfig;
use crate::frontend::RowFeaturizer;
use crate::schema::{self, TableKind, require_inputs};

impl Component for FeaturesConfig {
    const KIND: &'static str = "features";
    const ROLE: Role = Role::Stage;
    const SUMMARY: &'static str = "spectrogram, mel, log_mel, mfcc, zcr, rms, chroma, contrast with librosa parity (+ deltas, summary, stack)";
}

impl OperatorConfig for FeaturesConfig {
    fn check(&self, _ctx: &ConfigContext) -> Vec<Problem> {
        self.problems()
    }

    fn plan(&self, inputs: &[PlanInput]) -> std::result::Result<SchemaRef, String> {
        let s = require_inputs(inputs, &[TableKind::Audio])?;
        schema::require_mono(&s)?;
        Ok(self.output_schema(Some(&s)))
    }

    fn build(&self, _ctx: &ConfigContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(Features {
            cfg: Arc::new(self.clone()),
        }))
    }
}

struct Features {
    cfg: Arc<FeaturesConfig>,
}

impl Operator for Features {
    fn execute(self: Box<Self>, inputs: Vec<BatchStream>, ctx: TaskContext) -> BatchStream {
        let in_schema = inputs
            .first()
            .map(|s| s.schema())
            .unwrap_or_else(|| schema::audio_schema(false));
        let out_schema = self.cfg.output_schema(Some(&in_schema));
        let in_schema_for_rows = in_schema.clone();
        let input = crate::engine::stream::merge_inputs(in_schema, inputs);
        let featurizer = RowFeaturizer::new((*self.cfg).clone(), &in_schema_for_rows);
        map_rows(input, out_schema, ctx, Reason::InvalidFormat, move |row| {
            featurizer.row(row).map(|b| vec![b])
        })
    }
}
