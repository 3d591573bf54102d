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
    for (t, x) in s.chunks_exact(n_bins).enumerate() {
        let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v.abs()));
        let ref_value = opts.threshold * max;
        // S * (S > ref_value)
        let th = |v: f32| if v.abs() > ref_value { v.abs() } else { 0.0 };
        for k in lo..hi {
            let c = th(x[k]);
            let is_max = if k + 1 == n_bins {
                c > th(x[k - 1])
            } else {
                c > th(x[k - 1]) && c >= th(x[k + 1])
            };
            if !is_max {
                continue;
            }
            // Parabolic shift (numba stencil: float32 sums, float64 arithmetic after
            // the integer constants); zero at the edges.
            let (shift, avg) = if k + 1 == n_bins {
                (0.0f32, x[k].abs() - x[k - 1].abs())
            } else {
                let (xm, x0, xp) = (x[k - 1].abs(), x[k].abs(), x[k + 1].abs());
                let a = (xp + xm) as f64 - 2.0 * x0 as f64;
                let b = (xp - xm) as f64 / 2.0;
                let shift = if b.abs() >= a.abs() {
                    0.0f32
                } else {
                    (-b / a) as f32
                };
                // np.gradient, interior: (f[k+1] - f[k-1]) / 2 in float32.
                (shift, (xp - xm) / 2.0)
            };
            let dskew = 0.5f32 * avg * shift;
            let freq = ((k as f64 + shift as f64) * sr_f / n_fft as f64) as f32;
            visit(PitchPeak {
                frame: t,
                bin: k,
                freq,
                mag: x[k].abs() + dskew,
            });
        }
    }
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
const FRAME_BLOCK: usize = 4;
/// Weight rows per block (`FRAME_BLOCK × ROW_BLOCK` 8-lane accumulators = 12 registers).
const ROW_BLOCK: usize = 3;

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
        let max_q = self.bands.iter().map(|b| b.q).max().unwrap_or(1);
        let (mut low, mut high) = (vec![0.0f32; max_q], vec![0.0f32; max_q]);
        for frame in mag.chunks_exact(self.n_bins.max(1)) {
            for b in &self.bands {
                let s = &frame[b.start..b.start + b.rows];
                let (lo, hi) = (&mut low[..b.q], &mut high[..b.q]);
                extremes(s, lo, hi);
                let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
                // librosa's means are float32.
                valleys.push(mean(lo) as f32 as f64);
                peaks.push(mean(hi) as f32 as f64);
            }
        }
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

/// The `lo.len()` smallest values of `s` into `lo` (ascending) and the `hi.len()`
/// largest into `hi` (descending), as a full sort would give them.
///
/// Two vectorised passes instead of a selection over a copy: the first takes the
/// minimum and maximum of 32 strided lanes (lane `j` holds `s[j], s[j+32], …`); the
/// q-th smallest lane minimum `t_lo` has at least q values at or below it, so the q
/// smallest values all lie there (and likewise above the q-th largest lane maximum
/// `t_hi`). The second pass skips every 32-value chunk with nothing beyond either
/// threshold and collects the few candidates, which are then sorted. Short bands,
/// large `q` and NaN fall back to a sorted copy. Needs `lo.len() == hi.len() <=
/// s.len()`.
fn extremes(s: &[f32], lo: &mut [f32], hi: &mut [f32]) {
    const L: usize = 32;
    let (q, n) = (lo.len(), s.len());
    if q == 0 || n < q || hi.len() != q {
        return;
    }
    let sorted_copy = |lo: &mut [f32], hi: &mut [f32]| {
        let mut v = s.to_vec();
        v.sort_unstable_by(f32::total_cmp);
        lo.copy_from_slice(&v[..q]);
        for (h, x) in hi.iter_mut().zip(v.iter().rev()) {
            *h = *x;
        }
    };
    if n < 2 * L || q > L / 4 {
        return sorted_copy(lo, hi);
    }
    let (mut mins, mut maxs, nan) = lane_extremes(s);
    // NaN compares false everywhere and would be lost; total_cmp ranks it.
    if nan {
        return sorted_copy(lo, hi);
    }
    let (_, &mut t_lo, _) = mins.select_nth_unstable_by(q - 1, f32::total_cmp);
    let (_, &mut t_hi, _) = maxs.select_nth_unstable_by(q - 1, |a, b| b.total_cmp(a));
    let mut low: Vec<f32> = Vec::with_capacity(4 * q);
    let mut high: Vec<f32> = Vec::with_capacity(4 * q);
    let mut chunks = s.chunks_exact(L);
    for c in &mut chunks {
        if c.iter()
            .fold(false, |any, &v| any | (v <= t_lo) | (v >= t_hi))
        {
            for &v in c {
                if v <= t_lo {
                    low.push(v);
                }
                if v >= t_hi {
                    high.push(v);
                }
            }
        }
    }
    for &v in chunks.remainder() {
        if v <= t_lo {
            low.push(v);
        }
        if v >= t_hi {
            high.push(v);
        }
    }
    low.sort_unstable_by(f32::total_cmp);
    high.sort_unstable_by(|a, b| b.total_cmp(a));
    lo.copy_from_slice(&low[..q]);
    hi.copy_from_slice(&high[..q]);
}

/// Minimum and maximum of each of 32 strided lanes of `s` (`s.len() >= 32`; the tail
/// folds into the first lanes), and whether `s` holds a NaN.
fn lane_extremes(s: &[f32]) -> ([f32; 32], [f32; 32], bool) {
    let mut mins = [f32::INFINITY; 32];
    let mut maxs = [f32::NEG_INFINITY; 32];
    let mut nan = [0u32; 32];
    let mut chunks = s.chunks_exact(32);
    for c in &mut chunks {
        if let Ok(c) = <&[f32; 32]>::try_from(c) {
            for j in 0..32 {
                mins[j] = if c[j] < mins[j] { c[j] } else { mins[j] };
                maxs[j] = if c[j] > maxs[j] { c[j] } else { maxs[j] };
                nan[j] |= u32::from(c[j].is_nan());
            }
        }
    }
    let mut tail_nan = false;
    for (j, &v) in chunks.remainder().iter().enumerate() {
        mins[j] = if v < mins[j] { v } else { mins[j] };
        maxs[j] = if v > maxs[j] { v } else { maxs[j] };
        tail_nan |= v.is_nan();
    }
    (mins, maxs, tail_nan || nan.iter().any(|&b| b != 0))
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
    fn extremes_equal_a_full_sort() {
        // Deterministic pseudo-random values with ties.
        let mut x = 12345u32;
        for (n, shape) in [1usize, 2, 5, 26, 40, 103, 411]
            .into_iter()
            .flat_map(|n| [(n, 0), (n, 1), (n, 2)])
        {
            let s: Vec<f32> = (0..n)
                .map(|i| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    let r = ((x >> 16) % 50) as f32 * 0.5;
                    // random, falling (a spectral tilt) and rising with noise
                    match shape {
                        0 => r,
                        1 => 1000.0 - i as f32 + r * 0.1,
                        _ => i as f32 + r * 0.1,
                    }
                })
                .collect();
            let mut sorted = s.clone();
            sorted.sort_by(f32::total_cmp);
            for q in 1..=n.min(8) {
                let (mut lo, mut hi) = (vec![0.0; q], vec![0.0; q]);
                extremes(&s, &mut lo, &mut hi);
                assert_eq!(lo, sorted[..q].to_vec(), "n {n} q {q}");
                let mut top: Vec<f32> = sorted[n - q..].to_vec();
                top.reverse();
                assert_eq!(hi, top, "n {n} q {q}");
            }
        }
        // NaN ranks as total_cmp ranks it (largest), like numpy's sort.
        let mut s: Vec<f32> = (0..200).map(|i| (i as f32 * 0.37).sin()).collect();
        s[77] = f32::NAN;
        let (mut lo, mut hi) = (vec![0.0; 3], vec![0.0; 3]);
        extremes(&s, &mut lo, &mut hi);
        assert!(hi[0].is_nan());
        let mut sorted = s.clone();
        sorted.sort_by(f32::total_cmp);
        assert_eq!(lo, sorted[..3].to_vec());
        assert_eq!(hi[1..], [sorted[198], sorted[197]]);
    }
}
