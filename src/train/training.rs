//! The training loop (burn's `training.rs`): AdamW, a learning-rate schedule with
//! warmup, weighted cross-entropy, gradient clipping, early stopping on validation
//! loss and the best checkpoint by validation loss. Deterministic for a seed on CPU.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::backend::AutodiffBackend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::data::{Example, Masking, SerBatcher, Standardizer, batch, length_buckets, prefetch};
use super::model::{ModelConfig, SerModel};

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Cosine decay to 0 over the epochs after warmup.
    #[default]
    Cosine,
    /// Multiply by 0.5 every `step_epochs`.
    Step,
    Constant,
}

/// How classes are weighted in the loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeights {
    /// n / (classes · count(class)), as sklearn's "balanced".
    #[default]
    Balanced,
    None,
}

/// Training settings (the `train` sink's keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub schedule: Schedule,
    pub warmup_epochs: usize,
    pub step_epochs: usize,
    pub class_weights: ClassWeights,
    /// Stop after this many epochs without a better validation loss.
    pub patience: Option<usize>,
    /// Clip the gradient norm to this value.
    pub grad_clip: Option<f32>,
    /// Longer examples are cut to this many frames.
    pub max_frames: usize,
    pub seed: u64,
    /// SpecAugment-style masking of training batches.
    #[serde(default)]
    pub spec_mask: Option<Masking>,
}

/// One epoch of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Epoch {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: Option<f64>,
    pub val_acc: Option<f64>,
    pub lr: f64,
    pub seconds: f64,
}

/// Learning rate of `epoch` (0-based).
pub fn learning_rate(s: &TrainSettings, epoch: usize) -> f64 {
    let base = s.learning_rate;
    if epoch < s.warmup_epochs {
        return base * (epoch + 1) as f64 / (s.warmup_epochs + 1) as f64;
    }
    let e = (epoch - s.warmup_epochs) as f64;
    let span = (s.epochs.saturating_sub(s.warmup_epochs)).max(1) as f64;
    match s.schedule {
        Schedule::Constant => base,
        Schedule::Step => base * 0.5f64.powi((e as usize / s.step_epochs.max(1)) as i32),
        Schedule::Cosine => 0.5 * base * (1.0 + (std::f64::consts::PI * e / span).cos()),
    }
}

/// Class weights for the loss from training labels.
pub fn class_weights(kind: ClassWeights, train: &[&Example], classes: usize) -> Option<Vec<f32>> {
    if kind == ClassWeights::None {
        return None;
    }
    let mut count = vec![0usize; classes];
    for e in train {
        if let Some(l) = e.label {
            count[l] += 1;
        }
    }
    let n: usize = count.iter().sum();
    Some(
        count
            .iter()
            .map(|&c| {
                if c == 0 {
                    // Never a training target; the loss needs positive weights
                    // (it scores validation rows of the class plainly).
                    1.0
                } else {
                    n as f32 / (classes as f32 * c as f32)
                }
            })
            .collect(),
    )
}

/// What training gives back: the best model (inner backend), the history and the
/// epoch it came from.
pub struct Trained<B: AutodiffBackend> {
    pub model: SerModel<B::InnerBackend>,
    pub history: Vec<Epoch>,
    pub best_epoch: usize,
}

fn accuracy(logits: &[f32], classes: usize, targets: &[usize]) -> usize {
    logits
        .chunks_exact(classes)
        .zip(targets)
        .filter(|(row, t)| argmax(row) == **t)
        .count()
}

/// Index of the largest value (first on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Mean loss and correct count of `model` over `examples`.
#[allow(clippy::too_many_arguments)]
fn evaluate<B: Backend>(
    model: &SerModel<B>,
    examples: &[&Example],
    dims: usize,
    norm: &Standardizer,
    s: &TrainSettings,
    weights: &Option<Vec<f32>>,
    classes: usize,
    device: &B::Device,
) -> (f64, f64) {
    let loss_fn = CrossEntropyLossConfig::new()
        .with_weights(weights.clone())
        .init(device);
    let (mut loss, mut correct, mut n) = (0.0, 0usize, 0usize);
    for chunk in examples.chunks(s.batch_size.max(1)) {
        let b = batch::<B>(chunk, dims, norm, s.max_frames, device);
        let logits = model.forward(b.x, b.mask);
        let l: f32 = loss_fn
            .forward(logits.clone(), b.targets)
            .into_scalar()
            .elem();
        loss += l as f64 * chunk.len() as f64;
        let values: Vec<f32> = logits.into_data().to_vec().unwrap_or_default();
        let targets: Vec<usize> = chunk.iter().map(|e| e.label.unwrap_or(0)).collect();
        correct += accuracy(&values, classes, &targets);
        n += chunk.len();
    }
    let n = n.max(1) as f64;
    (loss / n, correct as f64 / n)
}

/// Train one model. `progress` is called after every epoch.
pub fn train<B: AutodiffBackend>(
    cfg: &ModelConfig,
    s: &TrainSettings,
    train: &[&Example],
    valid: &[&Example],
    norm: &Standardizer,
    device: &B::Device,
    mut progress: impl FnMut(&Epoch),
) -> Trained<B> {
    B::seed(device, s.seed);
    let dims = cfg.input_dim;
    let classes = cfg.classes;
    let mut model: SerModel<B> = cfg.init(device);
    let mut optim = AdamWConfig::new()
        .with_weight_decay(s.weight_decay as f32)
        .with_grad_clipping(
            s.grad_clip
                .map(burn::grad_clipping::GradientClippingConfig::Norm),
        )
        .init::<B, SerModel<B>>();
    let weights = class_weights(s.class_weights, train, classes);
    let loss_fn = CrossEntropyLossConfig::new()
        .with_weights(weights.clone())
        .init(device);
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
    let lengths: Vec<usize> = train.iter().map(|e| e.frames.min(s.max_frames)).collect();
    let batcher = SerBatcher {
        dims,
        norm: norm.clone(),
        max_frames: s.max_frames,
    };
    let mut history = Vec::new();
    let mut best: Option<(f64, usize, SerModel<B::InnerBackend>)> = None;
    let mut since_best = 0;
    for epoch in 0..s.epochs {
        let t0 = Instant::now();
        let lr = learning_rate(s, epoch);
        let jobs: Vec<(usize, Vec<usize>)> = length_buckets(&lengths, s.batch_size, &mut rng)
            .into_iter()
            .enumerate()
            .collect();
        let make = |(k, idx): (usize, Vec<usize>)| {
            let chunk: Vec<&Example> = idx.iter().map(|&i| train[i]).collect();
            let targets: Vec<usize> = chunk.iter().map(|e| e.label.unwrap_or(0)).collect();
            let mut hb = batcher.host(&chunk);
            if let Some(m) = &s.spec_mask {
                // Seeded per (seed, epoch, batch): the same on every run.
                let mut r = ChaCha8Rng::seed_from_u64(
                    s.seed ^ ((epoch as u64) << 32 | k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                let lens: Vec<usize> = idx.iter().map(|&i| lengths[i]).collect();
                hb.spec_mask(m, &lens, &mut r);
            }
            (hb, targets)
        };
        let (loss_sum, correct, seen);
        (model, loss_sum, correct, seen) = prefetch(jobs, 2, make, |batches| {
            let mut model = model;
            let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
            for (hb, targets) in batches {
                let b = hb.to_device::<B>(device);
                let logits = model.forward(b.x, b.mask);
                let loss = loss_fn.forward(logits.clone(), b.targets);
                let l: f32 = loss.clone().into_scalar().elem();
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(lr, model, grads);
                loss_sum += l as f64 * targets.len() as f64;
                let values: Vec<f32> = logits.into_data().to_vec().unwrap_or_default();
                correct += accuracy(&values, classes, &targets);
                seen += targets.len();
            }
            (model, loss_sum, correct, seen)
        });
        let inner = model.valid();
        let (val_loss, val_acc) = if valid.is_empty() {
            (None, None)
        } else {
            let (l, a) = evaluate(&inner, valid, dims, norm, s, &weights, classes, device);
            (Some(l), Some(a))
        };
        let e = Epoch {
            epoch: epoch + 1,
            train_loss: loss_sum / seen.max(1) as f64,
            train_acc: correct as f64 / seen.max(1) as f64,
            val_loss,
            val_acc,
            lr,
            seconds: t0.elapsed().as_secs_f64(),
        };
        progress(&e);
        // Without a validation set the last epoch is kept.
        let score = val_loss.unwrap_or(-(epoch as f64));
        let better = best.as_ref().is_none_or(|(b, _, _)| score < *b);
        if better {
            best = Some((score, epoch + 1, inner));
            since_best = 0;
        } else {
            since_best += 1;
        }
        history.push(e);
        if s.patience
            .is_some_and(|p| !valid.is_empty() && since_best >= p)
        {
            break;
        }
    }
    let (_, best_epoch, model) = match best {
        Some(b) => b,
        None => (0.0, 0, model.valid()),
    };
    Trained {
        model,
        history,
        best_epoch,
    }
}

/// Class probabilities `[n][classes]` of `model` for `examples`.
pub fn predict<B: Backend>(
    model: &SerModel<B>,
    examples: &[&Example],
    dims: usize,
    norm: &Standardizer,
    batch_size: usize,
    max_frames: usize,
    device: &B::Device,
) -> Vec<Vec<f32>> {
    let mut out = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(batch_size.max(1)) {
        let b = batch::<B>(chunk, dims, norm, max_frames, device);
        let probs = softmax(model.forward(b.x, b.mask), 1);
        let [_, c] = probs.dims();
        let v: Vec<f32> = probs.into_data().to_vec().unwrap_or_default();
        out.extend(v.chunks_exact(c).map(|r| r.to_vec()));
    }
    out
}
