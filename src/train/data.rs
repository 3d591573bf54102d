//! Feature rows → examples → padded tensor batches (burn's `Batcher` idea).
//!
//! A feature column is `List<FixedSizeList<Float32, D>>` (frames × D) or
//! `FixedSizeList<Float32, D>` (one pooled vector, taken as one frame). The
//! selected columns are concatenated per frame, standardized per dimension with
//! statistics of the training set only ([`Standardizer`], saved with the model),
//! and padded to the longest example of a batch with a mask.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, FixedSizeListArray, Float32Array, ListArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use burn::data::dataloader::batcher::Batcher;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::schema::col;

/// One clip (or segment): its frames and what it is.
#[derive(Debug, Clone)]
pub struct Example {
    /// `frames × dims`, row-major.
    pub x: Vec<f32>,
    pub frames: usize,
    /// Class index (into the label list), if the row has a known label.
    pub label: Option<usize>,
    pub label_text: Option<String>,
    /// Value of the grouping column (speaker, session, ...).
    pub group: String,
    pub clip_id: String,
    pub segment: u32,
    pub start_s: f64,
    pub end_s: f64,
    /// The `augment` stage's variant of the row (`None` without a `variant`
    /// column). Only clean rows are validated, tested and scored.
    pub variant: Option<String>,
}

/// The variant name of unaugmented rows (the `augment` stage's `clean`).
pub const CLEAN: &str = "clean";

#[cfg(test)]
impl Example {
    /// An example for unit tests: `x` over `frames` frames, label 0, in `group`.
    pub(crate) fn for_test(x: Vec<f32>, frames: usize, group: &str) -> Example {
        Example {
            x,
            frames,
            label: Some(0),
            label_text: None,
            group: group.to_string(),
            clip_id: String::new(),
            segment: 0,
            start_s: 0.0,
            end_s: 0.0,
            variant: None,
        }
    }
}

impl Example {
    /// True for an unaugmented row: no `variant` column, or variant `clean`.
    pub fn is_clean(&self) -> bool {
        self.variant.as_deref().is_none_or(|v| v == CLEAN)
    }
}

/// The frames × dims values of row `i` of a feature column.
fn column_rows(c: &dyn Array, i: usize) -> Result<(Vec<f32>, usize, usize), String> {
    match c.data_type() {
        // Raw audio (`samples`, for `ssl_finetune`): one value per frame.
        DataType::List(f) if f.data_type() == &DataType::Float32 => {
            let l: &ListArray = c.as_list::<i32>();
            let inner = l.value(i);
            let vals: &Float32Array = inner.as_primitive_opt().ok_or("values are not Float32")?;
            Ok((vals.values().to_vec(), vals.len(), 1))
        }
        DataType::List(_) => {
            let l: &ListArray = c.as_list::<i32>();
            let inner = l.value(i);
            let fsl: &FixedSizeListArray = inner
                .as_fixed_size_list_opt()
                .ok_or("not a list of fixed-size lists")?;
            let d = fsl.value_length() as usize;
            let vals: &Float32Array = fsl
                .values()
                .as_primitive_opt()
                .ok_or("values are not Float32")?;
            let start = fsl.offset() * d;
            let v = vals.values()[start..start + fsl.len() * d].to_vec();
            Ok((v, fsl.len(), d))
        }
        DataType::FixedSizeList(_, _) => {
            let fsl = c.as_fixed_size_list();
            let d = fsl.value_length() as usize;
            let row = fsl.value(i);
            let vals: &Float32Array = row.as_primitive_opt().ok_or("values are not Float32")?;
            Ok((vals.values().to_vec(), 1, d))
        }
        t => Err(format!("is {t}, not a feature column")),
    }
}

/// Width (dims per frame) of a feature column type.
pub fn column_width(t: &DataType) -> Option<usize> {
    match t {
        DataType::List(f) => match f.data_type() {
            DataType::FixedSizeList(_, d) => Some(*d as usize),
            _ => None,
        },
        DataType::FixedSizeList(_, d) => Some(*d as usize),
        _ => None,
    }
}

fn text(b: &RecordBatch, name: &str, i: usize) -> Option<String> {
    let c = b.column_by_name(name)?;
    let c = c.as_string_opt::<i32>()?;
    c.is_valid(i).then(|| c.value(i).to_string())
}

/// Turn rows into examples: `features` columns concatenated per frame, `group_by`
/// as the group, `labels` giving class indices.
pub fn examples(
    batch: &RecordBatch,
    features: &[String],
    group_by: &str,
    labels: &BTreeMap<String, usize>,
) -> Result<Vec<Example>, String> {
    let mut out = Vec::with_capacity(batch.num_rows());
    let cols: Vec<&dyn Array> = features
        .iter()
        .map(|f| {
            batch
                .column_by_name(f)
                .map(|c| c.as_ref())
                .ok_or_else(|| format!("no feature column `{f}`"))
        })
        .collect::<Result<_, _>>()?;
    let segment = batch.column_by_name(col::SEGMENT).and_then(|c| {
        c.as_primitive_opt::<arrow::datatypes::UInt32Type>()
            .cloned()
    });
    let f64col = |n: &str| {
        batch.column_by_name(n).and_then(|c| {
            c.as_primitive_opt::<arrow::datatypes::Float64Type>()
                .cloned()
        })
    };
    let (start, end) = (f64col(col::START_S), f64col(col::END_S));
    for i in 0..batch.num_rows() {
        let mut parts = Vec::new();
        for (name, c) in features.iter().zip(&cols) {
            parts.push(column_rows(*c, i).map_err(|e| format!("column `{name}` {e}"))?);
        }
        let frames = parts.iter().map(|p| p.1).max().unwrap_or(0);
        if parts.iter().any(|p| p.1 != frames && p.1 != 1) {
            return Err(format!(
                "the feature columns {} have different frame counts; compute them with the same hop",
                features.join(", ")
            ));
        }
        let dims: usize = parts.iter().map(|p| p.2).sum();
        let mut x = Vec::with_capacity(frames * dims);
        for t in 0..frames {
            for (v, n, d) in &parts {
                let tt = if *n == 1 { 0 } else { t };
                x.extend_from_slice(&v[tt * d..(tt + 1) * d]);
            }
        }
        let label_text = text(batch, col::LABEL, i);
        out.push(Example {
            x,
            frames,
            label: label_text.as_ref().and_then(|l| labels.get(l).copied()),
            label_text,
            group: text(batch, group_by, i).unwrap_or_default(),
            clip_id: text(batch, col::CLIP_ID, i).unwrap_or_default(),
            segment: segment.as_ref().map(|s| s.value(i)).unwrap_or(0),
            start_s: start.as_ref().map(|s| s.value(i)).unwrap_or(0.0),
            end_s: end.as_ref().map(|s| s.value(i)).unwrap_or(0.0),
            variant: text(batch, crate::schema::col::VARIANT, i),
        });
    }
    Ok(out)
}

/// The `corpus` value of every row of `batch` (`None` without the column).
pub fn corpus_of(batch: &RecordBatch) -> Vec<Option<String>> {
    (0..batch.num_rows())
        .map(|i| text(batch, col::CORPUS, i))
        .collect()
}

/// A speaker (or session) id means something only inside its corpus: EmoDB's
/// speaker `03` and RAVDESS's actor `03` are two people. When the rows come from
/// more than one corpus, every group becomes `corpus/group` (`emodb/03`,
/// `ravdess/03`), so folds, validation parts and speaker normalization keep them
/// apart. `corpus[i]` is the corpus of `ex[i]`. Returns the corpora when it renamed
/// the groups, `None` (nothing changed) for a single corpus or no `corpus` column.
pub fn qualify_groups(ex: &mut [Example], corpus: &[Option<String>]) -> Option<Vec<String>> {
    let names: std::collections::BTreeSet<&str> =
        corpus.iter().flatten().map(String::as_str).collect();
    if names.len() < 2 {
        return None;
    }
    let names: Vec<String> = names.into_iter().map(str::to_string).collect();
    for (e, c) in ex.iter_mut().zip(corpus) {
        let c = c.as_deref().unwrap_or("");
        e.group = format!("{c}/{}", e.group);
    }
    Some(names)
}

/// How examples are normalized before the (training-set) standardizer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// Only the global standardizer fitted on the training part.
    #[default]
    Global,
    /// First z-normalize every group (speaker) with its own per-dimension mean and
    /// std over all its frames. Uses the test speaker's audio but never its
    /// labels: speaker-level normalization, common in speaker-independent SER.
    Speaker,
    /// Z-normalize every clip (row) with its own per-dimension mean and std over
    /// its frames, in training and at inference (part of the saved standardizer,
    /// so it works row by row in the `infer` stage too). Removes each clip's
    /// level and spectral tilt along with the speaker's.
    Utterance,
}

/// Z-normalize each group's frames with the group's own statistics (in place).
/// The statistics come from the group's clean rows ([`Example::is_clean`]) when it
/// has any, so augmented copies do not shift a speaker's normalization: a test
/// speaker is normalized the same with or without augmentation upstream.
pub fn normalize_groups(ex: &mut [Example], dims: usize) {
    let mut by_group: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, e) in ex.iter().enumerate() {
        by_group.entry(e.group.clone()).or_default().push(i);
    }
    for idx in by_group.values() {
        let clean: Vec<&Example> = idx
            .iter()
            .map(|&i| &ex[i])
            .filter(|e| e.is_clean())
            .collect();
        let refs: Vec<&Example> = if clean.is_empty() {
            idx.iter().map(|&i| &ex[i]).collect()
        } else {
            clean
        };
        let st = Standardizer::fit(&refs, dims);
        for &i in idx {
            st.apply(&mut ex[i].x);
        }
    }
}

/// Per-dimension standardization fitted on training examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Z-normalize every clip with its own statistics first (`normalize =
    /// "utterance"`); `mean`/`std` are then fitted on clip-normalized frames.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub per_clip: bool,
}

impl Standardizer {
    /// Mean and std over every frame of `examples` (std floored at 1e-5).
    pub fn fit(examples: &[&Example], dims: usize) -> Standardizer {
        Self::fit_with(examples, dims, false)
    }

    /// [`Standardizer::fit`]; with `per_clip`, each clip is z-normalized with its
    /// own statistics before it is counted (and before [`Standardizer::apply`]).
    pub fn fit_with(examples: &[&Example], dims: usize, per_clip: bool) -> Standardizer {
        let mut sum = vec![0f64; dims];
        let mut sq = vec![0f64; dims];
        let mut n = 0f64;
        for e in examples {
            let own;
            let x: &[f32] = if per_clip {
                let mut v = e.x.clone();
                clip_normalize(&mut v, dims);
                own = v;
                &own
            } else {
                &e.x
            };
            for f in x.chunks_exact(dims) {
                for (k, &v) in f.iter().enumerate() {
                    sum[k] += v as f64;
                    sq[k] += (v as f64) * (v as f64);
                }
                n += 1.0;
            }
        }
        let n = n.max(1.0);
        let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let std = sq
            .iter()
            .zip(&sum)
            .map(|(q, s)| ((q / n - (s / n) * (s / n)).max(0.0).sqrt() as f32).max(1e-5))
            .collect();
        Standardizer {
            mean,
            std,
            per_clip,
        }
    }

    /// Standardize the frames of one clip (`frames × dims`, row-major).
    pub fn apply(&self, x: &mut [f32]) {
        let d = self.mean.len();
        if self.per_clip {
            clip_normalize(x, d);
        }
        for f in x.chunks_exact_mut(d) {
            for ((v, m), s) in f.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
    }
}

/// Z-normalize one clip's frames (`frames × dims`) per dimension with the clip's
/// own mean and std (std floored at 1e-5; a single frame becomes 0).
pub fn clip_normalize(x: &mut [f32], dims: usize) {
    if dims == 0 {
        return;
    }
    let n = (x.len() / dims).max(1) as f64;
    let mut sum = vec![0f64; dims];
    let mut sq = vec![0f64; dims];
    for f in x.chunks_exact(dims) {
        for (k, &v) in f.iter().enumerate() {
            sum[k] += v as f64;
            sq[k] += (v as f64) * (v as f64);
        }
    }
    let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
    let std: Vec<f32> = sq
        .iter()
        .zip(&sum)
        .map(|(q, s)| ((q / n - (s / n) * (s / n)).max(0.0).sqrt() as f32).max(1e-5))
        .collect();
    for f in x.chunks_exact_mut(dims) {
        for ((v, m), s) in f.iter_mut().zip(&mean).zip(&std) {
            *v = (*v - m) / s;
        }
    }
}

/// A padded batch on a device.
pub struct Batch<B: Backend> {
    pub x: Tensor<B, 3>,
    pub mask: Tensor<B, 2>,
    pub targets: Tensor<B, 1, Int>,
}

/// A padded batch in host memory: built on the prefetch thread, moved to the
/// device by the training thread.
#[derive(Debug, Clone)]
pub struct HostBatch {
    pub x: Vec<f32>,
    pub mask: Vec<f32>,
    pub targets: Vec<i64>,
    pub batch: usize,
    pub frames: usize,
    pub dims: usize,
}

impl HostBatch {
    pub fn to_device<B: Backend>(self, device: &B::Device) -> Batch<B> {
        let (b, t, d) = (self.batch, self.frames, self.dims);
        Batch {
            x: Tensor::from_data(TensorData::new(self.x, [b, t, d]), device),
            mask: Tensor::from_data(TensorData::new(self.mask, [b, t]), device),
            targets: Tensor::from_data(TensorData::new(self.targets, [b]), device),
        }
    }
}

/// SpecAugment-style masking of training batches (Park et al. 2019): in each
/// example, `time` bands of 0..=`time_width` consecutive frames and `feature`
/// bands of 0..=`feature_width` consecutive dimensions are set to 0 — the training
/// mean after standardization. Only training batches are masked, only within an
/// example's real frames; validation, test and inference see whole inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Masking {
    /// Time masks per training example.
    #[serde(default = "d_bands")]
    pub time: usize,
    /// Widest time mask in frames (each drawn uniformly up to it).
    #[serde(default = "d_time_width")]
    pub time_width: usize,
    /// Feature (frequency) masks per training example.
    #[serde(default = "d_bands")]
    pub feature: usize,
    /// Widest feature mask in dimensions.
    #[serde(default = "d_feature_width")]
    pub feature_width: usize,
}

fn d_bands() -> usize {
    2
}
fn d_time_width() -> usize {
    20
}
fn d_feature_width() -> usize {
    6
}

impl HostBatch {
    /// Apply `m` to every example; `lengths[i]` is example i's real frame count.
    pub fn spec_mask(&mut self, m: &Masking, lengths: &[usize], rng: &mut impl rand::Rng) {
        let (t, d) = (self.frames, self.dims);
        for (i, &len) in lengths.iter().enumerate().take(self.batch) {
            let len = len.min(t);
            let ex = &mut self.x[i * t * d..(i * t + len) * d];
            for _ in 0..m.time {
                let w = rng.random_range(0..=m.time_width.min(len));
                if w == 0 {
                    continue;
                }
                let start = rng.random_range(0..=len - w);
                ex[start * d..(start + w) * d].fill(0.0);
            }
            for _ in 0..m.feature {
                let w = rng.random_range(0..=m.feature_width.min(d));
                if w == 0 {
                    continue;
                }
                let start = rng.random_range(0..=d - w);
                for f in ex.chunks_exact_mut(d) {
                    f[start..start + w].fill(0.0);
                }
            }
        }
    }
}

/// Examples → standardized, padded, masked batches (burn's `Batcher`).
#[derive(Debug, Clone)]
pub struct SerBatcher {
    pub dims: usize,
    pub norm: Standardizer,
    /// Longer examples are cut to this many frames (their first frames are kept).
    pub max_frames: usize,
}

impl SerBatcher {
    /// Pad `examples` (standardized copies) to the longest of them.
    pub fn host(&self, examples: &[&Example]) -> HostBatch {
        let windows: Vec<(usize, usize)> = examples
            .iter()
            .map(|e| (0, e.frames.min(self.max_frames)))
            .collect();
        self.host_windows(examples, &windows)
    }

    /// [`SerBatcher::host`] on a window of each example: `windows[i] = (start,
    /// len)` in frames (clamped to the example and to `max_frames`). Training
    /// uses it for random crops; a clip is standardized as a whole (its own
    /// statistics with `normalize = "utterance"`) before the window is cut.
    pub fn host_windows(&self, examples: &[&Example], windows: &[(usize, usize)]) -> HostBatch {
        let dims = self.dims;
        let win = |i: usize, e: &Example| {
            let (s, l) = windows.get(i).copied().unwrap_or((0, e.frames));
            let s = s.min(e.frames);
            (s, l.min(e.frames - s).min(self.max_frames))
        };
        let t = examples
            .iter()
            .enumerate()
            .map(|(i, e)| win(i, e).1)
            .max()
            .unwrap_or(1)
            .max(1);
        let b = examples.len();
        let mut x = vec![0f32; b * t * dims];
        let mut mask = vec![0f32; b * t];
        let mut targets = Vec::with_capacity(b);
        for (i, e) in examples.iter().enumerate() {
            let (s, n) = win(i, e);
            let dst = &mut x[i * t * dims..(i * t + n) * dims];
            if self.norm.per_clip {
                let mut whole = e.x.clone();
                self.norm.apply(&mut whole);
                dst.copy_from_slice(&whole[s * dims..(s + n) * dims]);
            } else {
                dst.copy_from_slice(&e.x[s * dims..(s + n) * dims]);
                self.norm.apply(dst);
            }
            for m in &mut mask[i * t..i * t + n] {
                *m = 1.0;
            }
            targets.push(e.label.unwrap_or(0) as i64);
        }
        HostBatch {
            x,
            mask,
            targets,
            batch: b,
            frames: t,
            dims,
        }
    }
}

/// Mixup (Zhang et al. 2018, "mixup: Beyond empirical risk minimization") of a
/// training batch: example i becomes `lambda · x_i + (1 − lambda) · x_partner[i]`
/// (mask: the union of both), and its loss target the same mixture of the two
/// labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Mixed {
    pub lambda: f32,
    /// The partner's class of every example.
    pub partner_targets: Vec<i64>,
}

impl HostBatch {
    /// Mix every example with `partner[i]` (a permutation of the batch) by `lambda`.
    pub fn mixup(&mut self, partner: &[usize], lambda: f32) -> Mixed {
        let (t, d) = (self.frames, self.dims);
        let x0 = self.x.clone();
        let m0 = self.mask.clone();
        for (i, &j) in partner.iter().enumerate().take(self.batch) {
            let (a, b) = (
                &x0[i * t * d..(i + 1) * t * d],
                &x0[j * t * d..(j + 1) * t * d],
            );
            for ((o, &p), &q) in self.x[i * t * d..(i + 1) * t * d].iter_mut().zip(a).zip(b) {
                *o = lambda * p + (1.0 - lambda) * q;
            }
            for k in 0..t {
                self.mask[i * t + k] = m0[i * t + k].max(m0[j * t + k]);
            }
        }
        Mixed {
            lambda,
            partner_targets: partner.iter().map(|&j| self.targets[j]).collect(),
        }
    }
}

/// A draw from Beta(alpha, alpha) (two Gamma(alpha) draws, Marsaglia–Tsang).
pub fn beta_sample(alpha: f64, rng: &mut impl rand::Rng) -> f64 {
    let a = gamma_sample(alpha, rng);
    let b = gamma_sample(alpha, rng);
    if a + b <= 0.0 { 0.5 } else { a / (a + b) }
}

fn gamma_sample(alpha: f64, rng: &mut impl rand::Rng) -> f64 {
    if alpha < 1.0 {
        // Gamma(a) = Gamma(a + 1) · U^(1/a).
        let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
        return gamma_sample(alpha + 1.0, rng) * u.powf(1.0 / alpha);
    }
    let d = alpha - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        // A standard normal by Box–Muller.
        let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
        let u2: f64 = rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        let v = (1.0 + c * z).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
        if u.ln() < 0.5 * z * z + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

impl<'a, B: Backend> Batcher<B, &'a Example, Batch<B>> for SerBatcher {
    fn batch(&self, items: Vec<&'a Example>, device: &B::Device) -> Batch<B> {
        self.host(&items).to_device(device)
    }
}

/// Batches of one epoch: examples of similar length go together so little of a
/// batch is padding ("sortish" sampling). The order is shuffled, cut into pools of
/// 50 batches, each pool sorted by length and cut into batches, and the batches
/// shuffled again; deterministic for an `rng` state.
pub fn length_buckets(
    lengths: &[usize],
    batch_size: usize,
    rng: &mut impl rand::Rng,
) -> Vec<Vec<usize>> {
    use rand::seq::SliceRandom;
    let bs = batch_size.max(1);
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.shuffle(rng);
    let mut batches = Vec::new();
    for pool in order.chunks_mut(bs * 50) {
        pool.sort_by_key(|&i| lengths[i]);
        batches.extend(pool.chunks(bs).map(|c| c.to_vec()));
    }
    batches.shuffle(rng);
    batches
}

/// Run `make` over `jobs` on a helper thread, at most `ahead` results waiting,
/// while `body` consumes them in order on this thread (prefetching: the next
/// batch is padded while the model works on this one). Returns `body`'s result.
pub fn prefetch<J: Send, T: Send, R>(
    jobs: Vec<J>,
    ahead: usize,
    make: impl Fn(J) -> T + Send + Sync,
    body: impl FnOnce(&mut dyn Iterator<Item = T>) -> R,
) -> R {
    let (tx, rx) = crossbeam_channel::bounded(ahead.max(1));
    std::thread::scope(|s| {
        s.spawn(move || {
            for j in jobs {
                if tx.send(make(j)).is_err() {
                    break;
                }
            }
        });
        let mut items = rx.iter();
        body(&mut items)
        // `rx` is dropped here, so a producer still sending stops at once.
    })
}

/// Pad `examples` into one batch on `device` (see [`SerBatcher`]).
pub fn batch<B: Backend>(
    examples: &[&Example],
    dims: usize,
    norm: &Standardizer,
    max_frames: usize,
    device: &B::Device,
) -> Batch<B> {
    SerBatcher {
        dims,
        norm: norm.clone(),
        max_frames,
    }
    .host(examples)
    .to_device(device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn of_group(group: &str) -> Example {
        Example::for_test(vec![0.0; 2], 1, group)
    }

    #[test]
    fn equal_speaker_ids_of_two_corpora_are_two_groups() {
        let mut ex: Vec<Example> = ["03", "03", "08"].into_iter().map(of_group).collect();
        let corpus = [Some("emodb"), Some("ravdess"), Some("emodb")].map(|c| c.map(String::from));
        assert_eq!(
            qualify_groups(&mut ex, &corpus),
            Some(vec!["emodb".to_string(), "ravdess".to_string()])
        );
        let groups: Vec<&str> = ex.iter().map(|e| e.group.as_str()).collect();
        assert_eq!(groups, ["emodb/03", "ravdess/03", "emodb/08"]);
        // One corpus, or no corpus column: the ids stay as they are.
        let mut one: Vec<Example> = ["03", "08"].into_iter().map(of_group).collect();
        assert_eq!(
            qualify_groups(&mut one, &[Some("emodb".into()), Some("emodb".into())]),
            None
        );
        assert_eq!(qualify_groups(&mut one, &[None, None]), None);
        assert_eq!(one[0].group, "03");
    }

    fn batch(lengths: &[usize], t: usize, d: usize) -> HostBatch {
        let b = lengths.len();
        let mut x = vec![0f32; b * t * d];
        for (i, &len) in lengths.iter().enumerate() {
            x[i * t * d..(i * t + len) * d].fill(1.0);
        }
        HostBatch {
            x,
            mask: vec![0.0; b * t],
            targets: vec![0; b],
            batch: b,
            frames: t,
            dims: d,
        }
    }

    #[test]
    fn mixup_mixes_values_masks_and_targets() {
        // Example 0: 3 real frames of 1.0; example 1: 5 real frames of 3.0.
        let mut hb = batch(&[3, 5], 5, 2);
        hb.x[10..20].fill(3.0);
        hb.mask = vec![1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        hb.targets = vec![4, 6];
        let m = hb.mixup(&[1, 0], 0.75);
        assert_eq!(m.partner_targets, vec![6, 4]);
        assert_eq!(&hb.x[..6], &[1.5; 6]); // 0.75 · 1 + 0.25 · 3
        assert_eq!(&hb.x[6..10], &[0.75; 4]); // 0.75 · 0 + 0.25 · 3
        assert_eq!(&hb.x[10..16], &[2.5; 6]); // 0.75 · 3 + 0.25 · 1
        assert_eq!(hb.mask, vec![1.0; 10]);
    }

    #[test]
    fn windows_and_per_clip_normalization() {
        // 6 frames × 2 dims.
        let e = Example::for_test((0..12).map(|v| v as f32).collect(), 6, "");
        let plain = SerBatcher {
            dims: 2,
            norm: Standardizer {
                mean: vec![0.0, 0.0],
                std: vec![1.0, 1.0],
                per_clip: false,
            },
            max_frames: 100,
        };
        let hb = plain.host_windows(&[&e], &[(2, 3)]);
        assert_eq!(hb.frames, 3);
        assert_eq!(hb.x, vec![4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        // A window past the end is clamped to the clip.
        let hb = plain.host_windows(&[&e], &[(5, 4)]);
        assert_eq!(hb.x, vec![10.0, 11.0]);
        // Per-clip: the whole clip is z-normalized before the window is cut.
        let mut per_clip = plain.clone();
        per_clip.norm.per_clip = true;
        let whole = per_clip.host(&[&e]);
        let mean: f32 = whole.x.iter().step_by(2).sum::<f32>() / 6.0;
        let var: f32 = whole.x.iter().step_by(2).map(|v| v * v).sum::<f32>() / 6.0;
        assert!(
            mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5,
            "{mean} {var}"
        );
        let win = per_clip.host_windows(&[&e], &[(2, 3)]);
        assert_eq!(win.x, whole.x[4..10].to_vec());
        // fit_with(per_clip) sees normalized clips: mean 0, std 1.
        let st = Standardizer::fit_with(&[&e], 2, true);
        assert!(st.mean.iter().all(|m| m.abs() < 1e-6));
        assert!(st.std.iter().all(|s| (s - 1.0).abs() < 1e-5));
    }

    #[test]
    fn spec_mask_zeroes_bands_inside_real_frames_only() {
        let (t, d) = (50, 10);
        let lengths = [50, 30];
        let m = Masking {
            time: 1,
            time_width: 8,
            feature: 1,
            feature_width: 3,
        };
        let mut masked_frames = 0;
        let mut masked_dims = 0;
        for seed in 0..20 {
            let mut hb = batch(&lengths, t, d);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            hb.spec_mask(&m, &lengths, &mut rng);
            for (i, &len) in lengths.iter().enumerate() {
                let ex = &hb.x[i * t * d..(i + 1) * t * d];
                // Padding stays zero, nothing outside the real frames changes.
                assert!(ex[len * d..].iter().all(|&v| v == 0.0));
                let frames = ex[..len * d].chunks_exact(d);
                let zero_frames = frames.clone().filter(|f| f.iter().all(|&v| v == 0.0));
                let n = zero_frames.count();
                assert!(n <= 8, "time band wider than time_width: {n}");
                masked_frames += n;
                let zero_dims = (0..d)
                    .filter(|&k| frames.clone().all(|f| f[k] == 0.0))
                    .count();
                assert!(zero_dims <= 3 || n == len);
                masked_dims += zero_dims;
                // Everything else is untouched.
                assert!(ex[..len * d].iter().all(|&v| v == 0.0 || v == 1.0));
            }
        }
        assert!(masked_frames > 0 && masked_dims > 0);
        // Same seed, same masks.
        let mut a = batch(&lengths, t, d);
        let mut b = batch(&lengths, t, d);
        a.spec_mask(&m, &lengths, &mut rand_chacha::ChaCha8Rng::seed_from_u64(3));
        b.spec_mask(&m, &lengths, &mut rand_chacha::ChaCha8Rng::seed_from_u64(3));
        assert_eq!(a.x, b.x);
    }
}
