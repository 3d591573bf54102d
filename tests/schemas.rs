//! `schemas/*.json` and the code cannot drift.

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
