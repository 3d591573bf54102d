//! The speech-detection test recording (tests/vad.rs, benches/vad.rs): EmoDB
//! clips resampled to 16 kHz, placed on the 16-ms frame grid between silences of
//! 0.4–3 s, with the frames of known speech; white noise added at a chosen SNR.
//!
//! Truth: each clip's span from its first to its last 16-ms frame within 40 dB
//! of the clip's loudest frame (the corpus copy pads some clips with zeros and
//! every clip starts with a little room silence); pauses inside a clip count as
//! speech, as a listener would mark an utterance.

use std::path::Path;

use rand::{Rng, SeedableRng};
use sermo::audio::decoder::ClipReader;
use sermo::dsp::resample::{Quality, resample_mono};
use sermo::dsp::vad::{FRAME, VAD_RATE};

/// A recording and its truth, one flag per 16-ms frame.
pub struct Recording {
    pub samples: Vec<f32>,
    pub truth: Vec<bool>,
    /// Each clip's file name and its speech span in frames `[start, end)`.
    pub clips: Vec<(String, usize, usize)>,
}

/// Mono samples of one audio file at 16 kHz.
pub fn read_16k(path: &Path) -> Vec<f32> {
    let mut r = ClipReader::open(path).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    let rate = r.info().sample_rate;
    let mut x = Vec::new();
    while let Some(c) = r.next_chunk(1 << 16).expect("decode") {
        x.extend_from_slice(&c.planes[0]);
        if c.last {
            break;
        }
    }
    if rate == VAD_RATE {
        x
    } else {
        resample_mono(&x, rate, VAD_RATE, Quality::High).expect("resample")
    }
}

fn frame_db(x: &[f32]) -> f32 {
    let e = x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32;
    10.0 * e.max(1e-12).log10()
}

/// Build the recording from every `step`-th EmoDB clip (sorted by name).
pub fn build(emodb_wav: &Path, step: usize) -> Recording {
    let mut files: Vec<_> = std::fs::read_dir(emodb_wav)
        .expect("emodb/wav")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    files.sort();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let gap = |rng: &mut rand_chacha::ChaCha8Rng| {
        // 0.4–3.0 s, on the frame grid.
        let s: f64 = rng.random_range(0.4..3.0);
        ((s * VAD_RATE as f64) as usize / FRAME) * FRAME
    };
    let mut samples = vec![0f32; (VAD_RATE as usize * 3 / 2 / FRAME) * FRAME];
    let mut clips = Vec::new();
    for f in files.iter().step_by(step.max(1)) {
        let mut x = read_16k(f);
        x.resize(x.len().div_ceil(FRAME) * FRAME, 0.0);
        let db: Vec<f32> = x.chunks(FRAME).map(frame_db).collect();
        let peak = db.iter().cloned().fold(f32::MIN, f32::max);
        let loud: Vec<usize> = (0..db.len()).filter(|&i| db[i] >= peak - 40.0).collect();
        let at = samples.len() / FRAME;
        if let (Some(a), Some(b)) = (loud.first(), loud.last()) {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            clips.push((name, at + a, at + b + 1));
        }
        samples.extend_from_slice(&x);
        let g = gap(&mut rng);
        samples.extend(std::iter::repeat_n(0.0, g));
    }
    samples.extend(std::iter::repeat_n(
        0.0,
        (VAD_RATE as usize * 3 / 2 / FRAME) * FRAME,
    ));
    let mut truth = vec![false; samples.len() / FRAME];
    for (_, a, b) in &clips {
        for t in &mut truth[*a..*b] {
            *t = true;
        }
    }
    Recording {
        samples,
        truth,
        clips,
    }
}

impl Recording {
    /// The recording with white Gaussian noise at `snr_db` below the mean power of
    /// the speech frames (seeded: the same noise every run).
    pub fn with_noise(&self, snr_db: f64) -> Vec<f32> {
        let (mut p, mut n) = (0f64, 0usize);
        for (i, fr) in self.samples.chunks(FRAME).enumerate() {
            if self.truth.get(i).copied().unwrap_or(false) {
                p += fr.iter().map(|v| (*v as f64).powi(2)).sum::<f64>();
                n += fr.len();
            }
        }
        let sigma = (p / n.max(1) as f64 / 10f64.powf(snr_db / 10.0)).sqrt();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(snr_db.to_bits());
        self.samples
            .iter()
            .map(|&v| {
                // Box–Muller.
                let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
                let u2: f64 = rng.random_range(0.0..1.0);
                let g = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                v + (sigma * g) as f32
            })
            .collect()
    }

    /// The recording with synthetic music under it at `snr_db` below the mean
    /// power of the speech frames: non-stationary, non-speech sound (seeded).
    /// Notes of 0.15–0.6 s drawn from a pentatonic scale (110–880 Hz, four
    /// harmonics, 10-ms attack, exponential decay), two voices, and a percussive
    /// hit (a decaying noise burst) every 0.5 s. The truth does not change: the
    /// music is not speech, so every frame a detector marks for it is a false
    /// alarm.
    pub fn with_music(&self, snr_db: f64) -> Vec<f32> {
        let rate = VAD_RATE as f64;
        let n = self.samples.len();
        let mut music = vec![0f64; n];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x006d_7573_6963 ^ snr_db.to_bits());
        const SCALE: [f64; 5] = [0.0, 2.0, 4.0, 7.0, 9.0];
        for voice in 0..2 {
            let mut t = 0usize;
            while t < n {
                let len = (rng.random_range(0.15..0.6) * rate) as usize;
                let octave = rng.random_range(0..3) + voice;
                let step = SCALE[rng.random_range(0..SCALE.len())];
                let f0 = 110.0 * 2f64.powf(octave as f64 + step / 12.0);
                let amp = rng.random_range(0.5..1.0);
                for k in 0..len.min(n - t) {
                    let tt = k as f64 / rate;
                    let env = (tt / 0.01).min(1.0) * (-3.0 * tt).exp();
                    let mut v = 0.0;
                    for h in 1..=4 {
                        v += (2.0 * std::f64::consts::PI * f0 * h as f64 * tt).sin() / h as f64;
                    }
                    music[t + k] += amp * env * v;
                }
                t += len;
            }
        }
        let hit = (0.5 * rate) as usize;
        for start in (0..n).step_by(hit) {
            for k in 0..((0.08 * rate) as usize).min(n - start) {
                let env = (-(k as f64) / (0.015 * rate)).exp();
                music[start + k] += 1.5 * env * rng.random_range(-1.0..1.0);
            }
        }
        let (mut p, mut m) = (0f64, 0usize);
        for (i, fr) in self.samples.chunks(FRAME).enumerate() {
            if self.truth.get(i).copied().unwrap_or(false) {
                p += fr.iter().map(|v| (*v as f64).powi(2)).sum::<f64>();
                m += fr.len();
            }
        }
        let music_power = music.iter().map(|v| v * v).sum::<f64>() / n.max(1) as f64;
        let gain =
            (p / m.max(1) as f64 / 10f64.powf(snr_db / 10.0) / music_power.max(1e-30)).sqrt();
        self.samples
            .iter()
            .zip(&music)
            .map(|(&v, &u)| v + (gain * u) as f32)
            .collect()
    }
}

/// Speech per frame from regions `[start, end)` in frames.
pub fn frames_of(regions: &[(u64, u64)], n: usize) -> Vec<bool> {
    let mut v = vec![false; n];
    for &(a, b) in regions {
        for f in v.iter_mut().take((b as usize).min(n)).skip(a as usize) {
            *f = true;
        }
    }
    v
}

/// Precision, recall and F1 of speech frames.
pub fn f1(pred: &[bool], truth: &[bool]) -> (f64, f64, f64) {
    let (mut tp, mut fp, mut fn_) = (0f64, 0f64, 0f64);
    for (p, t) in pred.iter().zip(truth) {
        match (p, t) {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fn_ += 1.0,
            _ => {}
        }
    }
    let precision = tp / (tp + fp).max(1.0);
    let recall = tp / (tp + fn_).max(1.0);
    let f = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    (precision, recall, f)
}

/// Speech regions (frames) from sermo's detector over `x` (16 kHz), fed in
/// pieces of `piece` samples.
pub fn detect(x: &[f32], method: sermo::dsp::vad::Method, piece: usize) -> Vec<(u64, u64)> {
    use sermo::dsp::vad::{GateEvent, GateSettings, Vad};
    let mut v = Vad::new(VAD_RATE, method, &GateSettings::default()).expect("vad");
    let mut ev = Vec::new();
    for c in x.chunks(piece.max(1)) {
        ev.extend(v.push(c).expect("vad push"));
    }
    ev.extend(v.finish().expect("vad finish"));
    let mut out = Vec::new();
    let mut open = None;
    for e in ev {
        match e {
            GateEvent::Start(f) => open = Some(f),
            GateEvent::End(f) => {
                if let Some(s) = open.take() {
                    out.push((s, f));
                }
            }
        }
    }
    out
}

/// A mono 32-bit float WAV file's bytes (noise may exceed full scale).
pub fn wav_f32_bytes(rate: u32, samples: &[f32]) -> Vec<u8> {
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 4).to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&32u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&data);
    b
}

/// Write mono f32 samples as a 32-bit float WAV.
pub fn write_wav_f32(path: &Path, rate: u32, samples: &[f32]) {
    std::fs::write(path, wav_f32_bytes(rate, samples)).expect("write wav");
}
