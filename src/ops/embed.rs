//! `embed` stage: a pretrained speech encoder (wav2vec2, HuBERT, WavLM; a Hugging
//! Face checkpoint folder) applied to audio rows, one features row per clip with a
//! column per chosen hidden state.
//!
//! ```toml
//! [stages.ssl]
//! kind = "embed"
//! input = "audio16k"              # audio at the encoder's rate (resample first)
//! encoder = "models/wavlm-base-plus"   # config.json + model.safetensors
//! layers = "all"                  # "all" | "last" | [K, ...] (0 = transformer input)
//! pooling = "mean"                # "none" (per frame) | "mean" | "mean_std"
//! batch_size = 4                  # clips per forward pass
//! device = "cpu"                  # cpu | cuda | auto
//! max_s = 30.0                    # longer clips are quarantined (too_long)
//! # normalize = true              # overrides preprocessor_config.json's do_normalize
//! ```
//! Columns are named `layer_K`. The input must be at the encoder's rate (16 kHz
//! for the published models): a `resample` stage fixes it, and any other rate
//! is refused before anything runs. The encoder's identity is recorded in the
//! table's metadata (`sermo.encoder`).
//!
//! This module is the adaptor only; the settings and the row computation live in
//! [`crate::encoders::embed`], the encoder in [`crate::encoders`].

use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use super::per_row::map_batches_with;
pub use crate::encoders::embed::EmbedConfig;
use crate::encoders::embed::{EmbedSettings, Embedder, Loaded};
use crate::engine::{
    BatchStream, Component, ConfigContext, Operator, OperatorConfig, PlanInput, Problem, Role,
    TaskContext,
};
use crate::error::{Result, SermoError};
use crate::schema::{self, TableKind, require_inputs};

impl Component for EmbedConfig {
    const KIND: &'static str = "embed";
    const ROLE: Role = Role::Stage;
    const SUMMARY: &'static str = "pretrained speech encoder (wav2vec2, HuBERT, WavLM checkpoint folder): hidden states per layer, per frame or pooled";
}

impl OperatorConfig for EmbedConfig {
    fn check(&self, ctx: &ConfigContext) -> Vec<Problem> {
        let mut p = self.problems();
        if let Err(e) = self.settings(&ctx.resolve(&self.encoder)) {
            p.push(Problem::new("encoder", e).with_hint(
                "point `encoder` at a Hugging Face checkpoint folder (see docs/models.md)",
            ));
        }
        p
    }

    fn plan(&self, _inputs: &[PlanInput]) -> std::result::Result<SchemaRef, String> {
        Err("needs the pipeline's folder to find its encoder".into())
    }

    fn plan_in(
        &self,
        inputs: &[PlanInput],
        ctx: &ConfigContext,
    ) -> std::result::Result<SchemaRef, String> {
        let s = require_inputs(inputs, &[TableKind::Audio])?;
        schema::require_mono(&s)?;
        let settings = self.settings(&ctx.resolve(&self.encoder))?;
        let want = settings.encoder.sample_rate;
        schema::require_sample_rate(&s, want, "the encoder", true)?;
        Ok(self.output_schema(&s, &settings))
    }

    fn build(&self, ctx: &ConfigContext) -> Result<Box<dyn Operator>> {
        let folder = ctx.resolve(&self.encoder);
        let (encoder, device) = Loaded::load(&folder, self.normalize, self.device)
            .map_err(|e| SermoError::stage("embed", Some(folder.clone()), e))?;
        if self.device != crate::train::device::DeviceChoice::Cpu {
            eprintln!("sermo: embed: encoder on the {device}");
        }
        let layers = self
            .layers
            .resolve(encoder.config().num_hidden_states())
            .map_err(|e| SermoError::stage("embed", Some(folder), e))?;
        Ok(Box::new(Embed {
            cfg: self.clone(),
            encoder: Some(encoder),
            layers,
        }))
    }
}

struct Embed {
    cfg: EmbedConfig,
    encoder: Option<Loaded>,
    layers: Vec<usize>,
}

impl Operator for Embed {
    fn execute(mut self: Box<Self>, inputs: Vec<BatchStream>, ctx: TaskContext) -> BatchStream {
        let in_schema = inputs
            .first()
            .map(|s| s.schema())
            .unwrap_or_else(|| schema::audio_schema(false));
        let input = crate::engine::stream::merge_inputs(in_schema.clone(), inputs);
        let Some(encoder) = self.encoder.take() else {
            return BatchStream::empty(in_schema);
        };
        let settings = EmbedSettings {
            encoder: encoder.identity().clone(),
            layers: self.layers.clone(),
            pooling: self.cfg.pooling,
        };
        let out_schema = self.cfg.output_schema(&in_schema, &settings);
        let embedder = Arc::new(Embedder {
            encoder,
            layers: self.layers.clone(),
            pooling: self.cfg.pooling,
            batch_size: self.cfg.batch_size,
            max_s: self.cfg.max_s,
            schema: out_schema.clone(),
        });
        // One job at a time: the encoder's matrix products use every core, and
        // a job's memory grows with its clips.
        map_batches_with(input, out_schema, ctx, 1, move |batch| {
            let (out, refused) = embedder.embed(&batch)?;
            Ok((out.into_iter().collect(), refused))
        })
    }
}
