//! Pitch tracking and tuning estimation, matching librosa 0.11: [`piptrack`],
//! [`pitch_tuning`], [`estimate_tuning`] — `librosa.piptrack` / `pitch_tuning` /
//! `estimate_tuning(S=...)`, including librosa's float32 arithmetic where it decides
//! which bins count (thresholds, histogram edges). [`super::chroma`] uses the
//! estimate for `chroma_stft(tuning=None)`.
//!
//! Spectrograms are time-major (`frames × n_bins`, row-major), i.e. librosa's
//! orientation transposed.

use super::numeric::{fft_frequency, min_max, py_mod_f32};
use super::simd::multiversion;
use super::stft::{PadMode, Stft};

/// librosa's `estimate_tuning` default histogram resolution (fractions of a bin).
pub const TUNING_RESOLUTION: f64 = 0.01;

/// One non-zero entry of librosa's `piptrack` output (`pitches[bin, frame]`,
/// `mags[bin, frame]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PitchPeak {
    pub frame: usize,
    pub bin: usize,
    /// Interpolated frequency in Hz (float32 as in librosa).
    pub freq: f32,
    /// Interpolated magnitude (`S + dskew`).
    pub mag: f32,
}

/// Settings of `librosa.piptrack` that matter once the spectrogram is given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PiptrackOptions {
    pub fmin: f64,
    pub fmax: f64,
    /// Relative to the per-frame maximum (`ref=np.max`).
    pub threshold: f32,
}

impl Default for PiptrackOptions {
    fn default() -> Self {
        PiptrackOptions {
            fmin: 150.0,
            fmax: 4000.0,
            threshold: 0.1,
        }
    }
}

/// `librosa.piptrack(S=s, sr, n_fft, fmin, fmax, threshold, ref=np.max)` on a
/// time-major spectrogram `frames × n_bins` (values are used as given, like librosa's
/// `np.abs(S)`; `chroma_stft` passes a *power* spectrogram here). Calls `visit` for
/// every non-zero entry, frame by frame, bins ascending. No allocation.
pub fn piptrack_visit(
    s: &[f32],
    n_bins: usize,
    sr: u32,
    n_fft: usize,
    opts: &PiptrackOptions,
    mut visit: impl FnMut(PitchPeak),
) {
    if n_bins < 2 {
        return;
    }
    let sr_f = sr as f64;
    let fmin = opts.fmin.max(0.0);
    let fmax = opts.fmax.min(sr_f / 2.0);
    // freq_mask = (fmin <= f) & (f < fmax): a contiguous bin range.
    let lo = (0..n_bins)
        .find(|&k| fft_frequency(k, sr_f, n_fft) >= fmin)
        .unwrap_or(n_bins);
    let hi = (lo..n_bins)
        .find(|&k| fft_frequency(k, sr_f, n_fft) >= fmax)
        .unwrap_or(n_bins);
    // localmax is never true at bin 0.
    let lo = lo.max(1);
    // The last bin has no right neighbour; the interior `lo .. inner_hi` is
    // scanned for local maxima of the thresholded spectrum (a bin above the
    // threshold, above its left and at least its right neighbour), which are rare.
    let inner_hi = hi.min(n_bins - 1).max(lo);
    let mut masks = Vec::with_capacity((inner_hi - lo).div_ceil(8));
    for (t, x) in s.chunks_exact(n_bins).enumerate() {
        let Some(ref_value) = frame_peak_masks(x, lo, inner_hi, opts.threshold, &mut masks) else {
            // np.max is NaN: every comparison with the threshold is false.
            continue;
        };
        for (w, &mask) in masks.iter().enumerate() {
            let mut bits = mask;
            while bits != 0 {
                let i = lo + 8 * w + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                // Parabolic shift (numba stencil: float32 sums, float64 arithmetic
                // after the integer constants); zero at the edges.
                let (xm, x0, xp) = (x[i - 1].abs(), x[i].abs(), x[i + 1].abs());
                let a = (xp + xm) as f64 - 2.0 * x0 as f64;
                let b = (xp - xm) as f64 / 2.0;
                let shift = if b.abs() >= a.abs() {
                    0.0f32
                } else {
                    (-b / a) as f32
                };
                // np.gradient, interior: (f[k+1] - f[k-1]) / 2 in float32.
                let avg = (xp - xm) / 2.0;
                visit(peak(t, i, shift, avg, x[i], sr_f, n_fft));
            }
        }
        if hi == n_bins && n_bins > lo {
            let th = |v: f32| if v.abs() > ref_value { v.abs() } else { 0.0 };
            let i = n_bins - 1;
            if th(x[i]) > th(x[i - 1]) {
                let avg = x[i].abs() - x[i - 1].abs();
                visit(peak(t, i, 0.0, avg, x[i], sr_f, n_fft));
            }
        }
    }
}

multiversion! {
    /// One frame of [`piptrack_visit`]: the threshold `threshold · max|x|` and, in
    /// `masks`, one word per 8 bins of `lo .. hi` (each with both neighbours) with
    /// bit `j` set when bin `lo + 8w + j` is a local maximum of `x · (|x| > ref)`.
    /// `None` when the frame holds a NaN (numpy's max would be NaN).
    fn frame_peak_masks<const FMA: bool>(
        x: &[f32],
        lo: usize,
        hi: usize,
        threshold: f32,
        masks: &mut Vec<u32>,
    ) -> Option<f32> {
        masks.clear();
        let r = threshold * abs_max(x)?;
        let th = |v: f32| {
            let a = v.abs();
            if a > r { a } else { 0.0 }
        };
        let mut k = lo;
        #[cfg(target_arch = "x86_64")]
        if FMA {
            // SAFETY: this copy runs only where `avx2()` detected AVX2 (and FMA) at
            // run time, so the CPU supports `peak_masks_avx2`'s target feature.
            k = unsafe { peak_masks_avx2(x, lo, hi, r, masks) };
        }
        while k < hi {
            let m = (hi - k).min(8);
            let mask = match x.get(k - 1..k + 9) {
                Some(w) if m == 8 => {
                    let mut mask = 0u32;
                    for j in 0..8 {
                        let (l, c, n) = (th(w[j]), th(w[j + 1]), th(w[j + 2]));
                        mask |= u32::from((c > l) & (c >= n)) << j;
                    }
                    mask
                }
                _ => (0..m).fold(0u32, |acc, j| {
                    let i = k + j;
                    let c = th(x[i]);
                    acc | (u32::from(c > th(x[i - 1]) && c >= th(x[i + 1])) << j)
                }),
            };
            masks.push(mask);
            k += m;
        }
        Some(r)
    }
}

/// The whole 8-bin words of [`frame_peak_masks`] with AVX2 (three shifted loads,
/// `|x|`, threshold, two compares, movemask); returns the first bin not covered.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn peak_masks_avx2(x: &[f32], lo: usize, hi: usize, r: f32, masks: &mut Vec<u32>) -> usize {
    use std::arch::x86_64::*;
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let rv = _mm256_set1_ps(r);
    let th = |v: __m256| {
        let a = _mm256_and_ps(v, abs);
        _mm256_and_ps(a, _mm256_cmp_ps::<_CMP_GT_OQ>(a, rv))
    };
    let mut k = lo;
    while k + 8 <= hi {
        let Some(w) = x.get(k - 1..k + 9) else {
            break;
        };
        // SAFETY: `w` holds 10 values; the loads read w[0..8], w[1..9], w[2..10].
        let (l, c, n) = unsafe {
            (
                th(_mm256_loadu_ps(w.as_ptr())),
                th(_mm256_loadu_ps(w.as_ptr().add(1))),
                th(_mm256_loadu_ps(w.as_ptr().add(2))),
            )
        };
        let peak = _mm256_and_ps(
            _mm256_cmp_ps::<_CMP_GT_OQ>(c, l),
            _mm256_cmp_ps::<_CMP_GE_OQ>(c, n),
        );
        masks.push(_mm256_movemask_ps(peak) as u32);
        k += 8;
    }
    k
}

/// A tracked peak at bin `k` of frame `t` with librosa's interpolation.
#[inline]
fn peak(t: usize, k: usize, shift: f32, avg: f32, x: f32, sr: f64, n_fft: usize) -> PitchPeak {
    let dskew = 0.5f32 * avg * shift;
    PitchPeak {
        frame: t,
        bin: k,
        freq: ((k as f64 + shift as f64) * sr / n_fft as f64) as f32,
        mag: x.abs() + dskew,
    }
}

/// `np.max(np.abs(x))` of a non-empty frame; `None` if it holds a NaN (numpy's max
/// would be NaN).
#[inline(always)]
fn abs_max(x: &[f32]) -> Option<f32> {
    min_max(x).map(|(lo, hi)| hi.max(-lo))
}

/// [`piptrack_visit`], collected.
pub fn piptrack(
    s: &[f32],
    n_bins: usize,
    sr: u32,
    n_fft: usize,
    opts: &PiptrackOptions,
) -> Vec<PitchPeak> {
    let mut out = Vec::new();
    piptrack_visit(s, n_bins, sr, n_fft, opts, |p| out.push(p));
    out
}

/// Number of histogram bins `pitch_tuning` uses for `resolution`.
pub(super) fn tuning_hist_bins(resolution: f64) -> usize {
    let n = (1.0 / resolution).ceil();
    if n.is_finite() && n >= 1.0 {
        n as usize
    } else {
        1
    }
}

/// Left edge `k` of `np.linspace(-0.5, 0.5, n + 1)`.
pub(super) fn tuning_edge(k: usize, n: usize) -> f64 {
    if k >= n {
        0.5
    } else {
        k as f64 * (1.0 / n as f64) + -0.5
    }
}

/// `librosa.pitch_tuning`, returning the index of the winning histogram bin (the
/// tuning is its left edge) or `None` when there is no positive frequency (librosa
/// warns and returns 0.0).
fn pitch_tuning_bin(
    freqs: impl Iterator<Item = f32>,
    counts: &mut Vec<u32>,
    resolution: f64,
    bins_per_octave: usize,
) -> Option<usize> {
    let n = tuning_hist_bins(resolution);
    counts.clear();
    counts.resize(n, 0);
    let bpo = bins_per_octave as f32;
    let mut any = false;
    for f in freqs {
        if f.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            continue;
        }
        any = true;
        // float32 throughout, as numpy: log2(f / 27.5) * bpo, mod 1.
        let octs = (f / 27.5f32).log2();
        let mut r = py_mod_f32(bpo * octs, 1.0);
        if r >= 0.5 {
            r -= 1.0;
        }
        // np.histogram with explicit edges: e[k] <= r < e[k+1], last bin closed;
        // comparisons in float64.
        let r = r as f64;
        if r.is_nan() || r < tuning_edge(0, n) || r > tuning_edge(n, n) {
            continue;
        }
        let mut k = (((r + 0.5) * n as f64).floor().max(0.0) as usize).min(n - 1);
        while k > 0 && r < tuning_edge(k, n) {
            k -= 1;
        }
        while k + 1 < n && r >= tuning_edge(k + 1, n) {
            k += 1;
        }
        counts[k] += 1;
    }
    if !any {
        return None;
    }
    // np.argmax: first maximum.
    let mut best = 0;
    for (k, &c) in counts.iter().enumerate() {
        if c > counts[best] {
            best = k;
        }
    }
    Some(best)
}

/// `librosa.pitch_tuning(frequencies, resolution, bins_per_octave)`: the most common
/// deviation (in fractions of a bin, in `[-0.5, 0.5)`) of `freqs` from the
/// equal-tempered A440 grid, quantised to `resolution`. 0.0 when no frequency is > 0.
pub fn pitch_tuning(freqs: &[f32], resolution: f64, bins_per_octave: usize) -> f64 {
    let mut counts = Vec::new();
    let n = tuning_hist_bins(resolution);
    match pitch_tuning_bin(
        freqs.iter().copied(),
        &mut counts,
        resolution,
        bins_per_octave,
    ) {
        Some(k) => tuning_edge(k, n),
        None => 0.0,
    }
}

/// The histogram bin `estimate_tuning` picks, for peaks tracked with `n_fft`.
pub(super) fn estimate_tuning_bin(
    s: &[f32],
    n_bins: usize,
    sr: u32,
    n_fft: usize,
    resolution: f64,
    bins_per_octave: usize,
) -> Option<usize> {
    let mut peaks: Vec<(f32, f32)> = Vec::new();
    piptrack_visit(s, n_bins, sr, n_fft, &PiptrackOptions::default(), |p| {
        if p.freq > 0.0 {
            peaks.push((p.freq, p.mag));
        }
    });
    let mut mags: Vec<f32> = peaks.iter().map(|p| p.1).collect();
    let threshold = median_f32(&mut mags);
    let mut counts = Vec::new();
    pitch_tuning_bin(
        peaks.iter().filter(|p| p.1 >= threshold).map(|p| p.0),
        &mut counts,
        resolution,
        bins_per_octave,
    )
}

/// `n_fft` that librosa's `estimate_tuning(S=...)` ends up using: it passes
/// `n_fft=2048`, which `_spectrogram` replaces by `2 * (n_bins - 1)` whenever that does
/// not fit, i.e. always `2 * (n_bins - 1)` (differs from the real `n_fft` when odd).
pub(super) fn n_fft_from_bins(n_bins: usize) -> usize {
    2 * n_bins.saturating_sub(1)
}

/// `librosa.estimate_tuning(S=s, sr=sr, resolution, bins_per_octave)` for a
/// time-major spectrogram `frames × n_bins` (as `chroma_stft` does with its power
/// spectrogram): `piptrack` peaks (150–4000 Hz, above 0.1 × frame max), those with
/// magnitude ≥ their median, then [`pitch_tuning`]. In fractions of a bin.
pub fn estimate_tuning(
    s: &[f32],
    n_bins: usize,
    sr: u32,
    resolution: f64,
    bins_per_octave: usize,
) -> f64 {
    let n = tuning_hist_bins(resolution);
    let n_fft = n_fft_from_bins(n_bins);
    match estimate_tuning_bin(s, n_bins, sr, n_fft, resolution, bins_per_octave) {
        Some(k) => tuning_edge(k, n),
        None => 0.0,
    }
}

/// `librosa.estimate_tuning(y=y, sr=sr, n_fft=n_fft, resolution, bins_per_octave)`:
/// on the magnitude STFT (hop `n_fft / 4`, window `n_fft`, centred, zero padding).
pub fn estimate_tuning_from_signal(
    y: &[f32],
    sr: u32,
    n_fft: usize,
    resolution: f64,
    bins_per_octave: usize,
) -> f64 {
    let stft = Stft::new(n_fft, n_fft / 4, None, true, PadMode::Constant);
    let mut mag = Vec::new();
    stft.power(y, 1.0, &mut mag);
    let n = tuning_hist_bins(resolution);
    match estimate_tuning_bin(&mag, stft.n_bins(), sr, n_fft, resolution, bins_per_octave) {
        Some(k) => tuning_edge(k, n),
        None => 0.0,
    }
}

/// `np.median` of float32 values (0.0 for none, as `estimate_tuning`'s threshold).
fn median_f32(v: &mut [f32]) -> f32 {
    let m = v.len();
    if m == 0 {
        return 0.0;
    }
    let (_, hi, _) = v.select_nth_unstable_by(m / 2, f32::total_cmp);
    let hi = *hi;
    if m % 2 == 1 {
        hi
    } else {
        // float32 mean of the two middle values.
        let lo = v[..m / 2].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        (lo + hi) / 2.0
    }
}
