//! The `train` sink's charts (plotters, embedded font): `confusion.png` (counts,
//! shaded by row share = recall, true class down, predicted across) and
//! `curves.png` (loss and accuracy per epoch, train and validation, best epoch
//! marked).

use std::path::Path;

use plotters::prelude::*;

use super::metrics::Report;
use super::training::Epoch;
use crate::charts::{FAMILY, fonts};

/// File name of the confusion matrix chart.
pub const CONFUSION_PNG: &str = "confusion.png";
/// File name of the learning curves chart.
pub const CURVES_PNG: &str = "curves.png";

const BLUE: RGBColor = RGBColor(52, 101, 164);
const ORANGE: RGBColor = RGBColor(230, 120, 30);

fn shade(f: f64) -> RGBColor {
    let f = f.clamp(0.0, 1.0);
    let mix = |hi: u8, lo: u8| (hi as f64 - (hi as f64 - lo as f64) * f).round() as u8;
    RGBColor(mix(255, BLUE.0), mix(255, BLUE.1), mix(255, BLUE.2))
}

/// Draw the confusion matrix of `report` with `title` into `path`.
pub fn confusion(report: &Report, title: &str, path: &Path) -> Result<(), String> {
    fonts();
    let labels = &report.labels;
    let k = labels.len().max(1);
    let side = (140 + 90 * k as u32).clamp(600, 1400);
    let root = BitMapBackend::new(path, (side + 120, side)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{title} — accuracy {:.3}, UAR {:.3}",
                report.accuracy, report.uar
            ),
            (FAMILY, 24),
        )
        .margin(20)
        .x_label_area_size(70)
        .y_label_area_size(120)
        .build_cartesian_2d((0..k - 1).into_segmented(), (0..k - 1).into_segmented())
        .map_err(|e| e.to_string())?;
    let xfmt = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(j) => labels.get(*j).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    // Row 0 at the top: y segment j shows true class k − 1 − j.
    let yfmt = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(j) if *j < k => labels.get(k - 1 - j).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(k)
        .y_labels(k)
        .x_label_formatter(&xfmt)
        .y_label_formatter(&yfmt)
        .x_label_style((FAMILY, 16))
        .y_label_style((FAMILY, 16))
        .x_desc("predicted")
        .y_desc("true")
        .axis_desc_style((FAMILY, 20))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, row) in report.confusion.iter().enumerate() {
        let total: u64 = row.iter().sum();
        for (j, &c) in row.iter().enumerate() {
            let f = if total > 0 {
                c as f64 / total as f64
            } else {
                0.0
            };
            let y = k - 1 - i;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [
                        (SegmentValue::Exact(j), SegmentValue::Exact(y)),
                        (SegmentValue::Exact(j + 1), SegmentValue::Exact(y + 1)),
                    ],
                    shade(f).filled(),
                )))
                .map_err(|e| e.to_string())?;
            let color = if f > 0.55 { WHITE } else { BLACK };
            let style = TextStyle::from((FAMILY, 18).into_font()).color(&color).pos(
                plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Center,
                ),
            );
            chart
                .draw_series(std::iter::once(Text::new(
                    c.to_string(),
                    (SegmentValue::CenterOf(j), SegmentValue::CenterOf(y)),
                    style,
                )))
                .map_err(|e| e.to_string())?;
        }
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

/// Draw loss and accuracy per epoch (train solid, validation dashed-orange) into
/// `path`; `best_epoch` gets a vertical line.
pub fn curves(
    history: &[Epoch],
    best_epoch: usize,
    title: &str,
    path: &Path,
) -> Result<(), String> {
    fonts();
    let root = BitMapBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = root
        .titled(title, (FAMILY, 24))
        .map_err(|e| e.to_string())?;
    let (left, right) = root.split_horizontally(700);
    // Epochs are whole numbers: an integer axis gives integer ticks.
    let last = history
        .iter()
        .map(|e| e.epoch as i32)
        .max()
        .unwrap_or(1)
        .max(2);
    type Pick = fn(&Epoch) -> Option<f64>;
    let panels: [(&DrawingArea<_, _>, &str, Pick, Pick); 2] = [
        (&left, "loss", |e| Some(e.train_loss), |e| e.val_loss),
        (&right, "accuracy", |e| Some(e.train_acc), |e| e.val_acc),
    ];
    for (area, name, train, valid) in panels {
        let values: Vec<f64> = history
            .iter()
            .flat_map(|e| [train(e), valid(e)])
            .flatten()
            .filter(|v| v.is_finite())
            .collect();
        let (lo, hi) = if name == "accuracy" {
            (0.0, 1.0)
        } else {
            let hi = values.iter().cloned().fold(0.0f64, f64::max);
            (0.0, if hi > 0.0 { hi * 1.05 } else { 1.0 })
        };
        let mut chart = ChartBuilder::on(area)
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(1i32..last, lo..hi)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels((last as usize).min(12))
            .x_label_formatter(&|x| format!("{x}"))
            .x_desc("epoch")
            .y_desc(name)
            .x_label_style((FAMILY, 14))
            .y_label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 18))
            .draw()
            .map_err(|e| e.to_string())?;
        let series = |pick: Pick| -> Vec<(i32, f64)> {
            history
                .iter()
                .filter_map(|e| {
                    pick(e)
                        .filter(|v| v.is_finite())
                        .map(|v| (e.epoch as i32, v))
                })
                .collect()
        };
        chart
            .draw_series(LineSeries::new(series(train), BLUE.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(format!("train {name}"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        let v = series(valid);
        if !v.is_empty() {
            chart
                .draw_series(DashedLineSeries::new(v, 8, 5, ORANGE.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(format!("validation {name}"))
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], ORANGE.stroke_width(2))
                });
        }
        if best_epoch > 0 {
            let b = best_epoch as i32;
            let marker = RED.mix(0.8);
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(b, lo), (b, hi)],
                    6,
                    4,
                    marker.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(format!("kept epoch {best_epoch}"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], marker.stroke_width(2))
                });
            // The kept epoch's values, ringed on each curve.
            let at_best: Vec<(i32, f64)> = history
                .iter()
                .filter(|e| e.epoch == best_epoch)
                .flat_map(|e| [train(e), valid(e)])
                .flatten()
                .filter(|v| v.is_finite())
                .map(|v| (b, v))
                .collect();
            chart
                .draw_series(
                    at_best
                        .into_iter()
                        .map(|p| Circle::new(p, 6, marker.stroke_width(2))),
                )
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .label_font((FAMILY, 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .position(if name == "loss" {
                SeriesLabelPosition::UpperRight
            } else {
                SeriesLabelPosition::LowerRight
            })
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}
