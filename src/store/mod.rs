//! The on-disk table format, shared by everything that writes or reads a sermo
//! table: the `parquet` sink and source (`ops/parquet/`), `sermo query`/`stats`
//! (`analysis/`), `sermo commit`/`status` (`shards.rs`) and model evaluation
//! (`train/`). No operator logic lives here, only the format and its file guards.
//!
//! - [`hive`]: partition folders `key=value`, the one parser and the escaping;
//! - [`part`]: part-file names, temporary-file guards, fault-injecting writer;
//! - [`ledger`]: `_ledger.jsonl`, the commit log (one line per commit, with each
//!   part file's size and content hash, checked when the part is read);
//! - [`lock`]: `.sermo.lock`, one writer per table directory;
//! - [`dataset`]: listing a dataset's data files with their partition values;
//! - here: the reserved file names and the markers (`_manifest.json` of a sharded
//!   table).
//!
//! Layout of a table directory (docs/feature-store.md): `part-NNNNN.parquet` files at
//! the top or under hive folders, optionally under `shard=I/` folders,
//! `_quarantine.parquet`, `_ledger.jsonl`, `_sermo.json`, `_SUCCESS`,
//! `_manifest.json`, `.sermo.lock` while a run writes; names starting with `.` or
//! `_` are never data.

pub mod dataset;
pub mod hive;
pub mod ledger;
pub mod lock;
pub mod part;

use std::collections::BTreeMap;

use arrow::datatypes::Schema;
use serde::{Deserialize, Serialize};

use crate::engine::hash;

pub use ledger::LEDGER_FILE;

/// Name of the completion marker.
pub const SUCCESS_FILE: &str = "_SUCCESS";
/// Name of the quarantine table inside a sink directory.
pub const QUARANTINE_FILE: &str = "_quarantine.parquet";
/// Name of the settings record inside a sink directory.
pub const HEADER_FILE: &str = "_sermo.json";

/// File name of the shard manifest (`sermo commit`).
pub const MANIFEST_FILE: &str = "_manifest.json";

/// One shard's entry in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardEntry {
    pub index: u32,
    pub rows: u64,
    pub files: u64,
    pub clips: u64,
    pub quarantined: u64,
}

/// `_manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub shards: u32,
    pub rows: u64,
    pub files: u64,
    pub clips: u64,
    pub quarantined: u64,
    pub schema_hash: String,
    pub config_hash: String,
    pub pipeline_hash: String,
    pub sermo_version: String,
    pub per_shard: Vec<ShardEntry>,
}

/// `_sermo.json`: what the output in a sink directory was made with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Header {
    pub format: u32,
    pub sermo_version: String,
    /// Hash of the sink's inputs' lineage and its partitioning: equal hashes mean
    /// equal rows.
    pub lineage_hash: String,
    pub pipeline_hash: String,
    pub schema_hash: String,
    pub partition_by: Vec<String>,
    /// Settings hash of every upstream node, by id.
    pub settings: BTreeMap<String, String>,
}

/// `_SUCCESS`: written last, when the output is complete.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Success {
    pub rows: u64,
    pub files: u64,
    pub clips: u64,
    pub quarantined: u64,
    pub schema_hash: String,
    /// The lineage hash (equal for every shard of one pipeline).
    pub config_hash: String,
    pub pipeline_hash: String,
    pub sermo_version: String,
    pub shard: Option<String>,
}

/// Hash of a schema's fields (names, types, nullability), not its metadata.
pub fn schema_hash(schema: &Schema) -> String {
    let fields = serde_json::to_string(schema.fields()).unwrap_or_default();
    hash::hex(hash::stable_hash(fields.as_bytes()))
}
