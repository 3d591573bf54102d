//! Pass: inputs. Resolves the `input`/`inputs` names of each component into
//! graph edges.

use std::collections::HashMap;

use super::declare::Declared;
use crate::engine::Role;
use crate::error::ConfigError;

/// Check that every input names a declared source or stage (not a sink, not
/// an unknown id). Produces the edges: for each component (by index into
/// `declared`), the indices of its resolved inputs, in the order given. An
/// input that did not resolve is left out, so a component with a bad input
/// has fewer edges than input names.
pub(super) fn resolve_inputs(
    declared: &[Declared],
    errors: &mut Vec<ConfigError>,
) -> Vec<Vec<usize>> {
    let index: HashMap<&str, usize> = declared
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.as_str(), i))
        .collect();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); declared.len()];
    for (i, d) in declared.iter().enumerate() {
        let at = format!("{}.{}", d.role.table(), d.id);
        for input in &d.inputs {
            match index.get(input.as_str()) {
                Some(&j) if declared[j].role == Role::Sink => errors.push(
                    ConfigError::new(
                        &at,
                        format!(
                            "input `{input}` of {} `{}` is a sink; sinks produce nothing",
                            d.role.noun(),
                            d.id
                        ),
                    )
                    .hint("an input must name a source or a stage"),
                ),
                Some(&j) => edges[i].push(j),
                None => {
                    let mut ids: Vec<&str> = declared
                        .iter()
                        .filter(|x| x.role != Role::Sink)
                        .map(|x| x.id.as_str())
                        .collect();
                    ids.sort();
                    errors.push(
                        ConfigError::new(
                            &at,
                            format!(
                                "input `{input}` of {} `{}` matches no source or stage",
                                d.role.noun(),
                                d.id
                            ),
                        )
                        .hint(format!("sources and stages declared: {}", ids.join(", "))),
                    )
                }
            }
        }
    }
    edges
}
