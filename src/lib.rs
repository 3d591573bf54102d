//! # sermo
//!
//! A streaming data-pipeline engine for speech emotion recognition. Declarative
//! pipeline files wire sources, stages and sinks into a graph of async operators that
//! exchange Arrow record batches over bounded channels.
//!
//! - [`config`]: pipeline files, `--set` overrides, validation (all errors at once).
//! - [`engine`]: the runtime (tasks, bounded channels, worker pool, cancellation);
//!   knows nothing about audio.
//! - [`registry`]: `kind` name → component.
//! - [`ops`]: one module per component kind.
//! - [`frontend`]: the feature front end (settings + computation) shared by the
//!   `features`, `infer` (and later `embed`) operators and `sermo eval`.
//! - [`audio`]: decoding and channel handling used by the operators.
//! - [`schema`]: Arrow schemas of every edge type (mirrored in `schemas/*.json`).
//! - [`store`]: the on-disk table format (part files, ledger, hive folders,
//!   markers) shared by the parquet sink/source, analysis, shards and train.
//! - [`shards`]: `sermo commit` / `sermo status` for sharded (Slurm array) runs.
//! - [`train`]: burn models, training loop, speaker-independent splits, CV, metrics.
//! - [`timeline`]: emotion timelines kept bounded: per-clip summary, binned track,
//!   the PNG picture.
//! - [`analysis`]: `sermo query` (polars SQL) and `sermo stats` (feature `analysis`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), sermo::error::SermoError> {
//! let plan = sermo::config::load_plan("pipelines/quickstart.toml".as_ref(), &[])?;
//! let report = plan.run(sermo::engine::RunOptions::default()).await?;
//! println!("done in {:?}", report.wall);
//! # Ok(()) }
//! ```

pub mod analysis;
pub mod audio;
pub mod charts;
pub mod cli;
pub mod config;
pub mod dsp;
pub mod encoders;
pub mod engine;
pub mod error;
pub mod frontend;
pub mod infer_cli;
pub mod labels;
pub mod limits;
pub mod ops;
pub mod registry;
pub mod rows;
pub mod schema;
pub mod serve;
pub mod shards;
pub mod store;
pub mod timeline;
pub mod train;

/// The README's Rust examples compile (`cargo test --doc`).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
