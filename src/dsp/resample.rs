//! Streaming sample-rate conversion with rubato.
//!
//! [`StreamResampler`] takes a clip in pieces of any size and returns output in
//! pieces, with three guarantees that a per-chunk call of a resampler does not give:
//!
//! - **chunk-exact**: input is re-blocked into fixed internal blocks, so the output
//!   depends only on the whole input sequence, never on how it was split (a streamed
//!   10-hour file gives the same samples as resampling it whole);
//! - **no delay**: the filter delay is trimmed from the start;
//! - **exact length**: after [`StreamResampler::finish`] the clip has
//!   `round(n · out / in)` frames.
//!
//! Both qualities use rubato's synchronous FFT resampler (exact rational ratio, a
//! delay of `fft_size_out / 2` output frames, kept integral by [`fft_geometry`] and
//! trimmed here): `high` with FFTs over about 1024 input frames, `fast` over about
//! 512 (a shorter filter), both with a BlackmanHarris² window. Measured figures: `docs/resampling.md`.

use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Indexing, Resampler, WindowFunction};
use serde::Deserialize;

/// Input frames per FFT block (high quality), approximately.
const BLOCK: usize = 1024;
/// Input frames per FFT sub-block in fast quality, approximately.
const FAST_SUB_BLOCK: usize = 512;

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// (chunk_size, sub_chunks) for rubato's `Fft` so that each FFT covers about
/// `sub_target` input frames *and* both FFT sizes are even. The filter is centred at
/// half the FFT size on each side: an odd size puts it half a sample off (measured:
/// 0.5 output frames at 48k->16k, 0.5 input frames at 44.1k->16k), a shift no
/// integer trim can remove (-11 dB against soxr on a sweep).
fn fft_geometry(from: u32, to: u32, sub_target: usize, sub_chunks: usize) -> (usize, usize) {
    let g = gcd(from, to).max(1);
    let unit_in = (from / g) as usize;
    let mut fft_chunks = sub_target.div_ceil(unit_in).max(1);
    if fft_chunks % 2 == 1 {
        fft_chunks += 1;
    }
    (fft_chunks * unit_in * sub_chunks, sub_chunks)
}

/// Resampling quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Quality {
    /// FFT resampler: exact ratio, steep anti-aliasing filter (default).
    #[default]
    High,
    /// FFT resampler with 256-frame sub-blocks (rubato's default, a shorter filter):
    /// faster, wider transition band below the new Nyquist frequency.
    Fast,
}

/// Why a resampler could not be built or run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResampleError {
    #[error("resample: cannot build a resampler from {from} Hz to {to} Hz: {message}")]
    Construction { from: u32, to: u32, message: String },
    #[error("resample: {0}")]
    Process(String),
}

/// A resampler for one clip, fed in pieces.
pub struct StreamResampler {
    inner: Box<dyn Resampler<f32>>,
    channels: usize,
    ratio: f64,
    /// Input waiting for a full block (one Vec per channel), from `start`.
    pending: Vec<Vec<f32>>,
    start: usize,
    /// Output scratch (one Vec per channel).
    scratch: Vec<Vec<f32>>,
    /// Output frames still to drop (the filter delay).
    skip: usize,
    frames_in: u64,
    frames_out: u64,
}

impl StreamResampler {
    /// A resampler from `from` Hz to `to` Hz for `channels` channels.
    pub fn new(
        from: u32,
        to: u32,
        channels: usize,
        quality: Quality,
    ) -> Result<Self, ResampleError> {
        let err = |m: String| ResampleError::Construction {
            from,
            to,
            message: m,
        };
        if from == 0 || to == 0 {
            return Err(err("sample rates must be positive".into()));
        }
        let channels = channels.max(1);
        let ratio = to as f64 / from as f64;
        let (chunk, sub) = match quality {
            Quality::High => fft_geometry(from, to, BLOCK, 1),
            Quality::Fast => fft_geometry(from, to, FAST_SUB_BLOCK, BLOCK / FAST_SUB_BLOCK),
        };
        let inner: Box<dyn Resampler<f32>> = Box::new(
            Fft::<f32>::new_custom(
                from as usize,
                to as usize,
                chunk,
                sub,
                channels,
                WindowFunction::BlackmanHarris2,
                FixedSync::Input,
            )
            .map_err(|e| err(e.to_string()))?,
        );
        let skip = inner.output_delay();
        let max_out = inner.output_frames_max();
        Ok(StreamResampler {
            inner,
            channels,
            ratio,
            pending: vec![Vec::with_capacity(BLOCK * 2); channels],
            start: 0,
            scratch: vec![vec![0.0; max_out]; channels],
            skip,
            frames_in: 0,
            frames_out: 0,
        })
    }

    /// Output frames a clip of `n` input frames will have.
    pub fn expected_len(&self, n: u64) -> u64 {
        (n as f64 * self.ratio).round() as u64
    }

    /// Feed the next piece (one slice per channel, equal lengths); returns the output
    /// that is complete so far (possibly empty).
    pub fn push(&mut self, planes: &[&[f32]]) -> Result<Vec<Vec<f32>>, ResampleError> {
        if planes.len() != self.channels {
            return Err(ResampleError::Process(format!(
                "expected {} channels, got {}",
                self.channels,
                planes.len()
            )));
        }
        let n = planes.first().map_or(0, |p| p.len());
        self.compact();
        for (buf, p) in self.pending.iter_mut().zip(planes) {
            buf.extend_from_slice(p);
        }
        self.frames_in += n as u64;
        let mut out =
            vec![Vec::with_capacity((n as f64 * self.ratio) as usize + BLOCK); self.channels];
        while self.available() >= self.inner.input_frames_next() {
            self.run_block(None, &mut out)?;
        }
        Ok(out)
    }

    /// End of the clip: flush the filter and return the remaining output, so that the
    /// whole clip has exactly [`Self::expected_len`] frames.
    pub fn finish(&mut self) -> Result<Vec<Vec<f32>>, ResampleError> {
        let target = self.expected_len(self.frames_in);
        let mut out = vec![Vec::new(); self.channels];
        // Guard against a resampler that stops producing: bounded number of flushes.
        let mut guard = 0;
        while self.frames_out < target {
            let avail = self.available().min(self.inner.input_frames_next());
            self.run_block(Some(avail), &mut out)?;
            guard += 1;
            if guard > 64 + (self.inner.output_delay() / BLOCK.max(1)) * 4 {
                return Err(ResampleError::Process(
                    "resampler produced no output while flushing".into(),
                ));
            }
        }
        // Trim the zero-padded tail beyond the exact length.
        let extra = (self.frames_out - target) as usize;
        for ch in &mut out {
            let keep = ch.len().saturating_sub(extra);
            ch.truncate(keep);
        }
        self.frames_out = target;
        Ok(out)
    }

    fn available(&self) -> usize {
        self.pending[0].len() - self.start
    }

    /// Drop consumed input from the front (once per push, not per block).
    fn compact(&mut self) {
        if self.start > 0 {
            for ch in &mut self.pending {
                ch.drain(..self.start);
            }
            self.start = 0;
        }
    }

    /// Process one block; `partial` = Some(k) feeds only k real frames (rest silence).
    fn run_block(
        &mut self,
        partial: Option<usize>,
        out: &mut [Vec<f32>],
    ) -> Result<(), ResampleError> {
        let need = self.inner.input_frames_next();
        let real = partial.unwrap_or(need).min(self.available());
        let frames_avail = self.pending[0].len();
        let input = SequentialSliceOfVecs::new(&self.pending, self.channels, frames_avail)
            .map_err(|e| ResampleError::Process(e.to_string()))?;
        let out_frames = self.scratch[0].len();
        let mut output =
            SequentialSliceOfVecs::new_mut(&mut self.scratch, self.channels, out_frames)
                .map_err(|e| ResampleError::Process(e.to_string()))?;
        let mut indexing = Indexing::new().input_offset(self.start);
        if partial.is_some() {
            indexing = indexing.partial_len(real);
        }
        let (used, produced) = self
            .inner
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(|e| ResampleError::Process(e.to_string()))?;
        self.start += used.min(real);
        let drop = self.skip.min(produced);
        self.skip -= drop;
        for (o, s) in out.iter_mut().zip(&self.scratch) {
            o.extend_from_slice(&s[drop..produced]);
        }
        self.frames_out += (produced - drop) as u64;
        Ok(())
    }
}

/// Resample a whole mono clip at once (the reference the streaming path must equal).
pub fn resample_mono(
    samples: &[f32],
    from: u32,
    to: u32,
    quality: Quality,
) -> Result<Vec<f32>, ResampleError> {
    let mut r = StreamResampler::new(from, to, 1, quality)?;
    let mut out = r.push(&[samples])?.swap_remove(0);
    out.extend(r.finish()?.swap_remove(0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, f: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * f * i as f32 / rate as f32).sin() * 0.5)
            .collect()
    }

    #[test]
    fn length_is_exact_for_common_rates() {
        for (from, to) in [
            (48000, 16000),
            (44100, 16000),
            (22050, 16000),
            (8000, 16000),
            (11025, 22050),
            (96000, 16000),
        ] {
            for n in [0usize, 1, 17, 1000, 4410, 48001, 100_003] {
                for q in [Quality::High, Quality::Fast] {
                    let x = sine(from, 440.0, n);
                    let y = resample_mono(&x, from, to, q).unwrap();
                    let want = (n as f64 * to as f64 / from as f64).round() as usize;
                    assert_eq!(y.len(), want, "{from}->{to} n={n} {q:?}");
                }
            }
        }
    }

    #[test]
    fn no_fractional_delay_even_near_nyquist() {
        // A half-sample shift would show most at high frequencies.
        for (from, to) in [
            (48000u32, 16000u32),
            (96000, 16000),
            (44100, 16000),
            (16000, 48000),
        ] {
            for q in [Quality::High, Quality::Fast] {
                // `fast` rolls off earlier: probe it inside its flat passband.
                let frac = if q == Quality::High { 0.4 } else { 0.3 };
                let f = frac * to.min(from) as f32;
                let x = sine(from, f, from as usize);
                let y = resample_mono(&x, from, to, q).unwrap();
                let want = sine(to, f, y.len());
                let n = y.len();
                let err = y[n / 4..3 * n / 4]
                    .iter()
                    .zip(&want[n / 4..3 * n / 4])
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(err < 5e-3, "{from}->{to} {q:?}: max error {err} at {f} Hz");
            }
        }
    }

    #[test]
    fn fft_sizes_give_integral_delays() {
        for (from, to) in [
            (48000, 16000),
            (96000, 16000),
            (44100, 16000),
            (22050, 16000),
            (8000, 16000),
        ] {
            for (t, s) in [(BLOCK, 1), (FAST_SUB_BLOCK, 4)] {
                let (chunk, sub) = fft_geometry(from, to, t, s);
                let g = gcd(from, to) as usize;
                let fft_chunks = (chunk / sub).div_ceil(from as usize / g);
                assert_eq!((fft_chunks * to as usize / g) % 2, 0, "{from}->{to}");
                assert_eq!((fft_chunks * from as usize / g) % 2, 0, "{from}->{to}");
            }
        }
    }

    #[test]
    fn no_delay_a_sine_stays_in_phase() {
        let (from, to) = (48000, 16000);
        let x = sine(from, 300.0, 48000);
        for q in [Quality::High, Quality::Fast] {
            let y = resample_mono(&x, from, to, q).unwrap();
            let want = sine(to, 300.0, y.len());
            // Away from the edges the output is the same sine, not shifted.
            let err = y[2000..14000]
                .iter()
                .zip(&want[2000..14000])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(err < 2e-3, "{q:?}: max error {err}");
        }
    }

    #[test]
    fn chunked_equals_whole() {
        let x: Vec<f32> = (0..97_531)
            .map(|i| ((i as f32 * 0.013).sin() + (i as f32 * 0.31).cos()) * 0.3)
            .collect();
        for q in [Quality::High, Quality::Fast] {
            let whole = resample_mono(&x, 44100, 16000, q).unwrap();
            let mut r = StreamResampler::new(44100, 16000, 1, q).unwrap();
            let mut pieces = Vec::new();
            let mut i = 0;
            for size in [1usize, 999, 4410, 33, 20_000, 7].iter().cycle() {
                if i >= x.len() {
                    break;
                }
                let end = (i + size).min(x.len());
                pieces.extend(r.push(&[&x[i..end]]).unwrap().swap_remove(0));
                i = end;
            }
            pieces.extend(r.finish().unwrap().swap_remove(0));
            assert_eq!(pieces.len(), whole.len());
            let diff = pieces
                .iter()
                .zip(&whole)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(diff <= 1e-5, "{q:?}: {diff}");
        }
    }

    #[test]
    fn zero_rates_are_rejected() {
        assert!(StreamResampler::new(0, 16000, 1, Quality::High).is_err());
        assert!(StreamResampler::new(16000, 0, 1, Quality::High).is_err());
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    #[test]
    #[ignore = "prints throughput; run with --ignored"]
    fn throughput() {
        let x: Vec<f32> = (0..48000 * 60).map(|i| (i as f32 * 0.01).sin()).collect();
        for q in [Quality::High, Quality::Fast] {
            let t = std::time::Instant::now();
            let y = resample_mono(&x, 48000, 16000, q).unwrap();
            let s = t.elapsed().as_secs_f64();
            eprintln!("{q:?}: {} frames, {:.0}x real time", y.len(), 60.0 / s);
        }
    }
}
