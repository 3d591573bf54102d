//! The reference of every key of every component kind, generated from the
//! config structs' JSON Schemas (`schemars`: field names as serde reads them,
//! types, defaults, and the fields' doc comments), so it cannot drift from
//! what the parser accepts. `sermo keys [KIND]` prints it; docs/keys.md holds
//! it, kept equal to the code by `tests/schemas.rs`.

use serde_json::{Map, Value};

use crate::engine::Role;
use crate::registry::{Entry, Registry};

/// The whole reference as Markdown (docs/keys.md).
pub fn reference(reg: &Registry) -> String {
    let mut out = String::from(
        "# Pipeline keys\n\n\
         Every key of every component kind, generated from the config structs \
         (`src/config/keys.rs`; regenerate with `sermo keys > docs/keys.md`, \
         `tests/schemas.rs` keeps this file equal to the code). One kind: \
         `sermo keys KIND`; its JSON Schema: `sermo keys KIND --json`. How the \
         stages work and fit together: docs/pipelines.md; the `train` sink's \
         recipes and artifacts: docs/models.md.\n\n\
         Every component also takes `kind` (below) and, except sources, `input = \"name\"` \
         or `inputs = [\"a\", \"b\"]`. A key shown as `a.b` is key `b` of the table `a` \
         (`a = { b = ... }` or `[sinks.x.a]`). *required* marks a key without a default; \
         *optional* one that is unset unless given.\n",
    );
    for role in [Role::Source, Role::Stage, Role::Sink] {
        out.push_str(&format!("\n## {}\n", title(role)));
        for e in reg.entries().filter(|e| e.role == role) {
            out.push('\n');
            out.push_str(&kind_reference(e));
        }
    }
    out
}

fn title(role: Role) -> &'static str {
    match role {
        Role::Source => "Sources (`[sources.NAME]`)",
        Role::Stage => "Stages (`[stages.NAME]`)",
        Role::Sink => "Sinks (`[sinks.NAME]`)",
    }
}

/// One kind's keys as a Markdown section: a heading, its summary and a table
/// (key, type, default, meaning).
pub fn kind_reference(e: &Entry) -> String {
    let schema = e.schema();
    let root = schema.as_value();
    let empty = Map::new();
    let defs = root
        .get("$defs")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut r = Renderer {
        defs,
        rows: Vec::new(),
        examples: Vec::new(),
    };
    r.object("", root, &mut Vec::new());
    let Renderer { rows, examples, .. } = r;
    let mut out = format!(
        "### `{}` ({})\n\n{}.\n\n",
        e.kind,
        e.role.noun(),
        capital(e.summary)
    );
    if rows.is_empty() {
        out.push_str("No keys besides `kind` and `input`.\n");
        return out;
    }
    out.push_str("| key | type | default | meaning |\n|---|---|---|---|\n");
    for row in rows {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            row.key,
            cell(&row.ty),
            cell(&row.default),
            cell(&row.meaning)
        ));
    }
    for (lang, code) in self::examples(root) {
        out.push_str(&format!("\nFor example:\n\n```{lang}\n{code}```\n"));
    }
    for (key, lang, code) in examples {
        out.push_str(&format!(
            "\n`{key}`, for example:\n\n```{lang}\n{code}```\n"
        ));
    }
    out
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A table cell: one line, `|` escaped.
fn cell(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

struct Row {
    key: String,
    ty: String,
    default: String,
    meaning: String,
}

struct Renderer<'a> {
    defs: &'a Map<String, Value>,
    rows: Vec<Row>,
    /// (key, language, code) of the doc comments' code blocks.
    examples: Vec<(String, String, String)>,
}

impl<'a> Renderer<'a> {
    /// The definition a `$ref` names (`#/$defs/Name`).
    fn resolve(&self, s: &'a Value) -> &'a Value {
        let defs: &'a Map<String, Value> = self.defs;
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => r
                .rsplit('/')
                .next()
                .and_then(|name| defs.get(name))
                .unwrap_or(s),
            None => s,
        }
    }

    /// `s` without an `Option`'s null branch.
    fn non_null(&self, s: &'a Value) -> &'a Value {
        for key in ["anyOf", "oneOf"] {
            if let Some(alts) = s.get(key).and_then(Value::as_array) {
                let rest: Vec<&Value> = alts
                    .iter()
                    .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
                    .collect();
                if rest.len() == 1 && alts.len() == 2 {
                    return rest[0];
                }
            }
        }
        s
    }

    /// The rows of an object schema's properties, nested tables flattened to
    /// dotted keys. `seen` holds the definitions on the path (no recursion).
    fn object(&mut self, prefix: &str, s: &'a Value, seen: &mut Vec<String>) {
        let s = self.resolve(s);
        let Some(props) = s.get("properties").and_then(Value::as_object) else {
            return;
        };
        let required: Vec<&str> = s
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (name, p) in props {
            let key = format!("{prefix}{name}");
            let inner = self.non_null(p);
            let target = self.resolve(inner);
            let meaning = describe(p)
                .or_else(|| describe(inner))
                .or_else(|| describe(target))
                .unwrap_or_default();
            let variants = self.variants(target);
            let meaning = match (meaning.is_empty(), variants.is_empty()) {
                (_, true) => meaning,
                (true, false) => variants,
                (false, false) => format!("{meaning} {variants}"),
            };
            let default = match p.get("default") {
                Some(d) => format!("`{}`", toml_value(d)),
                None if required.contains(&name.as_str()) => "*required*".into(),
                None => "*optional*".into(),
            };
            let mut blocks = examples(p);
            if blocks.is_empty() {
                blocks = examples(target);
            }
            for (lang, code) in blocks {
                self.examples.push((key.clone(), lang, code));
            }
            let ty = self.type_of(inner);
            if self.rows.iter().any(|r| r.key == key) {
                continue; // a key two table forms share (`labels.map`): listed once
            }
            self.rows.push(Row {
                key: key.clone(),
                ty,
                default,
                meaning,
            });
            let def = inner
                .get("$ref")
                .and_then(Value::as_str)
                .map(|r| r.to_string());
            if target.get("properties").is_some() && !def.as_ref().is_some_and(|d| seen.contains(d))
            {
                seen.extend(def.clone());
                self.object(&format!("{key}."), target, seen);
                if def.is_some() {
                    seen.pop();
                }
            }
            // A key that takes a name or one of several tables (`labels`):
            // the keys of each table form.
            for alts in ["anyOf", "oneOf"]
                .iter()
                .filter_map(|k| target.get(*k).and_then(Value::as_array))
            {
                for alt in alts {
                    let def = alt.get("$ref").and_then(Value::as_str).map(String::from);
                    if def.as_ref().is_some_and(|d| seen.contains(d)) {
                        continue;
                    }
                    if self.resolve(alt).get("properties").is_some() {
                        seen.extend(def.clone());
                        self.object(&format!("{key}."), alt, seen);
                        if def.is_some() {
                            seen.pop();
                        }
                    }
                }
            }
        }
    }

    /// `"a"`: doc of a, ... for an enum whose variants carry doc comments.
    fn variants(&self, s: &Value) -> String {
        let Some(alts) = s.get("oneOf").and_then(Value::as_array) else {
            return String::new();
        };
        let parts: Vec<String> = alts
            .iter()
            .filter_map(|a| {
                let c = a
                    .get("const")
                    .or_else(|| a.get("enum").and_then(|e| e.get(0)))?;
                let d = describe(a)?;
                Some(format!("`{}`: {}", toml_value(c), d.trim_end_matches('.')))
            })
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("{}.", parts.join("; "))
        }
    }

    fn type_of(&self, s: &'a Value) -> String {
        let s = self.non_null(s);
        let s = self.resolve(s);
        if let Some(c) = s.get("const") {
            return format!("`{}`", toml_value(c));
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            return e
                .iter()
                .map(|v| format!("`{}`", toml_value(v)))
                .collect::<Vec<_>>()
                .join(" | ");
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(alts) = s.get(key).and_then(Value::as_array) {
                let mut tys: Vec<String> = Vec::new();
                for a in alts {
                    let t = self.type_of(a);
                    if !tys.contains(&t) {
                        tys.push(t);
                    }
                }
                return tys.join(" | ");
            }
        }
        if s.get("properties").is_some() {
            return "table".into();
        }
        let ty = match s.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or("any")
                .to_string(),
            _ => return "any".into(),
        };
        match ty.as_str() {
            "integer" => {
                let min = s.get("minimum").and_then(Value::as_f64);
                if min.is_some_and(|m| m >= 0.0) {
                    "integer ≥ 0".into()
                } else {
                    "integer".into()
                }
            }
            "array" => {
                if let Some(items) = s.get("prefixItems").and_then(Value::as_array) {
                    let tys: Vec<String> = items.iter().map(|i| self.type_of(i)).collect();
                    return format!("[{}]", tys.join(", "));
                }
                match s.get("items") {
                    Some(i) => format!("array of {}", self.type_of(i)),
                    None => "array".into(),
                }
            }
            "object" => match s.get("additionalProperties") {
                Some(v @ Value::Object(_)) => format!("table of {}", self.type_of(v)),
                _ => "table".into(),
            },
            other => other.into(),
        }
    }
}

/// A schema's doc comment on one line, without its fenced code blocks (see
/// [`examples`]) and with intra-doc links as plain code.
fn describe(s: &Value) -> Option<String> {
    let d = s.get("description").and_then(Value::as_str)?;
    let (mut text, mut fenced) = (String::new(), false);
    for line in d.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            text.push_str(line);
            text.push(' ');
        }
    }
    let text = text.replace("[`", "`").replace("`]", "`");
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then_some(text)
}

/// The fenced code blocks of a schema's doc comment: (language, code).
fn examples(s: &Value) -> Vec<(String, String)> {
    let Some(d) = s.get("description").and_then(Value::as_str) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut cur: Option<(String, String)> = None;
    for line in d.lines() {
        match (line.trim_start().strip_prefix("```"), cur.take()) {
            (Some(lang), None) => cur = Some((lang.trim().to_string(), String::new())),
            (Some(_), Some(block)) => out.push(block),
            (None, Some((lang, mut code))) => {
                code.push_str(line);
                code.push('\n');
                cur = Some((lang, code));
            }
            (None, None) => {}
        }
    }
    out
}

/// A JSON default as it is written in a pipeline file.
fn toml_value(v: &Value) -> String {
    match v {
        Value::Null => "none".into(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(toml_value).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(o) => format!(
            "{{ {} }}",
            o.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("{k} = {}", toml_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        // An f32 default (0.9f32 is 0.8999999761581421 as f64) as written.
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(x) if (x as f32) as f64 == x => format!("{:?}", x as f32),
            Some(x) => format!("{x:?}"),
            None => n.to_string(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_section_and_resample_its_keys() {
        let reg = Registry::builtin();
        let doc = reference(&reg);
        for e in reg.entries() {
            assert!(
                doc.contains(&format!("### `{}` ({})", e.kind, e.role.noun())),
                "{}",
                e.kind
            );
        }
        let resample = reg.get("resample").unwrap();
        let text = kind_reference(resample);
        assert!(
            text.contains("| `rate` | integer | *required* | Target sample rate in Hz. |"),
            "{text}"
        );
    }
}
