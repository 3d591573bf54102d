//! sermo's feature DSP against librosa 0.11 reference fixtures
//! (tests/fixtures/features, made by scripts/make_feature_fixtures.py).
//! Bound for every feature and case: max |sermo − librosa| ≤ 1e-3 · max |librosa|.

use std::path::Path;

use serde_json::Value;
use sermo::dsp::mel::MelBank;
use sermo::dsp::spectral::{
    apply_matrix, dct_ortho_matrix, delta, power_to_db, rms, zero_crossing_rate,
};
use sermo::dsp::stft::{PadMode, Stft};

struct Case {
    name: String,
    v: Value,
}

fn cases() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/features");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).expect("fixtures dir") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "json") {
            let v: Value =
                serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("json");
            out.push(Case {
                name: p.file_stem().unwrap().to_string_lossy().to_string(),
                v,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        out.len() >= 7,
        "expected the fixture cases, found {}",
        out.len()
    );
    out
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN) as f32)
        .collect()
}

/// librosa output (dims × frames, row-major) → time-major frames × dims.
fn reference(case: &Case, name: &str) -> Option<(usize, usize, Vec<f32>)> {
    let o = case.v["outputs"].get(name)?;
    let shape: Vec<usize> = o["shape"]
        .as_array()?
        .iter()
        .map(|x| x.as_u64().unwrap_or(0) as usize)
        .collect();
    let data = f32s(&o["data"]);
    let (dims, frames) = (shape[0], shape.get(1).copied().unwrap_or(1));
    let mut t = vec![0.0; data.len()];
    for d in 0..dims {
        for f in 0..frames {
            t[f * dims + d] = data[d * frames + f];
        }
    }
    Some((frames, dims, t))
}

fn check(case: &Case, feature: &str, got: &[f32], frames: usize, dims: usize) {
    let Some((rf, rd, want)) = reference(case, feature) else {
        return;
    };
    assert_eq!((frames, dims), (rf, rd), "{}: {feature} shape", case.name);
    let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let err = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let bound = 1e-3 * scale.max(1e-12);
    eprintln!(
        "{:<22} {feature:<12} max|diff| {err:.3e}  bound {bound:.3e}",
        case.name
    );
    assert!(
        err <= bound,
        "{}: {feature}: max |diff| {err} > {bound}",
        case.name
    );
}

struct Params {
    sr: u32,
    n_fft: usize,
    hop: usize,
    win: Option<usize>,
    center: bool,
    pad: PadMode,
    n_mels: usize,
    fmin: f64,
    fmax: Option<f64>,
    htk: bool,
    slaney: bool,
    n_mfcc: usize,
    lifter: f32,
    zcr_len: usize,
    rms_len: usize,
}

fn params(c: &Case) -> Params {
    let p = &c.v["params"];
    let u = |k: &str| p[k].as_u64().unwrap_or_else(|| panic!("{}: {k}", c.name)) as usize;
    Params {
        sr: c.v["sr"].as_u64().unwrap() as u32,
        n_fft: u("n_fft"),
        hop: u("hop_length"),
        win: p["win_length"].as_u64().map(|x| x as usize),
        center: p["center"].as_bool().unwrap(),
        pad: match p["pad_mode"].as_str().unwrap_or("constant") {
            "reflect" => PadMode::Reflect,
            "edge" => PadMode::Edge,
            _ => PadMode::Constant,
        },
        n_mels: u("n_mels"),
        fmin: p["fmin"].as_f64().unwrap_or(0.0),
        fmax: p["fmax"].as_f64(),
        htk: p["htk"].as_bool().unwrap_or(false),
        slaney: p["norm"].as_str() == Some("slaney"),
        n_mfcc: u("n_mfcc"),
        lifter: p["lifter"].as_f64().unwrap_or(0.0) as f32,
        zcr_len: u("zcr_frame_length"),
        rms_len: u("rms_frame_length"),
    }
}

#[test]
fn features_match_librosa() {
    for c in cases() {
        let p = params(&c);
        let y = f32s(&c.v["signal"]);
        let stft = Stft::new(p.n_fft, p.hop, p.win, p.center, p.pad);
        let bins = stft.n_bins();
        let mut spec = Vec::new();
        stft.power(&y, 2.0, &mut spec);
        let frames = spec.len() / bins;
        check(&c, "spectrogram", &spec, frames, bins);

        let bank = MelBank::new(p.sr, p.n_fft, p.n_mels, p.fmin, p.fmax, p.htk, p.slaney);
        let dense: Vec<f32> = bank.dense().into_iter().flatten().collect();
        if let Some((_, _, want)) = reference(&c, "mel_filters") {
            // mel_filters is n_mels x n_bins in librosa orientation: compare untransposed.
            let raw = f32s(&c.v["outputs"]["mel_filters"]["data"]);
            let scale = raw.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            let err = dense
                .iter()
                .zip(&raw)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            eprintln!("{:<22} mel_filters  max|diff| {err:.3e}", c.name);
            assert!(
                err <= 1e-3 * scale && want.len() == dense.len(),
                "{}: mel filters {err}",
                c.name
            );
        }
        let mut mel = Vec::new();
        for f in spec.chunks_exact(bins) {
            bank.apply(f, &mut mel);
        }
        check(&c, "mel", &mel, frames, p.n_mels);

        let mut log_mel = mel.clone();
        power_to_db(&mut log_mel, 1.0, 1e-10, Some(80.0));
        check(&c, "log_mel", &log_mel, frames, p.n_mels);

        let dct = dct_ortho_matrix(p.n_mels, p.n_mfcc, p.lifter);
        let mut mfcc = Vec::new();
        apply_matrix(&log_mel, p.n_mels, &dct, &mut mfcc);
        check(&c, "mfcc", &mfcc, frames, p.n_mfcc);

        if let Some(d1) = delta(&mfcc, p.n_mfcc, 9, 1) {
            check(&c, "mfcc_delta", &d1, frames, p.n_mfcc);
        }
        if let Some(d2) = delta(&mfcc, p.n_mfcc, 9, 2) {
            check(&c, "mfcc_delta2", &d2, frames, p.n_mfcc);
        }

        let z = zero_crossing_rate(&y, p.zcr_len, p.hop, p.center);
        check(&c, "zcr", &z, z.len(), 1);
        let r = rms(&y, p.rms_len, p.hop, p.center);
        check(&c, "rms", &r, r.len(), 1);
    }
}

/// The `features` stage's own code path (one fused STFT pass, mel banks applied per
/// frame, transposed DCT) against the same librosa fixtures.
#[test]
fn features_stage_path_matches_librosa() {
    use sermo::frontend::{Extractor, FeaturesConfig};
    for c in cases() {
        let p = params(&c);
        let y = f32s(&c.v["signal"]);
        let pad = match p.pad {
            PadMode::Reflect => "reflect",
            PadMode::Edge => "edge",
            PadMode::Constant => "constant",
        };
        let win = p
            .win
            .map(|w| format!("win_length = {w}\n"))
            .unwrap_or_default();
        let fmax = p
            .fmax
            .map(|f| format!("fmax = {f:?}\n"))
            .unwrap_or_default();
        let norm = if p.slaney { "slaney" } else { "none" };
        let mel = format!(
            "n_mels = {}\nfmin = {:?}\n{fmax}htk = {}\nnorm = \"{norm}\"\n",
            p.n_mels, p.fmin, p.htk
        );
        let text = format!(
            "n_fft = {}\nhop_length = {}\n{win}center = {}\npad_mode = \"{pad}\"\n\
             [spectrogram]\n[mel]\n{mel}[log_mel]\n{mel}[mfcc]\nn_mfcc = {}\nlifter = {:?}\n{mel}\
             [zcr]\nframe_length = {}\n[rms]\nframe_length = {}\n",
            p.n_fft, p.hop, p.center, p.n_mfcc, p.lifter, p.zcr_len, p.rms_len
        );
        let cfg: FeaturesConfig =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", c.name));
        let out = Extractor::new(cfg).run(p.sr, &y).expect("extract");
        let mut seen = 0;
        for (name, dims, data) in &out {
            let frames = data.len() / dims.max(&1);
            if reference(&c, name).is_some() {
                check(&c, name, data, frames, *dims);
                seen += 1;
            }
        }
        assert_eq!(seen, 6, "{}: every feature has a reference", c.name);
    }
}
