//! Mel filter banks, matching `librosa.filters.mel` (0.11): Slaney (default) or HTK
//! mel scale, optional Slaney area normalisation. Stored sparsely (each band's
//! non-zero bins), so applying it costs only the bins a band covers.

/// Hz → mel (`librosa.hz_to_mel`).
pub fn hz_to_mel(f: f64, htk: bool) -> f64 {
    if htk {
        return 2595.0 * (1.0 + f / 700.0).log10();
    }
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = (6.4f64).ln() / 27.0;
    if f >= min_log_hz {
        min_log_mel + (f / min_log_hz).ln() / logstep
    } else {
        f / f_sp
    }
}

/// mel → Hz (`librosa.mel_to_hz`).
pub fn mel_to_hz(m: f64, htk: bool) -> f64 {
    if htk {
        return 700.0 * (10f64.powf(m / 2595.0) - 1.0);
    }
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = (6.4f64).ln() / 27.0;
    if m >= min_log_mel {
        min_log_hz * (logstep * (m - min_log_mel)).exp()
    } else {
        f_sp * m
    }
}

use super::simd::{dot_k, multiversion};

/// One band: weights for bins `start .. start + weights.len()`.
#[derive(Debug, Clone)]
pub struct Band {
    pub start: usize,
    pub weights: Vec<f32>,
}

/// A mel filter bank.
#[derive(Debug, Clone)]
pub struct MelBank {
    pub bands: Vec<Band>,
    pub n_bins: usize,
    /// The bands' weights zero-padded to whole 8-lane chunks where the spectrum is
    /// long enough (no scalar tail in [`MelBank::apply`]).
    padded: Vec<Band>,
}

impl MelBank {
    /// `norm_slaney`: divide each triangle by its width in Hz (librosa `norm="slaney"`).
    pub fn new(
        sr: u32,
        n_fft: usize,
        n_mels: usize,
        fmin: f64,
        fmax: Option<f64>,
        htk: bool,
        norm_slaney: bool,
    ) -> Self {
        let fmax = fmax.unwrap_or(sr as f64 / 2.0);
        let n_bins = n_fft / 2 + 1;
        let fftfreqs: Vec<f64> = (0..n_bins)
            .map(|k| k as f64 * sr as f64 / n_fft as f64)
            .collect();
        let (lo, hi) = (hz_to_mel(fmin, htk), hz_to_mel(fmax, htk));
        let mel_f: Vec<f64> = (0..n_mels + 2)
            .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64, htk))
            .collect();
        let mut bands = Vec::with_capacity(n_mels);
        for i in 0..n_mels {
            let (f0, f1, f2) = (mel_f[i], mel_f[i + 1], mel_f[i + 2]);
            let enorm = if norm_slaney { 2.0 / (f2 - f0) } else { 1.0 };
            let mut start = None;
            let mut weights = Vec::new();
            for (k, &f) in fftfreqs.iter().enumerate() {
                let lower = (f - f0) / (f1 - f0);
                let upper = (f2 - f) / (f2 - f1);
                let w = lower.min(upper).max(0.0) * enorm;
                let w = w as f32;
                if w > 0.0 {
                    if start.is_none() {
                        start = Some(k);
                    }
                    let s = start.unwrap_or(k);
                    weights.resize(k - s, 0.0);
                    weights.push(w);
                }
            }
            bands.push(Band {
                start: start.unwrap_or(0),
                weights,
            });
        }
        MelBank::from_bands(bands, n_bins)
    }

    /// A bank from its bands (weights for bins `start .. start + len`, all inside
    /// `n_bins`).
    pub fn from_bands(bands: Vec<Band>, n_bins: usize) -> Self {
        let padded = bands
            .iter()
            .map(|b| {
                let len = b
                    .weights
                    .len()
                    .next_multiple_of(8)
                    .min(n_bins.saturating_sub(b.start));
                let mut weights = b.weights.clone();
                weights.resize(len.max(b.weights.len()), 0.0);
                Band {
                    start: b.start,
                    weights,
                }
            })
            .collect();
        MelBank {
            bands,
            n_bins,
            padded,
        }
    }

    pub fn n_mels(&self) -> usize {
        self.bands.len()
    }

    /// Dense matrix `n_mels × n_bins` (for tests and inspection).
    pub fn dense(&self) -> Vec<Vec<f32>> {
        self.bands
            .iter()
            .map(|b| {
                let mut row = vec![0.0; self.n_bins];
                row[b.start..b.start + b.weights.len()].copy_from_slice(&b.weights);
                row
            })
            .collect()
    }

    /// Apply to one spectrum frame (`n_bins`), appending `n_mels` values.
    pub fn apply(&self, spectrum: &[f32], out: &mut Vec<f32>) {
        apply_bands(&self.padded, spectrum, out);
    }
}

multiversion! {
    fn apply_bands<const FMA: bool>(bands: &[Band], spectrum: &[f32], out: &mut Vec<f32>) {
        for b in bands {
            let s = &spectrum[b.start..b.start + b.weights.len()];
            out.push(dot_k::<FMA>(s, &b.weights));
        }
    }
}
