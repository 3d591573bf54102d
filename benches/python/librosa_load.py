"""Time librosa.load(path, sr=16000) (soxr_hq, mono) over files; one process = one core.

Usage: python3 librosa_load.py GLOB [--limit N]
Prints JSON: files, audio_s (at 16 kHz), wall_s, x_real_time. Exit 77 without librosa.
"""
import glob
import json
import sys
import time

try:
    import librosa
except ImportError:  # pragma: no cover
    print("missing python module: librosa", file=sys.stderr)
    sys.exit(77)

files = sorted(glob.glob(sys.argv[1], recursive=True))
if "--limit" in sys.argv:
    files = files[: int(sys.argv[sys.argv.index("--limit") + 1])]
librosa.load(files[0], sr=16000)  # warm-up: imports and first-call costs
t = time.perf_counter()
samples = 0
for f in files:
    y, sr = librosa.load(f, sr=16000)
    samples += len(y)
wall = time.perf_counter() - t
audio = samples / 16000
# The floor under librosa.load: libsndfile decoding alone (no mono mix, no resampling).
decode_xrt = None
try:
    import soundfile

    t = time.perf_counter()
    for f in files:
        soundfile.read(f, dtype="float32")
    decode_xrt = audio / (time.perf_counter() - t)
except ImportError:  # pragma: no cover
    pass
print(json.dumps({"files": len(files), "audio_s": audio, "wall_s": wall, "x_real_time": audio / wall,
                  "decode_only_x_real_time": decode_xrt}))
