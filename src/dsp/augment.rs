//! Augmentation DSP: noise at a target SNR, time stretch, pitch shift, shift, gain.
//!
//! Everything here is pure and deterministic: random draws come only from the
//! generator passed in, and [`seed_for`] / [`rng_for`] derive that generator from
//! `(pipeline seed, clip id, variant)` alone, so an augmented clip is reproducible
//! whatever the worker, thread or order it runs in.
//!
//! - **Noise** ([`add_noise`], [`add_noise_from`]): the noise is scaled so that
//!   `10·log10(P_signal / P_noise) = snr_db` holds for the noise actually added
//!   (powers are mean squares, computed in f64 on the drawn samples, not on an
//!   expected value). White noise is Gaussian (Box–Muller on 53-bit uniforms); pink
//!   noise is that white noise through Paul Kellett's "refined" pinking filter
//!   (seven first-order sections; within ±0.05 dB of −3 dB/octave from
//!   2·10⁻⁴·fs up to Nyquist, i.e. independent of the sample rate), after a
//!   4096-sample warm-up that lets its slowest section settle.
//! - **Time stretch** ([`time_stretch`]): a port of `librosa.effects.time_stretch`
//!   (0.11): STFT with n_fft = 2048, hop = 512, periodic Hann, centred with zero
//!   padding; `librosa.phase_vocoder`; inverse STFT with the same window, divided by
//!   the window's squared sum, cut to `round(len / rate)` samples. Computed in f64
//!   (librosa runs complex64 for f32 input); measured against librosa in
//!   `tests/augment_dsp.rs`.
//! - **Pitch shift** ([`pitch_shift`]): `librosa.effects.pitch_shift`: stretch by
//!   `rate = 2^(−n_steps/12)`, resample by the ratio `rate` with
//!   [`resample_mono`] (high quality: the FFT sinc resampler whose filter follows
//!   librosa's soxr_hq, no delay), then zero-pad or cut to the input length. `resample_mono` takes
//!   integer rates, so `rate` is replaced by its best rational approximation `p/q`
//!   with `q ≤ 16384` ([`rational_approx`], as Python's
//!   `Fraction.limit_denominator`): the ratio error is below `1/(q·16384)`, which
//!   is at most 0.051 cent (2.9·10⁻⁵ relative) over −24…+24 semitones in
//!   0.001-semitone steps and below 10⁻⁴ cent for whole semitones (checked in the
//!   tests). The resampler's FFTs then span about 2q input and 2p output frames.

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use realfft::RealFftPlanner;
use realfft::num_complex::Complex;

use crate::dsp::resample::{Quality, resample_mono};

/// FFT size of [`time_stretch`] and [`pitch_shift`] (librosa's default).
pub const N_FFT: usize = 2048;
/// Hop length of [`time_stretch`] and [`pitch_shift`] (librosa's default, n_fft/4).
pub const HOP: usize = 512;
/// Largest denominator of the rational resampling ratio in [`pitch_shift`].
pub const MAX_RATIO_DENOMINATOR: u32 = 16384;
/// Samples the pink filter runs before its output is used.
const PINK_WARMUP: usize = 4096;

// ---------------------------------------------------------------------------
// Seeding
// ---------------------------------------------------------------------------

/// FNV-1a, 64 bits (offset basis 0xcbf29ce484222325, prime 0x100000001b3): a
/// fixed, documented hash whose value never changes with the Rust version.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_update(0xcbf2_9ce4_8422_2325, bytes)
}

fn fnv1a64_update(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64's finaliser: spreads FNV's weakly mixed high bits over the word.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of one augmentation draw: a stable function of the pipeline seed, the
/// clip id and the variant name only.
///
/// FNV-1a 64 over `pipeline_seed` (8 bytes, little-endian), the UTF-8 bytes of
/// `clip_id`, a 0xFF separator (a byte no UTF-8 string contains, so
/// `("ab", "c")` and `("a", "bc")` differ) and the bytes of `variant`, then the
/// SplitMix64 finaliser.
pub fn seed_for(pipeline_seed: u64, clip_id: &str, variant: &str) -> u64 {
    let mut h = fnv1a64(&pipeline_seed.to_le_bytes());
    h = fnv1a64_update(h, clip_id.as_bytes());
    h = fnv1a64_update(h, &[0xFF]);
    h = fnv1a64_update(h, variant.as_bytes());
    mix64(h)
}

/// A ChaCha8 generator seeded with [`seed_for`]`(pipeline_seed, clip_id, variant)`
/// (ChaCha8's output stream for a seed is fixed by rand_chacha, unlike `StdRng`'s).
pub fn rng_for(pipeline_seed: u64, clip_id: &str, variant: &str) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed_for(pipeline_seed, clip_id, variant))
}

// ---------------------------------------------------------------------------
// Noise
// ---------------------------------------------------------------------------

/// Spectral colour of generated noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseColor {
    /// Gaussian white noise (flat spectrum).
    White,
    /// Pink noise (−3 dB/octave, −10 dB/decade): white noise through Paul
    /// Kellett's refined pinking filter.
    Pink,
}

/// Standard normal draws by Box–Muller, both outputs of each pair used.
struct Gaussian {
    spare: Option<f64>,
}

impl Gaussian {
    fn new() -> Self {
        Gaussian { spare: None }
    }

    fn draw(&mut self, rng: &mut impl Rng) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        // u1 in (0, 1] so that ln(u1) is finite; u2 in [0, 1).
        let u1 = 1.0 - rng.random::<f64>();
        let u2 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare = Some(r * s);
        r * c
    }
}

/// Paul Kellett's refined pinking filter (music-dsp archive, "pink noise filter",
/// the ±0.05 dB version).
#[derive(Default)]
struct Kellett {
    b: [f64; 7],
}

impl Kellett {
    fn next(&mut self, white: f64) -> f64 {
        let b = &mut self.b;
        b[0] = 0.99886 * b[0] + white * 0.055_517_9;
        b[1] = 0.99332 * b[1] + white * 0.075_075_9;
        b[2] = 0.96900 * b[2] + white * 0.153_852_0;
        b[3] = 0.86650 * b[3] + white * 0.310_485_6;
        b[4] = 0.55000 * b[4] + white * 0.532_952_2;
        b[5] = -0.7616 * b[5] - white * 0.016_898_0;
        let pink = b[0] + b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + white * 0.5362;
        b[6] = white * 0.115_926;
        pink
    }
}

fn noise_f64(len: usize, color: NoiseColor, rng: &mut impl Rng) -> Vec<f64> {
    let mut g = Gaussian::new();
    match color {
        NoiseColor::White => (0..len).map(|_| g.draw(rng)).collect(),
        NoiseColor::Pink => {
            let mut f = Kellett::default();
            for _ in 0..PINK_WARMUP {
                f.next(g.draw(rng));
            }
            (0..len).map(|_| f.next(g.draw(rng))).collect()
        }
    }
}

/// `len` samples of unscaled noise of the given colour (white: unit variance; pink:
/// Kellett's filter gain), the same draws [`add_noise`] makes.
pub fn generate_noise(len: usize, color: NoiseColor, rng: &mut impl Rng) -> Vec<f32> {
    noise_f64(len, color, rng)
        .into_iter()
        .map(|v| v as f32)
        .collect()
}

fn mean_square(x: impl Iterator<Item = f64>) -> f64 {
    let mut s = 0.0f64;
    let mut n = 0usize;
    for v in x {
        s += v * v;
        n += 1;
    }
    if n == 0 { 0.0 } else { s / n as f64 }
}

/// Gain that puts noise of power `p_noise` at `snr_db` below power `p_signal`;
/// `None` when nothing should be added.
fn snr_gain(p_signal: f64, p_noise: f64, snr_db: f32) -> Option<f64> {
    let usable = p_signal > 0.0 && p_noise > 0.0 && snr_db.is_finite();
    if !usable {
        return None;
    }
    let g = (p_signal / (p_noise * 10f64.powf(snr_db as f64 / 10.0))).sqrt();
    g.is_finite().then_some(g)
}

/// Add generated noise to `y` at exactly `snr_db` (power ratio of `y` to the noise
/// drawn for it). A silent or empty `y`, or a non-finite `snr_db`, leaves `y`
/// unchanged (and draws nothing when `y` is silent).
pub fn add_noise(y: &mut [f32], snr_db: f32, color: NoiseColor, rng: &mut impl Rng) {
    let p_signal = mean_square(y.iter().map(|&v| v as f64));
    if p_signal <= 0.0 || !snr_db.is_finite() {
        return;
    }
    let noise = noise_f64(y.len(), color, rng);
    let p_noise = mean_square(noise.iter().copied());
    if let Some(g) = snr_gain(p_signal, p_noise, snr_db) {
        for (v, n) in y.iter_mut().zip(&noise) {
            *v = (*v as f64 + g * n) as f32;
        }
    }
}

/// Mix a noise recording into `y` at exactly `snr_db`: sample `i` of `y` gets
/// `noise[(offset + i) % noise.len()]` (the recording is looped when shorter), the
/// power being that of the samples actually used. A silent `y`, an empty or silent
/// noise segment, or a non-finite `snr_db` leaves `y` unchanged.
pub fn add_noise_from(y: &mut [f32], noise: &[f32], snr_db: f32, offset: usize) {
    if noise.is_empty() || y.is_empty() {
        return;
    }
    let m = noise.len();
    let seg = |i: usize| noise[(offset % m + i % m) % m] as f64;
    let p_signal = mean_square(y.iter().map(|&v| v as f64));
    let p_noise = mean_square((0..y.len()).map(seg));
    if let Some(g) = snr_gain(p_signal, p_noise, snr_db) {
        for (i, v) in y.iter_mut().enumerate() {
            *v = (*v as f64 + g * seg(i)) as f32;
        }
    }
}

// ---------------------------------------------------------------------------
// Shift and gain
// ---------------------------------------------------------------------------

/// Shift `y` by `samples` (positive: later, like `np.roll`), keeping its length;
/// the vacated samples are zero unless `circular`, in which case they wrap round.
pub fn shift(y: &mut [f32], samples: isize, circular: bool) {
    let n = y.len();
    if n == 0 || samples == 0 {
        return;
    }
    if circular {
        let k = samples.rem_euclid(n as isize) as usize;
        y.rotate_right(k);
    } else if samples > 0 {
        let k = samples.unsigned_abs().min(n);
        y.copy_within(0..n - k, k);
        y[..k].fill(0.0);
    } else {
        let k = samples.unsigned_abs().min(n);
        y.copy_within(k..n, 0);
        y[n - k..].fill(0.0);
    }
}

/// Multiply `y` by `10^(db/20)` (factor computed in f64).
pub fn gain(y: &mut [f32], db: f32) {
    let g = 10f64.powf(db as f64 / 20.0);
    for v in y {
        *v = (*v as f64 * g) as f32;
    }
}

// ---------------------------------------------------------------------------
// Time stretch (librosa's phase vocoder)
// ---------------------------------------------------------------------------

/// Python's `round` (ties to even) of a non-negative value, as an index.
fn py_round(x: f64) -> usize {
    if x.is_finite() && x > 0.0 {
        x.round_ties_even() as usize
    } else {
        0
    }
}

/// The f64 a decimal literal for this f32 denotes (0.8f32 → 0.8), so that a rate
/// from a config file acts exactly as the same number does in Python.
fn widen(x: f32) -> f64 {
    x.to_string().parse::<f64>().unwrap_or(x as f64)
}

/// Stretch `y` in time by `rate` (> 1 faster/shorter, < 1 slower/longer) keeping its
/// pitch: `librosa.effects.time_stretch(y, rate=rate)`; the output has
/// `round(len / rate)` samples (Python's round: ties to even). A non-positive or
/// non-finite `rate` returns `y` unchanged.
pub fn time_stretch(y: &[f32], rate: f32) -> Vec<f32> {
    let r = widen(rate);
    if !(r.is_finite() && r > 0.0) {
        return y.to_vec();
    }
    stretch(y, r)
}

/// One STFT column with its magnitudes and angles (`np.abs`, `np.angle`).
struct Column {
    mag: Vec<f64>,
    angle: Vec<f64>,
}

/// Centred, zero-padded, Hann-windowed STFT columns, computed on demand.
struct Analysis<'a> {
    y: &'a [f32],
    n_frames: usize,
    window: &'a [f64],
    fft: std::sync::Arc<dyn realfft::RealToComplex<f64>>,
    frame: Vec<f64>,
    spec: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

impl Analysis<'_> {
    /// Column `j`; zero beyond the last frame (librosa pads two zero columns).
    fn column(&mut self, j: usize, out: &mut Column) {
        if j >= self.n_frames {
            out.mag.fill(0.0);
            out.angle.fill(0.0);
            return;
        }
        let start = (j * HOP) as isize - (N_FFT / 2) as isize;
        for (k, (f, w)) in self.frame.iter_mut().zip(self.window).enumerate() {
            let i = start + k as isize;
            let s = if i >= 0 && (i as usize) < self.y.len() {
                self.y[i as usize] as f64
            } else {
                0.0
            };
            *f = s * w;
        }
        if self
            .fft
            .process_with_scratch(&mut self.frame, &mut self.spec, &mut self.scratch)
            .is_err()
        {
            self.spec.fill(Complex::new(0.0, 0.0));
        }
        for ((m, a), c) in out.mag.iter_mut().zip(&mut out.angle).zip(&self.spec) {
            *m = c.re.hypot(c.im);
            *a = c.im.atan2(c.re);
        }
    }
}

fn hann_periodic_f64(n: usize) -> Vec<f64> {
    (0..n)
        .map(|k| 0.5 - 0.5 * (std::f64::consts::TAU * k as f64 / n as f64).cos())
        .collect()
}

/// [`time_stretch`] with an f64 rate (> 0, finite).
fn stretch(y: &[f32], rate: f64) -> Vec<f32> {
    let length = py_round(y.len() as f64 / rate);
    if y.is_empty() || length == 0 {
        return vec![0.0; length];
    }
    let bins = N_FFT / 2 + 1;
    let n_frames = 1 + y.len() / HOP; // centred: (len + 2·(n_fft/2) − n_fft) / hop + 1
    // np.arange(0, n_frames, rate): ceil(n_frames / rate) steps at i·rate.
    let n_steps = (n_frames as f64 / rate).ceil() as usize;
    // istft keeps only the frames that reach the requested length.
    let padded_length = length + 2 * (N_FFT / 2);
    let n_out = n_steps.min(padded_length.div_ceil(HOP));

    let window = hann_periodic_f64(N_FFT);
    let mut planner = RealFftPlanner::<f64>::new();
    let fwd = planner.plan_fft_forward(N_FFT);
    let inv = planner.plan_fft_inverse(N_FFT);
    let mut ana = Analysis {
        y,
        n_frames,
        window: &window,
        frame: fwd.make_input_vec(),
        spec: fwd.make_output_vec(),
        scratch: fwd.make_scratch_vec(),
        fft: fwd,
    };

    // Expected phase advance per hop: hop · rfftfreq(n_fft, d = 1/(2π)).
    let val = 1.0 / (N_FFT as f64 * (1.0 / std::f64::consts::TAU));
    let phi_advance: Vec<f64> = (0..bins).map(|k| HOP as f64 * (k as f64 * val)).collect();

    let new_col = || Column {
        mag: vec![0.0; bins],
        angle: vec![0.0; bins],
    };
    let (mut c0, mut c1) = (new_col(), new_col());
    ana.column(0, &mut c0);
    ana.column(1, &mut c1);
    let mut loaded = 0usize; // c0 = column `loaded`, c1 = column `loaded + 1`
    let mut phase_acc = c0.angle.clone();

    let buf_len = N_FFT + HOP * (n_out.max(1) - 1);
    let mut ola = vec![0.0f64; buf_len];
    let mut wss = vec![0.0f64; buf_len];
    let mut spec = inv.make_input_vec();
    let mut frame = inv.make_output_vec();
    let mut iscratch = inv.make_scratch_vec();
    let two_pi = std::f64::consts::TAU;

    for t in 0..n_out {
        let step = t as f64 * rate;
        let j = step as usize; // int(step), step ≥ 0
        if j != loaded {
            if j == loaded + 1 {
                std::mem::swap(&mut c0, &mut c1);
            } else {
                ana.column(j, &mut c0);
            }
            ana.column(j + 1, &mut c1);
            loaded = j;
        }
        let alpha = step % 1.0;
        for k in 0..bins {
            let mag = (1.0 - alpha) * c0.mag[k] + alpha * c1.mag[k];
            let (s, c) = phase_acc[k].sin_cos();
            spec[k] = Complex::new(mag * c, mag * s);
            let mut dphase = c1.angle[k] - c0.angle[k] - phi_advance[k];
            dphase -= two_pi * (dphase / two_pi).round_ties_even();
            phase_acc[k] += phi_advance[k] + dphase;
        }
        // irfft ignores the imaginary parts of the DC and Nyquist bins.
        spec[0].im = 0.0;
        spec[bins - 1].im = 0.0;
        if inv
            .process_with_scratch(&mut spec, &mut frame, &mut iscratch)
            .is_err()
        {
            frame.fill(0.0);
        }
        let at = t * HOP;
        for (k, (f, w)) in frame.iter().zip(&window).enumerate() {
            ola[at + k] += f / N_FFT as f64 * w;
            wss[at + k] += w * w;
        }
    }

    let tiny = f32::MIN_POSITIVE as f64; // librosa: util.tiny of the float32 window sum
    (0..length)
        .map(|i| {
            let p = i + N_FFT / 2;
            match (ola.get(p), wss.get(p)) {
                (Some(&v), Some(&w)) if w > tiny => (v / w) as f32,
                (Some(&v), Some(_)) => v as f32,
                _ => 0.0,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Pitch shift
// ---------------------------------------------------------------------------

/// Best rational approximation `p/q` of `x > 0` with `q ≤ max_den` (Python's
/// `Fraction.limit_denominator`: the last convergent or semiconvergent of the
/// continued fraction, whichever is closer). `None` for a non-finite or
/// non-positive `x`, or when `p` would not fit in a u32.
pub fn rational_approx(x: f64, max_den: u32) -> Option<(u32, u32)> {
    if !(x.is_finite() && x > 0.0) || max_den == 0 {
        return None;
    }
    let max_den = max_den as u64;
    let (mut p0, mut q0, mut p1, mut q1) = (0u64, 1u64, 1u64, 0u64);
    let mut r = x;
    for _ in 0..64 {
        let a = r.floor();
        if a > 4.0e9 {
            break;
        }
        let a = a as u64;
        let q2 = q0 + a * q1;
        if q2 > max_den {
            break;
        }
        (p0, q0, p1, q1) = (p1, q1, p0 + a * p1, q2);
        let frac = r - a as f64;
        if frac <= 1e-12 {
            break;
        }
        r = 1.0 / frac;
    }
    let (p, q) = match (max_den - q0).checked_div(q1) {
        // No convergent at all (a huge first term): the nearest integer.
        None => (x.round() as u64, 1),
        Some(k) => {
            let (bp, bq) = (p0 + k * p1, q0 + k * q1);
            let e1 = (bp as f64 / bq as f64 - x).abs();
            let e2 = (p1 as f64 / q1 as f64 - x).abs();
            if e2 <= e1 { (p1, q1) } else { (bp, bq) }
        }
    };
    if p == 0 || p > u32::MAX as u64 || q > u32::MAX as u64 {
        return None;
    }
    Some((p as u32, q as u32))
}

/// Shift the pitch of `y` (sampled at `sr` Hz) by `n_steps` semitones keeping its
/// duration: `librosa.effects.pitch_shift(y, sr=sr, n_steps=n_steps)` with
/// sermo's high-quality resampler (designed after soxr_hq) in place of soxr_hq. The output has `y.len()`
/// samples. Errors: `sr == 0`, a non-finite `n_steps`, or a resampler failure.
pub fn pitch_shift(y: &[f32], sr: u32, n_steps: f32) -> Result<Vec<f32>, String> {
    if sr == 0 {
        return Err("pitch_shift: sample rate must be positive".into());
    }
    let steps = widen(n_steps);
    if !steps.is_finite() {
        return Err(format!(
            "pitch_shift: n_steps must be finite, got {n_steps}"
        ));
    }
    if y.is_empty() {
        return Ok(Vec::new());
    }
    let rate = 2f64.powf(-steps / 12.0);
    if !(rate.is_finite() && rate > 0.0) {
        return Err(format!("pitch_shift: n_steps {n_steps} is out of range"));
    }
    let stretched = stretch(y, rate);
    // Resample from sr/rate to sr, i.e. by the ratio `rate` ≈ p/q.
    let (p, q) = rational_approx(rate, MAX_RATIO_DENOMINATOR)
        .ok_or_else(|| format!("pitch_shift: no rational approximation of rate {rate}"))?;
    let mut out = if p == q {
        stretched
    } else {
        resample_mono(&stretched, q, p, Quality::High).map_err(|e| format!("pitch_shift: {e}"))?
    };
    // librosa.util.fix_length: zero-pad or cut at the end.
    out.resize(y.len(), 0.0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rational_approx_matches_limit_denominator() {
        // Values from Python's Fraction(x).limit_denominator(n).
        assert_eq!(rational_approx(1.0, 16384), Some((1, 1)));
        assert_eq!(rational_approx(0.5, 16384), Some((1, 2)));
        assert_eq!(
            rational_approx(std::f64::consts::PI, 1000),
            Some((355, 113))
        );
        assert_eq!(rational_approx(std::f64::consts::PI, 100), Some((311, 99)));
        assert_eq!(rational_approx(0.0, 10), None);
    }

    #[test]
    fn widen_keeps_decimal_meaning() {
        assert_eq!(widen(0.8), 0.8f64);
        assert_eq!(widen(1.25), 1.25f64);
    }
}
