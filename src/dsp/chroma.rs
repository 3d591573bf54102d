//! Chroma (chroma_stft with tuning estimation) and spectral contrast, matching librosa 0.11.
//!
//! * [`piptrack`], [`pitch_tuning`], [`estimate_tuning`]: `librosa.piptrack` /
//!   `pitch_tuning` / `estimate_tuning(S=...)`, including librosa's float32 arithmetic
//!   where it decides which bins count (thresholds, histogram edges).
//! * [`ChromaBank`]: `librosa.filters.chroma` (Gaussian bumps per pitch class, column
//!   L2 norm, octave weighting around `ctroct`, rotated to start at C).
//! * [`ChromaStft`] / [`chroma_stft`]: `librosa.feature.chroma_stft` on a power
//!   spectrogram (tuning given, or estimated from that same power spectrogram exactly as
//!   librosa does), per-frame `util.normalize(norm=inf)`.
//! * [`SpectralContrast`] / [`spectral_contrast`]: `librosa.feature.spectral_contrast`
//!   on a magnitude spectrogram.
//!
//! All spectrograms are time-major (`frames × n_bins`, row-major), outputs are
//! time-major too (`frames × dims`), i.e. librosa's orientation transposed.

use std::sync::OnceLock;

use super::simd::multiversion;
use super::stft::{PadMode, Stft};

/// librosa's `estimate_tuning` default histogram resolution (fractions of a bin).
pub const TUNING_RESOLUTION: f64 = 0.01;

/// `np.remainder` for floats: result has the sign of the divisor.
fn py_mod_f64(a: f64, b: f64) -> f64 {
    let mut m = a % b;
    if m != 0.0 {
        if (b < 0.0) != (m < 0.0) {
            m += b;
        }
    } else {
        m = 0.0f64.copysign(b);
    }
    m
}

fn py_mod_f32(a: f32, b: f32) -> f32 {
    let mut m = a % b;
    if m != 0.0 {
        if (b < 0.0) != (m < 0.0) {
            m += b;
        }
    } else {
        m = 0.0f32.copysign(b);
    }
    m
}

/// `librosa.fft_frequencies` (= `np.fft.rfftfreq(n_fft, 1/sr)`), bin `k`.
fn fft_frequency(k: usize, sr: f64, n_fft: usize) -> f64 {
    let val = 1.0 / (n_fft as f64 * (1.0 / sr));
    k as f64 * val
}

// ------------------------------------------------------------------------- tuning

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
            // SAFETY: this copy runs only where `avx2()` found AVX2 (and FMA).
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
unsafe fn peak_masks_avx2(x: &[f32], lo: usize, hi: usize, r: f32, masks: &mut Vec<u32>) -> usize {
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
fn tuning_hist_bins(resolution: f64) -> usize {
    let n = (1.0 / resolution).ceil();
    if n.is_finite() && n >= 1.0 {
        n as usize
    } else {
        1
    }
}

/// Left edge `k` of `np.linspace(-0.5, 0.5, n + 1)`.
fn tuning_edge(k: usize, n: usize) -> f64 {
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
fn estimate_tuning_bin(
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
fn n_fft_from_bins(n_bins: usize) -> usize {
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

// -------------------------------------------------------------------------- chroma

/// `librosa.util.normalize(x, norm, axis=<this slice>, threshold=None, fill=None)`
/// for one float32 vector: slices whose norm is below `f32::MIN_POSITIVE`
/// (`tiny(float32)`) are left as they are. `norm`: `None` (no-op), `inf`, `-inf`,
/// `0` (count of non-zeros) or `p > 0`.
pub fn normalize(x: &mut [f32], norm: Option<f64>) {
    let Some(p) = norm else { return };
    let length = if p == f64::INFINITY {
        x.iter()
            .fold(f64::NEG_INFINITY, |m, &v| m.max(v.abs() as f64))
    } else if p == f64::NEG_INFINITY {
        x.iter().fold(f64::INFINITY, |m, &v| m.min(v.abs() as f64))
    } else if p == 0.0 {
        x.iter().filter(|v| **v != 0.0).count() as f64
    } else if p > 0.0 {
        x.iter()
            .map(|&v| (v.abs() as f64).powf(p))
            .sum::<f64>()
            .powf(1.0 / p)
    } else {
        return;
    };
    // NaN/empty → not normalised (the comparison is false for NaN in numpy, too,
    // but numpy would divide; librosa rejects non-finite input up front).
    if x.is_empty() || length.is_nan() || length < f32::MIN_POSITIVE as f64 {
        return;
    }
    for v in x.iter_mut() {
        *v = (*v as f64 / length) as f32;
    }
}

/// Shape options of `librosa.filters.chroma` (defaults = librosa's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChromaOptions {
    /// Centre of the octave weighting, in octaves above C0 (`ctroct`).
    pub ctroct: f64,
    /// Gaussian half-width of the octave weighting in octaves; `None` = flat.
    pub octwidth: Option<f64>,
    /// Column norm of the filters (`norm`), see [`normalize`].
    pub norm: Option<f64>,
    /// Start at C (`base_c=True`) instead of A.
    pub base_c: bool,
}

impl Default for ChromaOptions {
    fn default() -> Self {
        ChromaOptions {
            ctroct: 5.0,
            octwidth: Some(2.0),
            norm: Some(2.0),
            base_c: true,
        }
    }
}

/// A chroma filter bank, `librosa.filters.chroma(sr, n_fft, n_chroma, tuning, ...)`.
#[derive(Debug, Clone)]
pub struct ChromaBank {
    n_chroma: usize,
    n_bins: usize,
    tuning: f64,
    /// `n_chroma × n_bins`, row-major (librosa's orientation).
    weights: Vec<f32>,
}

impl ChromaBank {
    /// librosa's defaults: `ctroct=5.0, octwidth=2, norm=2, base_c=True`.
    pub fn new(sr: u32, n_fft: usize, n_chroma: usize, tuning: f64) -> Self {
        Self::with_options(sr, n_fft, n_chroma, tuning, &ChromaOptions::default())
    }

    pub fn with_options(
        sr: u32,
        n_fft: usize,
        n_chroma: usize,
        tuning: f64,
        opts: &ChromaOptions,
    ) -> Self {
        let n_bins = n_fft / 2 + 1;
        if n_chroma == 0 || n_fft < 2 {
            return ChromaBank {
                n_chroma,
                n_bins,
                tuning,
                weights: vec![0.0; n_chroma * n_bins],
            };
        }
        let nc = n_chroma as f64;
        // frequencies = linspace(0, sr, n_fft, endpoint=False)[1:]
        let step = sr as f64 / n_fft as f64;
        let a440 = 440.0 * 2.0f64.powf(tuning / nc);
        let octs = |j: usize| nc * (j as f64 * step / (a440 / 16.0)).log2();
        // frqbins[0] is made up 1.5 octaves below bin 1; we need 0..=n_bins (the
        // bin widths look one bin ahead), bounded by the n_fft values librosa has.
        let n_frq = (n_bins + 1).min(n_fft);
        let mut frqbins = Vec::with_capacity(n_frq);
        frqbins.push(octs(1) - 1.5 * nc);
        frqbins.extend((1..n_frq).map(octs));
        let binwidth = |j: usize| -> f64 {
            if j + 1 < n_fft {
                (frqbins[j + 1] - frqbins[j]).max(1.0)
            } else {
                1.0
            }
        };
        let n_chroma2 = (nc / 2.0).round_ties_even();
        let roll = (3 * (n_chroma / 12)) % n_chroma;
        let mut weights = vec![0.0f32; n_chroma * n_bins];
        let mut col = vec![0.0f64; n_chroma];
        for j in 0..n_bins {
            let bw = binwidth(j);
            for (c, w) in col.iter_mut().enumerate() {
                let d = frqbins[j] - c as f64;
                let d = py_mod_f64(d + n_chroma2 + (10 * n_chroma) as f64, nc) - n_chroma2;
                let z = 2.0 * d / bw;
                *w = (-0.5 * (z * z)).exp();
            }
            normalize_f64(&mut col, opts.norm);
            let oct_w = match opts.octwidth {
                Some(ow) => {
                    let z = (frqbins[j] / nc - opts.ctroct) / ow;
                    (-0.5 * (z * z)).exp()
                }
                None => 1.0,
            };
            for (c, &w) in col.iter().enumerate() {
                // np.roll(wts, -roll, axis=0): row r takes old row r + roll.
                let r = if opts.base_c {
                    (c + n_chroma - roll) % n_chroma
                } else {
                    c
                };
                weights[r * n_bins + j] = (w * oct_w) as f32;
            }
        }
        ChromaBank {
            n_chroma,
            n_bins,
            tuning,
            weights,
        }
    }

    pub fn n_chroma(&self) -> usize {
        self.n_chroma
    }

    pub fn n_bins(&self) -> usize {
        self.n_bins
    }

    pub fn tuning(&self) -> f64 {
        self.tuning
    }

    /// `n_chroma × n_bins`, row-major (as `librosa.filters.chroma`).
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// Raw (unnormalised) chroma of one power-spectrum frame (`n_bins` values),
    /// written to `out[..n_chroma]`.
    pub fn apply_into(&self, spectrum: &[f32], out: &mut [f32]) {
        for (o, row) in out.iter_mut().zip(self.weights.chunks_exact(self.n_bins)) {
            *o = crate::dsp::spectral::dot(row, spectrum);
        }
    }

    /// Chroma of every frame of a time-major power spectrogram, each frame
    /// normalised with `norm` (librosa's `chroma_stft` uses `Some(f64::INFINITY)`),
    /// appended to `out` (`frames × n_chroma`).
    pub fn apply_frames(&self, power: &[f32], norm: Option<f64>, out: &mut Vec<f32>) {
        if self.n_bins == 0 {
            return;
        }
        let frames = power.len() / self.n_bins;
        let start = out.len();
        out.resize(start + frames * self.n_chroma, 0.0);
        if self.n_chroma == 0 {
            return;
        }
        let out = &mut out[start..];
        dense_frames(&self.weights, self.n_bins, self.n_chroma, power, out);
        for o in out.chunks_exact_mut(self.n_chroma) {
            normalize(o, norm);
        }
    }
}

/// Frames the dense product works on at once (each weight chunk loaded once for all).
const FRAME_BLOCK: usize = 6;
/// Weight rows per block (`FRAME_BLOCK × ROW_BLOCK` 8-lane accumulators = 12 registers).
const ROW_BLOCK: usize = 2;

crate::dsp::simd::multiversion! {
    /// `out[t][c] = weights[c] · power[t]` for every frame `t` (`n_bins` values) and
    /// row `c` (`n_rows × n_bins`, row-major): 4 frames × 3 rows per step, so every
    /// loaded value feeds several multiply-adds. Each dot sums in the lane order of
    /// [`crate::dsp::simd::dot`], so blocked and single results are identical.
    fn dense_frames<const FMA: bool>(
        weights: &[f32],
        n_bins: usize,
        n_rows: usize,
        power: &[f32],
        out: &mut [f32],
    ) {
        if n_bins == 0 || n_rows == 0 {
            return;
        }
        let rows: Vec<&[f32]> = weights.chunks_exact(n_bins).collect();
        let frames: Vec<&[f32]> = power.chunks_exact(n_bins).collect();
        let outs: Vec<&mut [f32]> = out.chunks_exact_mut(n_rows).collect();
        let mut outs = outs;
        let mut t = 0;
        while t < frames.len() {
            let nf = FRAME_BLOCK.min(frames.len() - t);
            let mut c = 0;
            while c < rows.len() {
                let nr = ROW_BLOCK.min(rows.len() - c);
                if nf == FRAME_BLOCK && nr == ROW_BLOCK {
                    let f: [&[f32]; FRAME_BLOCK] = std::array::from_fn(|i| frames[t + i]);
                    let r: [&[f32]; ROW_BLOCK] = std::array::from_fn(|j| rows[c + j]);
                    let d = block_dots::<FMA, FRAME_BLOCK, ROW_BLOCK>(&f, &r);
                    for (i, di) in d.iter().enumerate() {
                        outs[t + i][c..c + ROW_BLOCK].copy_from_slice(di);
                    }
                } else {
                    for i in 0..nf {
                        for j in 0..nr {
                            outs[t + i][c + j] =
                                crate::dsp::simd::dot_k::<FMA>(rows[c + j], frames[t + i]);
                        }
                    }
                }
                c += nr;
            }
            t += nf;
        }
    }
}

/// The `F × R` dot products of `F` frames with `R` weight rows (all one length).
#[inline(always)]
fn block_dots<const FMA: bool, const F: usize, const R: usize>(
    frames: &[&[f32]; F],
    rows: &[&[f32]; R],
) -> [[f32; R]; F] {
    use crate::dsp::simd::madd;
    let n = rows[0].len();
    let full = n - n % 8;
    let mut acc = [[[0.0f32; 8]; R]; F];
    let mut k = 0;
    while k < full {
        let w: [[f32; 8]; R] = std::array::from_fn(|j| *chunk8(rows[j], k));
        for (a, f) in acc.iter_mut().zip(frames) {
            let x = *chunk8(f, k);
            for (aj, wj) in a.iter_mut().zip(&w) {
                *aj = lanes_madd::<FMA>(*wj, x, *aj);
            }
        }
        k += 8;
    }
    std::array::from_fn(|i| {
        std::array::from_fn(|j| {
            let a = &acc[i][j];
            let mut tail = 0.0f32;
            for m in full..n {
                tail = madd::<FMA>(rows[j][m], frames[i][m], tail);
            }
            ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7])) + tail
        })
    })
}

/// `w * x + a` lane by lane (one vector multiply-add).
#[inline(always)]
fn lanes_madd<const FMA: bool>(w: [f32; 8], x: [f32; 8], a: [f32; 8]) -> [f32; 8] {
    std::array::from_fn(|l| crate::dsp::simd::madd::<FMA>(w[l], x[l], a[l]))
}

/// `s[k..k + 8]` as an array (`k + 8 <= s.len()`, checked once by the optimiser).
#[inline(always)]
fn chunk8(s: &[f32], k: usize) -> &[f32; 8] {
    match <&[f32; 8]>::try_from(&s[k..k + 8]) {
        Ok(c) => c,
        Err(_) => unreachable!("a slice of 8 converts to [f32; 8]"),
    }
}

/// [`normalize`] for the float64 filter columns (threshold `tiny(float64)`).
fn normalize_f64(x: &mut [f64], norm: Option<f64>) {
    let Some(p) = norm else { return };
    let length = if p == f64::INFINITY {
        x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v.abs()))
    } else if p == f64::NEG_INFINITY {
        x.iter().fold(f64::INFINITY, |m, &v| m.min(v.abs()))
    } else if p == 0.0 {
        x.iter().filter(|v| **v != 0.0).count() as f64
    } else if p > 0.0 {
        x.iter()
            .map(|&v| v.abs().powf(p))
            .sum::<f64>()
            .powf(1.0 / p)
    } else {
        return;
    };
    if x.is_empty() || length.is_nan() || length < f64::MIN_POSITIVE {
        return;
    }
    for v in x.iter_mut() {
        *v /= length;
    }
}

/// A planned `librosa.feature.chroma_stft` for one `(sr, n_fft, n_chroma)`: either a
/// fixed tuning (one bank, built here), or tuning estimated per input, with the
/// banks for each possible estimate (resolution 0.01 → 100 values) built on first
/// use and kept. `Sync`: share one across worker threads.
#[derive(Debug)]
pub struct ChromaStft {
    sr: u32,
    n_fft: usize,
    n_chroma: usize,
    /// Per-frame norm of the output (`norm`, librosa default `inf`).
    norm: Option<f64>,
    fixed: Option<ChromaBank>,
    /// Estimated tuning: bank per histogram bin, plus one for "no pitch" (0.0).
    estimated: Vec<OnceLock<ChromaBank>>,
    untuned: OnceLock<ChromaBank>,
}

impl ChromaStft {
    /// `tuning: None` = estimate per input (librosa `tuning=None`); `n_chroma` is
    /// also the `bins_per_octave` of the estimate, as in librosa.
    pub fn new(sr: u32, n_fft: usize, n_chroma: usize, tuning: Option<f64>) -> Self {
        let fixed = tuning.map(|t| ChromaBank::new(sr, n_fft, n_chroma, t));
        let n = if fixed.is_some() {
            0
        } else {
            tuning_hist_bins(TUNING_RESOLUTION)
        };
        ChromaStft {
            sr,
            n_fft,
            n_chroma,
            norm: Some(f64::INFINITY),
            fixed,
            estimated: (0..n).map(|_| OnceLock::new()).collect(),
            untuned: OnceLock::new(),
        }
    }

    /// Output per-frame norm (librosa's `norm`; default `inf`, `None` = raw).
    pub fn with_norm(mut self, norm: Option<f64>) -> Self {
        self.norm = norm;
        self
    }

    pub fn n_bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    pub fn n_chroma(&self) -> usize {
        self.n_chroma
    }

    /// The bank used for `power` (`frames × n_bins`): the fixed one, or the one for
    /// the tuning estimated from `power` itself.
    pub fn bank_for(&self, power: &[f32]) -> &ChromaBank {
        if let Some(b) = &self.fixed {
            return b;
        }
        let n = self.estimated.len();
        let n_bins = self.n_bins();
        match estimate_tuning_bin(
            power,
            n_bins,
            self.sr,
            n_fft_from_bins(n_bins),
            TUNING_RESOLUTION,
            self.n_chroma,
        ) {
            Some(k) if k < n => self.estimated[k].get_or_init(|| {
                ChromaBank::new(self.sr, self.n_fft, self.n_chroma, tuning_edge(k, n))
            }),
            _ => self
                .untuned
                .get_or_init(|| ChromaBank::new(self.sr, self.n_fft, self.n_chroma, 0.0)),
        }
    }

    /// Chroma of a time-major power spectrogram (`|stft|²`, `frames × n_bins`),
    /// appended to `out` as `frames × n_chroma`. Returns the tuning used.
    pub fn compute_into(&self, power: &[f32], out: &mut Vec<f32>) -> f64 {
        let bank = self.bank_for(power);
        bank.apply_frames(power, self.norm, out);
        bank.tuning()
    }

    pub fn compute(&self, power: &[f32]) -> Vec<f32> {
        let mut out = Vec::new();
        self.compute_into(power, &mut out);
        out
    }
}

/// `librosa.feature.chroma_stft(S=power, sr, n_fft, tuning, n_chroma, norm=inf)` for a
/// time-major power spectrogram (`frames × (n_fft/2 + 1)`); output `frames × n_chroma`.
/// `tuning: None` estimates it from `power` ([`estimate_tuning`] with
/// `bins_per_octave = n_chroma`). Builds its banks each call: plan a [`ChromaStft`]
/// to reuse them.
pub fn chroma_stft(
    power: &[f32],
    sr: u32,
    n_fft: usize,
    n_chroma: usize,
    tuning: Option<f64>,
) -> Vec<f32> {
    ChromaStft::new(sr, n_fft, n_chroma, tuning).compute(power)
}

/// `librosa.feature.chroma_stft(y=y, sr, n_fft, hop_length, win_length, window="hann",
/// center, pad_mode, tuning, n_chroma)`: power STFT, then [`chroma_stft`].
#[allow(clippy::too_many_arguments)]
pub fn chroma_stft_from_signal(
    y: &[f32],
    sr: u32,
    n_fft: usize,
    hop: usize,
    win_length: Option<usize>,
    center: bool,
    pad_mode: PadMode,
    n_chroma: usize,
    tuning: Option<f64>,
) -> Vec<f32> {
    let stft = Stft::new(n_fft, hop, win_length, center, pad_mode);
    let mut power = Vec::new();
    stft.power(y, 2.0, &mut power);
    chroma_stft(&power, sr, n_fft, n_chroma, tuning)
}

// ----------------------------------------------------------------- spectral contrast

/// Why a spectral-contrast plan could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ContrastError {
    #[error(
        "spectral_contrast: frequency band exceeds Nyquist ({top_low} Hz >= {nyquist} Hz); reduce fmin or n_bands"
    )]
    Nyquist { top_low: f64, nyquist: f64 },
    #[error("spectral_contrast: band {band} ({low}–{high} Hz) has no FFT bins; raise n_fft")]
    EmptyBand { band: usize, low: f64, high: f64 },
    #[error("spectral_contrast: {0}")]
    Invalid(&'static str),
}

/// One octave band: spectrogram rows `start .. start + rows`, `q` values averaged
/// for the valley and for the peak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContrastBand {
    pub start: usize,
    pub rows: usize,
    pub q: usize,
}

/// A planned `librosa.feature.spectral_contrast(S=mag, sr, n_fft, fmin, n_bands,
/// quantile, linear)`.
#[derive(Debug, Clone)]
pub struct SpectralContrast {
    n_bins: usize,
    linear: bool,
    bands: Vec<ContrastBand>,
}

impl SpectralContrast {
    /// Octave bands `[0, fmin], [fmin, 2 fmin], …, [fmin 2^(n_bands-1), sr/2]`.
    pub fn new(
        sr: u32,
        n_fft: usize,
        fmin: f64,
        n_bands: usize,
        quantile: f64,
        linear: bool,
    ) -> Result<Self, ContrastError> {
        if n_bands < 1 {
            return Err(ContrastError::Invalid("n_bands must be a positive integer"));
        }
        if quantile.is_nan() || quantile <= 0.0 || quantile >= 1.0 {
            return Err(ContrastError::Invalid(
                "quantile must lie in the range (0, 1)",
            ));
        }
        if fmin.is_nan() || fmin <= 0.0 {
            return Err(ContrastError::Invalid("fmin must be a positive number"));
        }
        let n_bins = n_fft / 2 + 1;
        let sr_f = sr as f64;
        // octa = [0, fmin * 2^0, ..., fmin * 2^n_bands]
        let octa: Vec<f64> = std::iter::once(0.0)
            .chain((0..=n_bands).map(|i| fmin * 2.0f64.powi(i as i32)))
            .collect();
        if let Some(&top_low) = octa[..octa.len() - 1].iter().find(|&&f| f >= 0.5 * sr_f) {
            return Err(ContrastError::Nyquist {
                top_low,
                nyquist: 0.5 * sr_f,
            });
        }
        let freq: Vec<f64> = (0..n_bins).map(|k| fft_frequency(k, sr_f, n_fft)).collect();
        let mut bands = Vec::with_capacity(n_bands + 1);
        for k in 0..=n_bands {
            let (low, high) = (octa[k], octa[k + 1]);
            let inside = |f: &f64| *f >= low && *f <= high;
            let (Some(first), Some(last)) =
                (freq.iter().position(inside), freq.iter().rposition(inside))
            else {
                return Err(ContrastError::EmptyBand { band: k, low, high });
            };
            // One bin below the band (k > 0); everything above for the last band.
            let start = if k > 0 {
                first.saturating_sub(1)
            } else {
                first
            };
            let end = if k == n_bands { n_bins - 1 } else { last };
            let count = end - start + 1;
            // The last row is dropped except in the top band.
            let rows = if k < n_bands { count - 1 } else { count };
            if rows == 0 {
                // librosa: mean of an empty slice (NaN).
                return Err(ContrastError::EmptyBand { band: k, low, high });
            }
            let q = ((quantile * count as f64).round_ties_even() as usize).max(1);
            bands.push(ContrastBand {
                start,
                rows,
                q: q.min(rows),
            });
        }
        Ok(SpectralContrast {
            n_bins,
            linear,
            bands,
        })
    }

    pub fn n_bins(&self) -> usize {
        self.n_bins
    }

    /// `n_bands + 1`.
    pub fn n_out(&self) -> usize {
        self.bands.len()
    }

    pub fn bands(&self) -> &[ContrastBand] {
        &self.bands
    }

    /// Peak and valley (mean of the `q` largest / smallest values) of every band and
    /// frame of a time-major magnitude spectrogram, appended as `frames × n_out`.
    pub fn peaks_valleys(&self, mag: &[f32], peaks: &mut Vec<f64>, valleys: &mut Vec<f64>) {
        let frames = mag.len() / self.n_bins.max(1);
        peaks.reserve(frames * self.bands.len());
        valleys.reserve(frames * self.bands.len());
        contrast_frames(mag, self.n_bins.max(1), &self.bands, peaks, valleys);
    }

    /// Contrast of a whole time-major magnitude spectrogram (`|stft|`), `frames ×
    /// (n_bands + 1)`. With `linear = false` this is `power_to_db(peak) −
    /// power_to_db(valley)` with librosa's defaults (`ref=1, amin=1e-10, top_db=80`),
    /// where the 80 dB floor is relative to the maximum over the *whole* input, so
    /// the result for a frame depends on the other frames passed in the same call.
    pub fn compute(&self, mag: &[f32]) -> Vec<f32> {
        let mut peaks = Vec::new();
        let mut valleys = Vec::new();
        self.peaks_valleys(mag, &mut peaks, &mut valleys);
        if self.linear {
            return peaks
                .iter()
                .zip(&valleys)
                .map(|(p, v)| (p - v) as f32)
                .collect();
        }
        power_to_db_f64(&mut peaks);
        power_to_db_f64(&mut valleys);
        peaks
            .iter()
            .zip(&valleys)
            .map(|(p, v)| (p - v) as f32)
            .collect()
    }
}

multiversion! {
    /// [`SpectralContrast::peaks_valleys`]'s loop over frames and bands (the
    /// selection helpers are inlined into both instruction-set copies).
    fn contrast_frames<const FMA: bool>(
        mag: &[f32],
        n_bins: usize,
        bands: &[ContrastBand],
        peaks: &mut Vec<f64>,
        valleys: &mut Vec<f64>,
    ) {
        let _ = FMA;
        let mut scratch = Vec::new();
        for frame in mag.chunks_exact(n_bins) {
            for b in bands {
                let s = &frame[b.start..b.start + b.rows];
                let (lo, hi) = extreme_sums(s, b.q, &mut scratch);
                // librosa's means are float32.
                valleys.push((lo / b.q as f64) as f32 as f64);
                peaks.push((hi / b.q as f64) as f32 as f64);
            }
        }
    }
}

/// Lanes of the strided minima / maxima in [`extreme_sums`].
const LANES: usize = 16;
/// Largest `q` the lane bound serves (beyond it: a selection over a copy).
const MAX_Q: usize = 8;
/// Candidates collected beyond the lane thresholds before falling back to a
/// selection over a copy (many ties, e.g. digital silence).
const MAX_CANDIDATES: usize = 64;

/// Sums (in f64) of the `q` smallest and of the `q` largest values of `s`, i.e. of
/// what a full sort would put first and last (`1 <= q <= s.len()`); NaN ranks as
/// `f32::total_cmp` ranks it (above everything, as in numpy's sort).
///
/// Only sums are needed (the band's valley and peak are means), so nothing is
/// sorted: `q = 1` is one vectorised min/max pass. Larger `q` take the minimum and
/// maximum of 16 strided lanes (lane `j` holds `s[j], s[j+16], …`); the q-th
/// smallest lane minimum `t_lo` has at least q values at or below it, so the q
/// smallest values all lie there (likewise above the q-th largest lane maximum
/// `t_hi`). A second pass skips every 16-value chunk with nothing beyond either
/// threshold and keeps the few candidates, from which an insertion pass takes the
/// q extremes. Short bands, `q > 8`, NaN and large ties fall back to a selection
/// over a copy in `scratch`.
#[inline(always)]
fn extreme_sums(s: &[f32], q: usize, scratch: &mut Vec<f32>) -> (f64, f64) {
    let n = s.len();
    if q == 0 || n < q {
        return (0.0, 0.0);
    }
    if q == 1 {
        if let Some((lo, hi)) = min_max(s) {
            return (lo as f64, hi as f64);
        }
        return select_sums(s, q, scratch);
    }
    if n < 2 * LANES || q > MAX_Q {
        return select_sums(s, q, scratch);
    }
    let (mins, maxs, nan) = lane_extremes(s);
    if nan {
        return select_sums(s, q, scratch);
    }
    let (lo8, hi8) = smallest8_pair(&mins, &maxs.map(|v| -v));
    let (t_lo, t_hi) = (lo8[q - 1], -hi8[q - 1]);
    let mut low = [0.0f32; MAX_CANDIDATES];
    let mut high = [0.0f32; MAX_CANDIDATES];
    let Some((nl, nh)) = candidates(s, t_lo, t_hi, &mut low, &mut high) else {
        return select_sums(s, q, scratch);
    };
    // `high` holds the candidates negated: its q smallest are the q largest.
    let (lo8, hi8) = smallest8_pair(&low[..nl], &high[..nh]);
    let sum = |v: [f32; MAX_Q]| v[..q].iter().map(|&x| x as f64).sum::<f64>();
    (sum(lo8), -sum(hi8))
}

/// The values of `s` at or below `t_lo` into `low` and, negated, those at or
/// above `t_hi` into `high`, with their counts; `None` if either list would overflow. Eight values
/// are compared at a time and only the set bits of the comparison masks visited
/// (with AVX2: compare + movemask).
#[inline(always)]
fn candidates(
    s: &[f32],
    t_lo: f32,
    t_hi: f32,
    low: &mut [f32; MAX_CANDIDATES],
    high: &mut [f32; MAX_CANDIDATES],
) -> Option<(usize, usize)> {
    #[cfg(target_arch = "x86_64")]
    if super::simd::avx2() {
        // SAFETY: AVX2 checked at run time.
        return unsafe { candidates_avx2(s, t_lo, t_hi, low, high) };
    }
    candidates_with(s, t_lo, t_hi, low, high, masks8)
}

/// For each 8-bit mask, the lane indices of its set bits first (the AVX2
/// "compress" permutation).
#[cfg(target_arch = "x86_64")]
static COMPRESS: [[i32; 8]; 256] = {
    let mut t = [[0i32; 8]; 256];
    let mut m = 0;
    while m < 256 {
        let (mut j, mut n) = (0, 0);
        while j < 8 {
            if m & (1 << j) != 0 {
                t[m][n] = j;
                n += 1;
            }
            j += 1;
        }
        m += 1;
    }
    t
};

/// [`candidates`] with AVX2, without branches per chunk: each chunk's values at or
/// below `t_lo` are moved to the front of a register (permutation from
/// [`COMPRESS`]) and stored at the end of the list, which then grows by their count
/// (and likewise, negated, above `t_hi`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn candidates_avx2(
    s: &[f32],
    t_lo: f32,
    t_hi: f32,
    low: &mut [f32; MAX_CANDIDATES],
    high: &mut [f32; MAX_CANDIDATES],
) -> Option<(usize, usize)> {
    use std::arch::x86_64::*;
    // Room for a whole register past the last counted value.
    let mut lo_buf = [0.0f32; MAX_CANDIDATES + 8];
    let mut hi_buf = [0.0f32; MAX_CANDIDATES + 8];
    let (mut nl, mut nh) = (0usize, 0usize);
    let (tl, th) = (_mm256_set1_ps(t_lo), _mm256_set1_ps(t_hi));
    let sign = _mm256_set1_ps(-0.0);
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        if nl > MAX_CANDIDATES || nh > MAX_CANDIDATES {
            return None;
        }
        // SAFETY: `c` holds 8 values; the stores write 8 floats at `nl` / `nh` ≤
        // MAX_CANDIDATES into buffers of MAX_CANDIDATES + 8; the table rows hold 8
        // indices.
        unsafe {
            let v = _mm256_loadu_ps(c.as_ptr());
            let ml = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(v, tl)) as usize;
            let mh = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(v, th)) as usize;
            let il = _mm256_loadu_si256(COMPRESS[ml].as_ptr().cast());
            let ih = _mm256_loadu_si256(COMPRESS[mh].as_ptr().cast());
            _mm256_storeu_ps(lo_buf.as_mut_ptr().add(nl), _mm256_permutevar8x32_ps(v, il));
            let neg = _mm256_xor_ps(v, sign);
            _mm256_storeu_ps(
                hi_buf.as_mut_ptr().add(nh),
                _mm256_permutevar8x32_ps(neg, ih),
            );
            nl += ml.count_ones() as usize;
            nh += mh.count_ones() as usize;
        }
    }
    for &v in chunks.remainder() {
        if nl >= MAX_CANDIDATES || nh >= MAX_CANDIDATES {
            return None;
        }
        if v <= t_lo {
            lo_buf[nl] = v;
            nl += 1;
        }
        if v >= t_hi {
            hi_buf[nh] = -v;
            nh += 1;
        }
    }
    if nl > MAX_CANDIDATES || nh > MAX_CANDIDATES {
        return None;
    }
    low[..nl].copy_from_slice(&lo_buf[..nl]);
    high[..nh].copy_from_slice(&hi_buf[..nh]);
    Some((nl, nh))
}

#[inline(always)]
fn candidates_with(
    s: &[f32],
    t_lo: f32,
    t_hi: f32,
    low: &mut [f32; MAX_CANDIDATES],
    high: &mut [f32; MAX_CANDIDATES],
    masks: impl Fn(&[f32; 8], f32, f32) -> (u32, u32),
) -> Option<(usize, usize)> {
    let (mut nl, mut nh) = (0usize, 0usize);
    let push = |list: &mut [f32; MAX_CANDIDATES], n: &mut usize, v: f32| -> Option<()> {
        *list.get_mut(*n)? = v;
        *n += 1;
        Some(())
    };
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let Ok(c) = <&[f32; 8]>::try_from(c) else {
            continue;
        };
        let (ml, mh) = masks(c, t_lo, t_hi);
        if ml | mh == 0 {
            continue;
        }
        let mut m = ml;
        while m != 0 {
            push(low, &mut nl, c[m.trailing_zeros() as usize])?;
            m &= m - 1;
        }
        let mut m = mh;
        while m != 0 {
            push(high, &mut nh, -c[m.trailing_zeros() as usize])?;
            m &= m - 1;
        }
    }
    for &v in chunks.remainder() {
        if v <= t_lo {
            push(low, &mut nl, v)?;
        }
        if v >= t_hi {
            push(high, &mut nh, -v)?;
        }
    }
    Some((nl, nh))
}

/// Bit masks of `c[j] <= lo` and `c[j] >= hi` (portable).
#[inline(always)]
fn masks8(c: &[f32; 8], lo: f32, hi: f32) -> (u32, u32) {
    let (mut ml, mut mh) = (0u32, 0u32);
    for (j, &v) in c.iter().enumerate() {
        ml |= u32::from(v <= lo) << j;
        mh |= u32::from(v >= hi) << j;
    }
    (ml, mh)
}

/// Minimum and maximum of `s` (non-empty) in one 8-lane pass; `None` if `s` holds a
/// NaN.
#[inline(always)]
fn min_max(s: &[f32]) -> Option<(f32, f32)> {
    let mut mins = [f32::INFINITY; 8];
    let mut maxs = [f32::NEG_INFINITY; 8];
    let mut nan = [false; 8];
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        if let Ok(c) = <&[f32; 8]>::try_from(c) {
            for j in 0..8 {
                mins[j] = if c[j] < mins[j] { c[j] } else { mins[j] };
                maxs[j] = if c[j] > maxs[j] { c[j] } else { maxs[j] };
                nan[j] |= c[j].is_nan();
            }
        }
    }
    let mut lo = mins
        .iter()
        .fold(f32::INFINITY, |a, &b| if b < a { b } else { a });
    let mut hi = maxs
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    let mut any_nan = nan.iter().any(|&b| b);
    for &v in chunks.remainder() {
        lo = if v < lo { v } else { lo };
        hi = if v > hi { v } else { hi };
        any_nan |= v.is_nan();
    }
    (!any_nan).then_some((lo, hi))
}

/// The 8 smallest of `a` and of `b` (each ascending, `+inf` padded; no NaN): two
/// independent [`smallest8`] merges run side by side, which hides each one's
/// latency behind the other.
#[inline(always)]
fn smallest8_pair(a: &[f32], b: &[f32]) -> ([f32; MAX_Q], [f32; MAX_Q]) {
    #[cfg(target_arch = "x86_64")]
    if super::simd::avx2() {
        // SAFETY: AVX2 checked at run time.
        return unsafe { smallest8_pair_avx2(a, b) };
    }
    (smallest8(a), smallest8(b))
}

/// [`smallest8_pair`] on two AVX2 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn smallest8_pair_avx2(a: &[f32], b: &[f32]) -> ([f32; MAX_Q], [f32; MAX_Q]) {
    use std::arch::x86_64::*;
    let shift = _mm256_setr_epi32(0, 0, 1, 2, 3, 4, 5, 6);
    let neg = _mm256_set1_ps(f32::NEG_INFINITY);
    let mut ba = _mm256_set1_ps(f32::INFINITY);
    let mut bb = ba;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(f32::INFINITY);
        let y = b.get(i).copied().unwrap_or(f32::INFINITY);
        let sa = _mm256_blend_ps::<1>(_mm256_permutevar8x32_ps(ba, shift), neg);
        let sb = _mm256_blend_ps::<1>(_mm256_permutevar8x32_ps(bb, shift), neg);
        ba = _mm256_min_ps(ba, _mm256_max_ps(sa, _mm256_set1_ps(x)));
        bb = _mm256_min_ps(bb, _mm256_max_ps(sb, _mm256_set1_ps(y)));
    }
    let (mut oa, mut ob) = ([0.0f32; MAX_Q], [0.0f32; MAX_Q]);
    // SAFETY: each array holds 8 floats.
    unsafe {
        _mm256_storeu_ps(oa.as_mut_ptr(), ba);
        _mm256_storeu_ps(ob.as_mut_ptr(), bb);
    }
    (oa, ob)
}

/// [`smallest8`] on one AVX2 register (the intrinsics inline only into a function
/// compiled with the feature).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn smallest8_avx2(v: &[f32]) -> [f32; MAX_Q] {
    use std::arch::x86_64::*;
    let shift = _mm256_setr_epi32(0, 0, 1, 2, 3, 4, 5, 6);
    let neg = _mm256_set1_ps(f32::NEG_INFINITY);
    let mut best = _mm256_set1_ps(f32::INFINITY);
    for &x in v {
        let shifted = _mm256_blend_ps::<1>(_mm256_permutevar8x32_ps(best, shift), neg);
        best = _mm256_min_ps(best, _mm256_max_ps(shifted, _mm256_set1_ps(x)));
    }
    let mut out = [0.0f32; MAX_Q];
    // SAFETY: `out` holds 8 floats.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), best) };
    out
}

/// The 8 smallest of `v` in ascending order (`+inf` where `v` has fewer; no NaN).
/// Each value is merged into the sorted list without branches: `best[i] =
/// min(best[i], max(best[i-1], x))` — with AVX2 four instructions per value on one
/// register (permute, blend, max, min).
#[inline(always)]
fn smallest8(v: &[f32]) -> [f32; MAX_Q] {
    #[cfg(target_arch = "x86_64")]
    if super::simd::avx2() {
        // SAFETY: AVX2 checked at run time.
        return unsafe { smallest8_avx2(v) };
    }
    let mut best = [f32::INFINITY; MAX_Q];
    for &x in v {
        let mut shifted = [f32::NEG_INFINITY; MAX_Q];
        shifted[1..].copy_from_slice(&best[..MAX_Q - 1]);
        for i in 0..MAX_Q {
            let m = if shifted[i] > x { shifted[i] } else { x };
            best[i] = if best[i] < m { best[i] } else { m };
        }
    }
    best
}

/// [`extreme_sums`] by selection over a copy (`f32::total_cmp` order), summed in
/// sorted order.
fn select_sums(s: &[f32], q: usize, scratch: &mut Vec<f32>) -> (f64, f64) {
    let n = s.len();
    scratch.clear();
    scratch.extend_from_slice(s);
    let sum = |v: &mut [f32]| {
        v.sort_unstable_by(f32::total_cmp);
        v.iter().map(|&x| x as f64).sum::<f64>()
    };
    if q < n {
        scratch.select_nth_unstable_by(q - 1, f32::total_cmp);
    }
    let lo = sum(&mut scratch[..q]);
    scratch.clear();
    scratch.extend_from_slice(s);
    if q < n {
        scratch.select_nth_unstable_by(n - q, f32::total_cmp);
    }
    let hi = sum(&mut scratch[n - q..]);
    (lo, hi)
}

/// Minimum and maximum of each of 16 strided lanes of `s` (`s.len() >= 16`; the tail
/// folds into the first lanes), and whether `s` holds a NaN.
#[inline(always)]
fn lane_extremes(s: &[f32]) -> ([f32; LANES], [f32; LANES], bool) {
    #[cfg(target_arch = "x86_64")]
    if super::simd::avx2() {
        // SAFETY: AVX2 checked at run time.
        return unsafe { lane_extremes_avx2(s) };
    }
    let mut mins = [f32::INFINITY; LANES];
    let mut maxs = [f32::NEG_INFINITY; LANES];
    let mut nan = [false; LANES];
    let mut chunks = s.chunks_exact(LANES);
    for c in &mut chunks {
        if let Ok(c) = <&[f32; LANES]>::try_from(c) {
            for j in 0..LANES {
                mins[j] = if c[j] < mins[j] { c[j] } else { mins[j] };
                maxs[j] = if c[j] > maxs[j] { c[j] } else { maxs[j] };
                nan[j] |= c[j].is_nan();
            }
        }
    }
    fold_tail(chunks.remainder(), mins, maxs, nan.iter().any(|&b| b))
}

/// The tail of [`lane_extremes`] folded into the first lanes.
#[inline(always)]
fn fold_tail(
    tail: &[f32],
    mut mins: [f32; LANES],
    mut maxs: [f32; LANES],
    mut nan: bool,
) -> ([f32; LANES], [f32; LANES], bool) {
    for (j, &v) in tail.iter().enumerate() {
        mins[j] = if v < mins[j] { v } else { mins[j] };
        maxs[j] = if v > maxs[j] { v } else { maxs[j] };
        nan |= v.is_nan();
    }
    (mins, maxs, nan)
}

/// [`lane_extremes`] on four AVX registers (NaN seen by an unordered compare).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lane_extremes_avx2(s: &[f32]) -> ([f32; LANES], [f32; LANES], bool) {
    use std::arch::x86_64::*;
    let mut lo = [_mm256_set1_ps(f32::INFINITY); 2];
    let mut hi = [_mm256_set1_ps(f32::NEG_INFINITY); 2];
    let mut nan = _mm256_setzero_ps();
    let mut chunks = s.chunks_exact(LANES);
    for c in &mut chunks {
        for h in 0..2 {
            // SAFETY: each chunk holds 16 values; the loads read 8 of them.
            let v = unsafe { _mm256_loadu_ps(c.as_ptr().add(8 * h)) };
            lo[h] = _mm256_min_ps(v, lo[h]);
            hi[h] = _mm256_max_ps(v, hi[h]);
            nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
        }
    }
    let (mut mins, mut maxs) = ([0.0f32; LANES], [0.0f32; LANES]);
    // SAFETY: the arrays hold 16 floats, two registers each.
    unsafe {
        _mm256_storeu_ps(mins.as_mut_ptr(), lo[0]);
        _mm256_storeu_ps(mins.as_mut_ptr().add(8), lo[1]);
        _mm256_storeu_ps(maxs.as_mut_ptr(), hi[0]);
        _mm256_storeu_ps(maxs.as_mut_ptr().add(8), hi[1]);
    }
    fold_tail(chunks.remainder(), mins, maxs, _mm256_movemask_ps(nan) != 0)
}

/// `librosa.power_to_db(S)` with its defaults (`ref=1.0, amin=1e-10, top_db=80.0`),
/// float64, in place.
fn power_to_db_f64(s: &mut [f64]) {
    let mut max = f64::NEG_INFINITY;
    for v in s.iter_mut() {
        *v = 10.0 * v.max(1e-10).log10();
        max = max.max(*v);
    }
    let floor = max - 80.0;
    for v in s.iter_mut() {
        *v = v.max(floor);
    }
}

/// `librosa.feature.spectral_contrast(S=mag, sr, n_fft, fmin, n_bands, quantile,
/// linear)` for a time-major magnitude spectrogram (`frames × (n_fft/2 + 1)`);
/// output `frames × (n_bands + 1)`. See [`SpectralContrast::compute`].
pub fn spectral_contrast(
    mag: &[f32],
    sr: u32,
    n_fft: usize,
    fmin: f64,
    n_bands: usize,
    quantile: f64,
    linear: bool,
) -> Result<Vec<f32>, ContrastError> {
    Ok(SpectralContrast::new(sr, n_fft, fmin, n_bands, quantile, linear)?.compute(mag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_chroma_product_equals_single_dots() {
        let bank = ChromaBank::new(22050, 2048, 12, -0.07);
        let bins = bank.n_bins();
        // 11 frames: two full blocks of 4 and a remainder of 3.
        let power: Vec<f32> = (0..11 * bins)
            .map(|i| ((i as f32 * 0.013).sin() + 1.1) * (1.0 + (i % 7) as f32))
            .collect();
        let mut blocked = Vec::new();
        bank.apply_frames(&power, None, &mut blocked);
        assert_eq!(blocked.len(), 11 * 12);
        for (t, frame) in power.chunks_exact(bins).enumerate() {
            let mut single = vec![0.0; 12];
            bank.apply_into(frame, &mut single);
            assert_eq!(single, blocked[t * 12..(t + 1) * 12].to_vec(), "frame {t}");
            for (c, row) in bank.weights().chunks_exact(bins).enumerate() {
                let exact: f64 = row
                    .iter()
                    .zip(frame)
                    .map(|(w, x)| *w as f64 * *x as f64)
                    .sum();
                assert!((single[c] as f64 - exact).abs() <= 1e-5 * exact.abs().max(1.0));
            }
        }
        // Both instruction-set copies agree within rounding.
        let rows: [&[f32]; 3] = std::array::from_fn(|j| &bank.weights()[j * bins..(j + 1) * bins]);
        let frames: [&[f32]; 4] = std::array::from_fn(|i| &power[i * bins..(i + 1) * bins]);
        let a = block_dots::<false, 4, 3>(&frames, &rows);
        let b = block_dots::<true, 4, 3>(&frames, &rows);
        for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
            assert!((x - y).abs() <= 1e-5 * x.abs().max(1.0), "{x} vs {y}");
        }
    }

    #[test]
    fn extreme_sums_equal_a_full_sort() {
        let sorted_sums = |s: &[f32], q: usize| {
            let mut v = s.to_vec();
            v.sort_by(f32::total_cmp);
            let lo: f64 = v[..q].iter().map(|&x| x as f64).sum();
            let hi: f64 = v[v.len() - q..].iter().map(|&x| x as f64).sum();
            (lo, hi)
        };
        let close = |a: f64, b: f64| {
            (a == b) || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
        };
        let mut scratch = Vec::new();
        // Deterministic pseudo-random values with ties.
        let mut x = 12345u32;
        for (n, shape) in [1usize, 2, 5, 16, 26, 33, 40, 103, 411, 1500]
            .into_iter()
            .flat_map(|n| (0..5).map(move |k| (n, k)))
        {
            let s: Vec<f32> = (0..n)
                .map(|i| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    let r = ((x >> 16) % 50) as f32 * 0.5;
                    // random, falling (a spectral tilt), rising with noise, all
                    // equal (silence: every value ties), and a few spikes
                    match shape {
                        0 => r,
                        1 => 1000.0 - i as f32 + r * 0.1,
                        2 => i as f32 + r * 0.1,
                        3 => 0.0,
                        _ => (if i % 97 == 3 { 1e6 } else { 1e-9 }) * (1.0 + r),
                    }
                })
                .collect();
            for q in 1..=n.min(12) {
                let got = extreme_sums(&s, q, &mut scratch);
                let want = sorted_sums(&s, q);
                assert!(
                    close(got.0, want.0) && close(got.1, want.1),
                    "n {n} shape {shape} q {q}: {got:?} vs {want:?}"
                );
            }
        }
        // NaN ranks as total_cmp ranks it (largest), like numpy's sort.
        let mut s: Vec<f32> = (0..200).map(|i| (i as f32 * 0.37).sin()).collect();
        s[77] = f32::NAN;
        for q in [1, 3] {
            let got = extreme_sums(&s, q, &mut scratch);
            let want = sorted_sums(&s, q);
            assert!(got.1.is_nan() && close(got.0, want.0), "q {q}");
        }
    }

    /// Speed of the band selection alone (`cargo test --release --lib
    /// contrast_selection_speed -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn contrast_selection_speed() {
        let sc = SpectralContrast::new(16000, 2048, 200.0, 6, 0.02, false).unwrap();
        let mut x = 1u32;
        let frames = 4000;
        let mag: Vec<f32> = (0..frames * 1025)
            .map(|i| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let k = (i % 1025) as f32;
                let r = ((x >> 8) & 0xffff) as f32 / 65536.0;
                // tilted spectrum, harmonics, noise, a deep top
                (1.0 / (1.0 + k * 0.01))
                    * (1.0 + 3.0 * ((k * 0.3).sin()).max(0.0))
                    * (0.2 + r)
                    * if k > 980.0 { 1e-6 } else { 1.0 }
            })
            .collect();
        let (mut p, mut v) = (Vec::new(), Vec::new());
        let mut best = f64::INFINITY;
        for _ in 0..20 {
            p.clear();
            v.clear();
            let t = std::time::Instant::now();
            sc.peaks_valleys(&mag, &mut p, &mut v);
            best = best.min(t.elapsed().as_secs_f64());
        }
        eprintln!("{:.0} ns per frame", best / frames as f64 * 1e9);
    }
}
