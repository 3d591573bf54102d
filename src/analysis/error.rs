//! The one error type of `sermo query` and `sermo stats`; every message names the
//! path, table or argument it is about.

use std::path::PathBuf;

use polars::prelude::PolarsError;

/// Result of the analysis commands.
pub type Result<T> = std::result::Result<T, AnalysisError>;

/// What can go wrong in `sermo query` / `sermo stats`.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("{}: no such file or directory", path.display())]
    NotFound { path: PathBuf },

    #[error("{}: not a sermo table (expected a directory of part-*.parquet files or a .parquet file)", path.display())]
    NotATable { path: PathBuf },

    #[error("{}: the path is not valid UTF-8, which polars cannot scan", path.display())]
    NonUtf8 { path: PathBuf },

    #[error("{}: the table is empty (no part-*.parquet files in it or in its partition folders)", path.display())]
    EmptyTable { path: PathBuf },

    #[error("{}: inconsistent partition folders: {} is under ({}) but {} is under ({})",
        path.display(), first.display(), first_keys.join(", "), other.display(), other_keys.join(", "))]
    Layout {
        path: PathBuf,
        first: PathBuf,
        first_keys: Vec<String>,
        other: PathBuf,
        other_keys: Vec<String>,
    },

    #[error("{}: cannot {op}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: {source}", path.display())]
    Polars {
        path: PathBuf,
        #[source]
        source: PolarsError,
    },

    #[error("{}: cannot read Parquet: {message}", path.display())]
    Parquet { path: PathBuf, message: String },

    /// A committed part differs from what its ledger recorded.
    #[error("{message}")]
    Altered { path: PathBuf, message: String },

    #[error("--table {arg}: expected NAME=PATH, e.g. --table feats=out/quickstart-features")]
    BadTableArg { arg: String },

    #[error("--table {name}: given twice")]
    DuplicateTable { name: String },

    #[error(
        "the query reads table `{name}`, which is not given: add --table {name}=PATH (given: {given})"
    )]
    UnknownTable { name: String, given: String },

    #[error("invalid SQL: {source}")]
    Sql {
        #[source]
        source: PolarsError,
    },

    #[error("query over {tables}: {source}")]
    Query {
        tables: String,
        #[source]
        source: PolarsError,
    },

    #[error("{}: unknown output format (use .parquet, .csv, .json, .ndjson or .jsonl)", path.display())]
    UnknownFormat { path: PathBuf },

    #[error("{}: cannot write the result: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: PolarsError,
    },

    #[error("{}: cannot draw the chart: {message}", path.display())]
    Plot { path: PathBuf, message: String },
}

impl AnalysisError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> AnalysisError {
        let path = path.into();
        move |source| AnalysisError::Io { op, path, source }
    }

    pub(crate) fn polars(path: impl Into<PathBuf>) -> impl FnOnce(PolarsError) -> AnalysisError {
        let path = path.into();
        move |source| AnalysisError::Polars { path, source }
    }
}
