//! PNG charts of `sermo stats --plot DIR`: `class_balance.png` (rows per label) and
//! `duration_hist.png` (histogram of the durations), drawn with plotters' bitmap
//! backend. Text uses DejaVu Sans embedded in the binary (`assets/fonts/`), so
//! nothing depends on the fonts of the machine.

use std::path::Path;

use plotters::prelude::*;

use crate::charts::{FAMILY, fonts};
use crate::error::count;

use super::stats::{Balance, Stats};
use super::{AnalysisError, Result};

/// File name of the class-balance chart.
pub const CLASS_BALANCE_PNG: &str = "class_balance.png";
/// File name of the duration histogram.
pub const DURATION_HIST_PNG: &str = "duration_hist.png";

const SIZE: (u32, u32) = (1000, 620);
const BAR: RGBColor = RGBColor(52, 101, 164);

/// Write both charts into `dir` (created if needed).
pub fn write_charts(stats: &Stats, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(AnalysisError::io("create directory", dir))?;
    fonts();
    let balance = stats
        .balance
        .iter()
        .find(|b| b.column == "label")
        .or_else(|| stats.balance.first());
    let path = dir.join(CLASS_BALANCE_PNG);
    class_balance(stats, balance, &path).map_err(|message| AnalysisError::Plot {
        path: path.clone(),
        message,
    })?;
    let path = dir.join(DURATION_HIST_PNG);
    duration_hist(stats, &path).map_err(|message| AnalysisError::Plot {
        path: path.clone(),
        message,
    })?;
    Ok(())
}

fn short_name(stats: &Stats) -> String {
    Path::new(&stats.path)
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| stats.path.clone())
}

fn class_balance(
    stats: &Stats,
    balance: Option<&Balance>,
    path: &Path,
) -> std::result::Result<(), String> {
    let (column, bars): (&str, Vec<(String, u64)>) = match balance {
        Some(b) => (
            b.column.as_str(),
            b.classes
                .iter()
                .map(|c| (c.value.clone().unwrap_or_else(|| "(null)".into()), c.rows))
                .collect(),
        ),
        None => ("table", vec![("(all rows)".to_string(), stats.rows)]),
    };
    let n = bars.len().max(1);
    let (slots, first) = if n == 1 { (3, 1) } else { (n, 0) };
    let top = bars.iter().map(|b| b.1).max().unwrap_or(0);
    let ymax = top + (top / 10).max(1);
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let label_size = if n > 12 { 12 } else { 16 };
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Class balance by {column}: {} ({})",
                short_name(stats),
                count(stats.rows, "row")
            ),
            (FAMILY, 26),
        )
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(80)
        // A discrete `0..k` axis has the k + 1 values 0..=k, one segment each; a
        // single bar goes in the middle of three segments (`0..0` has no width).
        .build_cartesian_2d((0..slots - 1).into_segmented(), 0u64..ymax)
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    let fmt = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(j) if *j >= first => {
            names.get(j - first).cloned().unwrap_or_default()
        }
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(slots)
        .x_label_formatter(&fmt)
        .x_label_style((FAMILY, label_size))
        .y_label_style((FAMILY, 16))
        .x_desc(column)
        .y_desc("rows")
        .axis_desc_style((FAMILY, 20))
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, rows))| {
            let j = first + i;
            let mut r = Rectangle::new(
                [
                    (SegmentValue::Exact(j), 0),
                    (SegmentValue::Exact(j + 1), *rows),
                ],
                BAR.filled(),
            );
            r.set_margin(0, 0, 8, 8);
            r
        }))
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

/// Bin edges and counts of a histogram of sorted `values` (`bins` equal bins
/// between the smallest and the largest value).
pub fn histogram(values: &[f64], bins: usize) -> (f64, f64, Vec<u64>) {
    let (Some(&lo), Some(&hi)) = (values.first(), values.last()) else {
        return (0.0, 1.0, vec![0; bins.max(1)]);
    };
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5, hi + 0.5)
    };
    let bins = bins.max(1);
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0u64; bins];
    for v in values {
        let b = (((v - lo) / width) as usize).min(bins - 1);
        counts[b] += 1;
    }
    (lo, hi, counts)
}

fn duration_hist(stats: &Stats, path: &Path) -> std::result::Result<(), String> {
    let (values, unit): (&[f64], &str) = match &stats.duration {
        Some(d) => (&d.values, d.unit),
        None => (&[], "row"),
    };
    let bins = ((values.len() as f64).sqrt().ceil() as usize).clamp(1, 40);
    let (lo, hi, counts) = histogram(values, bins);
    let width = (hi - lo) / counts.len() as f64;
    let top = counts.iter().copied().max().unwrap_or(0);
    let ymax = top + (top / 10).max(1);
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let title = if values.is_empty() {
        format!("Durations: {} (no duration columns)", short_name(stats))
    } else {
        format!(
            "Durations: {} ({} {unit}s, {:.3} h)",
            short_name(stats),
            values.len(),
            values.iter().sum::<f64>() / 3600.0
        )
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 26))
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d(lo..hi, 0u64..ymax)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("duration (s)")
        .y_desc(format!("{unit}s"))
        .x_label_style((FAMILY, 16))
        .y_label_style((FAMILY, 16))
        .axis_desc_style((FAMILY, 20))
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(counts.iter().enumerate().map(|(i, c)| {
            let x0 = lo + i as f64 * width;
            let mut r = Rectangle::new([(x0, 0), (x0 + width, *c)], BAR.filled());
            r.set_margin(0, 0, 1, 1);
            r
        }))
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bins_cover_the_range() {
        let (lo, hi, c) = histogram(&[1.0, 1.5, 2.0, 3.0], 2);
        assert_eq!((lo, hi), (1.0, 3.0));
        assert_eq!(c, vec![2, 2]);
        let (lo, hi, c) = histogram(&[2.0, 2.0], 3);
        assert_eq!((lo, hi), (1.5, 2.5));
        assert_eq!(c.iter().sum::<u64>(), 2);
        assert_eq!(histogram(&[], 4).2, vec![0; 4]);
    }
}
