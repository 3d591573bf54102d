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
}

/// The frames × dims values of row `i` of a feature column.
fn column_rows(c: &dyn Array, i: usize) -> Result<(Vec<f32>, usize, usize), String> {
    match c.data_type() {
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
        });
    }
    Ok(out)
}

/// How examples are normalized before the (training-set) standardizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// Only the global standardizer fitted on the training part.
    #[default]
    Global,
    /// First z-normalize every group (speaker) with its own per-dimension mean and
    /// std over all its frames. Uses the test speaker's audio but never its
    /// labels: speaker-level normalization, common in speaker-independent SER.
    Speaker,
}

/// Z-normalize each group's frames with the group's own statistics (in place).
pub fn normalize_groups(ex: &mut [Example], dims: usize) {
    let mut by_group: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, e) in ex.iter().enumerate() {
        by_group.entry(e.group.clone()).or_default().push(i);
    }
    for idx in by_group.values() {
        let refs: Vec<&Example> = idx.iter().map(|&i| &ex[i]).collect();
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
}

impl Standardizer {
    /// Mean and std over every frame of `examples` (std floored at 1e-5).
    pub fn fit(examples: &[&Example], dims: usize) -> Standardizer {
        let mut sum = vec![0f64; dims];
        let mut sq = vec![0f64; dims];
        let mut n = 0f64;
        for e in examples {
            for f in e.x.chunks_exact(dims) {
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
        Standardizer { mean, std }
    }

    pub fn apply(&self, x: &mut [f32]) {
        let d = self.mean.len();
        for f in x.chunks_exact_mut(d) {
            for ((v, m), s) in f.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Masking {
    #[serde(default = "d_bands")]
    pub time: usize,
    #[serde(default = "d_time_width")]
    pub time_width: usize,
    #[serde(default = "d_bands")]
    pub feature: usize,
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
        let dims = self.dims;
        let t = examples
            .iter()
            .map(|e| e.frames.min(self.max_frames))
            .max()
            .unwrap_or(1)
            .max(1);
        let b = examples.len();
        let mut x = vec![0f32; b * t * dims];
        let mut mask = vec![0f32; b * t];
        let mut targets = Vec::with_capacity(b);
        for (i, e) in examples.iter().enumerate() {
            let n = e.frames.min(t);
            let dst = &mut x[i * t * dims..(i * t + n) * dims];
            dst.copy_from_slice(&e.x[..n * dims]);
            self.norm.apply(dst);
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
