//! Training and evaluation of SER models with burn (CPU: ndarray backend; CUDA:
//! burn's cuda backend, cargo feature `cuda`, chosen at run time by [`device`]).
//!
//! Layout after burn's examples: [`recipe`] (a `train` sink's settings),
//! [`cv`] (the run: split or folds, ensembles, reuse, artifacts), [`model`] (the
//! modules and their configs),
//! [`data`] (rows → examples → padded batches, the `Batcher`, prefetching),
//! [`training`] (the loop), [`inference`] (a model back from its directory,
//! `sermo eval`), [`plots`] (confusion matrix and learning curves). Pure parts
//! with no deep-learning code:
//! - [`split`]: speaker-independent (or any group column) train/valid/test splits
//!   and group-wise cross-validation folds; random row splits are allowed but
//!   flagged as leaking speakers.
//! - [`metrics`]: confusion matrix, accuracy, UAR, precision/recall/F1, and mean ±
//!   std over cross-validation folds, with text rendering and serde.
//! - [`cv_shards`]: CV folds as shards (`--shard I/N` trains folds k mod N = I;
//!   `sermo commit` joins them).
//! - [`history`]: `history.parquet` written and read back.
//! - [`default_model`]: the model built into the binary (`models/default`),
//!   used by `sermo infer` / `sermo serve` without `--model`.
//! - [`reuse`]: which members of finished runs may stand in for training
//!   (`reuse` of the train sink).

pub mod conv;
pub mod cv;
pub mod cv_shards;
pub mod data;
pub mod default_model;
pub mod device;
pub mod finetune;
pub mod history;
pub mod inference;
pub mod metrics;
pub mod model;
pub mod plots;
pub mod recipe;
pub mod reuse;
pub mod split;
pub mod training;

/// The CPU backend used for training.
pub type Cpu = burn::backend::NdArray<f32>;
/// The CPU backend with automatic differentiation.
pub type CpuAutodiff = burn::backend::Autodiff<Cpu>;
/// The CUDA backend (cargo feature `cuda`).
#[cfg(feature = "cuda")]
pub type Gpu = burn::backend::Cuda<f32>;
/// The CUDA backend with automatic differentiation.
#[cfg(feature = "cuda")]
pub type GpuAutodiff = burn::backend::Autodiff<Gpu>;
