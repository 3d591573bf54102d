//! Compile a parsed pipeline file into a [`Plan`], collecting every problem.
//!
//! Compilation runs named passes in order, each in its own module; every pass
//! pushes what it finds wrong onto one list, so a file reports all its problems
//! at once, in pass order:
//!
//! 1. [`names::check_top_level`]: unknown top-level tables.
//! 2. [`settings::check_pipeline`]: the `[pipeline]` table.
//! 3. [`names::check_components`]: section shapes, valid and unique ids.
//! 4. [`declare::declare_all`]: each component's kind, inputs and own keys.
//! 5. [`shape::check_has_sink`]: the pipeline writes something.
//! 6. [`inputs::resolve_inputs`]: inputs name a source or stage; the edges.
//! 7. [`cycles::check_cycles`]: topological order; every cycle.
//! 8. [`schemas::plan_schemas`]: output schemas in topological order.
//! 9. [`outputs::check_outputs`]: no two writers share a path.
//!
//! With no problems, [`assemble::assemble`] builds the plan.

mod assemble;
mod cycles;
mod declare;
mod inputs;
mod names;
mod outputs;
mod schemas;
mod settings;
mod shape;

use std::path::Path;

use crate::engine::{ConfigContext, Plan, Role};
use crate::error::ConfigError;
use crate::registry::Registry;

/// The sections of a pipeline file, in the order they are walked.
const ROLES: [Role; 3] = [Role::Source, Role::Stage, Role::Sink];

/// Validate and plan. Returns every problem found, or a plan in topological order.
pub fn compile(
    table: &toml::Table,
    base_dir: &Path,
    registry: &Registry,
) -> Result<Plan, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let seed = table
        .get("pipeline")
        .and_then(|p| p.get("seed"))
        .and_then(|s| s.as_integer())
        .unwrap_or(0) as u64;
    let ctx = ConfigContext { base_dir, seed };

    names::check_top_level(table, &mut errors);
    let settings = settings::check_pipeline(table, &mut errors);
    let named = names::check_components(table);
    let declared = declare::declare_all(named, registry, &ctx, &mut errors);
    shape::check_has_sink(&declared, &mut errors);
    let edges = inputs::resolve_inputs(&declared, &mut errors);
    let order = cycles::check_cycles(&declared, &edges, &mut errors);
    let schemas = schemas::plan_schemas(&declared, &edges, &order, &ctx, &mut errors);
    outputs::check_outputs(&declared, &ctx, &mut errors);

    if !errors.is_empty() {
        return Err(errors);
    }
    assemble::assemble(
        table, base_dir, settings, declared, &edges, &order, &schemas,
    )
}
