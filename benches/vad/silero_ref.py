#!/usr/bin/env python3
"""Torch-free Python reference for Silero VAD (16 kHz), to compare a Rust VAD against.

Runs the ONNX model shipped inside the `silero-vad` PyPI package with onnxruntime
on ONE thread, exactly as the package's `OnnxWrapper` does, yielding one speech
probability per 512-sample (32 ms) frame, then turns the probabilities into speech
segments with a numpy/pure-Python port of the package's `get_speech_timestamps`
(`get_speech_timestamps_from_probs`) using its default parameters.

Install the dependencies (no torch / torchaudio needed):

    pip install --no-deps silero-vad && pip install onnxruntime numpy soundfile

Usage:

    python3 benches/vad/silero_ref.py input_16k_mono.wav [--out result.json]

Output JSON: {"model", "frame_s", "probs", "segments" ([[start_s, end_s], ...]),
"segments_samples", "seconds_audio", "seconds_compute" (wall time of the
session.run calls only), "x_real_time" (seconds_audio / seconds_compute)}.

Model call (per frame, batch 1, sr = 16000):
  inputs:  input  float32 [1, 64 + 512]  (last 64 samples of the previous input,
                                          zeros for the first frame, + the frame;
                                          the last frame is zero-padded to 512)
           state  float32 [2, 1, 128]    (zeros at start; fed back from stateN)
           sr     int64 scalar           (16000)
  outputs: output float32 [1, 1]         (speech probability)
           stateN float32 [2, 1, 128]

The segment logic in `speech_timestamps` is ported from silero-vad's
src/silero_vad/utils_vad.py (get_speech_timestamps_from_probs, package 6.2.3),
Copyright (c) Silero Team, MIT licence, https://github.com/snakers4/silero-vad
"""
import argparse
import json
import sys
import time
import os
from importlib import metadata, util

import numpy as np
import onnxruntime as ort
import soundfile as sf

SR = 16000
FRAME = 512    # samples per frame at 16 kHz (32 ms)
CONTEXT = 64   # samples of context prepended to each frame at 16 kHz


def model_path():
    # locate the package without importing it (its __init__ imports torch)
    spec = util.find_spec("silero_vad")
    if spec is None:
        sys.exit("silero-vad not installed: pip install --no-deps silero-vad (or pass --model)")
    return os.path.join(spec.submodule_search_locations[0], "data", "silero_vad.onnx")


def speech_probs(audio, path):
    """One speech probability per 512-sample frame; returns (probs, seconds in session.run)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros((1, CONTEXT), dtype=np.float32)
    sr = np.array(SR, dtype=np.int64)
    probs, t_run = [], 0.0
    for start in range(0, len(audio), FRAME):
        chunk = audio[start:start + FRAME]
        if len(chunk) < FRAME:
            chunk = np.pad(chunk, (0, FRAME - len(chunk)))
        x = np.concatenate([context, chunk[None, :]], axis=1).astype(np.float32)
        t0 = time.perf_counter()
        out, state = sess.run(None, {"input": x, "state": state, "sr": sr})
        t_run += time.perf_counter() - t0
        context = x[:, -CONTEXT:]
        probs.append(float(out.reshape(-1)[0]))
    return probs, t_run


def speech_timestamps(speech_probs, audio_length_samples, threshold=0.5,
                      min_speech_duration_ms=250, max_speech_duration_s=float("inf"),
                      min_silence_duration_ms=100, speech_pad_ms=30, neg_threshold=None,
                      min_silence_at_max_speech=98, use_max_poss_sil_at_max_speech=True,
                      sampling_rate=SR):
    """Port of silero-vad get_speech_timestamps_from_probs (MIT). Returns [(start, end)] in samples."""
    window = FRAME
    min_speech_samples = sampling_rate * min_speech_duration_ms / 1000
    speech_pad_samples = sampling_rate * speech_pad_ms / 1000
    max_speech_samples = sampling_rate * max_speech_duration_s - window - 2 * speech_pad_samples
    min_silence_samples = sampling_rate * min_silence_duration_ms / 1000
    min_silence_samples_at_max_speech = sampling_rate * min_silence_at_max_speech / 1000
    if neg_threshold is None:
        neg_threshold = max(threshold - 0.15, 0.01)
    triggered, speeches, cur = False, [], {}
    temp_end = 0
    prev_end = next_start = 0
    possible_ends = []
    for i, p in enumerate(speech_probs):
        cur_sample = window * i
        if p >= threshold and temp_end:
            sil_dur = cur_sample - temp_end
            if sil_dur > min_silence_samples_at_max_speech:
                possible_ends.append((temp_end, sil_dur))
            temp_end = 0
            if next_start < prev_end:
                next_start = cur_sample
        if p >= threshold and not triggered:
            triggered = True
            cur["start"] = cur_sample
            continue
        if triggered and cur_sample - cur["start"] > max_speech_samples:
            if use_max_poss_sil_at_max_speech and possible_ends:
                prev_end, dur = max(possible_ends, key=lambda x: x[1])
                cur["end"] = prev_end
                speeches.append(cur)
                cur = {}
                next_start = prev_end + dur
                if next_start < prev_end + cur_sample:
                    cur["start"] = next_start
                else:
                    triggered = False
                prev_end = next_start = temp_end = 0
                possible_ends = []
            elif prev_end:
                cur["end"] = prev_end
                speeches.append(cur)
                cur = {}
                if next_start < prev_end:
                    triggered = False
                else:
                    cur["start"] = next_start
                prev_end = next_start = temp_end = 0
                possible_ends = []
            else:
                cur["end"] = cur_sample
                speeches.append(cur)
                cur = {}
                prev_end = next_start = temp_end = 0
                triggered = False
                possible_ends = []
                continue
        if p < neg_threshold and triggered:
            if not temp_end:
                temp_end = cur_sample
            sil_dur_now = cur_sample - temp_end
            if not use_max_poss_sil_at_max_speech and sil_dur_now > min_silence_samples_at_max_speech:
                prev_end = temp_end
            if sil_dur_now < min_silence_samples:
                continue
            cur["end"] = temp_end
            if cur["end"] - cur["start"] > min_speech_samples:
                speeches.append(cur)
            cur = {}
            prev_end = next_start = temp_end = 0
            triggered = False
            possible_ends = []
            continue
    if cur and audio_length_samples - cur["start"] > min_speech_samples:
        cur["end"] = audio_length_samples
        speeches.append(cur)
    for i, s in enumerate(speeches):
        if i == 0:
            s["start"] = int(max(0, s["start"] - speech_pad_samples))
        if i != len(speeches) - 1:
            gap = speeches[i + 1]["start"] - s["end"]
            if gap < 2 * speech_pad_samples:
                s["end"] += int(gap // 2)
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - gap // 2))
            else:
                s["end"] = int(min(audio_length_samples, s["end"] + speech_pad_samples))
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - speech_pad_samples))
        else:
            s["end"] = int(min(audio_length_samples, s["end"] + speech_pad_samples))
    return [(s["start"], s["end"]) for s in speeches]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wav", help="mono 16-kHz WAV file")
    ap.add_argument("--out", help="write JSON here instead of stdout")
    ap.add_argument("--model", help="ONNX model path (default: silero_vad/data/silero_vad.onnx)")
    ap.add_argument("--threshold", type=float, default=0.5)
    a = ap.parse_args(argv)
    audio, sr = sf.read(a.wav, dtype="float32", always_2d=True)
    if sr != SR or audio.shape[1] != 1:
        sys.exit(f"{a.wav}: need mono {SR} Hz, got {audio.shape[1]} ch at {sr} Hz")
    audio = np.ascontiguousarray(audio[:, 0])
    path = a.model or model_path()
    probs, t_run = speech_probs(audio, path)
    segs = speech_timestamps(probs, len(audio), threshold=a.threshold)
    secs = len(audio) / SR
    res = {
        "model": f"{path.rsplit('/', 1)[-1]} (silero-vad {metadata.version('silero-vad')})",
        "frame_s": FRAME / SR,
        "probs": probs,
        "segments": [[s / SR, e / SR] for s, e in segs],
        "segments_samples": [[s, e] for s, e in segs],
        "seconds_audio": secs,
        "seconds_compute": t_run,
        "x_real_time": secs / t_run if t_run > 0 else None,
    }
    text = json.dumps(res)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
