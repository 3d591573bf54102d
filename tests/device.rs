//! `device = "cpu" | "cuda" | "auto"` through the binary: `auto` resolves to what
//! the CUDA probe finds (and says so), `cuda` without a usable GPU fails with the
//! probe's reason and names the stage, a model trained on one device loads on the
//! CPU; and the `spec_mask` training option is applied and deterministic.

mod common;

use std::path::Path;

use common::{demo_features, sermo, train_demo, train_pipeline};
use sermo::train::device::probe_cuda;

const KEYS: &str = r#"model = "cnn1d"
features = ["stacked"]
epochs = 4
batch_size = 4
split = { by = "speaker", test = ["08"] }
seed = 5
[sinks.m.params]
filters = [8, 8, 8]
dense = 8
"#;

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `train_loss` column of a run's history.
fn losses(d: &Path) -> Vec<f64> {
    let f = std::fs::File::open(d.join("history.parquet")).unwrap();
    let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let mut v = Vec::new();
    for batch in r {
        let batch = batch.unwrap();
        let c = batch
            .column_by_name("train_loss")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::Float64Array>()
            .unwrap()
            .clone();
        v.extend(c.values().iter().copied());
    }
    v
}

/// `sermo eval --model M --table T --device D`.
fn eval(model: &Path, table: &Path, device: &str) -> (bool, String, String) {
    sermo(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--table",
        table.to_str().unwrap(),
        "--device",
        device,
    ])
}

#[test]
fn auto_follows_the_probe_and_cuda_fails_clearly_without_a_gpu() {
    let dir = tempfile::tempdir().unwrap();
    demo_features(dir.path());
    let cpu = train_demo(dir.path(), "cpu", &format!("device = \"cpu\"\n{KEYS}"));
    let p = train_pipeline(dir.path(), "auto", &format!("device = \"auto\"\n{KEYS}"));
    let (ok, _, err) = sermo(&["run", p.to_str().unwrap()]);
    assert!(ok, "{err}");
    let auto = dir.path().join("auto");
    match probe_cuda() {
        Err(why) => {
            assert!(
                err.contains(&format!("training on the CPU (auto: {why})")),
                "{err}"
            );
            // On the CPU `auto` is `cpu`: same seed, same history and metrics.
            assert_eq!(losses(&cpu), losses(&auto));
            assert_eq!(
                text(&cpu.join("metrics.json")),
                text(&auto.join("metrics.json"))
            );
            // `cuda` is refused at run time with the probe's reason, naming the stage.
            let p = train_pipeline(dir.path(), "gpu", &format!("device = \"cuda\"\n{KEYS}"));
            let (ok, _, err) = sermo(&["run", p.to_str().unwrap()]);
            assert!(!ok, "device = \"cuda\" ran without a GPU");
            assert!(err.contains("device = \"cuda\""), "{err}");
            assert!(err.contains(&why), "{err}");
            assert!(!err.contains("panicked"), "{err}");
            // `sermo eval --device cuda` too.
            let (ok, _, err) = eval(&cpu, &dir.path().join("feats"), "cuda");
            assert!(!ok);
            assert!(err.contains(&why), "{err}");
        }
        Ok(info) => {
            assert!(err.contains("training on the CUDA device 0"), "{err}");
            assert!(err.contains(&info.name), "{err}");
        }
    }
    // Whatever trained it, the model loads and scores on the CPU.
    let (ok, out, err) = eval(&auto, &dir.path().join("feats"), "cpu");
    assert!(ok, "{err}");
    assert!(out.contains("accuracy"), "{out}");
}

#[test]
fn infer_on_auto_gives_the_cpu_timeline_here() {
    let dir = tempfile::tempdir().unwrap();
    demo_features(dir.path());
    let model = train_demo(dir.path(), "m", KEYS);
    let wav = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/audio/emodb/03a01Nc.wav");
    let run = |device: &str| {
        let (ok, out, err) = sermo(&[
            "infer",
            "--model",
            model.to_str().unwrap(),
            "--segment",
            "1",
            "--device",
            device,
            wav.to_str().unwrap(),
        ]);
        assert!(ok, "{err}");
        assert!(out.contains("00:00:00"), "{out}");
        out
    };
    let cpu = run("cpu");
    let auto = run("auto");
    if probe_cuda().is_err() {
        assert_eq!(cpu, auto);
    } else {
        assert_eq!(cpu.lines().count(), auto.lines().count());
    }
}

#[test]
fn spec_mask_changes_training_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    demo_features(dir.path());
    let plain = train_demo(dir.path(), "plain", KEYS);
    let masked = format!("spec_mask = {{ time = 2, time_width = 10, feature = 2 }}\n{KEYS}");
    let a = train_demo(dir.path(), "a", &masked);
    let b = train_demo(dir.path(), "b", &masked);
    assert_eq!(losses(&a), losses(&b), "same seed, same masks, same losses");
    assert_ne!(
        losses(&plain),
        losses(&a),
        "spec_mask had no effect on training"
    );
    let cfg: serde_json::Value = serde_json::from_str(&text(&a.join("config.json"))).unwrap();
    assert_eq!(cfg["training"]["spec_mask"]["time_width"], 10);
    assert_eq!(cfg["training"]["spec_mask"]["feature_width"], 6);
}
