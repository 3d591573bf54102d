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
            common::skip_unless_ci(
                "quickstart_output_reads_in_pyarrow_polars_and_pandas",
                &format!("no python3 ({e})"),
            );
            return;
        }
    };
    if py.status.code() == Some(77) {
        common::skip_unless_ci(
            "quickstart_output_reads_in_pyarrow_polars_and_pandas",
            String::from_utf8_lossy(&py.stderr).trim(),
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
        serde_json::json!(["path", "clip_id", "stage", "reason", "message", "partial"])
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

/// A table partitioned by corpus and label, written as 2 shards, opens with its
/// hive columns in all three readers and gives each clip once with its labels.
#[test]
fn partitioned_sharded_table_reads_in_pyarrow_polars_and_pandas() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let feats = out.path().join("feats");
    for shard in ["0/2", "1/2"] {
        let run = Command::new(common::sermo_bin())
            .args(["run", "--quiet", "--shard", shard])
            .arg(root.join("pipelines/quickstart.toml"))
            .arg("--set")
            .arg(format!(
                "sinks.table.path={}",
                out.path().join("audio").display()
            ))
            .arg("--set")
            .arg(format!("sinks.feature_table.path={}", feats.display()))
            .arg("--set")
            .arg("sinks.feature_table.partition_by=[\"corpus\", \"label\"]")
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let commit = Command::new(common::sermo_bin())
        .args(["commit", feats.to_str().unwrap(), "--shards", "2"])
        .output()
        .unwrap();
    assert!(
        commit.status.success(),
        "{}",
        String::from_utf8_lossy(&commit.stderr)
    );

    // What the rows must be: clip ids and labels from the (unpartitioned) audio table.
    let mut want: Vec<serde_json::Value> = Vec::new();
    for (path, batches) in common::read_part_files(&out.path().join("audio")) {
        let _ = path;
        for b in batches {
            use arrow::array::AsArray;
            let s = |c: &str| b.column_by_name(c).unwrap().as_string::<i32>().clone();
            let (ids, corpus, label) = (s("clip_id"), s("corpus"), s("label"));
            for i in 0..b.num_rows() {
                want.push(serde_json::json!([
                    ids.value(i),
                    corpus.value(i),
                    label.value(i)
                ]));
            }
        }
    }
    want.sort_by_key(|v| v.to_string());
    assert_eq!(want.len(), 16);

    let py = match Command::new("python3")
        .arg(root.join("tests/python/read_partitioned.py"))
        .arg(&feats)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            common::skip_unless_ci(
                "partitioned_sharded_table_reads",
                &format!("no python3 ({e})"),
            );
            return;
        }
    };
    if py.status.code() == Some(77) {
        common::skip_unless_ci(
            "partitioned_sharded_table_reads",
            String::from_utf8_lossy(&py.stderr).trim(),
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
        let mut got: Vec<serde_json::Value> = v[reader].as_array().unwrap().clone();
        got.sort_by_key(|v| v.to_string());
        assert_eq!(got, want, "{reader}");
    }
}
