//! Spectral contrast, matching librosa 0.11: [`SpectralContrast`] /
//! [`spectral_contrast`] (`librosa.feature.spectral_contrast`) on a time-major
//! magnitude spectrogram (`frames × n_bins`, row-major); output `frames × (n_bands +
//! 1)`, i.e. librosa's orientation transposed. The band peaks and valleys are sums of
//! the `q` largest / smallest values, found without sorting (see `extreme_sums`),
//! with AVX2 kernels chosen at run time.

use super::numeric::{fft_frequency, min_max};
use super::simd::multiversion;

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
        // SAFETY: `avx2()` detected AVX2 at run time, the only target feature
        // `candidates_avx2` enables.
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
fn candidates_avx2(
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
        // SAFETY: `c` is a `chunks_exact(8)` chunk: the load reads its 8 values.
        let v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
        let ml = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(v, tl)) as usize;
        let mh = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(v, th)) as usize;
        // SAFETY: every row of `COMPRESS` holds 8 `i32` (32 bytes, one register);
        // `ml`, `mh` < 256 are 8-bit movemasks (the indexing is checked anyway).
        let il = unsafe { _mm256_loadu_si256(COMPRESS[ml].as_ptr().cast()) };
        // SAFETY: as above.
        let ih = unsafe { _mm256_loadu_si256(COMPRESS[mh].as_ptr().cast()) };
        // SAFETY: `nl` ≤ MAX_CANDIDATES (checked at the top of the loop) and `lo_buf`
        // holds MAX_CANDIDATES + 8 floats: the 8 written at `nl` are in bounds.
        unsafe { _mm256_storeu_ps(lo_buf.as_mut_ptr().add(nl), _mm256_permutevar8x32_ps(v, il)) };
        let neg = _mm256_xor_ps(v, sign);
        // SAFETY: likewise `nh` ≤ MAX_CANDIDATES and `hi_buf` holds MAX_CANDIDATES + 8.
        unsafe {
            _mm256_storeu_ps(
                hi_buf.as_mut_ptr().add(nh),
                _mm256_permutevar8x32_ps(neg, ih),
            )
        };
        nl += ml.count_ones() as usize;
        nh += mh.count_ones() as usize;
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

/// The 8 smallest of `a` and of `b` (each ascending, `+inf` padded; no NaN): two
/// independent [`smallest8`] merges run side by side, which hides each one's
/// latency behind the other.
#[inline(always)]
fn smallest8_pair(a: &[f32], b: &[f32]) -> ([f32; MAX_Q], [f32; MAX_Q]) {
    #[cfg(target_arch = "x86_64")]
    if super::simd::avx2() {
        // SAFETY: `avx2()` detected AVX2 at run time, the only target feature
        // `smallest8_pair_avx2` enables.
        return unsafe { smallest8_pair_avx2(a, b) };
    }
    (smallest8(a), smallest8(b))
}

/// [`smallest8_pair`] on two AVX2 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn smallest8_pair_avx2(a: &[f32], b: &[f32]) -> ([f32; MAX_Q], [f32; MAX_Q]) {
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
    // SAFETY: `oa` and `ob` each hold MAX_Q = 8 floats, one register's worth.
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
fn smallest8_avx2(v: &[f32]) -> [f32; MAX_Q] {
    use std::arch::x86_64::*;
    let shift = _mm256_setr_epi32(0, 0, 1, 2, 3, 4, 5, 6);
    let neg = _mm256_set1_ps(f32::NEG_INFINITY);
    let mut best = _mm256_set1_ps(f32::INFINITY);
    for &x in v {
        let shifted = _mm256_blend_ps::<1>(_mm256_permutevar8x32_ps(best, shift), neg);
        best = _mm256_min_ps(best, _mm256_max_ps(shifted, _mm256_set1_ps(x)));
    }
    let mut out = [0.0f32; MAX_Q];
    // SAFETY: `out` holds MAX_Q = 8 floats, one register's worth.
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
        // SAFETY: `avx2()` detected AVX2 at run time, the only target feature
        // `smallest8_avx2` enables.
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
        // SAFETY: `avx2()` detected AVX2 at run time, the only target feature
        // `lane_extremes_avx2` enables.
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
fn lane_extremes_avx2(s: &[f32]) -> ([f32; LANES], [f32; LANES], bool) {
    use std::arch::x86_64::*;
    let mut lo = [_mm256_set1_ps(f32::INFINITY); 2];
    let mut hi = [_mm256_set1_ps(f32::NEG_INFINITY); 2];
    let mut nan = _mm256_setzero_ps();
    let mut chunks = s.chunks_exact(LANES);
    for c in &mut chunks {
        for h in 0..2 {
            // SAFETY: `c` is a `chunks_exact(LANES)` chunk of 16 values; the load
            // reads `c[8h .. 8h + 8]` with `h` ≤ 1.
            let v = unsafe { _mm256_loadu_ps(c.as_ptr().add(8 * h)) };
            lo[h] = _mm256_min_ps(v, lo[h]);
            hi[h] = _mm256_max_ps(v, hi[h]);
            nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
        }
    }
    let (mut mins, mut maxs) = ([0.0f32; LANES], [0.0f32; LANES]);
    // SAFETY: `mins` and `maxs` hold LANES = 16 floats each: the stores write
    // `[0..8]` and `[8..16]`.
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
