//! One module per component `kind`: `files` → [`files`], `decode` → [`decode`],
//! `parquet` → [`parquet`], `resample` → [`resample`]. Shared operator helpers:
//! [`per_clip`] (stateful per-clip streaming) and [`per_row`] (stateless per-row work);
//! everything else they share lives in library modules beneath `ops/`
//! (docs/architecture.md). Each holds the config struct (serde,
//! `deny_unknown_fields`) and its runtime operator; [`crate::registry`] lists them.

pub mod augment;
pub mod decode;
pub mod discard;
pub mod embed;
pub mod features;
pub mod files;
pub mod infer;
pub mod parquet;
pub mod per_clip;
pub mod per_row;
pub mod resample;
pub mod stdin;
pub mod timeline;
pub mod train;
pub mod window;
