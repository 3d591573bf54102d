//! Pass: declare. Parses each component table through the registry: its
//! `kind`, its `input`/`inputs` names, and its own keys into an operator config.

use super::ROLES;
use super::names::Named;
use crate::engine::{ConfigContext, OperatorConfig, Role};
use crate::error::ConfigError;
use crate::registry::Registry;

/// One declared component, as the later passes see it.
pub(super) struct Declared {
    pub(super) id: String,
    pub(super) role: Role,
    pub(super) kind: String,
    /// The ids named by `input`/`inputs`, not yet resolved.
    pub(super) inputs: Vec<String>,
    /// `None` when the kind is unknown or the keys did not parse.
    pub(super) config: Option<Box<dyn OperatorConfig>>,
    /// Canonical JSON of the component's own keys (for lineage hashes).
    pub(super) settings: String,
}

fn known_kinds_hint(registry: &Registry) -> String {
    ROLES
        .iter()
        .map(|r| format!("{} kinds: {}", r.noun(), registry.kinds(*r).join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Report the naming problems and declare the components of the names pass,
/// in its order. Checks `kind` (present, a string, known, of the right role),
/// the `input`/`inputs` keys, the component's keys (parse and `check`).
/// Produces every component with a string `kind`, in file order (sources,
/// stages, sinks); its `config` is `None` when it could not be parsed.
pub(super) fn declare_all(
    named: Vec<Named<'_>>,
    registry: &Registry,
    ctx: &ConfigContext,
    errors: &mut Vec<ConfigError>,
) -> Vec<Declared> {
    let mut declared: Vec<Declared> = Vec::new();
    for n in named {
        match n {
            Named::Problem(e) => errors.push(e),
            Named::Component(c) => {
                if let Some(d) = declare(c.id, c.role, c.table, &c.at, registry, ctx, errors) {
                    declared.push(d);
                }
            }
        }
    }
    declared
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
            Err(e) => {
                let path = match &e.key {
                    Some(k) => format!("{at}.{k}"),
                    None => at.to_string(),
                };
                errors.push(ConfigError::new(path, e.message));
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
