//! Pass: pipeline settings. Parses the `[pipeline]` table and checks its numbers.

use serde::Deserialize;

use crate::error::ConfigError;
use crate::limits::MAX_CHANNEL_CAPACITY;

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

/// The checked `[pipeline]` settings, with defaults in place of bad values.
pub(super) struct Settings {
    pub(super) name: Option<String>,
    pub(super) channel_capacity: usize,
    pub(super) threads: Option<usize>,
    pub(super) fail_on_quarantine: bool,
    pub(super) seed: u64,
}

/// Parse `[pipeline]` (unknown keys, wrong types) and check that
/// `channel_capacity` and `threads` are at least 1. Produces the settings the
/// plan is assembled with; a bad value is reported and replaced by its default.
pub(super) fn check_pipeline(table: &toml::Table, errors: &mut Vec<ConfigError>) -> Settings {
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
        Some(n) if (1..=MAX_CHANNEL_CAPACITY as i64).contains(&n) => n as usize,
        Some(n) if n >= 1 => {
            errors.push(
                ConfigError::new(
                    "pipeline.channel_capacity",
                    format!("must be at most {MAX_CHANNEL_CAPACITY}, got {n}"),
                )
                .hint("it is the number of batches in flight per edge: memory grows with it"),
            );
            DEFAULT_CHANNEL_CAPACITY
        }
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
    Settings {
        name: settings.name,
        channel_capacity,
        threads,
        fail_on_quarantine: settings.fail_on_quarantine,
        seed: settings.seed,
    }
}
