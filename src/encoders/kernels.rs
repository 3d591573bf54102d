//! The CPU kernels of the encoders' inference pass ([`super::cpu`]): matrix
//! products on strided views (the `gemm` crate: runtime-dispatched AVX2/FMA or
//! AVX-512 micro-kernels, rayon-parallel), and the element-wise steps —
//! exact-form GELU, softmax, layer and group norms — as single fused passes
//! over contiguous `f32` rows, vectorized where the CPU allows and split over
//! rayon's threads when large.
//!
//! Numerics: GELU's `erf` is Abramowitz & Stegun 7.1.26 (absolute error
//! ≤ 1.5·10⁻⁷), the formula PyTorch's vectorized CPU `erf` uses; `exp` is
//! Cephes' single-precision polynomial (relative error ~10⁻⁷); norm statistics
//! are accumulated in `f64`. Pure arithmetic on slices: no tensors, no I/O.

use rayon::prelude::*;

/// Elements per task when an element-wise pass is split over threads.
const PAR_CHUNK: usize = 1 << 16;

/// The threads the current rayon pool offers (`--threads`, `RAYON_NUM_THREADS`).
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// A matrix view: `data[offset + i·row + j·col]` is element `(i, j)`.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub row: usize,
    pub col: usize,
}

impl<'a> View<'a> {
    /// A row-major matrix with `cols` columns starting at `offset`.
    pub fn rows(data: &'a [f32], offset: usize, cols: usize) -> Self {
        View {
            data,
            offset,
            row: cols,
            col: 1,
        }
    }

    /// The last index an `r × c` view reads (`None`: empty).
    fn last(&self, r: usize, c: usize) -> Option<usize> {
        (r > 0 && c > 0).then(|| self.offset + (r - 1) * self.row + (c - 1) * self.col)
    }
}

/// `dst[i·dst_row + j] (+)= Σ_p a(i, p) · b(p, j)` for an `m × k` view `a` and a
/// `k × n` view `b`; with `accumulate` the product is added to what `dst`
/// holds (e.g. a bias broadcast beforehand). `parallel`: split the product over
/// the rayon pool (results do not depend on the thread count's timing: each
/// output block is computed by one thread in a fixed order).
///
/// Panics if a view or `dst` is too short for the shape (a programming error:
/// every caller sizes its buffers from the same dimensions).
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_row: usize,
    accumulate: bool,
    a: View<'_>,
    b: View<'_>,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    let dst_last = (m - 1) * dst_row + n - 1;
    assert!(dst_last < dst.len(), "matmul: destination too short");
    assert!(dst_row >= n, "matmul: destination rows overlap");
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                dst[i * dst_row..i * dst_row + n].fill(0.0);
            }
        }
        return;
    }
    assert!(
        a.last(m, k).is_some_and(|l| l < a.data.len()),
        "matmul: left operand too short"
    );
    assert!(
        b.last(k, n).is_some_and(|l| l < b.data.len()),
        "matmul: right operand too short"
    );
    let par = if parallel && threads() > 1 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every element the three views address
    // inside their slices; `dst` is borrowed mutably, so it aliases neither
    // operand; strides fit in isize (they index slices that exist).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_row as isize,
            accumulate,
            a.data.as_ptr().add(a.offset),
            a.col as isize,
            a.row as isize,
            b.data.as_ptr().add(b.offset),
            b.col as isize,
            b.row as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// `rows × bias.len()` copies of `bias` (or zeros), the start of `x·W + b`.
pub fn broadcast(rows: usize, bias: Option<&[f32]>, width: usize) -> Vec<f32> {
    match bias {
        Some(b) => {
            let mut out = Vec::with_capacity(rows * width);
            for _ in 0..rows {
                out.extend_from_slice(b);
            }
            out
        }
        None => vec![0.0; rows * width],
    }
}

/// Run `body` on `x` in chunks (whole rows of `row` elements), in parallel when
/// `x` is large and the pool has several threads.
fn chunked(x: &mut [f32], row: usize, body: impl Fn(&mut [f32]) + Sync + Send) {
    let row = row.max(1);
    let per = (PAR_CHUNK / row).max(1) * row;
    if x.len() > per && threads() > 1 {
        x.par_chunks_mut(per).for_each(body);
    } else {
        body(x);
    }
}

macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident, $body:ident ( $($arg:ident : $ty:ty),* )) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn wide($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has the features `wide` is compiled for.
                    unsafe { wide($($arg),*) };
                    return;
                }
            }
            $body($($arg),*)
        }
    };
}

/// `eˣ` in single precision without a branch (vectorizes): Cephes' `expf`
/// polynomial after `x = n·ln 2 + r`; the input is clamped to [−87, 88], NaN
/// stays NaN. (`mul_add` is one FMA instruction where the CPU has it.)
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // max/min, not clamp: they vectorize here (clamp did not), and NaN is
    // handled below.
    #[allow(clippy::manual_clamp)]
    let c = x.max(-87.0).min(88.0);
    let n = c.mul_add(LOG2E, 0.5).floor();
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, c));
    let p = 1.987_569_1e-4f32
        .mul_add(r, 1.398_199_9e-3)
        .mul_add(r, 8.333_452e-3)
        .mul_add(r, 4.166_579_6e-2)
        .mul_add(r, 1.666_666_5e-1)
        .mul_add(r, 0.5);
    let y = (p * r).mul_add(r, r) + 1.0;
    // SAFETY: `n` is an integer in [−126, 127] (`c` is clamped and not NaN).
    let e = unsafe { n.to_int_unchecked::<i32>() } + 127;
    let v = y * f32::from_bits((e as u32) << 23);
    if x.is_nan() { x } else { v }
}

/// The exact-form GELU `x/2 · (1 + erf(x/√2))`.
#[inline(always)]
pub fn gelu_one(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_72;
    const A3: f32 = 1.421_413_8;
    const A4: f32 = -1.453_152;
    const A5: f32 = 1.061_405_4;
    let z = x * std::f32::consts::FRAC_1_SQRT_2;
    let az = z.abs();
    let t = 1.0 / P.mul_add(az, 1.0);
    let poly = A5
        .mul_add(t, A4)
        .mul_add(t, A3)
        .mul_add(t, A2)
        .mul_add(t, A1)
        * t;
    let erf = (1.0 - poly * exp(-az * az)).copysign(z);
    0.5 * x * (1.0 + erf)
}

#[inline(always)]
fn gelu_body(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = gelu_one(*v);
    }
}

dispatch!(gelu_slice, gelu_body(x: &mut [f32]));

/// GELU of every element, in place.
pub fn gelu(x: &mut [f32]) {
    chunked(x, 1, gelu_slice);
}

#[inline(always)]
fn softmax_body(row: &mut [f32]) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = exp(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

dispatch!(
    /// Softmax of one row, in place.
    softmax_row,
    softmax_body(row: &mut [f32])
);

/// `(x − mean) / √(var + eps) · γ + β` of one row, statistics in `f64`.
#[inline(always)]
fn layer_norm_body(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f64) {
    let n = row.len() as f64;
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let (mean, inv) = (mean as f32, (1.0 / (var + eps).sqrt()) as f32);
    for ((v, &g), &b) in row.iter_mut().zip(gamma).zip(beta) {
        *v = (*v - mean) * inv * g + b;
    }
}

dispatch!(layer_norm_rows_serial, layer_norm_rows_body(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f64));

#[inline(always)]
fn layer_norm_rows_body(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f64) {
    for row in x.chunks_exact_mut(gamma.len()) {
        layer_norm_body(row, gamma, beta, eps);
    }
}

/// LayerNorm over each row of `x` (rows of `gamma.len()` values), in place;
/// with `residual`, `x + residual` is normalized (and left in `x`).
pub fn layer_norm(x: &mut [f32], residual: Option<&[f32]>, gamma: &[f32], beta: &[f32], eps: f64) {
    if let Some(r) = residual {
        add(x, r);
    }
    chunked(x, gamma.len(), |c| {
        layer_norm_rows_serial(c, gamma, beta, eps)
    });
}

#[inline(always)]
fn add_body(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

dispatch!(add_serial, add_body(x: &mut [f32], y: &[f32]));

/// `x += y` element by element.
pub fn add(x: &mut [f32], y: &[f32]) {
    if x.len() > PAR_CHUNK && threads() > 1 {
        x.par_chunks_mut(PAR_CHUNK)
            .zip(y.par_chunks(PAR_CHUNK))
            .for_each(|(a, b)| add_serial(a, b));
    } else {
        add_serial(x, y);
    }
}

/// GroupNorm with one group per channel of a `[frames, channels]` matrix:
/// each column normalized over the frames (biased variance), then scaled.
pub fn group_norm_columns(x: &mut [f32], channels: usize, gamma: &[f32], beta: &[f32], eps: f64) {
    let frames = x.len() / channels.max(1);
    if frames == 0 {
        return;
    }
    let mut sum = vec![0.0f64; channels];
    for row in x.chunks_exact(channels) {
        for (s, &v) in sum.iter_mut().zip(row) {
            *s += v as f64;
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / frames as f64).collect();
    let mut sq = vec![0.0f64; channels];
    for row in x.chunks_exact(channels) {
        for ((s, &v), &m) in sq.iter_mut().zip(row).zip(&mean) {
            *s += (v as f64 - m).powi(2);
        }
    }
    let scale: Vec<f32> = sq
        .iter()
        .zip(gamma)
        .map(|(&s, &g)| ((1.0 / (s / frames as f64 + eps).sqrt()) as f32) * g)
        .collect();
    let shift: Vec<f32> = mean
        .iter()
        .zip(&scale)
        .zip(beta)
        .map(|((&m, &s), &b)| b - m as f32 * s)
        .collect();
    chunked(x, channels, |c| affine_rows(c, &scale, &shift));
}

#[inline(always)]
fn affine_body(x: &mut [f32], scale: &[f32], shift: &[f32]) {
    for row in x.chunks_exact_mut(scale.len()) {
        for ((v, &s), &b) in row.iter_mut().zip(scale).zip(shift) {
            *v = *v * s + b;
        }
    }
}

dispatch!(affine_rows, affine_body(x: &mut [f32], scale: &[f32], shift: &[f32]));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_over_the_range_used() {
        let mut worst = 0.0f64;
        for i in -8700..=8800 {
            let x = i as f32 * 0.01;
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 4e-7, "relative error {worst}");
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn gelu_equals_the_exact_form() {
        let mut xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.005).collect();
        let want: Vec<f64> = xs
            .iter()
            .map(|&x| {
                let x = x as f64;
                0.5 * x * (1.0 + erf64(x / std::f64::consts::SQRT_2))
            })
            .collect();
        gelu(&mut xs);
        for (g, w) in xs.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 2e-6, "{g} vs {w}");
        }
    }

    /// erf in f64 (reference only): its Taylor series up to |x| = 3, the
    /// asymptotic series of erfc beyond (both far below 10⁻⁹ there).
    fn erf64(x: f64) -> f64 {
        let a = x.abs();
        let v = if a <= 3.0 {
            let (mut term, mut sum, mut n) = (a, a, 0.0);
            while term.abs() > 1e-18 {
                n += 1.0;
                term *= -a * a / n;
                sum += term / (2.0 * n + 1.0);
            }
            2.0 / std::f64::consts::PI.sqrt() * sum
        } else {
            let z2 = a * a;
            let series = 1.0 - 1.0 / (2.0 * z2) + 3.0 / (4.0 * z2 * z2) - 15.0 / (8.0 * z2.powi(3))
                + 105.0 / (16.0 * z2.powi(4));
            1.0 - (-z2).exp() / (a * std::f64::consts::PI.sqrt()) * series
        };
        v.copysign(x)
    }

    #[test]
    fn matmul_on_strided_views_equals_the_naive_product() {
        // a: 3×4 read with row stride 2 (overlapping rows), b: 4×2 transposed view.
        let a_data: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
        let b_data: Vec<f32> = (0..8).map(|i| (i as f32 - 3.0) * 0.25).collect();
        let a = View {
            data: &a_data,
            offset: 1,
            row: 2,
            col: 1,
        };
        let b = View {
            data: &b_data,
            offset: 0,
            row: 1,
            col: 4,
        };
        let mut dst = vec![1.0f32; 3 * 3];
        matmul(3, 2, 4, &mut dst, 3, true, a, b, false);
        for i in 0..3 {
            for j in 0..2 {
                let want: f32 = 1.0
                    + (0..4)
                        .map(|p| a_data[1 + i * 2 + p] * b_data[p + j * 4])
                        .sum::<f32>();
                assert!((dst[i * 3 + j] - want).abs() < 1e-5);
            }
            assert_eq!(dst[i * 3 + 2], 1.0, "column outside n untouched");
        }
    }

    #[test]
    fn norms_match_their_definitions() {
        let mut x: Vec<f32> = (0..12).map(|i| (i * i) as f32 * 0.1).collect();
        let orig = x.clone();
        layer_norm(&mut x, None, &[1.0, 2.0, 1.0], &[0.0, 0.0, 1.0], 1e-5);
        for (r, o) in x.chunks(3).zip(orig.chunks(3)) {
            let m = o.iter().sum::<f32>() / 3.0;
            let v = o.iter().map(|a| (a - m).powi(2)).sum::<f32>() / 3.0;
            let inv = 1.0 / (v + 1e-5).sqrt();
            assert!((r[0] - (o[0] - m) * inv).abs() < 1e-5);
            assert!((r[1] - 2.0 * (o[1] - m) * inv).abs() < 1e-5);
            assert!((r[2] - ((o[2] - m) * inv + 1.0)).abs() < 1e-5);
        }
        let mut y = orig.clone();
        group_norm_columns(&mut y, 3, &[1.0; 3], &[0.0; 3], 1e-5);
        for c in 0..3 {
            let col: Vec<f32> = orig.iter().skip(c).step_by(3).copied().collect();
            let m = col.iter().sum::<f32>() / 4.0;
            let v = col.iter().map(|a| (a - m).powi(2)).sum::<f32>() / 4.0;
            for (t, &o) in col.iter().enumerate() {
                assert!((y[t * 3 + c] - (o - m) / (v + 1e-5).sqrt()).abs() < 1e-4);
            }
        }
        let mut s = vec![1.0f32, 2.0, 3.0];
        softmax_row(&mut s);
        let z: f32 = [1.0f32, 2.0, 3.0].iter().map(|v| v.exp()).sum();
        assert!((s[2] - 3.0f32.exp() / z).abs() < 1e-6);
    }
}
