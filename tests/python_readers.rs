//! The Parquet output opens as-is in pyarrow.dataset, polars and pandas.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn quickstart_output_reads_in_pyarrow_polars_and_pandas() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let table = out.path().join("table");
    let run = Command::new(common::sermo_bin())
        .args(["run", "--quiet"])
        .arg(root.join("pipelines/quickstart.toml"))
        .arg("--set")
        .arg(format!("sinks.table.path={}", table.display()))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(table.join("_SUCCESS").exists());

    let py = Command::new("python3")
        .arg(root.join("tests/python/read_table.py"))
        .arg(&table)
        .output();
    let py = match py {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "SKIP quickstart_output_reads_in_pyarrow_polars_and_pandas: no python3 ({e})"
            );
            return;
        }
    };
    if py.status.code() == Some(77) {
        eprintln!(
            "SKIP quickstart_output_reads_in_pyarrow_polars_and_pandas: {}",
            String::from_utf8_lossy(&py.stderr).trim()
        );
        return;
    }
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
    for reader in ["pyarrow", "pandas", "polars"] {
        assert_eq!(v[reader], 16, "{reader}: {v}");
    }
    assert_eq!(v["quarantine"], 0);
    assert_eq!(
        v["quarantine_columns"],
        serde_json::json!(["path", "clip_id", "stage", "reason", "message"])
    );
    assert_eq!(v["ids"], v["pyarrow_ids"]);
    assert!(
        v["ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == "03a01Wa.wav")
    );
    assert_eq!(v["samples_type"], "list<item: float not null>");
}
