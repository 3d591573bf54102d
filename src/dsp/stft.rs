//! Short-time Fourier transform, matching `librosa.stft` (0.11): periodic Hann
//! window of `win_length` centred in `n_fft`, optional centring with `n_fft / 2`
//! samples of padding (`constant` = zeros, `reflect`, `edge`), frames every
//! `hop_length` samples. Planned once per configuration; no allocation per frame.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{FftNum, RealFftPlanner, RealToComplex};
use rustfft::{Fft, FftPlanner};
use serde::{Deserialize, Serialize};

use super::simd::{madd, madd64, multiversion};

/// How the signal is padded when `center` is true (librosa's `pad_mode`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PadMode {
    #[default]
    Constant,
    Reflect,
    Edge,
}

/// Periodic Hann window (`scipy.signal.get_window("hann", n, fftbins=True)`).
pub fn hann_periodic(n: usize) -> Vec<f32> {
    (0..n)
        .map(|k| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * k as f64 / n as f64).cos()) as f32)
        .collect()
}

/// Sample `i` (may be negative or past the end) of `x` padded with `mode`, as
/// `np.pad` would give it.
#[inline]
pub fn padded_at(x: &[f32], i: isize, mode: PadMode) -> f32 {
    let n = x.len() as isize;
    if (0..n).contains(&i) {
        return x[i as usize];
    }
    match mode {
        _ if n == 0 => 0.0,
        PadMode::Constant => 0.0,
        PadMode::Edge => x[i.clamp(0, n - 1) as usize],
        PadMode::Reflect => {
            if n == 1 {
                return x[0];
            }
            let period = 2 * (n - 1);
            let mut j = i.rem_euclid(period);
            if j >= n {
                j = period - j;
            }
            x[j as usize]
        }
    }
}

/// Pad `x` by `pad` samples on each side (numpy's `np.pad` modes).
pub fn pad(x: &[f32], pad: usize, mode: PadMode) -> Vec<f32> {
    let n = x.len();
    let mut out = Vec::with_capacity(n + 2 * pad);
    out.extend((-(pad as isize)..0).map(|i| padded_at(x, i, mode)));
    out.extend_from_slice(x);
    out.extend((n as isize..(n + pad) as isize).map(|i| padded_at(x, i, mode)));
    out
}

/// Number of frames librosa produces for `len` samples.
pub fn n_frames(len: usize, frame_length: usize, hop: usize, center: bool) -> usize {
    let padded = if center {
        len + 2 * (frame_length / 2)
    } else {
        len
    };
    if padded < frame_length {
        0
    } else {
        1 + (padded - frame_length) / hop.max(1)
    }
}

multiversion! {
    /// `|c|²` of every bin.
    fn norm_sqr<const FMA: bool>(spec: &[Complex<f32>], out: &mut [f32]) {
        for (r, c) in out.iter_mut().zip(spec) {
            *r = madd::<FMA>(c.re, c.re, c.im * c.im);
        }
    }
}

multiversion! {
    /// `|c|` of every float64 bin: `|c|²` rounded to f32, then an f32 square root.
    fn magnitude_f64<const FMA: bool>(spec: &[Complex<f64>], out: &mut [f32]) {
        for (r, c) in out.iter_mut().zip(spec) {
            *r = (madd64::<FMA>(c.re, c.re, c.im * c.im) as f32).sqrt();
        }
    }
}

/// Lanes of the fused post-processing loops.
const POST: usize = 8;

/// One transform of a real frame of even length `n`: the frame's samples packed
/// pairwise into `n / 2` complex values (`z[j] = x[2j] + i·x[2j+1]`), one complex FFT
/// of that length (rustfft), then realfft's post-processing, which turns `Z` into the
/// `n / 2 + 1` bins of the real FFT — here fused with `|X|²` (or `|X|`) in one
/// vectorised pass, pairs of bins `k` and `n/2 − k` at a time, instead of writing
/// the complex bins and reading them back.
struct HalfFft<T: FftNum> {
    fft: Arc<dyn Fft<T>>,
    /// `0.5 · e^{−2πik/n}` for `k = 1 .. n/4` (realfft's twiddles).
    twiddles: Vec<Complex<T>>,
}

impl<T: FftNum> HalfFft<T> {
    fn new(n: usize) -> Self {
        let half = n / 2;
        let twiddles = (1..half.div_ceil(2))
            .map(|k| {
                let angle = -2.0 * std::f64::consts::PI / n as f64 * k as f64;
                Complex {
                    re: T::from_f64(0.5 * angle.cos()).unwrap_or_else(T::zero),
                    im: T::from_f64(0.5 * angle.sin()).unwrap_or_else(T::zero),
                }
            })
            .collect();
        HalfFft {
            fft: FftPlanner::<T>::new().plan_fft_forward(half),
            twiddles,
        }
    }
}

/// The bin pair `(k, m − k)` of the real FFT from `a = Z[k]`, `b = Z[m − k]` and
/// the twiddle `t` (realfft's formulas), as `(re_k, im_k, re_mk, im_mk)`.
#[inline(always)]
fn post_pair<T: FftNum>(a: Complex<T>, b: Complex<T>, t: Complex<T>) -> (T, T, T, T) {
    let half = T::from_f64(0.5).unwrap_or_else(T::zero);
    let (sum_re, sum_im) = (a.re + b.re, a.im + b.im);
    let (diff_re, diff_im) = (a.re - b.re, a.im - b.im);
    let tw_re = sum_im * t.re + diff_re * t.im;
    let tw_im = sum_im * t.im - diff_re * t.re;
    let (hs, hd) = (half * sum_re, half * diff_im);
    (hs + tw_re, hd + tw_im, hs - tw_re, tw_im - hd)
}

/// The fused post-processing: `out[k] = f(re X[k], im X[k])` for every bin `k =
/// 0..=m` of the real FFT from `Z` (`m = z.len()`, `out.len() = m + 1`), the
/// interior in blocks of [`POST`] pairs through fixed-size arrays (which the
/// compiler vectorises, the mirrored half with a reversing shuffle).
#[inline(always)]
fn post_process<T: FftNum, U: Copy>(
    z: &[Complex<T>],
    tw: &[Complex<T>],
    out: &mut [U],
    f: impl Fn(T, T) -> U,
) {
    let m = z.len();
    if m == 0 || out.len() != m + 1 || tw.len() + 1 < m.div_ceil(2) {
        return;
    }
    out[0] = f(z[0].re + z[0].im, T::zero());
    out[m] = f(z[0].re - z[0].im, T::zero());
    // Pairs (k, m − k) for 2k < m; the centre (2k = m) is conj(Z[m/2]).
    let pairs = (m - 1) / 2;
    let mut k = 1;
    while k + POST <= pairs + 1 {
        // Structure of arrays: Z[k + j], Z[m − k − j] (read backwards) and the
        // twiddles as separate re / im lanes, so every step below is one vector op.
        let (Ok(a), Ok(b), Ok(t)) = (
            <&[Complex<T>; POST]>::try_from(&z[k..k + POST]),
            <&[Complex<T>; POST]>::try_from(&z[m - k + 1 - POST..m - k + 1]),
            <&[Complex<T>; POST]>::try_from(&tw[k - 1..k - 1 + POST]),
        ) else {
            break;
        };
        let zero = [T::zero(); POST];
        let (mut ar, mut ai, mut br, mut bi, mut tr, mut ti) = (zero, zero, zero, zero, zero, zero);
        for j in 0..POST {
            ar[j] = a[j].re;
            ai[j] = a[j].im;
            br[j] = b[POST - 1 - j].re;
            bi[j] = b[POST - 1 - j].im;
            tr[j] = t[j].re;
            ti[j] = t[j].im;
        }
        let half = T::from_f64(0.5).unwrap_or_else(T::zero);
        let mut lo = [f(T::zero(), T::zero()); POST];
        let mut hi = [f(T::zero(), T::zero()); POST];
        for j in 0..POST {
            let (sum_re, sum_im) = (ar[j] + br[j], ai[j] + bi[j]);
            let (diff_re, diff_im) = (ar[j] - br[j], ai[j] - bi[j]);
            let tw_re = sum_im * tr[j] + diff_re * ti[j];
            let tw_im = sum_im * ti[j] - diff_re * tr[j];
            let (hs, hd) = (half * sum_re, half * diff_im);
            lo[j] = f(hs + tw_re, hd + tw_im);
            hi[j] = f(hs - tw_re, tw_im - hd);
        }
        out[k..k + POST].copy_from_slice(&lo);
        hi.reverse();
        out[m - k + 1 - POST..m - k + 1].copy_from_slice(&hi);
        k += POST;
    }
    while k <= pairs {
        let (r1, i1, r2, i2) = post_pair(z[k], z[m - k], tw[k - 1]);
        out[k] = f(r1, i1);
        out[m - k] = f(r2, i2);
        k += 1;
    }
    if m.is_multiple_of(2) {
        let c = z[m / 2];
        out[m / 2] = f(c.re, -c.im);
    }
}

multiversion! {
    /// `|X|²` of the real FFT from the half-length complex FFT `z` (f32).
    fn half_power_f32<const FMA: bool>(z: &[Complex<f32>], tw: &[Complex<f32>], out: &mut [f32]) {
        post_process(z, tw, out, |re, im| madd::<FMA>(re, re, im * im));
    }
}

multiversion! {
    /// `|X|` of the real FFT from the half-length complex FFT `z` (f64), each bin's
    /// `|X|²` rounded to f32 and then rooted in f32 (see [`Stft::power_frames_precise`]).
    fn half_magnitude_f64<const FMA: bool>(z: &[Complex<f64>], tw: &[Complex<f64>], out: &mut [f32]) {
        post_process(z, tw, out, |re, im| (madd64::<FMA>(re, re, im * im) as f32).sqrt());
    }
}

multiversion! {
    /// A frame inside the signal, windowed and packed pairwise (f32): the complex
    /// buffer is written as the flat sequence of its parts.
    fn fill_f32<const FMA: bool>(x: &[f32], w: &[f32], out: &mut [Complex<f32>]) {
        let _ = FMA;
        let flat: &mut [f32] = bytemuck::cast_slice_mut(out);
        for ((o, xs), ws) in flat.iter_mut().zip(x).zip(w) {
            *o = xs * ws;
        }
    }
}

multiversion! {
    /// A frame inside the signal, windowed in f64 and packed pairwise.
    fn fill_f64<const FMA: bool>(x: &[f32], w: &[f64], out: &mut [Complex<f64>]) {
        let _ = FMA;
        let flat: &mut [f64] = bytemuck::cast_slice_mut(out);
        for ((o, xs), ws) in flat.iter_mut().zip(x).zip(w) {
            *o = *xs as f64 * ws;
        }
    }
}

/// A planned STFT.
pub struct Stft {
    n_fft: usize,
    hop: usize,
    center: bool,
    pad_mode: PadMode,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
    window64: Vec<f64>,
    fft64: Arc<dyn RealToComplex<f64>>,
    /// Even `n_fft`: the fused half-length transforms for `|X|²` (f32) and `|X|`
    /// (f64), used wherever they apply.
    half: Option<(HalfFft<f32>, HalfFft<f64>)>,
}

impl std::fmt::Debug for Stft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stft(n_fft={}, hop={})", self.n_fft, self.hop)
    }
}

impl Stft {
    /// `win_length` ≤ `n_fft` (default `n_fft`); the window is centred in `n_fft`.
    pub fn new(
        n_fft: usize,
        hop: usize,
        win_length: Option<usize>,
        center: bool,
        pad_mode: PadMode,
    ) -> Self {
        let win = win_length.unwrap_or(n_fft).min(n_fft);
        let mut window = vec![0.0f32; n_fft];
        let offset = (n_fft - win) / 2;
        window[offset..offset + win].copy_from_slice(&hann_periodic(win));
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n_fft);
        let fft64 = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
        let window64 = window.iter().map(|&w| w as f64).collect::<Vec<_>>();
        let mut window64 = window64;
        // The float64 window is recomputed exactly (not widened from f32), as librosa.
        for (k, w) in window64.iter_mut().enumerate().skip(offset).take(win) {
            let j = (k - offset) as f64;
            *w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * j / win as f64).cos();
        }
        Stft {
            n_fft,
            hop: hop.max(1),
            center,
            pad_mode,
            window,
            fft,
            window64,
            fft64,
            half: (n_fft >= 2 && n_fft.is_multiple_of(2))
                .then(|| (HalfFft::new(n_fft), HalfFft::new(n_fft))),
        }
    }

    pub fn n_bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    pub fn n_frames(&self, len: usize) -> usize {
        n_frames(len, self.n_fft, self.hop, self.center)
    }

    /// Drive the half-length complex FFT over every frame of `x` (even `n_fft`):
    /// each windowed frame is packed pairwise into complex values (frames inside
    /// the signal by `fill`, edge frames from the padding) and transformed; `emit`
    /// gets `Z` (or `None` if the FFT failed) for [`post_process`].
    fn for_each_half<T: FftNum>(
        &self,
        x: &[f32],
        half: &HalfFft<T>,
        window: &[T],
        widen: impl Fn(f32) -> T,
        fill: impl Fn(&[f32], &[T], &mut [Complex<T>]),
        mut emit: impl FnMut(Option<&[Complex<T>]>),
    ) {
        let n = x.len();
        let m = self.n_fft / 2;
        let pad = if self.center { self.n_fft / 2 } else { 0 };
        let zero = Complex {
            re: T::zero(),
            im: T::zero(),
        };
        let mut frame = vec![zero; m];
        let mut spec = vec![zero; m];
        let mut scratch = vec![zero; half.fft.get_outofplace_scratch_len()];
        for t in 0..n_frames(n, self.n_fft, self.hop, self.center) {
            let start = (t * self.hop) as isize - pad as isize;
            if start >= 0 && start as usize + self.n_fft <= n {
                let s = start as usize;
                fill(&x[s..s + self.n_fft], window, &mut frame);
            } else {
                for (j, (c, w)) in frame.iter_mut().zip(window.chunks_exact(2)).enumerate() {
                    let i = start + 2 * j as isize;
                    c.re = widen(padded_at(x, i, self.pad_mode)) * w[0];
                    c.im = widen(padded_at(x, i + 1, self.pad_mode)) * w[1];
                }
            }
            half.fft
                .process_outofplace_with_scratch(&mut frame, &mut spec, &mut scratch);
            emit(Some(spec.as_slice()));
        }
    }

    /// Drive the windowed FFT over every frame of `x` (padded when `center`),
    /// calling `emit` with each frame's spectrum, or `None` if the FFT failed. One
    /// loop for both precisions: `T` is f32 ([`Stft::power`]) or f64
    /// ([`Stft::power_precise`]).
    fn for_each_frame<T: realfft::FftNum>(
        &self,
        x: &[f32],
        fft: &Arc<dyn RealToComplex<T>>,
        window: &[T],
        widen: impl Fn(f32) -> T,
        mut emit: impl FnMut(Option<&[Complex<T>]>),
    ) {
        // Frames inside the signal read it directly; only the few at the edges are
        // assembled from the padding (no padded copy of the clip).
        let n = x.len();
        let pad = if self.center { self.n_fft / 2 } else { 0 };
        let mut frame = fft.make_input_vec();
        let mut spec = fft.make_output_vec();
        let mut scratch = fft.make_scratch_vec();
        for t in 0..n_frames(n, self.n_fft, self.hop, self.center) {
            let start = (t * self.hop) as isize - pad as isize;
            if start >= 0 && start as usize + self.n_fft <= n {
                let s = start as usize;
                for ((f, s), w) in frame.iter_mut().zip(&x[s..s + self.n_fft]).zip(window) {
                    *f = widen(*s) * *w;
                }
            } else {
                for (j, (f, w)) in frame.iter_mut().zip(window).enumerate() {
                    *f = widen(padded_at(x, start + j as isize, self.pad_mode)) * *w;
                }
            }
            let ok = fft
                .process_with_scratch(&mut frame, &mut spec, &mut scratch)
                .is_ok();
            emit(ok.then_some(spec.as_slice()));
        }
    }

    /// Like [`Stft::power_frames`] but transformed in float64 (librosa multiplies
    /// the float32 frame by a float64 window, so its FFT runs in float64), each
    /// frame's `|X|^power` rounded to float32. About twice the cost; needed where the
    /// quietest bins matter (spectral contrast's valleys lie 100 dB below the peak,
    /// under float32 FFT round-off).
    pub fn power_frames_precise(&self, x: &[f32], power: f32, mut visit: impl FnMut(&[f32])) {
        let mut row = vec![0.0f32; self.n_bins()];
        if let (Some((_, half)), 1.0) = (&self.half, power) {
            self.for_each_half(x, half, &self.window64, f64::from, fill_f64, |z| {
                match z {
                    Some(z) => half_magnitude_f64(z, &half.twiddles, &mut row),
                    None => row.fill(0.0),
                }
                visit(&row);
            });
            return;
        }
        self.for_each_frame(x, &self.fft64, &self.window64, f64::from, |spec| {
            match spec {
                None => row.fill(0.0),
                // Magnitudes as sqrt(re² + im²), not `norm()` (libm hypot guards
                // against an overflow audio magnitudes cannot reach, at several times
                // the cost): |X|² rounded to f32, then an f32 square root (4 lanes
                // instead of 2), within an ulp of the f64 root as librosa's own
                // complex64 magnitudes are. The `power` branch stays outside the
                // loops: inside, LLVM computes the (pure) powf for every bin and
                // selects afterwards.
                Some(spec) if power == 1.0 => magnitude_f64(spec, &mut row),
                Some(spec) => {
                    for (r, c) in row.iter_mut().zip(spec) {
                        *r = (c.norm_sqr().sqrt() as f32).powf(power);
                    }
                }
            }
            visit(&row);
        });
    }

    /// [`Stft::power_frames_precise`], collected time-major (`frames × n_bins`).
    pub fn power_precise(&self, x: &[f32], power: f32, out: &mut Vec<f32>) {
        out.reserve(self.n_frames(x.len()) * self.n_bins());
        self.power_frames_precise(x, power, |row| out.extend_from_slice(row));
    }

    /// Calls `visit` with `|X|^power` of every frame (`n_bins` values, one buffer
    /// reused: nothing is allocated per frame). `power = 1.0` gives magnitudes.
    pub fn power_frames(&self, x: &[f32], power: f32, mut visit: impl FnMut(&[f32])) {
        let mut row = vec![0.0f32; self.n_bins()];
        if let (Some((half, _)), true) = (&self.half, power == 2.0 || power == 1.0) {
            self.for_each_half(
                x,
                half,
                &self.window,
                |s| s,
                fill_f32,
                |z| {
                    match z {
                        Some(z) => half_power_f32(z, &half.twiddles, &mut row),
                        None => row.fill(0.0),
                    }
                    if power == 1.0 {
                        for r in row.iter_mut() {
                            *r = r.sqrt();
                        }
                    }
                    visit(&row);
                },
            );
            return;
        }
        self.for_each_frame(
            x,
            &self.fft,
            &self.window,
            |s| s,
            |spec| {
                match spec {
                    None => row.fill(0.0),
                    Some(spec) if power == 2.0 => norm_sqr(spec, &mut row),
                    Some(spec) if power == 1.0 => {
                        for (r, c) in row.iter_mut().zip(spec) {
                            *r = c.norm_sqr().sqrt();
                        }
                    }
                    Some(spec) => {
                        for (r, c) in row.iter_mut().zip(spec) {
                            *r = c.norm_sqr().sqrt().powf(power);
                        }
                    }
                }
                visit(&row);
            },
        );
    }

    /// Power spectrogram (|X|²), time-major: `frames × n_bins`, appended to `out`.
    /// `power = 1.0` gives magnitudes.
    pub fn power(&self, x: &[f32], power: f32, out: &mut Vec<f32>) {
        out.reserve(self.n_frames(x.len()) * self.n_bins());
        self.power_frames(x, power, |row| out.extend_from_slice(row));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused half-length path against realfft's transform followed by |X|² /
    /// |X|, for even lengths with and without a centre bin, frames inside the
    /// signal and at the padded edges.
    #[test]
    fn fused_half_fft_equals_realfft() {
        let x: Vec<f32> = (0..5000)
            .map(|i| {
                let t = i as f32 / 16000.0;
                0.4 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()
                    + 0.1 * (2.0 * std::f32::consts::PI * 7900.0 * t).cos()
                    + 0.01 * ((i * 7919) % 97) as f32 / 97.0
            })
            .collect();
        for n_fft in [2usize, 4, 6, 10, 18, 400, 512, 1022, 2048] {
            for (center, mode) in [(true, PadMode::Reflect), (false, PadMode::Constant)] {
                let stft = Stft::new(n_fft, n_fft / 3 + 1, None, center, mode);
                assert!(stft.half.is_some());
                // realfft reference: the generic frame loop.
                let mut want = Vec::new();
                stft.for_each_frame(
                    &x,
                    &stft.fft,
                    &stft.window,
                    |s| s,
                    |spec| {
                        want.extend(spec.into_iter().flatten().map(|c| c.norm_sqr()));
                    },
                );
                let mut got = Vec::new();
                stft.power(&x, 2.0, &mut got);
                assert_eq!(got.len(), want.len(), "n_fft {n_fft}");
                let scale = want.iter().fold(0.0f32, |m, v| m.max(*v));
                for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-5 * scale + 1e-5 * b.abs(),
                        "n_fft {n_fft} bin {k}: {a} vs {b}"
                    );
                }
                let mut want64 = Vec::new();
                stft.for_each_frame(&x, &stft.fft64, &stft.window64, f64::from, |spec| {
                    want64.extend(spec.into_iter().flatten().map(|c| c.norm()));
                });
                let mut got64 = Vec::new();
                stft.power_precise(&x, 1.0, &mut got64);
                assert_eq!(got64.len(), want64.len());
                for (k, (a, b)) in got64.iter().zip(&want64).enumerate() {
                    // f32 rounding of |X|², then an f32 root: a few ulps.
                    assert!(
                        (*a as f64 - b).abs() <= 4e-7 * b.abs() + 1e-30,
                        "n_fft {n_fft} bin {k}: {a} vs {b}"
                    );
                }
            }
        }
    }
}
