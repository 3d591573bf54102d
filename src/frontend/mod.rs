//! The feature front end: audio → the feature frames models read. Settings
//! ([`options`]: [`FeaturesConfig`], recorded in every features table) and
//! computation ([`compute`]: [`RowFeaturizer`], [`Extractor`]) are library code
//! shared by the operators that turn audio into model input — the `features` stage
//! (`ops/features.rs`), `infer` (`ops/infer.rs`) and, later, an `embed` stage — and
//! by `sermo eval`. librosa 0.11's names, defaults and numbers (parity tests against
//! librosa fixtures).

pub mod compute;
pub mod options;

pub use compute::{Extracted, Extractor, RowFeaturizer, settings_of};
pub use options::{
    ChromaOpts, ContrastOpts, FeaturesConfig, FrameOpts, LogMelOpts, MelNorm, MelOpts,
    MelOptsInner, MfccOpts, SpecOpts, Summary, WindowKind,
};
