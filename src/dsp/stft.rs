//! Short-time Fourier transform, matching `librosa.stft` (0.11): periodic Hann
//! window of `win_length` centred in `n_fft`, optional centring with `n_fft / 2`
//! samples of padding (`constant` = zeros, `reflect`, `edge`), frames every
//! `hop_length` samples. Planned once per configuration; no allocation per frame.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};

use super::simd::{madd, madd64, multiversion};

/// How the signal is padded when `center` is true (librosa's `pad_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
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
        }
    }

    pub fn n_bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    pub fn n_frames(&self, len: usize) -> usize {
        n_frames(len, self.n_fft, self.hop, self.center)
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
