"""Time a transformers encoder (PyTorch, CPU) on clips written by benches/encoder.rs.

Usage: python3 torch_encoder.py FOLDER RAW_F32 LENGTHS_TXT THREADS
FOLDER: a checkpoint folder (config.json, model.safetensors, preprocessor_config.json);
RAW_F32: concatenated float32 little-endian samples (16 kHz); LENGTHS_TXT: one length
per line. Runs every clip on its own (batch 1, no grad, eval mode), with the folder's
Wav2Vec2FeatureExtractor (its normalization) and every hidden state returned, as
sermo's `Pretrained::run` with all layers; `torch.set_num_threads(THREADS)`; best of
SERMO_BENCH_PASSES (default 2) passes after one warm-up clip. Prints JSON
{"seconds", "cpu_seconds", "audio_seconds", "frames", "threads", "torch",
"transformers", "attn", "split"}; with SERMO_BENCH_SPLIT=1, "split" is
[[part, seconds], ...] from one more pass timed by forward hooks.
Exit 77 without torch / transformers.
"""
import json
import os
import sys
import time

try:
    import numpy as np
    import torch
    import transformers
    from transformers import AutoModel, Wav2Vec2FeatureExtractor
except ImportError:  # pragma: no cover
    sys.exit(77)

folder, raw_path, lengths_path, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
passes = max(1, int(os.environ.get("SERMO_BENCH_PASSES", "2")))
torch.set_num_threads(threads)
try:
    torch.set_num_interop_threads(1)
except RuntimeError:
    pass

raw = np.fromfile(raw_path, dtype="<f4")
lengths = [int(x) for x in open(lengths_path).read().split()]
clips, o = [], 0
for n in lengths:
    clips.append(raw[o : o + n])
    o += n
sr = 16000

# AutoModel gives Wav2Vec2Model / HubertModel / WavLMModel from config.json.
model = AutoModel.from_pretrained(folder).eval()
fe = Wav2Vec2FeatureExtractor.from_pretrained(folder)


def one(y):
    x = fe(y, sampling_rate=sr, return_tensors="pt")
    out = model(x.input_values, output_hidden_states=True)
    return out.hidden_states[-1].shape[1]


def split():
    """One more pass with each part timed by forward hooks: [[name, seconds], ...]."""
    acc, start, handles = {}, {}, []

    def add(name, mod):
        def pre(m, a):
            start[id(m)] = time.perf_counter()

        def post(m, a, o):
            acc[name] = acc.get(name, 0.0) + time.perf_counter() - start[id(m)]

        handles.append(mod.register_forward_pre_hook(pre))
        handles.append(mod.register_forward_hook(post))

    for i, c in enumerate(model.feature_extractor.conv_layers):
        add(f"conv{i}", c)
    add("projection", model.feature_projection)
    enc = model.encoder
    add("pos_conv", enc.pos_conv_embed)
    for layer in enc.layers:
        add("attention", layer.attention)
        add("ff", layer.feed_forward)
    total = 0.0
    for y in clips:
        t = time.perf_counter()
        one(y)
        total += time.perf_counter() - t
    for h in handles:
        h.remove()
    acc["rest (extractor, norms, residuals)"] = total - sum(acc.values())
    return [[k, v] for k, v in acc.items()]


best, cpu, frames = float("inf"), float("nan"), 0
with torch.inference_mode():
    one(clips[0])
    for _ in range(passes):
        t, c = time.perf_counter(), time.process_time()
        frames = sum(one(y) for y in clips)
        s = time.perf_counter() - t
        if s < best:
            best, cpu = s, time.process_time() - c
    parts = split() if os.environ.get("SERMO_BENCH_SPLIT") == "1" else None
print(
    json.dumps(
        {
            "seconds": best,
            "cpu_seconds": cpu,
            "split": parts,
            "audio_seconds": sum(lengths) / sr,
            "frames": frames,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "attn": getattr(model.config, "_attn_implementation", None),
        }
    )
)
