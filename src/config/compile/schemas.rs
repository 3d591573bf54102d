//! Pass: schemas. Plans each component's output schema from its inputs'.

use arrow::datatypes::SchemaRef;

use super::declare::Declared;
use crate::engine::{ConfigContext, PlanInput, Role};
use crate::error::ConfigError;

/// Plan schemas in topological order (`OperatorConfig::plan_in`), reporting
/// what each component finds wrong with its inputs. A node whose config or
/// any input failed earlier is skipped (no cascades). Produces each
/// component's output schema (by index into `declared`), `None` where skipped
/// or failed.
pub(super) fn plan_schemas(
    declared: &[Declared],
    edges: &[Vec<usize>],
    order: &[usize],
    ctx: &ConfigContext,
    errors: &mut Vec<ConfigError>,
) -> Vec<Option<SchemaRef>> {
    let mut schemas: Vec<Option<SchemaRef>> = vec![None; declared.len()];
    for &i in order {
        let d = &declared[i];
        let Some(cfg) = &d.config else { continue };
        let mut inputs = Vec::new();
        let mut ready = true;
        for &j in &edges[i] {
            match &schemas[j] {
                Some(s) => inputs.push(PlanInput {
                    id: &declared[j].id,
                    kind: &declared[j].kind,
                    schema: s.clone(),
                }),
                None => ready = false,
            }
        }
        let missing_inputs = d.role != Role::Source && d.inputs.is_empty();
        if !ready || missing_inputs || edges[i].len() != d.inputs.len() {
            continue;
        }
        match cfg.plan_in(&inputs, ctx) {
            Ok(s) => schemas[i] = Some(s),
            Err(msg) => errors.push(ConfigError::new(
                format!("{}.{}", d.role.table(), d.id),
                format!("{} `{}` ({}) {msg}", d.role.noun(), d.id, d.kind),
            )),
        }
    }
    schemas
}
