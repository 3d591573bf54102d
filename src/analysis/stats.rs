//! `sermo stats`: what is in a table.
//!
//! - rows (and distinct clips) and the class balance by `corpus`, `label` and
//!   `speaker` (counts and shares of rows; a partition folder counts like a column);
//! - the duration distribution: per clip from `duration_s` when the table has it
//!   (audio tables repeat a clip's duration on each of its chunks; a clip whose
//!   duration is unknown counts `max(end_s) - min(start_s)`), otherwise per row
//!   from `end_s - start_s`;
//! - for every feature column (`List<FixedSizeList<Float32, D>>`, frames x D, or
//!   `FixedSizeList<Float32, D>`, one vector per row): the mean and the population
//!   standard deviation (ddof = 0, numpy's default) of each of the D dimensions
//!   over all frames of all rows;
//! - the quarantine counts by reason and by stage, from every `_quarantine.parquet`.
//!
//! Counts and durations are polars queries over the lazy scan (only the columns
//! they need are read). The feature statistics stream the part files' feature
//! columns batch by batch with the Parquet reader and accumulate in f64 (Welford),
//! so memory stays bounded by one batch whatever the table's size.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, FixedSizeListArray, Float32Array};
use arrow::datatypes::DataType as ArrowType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use polars::prelude::*;
use serde::Serialize;

use super::table::Table;
use super::{AnalysisError, Result, StatsArgs};

use crate::error::count;

/// Columns whose class balance is reported, when present.
pub const BALANCE_COLUMNS: [&str; 3] = ["corpus", "label", "speaker"];

/// Everything `sermo stats` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub path: String,
    pub part_files: usize,
    pub partition_columns: Vec<String>,
    pub rows: u64,
    /// Distinct clips (by `path`, else `clip_id`); `None` without either column.
    pub clips: Option<u64>,
    pub balance: Vec<Balance>,
    pub duration: Option<Durations>,
    pub features: Vec<FeatureStats>,
    pub quarantine: QuarantineStats,
}

/// Row counts per value of one column.
#[derive(Debug, Clone, Serialize)]
pub struct Balance {
    pub column: String,
    /// Sorted by value (null last).
    pub classes: Vec<ClassCount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassCount {
    /// `None` for rows where the column is null.
    pub value: Option<String>,
    pub rows: u64,
    /// `rows` / all rows.
    pub share: f64,
}

/// The duration distribution in seconds.
#[derive(Debug, Clone, Serialize)]
pub struct Durations {
    /// `clip` or `row`: what one value is.
    pub unit: &'static str,
    /// Where the values come from.
    pub source: &'static str,
    pub count: u64,
    pub min: f64,
    pub p25: f64,
    pub median: f64,
    pub p75: f64,
    pub max: f64,
    pub total_s: f64,
    pub total_hours: f64,
    /// The values, sorted (for the histogram; not printed).
    #[serde(skip)]
    pub values: Vec<f64>,
}

/// Per-dimension statistics of one feature column.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureStats {
    pub column: String,
    /// D, the length of one vector.
    pub dim: usize,
    /// `frames` (`List<FixedSizeList<Float32, D>>`) or `vector` (`FixedSizeList`).
    pub layout: &'static str,
    /// Vectors (frames) the statistics are over.
    pub vectors: u64,
    pub mean: Vec<f64>,
    /// Population standard deviation (ddof = 0).
    pub std: Vec<f64>,
}

/// Counts from the `_quarantine.parquet` files.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantineStats {
    pub files: Vec<String>,
    pub rows: u64,
    pub by_reason: Vec<NamedCount>,
    pub by_stage: Vec<NamedCount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NamedCount {
    pub value: Option<String>,
    pub rows: u64,
}

/// `sermo stats`.
pub fn run(args: &StatsArgs) -> Result<()> {
    let table = Table::open(&args.path)?;
    let stats = compute(&table)?;
    if let Some(dir) = &args.plot {
        super::plot::write_charts(&stats, dir)?;
    }
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&stats).unwrap_or_default();
        s.push('\n');
        s
    } else {
        render(&stats)
    };
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    if let Some(dir) = &args.plot {
        eprintln!(
            "sermo: wrote {} and {}",
            dir.join(super::plot::CLASS_BALANCE_PNG).display(),
            dir.join(super::plot::DURATION_HIST_PNG).display()
        );
    }
    Ok(())
}

/// The statistics of `table`. A table with quarantine files but no part files (every
/// file failed) gives zero rows; one with neither is an error.
pub fn compute(table: &Table) -> Result<Stats> {
    let quarantine = quarantine_stats(table)?;
    if table.parts.is_empty() && table.quarantine.is_empty() {
        table.require_parts()?;
    }
    let mut stats = Stats {
        path: table.path.display().to_string(),
        part_files: table.parts.len(),
        partition_columns: table.partition_columns.clone(),
        rows: 0,
        clips: None,
        balance: vec![],
        duration: None,
        features: vec![],
        quarantine,
    };
    if table.parts.is_empty() {
        return Ok(stats);
    }
    let path = table.path.as_path();
    let pe = || AnalysisError::polars(path);
    let lf = table.scan()?;
    let schema = lf.clone().collect_schema().map_err(pe())?;
    let has = |c: &str| schema.contains(c);

    let df = lf
        .clone()
        .select([len().alias("n")])
        .collect()
        .map_err(pe())?;
    stats.rows = first_u64(&df, "n").map_err(pe())?;
    let clip_key = ["path", "clip_id"].into_iter().find(|c| has(c));
    if let Some(key) = clip_key {
        let df = lf
            .clone()
            .select([col(key).n_unique().alias("n")])
            .collect()
            .map_err(pe())?;
        stats.clips = Some(first_u64(&df, "n").map_err(pe())?);
    }

    for c in BALANCE_COLUMNS.into_iter().filter(|c| has(c)) {
        let df = lf
            .clone()
            .group_by([col(c)])
            .agg([len().alias("rows")])
            .collect()
            .map_err(pe())?;
        let values = strings(&df, c).map_err(pe())?;
        let counts = u64s(&df, "rows").map_err(pe())?;
        let mut classes: Vec<ClassCount> = values
            .into_iter()
            .zip(counts)
            .map(|(value, rows)| ClassCount {
                value,
                rows,
                share: rows as f64 / stats.rows.max(1) as f64,
            })
            .collect();
        classes.sort_by(|a, b| match (&a.value, &b.value) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        stats.balance.push(Balance {
            column: c.to_string(),
            classes,
        });
    }

    stats.duration = durations(&lf, &has, clip_key).map_err(pe())?;
    stats.features = feature_stats(&table.parts)?;
    Ok(stats)
}

fn durations(
    lf: &LazyFrame,
    has: &dyn Fn(&str) -> bool,
    clip_key: Option<&str>,
) -> PolarsResult<Option<Durations>> {
    let span = has("start_s") && has("end_s");
    let (unit, source, mut values): (_, _, Vec<f64>) = if has("duration_s") {
        match clip_key {
            Some(key) => {
                let mut aggs = vec![col("duration_s").drop_nulls().first().alias("d")];
                if span {
                    aggs.push((col("end_s").max() - col("start_s").min()).alias("span"));
                }
                let df = lf.clone().group_by([col(key)]).agg(aggs).collect()?;
                let d = f64s(&df, "d")?;
                let s = if span {
                    f64s(&df, "span")?
                } else {
                    vec![None; d.len()]
                };
                let v = d.into_iter().zip(s).filter_map(|(d, s)| d.or(s)).collect();
                ("clip", "duration_s (one per clip)", v)
            }
            None => {
                let df = lf.clone().select([col("duration_s")]).collect()?;
                let v = f64s(&df, "duration_s")?.into_iter().flatten().collect();
                ("row", "duration_s", v)
            }
        }
    } else if span {
        let df = lf
            .clone()
            .select([(col("end_s") - col("start_s")).alias("d")])
            .collect()?;
        let v = f64s(&df, "d")?.into_iter().flatten().collect();
        ("row", "end_s - start_s", v)
    } else {
        return Ok(None);
    };
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    let total: f64 = values.iter().sum();
    Ok(Some(Durations {
        unit,
        source,
        count: values.len() as u64,
        min: quantile(&values, 0.0),
        p25: quantile(&values, 0.25),
        median: quantile(&values, 0.5),
        p75: quantile(&values, 0.75),
        max: quantile(&values, 1.0),
        total_s: total,
        total_hours: total / 3600.0,
        values,
    }))
}

/// Quantile `q` of sorted values, linear interpolation (numpy's default); NaN if empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn quarantine_stats(table: &Table) -> Result<QuarantineStats> {
    let mut q = QuarantineStats {
        files: table
            .quarantine
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        rows: 0,
        by_reason: vec![],
        by_stage: vec![],
    };
    let Some(lf) = table.scan_quarantine()? else {
        return Ok(q);
    };
    let pe = || AnalysisError::polars(&table.path);
    let df = lf
        .clone()
        .select([len().alias("n")])
        .collect()
        .map_err(pe())?;
    q.rows = first_u64(&df, "n").map_err(pe())?;
    for (c, out) in [("reason", &mut q.by_reason), ("stage", &mut q.by_stage)] {
        let df = lf
            .clone()
            .group_by([col(c)])
            .agg([len().alias("rows")])
            .collect()
            .map_err(pe())?;
        let values = strings(&df, c).map_err(pe())?;
        let counts = u64s(&df, "rows").map_err(pe())?;
        *out = values
            .into_iter()
            .zip(counts)
            .map(|(value, rows)| NamedCount { value, rows })
            .collect();
        // Most frequent first, then by name.
        out.sort_by(|a, b| b.rows.cmp(&a.rows).then_with(|| a.value.cmp(&b.value)));
    }
    Ok(q)
}

fn first_u64(df: &DataFrame, name: &str) -> PolarsResult<u64> {
    Ok(u64s(df, name)?.first().copied().unwrap_or(0))
}

fn u64s(df: &DataFrame, name: &str) -> PolarsResult<Vec<u64>> {
    let s = df
        .column(name)?
        .as_materialized_series()
        .cast(&DataType::UInt64)?;
    Ok(s.u64()?.iter().map(|v| v.unwrap_or(0)).collect())
}

fn f64s(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<f64>>> {
    let s = df
        .column(name)?
        .as_materialized_series()
        .cast(&DataType::Float64)?;
    Ok(s.f64()?.iter().collect())
}

fn strings(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<String>>> {
    let s = df
        .column(name)?
        .as_materialized_series()
        .cast(&DataType::String)?;
    Ok(s.str()?.iter().map(|v| v.map(str::to_string)).collect())
}

/// Running mean and variance of each dimension (Welford, in f64).
struct Accumulator {
    column: String,
    dim: usize,
    layout: &'static str,
    vectors: u64,
    n: Vec<u64>,
    mean: Vec<f64>,
    m2: Vec<f64>,
}

impl Accumulator {
    fn new(column: &str, dim: usize, layout: &'static str) -> Self {
        Accumulator {
            column: column.to_string(),
            dim,
            layout,
            vectors: 0,
            n: vec![0; dim],
            mean: vec![0.0; dim],
            m2: vec![0.0; dim],
        }
    }

    /// Add vectors `first .. first + count` of a `FixedSizeList<Float32, D>` array.
    fn add(&mut self, fsl: &FixedSizeListArray, values: &Float32Array, first: usize, count: usize) {
        let d = self.dim;
        let raw = values.values();
        for j in first..first + count {
            if fsl.is_null(j) {
                continue;
            }
            self.vectors += 1;
            let start = fsl.value_offset_at(j);
            for k in 0..d {
                let i = start + k;
                if values.is_null(i) {
                    continue;
                }
                let x = raw[i] as f64;
                self.n[k] += 1;
                let delta = x - self.mean[k];
                self.mean[k] += delta / self.n[k] as f64;
                self.m2[k] += delta * (x - self.mean[k]);
            }
        }
    }

    fn finish(self) -> FeatureStats {
        let std = self
            .m2
            .iter()
            .zip(&self.n)
            .map(|(m2, n)| {
                if *n == 0 {
                    f64::NAN
                } else {
                    (m2 / *n as f64).sqrt()
                }
            })
            .collect();
        let mean = self
            .mean
            .iter()
            .zip(&self.n)
            .map(|(m, n)| if *n == 0 { f64::NAN } else { *m })
            .collect();
        FeatureStats {
            column: self.column,
            dim: self.dim,
            layout: self.layout,
            vectors: self.vectors,
            mean,
            std,
        }
    }
}

/// `(D, layout)` if `t` is a feature column type.
pub fn feature_type(t: &ArrowType) -> Option<(usize, &'static str)> {
    let fsl = |t: &ArrowType| match t {
        ArrowType::FixedSizeList(f, d) if *f.data_type() == ArrowType::Float32 && *d > 0 => {
            Some(*d as usize)
        }
        _ => None,
    };
    match t {
        ArrowType::List(f) | ArrowType::LargeList(f) => fsl(f.data_type()).map(|d| (d, "frames")),
        other => fsl(other).map(|d| (d, "vector")),
    }
}

/// Rows per batch when streaming the feature columns.
const FEATURE_BATCH_ROWS: usize = 256;

fn feature_stats(parts: &[PathBuf]) -> Result<Vec<FeatureStats>> {
    let mut accs: Vec<Accumulator> = Vec::new();
    for part in parts {
        accumulate_file(part, &mut accs)?;
    }
    Ok(accs.into_iter().map(Accumulator::finish).collect())
}

fn accumulate_file(part: &Path, accs: &mut Vec<Accumulator>) -> Result<()> {
    let perr = |e: &dyn std::fmt::Display| AnalysisError::Parquet {
        path: part.to_path_buf(),
        message: e.to_string(),
    };
    let file = File::open(part).map_err(AnalysisError::io("open", part))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| perr(&e))?;
    let schema = builder.schema().clone();
    let mut roots = Vec::new();
    let mut cols = Vec::new();
    for (i, f) in schema.fields().iter().enumerate() {
        let Some((dim, layout)) = feature_type(f.data_type()) else {
            continue;
        };
        let idx = match accs.iter().position(|a| a.column == *f.name()) {
            Some(idx) => {
                if accs[idx].dim != dim || accs[idx].layout != layout {
                    return Err(perr(&format!(
                        "feature column `{}` has {dim} dimensions ({layout}) here but {} ({}) in an earlier part file",
                        f.name(),
                        accs[idx].dim,
                        accs[idx].layout
                    )));
                }
                idx
            }
            None => {
                accs.push(Accumulator::new(f.name(), dim, layout));
                accs.len() - 1
            }
        };
        roots.push(i);
        cols.push((f.name().clone(), idx));
    }
    if roots.is_empty() {
        return Ok(());
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(FEATURE_BATCH_ROWS)
        .build()
        .map_err(|e| perr(&e))?;
    for batch in reader {
        let batch = batch.map_err(|e| perr(&e))?;
        for (name, idx) in &cols {
            let Some(array) = batch.column_by_name(name) else {
                continue;
            };
            let acc = &mut accs[*idx];
            let bad = || perr(&format!("feature column `{name}` has an unexpected type"));
            match array.data_type() {
                ArrowType::List(_) => {
                    let list = array.as_list::<i32>();
                    let fsl = list.values().as_fixed_size_list_opt().ok_or_else(bad)?;
                    let values = fsl.values().as_primitive_opt().ok_or_else(bad)?;
                    let offsets = list.value_offsets();
                    for r in 0..list.len() {
                        if list.is_valid(r) {
                            let (a, b) = (offsets[r] as usize, offsets[r + 1] as usize);
                            acc.add(fsl, values, a, b - a);
                        }
                    }
                }
                ArrowType::LargeList(_) => {
                    let list = array.as_list::<i64>();
                    let fsl = list.values().as_fixed_size_list_opt().ok_or_else(bad)?;
                    let values = fsl.values().as_primitive_opt().ok_or_else(bad)?;
                    let offsets = list.value_offsets();
                    for r in 0..list.len() {
                        if list.is_valid(r) {
                            let (a, b) = (offsets[r] as usize, offsets[r + 1] as usize);
                            acc.add(fsl, values, a, b - a);
                        }
                    }
                }
                ArrowType::FixedSizeList(_, _) => {
                    let fsl = array.as_fixed_size_list();
                    let values = fsl.values().as_primitive_opt().ok_or_else(bad)?;
                    acc.add(fsl, values, 0, fsl.len());
                }
                _ => return Err(bad()),
            }
        }
    }
    Ok(())
}

fn fmt_value(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "(null)".to_string())
}

fn fmt_s(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3} s")
    } else {
        "-".to_string()
    }
}

/// The statistics as text.
pub fn render(s: &Stats) -> String {
    let mut o = String::new();
    o.push_str(&format!("table: {}\n", s.path));
    o.push_str(&format!(
        "  {} part files{}\n",
        s.part_files,
        if s.partition_columns.is_empty() {
            String::new()
        } else {
            format!("; partition columns: {}", s.partition_columns.join(", "))
        }
    ));
    match s.clips {
        Some(c) => o.push_str(&format!(
            "  {}, {}\n",
            count(s.rows, "row"),
            count(c, "clip")
        )),
        None => o.push_str(&format!("  {}\n", count(s.rows, "row"))),
    }
    if s.part_files == 0 {
        o.push_str("  (no part files: every input file was quarantined?)\n");
    }
    for b in &s.balance {
        o.push_str(&format!(
            "\nrows by {} ({} values):\n",
            b.column,
            b.classes.len()
        ));
        let w = b
            .classes
            .iter()
            .map(|c| fmt_value(&c.value).chars().count())
            .max()
            .unwrap_or(0);
        for c in &b.classes {
            o.push_str(&format!(
                "  {:<w$}  {:>8}  {:>6.2}%\n",
                fmt_value(&c.value),
                c.rows,
                100.0 * c.share
            ));
        }
    }
    match &s.duration {
        Some(d) => {
            o.push_str(&format!(
                "\nduration ({} {}s, from {}):\n",
                d.count, d.unit, d.source
            ));
            o.push_str(&format!(
                "  min {}  p25 {}  median {}  p75 {}  max {}\n  total {:.4} h ({:.1} s)\n",
                fmt_s(d.min),
                fmt_s(d.p25),
                fmt_s(d.median),
                fmt_s(d.p75),
                fmt_s(d.max),
                d.total_hours,
                d.total_s
            ));
        }
        None if s.part_files > 0 => {
            o.push_str("\nduration: no duration_s nor start_s/end_s columns\n");
        }
        None => {}
    }
    for f in &s.features {
        o.push_str(&format!(
            "\nfeature {}: {} dims over {} {}; mean and std per dimension:\n",
            f.column,
            f.dim,
            f.vectors,
            if f.layout == "frames" {
                "frames"
            } else {
                "rows"
            }
        ));
        for (k, (m, sd)) in f.mean.iter().zip(&f.std).enumerate() {
            o.push_str(&format!("  [{k:>3}]  {m:>14.6}  {sd:>14.6}\n"));
        }
    }
    o.push_str(&format!(
        "\nquarantine: {} in {}\n",
        count(s.quarantine.rows, "row"),
        count(s.quarantine.files.len(), "file")
    ));
    for (title, list) in [
        ("by reason", &s.quarantine.by_reason),
        ("by stage", &s.quarantine.by_stage),
    ] {
        if !list.is_empty() {
            o.push_str(&format!("  {title}:\n"));
            for c in list {
                o.push_str(&format!("    {:<20} {:>8}\n", fmt_value(&c.value), c.rows));
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::datatypes::Field;

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 0.25), 1.75);
        assert_eq!(quantile(&v, 0.5), 2.5);
        assert_eq!(quantile(&v, 1.0), 4.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn feature_types() {
        let fsl = ArrowType::FixedSizeList(
            Arc::new(Field::new_list_field(ArrowType::Float32, false)),
            3,
        );
        assert_eq!(feature_type(&fsl), Some((3, "vector")));
        let list = ArrowType::List(Arc::new(Field::new_list_field(fsl, false)));
        assert_eq!(feature_type(&list), Some((3, "frames")));
        let plain = ArrowType::List(Arc::new(Field::new_list_field(ArrowType::Float32, false)));
        assert_eq!(feature_type(&plain), None);
    }

    #[test]
    fn welford_matches_two_pass() {
        let values = Float32Array::from(vec![1.0, 10.0, 2.0, 20.0, 4.0, 40.0]);
        let fsl = FixedSizeListArray::new(
            Arc::new(Field::new_list_field(ArrowType::Float32, false)),
            2,
            Arc::new(values.clone()),
            None,
        );
        let mut acc = Accumulator::new("x", 2, "vector");
        acc.add(&fsl, &values, 0, 3);
        let f = acc.finish();
        let mean0 = 7.0 / 3.0;
        let var0 =
            ((1.0f64 - mean0).powi(2) + (2.0f64 - mean0).powi(2) + (4.0f64 - mean0).powi(2)) / 3.0;
        assert!((f.mean[0] - mean0).abs() < 1e-12);
        assert!((f.std[0] - var0.sqrt()).abs() < 1e-12);
        assert!((f.mean[1] - 70.0 / 3.0).abs() < 1e-12);
        assert_eq!(f.vectors, 3);
    }
}
