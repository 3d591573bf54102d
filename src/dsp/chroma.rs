//! Chroma, matching librosa 0.11.
//!
//! * [`ChromaBank`]: `librosa.filters.chroma` (Gaussian bumps per pitch class, column
//!   L2 norm, octave weighting around `ctroct`, rotated to start at C).
//! * [`ChromaStft`] / [`chroma_stft`]: `librosa.feature.chroma_stft` on a power
//!   spectrogram (tuning given, or estimated from that same power spectrogram exactly as
//!   librosa does, see [`super::tuning`]), per-frame `util.normalize(norm=inf)`.
//! * [`normalize`]: `librosa.util.normalize` of one vector.
//!
//! All spectrograms are time-major (`frames × n_bins`, row-major), outputs are
//! time-major too (`frames × dims`), i.e. librosa's orientation transposed.
//!
//! Tuning estimation ([`super::tuning`]) and spectral contrast ([`super::contrast`])
//! used to live here; their public items are re-exported so that
//! `dsp::chroma::{estimate_tuning, SpectralContrast, ...}` keep working.

use std::sync::OnceLock;

use super::numeric::py_mod_f64;
use super::stft::{PadMode, Stft};
use super::tuning::{estimate_tuning_bin, n_fft_from_bins, tuning_edge, tuning_hist_bins};

pub use super::contrast::{ContrastBand, ContrastError, SpectralContrast, spectral_contrast};
pub use super::tuning::{
    TUNING_RESOLUTION, estimate_tuning, estimate_tuning_from_signal, pitch_tuning,
};

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
}
