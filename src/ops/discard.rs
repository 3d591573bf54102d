//! `discard` sink: consumes its input and writes nothing; counts rows and
//! quarantined files. For benchmarks and dry runs of everything upstream.
//!
//! ```toml
//! [sinks.null]
//! kind = "discard"
//! input = "feat"
//! ```

use arrow::datatypes::SchemaRef;
use futures::StreamExt;
use serde::Deserialize;

use crate::engine::{
    BatchStream, Component, ConfigContext, Frame, FrameResult, Operator, OperatorConfig, PlanInput,
    Role, TaskContext,
};
use crate::error::Result;
use crate::schema::require_inputs;
use crate::schema::{self, TableKind};

/// Config of the `discard` sink (no keys).
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscardConfig {}

impl Component for DiscardConfig {
    const KIND: &'static str = "discard";
    const ROLE: Role = Role::Sink;
    const SUMMARY: &'static str = "consume and count rows, write nothing (benchmarks, dry runs)";
}

impl OperatorConfig for DiscardConfig {
    fn plan(&self, inputs: &[PlanInput]) -> std::result::Result<SchemaRef, String> {
        require_inputs(inputs, &TableKind::data_kinds())?;
        Ok(schema::empty_schema())
    }

    fn build(&self, _ctx: &ConfigContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(Discard))
    }
}

struct Discard;

impl Operator for Discard {
    fn prepare(&mut self, _ctx: &TaskContext) -> Result<crate::engine::Resume> {
        Ok(crate::engine::Resume::Indifferent)
    }

    fn execute(self: Box<Self>, inputs: Vec<BatchStream>, ctx: TaskContext) -> BatchStream {
        let input = futures::stream::select_all(inputs);
        let rows = ctx.metrics.counter(&format!("sink.{}.rows", ctx.node_id));
        let out = input.filter_map(move |item| {
            let pass: Option<FrameResult> = match item {
                Ok(Frame::Batch(b)) => {
                    rows.add(b.num_rows() as u64);
                    None
                }
                Ok(Frame::Quarantine(_) | Frame::Done(_)) => None,
                Err(e) => Some(Err(e)),
            };
            futures::future::ready(pass)
        });
        BatchStream::new(schema::empty_schema(), out)
    }
}
