//! The default model (`models/default`, built into the binary): the built-in copy
//! is the committed folder, its recipe is the committed pipelines, and `sermo
//! infer` without `--model` reproduces the predictions recorded beside it on the
//! demo recording.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::sermo_bin;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn folder() -> PathBuf {
    root().join("models").join("default")
}

#[test]
fn the_built_in_default_model_is_the_committed_folder() {
    let files = sermo::train::default_model::files();
    assert!(!files.is_empty());
    for (name, bytes) in files {
        let on_disk = std::fs::read(folder().join(name)).expect("committed file");
        assert!(
            on_disk == *bytes,
            "models/default/{name} differs from the copy built into the binary"
        );
    }
    let a = sermo::train::inference::read_artifact(&folder()).expect("a model folder");
    assert_eq!(
        a.labels,
        ["angry", "disgust", "fearful", "happy", "neutral", "sad"]
    );
    assert_eq!(a.normalize, sermo::train::data::Normalize::Utterance);
    assert_eq!(a.sample_rate, Some(16_000));
}

/// `models/default/recipe.json` names the pipelines that made the model with the
/// hash of their text and the sermo version, which must be the one in
/// `config.json`: editing the recipe without retraining fails here.
#[test]
fn the_default_model_records_its_recipe_and_version() {
    let text = std::fs::read_to_string(folder().join("recipe.json")).expect("recipe.json");
    let recipe: serde_json::Value = serde_json::from_str(&text).expect("json");
    let a = sermo::train::inference::read_artifact(&folder()).expect("model");
    assert_eq!(recipe["sermo_version"], a.sermo_version.as_str());
    assert!(recipe["version"].as_str().is_some_and(|v| !v.is_empty()));
    let pipelines = recipe["pipelines"].as_array().expect("pipelines");
    assert_eq!(pipelines.len(), 2);
    for p in pipelines {
        let path = p["path"].as_str().expect("path");
        let bytes = std::fs::read(root().join(path)).expect("the pipeline file");
        use sha2::Digest;
        let hex: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            p["sha256"].as_str(),
            Some(hex.as_str()),
            "{path} changed since models/default was trained: retrain it (models/default/README.md) or restore the file"
        );
    }
}

struct Row {
    start: f64,
    end: f64,
    label: String,
    probs: Vec<f64>,
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<Row>) {
    let text = std::fs::read_to_string(path).expect("csv");
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .expect("header")
        .split(',')
        .map(String::from)
        .collect();
    let at = |name: &str| header.iter().position(|h| h == name).expect(name);
    let (start, end, label) = (at("start_s"), at("end_s"), at("label"));
    let probs: Vec<usize> = (0..header.len())
        .filter(|&i| header[i].starts_with("p_"))
        .collect();
    let rows = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Row {
                start: f[start].parse().expect("start"),
                end: f[end].parse().expect("end"),
                label: f[label].to_string(),
                probs: probs.iter().map(|&i| f[i].parse().expect("p")).collect(),
            }
        })
        .collect();
    (header, rows)
}

/// `sermo infer ARGS` with the cache folder at `cache`: its stderr (it must
/// succeed).
fn infer(args: &[&str], cache: &Path) -> String {
    let run = Command::new(sermo_bin())
        .arg("infer")
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .expect("sermo infer");
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{stderr}");
    stderr
}

#[test]
fn sermo_infer_without_a_model_reproduces_the_recorded_demo_predictions() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("demo.csv");
    let recording = root().join("examples/audio/long/demo_long.wav");
    // A fresh cache folder: the built-in model is written there first.
    let recording = recording.display().to_string();
    let out_arg = out.display().to_string();
    let stderr = infer(&[&recording, "--out", &out_arg], &dir.path().join("cache"));
    assert!(
        stderr.contains("no --model given: using the default model"),
        "the default model is announced on stderr: {stderr}"
    );
    assert!(
        dir.path()
            .join("cache/sermo/models")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some()),
        "the built-in model was written into the cache folder"
    );
    let (header, got) = read_csv(&out);
    let (want_header, want) = read_csv(&folder().join("demo_predictions.csv"));
    assert_eq!(header, want_header);
    assert_eq!(got.len(), want.len(), "segments");
    assert!(
        want.len() >= 15,
        "the 46-s demo recording gives 16 segments"
    );
    let labels: std::collections::BTreeSet<&str> = want.iter().map(|r| r.label.as_str()).collect();
    assert!(
        labels.len() >= 2,
        "a timeline of one label says nothing: {labels:?}"
    );
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((g.start, g.end), (w.start, w.end));
        for (p, q) in g.probs.iter().zip(&w.probs) {
            assert!(
                (p - q).abs() <= 1e-4,
                "segment {:.0}–{:.0} s: probabilities {:?} vs recorded {:?}",
                w.start,
                w.end,
                g.probs,
                w.probs
            );
        }
        assert_eq!(g.label, w.label, "segment at {} s", w.start);
    }
}

#[test]
fn an_explicit_model_is_used_without_the_notice() {
    let dir = tempfile::tempdir().expect("tmp");
    let recording = root().join("examples/audio/long/demo_long.wav");
    let model = folder().display().to_string();
    let recording = recording.display().to_string();
    let stderr = infer(&["--model", &model, &recording], &dir.path().join("cache"));
    assert!(!stderr.contains("default model"), "{stderr}");
    assert!(
        !dir.path().join("cache").exists(),
        "nothing is written to the cache when --model is given"
    );
}
