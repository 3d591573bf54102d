//! Every model: output shapes, padding never changes the output, a tiny subset is
//! learned to 100 % train accuracy, and a saved-then-reloaded model predicts the same.

use burn::module::Module;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use sermo::train::data::{Example, Standardizer};
use sermo::train::model::{
    AttentionFcnParams, Cnn1dParams, Cnn2dParams, LstmParams, MlpParams, ModelConfig, ModelKind,
    ModelSpec, Pooling, Q2lParams, SslHeadParams,
};
use sermo::train::training::{
    Checkpoint, ClassWeights, Schedule, TrainSettings, argmax, predict, train,
};
use sermo::train::{Cpu, CpuAutodiff};
use std::ops::ControlFlow;

const DIMS: usize = 6;

/// burn's CPU backend draws from one process-wide generator: tests that train
/// run one at a time so a seed gives the same run.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A progress callback that never stops training.
fn go_on(_: &sermo::train::training::Epoch) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

/// Separable toy data: class k has a bump in dimension k, lengths vary.
fn toy(n_per_class: usize, classes: usize) -> Vec<Example> {
    let mut out = Vec::new();
    let mut s: u32 = 7;
    for c in 0..classes {
        for i in 0..n_per_class {
            let frames = 12 + (i * 5) % 9;
            let mut x = Vec::new();
            for _ in 0..frames {
                for d in 0..DIMS {
                    s ^= s << 13;
                    s ^= s >> 17;
                    s ^= s << 5;
                    let noise = (s as f32 / u32::MAX as f32 - 0.5) * 0.4;
                    x.push(if d == c { 1.0 } else { 0.0 } + noise);
                }
            }
            out.push(Example {
                x,
                frames,
                label: Some(c),
                label_text: Some(format!("c{c}")),
                group: format!("s{}", i % 3),
                clip_id: format!("c{c}-{i}"),
                segment: 0,
                start_s: 0.0,
                end_s: 0.0,
                variant: None,
            });
        }
    }
    out
}

fn config(kind: ModelKind) -> ModelConfig {
    let dropout = 0.1;
    let spec = match kind {
        ModelKind::Mlp => ModelSpec::Mlp(MlpParams {
            dropout,
            hidden: 32,
        }),
        ModelKind::Cnn1d => ModelSpec::Cnn1d(Cnn1dParams {
            dropout,
            filters: vec![16, 16, 8],
            dense: 16,
            ..Default::default()
        }),
        ModelKind::Cnn2d => ModelSpec::Cnn2d(Cnn2dParams {
            dropout,
            channels: vec![8, 8, 8, 8, 8],
            ..Default::default()
        }),
        ModelKind::Lstm => ModelSpec::Lstm(LstmParams {
            dropout,
            lstm_hidden: 16,
            fc: 16,
        }),
        ModelKind::AttentionFcn => ModelSpec::AttentionFcn(AttentionFcnParams {
            dropout,
            fcn_channels: vec![8, 8, 8, 8, 8],
            attention_dim: 16,
            ..Default::default()
        }),
        ModelKind::Q2l => ModelSpec::Q2l(Q2lParams {
            dropout,
            d_model: 32,
            heads: 4,
            d_ff: 64,
            ..Default::default()
        }),
        ModelKind::SslHead => ModelSpec::SslHead(SslHeadParams {
            dropout,
            projector: 16,
            layers: 2,
        }),
        // Trains on raw audio from a checkpoint: tests/finetune.rs.
        ModelKind::SslFinetune => unreachable!("ssl_finetune is not a feature-table model"),
    };
    ModelConfig {
        spec,
        input_dim: DIMS,
        classes: 3,
        encoder: None,
    }
}

/// Every model with its default pooling, plus the CNNs with statistics pooling.
fn configs() -> Vec<ModelConfig> {
    let mut out: Vec<ModelConfig> = ModelKind::ALL
        .iter()
        .filter(|&&k| k != ModelKind::SslFinetune)
        .map(|&k| config(k))
        .collect();
    for kind in [ModelKind::Cnn1d, ModelKind::Cnn2d] {
        let mut c = config(kind);
        match &mut c.spec {
            ModelSpec::Cnn1d(p) => p.pooling = Pooling::MeanStd,
            ModelSpec::Cnn2d(p) => p.pooling = Pooling::MeanStd,
            _ => unreachable!("only the CNNs pool with statistics"),
        }
        out.push(c);
    }
    out
}

fn settings() -> TrainSettings {
    TrainSettings {
        epochs: 60,
        batch_size: 8,
        learning_rate: 5e-3,
        weight_decay: 0.0,
        schedule: Schedule::Constant,
        warmup_epochs: 0,
        step_epochs: 10,
        class_weights: ClassWeights::Balanced,
        patience: None,
        grad_clip: Some(5.0),
        max_frames: 1000,
        seed: 1,
        spec_mask: None,
        label_smoothing: 0.0,
        mixup: None,
        crop_frames: None,
        checkpoint: Checkpoint::Best,
        sample_variants: false,
        grad_accumulation: 1,
        ensemble: 1,
    }
}

#[test]
fn every_model_has_the_right_shapes_and_ignores_padding() {
    // Initializing models draws from the process-wide generator too.
    let _guard = serial();
    let device = Default::default();
    for cfg in configs() {
        let kind = (cfg.kind(), cfg.spec.pooling());
        assert!(cfg.check().is_empty());
        let model = cfg.init::<Cpu>(&device);
        // Two examples of 20 and 13 frames in one padded batch.
        let t = 20;
        let mut x = vec![0.5f32; 2 * t * DIMS];
        let mut mask = vec![1.0f32; 2 * t];
        for f in 13..t {
            mask[t + f] = 0.0;
        }
        let run = |x: &Vec<f32>| {
            let out = model.forward(
                Tensor::<Cpu, 3>::from_data(TensorData::new(x.clone(), [2, t, DIMS]), &device),
                Tensor::<Cpu, 2>::from_data(TensorData::new(mask.clone(), [2, t]), &device),
            );
            assert_eq!(out.dims(), [2, 3], "{kind:?}");
            out.into_data().to_vec::<f32>().unwrap()
        };
        let a = run(&x);
        // Garbage in the padded frames of example 2 must not change anything.
        for f in 13..t {
            for d in 0..DIMS {
                x[(t + f) * DIMS + d] = 1e3 * (f + d) as f32;
            }
        }
        let b = run(&x);
        for (p, q) in a.iter().zip(&b) {
            assert!(
                (p - q).abs() < 1e-4,
                "{kind:?}: padding leaked: {a:?} vs {b:?}"
            );
        }
    }
}

#[test]
fn every_model_learns_a_tiny_subset_and_reloads_identically() {
    let _guard = serial();
    let device = Default::default();
    let data = toy(6, 3);
    let refs: Vec<&Example> = data.iter().collect();
    let norm = Standardizer::fit(&refs, DIMS);
    for cfg in configs() {
        let kind = (cfg.kind(), cfg.spec.pooling());
        let trained =
            train::<CpuAutodiff>(&cfg, &settings(), &refs, &[], &norm, &device, go_on).unwrap();
        let probs = predict(&trained.model, &refs, DIMS, &norm, 8, 1000, &device);
        let correct = probs
            .iter()
            .zip(&data)
            .filter(|(p, e)| Some(argmax(p)) == e.label)
            .count();
        let losses: Vec<String> = trained
            .history
            .iter()
            .step_by(10)
            .map(|e| format!("{:.3}", e.train_loss))
            .collect();
        assert_eq!(
            correct,
            data.len(),
            "{kind:?} did not fit the training set; losses {losses:?}"
        );
        let last = trained.history.last().unwrap();
        assert!(last.train_loss < trained.history[0].train_loss, "{kind:?}");

        let dir = tempfile::tempdir().unwrap();
        let rec = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        trained
            .model
            .clone()
            .save_file(dir.path().join("model"), &rec)
            .unwrap();
        let back = cfg
            .init::<Cpu>(&device)
            .load_file(dir.path().join("model"), &rec, &device)
            .unwrap();
        let again = predict(&back, &refs, DIMS, &norm, 8, 1000, &device);
        assert_eq!(probs, again, "{kind:?}: reloaded model differs");
    }
}

#[test]
fn same_seed_same_history() {
    let _guard = serial();
    let device = Default::default();
    let data = toy(4, 3);
    let refs: Vec<&Example> = data.iter().collect();
    let norm = Standardizer::fit(&refs, DIMS);
    let mut s = settings();
    s.epochs = 5;
    let cfg = config(ModelKind::Cnn1d);
    let a = train::<CpuAutodiff>(&cfg, &s, &refs, &refs[..4], &norm, &device, go_on).unwrap();
    let b = train::<CpuAutodiff>(&cfg, &s, &refs, &refs[..4], &norm, &device, go_on).unwrap();
    let strip = |h: &[sermo::train::training::Epoch]| {
        h.iter()
            .map(|e| (e.train_loss, e.train_acc, e.val_loss, e.val_acc))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&a.history), strip(&b.history));
}

#[test]
fn progress_can_stop_training_between_epochs() {
    let _guard = serial();
    let device = Default::default();
    let data = toy(4, 3);
    let refs: Vec<&Example> = data.iter().collect();
    let norm = Standardizer::fit(&refs, DIMS);
    let mut s = settings();
    s.epochs = 20;
    let cfg = config(ModelKind::Cnn1d);
    let mut seen = 0;
    let t = train::<CpuAutodiff>(&cfg, &s, &refs, &refs[..4], &norm, &device, |e| {
        seen += 1;
        if e.epoch == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert!(t.stopped);
    assert_eq!(seen, 3);
    assert_eq!(t.history.len(), 3);
    let full = train::<CpuAutodiff>(&cfg, &s, &refs, &refs[..4], &norm, &device, go_on).unwrap();
    assert!(!full.stopped);
    assert_eq!(full.history.len(), 20);
}

/// The backward of `log` is exactly 1/x on the CPU, whatever the buffer's
/// alignment: burn-ndarray's SIMD reciprocal was a hardware estimate
/// (`_mm256_rcp_ps`, 12 bits) on the aligned part of a buffer and exact on the
/// rest (vendor/README.md: the patched macerator).
#[test]
fn log_backward_is_exact() {
    let device = Default::default();
    for n in [33usize, 257, 1000] {
        for v in [-1.0f32, 3.0, 0.37] {
            let x = Tensor::<CpuAutodiff, 1>::from_data(TensorData::new(vec![v; n], [n]), &device)
                .require_grad();
            let g = x.clone().log().sum().backward();
            let gx: Vec<f32> = x.grad(&g).unwrap().into_data().to_vec().unwrap();
            let want = 1.0 / v;
            let off: Vec<usize> = (0..n).filter(|&i| gx[i] != want).collect();
            assert!(
                off.is_empty(),
                "n = {n}, x = {v}: d log/dx ≠ 1/x at {off:?} ({} vs {want})",
                gx[off[0]]
            );
        }
    }
}

/// Same seed, same history also at corpus scale (450 clips × 63 frames × 64 bins,
/// batches of 32): two trainings in one process match to the bit. Before the
/// patched macerator (vendor/README.md) they drifted in the 8th digit, and
/// across processes too.
#[test]
fn same_seed_same_history_at_corpus_scale() {
    let _guard = serial();
    const D: usize = 64;
    let mut s: u32 = 7;
    let data: Vec<Example> = (0..450)
        .map(|i| {
            let c = i % 7;
            let x = (0..63 * D)
                .map(|j| {
                    s ^= s << 13;
                    s ^= s >> 17;
                    s ^= s << 5;
                    (s as f32 / u32::MAX as f32 - 0.5) + if j % D == c { 0.5 } else { 0.0 }
                })
                .collect();
            Example {
                x,
                frames: 63,
                label: Some(c),
                label_text: Some(format!("c{c}")),
                group: format!("s{}", i % 9),
                clip_id: format!("c{i}"),
                segment: 0,
                start_s: 0.0,
                end_s: 0.0,
                variant: None,
            }
        })
        .collect();
    let refs: Vec<&Example> = data.iter().collect();
    let norm = Standardizer::fit(&refs, D);
    let cfg = ModelConfig {
        spec: ModelSpec::Mlp(MlpParams {
            dropout: 0.3,
            ..Default::default()
        }),
        input_dim: D,
        classes: 7,
        encoder: None,
    };
    let mut st = settings();
    st.epochs = 2;
    st.batch_size = 32;
    st.learning_rate = 1e-3;
    let device = Default::default();
    let run = || {
        train::<CpuAutodiff>(&cfg, &st, &refs, &[], &norm, &device, go_on)
            .unwrap()
            .history
            .iter()
            .map(|e| e.train_loss)
            .collect::<Vec<f64>>()
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
}

/// `grad_accumulation`: the gradients of two half batches, each scaled by 1/2,
/// make the same optimizer step as their union in one batch (mlp: a masked mean
/// over frames, so padding plays no part; unweighted loss; no dropout).
#[test]
fn accumulating_two_half_batches_equals_one_batch_of_both() {
    let _guard = serial();
    let device = Default::default();
    let data = toy(4, 3); // 12 examples
    let refs: Vec<&Example> = data.iter().collect();
    let norm = Standardizer::fit(&refs, DIMS);
    let cfg = ModelConfig {
        spec: ModelSpec::Mlp(MlpParams {
            dropout: 0.0,
            hidden: 16,
        }),
        input_dim: DIMS,
        classes: 3,
        encoder: None,
    };
    let mut s = settings();
    s.epochs = 3;
    s.class_weights = ClassWeights::None;
    s.learning_rate = 1e-2;
    let run = |batch_size: usize, accumulate: usize| {
        let mut st = s.clone();
        st.batch_size = batch_size;
        st.grad_accumulation = accumulate;
        let t = train::<CpuAutodiff>(&cfg, &st, &refs, &[], &norm, &device, go_on).unwrap();
        predict(&t.model, &refs, DIMS, &norm, 12, 1000, &device)
    };
    let whole = run(12, 1);
    let halves = run(6, 2);
    let unaccumulated = run(6, 1);
    let diff = |a: &[Vec<f32>], b: &[Vec<f32>]| {
        a.iter()
            .flatten()
            .zip(b.iter().flatten())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    let d = diff(&whole, &halves);
    assert!(d < 1e-4, "accumulated vs one batch: {d}");
    // Without accumulation the half batches take twice the steps: a different model.
    assert!(diff(&whole, &unaccumulated) > 1e-3);
}
