//! Training and evaluation of SER models with burn (CPU: ndarray backend).
//!
//! Layout after burn's examples: [`model`] (the modules and their configs),
//! [`data`] (rows → examples → padded batches), [`training`] (the loop).

pub mod data;
pub mod model;
pub mod training;

/// The CPU backend used for training.
pub type Cpu = burn::backend::NdArray<f32>;
/// The CPU backend with automatic differentiation.
pub type CpuAutodiff = burn::backend::Autodiff<Cpu>;
