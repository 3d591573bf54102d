//! Pass: names. Unknown top-level tables, the shape of the `[sources]`,
//! `[stages]` and `[sinks]` sections, valid and unique component ids.

use std::collections::HashMap;

use super::ROLES;
use crate::engine::Role;
use crate::error::ConfigError;

/// One `[role.id]` table whose section and value are tables, ready to be declared.
pub(super) struct Component<'a> {
    pub(super) id: &'a str,
    pub(super) role: Role,
    /// Table path of the component (`stages.audio`).
    pub(super) at: String,
    pub(super) table: &'a toml::Table,
}

/// One step of the walk over the components, in file order: a naming problem
/// or a component to declare. Kept in one list so that the declare pass reports
/// naming problems and declaration problems interleaved, component by component.
pub(super) enum Named<'a> {
    Problem(ConfigError),
    Component(Component<'a>),
}

fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Report every top-level table other than `[pipeline]`, `[sources]`,
/// `[stages]` and `[sinks]`. Produces nothing for the next pass.
pub(super) fn check_top_level(table: &toml::Table, errors: &mut Vec<ConfigError>) {
    for key in table.keys() {
        if !matches!(key.as_str(), "pipeline" | "sources" | "stages" | "sinks") {
            errors.push(
                ConfigError::new(key.clone(), format!("unknown top-level table `{key}`"))
                    .hint("a pipeline file has [pipeline], [sources.ID], [stages.ID] and [sinks.ID] tables"),
            );
        }
    }
}

/// Walk sources, then stages, then sinks. Checks that each section is a table
/// of components, that each id is valid and not used twice across all roles,
/// and that each component is a table. Produces, in walk order, the problems
/// found and the components to hand to the declare pass; pushes nothing itself.
pub(super) fn check_components(table: &toml::Table) -> Vec<Named<'_>> {
    let mut named = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for role in ROLES {
        let Some(section) = table.get(role.table()) else {
            continue;
        };
        let Some(section) = section.as_table() else {
            named.push(Named::Problem(ConfigError::new(
                role.table(),
                format!(
                    "`{}` must be a table of {}s: [{}.ID]",
                    role.table(),
                    role.noun(),
                    role.table()
                ),
            )));
            continue;
        };
        for (id, value) in section {
            let at = format!("{}.{id}", role.table());
            if !is_valid_id(id) {
                named.push(Named::Problem(ConfigError::new(
                    &at,
                    format!("id `{id}` may contain only letters, digits, `_` and `-`"),
                )));
            }
            if let Some(prev) = seen.insert(id.clone(), at.clone()) {
                named.push(Named::Problem(ConfigError::new(
                    &at,
                    format!("id `{id}` is already used by {prev}"),
                )));
            }
            let Some(t) = value.as_table() else {
                named.push(Named::Problem(ConfigError::new(&at, "must be a table")));
                continue;
            };
            named.push(Named::Component(Component {
                id,
                role,
                at,
                table: t,
            }));
        }
    }
    named
}
