//! The `embed` stage end to end on the demo clips, with the small random-init
//! encoders of `tests/fixtures/encoders/` (no pretrained checkpoint can be
//! downloaded here, so no accuracy is claimed): columns per layer, pooling,
//! the recorded identity, equality with the encoder run directly, quarantine of
//! clips out of bounds, and validation.

mod common;

use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float32Type};
use arrow::record_batch::RecordBatch;
use sermo::config::PipelineFile;
use sermo::encoders::Pretrained;
use sermo::encoders::embed::{Pooling, settings_of};
use sermo::engine::{Metrics, RunOptions};
use sermo::registry::Registry;

fn encoder(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/encoders")
        .join(name)
}

fn pipeline(resample: bool, embed: &str) -> String {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/audio");
    let (stage, input) = if resample {
        (
            "[stages.r]\nkind = \"resample\"\ninput = \"a\"\nrate = 16000\n",
            "r",
        )
    } else {
        ("", "a")
    };
    format!(
        "[sources.s]\nkind = \"files\"\npaths = [\"{0}/emodb/*.wav\"]\nlabels = \"emodb\"\n\
         [sources.rv]\nkind = \"files\"\npaths = [\"{0}/ravdess/*.flac\"]\nlabels = \"ravdess\"\n\
         [stages.a]\nkind = \"decode\"\ninputs = [\"s\", \"rv\"]\nchannels = \"mix\"\n{stage}\
         [stages.e]\nkind = \"embed\"\ninput = \"{input}\"\n{embed}\n\
         [sinks.t]\nkind = \"parquet\"\ninput = \"e\"\npath = \"out\"\n\
         [sinks.audio]\nkind = \"parquet\"\ninput = \"{input}\"\npath = \"audio\"\n",
        demo.display(),
    )
}

async fn run(text: &str, dir: &Path) -> (Vec<RecordBatch>, Vec<RecordBatch>, Metrics) {
    let m = Metrics::default();
    let plan = PipelineFile::parse(text, dir, &[])
        .and_then(|f| f.compile(&Registry::builtin()))
        .unwrap_or_else(|e| panic!("{e}"));
    plan.run(RunOptions {
        metrics: m.clone(),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    (
        common::read_parts(&dir.join("out")),
        common::read_parts(&dir.join("audio")),
        m,
    )
}

fn compile_error(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    match PipelineFile::parse(text, dir.path(), &[]).and_then(|f| f.compile(&Registry::builtin())) {
        Ok(_) => panic!("compiled"),
        Err(e) => e.to_string(),
    }
}

/// Rows by clip id: the values of `column` per row.
fn by_clip(batches: &[RecordBatch], column: &str) -> Vec<(String, Vec<f32>, usize)> {
    let mut rows = Vec::new();
    for b in batches {
        let ids = b.column_by_name("clip_id").unwrap().as_string::<i32>();
        let c = b.column_by_name(column).unwrap();
        for i in 0..b.num_rows() {
            let (values, frames) = match c.data_type() {
                DataType::FixedSizeList(_, _) => {
                    let v = c.as_fixed_size_list().value(i);
                    (v.as_primitive::<Float32Type>().values().to_vec(), 1)
                }
                DataType::List(f) if matches!(f.data_type(), DataType::Float32) => {
                    let l = c.as_list::<i32>().value(i);
                    (l.as_primitive::<Float32Type>().values().to_vec(), 1)
                }
                DataType::List(_) => {
                    let l = c.as_list::<i32>().value(i);
                    let l = l.as_fixed_size_list();
                    (
                        l.values().as_primitive::<Float32Type>().values().to_vec(),
                        l.len(),
                    )
                }
                other => panic!("{other}"),
            };
            rows.push((ids.value(i).to_string(), values, frames));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mean_pooled_layers_equal_the_encoder_run_directly() {
    let tmp = tempfile::tempdir().unwrap();
    let enc = encoder("wav2vec2_layer");
    let text = pipeline(
        true,
        &format!(
            "encoder = \"{}\"\nlayers = [0, 2]\npooling = \"mean\"\nbatch_size = 3\n",
            enc.display()
        ),
    );
    let (batches, audio, m) = run(&text, tmp.path()).await;
    assert_eq!(m.sum_matching("quarantine.", ""), 0);
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 16);
    let schema = batches[0].schema();
    for name in ["layer_0", "layer_2"] {
        match schema.field_with_name(name).unwrap().data_type() {
            DataType::FixedSizeList(_, 32) => {}
            other => panic!("{name}: {other}"),
        }
    }
    assert!(schema.field_with_name("layer_1").is_err());
    let part = common::read_part_files(&tmp.path().join("out")).remove(0).0;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(part).unwrap(),
    )
    .unwrap();
    let settings = settings_of(builder.schema()).expect("sermo.encoder metadata");
    assert_eq!(settings.layers, vec![0, 2]);
    assert_eq!(settings.pooling, Pooling::Mean);
    assert_eq!(settings.encoder.model_type, "wav2vec2");
    assert_eq!(settings.encoder.hidden_size, 32);
    assert!(settings.encoder.normalize);

    // The same clips through the encoder directly, one at a time, mean-pooled.
    let direct =
        Pretrained::<burn::backend::NdArray<f32>>::load(&enc, None, &Default::default()).unwrap();
    let clips = common::clip_samples(&audio);
    let got = by_clip(&batches, "layer_2");
    assert_eq!(got.len(), clips.len());
    for ((id, y), (gid, v, _)) in clips.iter().zip(&got) {
        assert_eq!(id, gid);
        let s = direct.run(&[y.as_slice()], &[2]).unwrap().remove(0);
        let h = 32;
        let mut mean = vec![0.0f64; h];
        for frame in s.layers[0].chunks_exact(h) {
            for (m, v) in mean.iter_mut().zip(frame) {
                *m += *v as f64 / s.frames as f64;
            }
        }
        let diff = mean
            .iter()
            .zip(v)
            .map(|(a, b)| (*a as f32 - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "{id}: {diff}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_frame_states_and_clips_out_of_bounds_are_quarantined() {
    let tmp = tempfile::tempdir().unwrap();
    let enc = encoder("wavlm");
    // max_s = 3: the RAVDESS demo clips (3.3 to 3.8 s) are quarantined as
    // too_long, the EmoDB ones (2 s) are embedded.
    let text = pipeline(
        true,
        &format!(
            "encoder = \"{}\"\nlayers = \"last\"\nmax_s = 3.0\n",
            enc.display()
        ),
    );
    let (batches, audio, m) = run(&text, tmp.path()).await;
    let clips = common::clip_samples(&audio);
    let long = clips.iter().filter(|(_, y)| y.len() > 48_000).count();
    assert!(
        long > 0 && long < clips.len(),
        "the demo clips straddle 3 s"
    );
    // Whole clips refused by a per-row stage: counted as refused rows.
    assert_eq!(
        m.sum_matching("quarantine.", "") + m.sum_matching("refused_rows.", ""),
        long as u64
    );
    let got = by_clip(&batches, "layer_2");
    assert_eq!(
        got.len() + long,
        16,
        "a clip is in the table or quarantined"
    );
    let config = sermo::encoders::EncoderConfig::from_folder(&enc).unwrap();
    for (id, v, frames) in &got {
        let y = &clips.iter().find(|(c, _)| c == id).unwrap().1;
        assert_eq!(*frames, config.frames(y.len()), "{id}");
        assert_eq!(v.len(), frames * 32);
    }
    let q = std::fs::File::open(tmp.path().join("out/_quarantine.parquet")).unwrap();
    let q: Vec<RecordBatch> =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(q)
            .unwrap()
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect();
    let reasons: Vec<String> = q
        .iter()
        .flat_map(|b| {
            let r = b
                .column_by_name("reason")
                .unwrap()
                .as_string::<i32>()
                .clone();
            (0..r.len()).map(move |i| r.value(i).to_string())
        })
        .collect();
    assert_eq!(reasons.len(), long);
    assert!(reasons.iter().all(|r| r == "too_long"), "{reasons:?}");
}

#[test]
fn validation_names_the_fix() {
    let enc = encoder("wav2vec2_group");
    let e = compile_error(&pipeline(
        false,
        &format!("encoder = \"{}\"\n", enc.display()),
    ));
    assert!(e.contains("add a resample stage with rate = 16000"), "{e}");
    let e = compile_error(&pipeline(
        true,
        &format!("encoder = \"{}\"\nlayers = [3]\n", enc.display()),
    ));
    assert!(e.contains("layer 3 does not exist"), "{e}");
    let e = compile_error(&pipeline(true, "encoder = \"no/such/folder\"\n"));
    assert!(
        e.contains("checkpoint folder")
            && e.contains("no/such/folder")
            && e.contains("does not exist"),
        "{e}"
    );
    let e = compile_error(&pipeline(
        true,
        &format!("encoder = \"{}\"\npooling = \"max\"\n", enc.display()),
    ));
    assert!(e.contains("pooling"), "{e}");
    let e = compile_error(&pipeline(
        true,
        &format!("encoder = \"{}\"\nmax_s = 0\n", enc.display()),
    ));
    assert!(e.contains("max_s"), "{e}");
}

#[test]
fn a_broken_checkpoint_is_refused_with_a_sentence() {
    let src = encoder("wav2vec2_group");
    let tmp = tempfile::tempdir().unwrap();
    for f in [
        "config.json",
        "preprocessor_config.json",
        "model.safetensors",
    ] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let device = Default::default();
    let load = |dir: &Path| {
        Pretrained::<burn::backend::NdArray<f32>>::load(dir, None, &device)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    // A config whose size disagrees with the weights.
    let cfg = std::fs::read_to_string(src.join("config.json")).unwrap();
    std::fs::write(
        tmp.path().join("config.json"),
        cfg.replace("\"intermediate_size\": 64", "\"intermediate_size\": 65"),
    )
    .unwrap();
    let e = load(tmp.path());
    assert!(
        e.contains("intermediate_dense.weight") && e.contains("[64, 32]"),
        "{e}"
    );
    // An unknown model type.
    std::fs::write(
        tmp.path().join("config.json"),
        cfg.replace(
            "\"model_type\": \"wav2vec2\"",
            "\"model_type\": \"whisper\"",
        ),
    )
    .unwrap();
    let e = load(tmp.path());
    assert!(e.contains("model_type `whisper`"), "{e}");
    // Truncated weights.
    std::fs::write(tmp.path().join("config.json"), &cfg).unwrap();
    let w = std::fs::read(src.join("model.safetensors")).unwrap();
    std::fs::write(tmp.path().join("model.safetensors"), &w[..w.len() / 2]).unwrap();
    let e = load(tmp.path());
    assert!(
        e.contains("model.safetensors") && e.contains("not a safetensors file"),
        "{e}"
    );
    // No weights at all.
    std::fs::remove_file(tmp.path().join("model.safetensors")).unwrap();
    let e = load(tmp.path());
    assert!(
        e.contains("neither model.safetensors nor pytorch_model.bin"),
        "{e}"
    );
    // A missing tensor.
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "wav2vec2.encoder.layers.1.final_layer_norm.bias")
        .collect();
    safetensors::tensor::serialize_to_file(kept, None, &tmp.path().join("model.safetensors"))
        .unwrap();
    let e = load(tmp.path());
    assert!(
        e.contains("has no tensor `encoder.layers.1.final_layer_norm.bias`"),
        "{e}"
    );
}

/// `embed` (per frame, every layer) → Parquet → `train` with `model =
/// "ssl_head"` → `sermo eval` on the table: the pipeline trains and scores end
/// to end. The encoder is a random-init fixture, so no accuracy is claimed.
#[test]
fn embed_then_ssl_head_trains_and_scores() {
    let dir = tempfile::tempdir().unwrap();
    let glob = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/audio/emodb/*.wav");
    let enc = encoder("hubert");
    let p = dir.path().join("embed.toml");
    std::fs::write(
        &p,
        format!(
            "{}[stages.e]\nkind = \"embed\"\ninput = \"a16\"\nencoder = \"{}\"\n\
             [sinks.t]\nkind = \"parquet\"\ninput = \"e\"\npath = \"feats\"\n",
            common::audio_head(&glob.display().to_string()),
            enc.display()
        ),
    )
    .unwrap();
    let (ok, _, err) = common::sermo(&["run", "-q", p.to_str().unwrap()]);
    assert!(ok, "{err}");
    let model = common::train_demo(
        dir.path(),
        "m",
        "model = \"ssl_head\"\nfeatures = [\"layer_0\", \"layer_1\", \"layer_2\"]\nepochs = 3\nbatch_size = 4\n\
         split = { by = \"speaker\", test = [\"08\"] }\nseed = 5\n[sinks.m.params]\nprojector = 8\n",
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    let text = config.to_string();
    assert!(text.contains("\"ssl_head\""), "{text}");
    assert!(text.contains("\"layers\":3"), "{text}");
    let (ok, out, err) = common::sermo(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--table",
        dir.path().join("feats").to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("accuracy"), "{out}");

    // The model scores raw audio: the `infer` stage runs the recorded encoder
    // (its hashes checked) and gives the probabilities it gives the stored table.
    let infer = |name: &str, head: String, input: &str| {
        let p = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &p,
            format!(
                "{head}[stages.p]\nkind = \"infer\"\ninput = \"{input}\"\nmodel = \"{}\"\n\
                 [sinks.out]\nkind = \"parquet\"\ninput = \"p\"\npath = \"{name}\"\n",
                model.display()
            ),
        )
        .unwrap();
        let (ok, _, err) = common::sermo(&["run", "-q", p.to_str().unwrap()]);
        assert!(ok, "{name}: {err}");
        by_clip(&common::read_parts(&dir.path().join(name)), "probs")
    };
    let from_audio = infer(
        "pred_audio",
        common::audio_head(&glob.display().to_string()),
        "a16",
    );
    let from_table = infer(
        "pred_table",
        "[pipeline]\nname = \"t\"\n[sources.f]\nkind = \"parquet\"\npath = \"feats\"\n".into(),
        "f",
    );
    assert_eq!(from_audio.len(), 12);
    assert_eq!(from_audio.len(), from_table.len());
    for ((a, pa, _), (b, pb, _)) in from_audio.iter().zip(&from_table) {
        assert_eq!(a, b);
        let d = pa
            .iter()
            .zip(pb)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-5, "{a}: {d}");
    }
    // `sermo infer` on a file.
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
}

/// The shipped templates on real data (EmoDB speakers 03, 08 and 09, to keep
/// CI short): `emodb_embed.toml` with a fixture encoder standing in for the
/// user's checkpoint, then `emodb_loso_ssl_head.toml` (one fold per speaker)
/// on the table it wrote. Random
/// weights: this proves the path, not an accuracy. `ravdess_embed.toml`
/// validates.
#[test]
fn the_templates_embed_and_train_on_emodb() {
    let Some(corpora) = common::corpora_or_skip("the_templates_embed_and_train_on_emodb", "emodb")
    else {
        return;
    };
    let wav = corpora.join("emodb/wav");
    let speakers: Vec<String> = ["03", "08", "09"]
        .iter()
        .map(|s| format!("{:?}", wav.join(format!("{s}*.wav")).display().to_string()))
        .collect();
    let clips = speakers
        .iter()
        .map(|g| glob::glob(g.trim_matches('"')).unwrap().count())
        .sum::<usize>();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let enc = encoder("wavlm");
    let table = tmp.path().join("emodb-embed");
    let run = |args: &[&str]| {
        let (ok, out, err) = common::sermo(args);
        assert!(ok, "{args:?}: {err}");
        (out, err)
    };
    let (ok, _, err) = common::sermo(&[
        "validate",
        root.join("pipelines/ravdess_embed.toml").to_str().unwrap(),
        "--set",
        &format!("stages.ssl.encoder={:?}", enc.display().to_string()),
    ]);
    if common::corpora().is_some_and(|c| c.join("ravdess").is_dir()) {
        assert!(ok, "{err}");
    }
    run(&[
        "run",
        "-q",
        root.join("pipelines/emodb_embed.toml").to_str().unwrap(),
        "--set",
        &format!("stages.ssl.encoder={:?}", enc.display().to_string()),
        "--set",
        "stages.ssl.device=\"cpu\"",
        "--set",
        &format!("sources.emodb.paths=[{}]", speakers.join(", ")),
        "--set",
        &format!("sinks.table.path={:?}", table.display().to_string()),
    ]);
    let rows: usize = common::read_parts(&table)
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert!(clips > 100, "{clips}");
    assert_eq!(rows, clips);
    let out = tmp.path().join("loso");
    run(&[
        "run",
        "-q",
        root.join("pipelines/emodb_loso_ssl_head.toml")
            .to_str()
            .unwrap(),
        "--set",
        &format!("sources.feats.path={:?}", table.display().to_string()),
        "--set",
        &format!("sinks.model.out={:?}", out.display().to_string()),
        "--set",
        // The fixture encoder has 2 layers (hidden states 0..=2), not 12.
        "sinks.model.features=[\"layer_0\", \"layer_1\", \"layer_2\"]",
        "--set",
        "sinks.model.cv={ by = \"speaker\", folds = 3 }",
        "--set",
        "sinks.model.epochs=5",
        "--set",
        "sinks.model.params.projector=16",
    ]);
    let metrics = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    assert!(metrics.contains("accuracy"), "{metrics}");
}
