//! Parity of sermo's wav2vec2 / HuBERT / WavLM port with transformers 5.25.
//!
//! The fixtures (`tests/fixtures/encoders/`, made by `scripts/encoder_fixtures.py`
//! with torch and transformers; no torch is needed here) are small random-init
//! models whose every parameter was perturbed, saved in the spellings real
//! checkpoints use (safetensors and pytorch_model.bin, with and without the
//! task-model prefix, both weight-norm namings), with every hidden state
//! transformers computed for a padded batch and for each clip alone.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use sermo::encoders::checkpoint::Checkpoint;
use sermo::encoders::cpu::CpuEncoder;
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
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The batch forward of a fixture equals transformers' on every hidden state
/// (valid frames of each clip), and each clip alone through [`Pretrained::run`]
/// (input normalization included) equals transformers' unpadded run.
fn parity(name: &str) {
    parity_on::<B>(name, &Default::default(), TOL);
}

/// [`parity`] on any backend, to `tol`; returns the largest difference seen.
fn parity_on<Bk: Backend>(name: &str, device: &Bk::Device, tol: f32) -> f32 {
    let dir = fixture(name);
    let exp = expected(&dir);
    let config = EncoderConfig::from_folder(&dir).unwrap();
    let file = Checkpoint::weights_file(&dir).unwrap();
    let ck = Checkpoint::open(&file, config.family).unwrap();
    let model = load::build::<Bk>(&config, ck, device).unwrap();
    let mut worst = 0.0f32;

    let input = &exp["input_values"];
    let [b, l] = [input.shape[0], input.shape[1]];
    let x = Tensor::<Bk, 2>::from_data(TensorData::new(input.f.clone(), [b, l]), device);
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
            .convert::<f32>()
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
            worst = worst.max(d);
            assert!(
                d <= tol,
                "{name}: hidden_states.{k} clip {i}: max abs diff {d}"
            );
        }
    }

    // The same batch through the CPU inference pass (src/encoders/cpu.rs).
    let fast =
        CpuEncoder::from_model(&model).forward(&input.f, b, &config, &lengths, masked, &keep);
    assert_eq!(fast.valid, frame_lengths, "{name}: CPU pass frame lengths");
    for k in 0..config.num_hidden_states() {
        let want = &exp[&format!("hidden_states.{k}")];
        let got = fast.hidden_states[k].as_ref().unwrap();
        assert_eq!(
            got.len(),
            want.f.len(),
            "{name}: CPU pass hidden_states.{k} size"
        );
        let f = want.shape[1];
        for (i, &n) in frame_lengths.iter().enumerate() {
            let n = if masked { n } else { f };
            let range = i * f * h..(i * f + n) * h;
            let d = max_abs(&got[range.clone()], &want.f[range]);
            worst = worst.max(d);
            assert!(
                d <= tol,
                "{name}: CPU pass hidden_states.{k} clip {i}: max abs diff {d}"
            );
        }
    }

    // Each clip alone, from raw audio, through the public API: on the CPU
    // backend with the CPU pass and with the burn modules.
    let mut enc = Pretrained::<Bk>::load(&dir, None, device).unwrap();
    let mut runs = vec![("", enc_run(&enc, &exp, &lengths, l, &config))];
    if enc.cpu.is_some() {
        enc.cpu = None;
        runs.push((" (burn modules)", enc_run(&enc, &exp, &lengths, l, &config)));
    }
    for (how, states) in runs {
        for (i, s) in states.iter().enumerate() {
            for k in 0..config.num_hidden_states() {
                let want = &exp[&format!("single.{i}.hidden_states.{k}")];
                assert_eq!(s.frames, want.shape[1], "{name}: clip {i} frames{how}");
                let d = max_abs(&s.layers[k], &want.f);
                worst = worst.max(d);
                assert!(
                    d <= tol,
                    "{name}: single clip {i} hidden_states.{k}{how}: max abs diff {d}"
                );
            }
        }
    }
    eprintln!("{name}: max abs diff {worst:.2e} (tolerance {tol:.0e})");
    worst
}

/// Every clip of a fixture alone through [`Pretrained::run`], every layer.
fn enc_run<Bk: Backend>(
    enc: &Pretrained<Bk>,
    exp: &HashMap<String, Arr>,
    lengths: &[usize],
    l: usize,
    config: &EncoderConfig,
) -> Vec<sermo::encoders::ClipStates> {
    let audio = &exp["audio"];
    let layers: Vec<usize> = (0..config.num_hidden_states()).collect();
    let clips: Vec<&[f32]> = lengths
        .iter()
        .enumerate()
        .map(|(i, &n)| &audio.f[i * l..i * l + n])
        .collect();
    enc.run(&clips, &layers).unwrap()
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

/// The counter-based generator of `scripts/encoder_fixtures.py` (its
/// `positions.json` spells it out): every tensor's values from its name.
fn generated(name: &str, shape: &[usize]) -> Vec<f32> {
    fn splitmix64(x: u64) -> u64 {
        let x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name.as_bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let n: usize = shape.iter().product();
    let one_d = shape.len() == 1;
    let is_weight = ["weight", "original0", "weight_g"]
        .iter()
        .any(|s| name.ends_with(s));
    let fan_in = n as f64 / shape[0] as f64;
    (0..n)
        .map(|i| {
            let u = splitmix64(h.wrapping_add(i as u64));
            let s = 2.0 * ((u >> 40) as f64 / 16_777_216.0) - 1.0;
            let v = if one_d && is_weight {
                1.0 + 0.1 * s
            } else if one_d {
                0.1 * s
            } else {
                s / fan_in.sqrt()
            };
            v as f32
        })
        .collect()
}

/// A base-size wav2vec2 (facebook/wav2vec2-base's architecture: 95 M
/// parameters, 12 layers) with generated weights, written as transformers 5
/// saves it, equals transformers at 4 × 4 positions of hidden states 0, 1, 6
/// and 12 and in the mean and mean square of each.
#[test]
fn base_size_wav2vec2_equals_transformers_at_chosen_positions() {
    let src = fixture("wav2vec2_base_prng");
    let pos: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("positions.json")).unwrap())
            .unwrap();
    let config = EncoderConfig::from_folder(&src).unwrap();
    let h = config.hidden_size;
    let mut names: Vec<(String, Vec<usize>)> = Vec::new();
    let mut c_in = 1;
    for (i, &(c, k, _)) in config.conv_layers.iter().enumerate() {
        let p = format!("feature_extractor.conv_layers.{i}");
        names.push((format!("{p}.conv.weight"), vec![c, c_in, k]));
        if i == 0 {
            names.push((format!("{p}.layer_norm.weight"), vec![c]));
            names.push((format!("{p}.layer_norm.bias"), vec![c]));
        }
        c_in = c;
    }
    names.push(("feature_projection.layer_norm.weight".into(), vec![c_in]));
    names.push(("feature_projection.layer_norm.bias".into(), vec![c_in]));
    names.push(("feature_projection.projection.weight".into(), vec![h, c_in]));
    names.push(("feature_projection.projection.bias".into(), vec![h]));
    let pc = "encoder.pos_conv_embed.conv";
    names.push((format!("{pc}.bias"), vec![h]));
    names.push((
        format!("{pc}.parametrizations.weight.original0"),
        vec![1, 1, config.pos_kernel],
    ));
    names.push((
        format!("{pc}.parametrizations.weight.original1"),
        vec![h, h / config.pos_groups, config.pos_kernel],
    ));
    names.push(("encoder.layer_norm.weight".into(), vec![h]));
    names.push(("encoder.layer_norm.bias".into(), vec![h]));
    let ffn = config.intermediate_size;
    for n in 0..config.num_layers {
        let p = format!("encoder.layers.{n}");
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            names.push((format!("{p}.attention.{proj}.weight"), vec![h, h]));
            names.push((format!("{p}.attention.{proj}.bias"), vec![h]));
        }
        for ln in ["layer_norm", "final_layer_norm"] {
            names.push((format!("{p}.{ln}.weight"), vec![h]));
            names.push((format!("{p}.{ln}.bias"), vec![h]));
        }
        names.push((
            format!("{p}.feed_forward.intermediate_dense.weight"),
            vec![ffn, h],
        ));
        names.push((
            format!("{p}.feed_forward.intermediate_dense.bias"),
            vec![ffn],
        ));
        names.push((
            format!("{p}.feed_forward.output_dense.weight"),
            vec![h, ffn],
        ));
        names.push((format!("{p}.feed_forward.output_dense.bias"), vec![h]));
    }
    let count: usize = names.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
    // The checkpoint's tensors less `masked_spec_embed` (unused by the encoder).
    assert_eq!(count + h, pos["parameter_count"].as_u64().unwrap() as usize);

    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "preprocessor_config.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = names
        .iter()
        .map(|(n, s)| {
            let v = generated(n, s);
            (
                n.clone(),
                s.clone(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = data
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::tensor::serialize_to_file(views, None, &dir.path().join("model.safetensors"))
        .unwrap();
    drop(data);

    let device = Default::default();
    let enc = Pretrained::<B>::load(dir.path(), None, &device).unwrap();
    let audio: Vec<f32> = (0..16_000)
        .map(|i| {
            let t = i as f64 / 16_000.0;
            (0.5 * (2.0 * std::f64::consts::PI * 220.0 * t).sin()
                + 0.25 * (2.0 * std::f64::consts::PI * 1234.5 * t).sin()) as f32
        })
        .collect();
    let layers = [0usize, 1, 6, 12];
    let states = enc.run(&[&audio], &layers).unwrap();
    assert_eq!(states[0].frames, 49);
    let frames: Vec<usize> = serde_json::from_value(pos["frames"].clone()).unwrap();
    let dims: Vec<usize> = serde_json::from_value(pos["dims"].clone()).unwrap();
    for (j, &k) in layers.iter().enumerate() {
        let want = &pos["hidden_states"][k.to_string()];
        let got = &states[0].layers[j];
        let mut worst = 0.0f64;
        for (a, &t) in frames.iter().enumerate() {
            for (b, &d) in dims.iter().enumerate() {
                let w = want["values"][a][b].as_f64().unwrap();
                worst = worst.max((got[t * h + d] as f64 - w).abs());
            }
        }
        let n = got.len() as f64;
        let mean = got.iter().map(|&v| v as f64).sum::<f64>() / n;
        let mean_sq = got.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n;
        eprintln!("base wav2vec2 hidden_states.{k}: max abs diff at the positions {worst:.2e}");
        assert!(worst <= 1e-4, "hidden_states.{k}: max abs diff {worst}");
        assert!(
            (mean - want["mean"].as_f64().unwrap()).abs() <= 1e-5,
            "hidden_states.{k} mean {mean}"
        );
        assert!(
            (mean_sq - want["mean_sq"].as_f64().unwrap()).abs() <= 1e-4,
            "hidden_states.{k} mean square {mean_sq}"
        );
    }
}

/// The `ssl_head` model equals transformers' `ForSequenceClassification` head
/// with `use_weighted_layer_sum` (softmax layer weights, projector, masked mean
/// over valid frames, classifier) on the fixture's head weights and hidden
/// states.
#[test]
fn ssl_head_equals_the_transformers_sequence_classification_head() {
    use burn::module::Param;
    use burn::nn::{DropoutConfig, Linear};
    use sermo::train::model::SslHead;
    let exp = expected(&fixture("wav2vec2_layer"));
    let device = Default::default();
    let t1 = |k: &str| {
        let a = &exp[k];
        Param::from_tensor(Tensor::<B, 1>::from_data(
            TensorData::new(a.f.clone(), [a.shape[0]]),
            &device,
        ))
    };
    // PyTorch `[out, in]` → burn `[in, out]`.
    let linear = |k: &str| {
        let w = &exp[&format!("{k}.weight")];
        let (o, i) = (w.shape[0], w.shape[1]);
        let t =
            Tensor::<B, 2>::from_data(TensorData::new(w.f.clone(), [o, i]), &device).transpose();
        Linear {
            weight: Param::from_tensor(t),
            bias: Some(t1(&format!("{k}.bias"))),
        }
    };
    let head = SslHead {
        layer_weights: t1("head.layer_weights"),
        projector: linear("head.projector"),
        classifier: linear("head.classifier"),
        dropout: DropoutConfig::new(0.0).init(),
        layers: 3,
    };
    let [b, f, h] = [2, exp["hidden_states.0"].shape[1], 32];
    let mut x = vec![0.0f32; b * f * 3 * h];
    for k in 0..3 {
        let s = &exp[&format!("hidden_states.{k}")].f;
        for i in 0..b * f {
            x[(i * 3 + k) * h..(i * 3 + k + 1) * h].copy_from_slice(&s[i * h..(i + 1) * h]);
        }
    }
    let frames: Vec<usize> = exp["frame_lengths"].i.iter().map(|&n| n as usize).collect();
    let mask: Vec<f32> = frames
        .iter()
        .flat_map(|&n| (0..f).map(move |t| if t < n { 1.0 } else { 0.0 }))
        .collect();
    let x = Tensor::<B, 3>::from_data(TensorData::new(x, [b, f, 3 * h]), &device);
    let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, [b, f]), &device);
    // The train sink zeroes padded frames before any model.
    let x = x * mask.clone().unsqueeze_dim::<3>(2);
    let logits = head.forward(x, mask).into_data().to_vec::<f32>().unwrap();
    let d = max_abs(&logits, &exp["logits"].f);
    assert!(d <= TOL, "logits: max abs diff {d}");
}

/// The four fixtures on CUDA to 1e-3 (issue 24 item 5, issue 25 (d)), when this
/// machine has a usable GPU; skipped with a line saying why otherwise.
#[cfg(feature = "cuda")]
#[test]
fn fixtures_on_cuda_equal_transformers_when_a_gpu_is_present() {
    match sermo::train::device::probe_cuda() {
        Err(why) => common::skip(
            "fixtures_on_cuda_equal_transformers_when_a_gpu_is_present",
            &why,
        ),
        Ok(info) => {
            eprintln!("CUDA device 0: {}", info.name);
            let device = burn::backend::cuda::CudaDevice::new(0);
            for name in ["wav2vec2_group", "wav2vec2_layer", "hubert", "wavlm"] {
                parity_on::<burn::backend::Cuda<f32>>(name, &device, 1e-3);
            }
        }
    }
}

/// One fine-tuning step on a tiny model equals PyTorch's: transformers'
/// `ForSequenceClassification` with `use_weighted_layer_sum` in training mode
/// (dropouts 0, feature encoder frozen), labels [1, 3], mean cross-entropy. The
/// loss and the gradient of every trainable parameter (feature projection,
/// weight-normed position convolution as `g` and `v`, every transformer
/// parameter, WavLM's gates and bucket embedding, the head) agree to 1e-4.
fn gradient_parity(name: &str) {
    use burn::backend::Autodiff;
    use burn::module::Param;
    use burn::nn::{DropoutConfig, Linear};
    use sermo::train::model::SslHead;
    type Ad = Autodiff<B>;
    let dir = fixture(name);
    let exp = expected(&dir);
    let device = Default::default();
    let config = EncoderConfig::from_folder(&dir).unwrap();
    let file = Checkpoint::weights_file(&dir).unwrap();
    // The head's tensors from the same checkpoint.
    let mut ck = Checkpoint::open(&file, config.family).unwrap();
    let mut t1 = |k: &str, n: usize| {
        Param::from_tensor(Tensor::<Ad, 1>::from_data(
            TensorData::new(ck.take(k, &[n]).unwrap(), [n]),
            &device,
        ))
    };
    let (lw, pb, cb) = (
        t1("layer_weights", 3),
        t1("projector.bias", 16),
        t1("classifier.bias", 4),
    );
    let mut ck = Checkpoint::open(&file, config.family).unwrap();
    let mut linear = |k: &str, o: usize, i: usize, bias: Param<Tensor<Ad, 1>>| {
        let w = ck.take_transposed(&format!("{k}.weight"), &[o, i]).unwrap();
        Linear {
            weight: Param::from_tensor(Tensor::<Ad, 2>::from_data(
                TensorData::new(w, [i, o]),
                &device,
            )),
            bias: Some(bias),
        }
    };
    let head = SslHead {
        layer_weights: lw,
        projector: linear("projector", 16, 32, pb),
        classifier: linear("classifier", 4, 16, cb),
        dropout: DropoutConfig::new(0.0).init(),
        layers: 3,
    };
    let ck = Checkpoint::open(&file, config.family).unwrap();
    let model = load::build::<Ad>(&config, ck, &device).unwrap();

    let input = &exp["input_values"];
    let [b, l] = [input.shape[0], input.shape[1]];
    let x = Tensor::<Ad, 2>::from_data(TensorData::new(input.f.clone(), [b, l]), &device);
    let lengths: Vec<usize> = exp["lengths"].i.iter().map(|&n| n as usize).collect();
    let masked = config.attention_mask;
    // The feature encoder is frozen: its output carries no gradient.
    let feats = model.project(model.conv_features(x).detach());
    let out = model.forward_features(feats, &config, &lengths, masked, &[true; 3]);
    let f = out.hidden_states[0].as_ref().unwrap().dims()[1];
    let stacked: Vec<Tensor<Ad, 4>> = out
        .hidden_states
        .iter()
        .map(|h| h.clone().unwrap().unsqueeze_dim::<4>(2))
        .collect();
    let x = Tensor::cat(stacked, 2).reshape([b, f, 3 * 32]);
    let mask: Vec<f32> = out
        .frames
        .iter()
        .flat_map(|&n| (0..f).map(move |t| if !masked || t < n { 1.0 } else { 0.0 }))
        .collect();
    let mask = Tensor::<Ad, 2>::from_data(TensorData::new(mask, [b, f]), &device);
    let x = x * mask.clone().unsqueeze_dim::<3>(2);
    let logits = head.forward(x, mask);
    let labels = Tensor::<Ad, 2>::from_data(
        TensorData::new(vec![0.0f32, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], [2, 4]),
        &device,
    );
    let loss = -(burn::tensor::activation::log_softmax(logits, 1) * labels)
        .sum()
        .div_scalar(2.0);
    let lv = loss.clone().into_data().to_vec::<f32>().unwrap()[0];
    assert!(
        (lv - exp["train.loss"].f[0]).abs() <= TOL,
        "{name}: loss {lv} vs {}",
        exp["train.loss"].f[0]
    );
    let grads = loss.backward();

    let g1 =
        |p: &Param<Tensor<Ad, 1>>| p.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
    let g2 =
        |p: &Param<Tensor<Ad, 2>>| p.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
    let g3 =
        |p: &Param<Tensor<Ad, 3>>| p.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
    // A `[in, out]` gradient in PyTorch's `[out, in]` order.
    let gt = |p: &Param<Tensor<Ad, 2>>| {
        let g = p.grad(&grads).unwrap();
        g.transpose().into_data().to_vec::<f32>().unwrap()
    };
    let norm = |n: &sermo::encoders::model::Norm<Ad>, w: &str| {
        if w == "weight" {
            g1(&n.gamma)
        } else {
            g1(&n.beta)
        }
    };
    let dense = |d: &sermo::encoders::model::Dense<Ad>, w: &str| {
        if w == "weight" {
            gt(&d.weight)
        } else {
            g1(d.bias.as_ref().unwrap())
        }
    };
    let linear_g = |d: &Linear<Ad>, w: &str| {
        if w == "weight" {
            gt(&d.weight)
        } else {
            g1(d.bias.as_ref().unwrap())
        }
    };
    let mut checked = 0;
    let mut worst = 0.0f32;
    for (key, want) in exp.iter().filter(|(k, _)| k.starts_with("grad.")) {
        let raw = &key["grad.".len()..];
        let n = sermo::encoders::checkpoint::normalize(raw, config.family);
        if n == "masked_spec_embed" {
            continue; // unused in training mode without SpecAugment: zero in both
        }
        let parts: Vec<&str> = n.split('.').collect();
        let last = *parts.last().unwrap();
        let got: Vec<f32> = match parts.as_slice() {
            ["layer_weights"] => g1(&head.layer_weights),
            ["projector", w] => linear_g(&head.projector, w),
            ["classifier", w] => linear_g(&head.classifier, w),
            ["feature_projection", "layer_norm", w] => {
                norm(model.feat_proj_norm.as_ref().unwrap(), w)
            }
            ["feature_projection", "projection", w] => dense(&model.projection, w),
            ["encoder", "pos_conv_embed", "conv", "weight_g"] => g1(&model.pos_conv.weight_g),
            ["encoder", "pos_conv_embed", "conv", "weight_v"] => g3(&model.pos_conv.weight_v),
            ["encoder", "pos_conv_embed", "conv", "bias"] => g1(&model.pos_conv.bias),
            ["encoder", "layer_norm", w] => norm(&model.layer_norm, w),
            ["encoder", "layers", i, rest @ ..] => {
                let layer = &model.layers[i.parse::<usize>().unwrap()];
                match rest {
                    ["attention", "q_proj", w] => dense(&layer.attention.q, w),
                    ["attention", "k_proj", w] => dense(&layer.attention.k, w),
                    ["attention", "v_proj", w] => dense(&layer.attention.v, w),
                    ["attention", "out_proj", w] => dense(&layer.attention.out, w),
                    ["attention", "gru_rel_pos_const"] => {
                        g1(&layer.attention.gate.as_ref().unwrap().constant)
                    }
                    ["attention", "gru_rel_pos_linear", w] => {
                        dense(&layer.attention.gate.as_ref().unwrap().linear, w)
                    }
                    ["attention", "rel_attn_embed", "weight"] => {
                        g2(&model.relative.as_ref().unwrap().embedding)
                    }
                    ["layer_norm", w] => norm(&layer.layer_norm, w),
                    ["final_layer_norm", w] => norm(&layer.final_layer_norm, w),
                    ["feed_forward", "intermediate_dense", w] => {
                        dense(&layer.feed_forward.intermediate, w)
                    }
                    ["feed_forward", "output_dense", w] => dense(&layer.feed_forward.output, w),
                    other => panic!("{name}: unmapped gradient {raw} ({other:?})"),
                }
            }
            _ => panic!("{name}: unmapped gradient {raw} ({last})"),
        };
        let d = max_abs(&got, &want.f);
        worst = worst.max(d);
        assert!(d <= TOL, "{name}: gradient of {raw}: max abs diff {d}");
        checked += 1;
    }
    eprintln!("{name}: loss {lv}, {checked} gradients, max abs diff {worst:.2e}");
    assert!(checked > 40, "{name}: only {checked} gradients compared");
}

#[test]
fn a_fine_tuning_step_of_wav2vec2_equals_pytorch() {
    gradient_parity("wav2vec2_group");
}

#[test]
fn a_fine_tuning_step_of_wavlm_equals_pytorch() {
    gradient_parity("wavlm");
}

/// `ssl_finetune`'s model (encoder, weighted layer sum, SUPERB head) on the
/// fixture's raw padded audio, with transformers' head weights, gives
/// transformers' `ForSequenceClassification` logits: the in-model input
/// normalization, the masking and the head wiring together.
#[test]
fn ssl_finetune_model_equals_transformers_sequence_classification() {
    use burn::module::Param;
    use burn::nn::Linear;
    use sermo::train::finetune::{EncoderSpec, SslFinetuneParams, pretrained};
    let dir = fixture("wav2vec2_layer");
    let exp = expected(&dir);
    let device = Default::default();
    let spec = EncoderSpec::read(&dir, None).unwrap();
    let params = SslFinetuneParams {
        projector: 16,
        ..Default::default()
    };
    let mut m = pretrained::<B>(&spec, &params, 4, &device).unwrap();
    let t1 = |k: &str| {
        let a = &exp[k];
        Param::from_tensor(Tensor::<B, 1>::from_data(
            TensorData::new(a.f.clone(), [a.shape[0]]),
            &device,
        ))
    };
    let linear = |k: &str| {
        let w = &exp[&format!("{k}.weight")];
        let (o, i) = (w.shape[0], w.shape[1]);
        let t =
            Tensor::<B, 2>::from_data(TensorData::new(w.f.clone(), [o, i]), &device).transpose();
        Linear {
            weight: Param::from_tensor(t),
            bias: Some(t1(&format!("{k}.bias"))),
        }
    };
    m.head.layer_weights = t1("head.layer_weights");
    m.head.projector = linear("head.projector");
    m.head.classifier = linear("head.classifier");
    let audio = &exp["audio"];
    let [b, l] = [audio.shape[0], audio.shape[1]];
    let lengths: Vec<usize> = exp["lengths"].i.iter().map(|&n| n as usize).collect();
    let mask: Vec<f32> = lengths
        .iter()
        .flat_map(|&n| (0..l).map(move |t| if t < n { 1.0 } else { 0.0 }))
        .collect();
    let x = Tensor::<B, 3>::from_data(TensorData::new(audio.f.clone(), [b, l, 1]), &device);
    let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, [b, l]), &device);
    let x = x * mask.clone().unsqueeze_dim::<3>(2);
    let logits = m.forward(x, mask).into_data().to_vec::<f32>().unwrap();
    let d = max_abs(&logits, &exp["logits"].f);
    eprintln!("ssl_finetune logits: max abs diff {d:.2e}");
    assert!(d <= TOL, "logits: max abs diff {d}");
}

/// A group-norm encoder (base models) fine-tuned on padded batches: each
/// clip's logits equal those of the clip alone (its feature encoder runs
/// unpadded, padded frames are masked), so no prediction depends on its batch
/// neighbours.
#[test]
fn ssl_finetune_logits_do_not_depend_on_batch_neighbours() {
    use sermo::train::finetune::{EncoderSpec, SslFinetuneParams, pretrained};
    for name in ["wav2vec2_group", "wavlm"] {
        let dir = fixture(name);
        let exp = expected(&dir);
        let device = Default::default();
        let spec = EncoderSpec::read(&dir, None).unwrap();
        let params = SslFinetuneParams {
            projector: 8,
            ..Default::default()
        };
        let m = pretrained::<B>(&spec, &params, 3, &device).unwrap();
        let audio = &exp["audio"];
        let [b, l] = [audio.shape[0], audio.shape[1]];
        let lengths: Vec<usize> = exp["lengths"].i.iter().map(|&n| n as usize).collect();
        assert!(lengths[0] != lengths[1]);
        let run = |rows: &[usize], len: usize| {
            let mut x = vec![0.0f32; rows.len() * len];
            let mut mask = vec![0.0f32; rows.len() * len];
            for (j, &i) in rows.iter().enumerate() {
                let n = lengths[i].min(len);
                x[j * len..j * len + n].copy_from_slice(&audio.f[i * l..i * l + n]);
                mask[j * len..j * len + n].fill(1.0);
            }
            let x = Tensor::<B, 3>::from_data(TensorData::new(x, [rows.len(), len, 1]), &device);
            let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, [rows.len(), len]), &device);
            m.forward(x, mask).into_data().to_vec::<f32>().unwrap()
        };
        let batch = run(&[0, 1], l);
        let alone: Vec<f32> = (0..b).flat_map(|i| run(&[i], lengths[i])).collect();
        let d = max_abs(&batch, &alone);
        assert!(d <= 1e-5, "{name}: padded batch vs alone: {d}");
    }
}

/// The CPU pass gives the same bits whatever the thread count (its parallel
/// products and passes split the output, never a sum), for a group-norm and a
/// WavLM fixture, clips alone and a padded batch.
#[test]
fn the_cpu_pass_does_not_depend_on_the_thread_count() {
    for name in ["wav2vec2_group", "wavlm", "wav2vec2_layer"] {
        let dir = fixture(name);
        let exp = expected(&dir);
        let enc = Pretrained::<B>::load(&dir, None, &Default::default()).unwrap();
        assert!(
            enc.cpu.is_some(),
            "{name}: the CPU backend runs the CPU pass"
        );
        let input = &exp["input_values"];
        let l = input.shape[1];
        let lengths: Vec<usize> = exp["lengths"].i.iter().map(|&n| n as usize).collect();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| enc_run(&enc, &exp, &lengths, l, &enc.config))
        };
        let one = run(1);
        for threads in [2, 3] {
            assert!(
                one == run(threads),
                "{name}: hidden states differ between 1 and {threads} threads"
            );
        }
    }
}

/// A fine-tuned encoder written as a checkpoint folder loads again (in sermo,
/// and by its names in transformers) and runs exactly as the module it came
/// from.
#[test]
fn an_exported_encoder_folder_round_trips() {
    for name in ["wav2vec2_group", "wav2vec2_layer", "hubert", "wavlm"] {
        let src = fixture(name);
        let device = Default::default();
        let original = Pretrained::<B>::load(&src, None, &device).unwrap();
        let out = tempfile::tempdir().unwrap();
        let config_json = std::fs::read_to_string(src.join("config.json")).unwrap();
        let pre = std::fs::read_to_string(src.join("preprocessor_config.json")).ok();
        sermo::encoders::export::save_folder(
            &original.model,
            Some(vec![0.5; original.config.hidden_size]),
            &config_json,
            pre.as_deref(),
            out.path(),
        )
        .unwrap();
        let back = Pretrained::<B>::load(out.path(), None, &device).unwrap();
        let clip: Vec<f32> = (0..3000).map(|i| ((i as f32) * 0.013).sin()).collect();
        let n = original.config.num_hidden_states();
        let layers: Vec<usize> = (0..n).collect();
        let a = original.run(&[&clip], &layers).unwrap();
        let b = back.run(&[&clip], &layers).unwrap();
        assert_eq!(a, b, "{name}: states differ after the round trip");
        // Every tensor of the original file is written back under its name
        // (prefix and weight-norm spelling normalized), with the same values.
        let family = original.config.family;
        let mut ck = Checkpoint::open(&Checkpoint::weights_file(&src).unwrap(), family).unwrap();
        let mut written = Checkpoint::open(&out.path().join("model.safetensors"), family).unwrap();
        for (name_pt, shape, values) in sermo::encoders::export::tensors(&back.model, None) {
            let want = ck.take(&name_pt, &shape).unwrap();
            assert_eq!(want, values, "{name}: {name_pt}");
            written.take(&name_pt, &shape).unwrap();
        }
        assert_eq!(
            written
                .take("masked_spec_embed", &[original.config.hidden_size])
                .unwrap(),
            vec![0.5; original.config.hidden_size]
        );
    }
}

/// An exported folder is a Hugging Face checkpoint: transformers loads it
/// (`AutoModel.from_pretrained`, every weight used) and computes the hidden
/// states sermo computes, to 1e-4. Needs torch and transformers (not in CI:
/// skipped with a message without them).
#[test]
fn an_exported_folder_loads_in_transformers_when_torch_is_present() {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import torch, transformers"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        common::skip(
            "an_exported_folder_loads_in_transformers_when_torch_is_present",
            "python3 with torch and transformers is not installed (not in CI)",
        );
        return;
    }
    let script = r#"
import json, sys, numpy as np, torch
from transformers import AutoModel, AutoFeatureExtractor
m, info = AutoModel.from_pretrained(sys.argv[1], output_loading_info=True)
m.eval()
x = np.sin(np.arange(3000, dtype=np.float64) * 0.013).astype(np.float32)
iv = AutoFeatureExtractor.from_pretrained(sys.argv[1])(x, sampling_rate=16000, return_tensors="pt").input_values
with torch.no_grad():
    hs = m(iv, output_hidden_states=True).hidden_states
print(json.dumps({"missing": sorted(info["missing_keys"]), "unexpected": sorted(info["unexpected_keys"]),
                  "states": [h[0].reshape(-1).tolist() for h in hs]}))
"#;
    for name in ["wav2vec2_group", "wav2vec2_layer", "hubert", "wavlm"] {
        let src = fixture(name);
        let device = Default::default();
        let original = Pretrained::<B>::load(&src, None, &device).unwrap();
        let out = tempfile::tempdir().unwrap();
        sermo::encoders::export::save_folder(
            &original.model,
            Some(vec![0.25; original.config.hidden_size]),
            &std::fs::read_to_string(src.join("config.json")).unwrap(),
            std::fs::read_to_string(src.join("preprocessor_config.json"))
                .ok()
                .as_deref(),
            out.path(),
        )
        .unwrap();
        let run = std::process::Command::new("python3")
            .args(["-c", script, out.path().to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let v: serde_json::Value =
            serde_json::from_slice(run.stdout.rsplit(|&c| c == b'\n').nth(1).unwrap()).unwrap();
        assert_eq!(v["missing"], serde_json::json!([]), "{name}: {v:?}");
        assert_eq!(v["unexpected"], serde_json::json!([]), "{name}");
        let clip: Vec<f32> = (0..3000)
            .map(|i| ((i as f64) * 0.013).sin() as f32)
            .collect();
        let n = original.config.num_hidden_states();
        let ours = original.run(&[&clip], &(0..n).collect::<Vec<_>>()).unwrap();
        for k in 0..n {
            let theirs: Vec<f32> = v["states"][k]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            let d = max_abs(&ours[0].layers[k], &theirs);
            assert!(d <= TOL, "{name}: hidden state {k}: max abs diff {d}");
        }
    }
}
