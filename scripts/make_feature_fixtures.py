"""Make tests/fixtures/features/*.json: librosa reference outputs for sermo's feature DSP.

Run from anywhere:  python3 scripts/make_feature_fixtures.py
Needs: librosa 0.11.0 (checked), numpy, soundfile (plus soxr, pulled in by librosa).

Each case writes one JSON file `<case>.json`:

    {"case": ..., "librosa_version": "0.11.0", "sr": ...,
     "params": {n_fft, hop_length, win_length, center, pad_mode, n_mels, fmin, fmax,
                htk, norm, n_mfcc, lifter, top_db, zcr_frame_length, rms_frame_length},
     "signal": [...],
     "outputs": {name: {"shape": [...], "data": [... row-major ...]}, ...}}

`fmax: null` means sr/2, `norm` is the mel filter-bank norm ("slaney" or null),
`win_length: null` means n_fft. Outputs keep librosa's orientation (features x frames),
flattened row-major. If a case had to leave something out it carries
`"omitted": [...]` (file-size limit) or `"skipped": {name: reason}`.

Precision: the input signal is float32 and is written with the shortest decimal that
round-trips float32 exactly (so a Rust test that parses it as f32 gets bit-identical
input). Every output is float32 in librosa and is written with 7 significant digits.

How each output is computed (always with every parameter passed explicitly, y float32):

* spectrogram: np.abs(librosa.stft(y, n_fft, hop_length, win_length, "hann", center,
  pad_mode)) ** 2
* mel: librosa.feature.melspectrogram(..., power=2.0, n_mels, fmin, fmax, htk, norm)
* log_mel: librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0)
* mfcc: librosa.feature.mfcc(S=log_mel, n_mfcc, dct_type=2, norm="ortho", lifter).
  This is exactly what librosa.feature.mfcc(y=...) does internally (it calls
  power_to_db(melspectrogram(...)) with the default ref=1.0, amin=1e-10, top_db=80).
  In mfcc(), `norm` is the DCT norm; librosa 0.11 takes the mel filter norm as
  `mel_norm`. The script asserts that mfcc(y=..., mel_norm=norm, ...) gives the same
  result, so the S= route is not a shortcut that could drift from librosa.
* zcr: librosa.feature.zero_crossing_rate(y, frame_length, hop_length, center)
  (center=True pads with np.pad mode="edge" inside librosa; not configurable here).
* rms: librosa.feature.rms(y=y, frame_length, hop_length, center)
  (center=True pads with its own pad_mode, default "constant" = zeros, regardless of
  the stft pad_mode of the case).
* mel_filters: librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk, norm)
  (defaults_22k, speech_16k, htk_16k only).
* mfcc_delta / mfcc_delta2: librosa.feature.delta(mfcc, width=9, order=1 / 2,
  mode="interp") (defaults_22k, speech_16k, odd_16k; skipped if frames < 9).
* window: librosa.filters.get_window("hann", win_length or n_fft, fftbins=True)
  (defaults_22k, speech_16k) -- the un-padded periodic window; stft centre-pads it
  with zeros to n_fft.

Signals (all made here, deterministically):

* speech16k: first 0.6 s of examples/audio/ravdess/03-01-05-01-01-01-01.flac (48 kHz;
  mean over channels if 2-D), sliced first, then librosa.resample(orig_sr=48000,
  target_sr=16000, res_type="soxr_hq"), cast to float32 (9600 samples).
  NB: RAVDESS clips open with a pause, so these 0.6 s are very quiet (|y| < 4e-4).
* speech22k: first 0.5 s of examples/audio/emodb/03a01Wa.wav (22050 Hz), float32.
* tone_odd: 16 kHz, 4801 samples, 0.3 sin(2pi 440 t) + 0.2 sin(2pi 1230 t)
  + 0.05 sin(2pi 3000 t), float32.
* short: 16 kHz, 300 samples of 0.5 sin(2pi 700 t), float32 (shorter than n_fft=512).
* silence: 16 kHz, 4000 zeros, float32.
Chroma / spectral-contrast fixtures (a second set, written to
tests/fixtures/features/chroma/chroma_<case>.json so that the main feature test, which
reads every *.json directly in tests/fixtures/features, does not pick them up):

    {"case": ..., "librosa_version": "0.11.0", "sr": ...,
     "params": {n_fft, hop_length, win_length, center, pad_mode, n_chroma, chroma_norm,
                tuning_resolution, contrast_fmin, contrast_n_bands, contrast_quantile},
     "signal": [...], "outputs": {...}}

* chroma_tuned: librosa.feature.chroma_stft(y=y, sr, n_fft, hop_length, win_length,
  window="hann", center, pad_mode, tuning=None, n_chroma=12, norm=np.inf)
  (tuning estimated inside, from the power spectrogram).
* chroma_0: the same with tuning=0.0.
* tuning: [1, 1], librosa.estimate_tuning(S=|stft|**2, sr, bins_per_octave=12), which
  is exactly the value chroma_stft estimates (asserted: chroma_stft(S=..., tuning=that)
  equals chroma_tuned).
* tuning_y: [1, 1], librosa.estimate_tuning(y=y, sr, n_fft) (its own magnitude STFT,
  hop n_fft // 4, window n_fft).
* contrast / contrast_linear: librosa.feature.spectral_contrast(S=|stft|, sr, n_fft,
  fmin=200, n_bands=6, quantile=0.02, linear=False / True). n_bands falls back to 4
  only if librosa reports "Frequency band exceeds Nyquist" (not needed at 16 kHz:
  200 * 2**5 = 6400 Hz < 8000 Hz); params record the value used.
* chroma_filters_0 / chroma_filters_tuned (defaults_22k, speech_16k only):
  librosa.filters.chroma(sr, n_fft, tuning=0.0 / the estimate, n_chroma=12), 12 x bins.

Chroma cases: speech_16k, defaults_22k, odd_16k, short_16k, silence_16k (signals and
STFT settings as the feature cases of the same name) and tuning_tone_plus03 /
tuning_tone_minus02: 16 kHz, 1 s, 0.5 sin(2pi f t) with f = 440 * 2**(0.3/12) and
440 * 2**(-0.2/12), n_fft 4096, hop 1024 (librosa's estimate on the power spectrogram is
biased towards 0 for short windows: 0.21 / -0.17 at n_fft 512; at 4096 it gives 0.31 /
-0.22; the script asserts it lies within 0.03 of the true deviation).
"""
import json
import warnings
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "tests" / "fixtures" / "features"
MAX_BYTES = 1_500_000
EXPECTED_LIBROSA = "0.11.0"
# Where the speech16k excerpt starts in the RAVDESS clip. 0.0 as specified; the clip is
# near-silent until about 1.0 s, so a later start would give louder "real speech".
SPEECH16K_OFFSET_S = 1.0


# ----------------------------------------------------------------------------- signals


def _mono(y):
    return y.mean(axis=1) if y.ndim == 2 else y


def _sine_mix(sr, n, parts):
    t = np.arange(n, dtype=np.float64) / sr
    y = np.zeros(n, dtype=np.float64)
    for amp, freq in parts:
        y += amp * np.sin(2 * np.pi * freq * t)
    return y.astype(np.float32)


def make_signals():
    sig = {}

    y, sr = sf.read(ROOT / "examples/audio/ravdess/03-01-05-01-01-01-01.flac")
    assert sr == 48000, sr
    start = int(round(SPEECH16K_OFFSET_S * sr))
    y = _mono(y)[start : start + int(round(0.6 * sr))]
    y = librosa.resample(y, orig_sr=48000, target_sr=16000, res_type="soxr_hq")
    sig["speech16k"] = (np.asarray(y, dtype=np.float32), 16000)

    y, sr = sf.read(ROOT / "examples/audio/emodb/03a01Wa.wav")
    assert sr == 22050, sr
    y = _mono(y)[: int(round(0.5 * sr))]
    sig["speech22k"] = (np.asarray(y, dtype=np.float32), 22050)

    sig["tone_odd"] = (
        _sine_mix(16000, 4801, [(0.3, 440.0), (0.2, 1230.0), (0.05, 3000.0)]),
        16000,
    )
    sig["short"] = (_sine_mix(16000, 300, [(0.5, 700.0)]), 16000)
    sig["silence"] = (np.zeros(4000, dtype=np.float32), 16000)
    return sig


# ------------------------------------------------------------------------------- cases

DEFAULTS_22K = dict(
    n_fft=2048, hop_length=512, win_length=None, center=True, pad_mode="constant",
    n_mels=128, fmin=0.0, fmax=None, htk=False, norm="slaney", n_mfcc=20, lifter=0,
    top_db=80.0, zcr_frame_length=2048, rms_frame_length=2048,
)
SPEECH_16K = dict(
    DEFAULTS_22K, n_fft=512, hop_length=160, win_length=400, n_mels=40, n_mfcc=40,
    zcr_frame_length=512, rms_frame_length=512,
)

# (case, signal, sr, params, extras) -- extras: which optional outputs to write
CASES = [
    ("defaults_22k", "speech22k", 22050, DEFAULTS_22K, {"mel_filters", "delta", "window"}),
    ("speech_16k", "speech16k", 16000, SPEECH_16K, {"mel_filters", "delta", "window"}),
    ("htk_16k", "speech16k", 16000,
     dict(SPEECH_16K, htk=True, norm=None, fmin=20.0, fmax=7600.0), {"mel_filters"}),
    ("lifter_16k", "speech16k", 16000, dict(SPEECH_16K, lifter=22, n_mfcc=13), set()),
    ("odd_16k", "tone_odd", 16000, SPEECH_16K, {"delta"}),
    ("short_16k", "short", 16000, SPEECH_16K, set()),
    ("silence_16k", "silence", 16000, SPEECH_16K, set()),
    ("speech_16k_nocenter", "speech16k", 16000, dict(SPEECH_16K, center=False), set()),
    ("defaults_22k_reflect", "speech22k", 22050,
     dict(DEFAULTS_22K, pad_mode="reflect"), set()),
]


# ----------------------------------------------------------------------------- compute


def compute(y, sr, p, extras):
    assert y.dtype == np.float32
    stft_kw = dict(
        n_fft=p["n_fft"], hop_length=p["hop_length"], win_length=p["win_length"],
        window="hann", center=p["center"], pad_mode=p["pad_mode"],
    )
    mel_kw = dict(
        n_mels=p["n_mels"], fmin=p["fmin"], fmax=p["fmax"], htk=p["htk"],
    )
    out = {}

    out["spectrogram"] = np.abs(librosa.stft(y, **stft_kw)) ** 2
    mel = librosa.feature.melspectrogram(
        y=y, sr=sr, power=2.0, norm=p["norm"], **stft_kw, **mel_kw
    )
    out["mel"] = mel
    log_mel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=p["top_db"])
    out["log_mel"] = log_mel
    mfcc = librosa.feature.mfcc(
        S=log_mel, n_mfcc=p["n_mfcc"], dct_type=2, norm="ortho", lifter=p["lifter"]
    )
    out["mfcc"] = mfcc

    # Cross-check: librosa's own y -> mfcc route must agree with the S= route above.
    mfcc_direct = librosa.feature.mfcc(
        y=y, sr=sr, n_mfcc=p["n_mfcc"], dct_type=2, norm="ortho", lifter=p["lifter"],
        mel_norm=p["norm"], power=2.0, **stft_kw, **mel_kw,
    )
    np.testing.assert_allclose(mfcc_direct, mfcc, rtol=0, atol=1e-4)

    out["zcr"] = librosa.feature.zero_crossing_rate(
        y, frame_length=p["zcr_frame_length"], hop_length=p["hop_length"],
        center=p["center"],
    )
    out["rms"] = librosa.feature.rms(
        y=y, frame_length=p["rms_frame_length"], hop_length=p["hop_length"],
        center=p["center"],
    )

    skipped = {}
    if "mel_filters" in extras:
        out["mel_filters"] = librosa.filters.mel(
            sr=sr, n_fft=p["n_fft"], norm=p["norm"], **mel_kw
        )
    if "delta" in extras:
        frames = mfcc.shape[-1]
        if frames >= 9:
            out["mfcc_delta"] = librosa.feature.delta(mfcc, width=9, order=1, mode="interp")
            out["mfcc_delta2"] = librosa.feature.delta(mfcc, width=9, order=2, mode="interp")
        else:
            reason = f"frames={frames} < width=9 (librosa mode='interp' needs width <= frames)"
            skipped = {"mfcc_delta": reason, "mfcc_delta2": reason}
    if "window" in extras:
        out["window"] = librosa.filters.get_window(
            "hann", p["win_length"] or p["n_fft"], fftbins=True
        )
    return out, skipped


# ------------------------------------------------------------------------------ output


def f32_exact(v):
    """Shortest decimal that round-trips this float32 exactly."""
    return float(str(np.float32(v)))


def f32_7g(v):
    return float(f"{v:.7g}")


def encode(arr):
    arr = np.asarray(arr)
    assert np.all(np.isfinite(arr)), "non-finite value in output"
    flat = arr.astype(np.float32).ravel(order="C")
    return {"shape": list(arr.shape), "data": [f32_7g(v) for v in flat.tolist()]}


def dump(doc):
    return json.dumps(doc, separators=(",", ":"), allow_nan=False) + "\n"


def main():
    if librosa.__version__ != EXPECTED_LIBROSA:
        raise SystemExit(f"need librosa {EXPECTED_LIBROSA}, found {librosa.__version__}")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    signals = make_signals()

    for case, sig_name, sr, params, extras in CASES:
        y, sig_sr = signals[sig_name]
        assert sig_sr == sr
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outputs, skipped = compute(y, sr, params, extras)
        for w in caught:
            print(f"  [{case}] librosa warning: {w.message}")

        doc = {
            "case": case,
            "librosa_version": librosa.__version__,
            "sr": sr,
            "params": {
                "n_fft": params["n_fft"],
                "hop_length": params["hop_length"],
                "win_length": params["win_length"],
                "center": params["center"],
                "pad_mode": params["pad_mode"],
                "n_mels": params["n_mels"],
                "fmin": float(params["fmin"]),
                "fmax": None if params["fmax"] is None else float(params["fmax"]),
                "htk": params["htk"],
                "norm": params["norm"],
                "n_mfcc": params["n_mfcc"],
                "lifter": params["lifter"],
                "top_db": float(params["top_db"]),
                "zcr_frame_length": params["zcr_frame_length"],
                "rms_frame_length": params["rms_frame_length"],
            },
            "signal": [f32_exact(v) for v in y.tolist()],
            "outputs": {name: encode(arr) for name, arr in outputs.items()},
        }
        if skipped:
            doc["skipped"] = skipped
        text = dump(doc)
        if len(text.encode()) > MAX_BYTES:
            del doc["outputs"]["spectrogram"]
            doc["omitted"] = ["spectrogram"]
            text = dump(doc)
        assert len(text.encode()) <= MAX_BYTES, f"{case}: still too big"

        path = OUT_DIR / f"{case}.json"
        path.write_text(text)
        shapes = ", ".join(f"{k}{tuple(v['shape'])}" for k, v in doc["outputs"].items())
        print(f"{path.relative_to(ROOT)}  {len(text.encode())} bytes  "
              f"signal={len(y)}  {shapes}")

    write_chroma_fixtures(signals)


# ------------------------------------------------------------------- chroma / contrast

CHROMA_DIR = OUT_DIR / "chroma"
TONE_PARAMS = dict(n_fft=4096, hop_length=1024, win_length=None, center=True,
                   pad_mode="constant")
TONE_DEVIATIONS = {"tuning_tone_plus03": 0.3, "tuning_tone_minus02": -0.2}


def make_tone(dev):
    return _sine_mix(16000, 16000, [(0.5, 440.0 * 2.0 ** (dev / 12.0))])


# (case, signal, sr, stft params, extras)
CHROMA_CASES = [
    ("speech_16k", "speech16k", 16000, SPEECH_16K, {"filters"}),
    ("defaults_22k", "speech22k", 22050, DEFAULTS_22K, {"filters"}),
    ("odd_16k", "tone_odd", 16000, SPEECH_16K, set()),
    ("short_16k", "short", 16000, SPEECH_16K, set()),
    ("silence_16k", "silence", 16000, SPEECH_16K, set()),
    ("tuning_tone_plus03", "tone_plus03", 16000, TONE_PARAMS, set()),
    ("tuning_tone_minus02", "tone_minus02", 16000, TONE_PARAMS, set()),
]
CONTRAST_FMIN = 200.0
CONTRAST_N_BANDS = 6
CONTRAST_QUANTILE = 0.02
N_CHROMA = 12


def compute_chroma(y, sr, p, extras):
    assert y.dtype == np.float32
    stft_kw = dict(
        n_fft=p["n_fft"], hop_length=p["hop_length"], win_length=p["win_length"],
        window="hann", center=p["center"], pad_mode=p["pad_mode"],
    )
    out = {}
    out["chroma_tuned"] = librosa.feature.chroma_stft(
        y=y, sr=sr, tuning=None, n_chroma=N_CHROMA, norm=np.inf, **stft_kw
    )
    out["chroma_0"] = librosa.feature.chroma_stft(
        y=y, sr=sr, tuning=0.0, n_chroma=N_CHROMA, norm=np.inf, **stft_kw
    )
    power = np.abs(librosa.stft(y, **stft_kw)) ** 2
    tuning = librosa.estimate_tuning(S=power, sr=sr, bins_per_octave=N_CHROMA)
    again = librosa.feature.chroma_stft(
        S=power, sr=sr, n_fft=p["n_fft"], tuning=tuning, n_chroma=N_CHROMA, norm=np.inf
    )
    np.testing.assert_array_equal(again, out["chroma_tuned"])
    out["tuning"] = np.array([[tuning]])
    out["tuning_y"] = np.array(
        [[librosa.estimate_tuning(y=y, sr=sr, n_fft=p["n_fft"])]]
    )

    mag = np.abs(librosa.stft(y, **stft_kw))
    n_bands = CONTRAST_N_BANDS
    try:
        librosa.feature.spectral_contrast(
            S=mag, sr=sr, n_fft=p["n_fft"], fmin=CONTRAST_FMIN, n_bands=n_bands,
            quantile=CONTRAST_QUANTILE,
        )
    except librosa.util.exceptions.ParameterError as e:
        if "Nyquist" not in str(e):
            raise
        n_bands = 4
    for name, linear in (("contrast", False), ("contrast_linear", True)):
        out[name] = librosa.feature.spectral_contrast(
            S=mag, sr=sr, n_fft=p["n_fft"], fmin=CONTRAST_FMIN, n_bands=n_bands,
            quantile=CONTRAST_QUANTILE, linear=linear,
        )
    if "filters" in extras:
        out["chroma_filters_0"] = librosa.filters.chroma(
            sr=sr, n_fft=p["n_fft"], tuning=0.0, n_chroma=N_CHROMA
        )
        out["chroma_filters_tuned"] = librosa.filters.chroma(
            sr=sr, n_fft=p["n_fft"], tuning=tuning, n_chroma=N_CHROMA
        )
    return out, n_bands


def write_chroma_fixtures(signals):
    CHROMA_DIR.mkdir(parents=True, exist_ok=True)
    signals = dict(signals)
    signals["tone_plus03"] = (make_tone(0.3), 16000)
    signals["tone_minus02"] = (make_tone(-0.2), 16000)
    for case, sig_name, sr, p, extras in CHROMA_CASES:
        y, sig_sr = signals[sig_name]
        assert sig_sr == sr
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outputs, n_bands = compute_chroma(y, sr, p, extras)
        for w in caught:
            print(f"  [chroma_{case}] librosa warning: {w.message}")
        if case in TONE_DEVIATIONS:
            est = float(outputs["tuning"][0, 0])
            assert abs(est - TONE_DEVIATIONS[case]) <= 0.03, (case, est)
        doc = {
            "case": case,
            "librosa_version": librosa.__version__,
            "sr": sr,
            "params": {
                "n_fft": p["n_fft"],
                "hop_length": p["hop_length"],
                "win_length": p["win_length"],
                "center": p["center"],
                "pad_mode": p["pad_mode"],
                "n_chroma": N_CHROMA,
                "chroma_norm": "inf",
                "tuning_resolution": 0.01,
                "contrast_fmin": CONTRAST_FMIN,
                "contrast_n_bands": n_bands,
                "contrast_quantile": CONTRAST_QUANTILE,
            },
            "signal": [f32_exact(v) for v in y.tolist()],
            "outputs": {name: encode(arr) for name, arr in outputs.items()},
        }
        text = dump(doc)
        assert len(text.encode()) <= MAX_BYTES, f"chroma_{case}: too big"
        path = CHROMA_DIR / f"chroma_{case}.json"
        path.write_text(text)
        shapes = ", ".join(f"{k}{tuple(v['shape'])}" for k, v in doc["outputs"].items())
        print(f"{path.relative_to(ROOT)}  {len(text.encode())} bytes  "
              f"signal={len(y)}  tuning={float(outputs['tuning'][0, 0]):.2f}  {shapes}")


if __name__ == "__main__":
    main()
