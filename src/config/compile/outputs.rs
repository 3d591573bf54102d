//! Pass: outputs. No two writers may share an output path.

use std::collections::BTreeMap;
use std::path::{Component as PathComponent, Path, PathBuf};

use super::declare::Declared;
use crate::engine::ConfigContext;
use crate::error::ConfigError;

/// Check that no two components write to the same path (compared after
/// [`normalize`]); the later one in file order is reported. Produces nothing
/// for the next pass.
pub(super) fn check_outputs(
    declared: &[Declared],
    ctx: &ConfigContext,
    errors: &mut Vec<ConfigError>,
) {
    let mut writers: BTreeMap<PathBuf, String> = BTreeMap::new();
    for d in declared {
        let Some(cfg) = &d.config else { continue };
        if let Some(p) = cfg.output_path(ctx) {
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
