//! The component registry: `kind` name → config parser. Adding a stage is one module
//! under `src/ops/` plus one `register` line in [`Registry::builtin`].

use std::collections::BTreeMap;

use crate::engine::{Component, OperatorConfig, Role};
use crate::ops;

type ParseFn = fn(toml::Value) -> Result<Box<dyn OperatorConfig>, String>;

/// One registered component kind.
#[derive(Clone)]
pub struct Entry {
    pub kind: &'static str,
    pub role: Role,
    pub summary: &'static str,
    parse: ParseFn,
}

impl Entry {
    /// Parse the component's keys (minus `kind`, `input`, `inputs`).
    pub fn parse(&self, v: toml::Value) -> Result<Box<dyn OperatorConfig>, String> {
        (self.parse)(v)
    }
}

/// Known component kinds.
#[derive(Clone, Default)]
pub struct Registry {
    entries: BTreeMap<(&'static str, Role), Entry>,
}

fn parse_as<T: Component>(v: toml::Value) -> Result<Box<dyn OperatorConfig>, String> {
    v.try_into::<T>()
        .map(|c| Box::new(c) as Box<dyn OperatorConfig>)
        .map_err(|e| e.message().trim().to_string())
}

impl Registry {
    /// An empty registry (for tests and embedders that bring their own components).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Every component sermo ships.
    pub fn builtin() -> Self {
        let mut r = Self::empty();
        r.register::<ops::files::FilesConfig>();
        r.register::<ops::stdin::StdinConfig>();
        r.register::<ops::decode::DecodeConfig>();
        r.register::<ops::resample::ResampleConfig>();
        r.register::<ops::augment::AugmentConfig>();
        r.register::<ops::window::WindowConfig>();
        r.register::<ops::features::FeaturesConfig>();
        r.register::<ops::parquet::ParquetSinkConfig>();
        r.register::<ops::parquet::ParquetSourceConfig>();
        r.register::<ops::discard::DiscardConfig>();
        r.register::<ops::train::TrainConfig>();
        r.register::<ops::infer::InferConfig>();
        r.register::<ops::timeline::TimelineConfig>();
        r
    }

    /// Register component `T` under `T::KIND`.
    pub fn register<T: Component>(&mut self) -> &mut Self {
        self.entries.insert(
            (T::KIND, T::ROLE),
            Entry {
                kind: T::KIND,
                role: T::ROLE,
                summary: T::SUMMARY,
                parse: parse_as::<T>,
            },
        );
        self
    }

    /// The component `kind` in `role`, else any component named `kind`.
    pub fn get_in(&self, kind: &str, role: Role) -> Option<&Entry> {
        self.entries
            .values()
            .find(|e| e.kind == kind && e.role == role)
            .or_else(|| self.get(kind))
    }

    /// Some component named `kind` (several roles may share a name, e.g. `parquet`).
    pub fn get(&self, kind: &str) -> Option<&Entry> {
        self.entries.values().find(|e| e.kind == kind)
    }

    /// Kinds of the given role, sorted.
    pub fn kinds(&self, role: Role) -> Vec<&'static str> {
        self.entries
            .values()
            .filter(|e| e.role == role)
            .map(|e| e.kind)
            .collect()
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }
}
