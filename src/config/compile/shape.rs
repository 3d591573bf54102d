//! Pass: shape. Whole-graph rules on the declared components.

use super::declare::Declared;
use crate::engine::Role;
use crate::error::ConfigError;

/// Check that the pipeline has at least one sink; reported only when nothing
/// else was wrong so far (a failed declaration may have hidden the sink).
/// Produces nothing for the next pass.
pub(super) fn check_has_sink(declared: &[Declared], errors: &mut Vec<ConfigError>) {
    if !declared.iter().any(|d| d.role == Role::Sink) && errors.is_empty() {
        errors.push(
            ConfigError::new(
                "sinks",
                "the pipeline has no sink: nothing would be written",
            )
            .hint("add e.g. [sinks.table] with kind = \"parquet\""),
        );
    }
}
