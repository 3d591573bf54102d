//! `model = "ssl_finetune"` end to end on the demo clips with a small
//! random-init encoder of `tests/fixtures/encoders/` (no pretrained checkpoint
//! can be downloaded here, so no accuracy is claimed): training from audio,
//! freezing, the fine-tuned encoder written as a checkpoint folder, inference
//! from audio, reproducibility, and validation. Numerics against transformers
//! are in tests/encoders.rs.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::AsArray;
use arrow::datatypes::Float32Type;
use sermo::config::PipelineFile;
use sermo::encoders::checkpoint::Checkpoint;
use sermo::encoders::{EncoderConfig, Pretrained};
use sermo::registry::Registry;

type B = burn::backend::NdArray<f32>;

fn encoder(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/encoders")
        .join(name)
}

fn demo_glob() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/audio/emodb/*.wav")
        .display()
        .to_string()
}

/// A pipeline: the demo clips at 16 kHz into an `ssl_finetune` train sink
/// (`keys` added to the sink) writing to `dir/<out>`.
fn finetune_pipeline(dir: &Path, out: &str, enc: &Path, keys: &str) -> PathBuf {
    let p = dir.join(format!("{out}.toml"));
    std::fs::write(
        &p,
        format!(
            "{}[sinks.m]\nkind = \"train\"\ninput = \"a16\"\nmodel = \"ssl_finetune\"\nencoder = \"{}\"\nout = \"{out}\"\n{keys}",
            common::audio_head(&demo_glob()),
            enc.display()
        ),
    )
    .unwrap();
    p
}

const KEYS: &str = "epochs = 2\nbatch_size = 4\ngrad_accumulation = 2\nlearning_rate = 1e-3\n\
    split = { by = \"speaker\", test = [\"08\"] }\nseed = 5\n\
    [sinks.m.params]\nprojector = 8\nfreeze_layers = 1\nlayerdrop = 0.3\nmask_time_prob = 0.2\n\
    mask_time_length = 4\nencoder_learning_rate = 1e-3\nmax_s = 1.5\n";

/// The tensors of a checkpoint folder's weights file by normalized name.
fn tensors(folder: &Path) -> BTreeMap<String, Vec<f32>> {
    let config = EncoderConfig::from_folder(folder).unwrap();
    let model = sermo::encoders::load::build::<B>(
        &config,
        Checkpoint::open(&Checkpoint::weights_file(folder).unwrap(), config.family).unwrap(),
        &Default::default(),
    )
    .unwrap();
    sermo::encoders::export::tensors(&model, None)
        .into_iter()
        .map(|(n, _, v)| (n, v))
        .collect()
}

fn history(model: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(model.join("metrics.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let file = std::fs::File::open(model.join("history.parquet")).unwrap();
    let batches: Vec<_> =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect();
    let mut out = vec![v["accuracy"].as_f64().unwrap()];
    for b in &batches {
        let l = b
            .column_by_name("train_loss")
            .unwrap()
            .as_primitive::<arrow::datatypes::Float64Type>();
        out.extend(l.values().iter().copied());
    }
    out
}

/// Probabilities per clip id of an `infer` stage's output table.
fn probs(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let mut rows = Vec::new();
    for b in common::read_parts(dir) {
        let ids = b
            .column_by_name("clip_id")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let p = b.column_by_name("probs").unwrap().as_list::<i32>().clone();
        for i in 0..b.num_rows() {
            let v = p.value(i);
            rows.push((
                ids.value(i).to_string(),
                v.as_primitive::<Float32Type>().values().to_vec(),
            ));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

#[test]
fn fine_tuning_trains_from_audio_saves_the_encoder_and_infers() {
    let dir = tempfile::tempdir().unwrap();
    let enc = encoder("wav2vec2_group");
    let p = finetune_pipeline(dir.path(), "m", &enc, KEYS);
    let (ok, _, err) = common::sermo(&["run", "-q", p.to_str().unwrap()]);
    assert!(ok, "{err}");
    let model = dir.path().join("m");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model"]["kind"], "ssl_finetune");
    assert_eq!(config["features"], serde_json::json!(["samples"]));
    assert_eq!(config["sample_rate"], 16000);
    // The fixture encoder hops 20 samples (a real one 320): 1.5-s cuts keep
    // its attention small.
    assert_eq!(config["training"]["max_frames"], 24000);
    assert_eq!(config["training"]["grad_accumulation"], 2);
    assert!(
        config["model"]["encoder"]["identity"]["weights_hash"]
            .as_str()
            .is_some_and(|h| !h.is_empty())
    );

    // The fine-tuned encoder is a checkpoint folder: the frozen parts (feature
    // encoder, projection, position embedding, layer 0) are the pretrained
    // values bit for bit, layer 1 has moved.
    let tuned = model.join("encoder");
    for f in [
        "model.safetensors",
        "config.json",
        "preprocessor_config.json",
    ] {
        assert!(tuned.join(f).is_file(), "{f} missing");
    }
    let (before, after) = (tensors(&enc), tensors(&tuned));
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    let mut moved = Vec::new();
    for (k, v) in &before {
        let frozen = k.starts_with("feature_extractor.")
            || k.starts_with("feature_projection.")
            || k.starts_with("encoder.pos_conv_embed.")
            || k.starts_with("encoder.layer_norm.")
            || k.starts_with("encoder.layers.0.");
        if frozen {
            assert_eq!(v, &after[k], "{k} is frozen but changed");
        } else if v != &after[k] {
            moved.push(k.clone());
        }
    }
    assert!(
        moved
            .iter()
            .any(|k| k.starts_with("encoder.layers.1.attention")),
        "layer 1 did not train: {moved:?}"
    );

    // The exported folder runs as the trained model's own encoder.
    let rec = sermo::train::inference::read_artifact(&model).unwrap();
    use burn::module::Module;
    let net = rec
        .model
        .init::<B>(&Default::default())
        .load_file(
            model.join("model"),
            &burn::record::NamedMpkFileRecorder::<burn::record::FullPrecisionSettings>::new(),
            &Default::default(),
        )
        .unwrap();
    let sermo::train::model::SerModel::SslFinetune(net) = net else {
        panic!("not an ssl_finetune model")
    };
    let mut exported = Pretrained::<B>::load(&tuned, None, &Default::default()).unwrap();
    let config = EncoderConfig::from_folder(&tuned).unwrap();
    let clip: Vec<f32> = (0..8000)
        .map(|i| ((i as f32) * 0.021).sin() * 0.3)
        .collect();
    // The CPU pass (src/encoders/cpu.rs) to float precision; the exported
    // folder's burn modules exactly.
    let fast = exported.run(&[&clip], &[2]).unwrap();
    exported.cpu = None;
    let got = exported.run(&[&clip], &[2]).unwrap();
    let mut x = clip.clone();
    sermo::encoders::normalize(&mut x);
    use burn::prelude::*;
    let t = Tensor::<B, 2>::from_data(TensorData::new(x, [1, 8000]), &Default::default());
    let out = net
        .encoder
        .forward(t, &config, &[8000], true, &[false, false, true]);
    let want: Vec<f32> = out.hidden_states[2]
        .clone()
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    assert_eq!(got[0].layers[0], want);
    let diff = fast[0].layers[0]
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff <= 1e-4, "CPU pass vs modules: max abs diff {diff}");

    // Inference from audio: the infer stage on the 16-kHz clips gives the same
    // probabilities in batches of 1 and of 8 (no clip depends on its neighbours).
    let infer = |name: &str, batch: usize| {
        let p = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &p,
            format!(
                "{}[stages.p]\nkind = \"infer\"\ninput = \"a16\"\nmodel = \"{}\"\nbatch_size = {batch}\n\
                 [sinks.out]\nkind = \"parquet\"\ninput = \"p\"\npath = \"{name}\"\n",
                common::audio_head(&demo_glob()),
                model.display()
            ),
        )
        .unwrap();
        let (ok, _, err) = common::sermo(&["run", "-q", p.to_str().unwrap()]);
        assert!(ok, "{name}: {err}");
        probs(&dir.path().join(name))
    };
    let loaded = sermo::train::inference::LoadedModel::load(&model).unwrap();
    assert!(
        loaded.has_cpu_pass(),
        "a fine-tuned model loads with the CPU pass"
    );
    assert!(!loaded.without_cpu_pass().has_cpu_pass());
    let one = infer("pred1", 1);
    let eight = infer("pred8", 8);
    assert_eq!(one.len(), 12);
    for ((a, pa), (b, pb)) in one.iter().zip(&eight) {
        assert_eq!(a, b);
        let d = pa
            .iter()
            .zip(pb)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-5, "{a}: batch 1 vs 8: {d}");
    }
    // `sermo infer` on a WAV at its own rate (resampled to the encoder's).
    let wav = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/audio/emodb/03a01Wa.wav");
    let out = dir.path().join("one.parquet");
    let (ok, _, err) = common::sermo(&[
        "infer",
        "--model",
        model.to_str().unwrap(),
        wav.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.exists());

    // Rerun from scratch: the same metrics and losses, bit for bit (LayerDrop
    // and time masking draw from the seeded generator).
    let p2 = finetune_pipeline(dir.path(), "m2", &enc, KEYS);
    let (ok, _, err) = common::sermo(&["run", "-q", p2.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(history(&model), history(&dir.path().join("m2")));
}

/// Inference of a fine-tuned model on the CPU runs the encoder through the CPU
/// pass (src/encoders/cpu.rs): for every encoder family, with and without the
/// weighted layer sum, a padded batch of clips of unequal lengths gives the
/// modules' logits to float precision, and each clip alone its batch's logits.
#[test]
fn the_cpu_pass_gives_the_modules_logits_for_every_family() {
    use burn::prelude::*;
    use sermo::train::finetune::{self, EncoderSpec, SslFinetuneParams};
    let dev = Default::default();
    let lengths = [3000usize, 5000, 4100, 5000];
    let s = 5000;
    let batch = |which: &[usize]| {
        let mut x = vec![0.0f32; which.len() * s];
        let mut m = vec![0.0f32; which.len() * s];
        for (j, &i) in which.iter().enumerate() {
            for t in 0..lengths[i] {
                let v = ((t as f32) * (0.013 + 0.004 * i as f32)).sin() * 0.4
                    + ((t * (i + 3)) % 17) as f32 * 0.01;
                x[j * s + t] = v;
                m[j * s + t] = 1.0;
            }
        }
        (
            Tensor::<B, 3>::from_data(TensorData::new(x, [which.len(), s, 1]), &dev),
            Tensor::<B, 2>::from_data(TensorData::new(m, [which.len(), s]), &dev),
        )
    };
    let logits = |t: Tensor<B, 2>| -> Vec<f32> { t.into_data().to_vec().unwrap() };
    for name in ["wav2vec2_group", "wav2vec2_layer", "hubert", "wavlm"] {
        let spec = EncoderSpec::read(&encoder(name), None).unwrap();
        for weighted in [true, false] {
            let p = SslFinetuneParams {
                weighted_layer_sum: weighted,
                ..Default::default()
            };
            let modules = finetune::pretrained::<B>(&spec, &p, 4, &dev).unwrap();
            let (x, m) = batch(&[0, 1, 2, 3]);
            let want = logits(modules.forward(x.clone(), m.clone()));
            // After a forward pass: burn initializes a fresh head's parameters
            // lazily, and a clone taken before would draw its own.
            let fast = modules.clone().with_cpu_pass();
            assert!(fast.has_cpu_pass() && !modules.has_cpu_pass());
            let got = logits(fast.forward(x, m));
            let diff = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                diff <= 1e-4 && want.iter().any(|v| v.abs() > 1e-3),
                "{name} weighted={weighted}: CPU pass vs modules max abs diff {diff}: {got:?} vs {want:?}"
            );
            for i in 0..4 {
                let (x, m) = batch(&[i]);
                let alone = logits(fast.forward(x, m));
                for (a, b) in alone.iter().zip(&got[i * 4..i * 4 + 4]) {
                    assert!(
                        (a - b).abs() <= 1e-5,
                        "{name}: clip {i} alone {a} vs in the batch {b}"
                    );
                }
            }
        }
    }
}

#[test]
fn validation_names_what_fine_tuning_needs() {
    let dir = tempfile::tempdir().unwrap();
    let compile = |text: &str| -> String {
        match PipelineFile::parse(text, dir.path(), &[])
            .and_then(|f| f.compile(&Registry::builtin()))
        {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    };
    let head = common::audio_head(&demo_glob());
    // No encoder; feature-table keys that do not apply to raw audio.
    let e = compile(&format!(
        "{head}[sinks.m]\nkind = \"train\"\ninput = \"a16\"\nmodel = \"ssl_finetune\"\nout = \"o\"\n\
         cv = {{ by = \"speaker\", folds = 2 }}\nspec_mask = {{ time = 2 }}\nnormalize = \"speaker\"\n\
         [sinks.m.params]\nlayerdrop = 1.5\n"
    ));
    for want in [
        "encoder",
        "spec_mask",
        "normalize",
        "layerdrop must be in [0, 1)",
    ] {
        assert!(e.contains(want), "missing `{want}` in: {e}");
    }
    // The input must be at the encoder's rate.
    let enc = encoder("hubert");
    let e = compile(&format!(
        "[sources.clips]\nkind = \"files\"\npaths = [\"{}\"]\nlabels = \"emodb\"\n\
         [stages.audio]\nkind = \"decode\"\ninput = \"clips\"\n\
         [sinks.m]\nkind = \"train\"\ninput = \"audio\"\nmodel = \"ssl_finetune\"\nencoder = \"{}\"\nout = \"o\"\n\
         cv = {{ by = \"speaker\", folds = 2 }}\n",
        demo_glob(),
        enc.display()
    ));
    assert!(e.contains("rate = 16000"), "{e}");
    // `encoder` on another model.
    let e = compile(&format!(
        "{head}[sinks.m]\nkind = \"train\"\ninput = \"a16\"\nmodel = \"mlp\"\nfeatures = [\"x\"]\nencoder = \"{}\"\nout = \"o\"\n\
         cv = {{ by = \"speaker\", folds = 2 }}\n",
        enc.display()
    ));
    assert!(
        e.contains("applies only to model = \"ssl_finetune\""),
        "{e}"
    );
    // A folder that is not a checkpoint.
    let e = compile(&format!(
        "{head}[sinks.m]\nkind = \"train\"\ninput = \"a16\"\nmodel = \"ssl_finetune\"\nencoder = \"{}\"\nout = \"o\"\n\
         cv = {{ by = \"speaker\", folds = 2 }}\n",
        dir.path().display()
    ));
    assert!(e.contains("config.json"), "{e}");
}

/// The shipped template on real data (EmoDB speakers 03, 08 and 09, one fold
/// each, to keep CI short) with a fixture encoder standing in for the user's
/// checkpoint: it fine-tunes, scores every held-out speaker and writes each
/// fold's encoder folder. Random weights: this proves the path, not an
/// accuracy. The RAVDESS template validates.
#[test]
fn the_finetune_templates_run_on_real_corpora() {
    let Some(corpora) =
        common::corpora_or_skip("the_finetune_templates_run_on_real_corpora", "emodb")
    else {
        return;
    };
    let wav = corpora.join("emodb/wav");
    let speakers: Vec<String> = ["03", "08", "09"]
        .iter()
        .map(|s| format!("{:?}", wav.join(format!("{s}*.wav")).display().to_string()))
        .collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let enc = format!(
        "sinks.model.encoder={:?}",
        encoder("wavlm").display().to_string()
    );
    if corpora.join("ravdess").is_dir() {
        let (ok, _, err) = common::sermo(&[
            "validate",
            root.join("pipelines/ravdess_cv_ssl_finetune.toml")
                .to_str()
                .unwrap(),
            "--set",
            &enc,
        ]);
        assert!(ok, "{err}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("loso");
    let (ok, _, err) = common::sermo(&[
        "run",
        "-q",
        root.join("pipelines/emodb_loso_ssl_finetune.toml")
            .to_str()
            .unwrap(),
        "--set",
        &enc,
        "--set",
        &format!("sources.emodb.paths=[{}]", speakers.join(", ")),
        "--set",
        &format!("sinks.model.out={:?}", out.display().to_string()),
        "--set",
        "sinks.model.cv={ by = \"speaker\", folds = 3 }",
        "--set",
        "sinks.model.epochs=1",
        "--set",
        "sinks.model.device=\"cpu\"",
        "--set",
        // The fixture encoder hops 20 samples, not 320: short cuts keep it quick.
        "sinks.model.params.max_s=1.0",
        "--set",
        "sinks.model.params.projector=16",
    ]);
    assert!(ok, "{err}");
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let text = metrics.to_string();
    assert!(text.contains("accuracy"), "{text}");
    for k in 0..3 {
        let fold = out.join(format!("fold-{k}"));
        assert!(
            fold.join("encoder/model.safetensors").is_file(),
            "{}",
            fold.display()
        );
        assert!(fold.join("model.mpk").is_file());
    }
}
