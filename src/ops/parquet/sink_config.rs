//! Settings of the `parquet` sink and the records it leaves beside its part files:
//! [`ParquetSinkConfig`] and [`Mode`] (with the config checks and planning), the
//! names of the marker files, [`Header`] (`_sermo.json`), [`Success`] (`_SUCCESS`)
//! and [`schema_hash`].

use std::collections::HashSet;
use std::path::PathBuf;

use arrow::datatypes::SchemaRef;
use serde::{Deserialize, Serialize};

use super::sink::ParquetSink;
use crate::engine::{Component, ConfigContext, Operator, OperatorConfig, PlanInput, Problem, Role};
use crate::error::Result;
use crate::limits::MAX_ROW_GROUP_ROWS;
use crate::schema::{self, TableKind, require_inputs};
use crate::store::hive::partitionable;
pub use crate::store::{HEADER_FILE, Header, QUARANTINE_FILE, SUCCESS_FILE, Success, schema_hash};

/// How a sink treats output already in its directory.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Keep committed clips, process the rest.
    #[default]
    Resume,
    /// Replace the whole output when the new one is complete.
    Overwrite,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Resume => "resume",
            Mode::Overwrite => "overwrite",
        }
    }
}

/// Config of the `parquet` sink.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParquetSinkConfig {
    /// Output directory.
    pub path: String,
    #[serde(default)]
    pub mode: Mode,
    /// Columns whose values name hive folders (`corpus=x/label=y/`).
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// Target rows per part file (default 100000).
    #[serde(default = "default_rows_per_file")]
    pub rows_per_file: i64,
    /// Rows per row group (default 1024); row groups are also cut at 16 MiB.
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: i64,
    /// zstd level 1..=22 (default 3).
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i64,
    /// A clip that fails after some of its rows arrived (a file truncated
    /// half-way) keeps those rows, its quarantine record marked `partial`;
    /// by default (false) they are dropped: a clip is in the table or in
    /// `_quarantine.parquet`, never both.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_partial: bool,
}

fn default_rows_per_file() -> i64 {
    100_000
}
fn default_row_group_rows() -> i64 {
    1024
}
fn default_zstd_level() -> i64 {
    3
}

impl Component for ParquetSinkConfig {
    const KIND: &'static str = "parquet";
    const ROLE: Role = Role::Sink;
    const SUMMARY: &'static str = "write a crash-safe, resumable directory of Parquet part files (zstd, optional hive partitions)";
}

impl OperatorConfig for ParquetSinkConfig {
    fn check(&self, _ctx: &ConfigContext) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.path.trim().is_empty() {
            p.push(
                Problem::new("path", "is empty")
                    .with_hint("give an output directory, e.g. path = \"out/table\""),
            );
        }
        for (key, v) in [
            ("rows_per_file", self.rows_per_file),
            ("row_group_rows", self.row_group_rows),
        ] {
            if v < 1 {
                p.push(Problem::new(key, format!("must be at least 1, got {v}")));
            }
        }
        // A row group is held in memory until it is written.
        if self.row_group_rows > MAX_ROW_GROUP_ROWS as i64 {
            p.push(Problem::new(
                "row_group_rows",
                format!(
                    "must be at most {MAX_ROW_GROUP_ROWS}, got {}",
                    self.row_group_rows
                ),
            ));
        }
        if !(1..=22).contains(&self.zstd_level) {
            p.push(Problem::new(
                "zstd_level",
                format!("must be between 1 and 22, got {}", self.zstd_level),
            ));
        }
        let mut seen = HashSet::new();
        for c in &self.partition_by {
            if !seen.insert(c) {
                p.push(Problem::new("partition_by", format!("names `{c}` twice")));
            }
        }
        p
    }

    fn plan(&self, inputs: &[PlanInput]) -> std::result::Result<SchemaRef, String> {
        let s = require_inputs(inputs, &TableKind::data_kinds())?;
        for c in &self.partition_by {
            match s.field_with_name(c) {
                Err(_) => {
                    let names: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
                    return Err(format!(
                        "cannot partition by `{c}`: its input has no such column (columns: {})",
                        names.join(", ")
                    ));
                }
                Ok(f) if !partitionable(f.data_type()) => {
                    return Err(format!(
                        "cannot partition by `{c}`: type {} (use a text, integer or boolean column)",
                        f.data_type()
                    ));
                }
                Ok(_) => {}
            }
        }
        if self.partition_by.len() == s.fields().len() {
            return Err("partition_by names every column: nothing would be left to store".into());
        }
        Ok(schema::empty_schema())
    }

    fn output_path(&self, ctx: &ConfigContext) -> Option<PathBuf> {
        Some(ctx.resolve(&self.path))
    }

    fn build(&self, ctx: &ConfigContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(ParquetSink {
            cfg: self.clone(),
            root: ctx.resolve(&self.path),
            prepared: None,
            lock: None,
            created: None,
        }))
    }
}
