#!/usr/bin/env bash
# Peak memory and speed of pretrained-encoder embeddings of a long recording:
# files -> decode (streamed) -> resample 16000 -> 10-s windows -> embed (wav2vec2-base
# architecture, random init; pooling = "mean", layers = "all": 13 columns of 768) ->
# Parquet, with `sermo run` under /usr/bin/time -v. Target: peak RSS <= 1.5 GB.
# The recording (16 kHz mono 16-bit WAV: EmoDB from ../shared/corpora, else the demo
# clips of examples/audio, repeated; 115 MB per hour) is made once and reused from $SERMO_LONG_DIR
# (default $TMPDIR/sermo-long-recordings).
#   python3 scripts/make_random_encoder.py out/encoders/wav2vec2-base-random
#   bash benches/scripts/long_recording_embed_memory.sh [path/to/sermo]
#   SIZES="10min" THREADS=1 bash benches/scripts/long_recording_embed_memory.sh
# SIZES: any of 1min 10min 1h (default 1h); THREADS: --threads for sermo run
# (default: all cores); ENCODER: the checkpoint folder; BATCH: embed batch_size (4).
set -euo pipefail
cd "$(dirname "$0")/../.."
SERMO=$(realpath "${1:-${CARGO_TARGET_DIR:-target}/release/sermo}")
ENCODER=$(realpath -m "${ENCODER:-out/encoders/wav2vec2-base-random}")
if [ ! -f "$ENCODER/config.json" ]; then
  echo "no encoder at $ENCODER: make one with"
  echo "  python3 scripts/make_random_encoder.py out/encoders/wav2vec2-base-random"
  exit 0
fi
long=${SERMO_LONG_DIR:-${TMPDIR:-/tmp}/sermo-long-recordings}
mkdir -p "$long"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$long" ${SIZES:-1h} <<'PY'
import glob, struct, sys, wave
from pathlib import Path
out, sizes = Path(sys.argv[1]), sys.argv[2:]
secs = {"1min": 60, "10min": 600, "1h": 3600}
import numpy as np
# EmoDB (16 kHz) from ../shared/corpora if present, else the demo clips (22.05 kHz,
# linearly interpolated to 16 kHz: the encoder's cost does not depend on the content).
parts = []
for c in sorted(glob.glob("../shared/corpora/emodb/wav/*.wav")) or sorted(glob.glob("examples/audio/emodb/*.wav")):
    with wave.open(c) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2, c
        rate, y = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2")
    if rate != 16000:
        t = np.arange(int(len(y) * 16000 / rate)) * (rate / 16000)
        y = np.interp(t, np.arange(len(y)), y).astype("<i2")
    parts.append(y)
pcm = np.concatenate(parts).astype("<i2").tobytes()
for name in sizes:
    dst = out / f"embed-{name}.wav"
    n = secs[name] * 16000 * 2
    if dst.exists() and dst.stat().st_size == 44 + n:
        continue
    with open(dst, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 36 + n) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16))
        f.write(b"data" + struct.pack("<I", n))
        left = n
        while left > 0:
            f.write(pcm[: min(len(pcm), left)])
            left -= min(len(pcm), left)
PY
threads=()
[ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")
for name in ${SIZES:-1h}; do
  cat > "$work/p.toml" <<TOML
[sources.rec]
kind = "files"
paths = ["$long/embed-$name.wav"]
[stages.audio]
kind = "decode"
input = "rec"
channels = "mix"
[stages.r16k]
kind = "resample"
input = "audio"
rate = 16000
[stages.win]
kind = "window"
input = "r16k"
mode = "segments"
length_s = 10.0
[stages.ssl]
kind = "embed"
input = "win"
encoder = "$ENCODER"
layers = "all"
pooling = "mean"
batch_size = ${BATCH:-4}
device = "cpu"
[sinks.table]
kind = "parquet"
input = "ssl"
path = "$work/embeddings"
mode = "overwrite"
TOML
  if [ -n "${THREADS:-}" ]; then
    export RAYON_NUM_THREADS=$THREADS MATMUL_NUM_THREADS=$THREADS
  fi
  /usr/bin/time -v "$SERMO" run --quiet "${threads[@]}" "$work/p.toml" > "$work/out.txt" 2> "$work/time.txt" || {
    cat "$work/out.txt" "$work/time.txt" >&2
    exit 1
  }
  rss=$(grep "Maximum resident" "$work/time.txt" | awk '{print $NF}')
  wall=$(grep "Elapsed (wall" "$work/time.txt" | awk '{print $NF}')
  cpu=$(grep -E "^\s+(User|System) time" "$work/time.txt" | awk '{s += $NF} END {print s}')
  s=$(python3 -c "import sys; p=sys.argv[1].split(':'); print(sum(float(x)*60**i for i,x in enumerate(reversed(p))))" "$wall")
  audio=$(python3 -c "import os,sys; print((os.path.getsize(sys.argv[1]) - 44) / 32000)" "$long/embed-$name.wav")
  rows=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get('rows', '?'))" "$work/embeddings/_SUCCESS" 2>/dev/null || echo "?")
  echo "$name (${audio} s of audio, $rows windows of 10 s): peak RSS $((rss / 1024)) MB, wall ${s} s," \
    "$(python3 -c "print(f'{$audio / $s:.1f}')")x real time, CPU ${cpu} s ($(python3 -c "print(f'{$cpu / $s:.2f}')") cores)"
done
