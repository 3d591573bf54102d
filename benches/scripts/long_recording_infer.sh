#!/usr/bin/env bash
# Emotion timeline of long recordings, end to end (`sermo infer`: decode ->
# resample -> 3-s segments -> features -> cnn1d -> predictions.parquet): peak RSS
# (/usr/bin/time -v) and x-real-time, for a 60-minute and a 10-hour recording made
# by concatenating corpus clips (EmoDB from ../shared/corpora if present, else the
# demo clips; 16 kHz mono WAV in $TMPDIR, ~1.2 GB for 10 h), with 1 and 2 threads.
# The model is a cnn1d with the paper's default size, trained for 2 epochs on the
# quickstart features (its accuracy does not matter here, its cost does).
#   bash benches/scripts/long_recording_infer.sh [path/to/sermo]
#   SIZES="60min" THREADS="2" bash benches/scripts/long_recording_infer.sh
#   INFER_ARGS="--vad" bash benches/scripts/long_recording_infer.sh   # speech-aligned segments
set -euo pipefail
cd "$(dirname "$0")/../.."
SERMO=$(realpath "${1:-${CARGO_TARGET_DIR:-target}/release/sermo}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$SERMO" run -q pipelines/quickstart.toml
"$SERMO" run -q pipelines/quickstart_train.toml --set sinks.model.epochs=2 \
  --set 'sinks.model.params.filters=[128, 64, 32]' --set sinks.model.params.dense=64 \
  --set "sinks.model.out=\"$work/model\"" > /dev/null 2>&1
python3 - "$work" <<'PY'
import glob, os, struct, sys
import numpy as np, soundfile as sf, soxr
out = sys.argv[1]
clips = sorted(glob.glob("../shared/corpora/emodb/wav/*.wav")) or sorted(glob.glob("examples/audio/emodb/*.wav"))
rate = 16000
audio = np.concatenate([soxr.resample(sf.read(c, dtype="float32")[0], sf.info(c).samplerate, rate) for c in clips])
pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
for name, secs in [("60min", 3600), ("10h", 36000)]:
    n = secs * rate * 2
    with open(os.path.join(out, f"{name}.wav"), "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 36 + n) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16))
        f.write(b"data" + struct.pack("<I", n))
        left = n
        while left > 0:
            f.write(pcm[: min(len(pcm), left)])
            left -= min(len(pcm), left)
print(f"recordings from {len(clips)} clips ({len(audio) / rate:.0f} s, repeated)")
PY
for name in ${SIZES:-60min 10h}; do
  secs=$([ "$name" = 10h ] && echo 36000 || echo 3600)
  for t in ${THREADS:-1 2}; do
    RAYON_NUM_THREADS=$t /usr/bin/time -v taskset -c 0-$((t - 1)) "$SERMO" infer --model "$work/model" --threads "$t" ${INFER_ARGS:-} \
      "$work/$name.wav" --out "$work/pred.parquet" > "$work/out.txt" 2> "$work/time.txt"
    rss=$(grep "Maximum resident" "$work/time.txt" | awk '{print $NF}')
    wall=$(grep "Elapsed (wall" "$work/time.txt" | awk '{print $NF}')
    s=$(python3 -c "import sys; p=sys.argv[1].split(':'); print(sum(float(x)*60**i for i,x in enumerate(reversed(p))))" "$wall")
    rows=$(python3 -c "import pyarrow.parquet as pq,sys; print(pq.read_metadata(sys.argv[1]).num_rows)" "$work/pred.parquet")
    echo "$name, $t thread(s): $rows segments, peak RSS $((rss / 1024)) MB, wall ${s} s, $(python3 -c "print(round($secs/$s))")x real time"
  done
done
