//! The `train` sink end to end through the binary, on the demo clips: features →
//! train (split and CV) → artifacts (model, config, metrics, history, charts) →
//! `sermo eval` on the held-out speaker reproduces the sink's own test metrics from
//! the reloaded model.

mod common;

use std::path::Path;

use common::{demo_features, sermo};

fn run(args: &[&str]) -> (bool, String) {
    let (ok, out, err) = sermo(args);
    (ok, out + &err)
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// EmoDB demo clips (speakers 03 and 08) → stacked ZCR + RMS + 13 MFCC.
fn features(dir: &Path) -> std::path::PathBuf {
    demo_features(dir)
}

fn train_pipeline(dir: &Path, name: &str, model: &str, split: &str) -> std::path::PathBuf {
    let p = dir.join(format!("{name}.toml"));
    write(
        &p,
        &format!(
            r#"[pipeline]
name = "{name}"
[sources.feats]
kind = "parquet"
path = "feats"
[sinks.model]
kind = "train"
input = "feats"
model = "{model}"
features = ["stacked"]
epochs = 6
batch_size = 4
learning_rate = 1e-3
{split}
seed = 3
out = "{name}"
{params}"#,
            // `hidden` is the mlp's; other models train with their defaults.
            params = if model == "mlp" {
                "[sinks.model.params]\nhidden = 16\n"
            } else {
                ""
            }
        ),
    );
    p
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Select the rows of `dir/feats` matching `filter` into a table of their own, run
/// `sermo eval --model model` on it; the metrics written and the command's output.
fn eval_on(dir: &Path, model: &Path, filter: &str) -> (serde_json::Value, String) {
    let sel = dir.join("select.toml");
    write(
        &sel,
        &format!(
            "[pipeline]\nname = \"sel\"\n[sources.f]\nkind = \"parquet\"\npath = \"feats\"\nwhere = \"{filter}\"\n[sinks.t]\nkind = \"parquet\"\ninput = \"f\"\npath = \"selected\"\n"
        ),
    );
    let (ok, text) = run(&["run", "-q", sel.to_str().unwrap()]);
    assert!(ok, "{text}");
    let eval_json = dir.join("eval.json");
    let (ok, text) = run(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--table",
        dir.join("selected").to_str().unwrap(),
        "--out",
        eval_json.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    (json(&eval_json), text)
}

/// Rows of one Parquet file.
fn parquet_rows(path: &Path) -> usize {
    let f = std::fs::File::open(path).unwrap();
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum()
}

fn assert_png(path: &Path) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    assert!(b.len() > 5_000, "{} is suspiciously small", path.display());
}

#[test]
fn train_split_writes_artifacts_and_eval_reproduces_the_test_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let feats = features(dir.path());
    let p = train_pipeline(
        dir.path(),
        "split",
        "mlp",
        r#"split = { by = "speaker", test = ["08"] }"#,
    );
    let (ok, text) = run(&["run", p.to_str().unwrap()]);
    assert!(ok, "{text}");
    let out = dir.path().join("split");
    for f in [
        "model.mpk",
        "config.json",
        "metrics.json",
        "history.parquet",
    ] {
        assert!(out.join(f).is_file(), "{f} missing: {text}");
    }
    assert_png(&out.join("confusion.png"));
    assert_png(&out.join("curves.png"));
    let cfg = json(&out.join("config.json"));
    assert_eq!(cfg["model"]["kind"], "mlp");
    assert_eq!(cfg["model"]["input_dim"], 15);
    assert_eq!(cfg["features"], serde_json::json!(["stacked"]));
    assert!(cfg["feature_settings"].is_object(), "{cfg}");
    assert_eq!(cfg["standardizer"]["mean"].as_array().unwrap().len(), 15);
    assert!(cfg["split"].as_str().unwrap().contains("08"));
    let rows = parquet_rows(&out.join("history.parquet"));
    assert_eq!(rows, 6);

    let m = json(&out.join("metrics.json"));
    for k in [
        "accuracy",
        "uar",
        "macro_f1",
        "per_class",
        "confusion",
        "labels",
    ] {
        assert!(m.get(k).is_some(), "metrics.json lacks {k}: {m}");
    }
    let held_out: u64 = m["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()))
        .sum();
    assert_eq!(held_out, 5, "speaker 08 has 5 demo clips");

    // The held-out speaker as its own table, then `sermo eval` on it.
    let (e, text) = eval_on(dir.path(), &out, "speaker = '08'");
    assert!(text.contains("5 of 5 rows scored"), "{text}");
    assert_eq!(
        e["confusion"], m["confusion"],
        "reloaded model predicts differently"
    );
    assert_eq!(e["accuracy"], m["accuracy"]);
    assert_eq!(e["labels"], m["labels"]);
    assert_eq!(e["feature_settings_match"], true);

    // `--labels common` scores only labels the table has.
    let (ok, text) = run(&[
        "eval",
        "--model",
        out.to_str().unwrap(),
        "--table",
        feats.to_str().unwrap(),
        "--labels",
        "common",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("12 of 12 rows scored"), "{text}");
}

#[test]
fn train_cv_writes_every_fold_and_pooled_metrics() {
    let dir = tempfile::tempdir().unwrap();
    features(dir.path());
    let p = train_pipeline(
        dir.path(),
        "cv",
        "cnn1d",
        r#"cv = { by = "speaker", folds = 2, valid = 0 }"#,
    );
    let (ok, text) = run(&["run", p.to_str().unwrap()]);
    assert!(ok, "{text}");
    let out = dir.path().join("cv");
    for k in 0..2 {
        let f = out.join(format!("fold-{k}"));
        assert!(f.join("model.mpk").is_file(), "{text}");
        assert_png(&f.join("confusion.png"));
        assert_png(&f.join("curves.png"));
    }
    assert_png(&out.join("confusion.png"));
    let m = json(&out.join("metrics.json"));
    assert_eq!(m["folds"].as_array().unwrap().len(), 2, "{m}");
    assert!(
        m["mean"]["uar"].is_number() && m["std"]["uar"].is_number(),
        "{m}"
    );
    // Pooled accuracy = all folds' correct predictions over all test rows.
    let (mut right, mut rows) = (0u64, 0u64);
    for f in m["folds"].as_array().unwrap() {
        for (i, row) in f["confusion"].as_array().unwrap().iter().enumerate() {
            for (j, n) in row.as_array().unwrap().iter().enumerate() {
                let n = n.as_u64().unwrap();
                rows += n;
                right += if i == j { n } else { 0 };
            }
        }
    }
    let pooled = m["pooled"]["accuracy"].as_f64().unwrap();
    assert!((pooled - right as f64 / rows as f64).abs() < 1e-9, "{m}");
    assert!(text.contains("pooled"), "{text}");
    // A CV run has no single model: eval names the folds to choose from.
    let (ok, text) = run(&[
        "eval",
        "--model",
        out.to_str().unwrap(),
        "--table",
        dir.path().join("feats").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(text.contains("fold-0") && text.contains("fold-1"), "{text}");
}

#[test]
fn bad_model_params_are_reported_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    write(
        &p,
        r#"[pipeline]
name = "bad"
[sources.feats]
kind = "parquet"
path = "feats"
[sinks.model]
kind = "train"
input = "feats"
model = "q2l"
features = ["stacked"]
cv = { by = "speaker", folds = 2 }
out = "run"
[sinks.model.params]
d_model = 10
heads = 4
"#,
    );
    let (ok, text) = run(&["validate", p.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        text.contains("d_model (10) must be a positive multiple of heads (4)"),
        "{text}"
    );
}

/// Augmented rows (the `augment` stage's `variant` column) train only: the test
/// speaker is scored on its clean rows, once per clip. The recipe options
/// (ensemble, mixup, label smoothing, crops, masking, per-clip normalization,
/// last-epoch checkpoint) run end to end, and `sermo eval` on the clean held-out
/// rows reproduces the sink's test metrics from the reloaded ensemble.
#[test]
fn augmented_training_tests_on_clean_rows_and_ensembles_reload() {
    let dir = tempfile::tempdir().unwrap();
    let glob = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/audio/emodb/*.wav");
    let feats = dir.path().join("features.toml");
    let head = common::audio_head(&glob.display().to_string());
    let aug = r#"
[stages.aug]
kind = "augment"
input = "a16"
variants = ["clean", "noise", "pitch"]
"#;
    write(
        &feats,
        &format!(
            "{head}{aug}{}[sinks.t]\nkind = \"parquet\"\ninput = \"feat\"\npath = \"feats\"\n",
            common::DEMO_FEATURES.replace("input = \"a16\"", "input = \"aug\"")
        ),
    );
    let (ok, text) = run(&["run", "-q", feats.to_str().unwrap()]);
    assert!(ok, "{text}");
    let keys = r#"model = "cnn1d"
features = ["stacked"]
epochs = 4
batch_size = 4
split = { by = "speaker", test = ["08"] }
seed = 5
normalize = "utterance"
ensemble = 2
label_smoothing = 0.1
mixup = { alpha = 0.4 }
crop = { frames = 20 }
spec_mask = { time = 1, time_width = 4, feature = 1, feature_width = 2 }
checkpoint = "last"
[sinks.m.params]
filters = [8, 8, 8]
dense = 8
"#;
    let p = common::train_pipeline(dir.path(), "aug", keys);
    let (ok, text) = run(&["run", p.to_str().unwrap()]);
    assert!(ok, "{text}");
    let out = dir.path().join("aug");
    assert!(out.join("model.mpk").is_file() && out.join("model-1.mpk").is_file());
    let m = json(&out.join("metrics.json"));
    let scored: u64 = m["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()))
        .sum();
    assert_eq!(
        scored, 5,
        "speaker 08 has 5 clips; augmented rows must not be tested: {text}"
    );
    let cfg = json(&out.join("config.json"));
    assert_eq!(cfg["training"]["ensemble"], 2);
    assert_eq!(cfg["member_best_epochs"], serde_json::json!([4, 4]));
    assert_eq!(cfg["standardizer"]["per_clip"], true);
    // Two members × 4 epochs in the history.
    let rows = parquet_rows(&out.join("history.parquet"));
    assert_eq!(rows, 8);

    // The clean rows of speaker 08, scored by the reloaded ensemble.
    let (e, _) = eval_on(dir.path(), &out, "speaker = '08' AND variant = 'clean'");
    assert_eq!(e["confusion"], m["confusion"], "reloaded ensemble differs");
    assert_eq!(e["accuracy"], m["accuracy"]);
}

/// CV folds as Slurm array tasks: `--shard I/N` trains folds k mod N = I on the
/// whole table (not a slice of its clips), `sermo status`/`commit` name the missing
/// folds and the shards to resubmit, and the committed metrics equal those of the
/// same CV run on one machine.
#[test]
fn cv_folds_run_as_shards_and_commit_joins_them_like_one_run() {
    let dir = tempfile::tempdir().unwrap();
    features(dir.path());
    let cv = r#"cv = { by = "speaker", folds = 2, valid = 0 }"#;
    let whole = train_pipeline(dir.path(), "whole", "mlp", cv);
    let (ok, text) = run(&["run", whole.to_str().unwrap()]);
    assert!(ok, "{text}");

    let sharded = train_pipeline(dir.path(), "sharded", "mlp", cv);
    let p = sharded.to_str().unwrap();
    let out = dir.path().join("sharded");
    let o = out.to_str().unwrap();
    let (ok, text) = run(&["run", p, "--shard", "1/2"]);
    assert!(ok, "{text}");
    assert!(text.contains("trained fold 1 of 2"), "{text}");
    assert!(out.join("fold-1/metrics.json").is_file(), "{text}");
    assert!(
        !out.join("fold-0").exists(),
        "shard 1/2 trained fold 0: {text}"
    );
    assert!(!out.join("metrics.json").exists());
    // Fold 1 trained on every clip of speaker 03 and tested all of speaker 08's,
    // exactly as in the whole run (a clip-sharded table would have fewer rows).
    let fold1 = json(&out.join("fold-1/metrics.json"));
    let whole_m = json(&dir.path().join("whole/metrics.json"));
    assert_eq!(fold1, whole_m["folds"][1], "{text}");

    let (ok, text) = run(&["status", o, "--shards", "2"]);
    assert!(!ok);
    assert!(
        text.contains("1 of 2 CV folds complete") && text.contains("resubmit: --array=0"),
        "{text}"
    );
    let (ok, text) = run(&["commit", o, "--shards", "2"]);
    assert!(!ok);
    assert!(
        text.contains("missing CV folds 0 of 2") && text.contains("--array=0"),
        "{text}"
    );
    // A shard beyond the folds has nothing to do and succeeds (array tasks > folds).
    let (ok, text) = run(&["run", p, "--shard", "2/3"]);
    assert!(ok && text.contains("nothing to train"), "{text}");

    let (ok, text) = run(&["run", p, "--shard", "0/2"]);
    assert!(ok, "{text}");
    let (ok, text) = run(&["commit", o, "--shards", "2"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("committed 2 CV folds") && text.contains("pooled"),
        "{text}"
    );
    assert_eq!(json(&out.join("metrics.json")), whole_m);
    assert_png(&out.join("confusion.png"));
    let (ok, text) = run(&["status", o, "--shards", "2"]);
    assert!(ok && text.contains("(committed)"), "{text}");

    // Other settings into the same folder are refused rather than mixed in.
    let (ok, text) = run(&["run", p, "--shard", "0/2", "--set", "sinks.model.epochs=3"]);
    assert!(!ok);
    assert!(text.contains("holds CV folds of other settings"), "{text}");
}

/// A burn record's bytes with each tensor's random parameter id (msgpack `"id"`
/// followed by a 13-character string) blanked: the weights and layout only.
fn weights(path: &Path) -> Vec<u8> {
    let mut b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let key = [0xa2, b'i', b'd', 0xad];
    let mut i = 0;
    let mut ids = 0;
    while i + key.len() + 13 <= b.len() {
        if b[i..i + key.len()] == key {
            b[i + key.len()..i + key.len() + 13].fill(b'_');
            ids += 1;
            i += key.len() + 13;
        } else {
            i += 1;
        }
    }
    assert!(ids >= 2, "{}: no parameter ids found", path.display());
    b
}

/// Run the `mlp` train pipeline `name` with `split` and `--set` overrides; it must
/// succeed. Its output.
fn train_mlp(dir: &Path, name: &str, split: &str, sets: &[&str]) -> String {
    let p = train_pipeline(dir, name, "mlp", split);
    let mut args = vec!["run", p.to_str().unwrap()];
    for s in sets {
        args.extend(["--set", s]);
    }
    let (ok, text) = run(&args);
    assert!(ok, "{name}: {text}");
    text
}

/// `reuse`: the members of finished runs stand in for training. An ensemble of
/// three seeds grown from a 2-member run and a 1-member run trains nothing and
/// equals the same ensemble trained in one run, weights and metrics to the bit
/// (CPU training is deterministic); a run with other settings is not reused and
/// says why; a sink cannot reuse its own `out`.
#[test]
fn reuse_grows_an_ensemble_from_finished_runs_without_retraining() {
    let dir = tempfile::tempdir().unwrap();
    features(dir.path());
    let cv = r#"cv = { by = "speaker", folds = 2, valid = 0 }"#;
    let go = |name: &str, sets: &[&str]| train_mlp(dir.path(), name, cv, sets);
    go("full", &["sinks.model.ensemble=3"]); // seeds 3, 4, 5
    go("a", &["sinks.model.ensemble=2"]); // seeds 3, 4
    go("b", &["sinks.model.seed=5"]);
    let text = go(
        "grown",
        &["sinks.model.ensemble=3", r#"sinks.model.reuse=["a", "b"]"#],
    );
    assert!(
        !text.contains("epoch   1"),
        "a reused member was trained: {text}"
    );
    assert!(
        text.contains("fold 1: member 2 (seed 5) reused from")
            && text.contains(&format!(
                "b{}fold-1{}model.mpk",
                std::path::MAIN_SEPARATOR,
                std::path::MAIN_SEPARATOR
            )),
        "{text}"
    );
    let (full, grown) = (dir.path().join("full"), dir.path().join("grown"));
    assert_eq!(
        json(&grown.join("metrics.json")),
        json(&full.join("metrics.json"))
    );
    for k in 0..2 {
        let (f, g) = (
            full.join(format!("fold-{k}")),
            grown.join(format!("fold-{k}")),
        );
        for m in ["model.mpk", "model-1.mpk", "model-2.mpk"] {
            assert_eq!(
                weights(&f.join(m)),
                weights(&g.join(m)),
                "fold {k} {m}: a reused member differs from the one trained in place"
            );
        }
        let (cf, cg) = (json(&f.join("config.json")), json(&g.join("config.json")));
        assert_eq!(cg["member_best_epochs"], cf["member_best_epochs"]);
        assert_eq!(cg["training"], cf["training"]);
        let seeds: Vec<u64> = cg["reused"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["seed"].as_u64().unwrap())
            .collect();
        assert_eq!(seeds, [3, 4, 5]);
        assert!(cf.get("reused").is_none());
        assert_eq!(parquet_rows(&g.join("history.parquet")), 18);
    }

    // Other settings: trained, not reused, and the reason is named.
    let text = go(
        "other",
        &["sinks.model.epochs=5", r#"sinks.model.reuse=["a"]"#],
    );
    assert!(
        text.contains("reuse:") && text.contains("training settings differ: `epochs` 6 vs 5"),
        "{text}"
    );
    assert!(
        json(&dir.path().join("other/fold-0/config.json"))
            .get("reused")
            .is_none()
    );

    // Its own `out` is refused before anything runs.
    let p = train_pipeline(dir.path(), "selfish", "mlp", cv);
    let (ok, text) = run(&[
        "run",
        p.to_str().unwrap(),
        "--set",
        r#"sinks.model.reuse=["selfish"]"#,
    ]);
    assert!(!ok);
    assert!(text.contains("names this sink's own `out`"), "{text}");
    assert!(!dir.path().join("selfish").exists());
}

/// `cv.seed` deals the groups into folds apart from the training seed: with fewer
/// folds than groups, runs of training seeds 3 and 4 deal different folds, unless
/// both set `cv.seed`; then they share one partition and a 2-member ensemble
/// `reuse`s both without training (a run on other folds is refused: data hash).
#[test]
fn cv_seed_shares_folds_across_training_seeds_so_runs_can_be_reused() {
    let dir = tempfile::tempdir().unwrap();
    features(dir.path());
    // Clips as groups: 10 groups, 2 folds, so the dealing depends on a seed.
    let go = |name: &str, cv: &str, sets: &[&str]| train_mlp(dir.path(), name, cv, sets);
    let tests = |name: &str| json(&dir.path().join(name).join("cv.json"))["tests"].clone();
    let plain = r#"cv = { by = "clip_id", folds = 2, valid = 0 }"#;
    let dealt = r#"cv = { by = "clip_id", folds = 2, valid = 0, seed = 11 }"#;
    go("plain3", plain, &[]);
    go("plain4", plain, &["sinks.model.seed=4"]);
    assert_ne!(
        tests("plain3"),
        tests("plain4"),
        "the training seed deals the folds when cv.seed is unset"
    );
    go("dealt3", dealt, &[]);
    go("dealt4", dealt, &["sinks.model.seed=4"]);
    assert_eq!(tests("dealt3"), tests("dealt4"));
    assert_eq!(tests("dealt3").as_array().unwrap().len(), 2);
    let text = go(
        "dealt-ens2",
        dealt,
        &[
            "sinks.model.ensemble=2",
            r#"sinks.model.reuse=["dealt3", "dealt4"]"#,
        ],
    );
    assert!(
        !text.contains("epoch   1") && text.contains("fold 1: member 1 (seed 4) reused from"),
        "{text}"
    );
    assert_eq!(tests("dealt-ens2"), tests("dealt3"));
    // The seed-4 run on its own folds is not reused by a seed-3 ensemble.
    let text = go(
        "plain-ens2",
        plain,
        &["sinks.model.ensemble=2", r#"sinks.model.reuse=["plain4"]"#],
    );
    assert!(text.contains("rows (data hash) differ"), "{text}");
    assert!(text.contains("epoch   1"), "{text}");
}

/// `--shard` cannot mean folds for one sink and clips for another, nor apply to a
/// single split.
#[test]
fn shard_refuses_a_train_sink_beside_a_table_sink_and_a_single_split() {
    let dir = tempfile::tempdir().unwrap();
    features(dir.path());
    let both = dir.path().join("both.toml");
    write(
        &both,
        r#"[sources.feats]
kind = "parquet"
path = "feats"
[sinks.copy]
kind = "parquet"
input = "feats"
path = "copy"
[sinks.model]
kind = "train"
input = "feats"
model = "mlp"
features = ["stacked"]
cv = { by = "speaker", folds = 2, valid = 0 }
out = "run"
"#,
    );
    let (ok, text) = run(&["run", both.to_str().unwrap(), "--shard", "0/2"]);
    assert!(!ok);
    assert!(
        text.contains("sinks.copy")
            && text.contains("`model` splits its own work")
            && text.contains("two pipelines"),
        "{text}"
    );
    assert!(!dir.path().join("copy").exists() && !dir.path().join("run").exists());

    let split = train_pipeline(
        dir.path(),
        "split",
        "mlp",
        r#"split = { by = "speaker", test = ["08"] }"#,
    );
    let (ok, text) = run(&["run", split.to_str().unwrap(), "--shard", "0/2"]);
    assert!(!ok);
    assert!(text.contains("this sink has one `split`"), "{text}");
}

/// The rows of `history.parquet` without the wall-clock column.
fn history_without_time(path: &Path) -> Vec<arrow::record_batch::RecordBatch> {
    let f = std::fs::File::open(path).unwrap();
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| {
            let b = b.unwrap();
            let keep: Vec<usize> = (0..b.num_columns())
                .filter(|&i| b.schema().field(i).name() != "seconds")
                .collect();
            b.project(&keep).unwrap()
        })
        .collect()
}

/// Training depends on the rows, not on how the table lays them out: the same rows
/// in the opposite order, in another part file, train the same model (which part
/// file a clip lands in is decided by writer timing, so without one canonical
/// order a freshly written table could train differently).
#[test]
fn training_does_not_depend_on_the_tables_row_order() {
    let dir = tempfile::tempdir().unwrap();
    features(dir.path());
    let other = tempfile::tempdir().unwrap();
    let batches = common::read_parts(&dir.path().join("feats"));
    let schema = batches[0].schema();
    let all = arrow::compute::concat_batches(&schema, &batches).unwrap();
    let n = all.num_rows() as u32;
    let reversed = arrow::compute::take_record_batch(
        &all,
        &arrow::array::UInt32Array::from_iter_values((0..n).rev()),
    )
    .unwrap();
    std::fs::create_dir_all(other.path().join("feats")).unwrap();
    let f = std::fs::File::create(other.path().join("feats/part-00000.parquet")).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, schema, None).unwrap();
    w.write(&reversed).unwrap();
    w.close().unwrap();
    let split = r#"split = { by = "speaker", test = ["08"] }"#;
    for d in [dir.path(), other.path()] {
        let p = train_pipeline(d, "m", "mlp", split);
        let (ok, text) = run(&["run", p.to_str().unwrap()]);
        assert!(ok, "{text}");
    }
    let (a, b) = (dir.path().join("m"), other.path().join("m"));
    assert_eq!(
        history_without_time(&a.join("history.parquet")),
        history_without_time(&b.join("history.parquet"))
    );
    assert_eq!(json(&a.join("metrics.json")), json(&b.join("metrics.json")));
}

/// Issue 28 item 4: `cv = { ..., final = true }` trains one more model on every
/// speaker after the folds, with the CV recipe, at the run's top level: the run
/// folder is then a model (`sermo infer` / `sermo eval` take it), the folds and
/// the joined CV metrics stay. In a sharded run the final model is job K (shard K
/// mod N) and `sermo commit` / `sermo status` account for it.
#[test]
fn cv_final_trains_one_model_on_every_speaker_at_the_top_level() {
    let dir = tempfile::tempdir().unwrap();
    features(dir.path());
    let cv = r#"cv = { by = "speaker", folds = 2, valid = 0, final = true }"#;
    let p = train_pipeline(dir.path(), "fin", "mlp", cv);
    let (ok, text) = run(&["run", p.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(
        text.contains("final model: every speaker trained"),
        "{text}"
    );
    let out = dir.path().join("fin");
    for k in 0..2 {
        assert!(out.join(format!("fold-{k}/metrics.json")).is_file());
    }
    let m = json(&out.join("metrics.json"));
    assert_eq!(m["folds"].as_array().unwrap().len(), 2, "{m}");
    let fin = json(&out.join("final.json"));
    assert_eq!(fin["epochs"], 6, "{fin}");
    assert_eq!(fin["groups"], serde_json::json!(["03", "08"]), "{fin}");
    assert_eq!(fin["rows"], 12, "{fin}");
    let cfg = json(&out.join("config.json"));
    assert!(
        cfg["split"].as_str().unwrap().contains("final model"),
        "{cfg}"
    );
    assert_eq!(cfg["training"]["epochs"], 6, "{cfg}");
    assert!(out.join("model.mpk").is_file());
    assert_png(&out.join("curves.png"));
    // The run folder is the model.
    let wav = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/audio/emodb/03a01Wa.wav");
    let (ok, text) = run(&[
        "infer",
        "--model",
        out.to_str().unwrap(),
        wav.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let (ok, text) = run(&[
        "eval",
        "--model",
        out.to_str().unwrap(),
        "--table",
        dir.path().join("feats").to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    // It knows its training clips: every row of this table is one.
    assert!(
        text.contains("12 of 12 rows are clips this model was trained"),
        "{text}"
    );
    // A fold's model warns about its training speaker's rows, and leaves them
    // out when asked: what is left is its test speaker, as in its metrics.json.
    let fold0 = out.join("fold-0");
    let (ok, text) = run(&[
        "eval",
        "--model",
        fold0.to_str().unwrap(),
        "--table",
        dir.path().join("feats").to_str().unwrap(),
        "--exclude-trained",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("(clips the model was trained on)"), "{text}");
    assert!(!text.contains("warning: "), "{text}");
    let fm = json(&fold0.join("metrics.json"));
    let test_rows: u64 = fm["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|n| n.as_u64().unwrap()))
        .sum();
    assert!(
        text.contains(&format!("{test_rows} of 12 rows scored")),
        "{text}"
    );
    // The same as two shards: the final model is job 2, trained by shard 0, and
    // it equals the single-machine one (CPU training is deterministic).
    let sharded = |k: u32| {
        run(&[
            "run",
            p.to_str().unwrap(),
            "--shard",
            &format!("{k}/2"),
            "--set",
            "sinks.model.out=\"fin2\"",
        ])
    };
    let (ok, text) = sharded(1);
    assert!(ok, "{text}");
    let out2 = dir.path().join("fin2");
    assert!(
        !out2.join("final.json").exists(),
        "shard 1 trains fold 1 only"
    );
    let (ok, text) = run(&["commit", out2.to_str().unwrap(), "--shards", "2"]);
    assert!(!ok);
    assert!(text.contains("missing CV folds 0"), "{text}");
    let (ok, text) = sharded(0);
    assert!(ok, "{text}");
    let (ok, text) = run(&["status", out2.to_str().unwrap(), "--shards", "2"]);
    assert!(ok && text.contains("final model: done"), "{text}");
    let (ok, text) = run(&["commit", out2.to_str().unwrap(), "--shards", "2"]);
    assert!(ok, "{text}");
    assert_eq!(
        weights(&out.join("model.mpk")),
        weights(&out2.join("model.mpk")),
        "the sharded final model differs"
    );
    // `reuse` of the run covers its final model too: nothing is trained, the
    // weights are the run's, and config.json says where they came from.
    let (ok, text) = run(&[
        "run",
        p.to_str().unwrap(),
        "--set",
        "sinks.model.out=\"fin3\"",
        "--set",
        "sinks.model.reuse=[\"fin\"]",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("final model: member 0 (seed"), "{text}");
    let out3 = dir.path().join("fin3");
    assert_eq!(
        weights(&out.join("model.mpk")),
        weights(&out3.join("model.mpk")),
        "the reused final model differs"
    );
    assert_eq!(
        json(&out3.join("config.json"))["reused"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // An epoch chosen on validation speakers is known only after every fold:
    // refused under --shard, with the way out.
    let v = train_pipeline(
        dir.path(),
        "finv",
        "mlp",
        r#"cv = { by = "speaker", folds = 2, valid = 1, final = true }"#,
    );
    let (ok, text) = run(&["run", v.to_str().unwrap(), "--shard", "0/2"]);
    assert!(!ok);
    assert!(text.contains("run without --shard"), "{text}");
}

/// A CV run that stopped (crash, kill, time limit) resumes: rerun, it keeps the
/// folds it finished under the same rows, settings and seed and trains only the
/// missing ones, with the joined metrics of an uninterrupted run; other settings
/// or another seed train every fold again.
#[test]
fn a_stopped_cv_run_resumes_training_only_its_missing_folds() {
    let dir = tempfile::tempdir().unwrap();
    features(dir.path());
    let p = train_pipeline(
        dir.path(),
        "cv",
        "mlp",
        r#"cv = { by = "speaker", folds = 2, valid = 0, seed = 5 }"#,
    );
    let p = p.to_str().unwrap();
    let (ok, text) = run(&["run", p]);
    assert!(ok, "{text}");
    assert!(!text.contains("already complete"), "{text}");
    let out = dir.path().join("cv");
    let whole = json(&out.join("metrics.json"));
    let fold0_weights = out.join("fold-0/model.mpk");
    let mtime = |f: &Path| std::fs::metadata(f).unwrap().modified().unwrap();
    let before = mtime(&fold0_weights);

    // Stopped while fold 1 trained: its folder has no metrics.
    std::fs::remove_file(out.join("fold-1/metrics.json")).unwrap();
    std::fs::remove_file(out.join("metrics.json")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (ok, text) = run(&["run", p]);
    assert!(ok, "{text}");
    assert!(
        text.contains("fold 0: already complete") && !text.contains("fold 1: already complete"),
        "{text}"
    );
    assert_eq!(mtime(&fold0_weights), before, "fold 0 was trained again");
    assert!(out.join("fold-1/metrics.json").is_file(), "{text}");
    assert_eq!(json(&out.join("metrics.json")), whole, "{text}");

    // A fold without one of its files is not complete.
    std::fs::remove_file(out.join("fold-1/model.mpk")).unwrap();
    let (ok, text) = run(&["run", p]);
    assert!(ok, "{text}");
    assert!(
        text.contains("fold 0: already complete") && text.contains("member 0 has no weights"),
        "{text}"
    );
    assert_eq!(json(&out.join("metrics.json")), whole, "{text}");

    // Another seed (same partition: cv.seed) trains both folds again.
    let (ok, text) = run(&["run", p, "--set", "sinks.model.seed=4"]);
    assert!(ok, "{text}");
    assert!(!text.contains("already complete"), "{text}");
    assert!(
        text.contains("trained with seed 3 and 1 member(s), this run has seed 4"),
        "{text}"
    );
    assert_ne!(
        mtime(&fold0_weights),
        before,
        "fold 0 kept under another seed"
    );
}
