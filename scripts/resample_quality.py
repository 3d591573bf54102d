"""Measure sermo's resampler against soxr HQ (librosa's default resampler).

Usage: python3 scripts/resample_quality.py SERMO_BIN [--quality high|fast] [--speech FILE...]

Runs the real path (WAV file -> decode -> resample -> Parquet) at 48 kHz -> 16 kHz on
 - a logarithmic sine sweep 50 Hz .. 7 kHz (10 s, amplitude 0.5),
 - real speech (the RAVDESS demo clips in examples/audio unless --speech is given),
 - pure tones, for passband ripple (100 Hz .. 7 kHz) and aliasing (8.5 .. 23.5 kHz),
and prints one JSON object. Difference figures are 10*log10(sum (sermo-soxr)^2 /
sum soxr^2), i.e. relative to the signal. Needs numpy, soxr, soundfile, pyarrow.
Exit code 77 when one of them is missing.
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import numpy as np
    import pyarrow.dataset as ds
    import soundfile as sf
    import soxr
except ImportError as e:  # pragma: no cover
    print(f"missing python module: {e.name}", file=sys.stderr)
    sys.exit(77)

ROOT = Path(__file__).resolve().parent.parent
SR_IN, SR_OUT = 48000, 16000


def sermo_resample(bin_path, signals, quality):
    """Resample each named signal with sermo; returns {name: np.ndarray}."""
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "in").mkdir()
        for name, x in signals.items():
            sf.write(d / "in" / f"{name}.wav", x.astype(np.float32), SR_IN, subtype="FLOAT")
        (d / "p.toml").write_text(
            f"""
[sources.s]
kind = "files"
paths = ["in/*.wav"]
[stages.a]
kind = "decode"
input = "s"
chunk_s = 3.7
[stages.r]
kind = "resample"
input = "a"
rate = {SR_OUT}
quality = "{quality}"
[sinks.t]
kind = "parquet"
input = "r"
path = "out"
"""
        )
        subprocess.run([bin_path, "run", "--quiet", str(d / "p.toml")], check=True)
        t = ds.dataset(d / "out", format="parquet").to_table(columns=["clip_id", "segment", "samples"])
        rows = sorted(zip(t.column("clip_id").to_pylist(), t.column("segment").to_pylist(),
                          t.column("samples").to_pylist()))
        out = {}
        for clip, _, s in rows:
            out.setdefault(clip[:-4], []).extend(s)
        return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def diff_db(a, ref):
    n = min(len(a), len(ref))
    e = np.sum((a[:n] - ref[:n]) ** 2)
    return float(10 * np.log10(e / np.sum(ref[:n] ** 2)))


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        sys.exit(2)
    bin_path = args[0]
    quality = "high"
    speech_files = []
    i = 1
    while i < len(args):
        if args[i] == "--quality":
            quality = args[i + 1]
            i += 2
        elif args[i] == "--speech":
            i += 1
            while i < len(args) and not args[i].startswith("--"):
                speech_files.append(args[i])
                i += 1
        else:
            i += 1
    if not speech_files:
        speech_files = sorted(str(p) for p in (ROOT / "examples/audio/ravdess").glob("*.flac"))

    t = np.arange(SR_IN * 10) / SR_IN
    f0, f1 = 50.0, 7000.0
    k = np.log(f1 / f0) / 10.0
    sweep = 0.5 * np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)
    signals = {"sweep": sweep}
    for j, f in enumerate(speech_files):
        x, sr = sf.read(f, dtype="float64", always_2d=True)
        assert sr == SR_IN, f"{f}: {sr} Hz"
        signals[f"speech{j}"] = x.mean(axis=1)
    passband = [100, 300, 1000, 2000, 3000, 4000, 5000, 6000, 6500, 7000]
    alias = [8500, 10000, 12000, 15000, 20000, 23500]
    tt = np.arange(SR_IN * 2) / SR_IN
    for f in passband + alias:
        signals[f"tone{f}"] = 0.5 * np.sin(2 * np.pi * f * tt)

    got = sermo_resample(bin_path, signals, quality)
    ref = {k: soxr.resample(v, SR_IN, SR_OUT, quality="HQ") for k, v in signals.items()}

    res = {"quality": quality, "lengths_equal": all(len(got[k]) == len(ref[k]) for k in signals)}
    res["sweep_diff_db"] = diff_db(got["sweep"], ref["sweep"])
    res["speech_diff_db"] = [diff_db(got[k], ref[k]) for k in signals if k.startswith("speech")]
    mid = slice(SR_OUT // 4, -SR_OUT // 4)  # ignore edges for tone levels
    gains = [20 * np.log10(np.sqrt(2) * np.std(got[f"tone{f}"][mid]) / 0.5) for f in passband]
    res["passband_gain_db"] = dict(zip(map(str, passband), [round(g, 4) for g in gains]))
    res["passband_ripple_db"] = float(max(gains) - min(gains))
    res["passband_ripple_db_to_6k"] = float(max(gains[:8]) - min(gains[:8]))
    res["alias_db"] = {
        str(f): round(float(20 * np.log10(max(np.sqrt(2) * np.std(got[f"tone{f}"][mid]), 1e-12) / 0.5)), 1)
        for f in alias
    }
    res["soxr_alias_db"] = {
        str(f): round(float(20 * np.log10(max(np.sqrt(2) * np.std(ref[f"tone{f}"][mid]), 1e-12) / 0.5)), 1)
        for f in alias
    }
    print(json.dumps(res))


if __name__ == "__main__":
    main()
