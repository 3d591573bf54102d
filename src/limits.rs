//! Upper bounds on every size that a file header or a pipeline setting can ask
//! for, in one place: a size read from a file is checked against them before
//! anything is allocated (an absurd header quarantines its file as
//! `invalid_format`, the run goes on), a size from a pipeline file or a flag at
//! validation (exit 2 naming the key). The bounds are far above what speech work
//! uses; they exist so that one hostile input cannot abort the process
//! ("memory allocation of N bytes failed") or have it killed for memory.
//! docs/pipelines.md lists them.
//!
//! This module names nothing of the crate: every layer may use it.

/// Highest sample rate a file may declare (Hz): twice the 384 kHz of the fastest
/// common converters.
pub const MAX_SAMPLE_RATE: u32 = 768_000;

/// Most channels a file may declare (a WAV header holds up to 65,535).
pub const MAX_CHANNELS: usize = 64;

/// Longest `chunk_s` of `decode` (seconds).
pub const MAX_CHUNK_S: f64 = 600.0;

/// Most samples (all channels together) one decoded chunk holds: 2^24, 64 MiB of
/// f32. A chunk of `chunk_s` seconds that would hold more is cut shorter (rows are
/// then shorter than `chunk_s`; every stage after `decode` is exact across chunks).
pub const MAX_CHUNK_SAMPLES: usize = 1 << 24;

/// Largest `n_fft`, `win_length`, `hop_length` and `frame_length` (samples).
pub const MAX_FRAME: usize = 1 << 16;

/// Most mel bands (`n_mels`), chroma bins (`n_chroma`) and contrast bands
/// (`n_bands`).
pub const MAX_BANDS: usize = 1024;

/// Largest `batch_size` of `train`, `infer` and `embed`.
pub const MAX_BATCH: usize = 8192;

/// Most `epochs` of `train`.
pub const MAX_EPOCHS: usize = 100_000;

/// Largest `max_frames` of `train` (frames of one example).
pub const MAX_EXAMPLE_FRAMES: usize = 1 << 20;

/// Most members of a `train` `ensemble`.
pub const MAX_ENSEMBLE: usize = 256;

/// Largest `pipeline.channel_capacity` (batches in flight per edge).
pub const MAX_CHANNEL_CAPACITY: usize = 1024;

/// Largest `row_group_rows` of a `parquet` sink (a row group is held in memory
/// until written).
pub const MAX_ROW_GROUP_ROWS: usize = 1 << 20;

/// Longest window (`length_s`, `hop_s` of `window`), in seconds.
pub const MAX_WINDOW_S: f64 = 600.0;

/// Most shards of `--shard I/N` and `--shards N` (Slurm's largest array is far
/// smaller by default).
pub const MAX_SHARDS: u32 = 100_000;

/// Frames of one decoded chunk of `chunk_s` seconds at `rate` Hz with `channels`
/// channels: `chunk_s × rate`, at least 1, cut so that the chunk holds at most
/// [`MAX_CHUNK_SAMPLES`] samples.
pub fn chunk_frames(chunk_s: f64, rate: u32, channels: usize) -> usize {
    let want = (chunk_s * rate as f64).round();
    let cap = MAX_CHUNK_SAMPLES / channels.max(1);
    if want.is_finite() && want >= 1.0 {
        (want.min(cap as f64) as usize).max(1)
    } else {
        1
    }
}

/// Why a file's sample rate and channel count are refused, if they are.
pub fn check_audio_header(rate: u32, channels: usize) -> Result<(), String> {
    if rate == 0 || rate > MAX_SAMPLE_RATE {
        return Err(format!(
            "the header declares a sample rate of {rate} Hz (accepted: 1 to {MAX_SAMPLE_RATE})"
        ));
    }
    if channels > MAX_CHANNELS {
        return Err(format!(
            "the header declares {channels} channels (accepted: at most {MAX_CHANNELS})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_never_holds_more_than_the_bound() {
        assert_eq!(chunk_frames(30.0, 16_000, 1), 480_000);
        assert_eq!(chunk_frames(600.0, MAX_SAMPLE_RATE, 1), MAX_CHUNK_SAMPLES);
        assert_eq!(
            chunk_frames(600.0, MAX_SAMPLE_RATE, MAX_CHANNELS),
            MAX_CHUNK_SAMPLES / MAX_CHANNELS
        );
        assert_eq!(chunk_frames(1e-9, 16_000, 1), 1);
        assert_eq!(chunk_frames(f64::NAN, 16_000, 2), 1);
    }

    #[test]
    fn absurd_headers_are_refused_with_the_value() {
        assert!(check_audio_header(48_000, 2).is_ok());
        let e = check_audio_header(u32::MAX, 1).unwrap_err();
        assert!(e.contains("4294967295 Hz"), "{e}");
        assert!(check_audio_header(0, 1).is_err());
        let e = check_audio_header(16_000, 65_535).unwrap_err();
        assert!(e.contains("65535 channels"), "{e}");
    }
}
