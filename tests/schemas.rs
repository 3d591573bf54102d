//! `schemas/*.json` and the code cannot drift; nor can docs/keys.md, the
//! reference of every pipeline key generated from the config structs.

use std::path::Path;

#[test]
fn documented_schemas_match_the_code() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    for (name, schema) in sermo::schema::documented() {
        let path = dir.join(format!("{name}.json"));
        let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; write it with `sermo schema {name} --json > {}`",
                path.display(),
                path.display()
            )
        });
        let file: arrow::datatypes::Schema = serde_json::from_str(&on_disk).expect("schema JSON");
        assert_eq!(
            file, *schema,
            "schemas/{name}.json differs from the code; regenerate with `sermo schema {name} --json > schemas/{name}.json`"
        );
    }
}

#[test]
fn every_table_has_the_row_keys() {
    for (name, schema) in sermo::schema::documented() {
        if name == "quarantine" {
            continue;
        }
        for key in ["clip_id", "path", "corpus", "speaker"] {
            assert!(schema.field_with_name(key).is_ok(), "{name} lacks {key}");
        }
        if name != "files" {
            for key in ["segment", "start_s", "end_s", "sample_rate"] {
                assert!(schema.field_with_name(key).is_ok(), "{name} lacks {key}");
            }
        }
    }
}

/// docs/keys.md is what `sermo keys` prints: every key of every kind, with its
/// type, default and doc comment, generated from the config structs.
#[test]
fn the_key_reference_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/keys.md");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    let code = sermo::config::keys::reference(&sermo::registry::Registry::builtin());
    assert!(
        on_disk == code,
        "docs/keys.md differs from the code; regenerate with `sermo keys > docs/keys.md`"
    );
}

/// Every key the parser accepts is in the reference: for each kind, a table
/// with one unknown key is refused with serde's list of the expected ones, and
/// each of those has a row.
#[test]
fn every_accepted_key_has_a_row() {
    let reg = sermo::registry::Registry::builtin();
    for e in reg.entries() {
        let text = sermo::config::keys::kind_reference(e);
        let mut t = toml::Table::new();
        t.insert("no_such_key_x".into(), toml::Value::Integer(1));
        let Err(err) = e.parse(toml::Value::Table(t)) else {
            continue;
        };
        assert!(err.message.contains("no_such_key_x"), "{}: {err:?}", e.kind);
        // serde: "expected `a`", "expected `a` or `b`", "expected one of `a`, `b`, `c`".
        let Some((_, expected)) = err.message.split_once("expected ") else {
            continue; // "there are no fields"
        };
        let expected = expected.trim_start_matches("one of ");
        for key in expected.split(", ").flat_map(|k| k.split(" or ")) {
            let key = key.trim().trim_matches('`');
            assert!(
                text.contains(&format!("| `{key}` |")),
                "{}: key `{key}` has no row in the reference",
                e.kind
            );
        }
    }
}
