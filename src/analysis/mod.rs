//! Dataframe analysis of sermo tables: `sermo query` (polars SQL over lazy scans of
//! the part files) and `sermo stats` (class balance, durations, per-dimension feature
//! statistics, quarantine counts, optional PNG charts).
//!
//! Everything that needs polars or plotters sits behind the default cargo feature
//! `analysis`; without it the two subcommands still parse and say that the feature is
//! disabled, so `cargo build --no-default-features` gives a lean binary.
//!
//! - `table.rs`: find the part files of a table (top level, hive folders
//!   `key=value/`, shard folders `shard=I/`), its `_quarantine.parquet` files, and
//!   scan them lazily with the folder keys as string columns.
//! - `query.rs`: `sermo query`.
//! - `stats.rs`: `sermo stats`.
//! - `plot.rs`: the PNG charts of `sermo stats --plot`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[cfg(feature = "analysis")]
mod error;
#[cfg(feature = "analysis")]
pub mod plot;
#[cfg(feature = "analysis")]
pub mod query;
#[cfg(feature = "analysis")]
pub mod stats;
#[cfg(feature = "analysis")]
pub mod table;

#[cfg(feature = "analysis")]
pub use error::{AnalysisError, Result};

/// `sermo query SQL --table NAME=PATH ... [--out FILE]`.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    sermo query \"SELECT label, count(*) AS n FROM feats GROUP BY label ORDER BY label\" --table feats=out/quickstart-features\n  \
    sermo query \"SELECT a.clip_id, a.duration_s FROM a JOIN f USING (clip_id)\" --table a=out/quickstart-audio --table f=out/quickstart-features --out result.csv")]
pub struct QueryArgs {
    /// The SQL query (polars SQL dialect).
    pub sql: String,
    /// A table the query reads: NAME=PATH, PATH a sermo table directory or one .parquet file (repeatable).
    #[arg(long = "table", value_name = "NAME=PATH")]
    pub tables: Vec<String>,
    /// Write the result to FILE instead of printing it; the format follows the
    /// extension: .parquet, .csv, .json (an array of row objects) or .ndjson/.jsonl.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Rows printed at most (without --out).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

/// `sermo stats PATH [--json] [--plot DIR]`.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    sermo stats out/quickstart-features\n  \
    sermo stats out/quickstart-audio --json > stats.json\n  \
    sermo stats out/quickstart-audio --plot out/charts")]
pub struct StatsArgs {
    /// A sermo table directory (or one .parquet file).
    pub path: PathBuf,
    /// Print the statistics as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write class_balance.png and duration_hist.png into DIR (created if needed).
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
}

/// Run `sermo query`.
pub fn run_query(args: &QueryArgs) -> ExitCode {
    #[cfg(feature = "analysis")]
    {
        finish(query::run(args))
    }
    #[cfg(not(feature = "analysis"))]
    {
        let _ = args;
        disabled("query")
    }
}

/// Run `sermo stats`.
pub fn run_stats(args: &StatsArgs) -> ExitCode {
    #[cfg(feature = "analysis")]
    {
        finish(stats::run(args))
    }
    #[cfg(not(feature = "analysis"))]
    {
        let _ = args;
        disabled("stats")
    }
}

#[cfg(feature = "analysis")]
fn finish(r: Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sermo: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "analysis"))]
fn disabled(cmd: &str) -> ExitCode {
    eprintln!(
        "sermo: `sermo {cmd}` is not available: this binary was built without the `analysis` \
         feature (rebuild with default features)"
    );
    ExitCode::FAILURE
}
