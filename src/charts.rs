//! Shared chart setup for plotters: DejaVu Sans embedded in the binary
//! (`assets/fonts/`, licence beside it), so charts never depend on the fonts of
//! the machine. Used by `sermo stats --plot` and the `train` sink's PNGs.

use std::sync::Once;

use plotters::style::{FontStyle, register_font};

/// DejaVu Sans (licence: `assets/fonts/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
/// Font family name every chart uses.
pub const FAMILY: &str = "sans-serif";

/// Register the embedded font (once per process).
pub fn fonts() {
    static ONCE: Once = Once::new();
    // The font is embedded and known to parse; an error would only leave the
    // charts without text, which the chart drawing reports.
    ONCE.call_once(|| {
        let _ = register_font(FAMILY, FontStyle::Normal, FONT);
    });
}
