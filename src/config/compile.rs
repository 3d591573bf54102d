//! Compile a parsed pipeline file into a [`Plan`], collecting every problem.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component as PathComponent, Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use crate::engine::hash;
use crate::engine::{ConfigContext, OperatorConfig, Plan, PlanInput, PlanNode, Role};
use crate::registry::Registry;

/// The `[pipeline]` table.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PipelineSettings {
    /// Optional name, shown in progress and recorded in outputs.
    name: Option<String>,
    /// Batches in flight per edge (default 8).
    channel_capacity: Option<i64>,
    /// Worker threads for CPU-heavy work (default: number of cores).
    threads: Option<i64>,
    /// Exit non-zero when any file was quarantined (default false).
    #[serde(default)]
    fail_on_quarantine: bool,
    /// Seed of every random draw (augmentation, crops); default 0.
    #[serde(default)]
    seed: u64,
}

const DEFAULT_CHANNEL_CAPACITY: usize = 8;
const ROLES: [Role; 3] = [Role::Source, Role::Stage, Role::Sink];

struct Declared {
    id: String,
    role: Role,
    kind: String,
    inputs: Vec<String>,
    config: Option<Box<dyn OperatorConfig>>,
    /// Canonical JSON of the component's own keys (for lineage hashes).
    settings: String,
}

fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn known_kinds_hint(registry: &Registry) -> String {
    ROLES
        .iter()
        .map(|r| format!("{} kinds: {}", r.noun(), registry.kinds(*r).join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

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

    for key in table.keys() {
        if !matches!(key.as_str(), "pipeline" | "sources" | "stages" | "sinks") {
            errors.push(
                ConfigError::new(key.clone(), format!("unknown top-level table `{key}`"))
                    .hint("a pipeline file has [pipeline], [sources.ID], [stages.ID] and [sinks.ID] tables"),
            );
        }
    }

    // [pipeline]
    let settings = match table.get("pipeline") {
        None => PipelineSettings::default(),
        Some(v) => match v.clone().try_into::<PipelineSettings>() {
            Ok(s) => s,
            Err(e) => {
                errors.push(ConfigError::new("pipeline", e.message().trim().to_string()));
                PipelineSettings::default()
            }
        },
    };
    let channel_capacity = match settings.channel_capacity {
        None => DEFAULT_CHANNEL_CAPACITY,
        Some(n) if n >= 1 => n as usize,
        Some(n) => {
            errors.push(
                ConfigError::new(
                    "pipeline.channel_capacity",
                    format!("must be at least 1, got {n}"),
                )
                .hint("it is the number of batches in flight per edge"),
            );
            DEFAULT_CHANNEL_CAPACITY
        }
    };
    let threads = match settings.threads {
        None => None,
        Some(n) if n >= 1 => Some(n as usize),
        Some(n) => {
            errors.push(ConfigError::new(
                "pipeline.threads",
                format!("must be at least 1, got {n}"),
            ));
            None
        }
    };

    // Every component.
    let mut declared: Vec<Declared> = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for role in ROLES {
        let Some(section) = table.get(role.table()) else {
            continue;
        };
        let Some(section) = section.as_table() else {
            errors.push(ConfigError::new(
                role.table(),
                format!(
                    "`{}` must be a table of {}s: [{}.ID]",
                    role.table(),
                    role.noun(),
                    role.table()
                ),
            ));
            continue;
        };
        for (id, value) in section {
            let at = format!("{}.{id}", role.table());
            if !is_valid_id(id) {
                errors.push(ConfigError::new(
                    &at,
                    format!("id `{id}` may contain only letters, digits, `_` and `-`"),
                ));
            }
            if let Some(prev) = seen.insert(id.clone(), at.clone()) {
                errors.push(ConfigError::new(
                    &at,
                    format!("id `{id}` is already used by {prev}"),
                ));
            }
            let Some(t) = value.as_table() else {
                errors.push(ConfigError::new(&at, "must be a table"));
                continue;
            };
            if let Some(d) = declare(id, role, t, &at, registry, &ctx, &mut errors) {
                declared.push(d);
            }
        }
    }

    if !declared.iter().any(|d| d.role == Role::Sink) && errors.is_empty() {
        errors.push(
            ConfigError::new(
                "sinks",
                "the pipeline has no sink: nothing would be written",
            )
            .hint("add e.g. [sinks.table] with kind = \"parquet\""),
        );
    }

    // Inputs must name a source or a stage.
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

    // Topological order (Kahn); what remains is on or behind a cycle.
    let order = topo_order(&edges);
    if order.len() < declared.len() {
        for cycle in find_cycles(&edges, &order) {
            let names: Vec<String> = cycle
                .iter()
                .map(|&i| format!("`{}`", declared[i].id))
                .collect();
            let first = &declared[cycle[0]];
            errors.push(
                ConfigError::new(
                    format!("{}.{}", first.role.table(), first.id),
                    format!("cycle: {} -> `{}`", names.join(" -> "), first.id),
                )
                .hint("a pipeline is a directed acyclic graph; remove one of these inputs"),
            );
        }
    }

    // Plan schemas in order; a node whose input failed is skipped (no cascades).
    let mut schemas: Vec<Option<arrow::datatypes::SchemaRef>> = vec![None; declared.len()];
    for &i in &order {
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
        match cfg.plan_in(&inputs, &ctx) {
            Ok(s) => schemas[i] = Some(s),
            Err(msg) => errors.push(ConfigError::new(
                format!("{}.{}", d.role.table(), d.id),
                format!("{} `{}` ({}) {msg}", d.role.noun(), d.id, d.kind),
            )),
        }
    }

    // Two writers may not share a path.
    let mut writers: BTreeMap<PathBuf, String> = BTreeMap::new();
    for d in &declared {
        let Some(cfg) = &d.config else { continue };
        if let Some(p) = cfg.output_path(&ctx) {
            let norm = normalize(&p);
            if let Some(prev) = writers.get(&norm) {
                errors.push(
                    ConfigError::new(
                        format!("{}.{}", d.role.table(), d.id),
                        format!(
                            "{} `{}` and sink `{prev}` both write to `{}`",
                            d.role.noun(),
                            d.id,
                            norm.display()
                        ),
                    )
                    .hint("give each sink its own path"),
                );
            } else {
                writers.insert(norm, d.id.clone());
            }
        }
    }

    if !errors.is_empty() {
        return Err(errors);
    }

    // Assemble the plan in topological order.
    let mut position = vec![0usize; declared.len()];
    for (pos, &i) in order.iter().enumerate() {
        position[i] = pos;
    }
    let mut slots: Vec<Option<Declared>> = declared.into_iter().map(Some).collect();
    let mut nodes = Vec::new();
    for &i in &order {
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
        channel_capacity,
        threads,
        base_dir: base_dir.to_path_buf(),
        nodes,
    })
}

/// Parse one `[role.id]` table: kind, inputs and the component's own keys.
fn declare(
    id: &str,
    role: Role,
    t: &toml::Table,
    at: &str,
    registry: &Registry,
    ctx: &ConfigContext,
    errors: &mut Vec<ConfigError>,
) -> Option<Declared> {
    let mut rest = t.clone();
    let kind = match rest.remove("kind") {
        Some(toml::Value::String(k)) => k,
        Some(_) => {
            errors.push(ConfigError::new(format!("{at}.kind"), "must be a string"));
            return None;
        }
        None => {
            errors.push(ConfigError::new(at, "missing `kind`").hint(format!(
                "known {} kinds: {}",
                role.noun(),
                registry.kinds(role).join(", ")
            )));
            return None;
        }
    };

    // input / inputs
    let input = rest.remove("input");
    let inputs = rest.remove("inputs");
    let mut names = Vec::new();
    match (role, input, inputs) {
        (Role::Source, None, None) => {}
        (Role::Source, _, _) => errors.push(ConfigError::new(at, "a source takes no `input`")),
        (_, Some(_), Some(_)) => {
            errors.push(ConfigError::new(at, "give `input` or `inputs`, not both"))
        }
        (_, None, None) => errors.push(
            ConfigError::new(at, format!("missing `input` of {} `{id}`", role.noun())).hint(
                "name the source or stage it reads: input = \"ID\" (or inputs = [\"a\", \"b\"])",
            ),
        ),
        (_, Some(toml::Value::String(s)), None) => names.push(s),
        (_, Some(_), None) => errors.push(ConfigError::new(
            format!("{at}.input"),
            "must be a string (an id)",
        )),
        (_, None, Some(toml::Value::Array(a))) => {
            if a.is_empty() {
                errors.push(ConfigError::new(format!("{at}.inputs"), "is empty"));
            }
            for v in a {
                match v {
                    toml::Value::String(s) => names.push(s),
                    _ => errors.push(ConfigError::new(
                        format!("{at}.inputs"),
                        "must be a list of ids",
                    )),
                }
            }
        }
        (_, None, Some(_)) => errors.push(ConfigError::new(
            format!("{at}.inputs"),
            "must be a list of ids",
        )),
    }

    let config = match registry.get_in(&kind, role) {
        None => {
            errors.push(
                ConfigError::new(format!("{at}.kind"), format!("unknown kind `{kind}`"))
                    .hint(known_kinds_hint(registry)),
            );
            None
        }
        Some(entry) if entry.role != role => {
            errors.push(
                ConfigError::new(
                    format!("{at}.kind"),
                    format!(
                        "kind `{kind}` is a {}, not a {}",
                        entry.role.noun(),
                        role.noun()
                    ),
                )
                .hint(format!("declare it as [{}.{id}]", entry.role.table())),
            );
            None
        }
        Some(entry) => match entry.parse(toml::Value::Table(rest.clone())) {
            Ok(cfg) => {
                for p in cfg.check(ctx) {
                    let path = match &p.key {
                        Some(k) => format!("{at}.{k}"),
                        None => at.to_string(),
                    };
                    let mut e = ConfigError::new(path, p.message);
                    e.hint = p.hint;
                    errors.push(e);
                }
                Some(cfg)
            }
            Err(msg) => {
                errors.push(ConfigError::new(at, msg));
                None
            }
        },
    };
    // toml::Table is ordered by key, so this JSON is canonical.
    let settings = serde_json::to_string(&rest).unwrap_or_default();
    Some(Declared {
        id: id.to_string(),
        role,
        kind,
        inputs: names,
        config,
        settings,
    })
}

fn topo_order(edges: &[Vec<usize>]) -> Vec<usize> {
    let n = edges.len();
    let mut indegree: Vec<usize> = edges.iter().map(|e| e.len()).collect();
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, e) in edges.iter().enumerate() {
        for &j in e {
            consumers[j].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    ready.reverse();
    let mut order = Vec::new();
    while let Some(i) = ready.pop() {
        order.push(i);
        for &c in &consumers[i] {
            indegree[c] -= 1;
            if indegree[c] == 0 {
                ready.push(c);
            }
        }
    }
    order
}

/// The distinct cycles among the nodes not in `order`.
fn find_cycles(edges: &[Vec<usize>], order: &[usize]) -> Vec<Vec<usize>> {
    let mut done = vec![false; edges.len()];
    for &i in order {
        done[i] = true;
    }
    let mut cycles = Vec::new();
    for start in 0..edges.len() {
        if done[start] {
            continue;
        }
        // Follow unresolved inputs until a node repeats.
        let mut path = vec![start];
        let mut cur = start;
        while let Some(&next) = edges[cur].iter().find(|&&j| !done[j]) {
            if let Some(pos) = path.iter().position(|&p| p == next) {
                let mut cycle: Vec<usize> = path[pos..].to_vec();
                // Report in data-flow order (producer first).
                cycle.reverse();
                let min = cycle
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, v)| **v)
                    .map(|(i, _)| i)
                    .unwrap_or(0);
                cycle.rotate_left(min);
                for &c in &cycle {
                    done[c] = true;
                }
                cycles.push(cycle);
                break;
            }
            path.push(next);
            cur = next;
        }
        for &p in &path {
            done[p] = true;
        }
    }
    cycles
}

/// Absolute, lexically normalized path (`a/./b/../c` → `a/c`).
pub(crate) fn normalize(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            PathComponent::CurDir => {}
            PathComponent::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}
