//! `--set KEY=VALUE`: override any key of a pipeline file from the command line.

use super::ConfigError;

/// Apply one `a.b.c=VALUE` override to `table`. VALUE is parsed as a TOML value
/// (`8`, `true`, `"x"`, `[1, 2]`, `{ a = 1 }`); if that fails it is taken as a string,
/// so `--set sinks.table.path=/tmp/x` needs no quotes.
pub fn apply_override(table: &mut toml::Table, kv: &str) -> Result<(), ConfigError> {
    let at = format!("--set {kv}");
    let Some((key, raw)) = kv.split_once('=') else {
        return Err(ConfigError::new(at, "expected KEY=VALUE")
            .hint("e.g. --set stages.audio.channels=first"));
    };
    let parts: Vec<&str> = key.trim().split('.').map(str::trim).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(ConfigError::new(at, format!("malformed key `{key}`")));
    }
    let value = parse_value(raw.trim());
    let (last, parents) = match parts.split_last() {
        Some(x) => x,
        None => return Err(ConfigError::new(at, "empty key")),
    };
    let mut cur = table;
    for (i, p) in parents.iter().enumerate() {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(ConfigError::new(
                    at,
                    format!("`{}` is not a table", parts[..=i].join(".")),
                ));
            }
        };
    }
    cur.insert(last.to_string(), value);
    Ok(())
}

fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_typed_and_bare_strings_work() {
        let mut t: toml::Table = toml::from_str("[stages.a]\nkind = 'decode'").unwrap();
        apply_override(&mut t, "stages.a.chunk_s=12.5").unwrap();
        apply_override(&mut t, "stages.a.channels=first").unwrap();
        apply_override(&mut t, "sinks.t.path=/tmp/x").unwrap();
        apply_override(&mut t, "pipeline.channel_capacity=2").unwrap();
        assert_eq!(t["stages"]["a"]["chunk_s"].as_float(), Some(12.5));
        assert_eq!(t["stages"]["a"]["channels"].as_str(), Some("first"));
        assert_eq!(t["sinks"]["t"]["path"].as_str(), Some("/tmp/x"));
        assert_eq!(t["pipeline"]["channel_capacity"].as_integer(), Some(2));
    }

    #[test]
    fn malformed_overrides_are_errors() {
        let mut t = toml::Table::new();
        assert!(apply_override(&mut t, "nokey").is_err());
        assert!(apply_override(&mut t, "a..b=1").is_err());
        apply_override(&mut t, "a=1").unwrap();
        let e = apply_override(&mut t, "a.b=1").unwrap_err();
        assert!(e.message.contains("`a` is not a table"), "{e}");
    }
}
