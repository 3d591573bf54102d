//! One module per component `kind`: `files` → [`files`], `decode` → [`decode`],
//! `parquet` → [`parquet`]. Each holds the config struct (serde,
//! `deny_unknown_fields`) and its runtime operator; [`crate::registry`] lists them.

pub mod clip;
pub mod decode;
pub mod files;
pub mod parquet;
