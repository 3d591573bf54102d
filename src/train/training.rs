//! The training loop (burn's `training.rs`): AdamW, a learning-rate schedule with
//! warmup, weighted cross-entropy, gradient clipping, early stopping on validation
//! loss and the best checkpoint by validation loss. Deterministic for a seed on CPU.

use std::ops::ControlFlow;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::AutodiffBackend;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::data::{
    Example, Masking, Mixed, SerBatcher, Standardizer, batch, beta_sample, length_buckets, prefetch,
};
use super::model::{ModelConfig, SerModel};

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default, schemars::JsonSchema)]
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
    /// Label smoothing ε of the training loss: targets (1 − ε) on the class and
    /// ε / classes everywhere (Szegedy et al. 2016). 0 = off.
    #[serde(default)]
    pub label_smoothing: f32,
    /// Mixup of training batches with λ ~ Beta(alpha, alpha); `None` = off.
    #[serde(default)]
    pub mixup: Option<f64>,
    /// Random crops: each training example is cut to a random window of this
    /// many frames every epoch (shorter examples stay whole); validation and test
    /// see whole clips.
    #[serde(default)]
    pub crop_frames: Option<usize>,
    /// Which epoch's weights are kept.
    #[serde(default)]
    pub checkpoint: Checkpoint,
    /// Augmented data: train each epoch on one variant of every clip, drawn at
    /// random (rows of a clip share `clip_id` and `segment`), instead of on every
    /// variant row.
    #[serde(default)]
    pub sample_variants: bool,
    /// Models trained with seeds seed, seed + 1, ...; their class probabilities
    /// are averaged.
    #[serde(default = "one")]
    pub ensemble: usize,
    /// Batches whose gradients are summed (each scaled by 1/n) before one
    /// optimizer step: an effective batch of `batch_size × grad_accumulation`.
    #[serde(default = "one")]
    pub grad_accumulation: usize,
}

fn one() -> usize {
    1
}

/// Which epoch's weights training keeps.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Checkpoint {
    /// The epoch with the lowest validation loss (the last one without a
    /// validation part).
    #[default]
    Best,
    /// The last epoch trained (validation is still computed and reported).
    Last,
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

/// Soft targets `[n · classes]` and per-example loss weights `[n]` of a training
/// batch: one-hot targets smoothed by `smoothing`, mixed with the partners' by
/// mixup's λ; an example's weight is its class weight (mixed the same way).
pub fn soft_targets(
    targets: &[usize],
    mixed: Option<&Mixed>,
    classes: usize,
    smoothing: f32,
    class_w: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let off = smoothing / classes as f32;
    let on = 1.0 - smoothing + off;
    let mut q = vec![0f32; targets.len() * classes];
    let mut w = Vec::with_capacity(targets.len());
    for (i, &t) in targets.iter().enumerate() {
        let row = &mut q[i * classes..(i + 1) * classes];
        let (lambda, partner) = match mixed {
            Some(m) => (m.lambda, m.partner_targets.get(i).map(|&p| p as usize)),
            None => (1.0, None),
        };
        let partner = partner.unwrap_or(t).min(classes - 1);
        let t = t.min(classes - 1);
        for (c, v) in row.iter_mut().enumerate() {
            let a = if c == t { on } else { off };
            let b = if c == partner { on } else { off };
            *v = lambda * a + (1.0 - lambda) * b;
        }
        w.push(lambda * class_w[t] + (1.0 - lambda) * class_w[partner]);
    }
    (q, w)
}

/// Weighted cross-entropy against soft targets: −Σᵢ wᵢ Σ_c q_ic log softmax(z)_ic
/// / Σᵢ wᵢ. With one-hot targets and class weights it equals burn's weighted
/// cross-entropy.
pub fn soft_cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 2>,
    weights: Tensor<B, 1>,
) -> Tensor<B, 1> {
    let [n, _] = logits.dims();
    let per = (log_softmax(logits, 1) * targets)
        .sum_dim(1)
        .reshape([n])
        .neg();
    (per * weights.clone()).sum() / weights.sum()
}

/// What training gives back: the best model (inner backend), the history and the
/// epoch it came from.
pub struct Trained<B: AutodiffBackend> {
    pub model: SerModel<B::InnerBackend>,
    pub history: Vec<Epoch>,
    pub best_epoch: usize,
    /// `progress` asked to stop before the planned epochs were done (e.g. Ctrl-C):
    /// the model is the best so far, not a finished one.
    pub stopped: bool,
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

/// Train one model. `progress` is called after every epoch; returning
/// `ControlFlow::Break` stops training there (`Trained::stopped`). Fails only
/// when the model cannot be built (`ssl_finetune`'s checkpoint unreadable).
pub fn train<B: AutodiffBackend>(
    cfg: &ModelConfig,
    s: &TrainSettings,
    train: &[&Example],
    valid: &[&Example],
    norm: &Standardizer,
    device: &B::Device,
    mut progress: impl FnMut(&Epoch) -> ControlFlow<()>,
) -> Result<Trained<B>, String> {
    B::seed(device, s.seed);
    let dims = cfg.input_dim;
    let classes = cfg.classes;
    let mut model: SerModel<B> = cfg.init_training(device)?;
    let new_optim = || {
        AdamWConfig::new()
            .with_weight_decay(s.weight_decay as f32)
            .with_grad_clipping(
                s.grad_clip
                    .map(burn::grad_clipping::GradientClippingConfig::Norm),
            )
            .init::<B, SerModel<B>>()
    };
    let mut optim = new_optim();
    // `ssl_finetune`: the encoder has its own optimizer and learning rate
    // (`encoder_learning_rate`, scaled by the same schedule as the head's).
    let encoder_lr = match &cfg.spec {
        super::model::ModelSpec::SslFinetune(p) => Some(p.encoder_learning_rate / s.learning_rate),
        _ => None,
    };
    let mut optim_encoder = new_optim();
    let accumulate = s.grad_accumulation.max(1);
    let weights = class_weights(s.class_weights, train, classes);
    let loss_fn = CrossEntropyLossConfig::new()
        .with_weights(weights.clone())
        .init(device);
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
    let all_lengths: Vec<usize> = train.iter().map(|e| e.frames.min(s.max_frames)).collect();
    // With `sample_variants`, the rows of one clip (its augmented variants) form a
    // group of which each epoch trains one.
    let clips: Vec<Vec<usize>> = if s.sample_variants {
        let mut by_clip: std::collections::BTreeMap<(&str, u32), Vec<usize>> = Default::default();
        for (i, e) in train.iter().enumerate() {
            by_clip
                .entry((e.clip_id.as_str(), e.segment))
                .or_default()
                .push(i);
        }
        by_clip.into_values().collect()
    } else {
        (0..train.len()).map(|i| vec![i]).collect()
    };
    let batcher = SerBatcher {
        dims,
        norm: norm.clone(),
        max_frames: s.max_frames,
    };
    let smoothing = s.label_smoothing.clamp(0.0, 0.999);
    let soft_loss = smoothing > 0.0 || s.mixup.is_some();
    let class_w: Vec<f32> = weights.clone().unwrap_or_else(|| vec![1.0; classes]);
    let mut history = Vec::new();
    let mut best: Option<(f64, usize, SerModel<B::InnerBackend>)> = None;
    let mut since_best = 0;
    let mut stopped = false;
    for epoch in 0..s.epochs {
        let t0 = Instant::now();
        let lr = learning_rate(s, epoch);
        let active: Vec<usize> = clips
            .iter()
            .map(|rows| {
                if rows.len() == 1 {
                    rows[0]
                } else {
                    rows[rng.random_range(0..rows.len())]
                }
            })
            .collect();
        let lengths: Vec<usize> = active.iter().map(|&i| all_lengths[i]).collect();
        let jobs: Vec<(usize, Vec<usize>)> = length_buckets(&lengths, s.batch_size, &mut rng)
            .into_iter()
            .map(|b| b.into_iter().map(|k| active[k]).collect())
            .enumerate()
            .collect();
        let make = |(k, idx): (usize, Vec<usize>)| {
            let chunk: Vec<&Example> = idx.iter().map(|&i| train[i]).collect();
            let targets: Vec<usize> = chunk.iter().map(|e| e.label.unwrap_or(0)).collect();
            // Seeded per (seed, epoch, batch): the same on every run.
            let mut r = ChaCha8Rng::seed_from_u64(
                s.seed ^ ((epoch as u64) << 32 | k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            let mut lens: Vec<usize> = idx.iter().map(|&i| all_lengths[i]).collect();
            let mut hb = match s.crop_frames {
                Some(c) => {
                    let windows: Vec<(usize, usize)> = lens
                        .iter()
                        .map(|&len| {
                            let w = c.min(len);
                            (r.random_range(0..=len - w), w)
                        })
                        .collect();
                    for (l, w) in lens.iter_mut().zip(&windows) {
                        *l = w.1;
                    }
                    batcher.host_windows(&chunk, &windows)
                }
                None => batcher.host(&chunk),
            };
            if let Some(m) = &s.spec_mask {
                hb.spec_mask(m, &lens, &mut r);
            }
            let mixed = s.mixup.map(|alpha| {
                use rand::seq::SliceRandom;
                let lambda = beta_sample(alpha, &mut r) as f32;
                let mut partner: Vec<usize> = (0..chunk.len()).collect();
                partner.shuffle(&mut r);
                hb.mixup(&partner, lambda)
            });
            (hb, targets, mixed)
        };
        let n_batches = jobs.len();
        let (loss_sum, correct, seen);
        (model, loss_sum, correct, seen) = prefetch(jobs, 2, make, |batches| {
            let mut model = model;
            let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
            let mut acc_head = GradientsAccumulator::<SerModel<B>>::new();
            let mut acc_encoder = GradientsAccumulator::<SerModel<B>>::new();
            for (k, (hb, targets, mixed)) in batches.enumerate() {
                let soft = soft_loss
                    .then(|| soft_targets(&targets, mixed.as_ref(), classes, smoothing, &class_w));
                let b = hb.to_device::<B>(device);
                let logits = model.forward(b.x, b.mask);
                let loss = match soft {
                    Some((q, w)) => soft_cross_entropy(
                        logits.clone(),
                        Tensor::from_data(TensorData::new(q, [targets.len(), classes]), device),
                        Tensor::from_data(TensorData::new(w, [targets.len()]), device),
                    ),
                    None => loss_fn.forward(logits.clone(), b.targets),
                };
                let l: f32 = loss.clone().into_scalar().elem();
                // Gradient accumulation: groups of `accumulate` batches (the last
                // one shorter), each batch's loss scaled by 1 / group size.
                let group = k / accumulate;
                let in_group = accumulate.min(n_batches - group * accumulate);
                let last_of_group = k + 1 == (group * accumulate + in_group);
                let scaled = if in_group > 1 {
                    loss.mul_scalar(1.0 / in_group as f64)
                } else {
                    loss
                };
                let mut grads = scaled.backward();
                if let (Some(_), SerModel::SslFinetune(m)) = (encoder_lr, &model) {
                    let g = GradientsParams::from_module(&mut grads, &m.encoder);
                    acc_encoder.accumulate(&model, g);
                }
                acc_head.accumulate(&model, GradientsParams::from_grads(grads, &model));
                if last_of_group {
                    if let Some(scale) = encoder_lr {
                        model = optim_encoder.step(lr * scale, model, acc_encoder.grads());
                    }
                    model = optim.step(lr, model, acc_head.grads());
                }
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
        let flow = progress(&e);
        // Without a validation set (or with `checkpoint = "last"`) the last epoch
        // is kept.
        let score = match s.checkpoint {
            Checkpoint::Best => val_loss.unwrap_or(-(epoch as f64)),
            Checkpoint::Last => -(epoch as f64),
        };
        let better = best.as_ref().is_none_or(|(b, _, _)| score < *b);
        if better {
            best = Some((score, epoch + 1, inner));
            since_best = 0;
        } else {
            since_best += 1;
        }
        history.push(e);
        if flow.is_break() {
            stopped = true;
            break;
        }
        if s.checkpoint == Checkpoint::Best
            && s.patience
                .is_some_and(|p| !valid.is_empty() && since_best >= p)
        {
            break;
        }
    }
    let (_, best_epoch, model) = match best {
        Some(b) => b,
        None => (0.0, 0, model.valid()),
    };
    Ok(Trained {
        model,
        history,
        best_epoch,
        stopped,
    })
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
    // An example's probabilities must not depend on the examples it shares a
    // batch with: a padded batch is not exactly the unpadded forward pass (a
    // pooling layer pairs an odd-length example's last frame with padding), so
    // examples are batched only with examples of the same length (after the
    // `max_frames` cut), in input order within a length, and every prediction
    // is that of the example alone.
    let len = |i: usize| examples[i].frames.min(max_frames).max(1);
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| len(i));
    let mut out = vec![Vec::new(); examples.len()];
    for same in order.chunk_by(|&a, &b| len(a) == len(b)) {
        for chunk in same.chunks(batch_size.max(1)) {
            let refs: Vec<&Example> = chunk.iter().map(|&i| examples[i]).collect();
            let b = batch::<B>(&refs, dims, norm, max_frames, device);
            let probs = softmax(model.forward(b.x, b.mask), 1);
            let [_, c] = probs.dims();
            let v: Vec<f32> = probs.into_data().to_vec().unwrap_or_default();
            for (&i, r) in chunk.iter().zip(v.chunks_exact(c)) {
                out[i] = r.to_vec();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::Cpu;

    /// A prediction is that of the example alone, whatever it is batched with:
    /// clips of odd and even lengths mixed, in any batch size.
    #[test]
    fn a_prediction_does_not_depend_on_the_other_examples_of_the_batch() {
        use crate::train::model::{AttentionFcnParams, ModelSpec};
        let device = Default::default();
        let (dims, classes) = (8usize, 3usize);
        let cfg = ModelConfig {
            spec: ModelSpec::AttentionFcn(AttentionFcnParams {
                fcn_channels: vec![4, 4, 4],
                kernel: 3,
                attention_dim: 8,
                ..Default::default()
            }),
            input_dim: dims,
            classes,
            encoder: None,
        };
        let model = cfg.init::<crate::train::Cpu>(&device);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let examples: Vec<Example> = [37usize, 40, 41, 64, 21, 40, 63]
            .iter()
            .map(|&frames| {
                let x = (0..frames * dims)
                    .map(|_| rng.random_range(-1.0..1.0))
                    .collect();
                Example::for_test(x, frames, "")
            })
            .collect();
        let refs: Vec<&Example> = examples.iter().collect();
        let norm = Standardizer {
            mean: vec![0.0; dims],
            std: vec![1.0; dims],
            per_clip: false,
        };
        let alone: Vec<Vec<f32>> = refs
            .iter()
            .map(|e| predict(&model, &[*e], dims, &norm, 1, 2000, &device).remove(0))
            .collect();
        for batch_size in [2, 3, 7] {
            let together = predict(&model, &refs, dims, &norm, batch_size, 2000, &device);
            for (t, a) in together.iter().zip(&alone) {
                for (x, y) in t.iter().zip(a) {
                    assert!(
                        (x - y).abs() < 1e-6,
                        "batch size {batch_size}: {t:?} vs {a:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn soft_cross_entropy_with_one_hot_targets_is_burns_weighted_loss() {
        let device = Default::default();
        let logits = vec![2.0f32, -1.0, 0.5, 0.1, 0.3, -2.0, 1.5, 1.4, 0.0];
        let targets = [0usize, 2, 1];
        let w = [0.5f32, 2.0, 1.25];
        let (q, ew) = soft_targets(&targets, None, 3, 0.0, &w);
        assert_eq!(ew, vec![0.5, 1.25, 2.0]);
        let z = || Tensor::<Cpu, 2>::from_data(TensorData::new(logits.clone(), [3, 3]), &device);
        let ours: f32 = soft_cross_entropy(
            z(),
            Tensor::from_data(TensorData::new(q, [3, 3]), &device),
            Tensor::from_data(TensorData::new(ew, [3]), &device),
        )
        .into_scalar()
        .elem();
        let t: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
        let burns: f32 = CrossEntropyLossConfig::new()
            .with_weights(Some(w.to_vec()))
            .init(&device)
            .forward(z(), Tensor::from_data(TensorData::new(t, [3]), &device))
            .into_scalar()
            .elem();
        assert!((ours - burns).abs() < 1e-6, "{ours} vs {burns}");
    }

    #[test]
    fn smoothed_and_mixed_targets() {
        let w = [1.0f32, 3.0, 1.0, 1.0];
        // Smoothing 0.2 over 4 classes: 0.85 on the class, 0.05 elsewhere.
        let (q, ew) = soft_targets(&[1], None, 4, 0.2, &w);
        for (a, b) in q.iter().zip([0.05, 0.85, 0.05, 0.05]) {
            assert!((a - b).abs() < 1e-6, "{q:?}");
        }
        assert_eq!(ew, vec![3.0]);
        // Mixup with λ = 0.75 of class 1 and partner class 3, no smoothing.
        let m = Mixed {
            lambda: 0.75,
            partner_targets: vec![3],
        };
        let (q, ew) = soft_targets(&[1], Some(&m), 4, 0.0, &w);
        assert_eq!(q, vec![0.0, 0.75, 0.0, 0.25]);
        assert_eq!(ew, vec![0.75 * 3.0 + 0.25]);
        // Rows sum to 1 either way.
        let (q, _) = soft_targets(
            &[0, 2],
            Some(&Mixed {
                lambda: 0.3,
                partner_targets: vec![2, 1],
            }),
            4,
            0.1,
            &w,
        );
        for row in q.chunks(4) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn beta_draws_have_the_right_mean_and_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for alpha in [0.2, 1.0, 4.0] {
            let v: Vec<f64> = (0..4000).map(|_| beta_sample(alpha, &mut rng)).collect();
            assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
            // Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)).
            assert!((mean - 0.5).abs() < 0.02, "alpha {alpha}: mean {mean}");
            let expect = 1.0 / (4.0 * (2.0 * alpha + 1.0));
            assert!(
                (var - expect).abs() < 0.1 * expect,
                "alpha {alpha}: var {var} vs {expect}"
            );
        }
    }
}
