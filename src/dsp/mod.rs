//! Pure signal processing: no I/O, no engine, no Arrow. Operators in `src/ops/`
//! call into these modules on the worker pool.

pub mod augment;
pub mod chroma;
pub mod contrast;
pub mod mel;
mod numeric;
pub mod resample;
pub mod simd;
pub mod sinc_fft;
pub mod spectral;
pub mod stft;
pub mod tuning;
pub mod vad;
