//! `sermo query` and `sermo stats` against tables made by the real binary and by
//! hand (hive-partitioned and sharded), checked against independent computations
//! with the arrow/parquet crates (and python polars when it is installed).
#![cfg(feature = "analysis")]

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, Float64Array, RecordBatch,
    StringArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Float64Type, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

const LABEL_SQL: &str = "SELECT label, count(*) AS n FROM feats GROUP BY label ORDER BY label";

fn sermo(args: &[&str]) -> Output {
    Command::new(common::sermo_bin())
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Fails cleanly: non-zero exit, no panic, and the message contains every `needle`.
fn fails_with(o: &Output, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        !o.status.success(),
        "expected a failure, got success: {err}"
    );
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` not in: {err}");
    }
    err
}

struct Quickstart {
    audio: PathBuf,
    feats: PathBuf,
}

/// The quickstart's two tables, written once per test process by `sermo run`.
fn quickstart() -> &'static Quickstart {
    static QS: OnceLock<Quickstart> = OnceLock::new();
    QS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("analysis-quickstart-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (audio, feats) = (dir.join("audio"), dir.join("feats"));
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let o = Command::new(common::sermo_bin())
            .arg("run")
            .arg(root.join("pipelines/quickstart.toml"))
            .arg("--set")
            .arg(format!("sinks.table.path={}", audio.display()))
            .arg("--set")
            .arg(format!("sinks.feature_table.path={}", feats.display()))
            .arg("-q")
            .output()
            .unwrap();
        ok(&o);
        assert!(feats.join("_SUCCESS").exists());
        Quickstart { audio, feats }
    })
}

fn part_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            if p.is_dir() {
                stack.push(p);
            } else if name.starts_with("part-") && name.ends_with(".parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no part files in {}", dir.display());
    out
}

fn read_batches(file: &Path) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(File::open(file).unwrap())
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

fn all_batches(dir: &Path) -> Vec<RecordBatch> {
    part_files(dir)
        .iter()
        .flat_map(|f| read_batches(f))
        .collect()
}

/// Row counts per value of a Utf8 column, read directly from the part files.
fn counts_by(dir: &Path, column: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for b in all_batches(dir) {
        let a = b.column_by_name(column).unwrap().as_string::<i32>().clone();
        for i in 0..a.len() {
            let k = if a.is_null(i) { "(null)" } else { a.value(i) };
            *m.entry(k.to_string()).or_insert(0) += 1;
        }
    }
    m
}

/// Per-dimension mean and population std of a `List<FixedSizeList<Float32, D>>` or
/// `FixedSizeList<Float32, D>` column, two-pass in f64.
fn feature_mean_std(batches: &[RecordBatch], column: &str) -> (Vec<f64>, Vec<f64>, u64) {
    let mut vectors: Vec<Vec<f64>> = Vec::new();
    for b in batches {
        let a = b.column_by_name(column).unwrap();
        let fsl: FixedSizeListArray = match a.data_type() {
            DataType::List(_) => {
                let l = a.as_list::<i32>();
                let mut rows = Vec::new();
                for r in 0..l.len() {
                    rows.push(l.value(r));
                }
                let refs: Vec<&dyn Array> = rows.iter().map(|x| x.as_ref()).collect();
                arrow::compute::concat(&refs)
                    .unwrap()
                    .as_fixed_size_list()
                    .clone()
            }
            _ => a.as_fixed_size_list().clone(),
        };
        for j in 0..fsl.len() {
            let v = fsl.value(j);
            let v: &Float32Array = v.as_primitive();
            vectors.push(v.values().iter().map(|x| *x as f64).collect());
        }
    }
    let d = vectors[0].len();
    let n = vectors.len() as f64;
    let mean: Vec<f64> = (0..d)
        .map(|k| vectors.iter().map(|v| v[k]).sum::<f64>() / n)
        .collect();
    let std: Vec<f64> = (0..d)
        .map(|k| {
            (vectors
                .iter()
                .map(|v| (v[k] - mean[k]).powi(2))
                .sum::<f64>()
                / n)
                .sqrt()
        })
        .collect();
    (mean, std, vectors.len() as u64)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-4 * b.abs() + 1e-7
}

fn json_counts(stats: &Value, column: &str) -> BTreeMap<String, u64> {
    let b = stats["balance"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["column"] == column)
        .unwrap_or_else(|| panic!("no balance for {column}: {stats}"));
    b["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["value"].as_str().unwrap_or("(null)").to_string(),
                c["rows"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    let mut out = vec![header];
    for rec in r.records() {
        out.push(rec.unwrap().iter().map(String::from).collect());
    }
    out
}

#[test]
fn query_counts_per_label_match_the_parquet_files() {
    let qs = quickstart();
    let expected = counts_by(&qs.feats, "label");
    assert_eq!(expected.values().sum::<u64>(), 16);

    // Printed table: header, types, rule, one line per label, shape.
    let table = format!("feats={}", qs.feats.display());
    let out = ok(&sermo(&["query", LABEL_SQL, "--table", &table]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["label", "n"]
    );
    let printed: BTreeMap<String, u64> = lines[3..3 + expected.len()]
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].parse().unwrap())
        })
        .collect();
    assert_eq!(printed, expected, "{out}");
    assert!(
        out.contains(&format!("({} rows x 2 columns)", expected.len())),
        "{out}"
    );

    // The same through --out, and ordered as asked.
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("r.csv");
    ok(&sermo(&[
        "query",
        LABEL_SQL,
        "--table",
        &table,
        "--out",
        csv_path.to_str().unwrap(),
    ]));
    let rows = csv_rows(&csv_path);
    assert_eq!(rows[0], ["label", "n"]);
    let got: Vec<(String, u64)> = rows[1..]
        .iter()
        .map(|r| (r[0].clone(), r[1].parse().unwrap()))
        .collect();
    let want: Vec<(String, u64)> = expected.into_iter().collect();
    assert_eq!(got, want);
}

#[test]
fn query_over_two_tables_and_with_a_filter() {
    let qs = quickstart();
    let a = format!("a={}", qs.audio.display());
    let f = format!("f={}", qs.feats.display());
    let dir = tempfile::tempdir().unwrap();

    // Corpus counts with a filter, against the files.
    let out = dir.path().join("emodb.json");
    ok(&sermo(&[
        "query",
        "SELECT count(*) AS n FROM f WHERE corpus = 'emodb'",
        "--table",
        &f,
        "--out",
        out.to_str().unwrap(),
    ]));
    let v: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v[0]["n"], counts_by(&qs.feats, "corpus")["emodb"]);

    // count(*) over a UNION ALL of both tables.
    let out = ok(&sermo(&[
        "query",
        "SELECT count(*) AS n FROM (SELECT clip_id FROM a UNION ALL SELECT clip_id FROM f)",
        "--table",
        &a,
        "--table",
        &f,
    ]));
    assert_eq!(out.lines().nth(3).unwrap().trim(), "32", "{out}");

    // A join of the audio and feature tables on the clip's path.
    let out = dir.path().join("join.csv");
    ok(&sermo(&[
        "query",
        "SELECT f.label, count(*) AS n, sum(a.duration_s) AS secs FROM f JOIN a ON f.path = a.path GROUP BY f.label ORDER BY f.label",
        "--table",
        &a,
        "--table",
        &f,
        "--out",
        out.to_str().unwrap(),
    ]));
    let rows = csv_rows(&out);
    assert_eq!(rows[0], ["label", "n", "secs"]);
    let n: u64 = rows[1..].iter().map(|r| r[1].parse::<u64>().unwrap()).sum();
    let audio_rows: u64 = all_batches(&qs.audio)
        .iter()
        .map(|b| b.num_rows() as u64)
        .sum();
    let feat_rows: u64 = all_batches(&qs.feats)
        .iter()
        .map(|b| b.num_rows() as u64)
        .sum();
    assert_eq!(audio_rows, 16, "one audio row per demo clip");
    assert_eq!(n, feat_rows);
    let secs: f64 = rows[1..].iter().map(|r| r[2].parse::<f64>().unwrap()).sum();
    let want: f64 = all_batches(&qs.audio)
        .iter()
        .flat_map(|b| {
            b.column_by_name("duration_s")
                .unwrap()
                .as_primitive::<Float64Type>()
                .iter()
                .map(|x| x.unwrap())
                .collect::<Vec<_>>()
        })
        .sum();
    assert!(close(secs, want), "{secs} vs {want}");
}

#[test]
fn query_out_round_trips_in_every_format() {
    let qs = quickstart();
    let table = format!("feats={}", qs.feats.display());
    let sql = "SELECT clip_id, label, segment, start_s, end_s FROM feats ORDER BY clip_id";
    // The reference: the same columns from the part files, sorted by clip_id.
    let mut want: Vec<(String, Option<String>, u32, f64, f64)> = Vec::new();
    for b in all_batches(&qs.feats) {
        let id = b.column_by_name("clip_id").unwrap().as_string::<i32>();
        let label = b.column_by_name("label").unwrap().as_string::<i32>();
        let seg = b
            .column_by_name("segment")
            .unwrap()
            .as_primitive::<arrow::datatypes::UInt32Type>();
        let s = b
            .column_by_name("start_s")
            .unwrap()
            .as_primitive::<Float64Type>();
        let e = b
            .column_by_name("end_s")
            .unwrap()
            .as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            want.push((
                id.value(i).to_string(),
                (!label.is_null(i)).then(|| label.value(i).to_string()),
                seg.value(i),
                s.value(i),
                e.value(i),
            ));
        }
    }
    want.sort_by(|a, b| a.0.cmp(&b.0));

    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        let p = dir.path().join(name);
        ok(&sermo(&[
            "query",
            sql,
            "--table",
            &table,
            "--out",
            p.to_str().unwrap(),
        ]));
        assert!(!dir.path().join(format!(".{name}.tmp")).exists());
        p
    };

    // Parquet: read back with the parquet crate.
    let p = run("r.parquet");
    let batches = read_batches(&p);
    let mut got = Vec::new();
    for b in &batches {
        let names: Vec<&str> = b
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["clip_id", "label", "segment", "start_s", "end_s"]);
        // polars may write strings as Utf8View: compare their values as Utf8.
        let id = arrow::compute::cast(b.column(0), &DataType::Utf8).unwrap();
        let id = id.as_string::<i32>();
        let label = arrow::compute::cast(b.column(1), &DataType::Utf8).unwrap();
        let label = label.as_string::<i32>();
        let seg = b.column(2).as_primitive::<arrow::datatypes::UInt32Type>();
        let s = b.column(3).as_primitive::<Float64Type>();
        let e = b.column(4).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            got.push((
                id.value(i).to_string(),
                (!label.is_null(i)).then(|| label.value(i).to_string()),
                seg.value(i),
                s.value(i),
                e.value(i),
            ));
        }
    }
    assert_eq!(got, want);

    // CSV.
    let rows = csv_rows(&run("r.csv"));
    assert_eq!(rows[0], ["clip_id", "label", "segment", "start_s", "end_s"]);
    assert_eq!(rows.len() - 1, want.len());
    for (r, w) in rows[1..].iter().zip(&want) {
        assert_eq!(r[0], w.0);
        assert_eq!(r[1], w.1.clone().unwrap_or_default());
        assert_eq!(r[2].parse::<u32>().unwrap(), w.2);
        assert!(close(r[3].parse().unwrap(), w.3));
        assert!(close(r[4].parse().unwrap(), w.4));
    }

    // JSON (an array of row objects) and JSON lines.
    let v: Value = serde_json::from_slice(&std::fs::read(run("r.json")).unwrap()).unwrap();
    let lines = std::fs::read_to_string(run("r.ndjson")).unwrap();
    let from_lines: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(v.as_array().unwrap(), &from_lines);
    for (r, w) in v.as_array().unwrap().iter().zip(&want) {
        assert_eq!(r["clip_id"], w.0.as_str());
        assert_eq!(r["label"].as_str().map(String::from), w.1);
        assert_eq!(r["segment"], w.2);
        assert!(close(r["end_s"].as_f64().unwrap(), w.4));
    }
    assert_eq!(v.as_array().unwrap().len(), want.len());

    // An unknown extension is refused before anything runs; nothing is written.
    let bad = dir.path().join("r.xlsx");
    fails_with(
        &sermo(&[
            "query",
            sql,
            "--table",
            &table,
            "--out",
            bad.to_str().unwrap(),
        ]),
        &["r.xlsx", "unknown output format"],
    );
    assert!(!bad.exists());
}

#[test]
fn stats_match_an_independent_computation() {
    let qs = quickstart();
    let feats = all_batches(&qs.feats);
    let out = ok(&sermo(&["stats", qs.feats.to_str().unwrap(), "--json"]));
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["rows"], 16);
    assert_eq!(s["clips"], 16);
    assert_eq!(s["part_files"], part_files(&qs.feats).len());
    for c in ["corpus", "label", "speaker"] {
        assert_eq!(json_counts(&s, c), counts_by(&qs.feats, c), "{c}");
    }
    // Shares add up to one.
    let shares: f64 = s["balance"][1]["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["share"].as_f64().unwrap())
        .sum();
    assert!((shares - 1.0).abs() < 1e-9);

    // Every feature column of the quickstart, per dimension.
    let features = s["features"].as_array().unwrap();
    let names: Vec<&str> = features
        .iter()
        .map(|f| f["column"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mfcc", "zcr", "rms", "stacked"]);
    for f in features {
        let column = f["column"].as_str().unwrap();
        let (mean, std, n) = feature_mean_std(&feats, column);
        assert_eq!(f["dim"].as_u64().unwrap() as usize, mean.len(), "{column}");
        assert_eq!(f["layout"], "frames");
        assert_eq!(f["vectors"].as_u64().unwrap(), n, "{column}");
        for k in 0..mean.len() {
            let (m, sd) = (
                f["mean"][k].as_f64().unwrap(),
                f["std"][k].as_f64().unwrap(),
            );
            assert!(close(m, mean[k]), "{column}[{k}] mean {m} vs {}", mean[k]);
            assert!(close(sd, std[k]), "{column}[{k}] std {sd} vs {}", std[k]);
        }
    }
    // Features have no duration_s: one value per row, end_s - start_s.
    let d = &s["duration"];
    assert_eq!(d["unit"], "row");
    assert_eq!(d["count"], 16);
    assert_eq!(s["quarantine"]["rows"], 0);

    // The audio table: durations per clip from duration_s.
    let out = ok(&sermo(&["stats", qs.audio.to_str().unwrap(), "--json"]));
    let s: Value = serde_json::from_str(&out).unwrap();
    let mut per_clip: BTreeMap<String, f64> = BTreeMap::new();
    for b in all_batches(&qs.audio) {
        let p = b.column_by_name("path").unwrap().as_string::<i32>();
        let d = b
            .column_by_name("duration_s")
            .unwrap()
            .as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            per_clip.insert(p.value(i).to_string(), d.value(i));
        }
    }
    let mut v: Vec<f64> = per_clip.values().copied().collect();
    v.sort_by(f64::total_cmp);
    let d = &s["duration"];
    assert_eq!(d["unit"], "clip");
    assert_eq!(d["count"].as_u64().unwrap() as usize, v.len());
    assert!(close(d["min"].as_f64().unwrap(), v[0]));
    assert!(close(d["max"].as_f64().unwrap(), v[v.len() - 1]));
    // 16 values: the median is halfway between the 8th and the 9th.
    assert!(close(d["median"].as_f64().unwrap(), (v[7] + v[8]) / 2.0));
    let total: f64 = v.iter().sum();
    assert!(close(d["total_hours"].as_f64().unwrap(), total / 3600.0));
    assert!(s["features"].as_array().unwrap().is_empty());

    // The text form says the same.
    let text = ok(&sermo(&["stats", qs.feats.to_str().unwrap()]));
    assert!(text.contains("16 rows, 16 clips"), "{text}");
    assert!(text.contains("rows by label"), "{text}");
    assert!(text.contains("feature stacked: 42 dims over"), "{text}");
    assert!(text.contains("quarantine: 0 rows in 1 file"), "{text}");
}

/// Width and height from a PNG's IHDR, after checking the signature.
fn png_size(path: &Path) -> (u32, u32, usize) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    assert_eq!(&b[12..16], b"IHDR");
    let w = u32::from_be_bytes(b[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(b[20..24].try_into().unwrap());
    assert_eq!(&b[b.len() - 8..b.len() - 4], b"IEND");
    (w, h, b.len())
}

#[test]
fn stats_plot_writes_two_png_charts() {
    let qs = quickstart();
    let dir = tempfile::tempdir().unwrap();
    let charts = dir.path().join("charts");
    ok(&sermo(&[
        "stats",
        qs.audio.to_str().unwrap(),
        "--plot",
        charts.to_str().unwrap(),
    ]));
    for name in ["class_balance.png", "duration_hist.png"] {
        let (w, h, len) = png_size(&charts.join(name));
        assert_eq!((w, h), (1000, 620), "{name}");
        // Text and bars make it more than a blank image, and it stays small.
        assert!(len > 8_000 && len < 2_000_000, "{name}: {len} bytes");
    }
}

/// A row group of a hand-made table: `n` rows of one clip each with a 2-d vector.
fn hand_batch(prefix: &str, n: usize, speaker: &str, base: f32) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("clip_id", DataType::Utf8, false),
        Field::new("path", DataType::Utf8, false),
        Field::new("speaker", DataType::Utf8, true),
        Field::new("segment", DataType::UInt32, false),
        Field::new("start_s", DataType::Float64, false),
        Field::new("end_s", DataType::Float64, false),
        Field::new("sample_rate", DataType::UInt32, false),
        Field::new(
            "vec",
            DataType::FixedSizeList(Arc::new(Field::new_list_field(DataType::Float32, false)), 2),
            false,
        ),
    ]));
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}{i}.wav")).collect();
    let paths: Vec<String> = ids.iter().map(|i| format!("/data/{i}")).collect();
    let values: Vec<f32> = (0..n)
        .flat_map(|i| [base + i as f32, 10.0 * base - i as f32 * 0.5])
        .collect();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(ids)),
        Arc::new(StringArray::from(paths)),
        Arc::new(StringArray::from(vec![Some(speaker); n])),
        Arc::new(UInt32Array::from(vec![0; n])),
        Arc::new(Float64Array::from(vec![0.0; n])),
        Arc::new(Float64Array::from(
            (0..n).map(|i| 1.0 + i as f64 * 0.25).collect::<Vec<_>>(),
        )),
        Arc::new(UInt32Array::from(vec![16000; n])),
        Arc::new(FixedSizeListArray::new(
            Arc::new(Field::new_list_field(DataType::Float32, false)),
            2,
            Arc::new(Float32Array::from(values)),
            None,
        )),
    ];
    RecordBatch::try_new(schema, cols).unwrap()
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

fn quarantine_batch(rows: &[(&str, &str)]) -> RecordBatch {
    let schema = Arc::new(Schema::new(
        ["path", "clip_id", "stage", "reason", "message"]
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ));
    let col = |f: &dyn Fn(usize) -> String| -> ArrayRef {
        Arc::new(StringArray::from(
            (0..rows.len()).map(f).collect::<Vec<_>>(),
        ))
    };
    RecordBatch::try_new(
        schema,
        vec![
            col(&|i| format!("/bad/{i}.wav")),
            col(&|i| format!("{i}.wav")),
            col(&|i| rows[i].0.to_string()),
            col(&|i| rows[i].1.to_string()),
            col(&|_| "boom".to_string()),
        ],
    )
    .unwrap()
}

/// (shard, corpus, label, rows, speaker, base) of each part file of the hand-made table.
const HAND_PARTS: [(&str, &str, &str, usize, &str, f32); 5] = [
    ("0", "emodb", "angry", 3, "03", 1.0),
    ("0", "emodb", "happy", 2, "08", 2.0),
    ("0", "ravdess", "angry", 4, "Actor_01", 3.0),
    ("1", "emodb", "angry", 1, "10", 4.0),
    ("1", "ravdess", "sad", 5, "Actor_02", 5.0),
];

/// A sharded, hive-partitioned table with quarantine files and junk to ignore.
fn hand_table(root: &Path) {
    for (k, (shard, corpus, label, n, speaker, base)) in HAND_PARTS.iter().enumerate() {
        let dir = root.join(format!("shard={shard}/corpus={corpus}/label={label}"));
        write_parquet(
            &dir.join(format!("part-{k:05}.parquet")),
            &hand_batch(&format!("{corpus}-{label}-{shard}-"), *n, speaker, *base),
        );
    }
    write_parquet(
        &root.join("shard=0/_quarantine.parquet"),
        &quarantine_batch(&[("decode", "corrupt"), ("decode", "truncated")]),
    );
    write_parquet(
        &root.join("shard=1/_quarantine.parquet"),
        &quarantine_batch(&[("decode", "corrupt"), ("features", "too_short")]),
    );
    // Markers, metadata and temporary files that are not data.
    std::fs::write(root.join("_SUCCESS"), "{}").unwrap();
    std::fs::write(root.join("_manifest.json"), "{\"parts\": []}").unwrap();
    std::fs::write(root.join("shard=0/_sermo.json"), "{}").unwrap();
    std::fs::write(root.join("shard=1/_ledger.jsonl"), "{}\n").unwrap();
    std::fs::write(root.join("shard=0/corpus=emodb/.x.tmp"), "not parquet").unwrap();
    std::fs::write(
        root.join("shard=1/corpus=ravdess/label=sad/.part-00009.parquet.tmp"),
        "half a file",
    )
    .unwrap();
}

fn check_hand_table(root: &Path) {
    let t = format!("t={}", root.display());
    let dir = tempfile::tempdir().unwrap();

    // Partition columns appear, as strings, after the stored columns.
    let out = dir.path().join("one.json");
    ok(&sermo(&[
        "query",
        "SELECT * FROM t WHERE clip_id = 'ravdess-sad-1-4.wav'",
        "--table",
        &t,
        "--out",
        out.to_str().unwrap(),
    ]));
    let v: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let row = &v[0];
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(row["shard"], "1");
    assert_eq!(row["corpus"], "ravdess");
    assert_eq!(row["label"], "sad");
    assert_eq!(row["speaker"], "Actor_02");
    assert_eq!(row["vec"], serde_json::json!([9.0, 48.0]));

    // Group counts over the partition columns (the junk files are not read).
    let out = dir.path().join("groups.csv");
    ok(&sermo(&[
        "query",
        "SELECT shard, corpus, label, count(*) AS n FROM t GROUP BY shard, corpus, label ORDER BY shard, corpus, label",
        "--table",
        &t,
        "--out",
        out.to_str().unwrap(),
    ]));
    let rows = csv_rows(&out);
    let got: Vec<Vec<String>> = rows[1..].to_vec();
    let want: Vec<Vec<String>> = HAND_PARTS
        .iter()
        .map(|(s, c, l, n, _, _)| vec![s.to_string(), c.to_string(), l.to_string(), n.to_string()])
        .collect();
    assert_eq!(got, want);

    // A filter on a partition column.
    let out = ok(&sermo(&[
        "query",
        "SELECT count(*) AS n FROM t WHERE label = 'angry' AND shard = '0'",
        "--table",
        &t,
    ]));
    assert_eq!(out.lines().nth(3).unwrap().trim(), "7", "{out}");

    // Stats: class balance, vector features, quarantine by reason and stage.
    let s: Value =
        serde_json::from_str(&ok(&sermo(&["stats", root.to_str().unwrap(), "--json"]))).unwrap();
    assert_eq!(s["rows"], 15);
    assert_eq!(s["part_files"], 5);
    assert_eq!(
        s["partition_columns"],
        serde_json::json!(["shard", "corpus", "label"])
    );
    let counts = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    assert_eq!(
        json_counts(&s, "label"),
        counts(&[("angry", 8), ("happy", 2), ("sad", 5)])
    );
    assert_eq!(
        json_counts(&s, "corpus"),
        counts(&[("emodb", 6), ("ravdess", 9)])
    );
    assert_eq!(json_counts(&s, "speaker").len(), 5);
    let batches: Vec<RecordBatch> = HAND_PARTS
        .iter()
        .map(|(s, c, l, n, sp, b)| hand_batch(&format!("{c}-{l}-{s}-"), *n, sp, *b))
        .collect();
    let (mean, std, n) = feature_mean_std(&batches, "vec");
    let f = &s["features"][0];
    assert_eq!(f["column"], "vec");
    assert_eq!(f["layout"], "vector");
    assert_eq!(f["vectors"].as_u64().unwrap(), n);
    for k in 0..2 {
        assert!(close(f["mean"][k].as_f64().unwrap(), mean[k]), "{f}");
        assert!(close(f["std"][k].as_f64().unwrap(), std[k]), "{f}");
    }
    let q = &s["quarantine"];
    assert_eq!(q["rows"], 4);
    assert_eq!(q["files"].as_array().unwrap().len(), 2);
    assert_eq!(
        q["by_reason"],
        serde_json::json!([
            {"value": "corrupt", "rows": 2},
            {"value": "too_short", "rows": 1},
            {"value": "truncated", "rows": 1}
        ])
    );
    assert_eq!(
        q["by_stage"],
        serde_json::json!([{"value": "decode", "rows": 3}, {"value": "features", "rows": 1}])
    );
    // Durations per row (no duration_s): 15 values from end_s - start_s.
    assert_eq!(s["duration"]["count"], 15);
    assert_eq!(s["duration"]["min"], 1.0);
    assert_eq!(s["duration"]["max"], 2.0);
}

#[test]
fn hive_partitioned_sharded_layout_is_read_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("table");
    hand_table(&root);
    check_hand_table(&root);
}

#[test]
fn a_key_value_folder_above_the_table_is_not_a_partition_column() {
    // polars reads `key=value` folders anywhere in a path; the table's own columns
    // must not change when the table lives under such a folder.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("run=7").join("table");
    hand_table(&root);
    check_hand_table(&root);
    let out = ok(&sermo(&[
        "query",
        "SELECT * FROM t LIMIT 1",
        "--table",
        &format!("t={}", root.display()),
    ]));
    assert!(!out.lines().next().unwrap().contains("run"), "{out}");
}

#[test]
fn a_single_parquet_file_is_a_table() {
    let qs = quickstart();
    let first = &part_files(&qs.feats)[0];
    let rows: usize = read_batches(first).iter().map(|b| b.num_rows()).sum();
    let out = ok(&sermo(&[
        "query",
        "SELECT count(*) AS n FROM p",
        "--table",
        &format!("p={}", first.display()),
    ]));
    assert_eq!(
        out.lines().nth(3).unwrap().trim(),
        rows.to_string(),
        "{out}"
    );
}

#[test]
fn errors_are_clear_and_name_the_path_or_table() {
    let qs = quickstart();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let m = missing.to_str().unwrap();

    // A missing path, in both commands.
    fails_with(
        &sermo(&["query", "SELECT 1 FROM t", "--table", &format!("t={m}")]),
        &[m, "no such file or directory"],
    );
    fails_with(&sermo(&["stats", m]), &[m, "no such file or directory"]);

    // A table the query reads but that is not given.
    let feats = format!("feats={}", qs.feats.display());
    fails_with(
        &sermo(&["query", "SELECT count(*) FROM audio", "--table", &feats]),
        &["`audio`", "--table audio=PATH", "given: feats"],
    );

    // Bad SQL.
    fails_with(
        &sermo(&["query", "SELEC label FROM feats", "--table", &feats]),
        &["invalid SQL", "SELEC"],
    );
    // A column that does not exist names the table.
    fails_with(
        &sermo(&[
            "query",
            "SELECT no_such_column FROM feats",
            "--table",
            &feats,
        ]),
        &["no_such_column", qs.feats.to_str().unwrap()],
    );

    // A malformed or repeated --table.
    fails_with(
        &sermo(&["query", "SELECT 1", "--table", "feats"]),
        &["--table feats", "NAME=PATH"],
    );
    fails_with(
        &sermo(&["query", "SELECT 1", "--table", &feats, "--table", &feats]),
        &["given twice"],
    );

    // An empty table (markers only) and a file that is not Parquet.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(empty.join("shard=0")).unwrap();
    std::fs::write(empty.join("_SUCCESS"), "{}").unwrap();
    std::fs::write(empty.join("shard=0/.part-00000.parquet.tmp"), "x").unwrap();
    let e = empty.to_str().unwrap();
    fails_with(
        &sermo(&["query", "SELECT * FROM t", "--table", &format!("t={e}")]),
        &[e, "empty"],
    );
    fails_with(&sermo(&["stats", e]), &[e, "empty"]);
    let txt = dir.path().join("notes.txt");
    std::fs::write(&txt, "hello").unwrap();
    fails_with(
        &sermo(&["stats", txt.to_str().unwrap()]),
        &[txt.to_str().unwrap(), "not a sermo table"],
    );

    // Part files under different partition folders.
    let mixed = dir.path().join("mixed");
    write_parquet(
        &mixed.join("part-00000.parquet"),
        &hand_batch("a", 1, "x", 0.0),
    );
    write_parquet(
        &mixed.join("label=angry/part-00001.parquet"),
        &hand_batch("b", 1, "x", 0.0),
    );
    fails_with(
        &sermo(&["stats", mixed.to_str().unwrap()]),
        &[mixed.to_str().unwrap(), "inconsistent partition folders"],
    );

    // A corrupt part file names the table.
    let corrupt = dir.path().join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(corrupt.join("part-00000.parquet"), "not parquet at all").unwrap();
    fails_with(
        &sermo(&["stats", corrupt.to_str().unwrap()]),
        &[corrupt.to_str().unwrap()],
    );
}

#[test]
fn python_polars_gives_the_same_counts() {
    let ok_py = Command::new("python3")
        .args(["-c", "import polars"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok_py {
        common::skip_unless_ci(
            "python_polars_gives_the_same_counts",
            "python3 with polars is not available",
        );
        return;
    }
    let qs = quickstart();
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.csv");
    ok(&sermo(&[
        "query",
        LABEL_SQL,
        "--table",
        &format!("feats={}", qs.feats.display()),
        "--out",
        ours.to_str().unwrap(),
    ]));
    let script = r#"
import sys, glob, json, polars as pl
root, sql = sys.argv[1], sys.argv[2]
lf = pl.scan_parquet(sorted(glob.glob(root + "/**/part-*.parquet", recursive=True)))
df = pl.SQLContext(feats=lf).execute(sql).collect()
print(json.dumps([[r[0], int(r[1])] for r in df.rows()]))
"#;
    let o = Command::new("python3")
        .args(["-c", script, qs.feats.to_str().unwrap(), LABEL_SQL])
        .output()
        .unwrap();
    let py: Vec<(String, u64)> = serde_json::from_str(&ok(&o)).unwrap();
    let rows = csv_rows(&ours);
    let sermo_rows: Vec<(String, u64)> = rows[1..]
        .iter()
        .map(|r| (r[0].clone(), r[1].parse().unwrap()))
        .collect();
    assert_eq!(sermo_rows, py);
}

/// `sermo query` (polars over the folders) and the `parquet` source (sermo's own
/// reader) see the same partition values in the same table: both go through the one
/// hive-folder parser (`store::hive`). Values are percent-escaped as the sink writes
/// them (`emo db`, `a=b`, `100%`), and a folder with two `=` is a plain folder for
/// both.
#[test]
fn query_and_the_parquet_source_read_the_same_partition_values() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ds");
    let parts = [
        ("corpus=emo%20db/label=a%3Db", "e"),
        ("corpus=emo%20db/label=100%", "p"),
        ("corpus=ravdess/label=sad", "r"),
    ];
    for (k, (folders, prefix)) in parts.iter().enumerate() {
        write_parquet(
            &root.join(format!("tag=x=y/{folders}/part-{k:05}.parquet")),
            &hand_batch(prefix, 2, "03", k as f32),
        );
    }
    // What `sermo query` reads.
    let t = format!("t={}", root.display());
    let header = ok(&sermo(&["query", "SELECT * FROM t LIMIT 1", "--table", &t]));
    assert!(
        header.contains("corpus") && !header.contains("tag"),
        "a folder with two `=` is no partition: {header}"
    );
    let q = dir.path().join("q.csv");
    ok(&sermo(&[
        "query",
        "SELECT clip_id, corpus, label FROM t ORDER BY clip_id",
        "--table",
        &t,
        "--out",
        q.to_str().unwrap(),
    ]));
    let rows = csv_rows(&q);
    let col = |name: &str| rows[0].iter().position(|h| h == name);
    assert_eq!(
        col("tag"),
        None,
        "a folder with two `=` is no partition: {:?}",
        rows[0]
    );
    let (id, corpus, label) = (
        col("clip_id").unwrap(),
        col("corpus").expect("corpus column"),
        col("label").expect("label column"),
    );
    let from_query: Vec<(String, String, String)> = rows[1..]
        .iter()
        .map(|r| (r[id].clone(), r[corpus].clone(), r[label].clone()))
        .collect();
    // What the `parquet` source reads (copied into a table by a pipeline).
    let p = dir.path().join("copy.toml");
    std::fs::write(
        &p,
        format!(
            "[sources.d]\nkind = \"parquet\"\npath = \"{}\"\n\
             [sinks.o]\nkind = \"parquet\"\ninput = \"d\"\npath = \"o\"\nmode = \"overwrite\"\n",
            root.display()
        ),
    )
    .unwrap();
    ok(&sermo(&["run", p.to_str().unwrap()]));
    let mut from_source: Vec<(String, String, String)> = Vec::new();
    for b in all_batches(&dir.path().join("o")) {
        assert!(b.column_by_name("tag").is_none(), "{:?}", b.schema());
        let s = |n: &str| b.column_by_name(n).unwrap().as_string::<i32>().clone();
        let (i, c, l) = (s("clip_id"), s("corpus"), s("label"));
        for r in 0..b.num_rows() {
            from_source.push((
                i.value(r).to_string(),
                c.value(r).to_string(),
                l.value(r).to_string(),
            ));
        }
    }
    from_source.sort();
    assert_eq!(from_query, from_source);
    let values: std::collections::BTreeSet<(&str, &str)> = from_query
        .iter()
        .map(|(_, c, l)| (c.as_str(), l.as_str()))
        .collect();
    assert_eq!(
        values.into_iter().collect::<Vec<_>>(),
        vec![("emo db", "100%"), ("emo db", "a=b"), ("ravdess", "sad")]
    );
}
