//! The timeline picture (plotters, the embedded font): per clip, the class
//! probabilities over time as a stacked area (each class its colour, the same
//! palette as the `sermo serve` page), silence shaded grey above the speech
//! share, and a strip on top with the decided label of each time bin (a class,
//! `silence` or `uncertain`); time axis in mm:ss, one legend for every panel.

use std::path::Path;

use plotters::prelude::*;

use super::{SILENCE, Track, UNCERTAIN, mm_ss};
use crate::charts::{FAMILY, fonts};

/// The class colours, in class order (the serve page's palette).
pub const PALETTE: [RGBColor; 11] = [
    RGBColor(0x34, 0x65, 0xa4),
    RGBColor(0xcc, 0x00, 0x00),
    RGBColor(0x73, 0xd2, 0x16),
    RGBColor(0xf5, 0x79, 0x00),
    RGBColor(0x75, 0x50, 0x7b),
    RGBColor(0xc4, 0xa0, 0x00),
    RGBColor(0x06, 0x98, 0x9a),
    RGBColor(0x55, 0x57, 0x53),
    RGBColor(0x8f, 0x59, 0x02),
    RGBColor(0xa4, 0x00, 0x00),
    RGBColor(0x4e, 0x9a, 0x06),
];
/// `silence`: light grey.
pub const SILENCE_COLOR: RGBColor = RGBColor(0xdd, 0xdd, 0xdd);
/// `uncertain`: mid grey.
pub const UNCERTAIN_COLOR: RGBColor = RGBColor(0x88, 0x8a, 0x85);

/// Panels drawn in one picture; further clips are left out (and said).
pub const MAX_PANELS: usize = 12;

fn class_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn label_color(track: &Track, label: &str) -> RGBColor {
    match label {
        SILENCE => SILENCE_COLOR,
        UNCERTAIN => UNCERTAIN_COLOR,
        l => class_color(track.classes.iter().position(|c| c == l).unwrap_or(0)),
    }
}

/// Draw `tracks` (clip name, track), one panel each, into the PNG at `path`.
pub fn draw(tracks: &[(String, &Track)], path: &Path) -> Result<(), String> {
    fonts();
    let n = tracks.len().clamp(1, MAX_PANELS);
    let panel_h = 280u32;
    let legend_h = 76u32;
    let root = BitMapBackend::new(path, (1400, panel_h * n as u32 + legend_h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (panels, legend) = root.split_vertically(panel_h * n as u32);
    let areas = panels.split_evenly((n, 1));
    for ((name, track), area) in tracks.iter().zip(areas.iter()) {
        panel(name, track, area)?;
    }
    if let Some((_, t)) = tracks.first() {
        draw_legend(t, &legend)?;
    }
    root.present()
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

fn panel<DB: DrawingBackend>(
    name: &str,
    track: &Track,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let end = track.end_s.max(track.bin_s);
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{name} — {} of audio", mm_ss(track.end_s)),
            (FAMILY, 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..end, 0f64..1.16)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_labels(3)
        .y_label_formatter(&|y| {
            if *y <= 1.0 + 1e-9 {
                format!("{y:.1}")
            } else {
                String::new()
            }
        })
        .x_labels(10)
        .x_label_formatter(&|x| mm_ss(*x))
        .x_desc("time (mm:ss)")
        .y_desc("probability")
        .x_label_style((FAMILY, 13))
        .y_label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    let w = track.bin_s;
    let mut rects = Vec::new();
    for (i, bin) in track.bins.iter().enumerate() {
        let covered = bin.covered_s();
        if covered <= 0.0 {
            continue;
        }
        let (x0, x1) = (i as f64 * w, ((i + 1) as f64 * w).min(end));
        let k = track.classes.len();
        let silence = bin.label_s[k];
        let scored = covered - silence;
        // Class probabilities stacked up to the scored share of the bin.
        let mut y = 0.0f64;
        if scored > 0.0 {
            let share = f64::from(scored / covered);
            let mass: f32 = bin.prob_s.iter().sum();
            if mass > 0.0 {
                for (c, p) in bin.prob_s.iter().enumerate() {
                    let h = share * f64::from(p / mass);
                    if h > 0.0 {
                        rects.push(Rectangle::new(
                            [(x0, y), (x1, y + h)],
                            class_color(c).filled(),
                        ));
                    }
                    y += h;
                }
            }
        }
        if silence > 0.0 {
            rects.push(Rectangle::new([(x0, y), (x1, 1.0)], SILENCE_COLOR.filled()));
        }
        if let Some(l) = track.decided(i) {
            rects.push(Rectangle::new(
                [(x0, 1.04), (x1, 1.15)],
                label_color(track, l).filled(),
            ));
        }
    }
    chart.draw_series(rects).map_err(err)?;
    Ok(())
}

fn draw_legend<DB: DrawingBackend>(
    track: &Track,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let mut items: Vec<(String, RGBColor)> = track
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), class_color(i)))
        .collect();
    items.push((SILENCE.into(), SILENCE_COLOR));
    items.push((UNCERTAIN.into(), UNCERTAIN_COLOR));
    let style = TextStyle::from((FAMILY, 16).into_font());
    let mut x = 90i32;
    for (name, color) in items {
        area.draw(&Rectangle::new([(x, 20), (x + 18, 38)], color.filled()))
            .map_err(err)?;
        area.draw(&Rectangle::new([(x, 20), (x + 18, 38)], BLACK.mix(0.4)))
            .map_err(err)?;
        area.draw(&Text::new(name.clone(), (x + 24, 20), style.clone()))
            .map_err(err)?;
        x += 24 + 11 * name.chars().count() as i32 + 30;
    }
    area.draw(&Text::new(
        "area: class probabilities (grey: silence); top strip: the label of each stretch",
        (90, 48),
        TextStyle::from((FAMILY, 13).into_font()).color(&BLACK.mix(0.6)),
    ))
    .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_picture_is_drawn_for_short_and_long_tracks() {
        let dir = std::env::temp_dir().join(format!("sermo-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let classes = vec!["angry".to_string(), "neutral".to_string()];
        let mut short = Track::new(&classes, 0.5);
        short.push(0.0, 3.0, "angry", &[0.8, 0.2]);
        short.push(3.0, 6.0, SILENCE, &[]);
        short.push(6.0, 9.0, UNCERTAIN, &[0.5, 0.5]);
        let mut long = Track::new(&classes, 0.5);
        for i in 0..12_000 {
            let t = i as f64 * 3.0;
            long.push(t, t + 3.0, "neutral", &[0.1, 0.9]);
        }
        let path = dir.join("t.png");
        draw(&[("a.wav".into(), &short), ("b.wav".into(), &long)], &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
