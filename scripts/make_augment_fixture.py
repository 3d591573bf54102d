#!/usr/bin/env python3
"""Reference outputs of librosa.effects.time_stretch for tests/augment_dsp.rs.

Writes tests/fixtures/augment/time_stretch.json: a short fixed signal (16 kHz,
6000 samples: a gliding harmonic tone under an amplitude envelope plus a decaying
click train) and librosa 0.11's time_stretch of it (n_fft=2048, hop=512, Hann,
center=True, pad_mode='constant') at rates 1.25 and 0.8, computed both on the
float32 signal (librosa's usual dtype: complex64 STFT, float32 phase accumulator)
and on the same samples as float64 (complex128 throughout); and
librosa.effects.pitch_shift of the float64 signal by +2 and -3 semitones
(soxr_hq resampling). Values are written with 8 significant digits.

Run from the repository root: python3 scripts/make_augment_fixture.py
"""
import json
import os

import librosa
import numpy as np

SR = 16000
N = 6000


def signal() -> np.ndarray:
    t = np.arange(N) / SR
    f0 = 180.0 + 60.0 * t  # slow glide
    phase = 2 * np.pi * np.cumsum(f0) / SR
    y = np.zeros(N)
    for h, a in [(1, 0.5), (2, 0.25), (3, 0.15), (4, 0.08), (5, 0.05)]:
        y += a * np.sin(h * phase + 0.3 * h)
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 3.0 * t)
    y *= env
    clicks = np.zeros(N)
    clicks[::1500] = 0.4
    clicks = np.convolve(clicks, np.exp(-np.arange(64) / 8.0))[:N]
    return (0.8 * y + clicks).astype(np.float32)


def rounded(x: np.ndarray) -> list:
    return [float(f"{v:.8g}") for v in x]


def main() -> None:
    y32 = signal()
    y64 = y32.astype(np.float64)
    out = {
        "librosa": librosa.__version__,
        "numpy": np.__version__,
        "sr": SR,
        "n_fft": 2048,
        "hop_length": 512,
        "signal": [float(v) for v in y32],
        "cases": [],
        "pitch_shift": [],
    }
    for rate in [1.25, 0.8]:
        r32 = librosa.effects.time_stretch(y32, rate=rate)
        r64 = librosa.effects.time_stretch(y64, rate=rate)
        out["cases"].append(
            {
                "rate": rate,
                "len": int(r32.shape[-1]),
                "float32": rounded(r32),
                "float64": rounded(r64),
            }
        )
    for n_steps in [2.0, -3.0]:
        p = librosa.effects.pitch_shift(y64, sr=SR, n_steps=n_steps)
        out["pitch_shift"].append({"n_steps": n_steps, "output": rounded(p)})
    path = os.path.join("tests", "fixtures", "augment", "time_stretch.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print(f"wrote {path}")
    for c in out["cases"]:
        a = np.array(c["float32"])
        b = np.array(c["float64"])
        print(
            f"rate {c['rate']}: len {c['len']}, max|f32-f64| {np.abs(a - b).max():.3e}"
            f" / max|ref| {np.abs(b).max():.3f}"
        )


if __name__ == "__main__":
    main()
