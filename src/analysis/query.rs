//! `sermo query`: polars SQL over lazy scans of sermo tables.
//!
//! Every `--table NAME=PATH` is registered as a lazy scan of its part files (see
//! [`super::table`]), so polars pushes the query's projections and filters into the
//! Parquet reader: `SELECT label, count(*) … GROUP BY label` reads the `label` column
//! only. The result is printed as a text table, or written with `--out` in the
//! format its extension names.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use polars::sql::SQLContext;

use super::table::Table;
use super::{AnalysisError, QueryArgs, Result};

use crate::error::count;

/// Output format of `--out`, from the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutFormat {
    Parquet,
    Csv,
    /// A JSON array of row objects.
    Json,
    /// One JSON object per line.
    JsonLines,
}

impl OutFormat {
    /// The format named by `path`'s extension (case-insensitive).
    pub fn of(path: &Path) -> Result<OutFormat> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("parquet") => Ok(OutFormat::Parquet),
            Some("csv") => Ok(OutFormat::Csv),
            Some("json") => Ok(OutFormat::Json),
            Some("ndjson" | "jsonl") => Ok(OutFormat::JsonLines),
            _ => Err(AnalysisError::UnknownFormat {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// `NAME=PATH` of a `--table` argument.
pub fn parse_table_arg(arg: &str) -> Result<(String, PathBuf)> {
    match arg.split_once('=') {
        Some((name, path)) if !name.trim().is_empty() && !path.is_empty() => {
            Ok((name.trim().to_string(), PathBuf::from(path)))
        }
        _ => Err(AnalysisError::BadTableArg {
            arg: arg.to_string(),
        }),
    }
}

/// Register the tables, run the query and collect the result.
pub fn execute(sql: &str, tables: &[String]) -> Result<DataFrame> {
    let mut ctx = SQLContext::new();
    let mut given: Vec<(String, PathBuf)> = Vec::new();
    for arg in tables {
        let (name, path) = parse_table_arg(arg)?;
        if given.iter().any(|(n, _)| *n == name) {
            return Err(AnalysisError::DuplicateTable { name });
        }
        let table = Table::open(&path)?;
        ctx.register(&name, table.scan()?);
        given.push((name, path));
    }
    let describe = || {
        if given.is_empty() {
            "no tables".to_string()
        } else {
            given
                .iter()
                .map(|(n, p)| format!("{n}={}", p.display()))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let lf = ctx
        .execute(sql)
        .map_err(|e| classify(e, &given, &describe()))?;
    lf.collect().map_err(|e| classify(e, &given, &describe()))
}

/// A polars error of the query, worded for the command line.
fn classify(e: PolarsError, given: &[(String, PathBuf)], tables: &str) -> AnalysisError {
    let msg = e.to_string();
    if let Some(rest) = msg.split("relation '").nth(1)
        && let Some((name, _)) = rest.split_once("' was not found")
    {
        let names: Vec<&str> = given.iter().map(|(n, _)| n.as_str()).collect();
        return AnalysisError::UnknownTable {
            name: name.to_string(),
            given: if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            },
        };
    }
    match e {
        PolarsError::SQLSyntax(_) => AnalysisError::Sql { source: e },
        PolarsError::SQLInterface(_) if msg.contains("sql parser error") => {
            AnalysisError::Sql { source: e }
        }
        _ => AnalysisError::Query {
            tables: tables.to_string(),
            source: e,
        },
    }
}

/// `sermo query`.
pub fn run(args: &QueryArgs) -> Result<()> {
    // Refuse an unknown --out format before any work.
    let format = args.out.as_deref().map(OutFormat::of).transpose()?;
    let mut df = execute(&args.sql, &args.tables)?;
    match (&args.out, format) {
        (Some(path), Some(format)) => {
            write(&mut df, path, format)?;
            eprintln!(
                "sermo: wrote {} x {} to {}",
                count(df.height(), "row"),
                count(df.width(), "column"),
                path.display()
            );
            Ok(())
        }
        _ => {
            let mut out = std::io::stdout().lock();
            let text = render(&df, args.limit);
            // A closed pipe (`| head`) is not an error worth a message.
            let _ = out.write_all(text.as_bytes());
            Ok(())
        }
    }
}

/// Write `df` to `path` (through a hidden temporary file, renamed when complete).
pub fn write(df: &mut DataFrame, path: &Path, format: OutFormat) -> Result<()> {
    let name =
        path.file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| AnalysisError::UnknownFormat {
                path: path.to_path_buf(),
            })?;
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let file = File::create(&tmp).map_err(AnalysisError::io("create", path))?;
    let res = write_to(df, file, format).map_err(|source| AnalysisError::Write {
        path: path.to_path_buf(),
        source,
    });
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        AnalysisError::Io {
            op: "write",
            path: path.to_path_buf(),
            source: e,
        }
    })
}

fn write_to(df: &mut DataFrame, file: File, format: OutFormat) -> PolarsResult<()> {
    let mut w = std::io::BufWriter::new(file);
    match format {
        OutFormat::Parquet => {
            ParquetWriter::new(&mut w).finish(df)?;
        }
        OutFormat::Csv => CsvWriter::new(&mut w).include_header(true).finish(df)?,
        OutFormat::Json => JsonWriter::new(&mut w)
            .with_json_format(JsonFormat::Json)
            .finish(df)?,
        OutFormat::JsonLines => JsonWriter::new(&mut w)
            .with_json_format(JsonFormat::JsonLines)
            .finish(df)?,
    }
    w.flush()?;
    w.into_inner()
        .map_err(|e| PolarsError::from(e.into_error()))?
        .sync_all()?;
    Ok(())
}

/// Longest cell printed; longer ones end in `…`.
const MAX_CELL: usize = 48;

fn cell(v: &AnyValue) -> String {
    let s = match v {
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        other => other.to_string(),
    };
    if s.chars().count() > MAX_CELL {
        let mut t: String = s.chars().take(MAX_CELL - 1).collect();
        t.push('…');
        t
    } else {
        s
    }
}

/// The first `limit` rows of `df` as an aligned text table: names, types, a rule,
/// the rows, and a line with the shape.
pub fn render(df: &DataFrame, limit: usize) -> String {
    let shown = df.height().min(limit);
    let mut cols: Vec<(Vec<String>, bool)> = Vec::with_capacity(df.width());
    for c in df.columns() {
        let mut cells = vec![c.name().to_string(), c.dtype().to_string()];
        for i in 0..shown {
            cells.push(match c.get(i) {
                Ok(v) => cell(&v),
                Err(_) => "?".to_string(),
            });
        }
        cols.push((cells, c.dtype().is_primitive_numeric()));
    }
    let widths: Vec<usize> = cols
        .iter()
        .map(|(cells, _)| cells.iter().map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let line = |row: usize, out: &mut String| {
        let mut parts = Vec::with_capacity(cols.len());
        for ((cells, numeric), w) in cols.iter().zip(&widths) {
            let s = &cells[row];
            let pad = w.saturating_sub(s.chars().count());
            parts.push(if *numeric && row >= 2 {
                format!("{}{s}", " ".repeat(pad))
            } else {
                format!("{s}{}", " ".repeat(pad))
            });
        }
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(0, &mut out);
    line(1, &mut out);
    out.push_str(
        &widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  "),
    );
    out.push('\n');
    for r in 0..shown {
        line(r + 2, &mut out);
    }
    let more = df.height() - shown;
    if more > 0 {
        out.push_str(&format!(
            "… {more} more rows (raise --limit, or write them all with --out FILE)\n"
        ));
    }
    out.push_str(&format!(
        "({} x {})\n",
        count(df.height(), "row"),
        count(df.width(), "column")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_from_extensions() {
        assert_eq!(
            OutFormat::of(Path::new("a.parquet")).ok(),
            Some(OutFormat::Parquet)
        );
        assert_eq!(OutFormat::of(Path::new("a.CSV")).ok(), Some(OutFormat::Csv));
        assert_eq!(
            OutFormat::of(Path::new("a.json")).ok(),
            Some(OutFormat::Json)
        );
        assert_eq!(
            OutFormat::of(Path::new("a.jsonl")).ok(),
            Some(OutFormat::JsonLines)
        );
        assert!(OutFormat::of(Path::new("a.xlsx")).is_err());
        assert!(OutFormat::of(Path::new("noext")).is_err());
    }

    #[test]
    fn table_args() {
        assert_eq!(
            parse_table_arg("feats=out/f=1").ok(),
            Some(("feats".to_string(), PathBuf::from("out/f=1")))
        );
        assert!(parse_table_arg("feats").is_err());
        assert!(parse_table_arg("=x").is_err());
        assert!(parse_table_arg("x=").is_err());
    }
}
