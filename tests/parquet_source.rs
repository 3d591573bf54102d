//! The `parquet` source: projection, SQL filter, hive columns, committed files
//! only, any Parquet dataset, resume through it, and clear errors.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Float32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::array_value_to_string;

fn sermo(args: &[&str]) -> std::process::Output {
    Command::new(common::sermo_bin())
        .args(args)
        .output()
        .unwrap()
}

/// clip_id -> (label, corpus, `stacked` as text) for every row under `dir`; the
/// label and corpus come from hive folders when they are not columns.
fn rows(dir: &Path) -> BTreeMap<String, (String, String, String)> {
    let mut out = BTreeMap::new();
    for (path, batches) in common::read_part_files(dir) {
        let rel = path
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let hive = |k: &str| {
            rel.split('/')
                .find_map(|c| c.strip_prefix(&format!("{k}=")).map(str::to_string))
        };
        for b in batches {
            let col = |k: &str, i: usize| {
                b.column_by_name(k)
                    .map(|c| c.as_string::<i32>().value(i).to_string())
                    .or_else(|| hive(k))
                    .unwrap()
            };
            let stacked = b.column_by_name("stacked").unwrap();
            for i in 0..b.num_rows() {
                let prev = out.insert(
                    col("clip_id", i),
                    (
                        col("label", i),
                        col("corpus", i),
                        array_value_to_string(stacked, i).unwrap(),
                    ),
                );
                assert!(prev.is_none(), "duplicate clip");
            }
        }
    }
    out
}

#[test]
fn filter_and_projection_over_a_partitioned_sermo_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let feats = tmp.path().join("feats");
    let o = Command::new(common::sermo_bin())
        .args(["run", "-q"])
        .arg(root.join("pipelines/quickstart.toml"))
        .args([
            "--set",
            &format!("sinks.table.path={}", tmp.path().join("a").display()),
        ])
        .args([
            "--set",
            &format!("sinks.feature_table.path={}", feats.display()),
        ])
        .args([
            "--set",
            "sinks.feature_table.partition_by=[\"corpus\", \"label\"]",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let all = rows(&feats);
    assert_eq!(all.len(), 16);
    // An uncommitted leftover of a crash is not data.
    let first = common::read_part_files(&feats)[0].0.clone();
    std::fs::copy(&first, first.with_file_name("part-09999.parquet")).unwrap();

    let p = tmp.path().join("sel.toml");
    std::fs::write(
        &p,
        format!(
            r#"[sources.f]
kind = "parquet"
path = "{}"
columns = ["clip_id", "label", "corpus", "stacked"]
where = "label IN ('angry', 'neutral') AND corpus = 'emodb' OR (corpus = 'ravdess' AND label LIKE 'ha%')"
batch_rows = 3
[sinks.out]
kind = "parquet"
input = "f"
path = "sel"
"#,
            feats.display()
        ),
    )
    .unwrap();
    let o = sermo(&["run", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = rows(&tmp.path().join("sel"));
    let want: BTreeMap<_, _> = all
        .iter()
        .filter(|(_, (label, corpus, _))| {
            (corpus == "emodb" && (label == "angry" || label == "neutral"))
                || (corpus == "ravdess" && label.starts_with("ha"))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert!(want.len() >= 3, "{want:?}");
    assert_eq!(got, want);
    // Only the projected columns are stored.
    let (file, batches) = &common::read_part_files(&tmp.path().join("sel"))[0];
    let names: Vec<String> = batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["clip_id", "label", "corpus", "stacked"]);
    // The feature settings travel with the rows.
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(file).unwrap(),
    )
    .unwrap();
    let md = reader.schema().metadata();
    assert!(md.contains_key("sermo.features"), "{md:?}");
    assert_eq!(md.get("sermo.table").map(String::as_str), Some("features"));

    // Resume through the source: nothing left to do.
    let o = sermo(&["run", p.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("rows: 0 to out"));
}

#[test]
fn any_hive_dataset_reads_and_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    let schema = Arc::new(Schema::new(vec![
        Field::new("clip_id", DataType::Utf8, false),
        Field::new("x", DataType::Float32, false),
    ]));
    for (label, n) in [("angry", 3), ("sad", 5)] {
        let d = ds.join(format!("label={label}"));
        std::fs::create_dir_all(&d).unwrap();
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("{label}{i}")),
                )),
                Arc::new(Float32Array::from_iter_values((0..n).map(|i| i as f32))),
            ],
        )
        .unwrap();
        let f = std::fs::File::create(d.join("data.parquet")).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(f, schema.clone(), None).unwrap();
        w.write(&b).unwrap();
        w.close().unwrap();
    }
    std::fs::write(ds.join("_SUCCESS"), b"").unwrap();
    std::fs::write(ds.join(".hidden.parquet"), b"junk").unwrap();
    let p = tmp.path().join("p.toml");
    let write = |filter: &str, path: &str| {
        std::fs::write(
            &p,
            format!(
                "[sources.d]\nkind = \"parquet\"\npath = \"{path}\"\n{filter}\n\
                 [sinks.o]\nkind = \"parquet\"\ninput = \"d\"\npath = \"o\"\nmode = \"overwrite\"\n"
            ),
        )
        .unwrap();
    };
    write("where = \"x >= 1 AND label = 'sad'\"", "ds");
    let o = sermo(&["run", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = common::read_parts(&tmp.path().join("o"));
    let n: usize = out.iter().map(|b| b.num_rows()).sum();
    assert_eq!(n, 4);
    let labels = out[0].column_by_name("label").unwrap().as_string::<i32>();
    assert!(labels.iter().all(|l| l == Some("sad")));
    assert_eq!(out[0].column_by_name("x").unwrap().null_count(), 0);

    // Errors, all at validation time.
    write("where = \"nope = 1\"", "ds");
    let o = sermo(&["validate", p.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err.contains("unknown column `nope`") && err.contains("label"),
        "{err}"
    );
    write("where = \"x >\"", "ds");
    let err =
        String::from_utf8_lossy(&sermo(&["validate", p.to_str().unwrap()]).stderr).to_string();
    assert!(
        err.contains("sources.d.where") && err.contains("cannot parse"),
        "{err}"
    );
    write("", "missing");
    let err =
        String::from_utf8_lossy(&sermo(&["validate", p.to_str().unwrap()]).stderr).to_string();
    assert!(err.contains("missing does not exist"), "{err}");
}

/// Tables as pandas, pyarrow and polars write them by default read back: snappy
/// (their default), gzip, lz4, brotli and zstd, each through a `parquet` source.
#[test]
fn every_common_compression_codec_reads() {
    use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
    let tmp = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("clip_id", DataType::Utf8, false),
        Field::new("x", DataType::Float32, false),
    ]));
    let n = 1000;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("c{i}")),
            )),
            Arc::new(Float32Array::from_iter_values((0..n).map(|i| i as f32))),
        ],
    )
    .unwrap();
    let codecs = [
        ("snappy", Compression::SNAPPY),
        ("gzip", Compression::GZIP(GzipLevel::default())),
        ("lz4", Compression::LZ4_RAW),
        ("lz4_hadoop", Compression::LZ4),
        ("brotli", Compression::BROTLI(BrotliLevel::default())),
        ("zstd", Compression::ZSTD(ZstdLevel::default())),
    ];
    for (name, codec) in codecs {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(codec)
            .build();
        let f = std::fs::File::create(dir.join("data.parquet")).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(f, schema.clone(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let p = tmp.path().join(format!("{name}.toml"));
        std::fs::write(
            &p,
            format!(
                "[sources.d]\nkind = \"parquet\"\npath = \"{name}\"\n\
                 [sinks.o]\nkind = \"parquet\"\ninput = \"d\"\npath = \"out-{name}\"\n"
            ),
        )
        .unwrap();
        let o = sermo(&["run", "-q", p.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let out = common::read_parts(&tmp.path().join(format!("out-{name}")));
        let xs: f64 = out
            .iter()
            .map(|b| {
                let c = b
                    .column_by_name("x")
                    .unwrap()
                    .as_primitive::<arrow::datatypes::Float32Type>();
                c.values().iter().map(|&v| v as f64).sum::<f64>()
            })
            .sum();
        assert_eq!(xs, (0..n).map(|i| i as f64).sum::<f64>(), "{name}");
    }
}
