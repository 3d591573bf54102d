//! Small numpy / librosa equivalents shared by the librosa-parity feature modules
//! ([`super::tuning`], [`super::chroma`], [`super::contrast`]): `np.remainder` for
//! floats, `librosa.fft_frequencies` of one bin, and a vectorised min / max pass.

/// `np.remainder` for floats: result has the sign of the divisor.
#[inline]
pub(super) fn py_mod_f64(a: f64, b: f64) -> f64 {
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

#[inline]
pub(super) fn py_mod_f32(a: f32, b: f32) -> f32 {
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
#[inline]
pub(super) fn fft_frequency(k: usize, sr: f64, n_fft: usize) -> f64 {
    let val = 1.0 / (n_fft as f64 * (1.0 / sr));
    k as f64 * val
}

/// Minimum and maximum of `s` (non-empty) in one 8-lane pass; `None` if `s` holds a
/// NaN.
#[inline(always)]
pub(super) fn min_max(s: &[f32]) -> Option<(f32, f32)> {
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
