//! Frame-wise features matching librosa 0.11: `power_to_db`, MFCC (DCT-II ortho,
//! liftering), zero-crossing rate, RMS, and `delta` (Savitzky–Golay, `interp` edges).
//! All arrays are time-major (`frames × dims`, row-major), i.e. librosa's output
//! transposed.

use super::simd::{madd, multiversion};
use super::stft::n_frames;

/// log10 for positive normal floats, without libm: exponent from the bits plus
/// ln(m) of the mantissa m ∈ [1, 2) by the series 2·atanh((m−1)/(m+1)) to t⁹
/// (truncation < 1.2e-6 in ln, i.e. < 5e-6 dB after `10·log10`). Branch-free, so
/// loops over it vectorise.
#[inline]
pub fn fast_log10(x: f32) -> f32 {
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 127;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let ln_m =
        t * (2.0 + t2 * (2.0 / 3.0 + t2 * (2.0 / 5.0 + t2 * (2.0 / 7.0 + t2 * (2.0 / 9.0)))));
    e as f32 * std::f32::consts::LOG10_2 + ln_m * std::f32::consts::LOG10_E
}

/// `librosa.power_to_db(S, ref, amin, top_db)` over a whole array, in place.
pub fn power_to_db(s: &mut [f32], reference: f32, amin: f32, top_db: Option<f32>) {
    let r = 10.0 * reference.abs().max(amin).log10();
    // amin ≥ the smallest normal float keeps fast_log10 in its domain.
    let amin = amin.max(f32::MIN_POSITIVE);
    for v in s.iter_mut() {
        *v = 10.0 * fast_log10(v.max(amin)) - r;
    }
    let max = s.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    if let Some(t) = top_db {
        let floor = max - t;
        for v in s.iter_mut() {
            *v = v.max(floor);
        }
    }
}

/// DCT-II with orthonormal scaling: the first `n_out` coefficients, as a matrix
/// `n_out × n_in` (row-major), optionally liftered.
pub fn dct_ortho_matrix(n_in: usize, n_out: usize, lifter: f32) -> Vec<f32> {
    let mut m = Vec::with_capacity(n_in * n_out);
    for k in 0..n_out {
        let scale = if k == 0 {
            (1.0 / n_in as f64).sqrt()
        } else {
            (2.0 / n_in as f64).sqrt()
        };
        let lift = if lifter > 0.0 {
            1.0 + (lifter as f64 / 2.0)
                * (std::f64::consts::PI * (k + 1) as f64 / lifter as f64).sin()
        } else {
            1.0
        };
        for n in 0..n_in {
            let c =
                (std::f64::consts::PI * k as f64 * (2 * n + 1) as f64 / (2 * n_in) as f64).cos();
            m.push((scale * c * lift) as f32);
        }
    }
    m
}

/// Dot product (8 independent lanes; AVX2 + FMA where the CPU has them, see
/// [`crate::dsp::simd`]).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    super::simd::dot(a, b)
}

/// Multiply each `n_in` row of `x` by `matrix` (`n_out × n_in`), appending to `out`.
pub fn apply_matrix(x: &[f32], n_in: usize, matrix: &[f32], out: &mut Vec<f32>) {
    let n_out = matrix.len() / n_in.max(1);
    apply_transposed(x, n_in, &transpose(matrix, n_out, n_in), out);
}

/// `rows × cols` row-major → `cols × rows` row-major.
pub fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}

/// [`apply_matrix`] with the matrix given transposed (`n_in × n_out`): each output
/// row is accumulated as `Σ_i x[i] · mt[i]`, whole rows at a time, which vectorises
/// without horizontal sums (the MFCC DCT of every frame).
pub fn apply_transposed(x: &[f32], n_in: usize, mt: &[f32], out: &mut Vec<f32>) {
    let n_out = mt.len() / n_in.max(1);
    if n_out == 0 || n_in == 0 {
        return;
    }
    let start = out.len();
    out.resize(start + x.len() / n_in * n_out, 0.0);
    transposed_rows(x, n_in, mt, n_out, &mut out[start..]);
}

multiversion! {
    /// `o = row · mt` for every `n_in` row of `x` and `n_out` row of `o`: outputs in
    /// register blocks of 32 and 8 (each accumulated over even and odd inputs
    /// separately, two dependency chains), the rest one by one.
    fn transposed_rows<const FMA: bool>(x: &[f32], n_in: usize, mt: &[f32], n_out: usize, o: &mut [f32]) {
        for (row, o) in x.chunks_exact(n_in).zip(o.chunks_exact_mut(n_out)) {
            let mut j = 0;
            while j + 32 <= n_out {
                out_block::<FMA, 32>(row, mt, n_out, j, &mut o[j..j + 32]);
                j += 32;
            }
            while j + 8 <= n_out {
                out_block::<FMA, 8>(row, mt, n_out, j, &mut o[j..j + 8]);
                j += 8;
            }
            for (jj, oj) in o.iter_mut().enumerate().skip(j) {
                let mut a = 0.0f32;
                for (&v, m) in row.iter().zip(mt.chunks_exact(n_out)) {
                    a = madd::<FMA>(v, m[jj], a);
                }
                *oj = a;
            }
        }
    }
}

/// Outputs `j .. j + W` of `row · mt` into `o` (`W` values).
#[inline(always)]
fn out_block<const FMA: bool, const W: usize>(
    row: &[f32],
    mt: &[f32],
    n_out: usize,
    j: usize,
    o: &mut [f32],
) {
    let (mut even, mut odd) = ([0.0f32; W], [0.0f32; W]);
    let mut rows = row.iter().zip(mt.chunks_exact(n_out));
    let take = |m: &[f32]| -> Option<[f32; W]> { m.get(j..j + W)?.try_into().ok() };
    while let Some((&v, m)) = rows.next() {
        if let Some(m) = take(m) {
            for k in 0..W {
                even[k] = madd::<FMA>(v, m[k], even[k]);
            }
        }
        let Some((&v, m)) = rows.next() else { break };
        if let Some(m) = take(m) {
            for k in 0..W {
                odd[k] = madd::<FMA>(v, m[k], odd[k]);
            }
        }
    }
    for ((o, e), d) in o.iter_mut().zip(&even).zip(&odd) {
        *o = e + d;
    }
}

/// Frames start every `hop` samples at `-pad` and are `frame_length` long, so with
/// `g = gcd(hop, frame_length, pad)` blocks of `g` samples from sample 0 tile every
/// frame's part inside the signal: a frame's sum is the sum of `frame_length / g`
/// block sums, and each sample is visited once instead of `frame_length / hop`
/// times. Returns `g` when that pays (`g ≥ 8`).
fn frame_block(frame_length: usize, hop: usize, pad: usize) -> Option<usize> {
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let g = gcd(gcd(hop, frame_length), pad);
    (g >= 8).then_some(g)
}

/// Blocks `[a / g, (a + frame_length) / g)` of frame `t`, clamped to `0..blocks`.
fn frame_blocks(
    t: usize,
    hop: usize,
    pad: usize,
    frame_length: usize,
    g: usize,
    blocks: usize,
) -> std::ops::Range<usize> {
    let a = (t * hop) as isize - pad as isize;
    let lo = (a.max(0) as usize / g).min(blocks);
    let hi = (((a + frame_length as isize).max(0) as usize) / g).min(blocks);
    lo..hi.max(lo)
}

/// `librosa.feature.zero_crossing_rate` (threshold 1e-10, zero counts as positive;
/// `center` pads with edge values).
pub fn zero_crossing_rate(y: &[f32], frame_length: usize, hop: usize, center: bool) -> Vec<f32> {
    let n = y.len();
    let hop = hop.max(1);
    let frames = n_frames(n, frame_length, hop, center);
    // Edge padding repeats the end samples, so it adds no crossing: count on `y`
    // itself, on one byte per sample (the sums vectorise).
    let negative: Vec<u8> = y.iter().map(|&x| (x < -1e-10) as u8).collect();
    let pad = if center { frame_length / 2 } else { 0 };
    // c[j] = negative[j-1] ^ negative[j] for 1 ≤ j < n (0 elsewhere). A padded
    // frame [a, a + len) counts c[j] for j = a+1 ..= a+len-1.
    let c = |j: usize| (negative[j - 1] ^ negative[j]) as u32;
    if let Some(g) = frame_block(frame_length, hop, pad) {
        // Crossings per block of g samples (u8 sums while they cannot overflow).
        let blocks = n.div_ceil(g);
        let counts: Vec<u32> = (0..blocks)
            .map(|k| {
                let (lo, hi) = ((k * g).max(1), ((k + 1) * g).min(n));
                if lo >= hi {
                    return 0;
                }
                let (p, q) = (&negative[lo - 1..hi - 1], &negative[lo..hi]);
                if hi - lo <= 255 {
                    p.iter().zip(q).map(|(a, b)| a ^ b).sum::<u8>() as u32
                } else {
                    p.iter().zip(q).map(|(a, b)| (a ^ b) as u32).sum()
                }
            })
            .collect();
        return (0..frames)
            .map(|t| {
                let r = frame_blocks(t, hop, pad, frame_length, g, blocks);
                // The blocks hold c[a .. a+len); c[a] is not the frame's.
                let a = (t * hop) as isize - pad as isize;
                let first = if a >= 1 && (a as usize) < n {
                    c(a as usize)
                } else {
                    0
                };
                (counts[r].iter().sum::<u32>() - first) as f32 / frame_length as f32
            })
            .collect();
    }
    (0..frames)
        .map(|t| {
            // Positions lo ..= hi of y.
            let a = (t * hop) as isize - pad as isize;
            let lo = (a + 1).max(1) as usize;
            let hi = (a + frame_length as isize - 1).min(n as isize - 1);
            let count: u32 = if hi >= lo as isize {
                (lo..=hi as usize).map(c).sum()
            } else {
                0
            };
            count as f32 / frame_length as f32
        })
        .collect()
}

/// `librosa.feature.rms` on the waveform (`center` pads with zeros, which add
/// nothing to a frame's sum: only its part inside `y` is summed). Squares are
/// summed in float32 over 8 lanes within a block and in float64 across blocks,
/// more precise than librosa's float32 mean.
pub fn rms(y: &[f32], frame_length: usize, hop: usize, center: bool) -> Vec<f32> {
    let n = y.len();
    let hop = hop.max(1);
    let pad = if center { frame_length / 2 } else { 0 };
    let frames = n_frames(n, frame_length, hop, center);
    let scale = 1.0 / frame_length as f64;
    if let Some(g) = frame_block(frame_length, hop, pad) {
        let energy: Vec<f64> = y.chunks(g).map(|b| dot(b, b) as f64).collect();
        return (0..frames)
            .map(|t| {
                let r = frame_blocks(t, hop, pad, frame_length, g, energy.len());
                (energy[r].iter().sum::<f64>() * scale).sqrt() as f32
            })
            .collect();
    }
    (0..frames)
        .map(|t| {
            let a = (t * hop) as isize - pad as isize;
            let (lo, hi) = (
                a.max(0) as usize,
                ((a + frame_length as isize).max(0) as usize).min(n),
            );
            let f = &y[lo.min(hi)..hi];
            (dot(f, f) as f64 * scale).sqrt() as f32
        })
        .collect()
}

// Small dense linear algebra reads clearest with explicit indices.
#[allow(clippy::needless_range_loop)]
/// Savitzky–Golay coefficients: value of the `deriv`-th derivative at position `at`
/// of the degree-`order` least-squares polynomial through points `xs`.
fn savgol_weights(xs: &[f64], order: usize, deriv: usize, at: f64) -> Vec<f64> {
    let p = order + 1;
    // Normal equations A^T A c = A^T y, with A[i][j] = xs[i]^j.
    let mut ata = vec![vec![0.0f64; p]; p];
    for &x in xs {
        for i in 0..p {
            for j in 0..p {
                ata[i][j] += x.powi((i + j) as i32);
            }
        }
    }
    let inv = invert(ata);
    // d^deriv/dx^deriv of sum_j c_j x^j at `at`: sum_j c_j * j!/(j-deriv)! at^(j-deriv)
    let dvec: Vec<f64> = (0..p)
        .map(|j| {
            if j < deriv {
                0.0
            } else {
                let fall: f64 = ((j - deriv + 1)..=j).map(|v| v as f64).product();
                fall * at.powi((j - deriv) as i32)
            }
        })
        .collect();
    // weights_i = dvec^T inv A^T e_i = sum_j (dvec^T inv)_j x_i^j
    let row: Vec<f64> = (0..p)
        .map(|j| (0..p).map(|k| dvec[k] * inv[k][j]).sum())
        .collect();
    xs.iter()
        .map(|&x| (0..p).map(|j| row[j] * x.powi(j as i32)).sum())
        .collect()
}

#[allow(clippy::needless_range_loop)]
fn invert(mut a: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    let n = a.len();
    let mut inv: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
        .collect();
    for c in 0..n {
        let piv = (c..n)
            .max_by(|&x, &y| a[x][c].abs().total_cmp(&a[y][c].abs()))
            .unwrap_or(c);
        a.swap(c, piv);
        inv.swap(c, piv);
        let d = a[c][c];
        if d.abs() < 1e-300 {
            continue;
        }
        for j in 0..n {
            a[c][j] /= d;
            inv[c][j] /= d;
        }
        for r in 0..n {
            if r != c {
                let f = a[r][c];
                for j in 0..n {
                    a[r][j] -= f * a[c][j];
                    inv[r][j] -= f * inv[c][j];
                }
            }
        }
    }
    inv
}

/// `librosa.feature.delta(data, width, order, mode="interp")` along time for a
/// time-major `frames × dims` array. Needs `frames >= width` (librosa raises
/// otherwise); returns `None` then.
pub fn delta(x: &[f32], dims: usize, width: usize, order: usize) -> Option<Vec<f32>> {
    let frames = x.len() / dims.max(1);
    if width < 3 || width.is_multiple_of(2) || frames < width {
        return None;
    }
    let h = width / 2;
    let xs: Vec<f64> = (0..width).map(|i| i as f64 - h as f64).collect();
    let interior = savgol_weights(&xs, order, order, 0.0);
    let edge_xs: Vec<f64> = (0..width).map(|i| i as f64).collect();
    let mut out = vec![0.0f32; x.len()];
    for t in 0..frames {
        let (weights, base) = if t < h {
            (savgol_weights(&edge_xs, order, order, t as f64), 0)
        } else if t + h >= frames {
            (
                savgol_weights(&edge_xs, order, order, (t - (frames - width)) as f64),
                frames - width,
            )
        } else {
            (interior.clone(), t - h)
        };
        for d in 0..dims {
            let mut acc = 0.0f64;
            for (i, w) in weights.iter().enumerate() {
                acc += w * x[(base + i) * dims + d] as f64;
            }
            out[t * dims + d] = acc as f32;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_log10_matches_libm() {
        let mut worst = 0.0f32;
        let mut x = 1e-10f32;
        while x < 1e10 {
            let d = (fast_log10(x) - x.log10()).abs();
            worst = worst.max(d);
            x *= 1.0137;
        }
        // 10 * worst is the error in dB.
        assert!(worst * 10.0 < 1e-4, "worst {worst}");
        assert_eq!(fast_log10(1.0), 0.0);
        assert!((fast_log10(1000.0) - 3.0).abs() < 1e-6);
    }
}
