//! The component registry: `kind` name → config parser. Adding a stage is one module
//! under `src/ops/` plus one `register` line in [`Registry::builtin`].

use std::collections::BTreeMap;

use crate::engine::{Component, OperatorConfig, Role};
use crate::ops;

type ParseFn = fn(toml::Value) -> Result<Box<dyn OperatorConfig>, ParseError>;

/// Why a component's table did not parse: the key at fault (`rate`, `mel.n_mels`;
/// `None` for the table itself, e.g. an unknown field) and the message in the
/// user's words (`expected an integer, got a string "16k"`).
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub key: Option<String>,
    pub message: String,
}

/// One registered component kind.
#[derive(Clone)]
pub struct Entry {
    pub kind: &'static str,
    pub role: Role,
    pub summary: &'static str,
    parse: ParseFn,
    schema: fn() -> schemars::Schema,
}

impl Entry {
    /// Parse the component's keys (minus `kind`, `input`, `inputs`).
    pub fn parse(&self, v: toml::Value) -> Result<Box<dyn OperatorConfig>, ParseError> {
        (self.parse)(v)
    }

    /// The JSON Schema of the component's keys, generated from its config
    /// struct (types, defaults, doc comments): the source of `sermo keys` and
    /// docs/keys.md.
    pub fn schema(&self) -> schemars::Schema {
        (self.schema)()
    }
}

/// Known component kinds.
#[derive(Clone, Default)]
pub struct Registry {
    entries: BTreeMap<(&'static str, Role), Entry>,
}

fn parse_as<T: Component>(v: toml::Value) -> Result<Box<dyn OperatorConfig>, ParseError> {
    serde_path_to_error::deserialize::<_, T>(v)
        .map(|c| Box::new(c) as Box<dyn OperatorConfig>)
        .map_err(|e| {
            let path = e.path().to_string();
            let message = in_user_words(e.into_inner().message().trim());
            // An unknown field names itself; the error stays on the component.
            let key = (path != "." && !message.starts_with("unknown field")).then_some(path);
            ParseError { key, message }
        })
}

/// serde's `invalid type: string "16k", expected i64` as `expected an integer, got a
/// string "16k"` (the same for `invalid value`); other messages unchanged.
pub fn in_user_words(msg: &str) -> String {
    let Some((got, expected)) = msg
        .strip_prefix("invalid type: ")
        .or_else(|| msg.strip_prefix("invalid value: "))
        .and_then(|m| m.rsplit_once(", expected "))
    else {
        return msg.to_string();
    };
    let expected = match expected {
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".to_string(),
        "u8" | "u16" | "u32" | "u64" | "usize" => {
            format!("a non-negative integer (at most {})", max_of(expected))
        }
        "f32" | "f64" => "a number".to_string(),
        "a boolean" | "a string" | "a sequence" => expected.to_string(),
        other => other.to_string(),
    };
    let got = if let Some(v) = got.strip_prefix("string ") {
        format!("a string {v}")
    } else if let Some(v) = ["floating point ", "integer ", "boolean "]
        .iter()
        .find_map(|p| got.strip_prefix(p))
    {
        v.trim_matches('`').to_string()
    } else {
        got.to_string()
    };
    format!("expected {expected}, got {got}")
}

fn max_of(t: &str) -> u64 {
    match t {
        "u8" => u8::MAX as u64,
        "u16" => u16::MAX as u64,
        "u32" => u32::MAX as u64,
        _ => u64::MAX,
    }
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
        r.register::<ops::embed::EmbedConfig>();
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
                schema: || schemars::schema_for!(T),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_in_user_words() {
        assert_eq!(
            in_user_words("invalid type: string \"16k\", expected i64"),
            "expected an integer, got a string \"16k\""
        );
        assert_eq!(
            in_user_words("invalid type: floating point `1000000000000.0`, expected u32"),
            "expected a non-negative integer (at most 4294967295), got 1000000000000.0"
        );
        assert_eq!(
            in_user_words("invalid value: integer `-1`, expected usize"),
            format!(
                "expected a non-negative integer (at most {}), got -1",
                u64::MAX
            )
        );
        assert_eq!(
            in_user_words("unknown field `x`, expected `a`"),
            "unknown field `x`, expected `a`"
        );
    }
}
