"""Make examples/audio/long/demo_long.wav: the demo clips of examples/audio
(EmoDB and RAVDESS, see examples/audio/ATTRIBUTION.md) resampled to 16 kHz mono
with soxr and concatenated in name order with 0.5 s of silence between them, as
a small stand-in for a long recording (an interview with changing emotions).

    python3 scripts/make_demo_long.py
"""
import glob
import os

import numpy as np
import soundfile as sf
import soxr

root = os.path.join(os.path.dirname(__file__), "..", "examples", "audio")
files = sorted(glob.glob(os.path.join(root, "emodb", "*.wav"))) + sorted(
    glob.glob(os.path.join(root, "ravdess", "*.flac"))
)
rate = 16000
parts = []
for f in files:
    y, sr = sf.read(f, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    parts.append(soxr.resample(y, sr, rate, quality="HQ"))
    parts.append(np.zeros(rate // 2, dtype=np.float32))
out = np.concatenate(parts)
os.makedirs(os.path.join(root, "long"), exist_ok=True)
dst = os.path.join(root, "long", "demo_long.wav")
sf.write(dst, out, rate, subtype="PCM_16")
print(f"{dst}: {len(files)} clips, {len(out) / rate:.1f} s")
