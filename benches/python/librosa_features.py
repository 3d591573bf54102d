"""Time librosa feature extraction on clips written by benches/features.rs.

Usage: python3 librosa_features.py RAW_F32 LENGTHS_TXT
RAW_F32: concatenated float32 little-endian samples (16 kHz); LENGTHS_TXT: one
length per line. Prints JSON {task: seconds} for the same tasks as the Rust bench,
single process (one core). Exit 77 without librosa.
"""
import json
import os
import sys
import time

try:
    import numpy as np
    import librosa
except ImportError:  # pragma: no cover
    sys.exit(77)

raw = np.fromfile(sys.argv[1], dtype="<f4")
lengths = [int(x) for x in open(sys.argv[2]).read().split()]
clips, o = [], 0
for n in lengths:
    clips.append(raw[o : o + n])
    o += n
sr = 16000
speech = dict(n_fft=512, win_length=400, hop_length=160, n_mels=40)


def mfcc_defaults(y):
    librosa.feature.mfcc(y=y, sr=sr, n_mfcc=40)


def mfcc_speech(y):
    librosa.feature.mfcc(y=y, sr=sr, n_mfcc=40, **speech)


def zcr_rms_mfcc(y):
    z = librosa.feature.zero_crossing_rate(y, frame_length=512, hop_length=160)
    r = librosa.feature.rms(y=y, frame_length=512, hop_length=160)
    m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=40, **speech)
    np.concatenate([z, r, m], axis=0)


def chroma_contrast(y):
    S = np.abs(librosa.stft(y, n_fft=2048, hop_length=512))
    librosa.feature.chroma_stft(S=S**2, sr=sr)
    librosa.feature.spectral_contrast(S=S, sr=sr)


def chroma(y):
    S = np.abs(librosa.stft(y, n_fft=2048, hop_length=512))
    librosa.feature.chroma_stft(S=S**2, sr=sr)


def contrast(y):
    S = np.abs(librosa.stft(y, n_fft=2048, hop_length=512))
    librosa.feature.spectral_contrast(S=S, sr=sr)


tasks = {"mfcc_defaults": mfcc_defaults, "mfcc_speech": mfcc_speech, "zcr_rms_mfcc": zcr_rms_mfcc,
         "chroma_contrast": chroma_contrast, "chroma": chroma, "contrast": contrast}
only = sys.argv[3].split(",") if len(sys.argv) > 3 else list(tasks)
out = {}
for name in only:
    f = tasks[name]
    f(clips[0])  # warm-up
    best = float("inf")
    for _ in range(int(os.environ.get("SERMO_BENCH_PASSES", "3"))):  # best of N, as the Rust side
        t = time.perf_counter()
        for y in clips:
            f(y)
        best = min(best, time.perf_counter() - t)
    out[name] = best
print(json.dumps(out))
