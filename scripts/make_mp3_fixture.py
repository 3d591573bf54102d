"""Make tests/fixtures/tone440.mp3: 0.5 s of a 440 Hz sine, 16 kHz mono, 64 kbit/s.

The decoder tests rename it to `.wav` to prove that the format is detected by
content. Needs `pip install lameenc`.
"""
import math
import struct
from pathlib import Path

import lameenc

rate = 16000
pcm = b"".join(
    struct.pack("<h", int(0.5 * 32767 * math.sin(2 * math.pi * 440 * i / rate)))
    for i in range(rate // 2)
)
enc = lameenc.Encoder()
enc.set_bit_rate(64)
enc.set_in_sample_rate(rate)
enc.set_channels(1)
enc.set_quality(2)
data = enc.encode(pcm) + enc.flush()
out = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tone440.mp3"
out.write_bytes(data)
print(out, len(data), "bytes")
