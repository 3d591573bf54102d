//! Parity of sermo's wav2vec2 / HuBERT / WavLM port with transformers 5.25.
//!
//! The fixtures (`tests/fixtures/encoders/`, made by `scripts/encoder_fixtures.py`
//! with torch and transformers; no torch is needed here) are small random-init
//! models whose every parameter was perturbed, saved in the spellings real
//! checkpoints use (safetensors and pytorch_model.bin, with and without the
//! task-model prefix, both weight-norm namings), with every hidden state
//! transformers computed for a padded batch and for each clip alone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use sermo::encoders::checkpoint::Checkpoint;
use sermo::encoders::{EncoderConfig, Pretrained, load};

type B = burn::backend::NdArray<f32>;

const TOL: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/encoders")
        .join(name)
}

/// A tensor of the expected-values file.
#[derive(Debug, Clone)]
struct Arr {
    shape: Vec<usize>,
    f: Vec<f32>,
    i: Vec<i64>,
}

fn expected(dir: &Path) -> HashMap<String, Arr> {
    let bytes = std::fs::read(dir.join("expected.safetensors")).expect("expected.safetensors");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut out = HashMap::new();
    for (name, v) in st.tensors() {
        let raw = v.data();
        let (f, i) = match v.dtype() {
            safetensors::Dtype::F32 => (
                raw.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                vec![],
            ),
            safetensors::Dtype::I64 => (
                vec![],
                raw.chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
            ),
            other => panic!("{name}: dtype {other:?}"),
        };
        out.insert(
            name,
            Arr {
                shape: v.shape().to_vec(),
                f,
                i,
            },
        );
    }
    out
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The batch forward of a fixture equals transformers' on every hidden state
/// (valid frames of each clip), and each clip alone through [`Pretrained::run`]
/// (input normalization included) equals transformers' unpadded run.
fn parity(name: &str) {
    let dir = fixture(name);
    let exp = expected(&dir);
    let device = Default::default();
    let config = EncoderConfig::from_folder(&dir).unwrap();
    let file = Checkpoint::weights_file(&dir).unwrap();
    let ck = Checkpoint::open(&file, config.family).unwrap();
    let model = load::build::<B>(&config, ck, &device).unwrap();

    let input = &exp["input_values"];
    let [b, l] = [input.shape[0], input.shape[1]];
    let x = Tensor::<B, 2>::from_data(TensorData::new(input.f.clone(), [b, l]), &device);
    let lengths: Vec<usize> = exp["lengths"].i.iter().map(|&n| n as usize).collect();
    let masked = exp.contains_key("attention_mask");
    assert_eq!(masked, config.attention_mask, "{name}: mask policy");
    let keep = vec![true; config.num_hidden_states()];
    let out = model.forward(x, &config, &lengths, masked, &keep);
    let frame_lengths: Vec<usize> = exp["frame_lengths"].i.iter().map(|&n| n as usize).collect();
    assert_eq!(out.frames, frame_lengths, "{name}: frame lengths");
    let h = config.hidden_size;
    for k in 0..config.num_hidden_states() {
        let want = &exp[&format!("hidden_states.{k}")];
        let got = out.hidden_states[k]
            .clone()
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(got.len(), want.f.len(), "{name}: hidden_states.{k} size");
        let f = want.shape[1];
        for (i, &n) in frame_lengths.iter().enumerate() {
            // Without a mask transformers computes every frame of the padded
            // batch as valid; with one, padded frames are not compared.
            let n = if masked { n } else { f };
            let range = i * f * h..(i * f + n) * h;
            let d = max_abs(&got[range.clone()], &want.f[range]);
            assert!(d <= TOL, "{name}: hidden_states.{k} clip {i}: max abs diff {d}");
        }
    }

    // Each clip alone, from raw audio, through the public API.
    let enc = Pretrained::<B>::load(&dir, None, &device).unwrap();
    let audio = &exp["audio"];
    let layers: Vec<usize> = (0..config.num_hidden_states()).collect();
    let clips: Vec<&[f32]> = lengths
        .iter()
        .enumerate()
        .map(|(i, &n)| &audio.f[i * l..i * l + n])
        .collect();
    let states = enc.run(&clips, &layers).unwrap();
    for (i, s) in states.iter().enumerate() {
        for &k in &layers {
            let want = &exp[&format!("single.{i}.hidden_states.{k}")];
            assert_eq!(s.frames, want.shape[1], "{name}: clip {i} frames");
            let d = max_abs(&s.layers[k], &want.f);
            assert!(d <= TOL, "{name}: single clip {i} hidden_states.{k}: max abs diff {d}");
        }
    }
}

#[test]
fn wav2vec2_group_norm_post_ln_safetensors_with_prefix_equals_transformers() {
    parity("wav2vec2_group");
}

#[test]
fn wav2vec2_layer_norm_pre_ln_bin_old_weight_norm_equals_transformers() {
    parity("wav2vec2_layer");
}

#[test]
fn hubert_equals_transformers() {
    parity("hubert");
}

#[test]
fn wavlm_relative_position_bias_equals_transformers() {
    parity("wavlm");
}
