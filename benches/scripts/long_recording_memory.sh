#!/usr/bin/env bash
# Peak memory of a streamed long recording: decode -> 3 s segments -> MFCC -> discard,
# for 1 minute, 1 hour and 10 hours of 16 kHz mono audio (made by repeating a demo
# clip; ~1.2 GB of WAV for 10 h, in $TMPDIR). Peak RSS from /usr/bin/time -v.
#   bash benches/scripts/long_recording_memory.sh [path/to/sermo]
set -euo pipefail
cd "$(dirname "$0")/../.."
SERMO=${1:-${CARGO_TARGET_DIR:-target}/release/sermo}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work" <<'PY'
import struct, sys, wave
from pathlib import Path
out = Path(sys.argv[1])
with wave.open("examples/audio/emodb/03a01Wa.wav") as w:
    assert w.getnchannels() == 1 and w.getsampwidth() == 2
    rate, clip = w.getframerate(), w.readframes(w.getnframes())
for name, secs in [("1min", 60), ("1h", 3600), ("10h", 36000)]:
    n = int(secs * rate)
    with open(out / f"{name}.wav", "wb") as f:
        data_len = n * 2
        f.write(b"RIFF" + struct.pack("<I", 36 + data_len) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16))
        f.write(b"data" + struct.pack("<I", data_len))
        left = data_len
        while left > 0:
            chunk = clip[: min(len(clip), left)]
            f.write(chunk)
            left -= len(chunk)
PY
for name in ${SIZES:-1min 1h 10h}; do
  cat > "$work/p.toml" <<TOML
[sources.rec]
kind = "files"
paths = ["$name.wav"]
[stages.audio]
kind = "decode"
input = "rec"
chunk_s = ${CHUNK_S:-30}
[stages.r16k]
kind = "resample"
input = "audio"
rate = 16000
[stages.seg]
kind = "window"
input = "r16k"
mode = "segments"
length_s = 3.0
[stages.feat]
kind = "features"
input = "seg"
n_fft = 512
win_length = 400
hop_length = 160
[stages.feat.mfcc]
n_mfcc = 40
n_mels = 40
[sinks.null]
kind = "discard"
input = "feat"
TOML
  /usr/bin/time -v "$SERMO" run --quiet "$work/p.toml" 2> "$work/time.txt"
  rss=$(grep "Maximum resident" "$work/time.txt" | awk '{print $NF}')
  wall=$(grep "Elapsed (wall" "$work/time.txt" | awk '{print $NF}')
  echo "$name: peak RSS $((rss / 1024)) MB, wall $wall"
done
