//! Resampling quality against soxr HQ (librosa's default), through the real CLI
//! path. Runs scripts/resample_quality.py; skips when python3 lacks numpy, soxr,
//! soundfile or pyarrow (and fails instead under `CI=true`: `.ci/run` installs
//! them). Figures are documented in docs/resampling.md.

mod common;

use std::path::Path;
use std::process::Command;

fn measure(test: &str, quality: &str) -> Option<serde_json::Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = match Command::new("python3")
        .arg(root.join("scripts/resample_quality.py"))
        .arg(common::sermo_bin())
        .args(["--quality", quality])
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            common::skip_unless_ci(test, &format!("no python3 ({e})"));
            return None;
        }
    };
    if out.status.code() == Some(77) {
        common::skip_unless_ci(test, String::from_utf8_lossy(&out.stderr).trim());
        return None;
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn high_quality_matches_soxr_hq() {
    let Some(v) = measure("high_quality_matches_soxr_hq", "high") else {
        return;
    };
    eprintln!("{v}");
    assert_eq!(v["lengths_equal"], true);
    assert!(v["sweep_diff_db"].as_f64().unwrap() < -110.0, "{v}");
    assert!(v["passband_ripple_db"].as_f64().unwrap() < 0.01, "{v}");
    for (f, db) in v["alias_db"].as_object().unwrap() {
        assert!(db.as_f64().unwrap() < -120.0, "alias at {f} Hz: {db}");
    }
    // Real speech (RAVDESS, 48 kHz): the issue asks for < -60 dB; the filter is
    // designed after soxr HQ's response and measures about -95 to -104 dB.
    for d in v["speech_diff_db"].as_array().unwrap() {
        assert!(d.as_f64().unwrap() < -90.0, "{v}");
    }
}

#[test]
fn fast_quality_is_flat_to_6k_and_alias_free() {
    let Some(v) = measure("fast_quality_is_flat_to_6k_and_alias_free", "fast") else {
        return;
    };
    eprintln!("{v}");
    assert_eq!(v["lengths_equal"], true);
    assert!(v["sweep_diff_db"].as_f64().unwrap() < -55.0, "{v}");
    assert!(
        v["passband_ripple_db_to_6k"].as_f64().unwrap() < 0.01,
        "{v}"
    );
    assert!(v["passband_ripple_db"].as_f64().unwrap() < 0.1, "{v}");
    for (f, db) in v["alias_db"].as_object().unwrap() {
        assert!(db.as_f64().unwrap() < -120.0, "alias at {f} Hz: {db}");
    }
}
