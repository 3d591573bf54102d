//! Last step: assemble the checked graph into a [`Plan`] in topological
//! order, with settings and lineage hashes.

use std::path::Path;

use arrow::datatypes::SchemaRef;

use super::declare::Declared;
use super::settings::Settings;
use crate::engine::hash;
use crate::engine::{Plan, PlanNode};
use crate::error::ConfigError;

/// Build the plan once every pass found nothing wrong: nodes in topological
/// order with inputs renumbered to plan positions, each node's settings hash
/// and lineage hash (its settings, the seed and its inputs' lineage), and the
/// hash of the whole pipeline table. Fails only on an internal inconsistency
/// (a node without config or schema).
pub(super) fn assemble(
    table: &toml::Table,
    base_dir: &Path,
    settings: Settings,
    declared: Vec<Declared>,
    edges: &[Vec<usize>],
    order: &[usize],
    schemas: &[Option<SchemaRef>],
) -> Result<Plan, Vec<ConfigError>> {
    let mut position = vec![0usize; declared.len()];
    for (pos, &i) in order.iter().enumerate() {
        position[i] = pos;
    }
    let mut slots: Vec<Option<Declared>> = declared.into_iter().map(Some).collect();
    let mut nodes = Vec::new();
    for &i in order {
        let Some(d) = slots[i].take() else { continue };
        let (Some(config), Some(schema)) = (d.config, schemas[i].clone()) else {
            return Err(vec![ConfigError::new(d.id, "internal: unplanned node")]);
        };
        let inputs: Vec<usize> = edges[i].iter().map(|&j| position[j]).collect();
        let settings_hash = hash::hex(hash::stable_hash_parts(&[
            d.kind.as_bytes(),
            d.settings.as_bytes(),
        ]));
        // Lineage: this node's settings, the seed and its inputs' lineage, in order.
        let mut parts: Vec<Vec<u8>> = vec![
            settings_hash.clone().into_bytes(),
            settings.seed.to_le_bytes().to_vec(),
        ];
        for &j in &inputs {
            let n: &PlanNode = &nodes[j];
            parts.push(n.lineage_hash.clone().into_bytes());
        }
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        let lineage_hash = hash::hex(hash::stable_hash_parts(&refs));
        nodes.push(PlanNode {
            id: d.id,
            role: d.role,
            kind: d.kind,
            inputs,
            schema,
            config,
            settings_hash,
            lineage_hash,
        });
    }
    let pipeline_hash = hash::hex(hash::stable_hash(
        serde_json::to_string(table).unwrap_or_default().as_bytes(),
    ));
    Ok(Plan {
        pipeline_hash,
        seed: settings.seed,
        fail_on_quarantine: settings.fail_on_quarantine,
        name: settings.name,
        channel_capacity: settings.channel_capacity,
        threads: settings.threads,
        base_dir: base_dir.to_path_buf(),
        nodes,
    })
}
