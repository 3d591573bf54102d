#!/usr/bin/env python3
"""Write a random-init encoder checkpoint folder (for speed and memory benchmarks).

Nothing is downloaded: the model is built from its config class's defaults, which are
the architectures of the hub's base checkpoints:

    --model-type wav2vec2 --config base   Wav2Vec2Config()  = facebook/wav2vec2-base
    --model-type hubert   --config base   HubertConfig()    = facebook/hubert-base-ls960
    --model-type wavlm    --config base   WavLMConfig()     = microsoft/wavlm-base

(12 layers, hidden 768, 12 heads, intermediate 3072, 7 convolutions of 512 channels,
group norm, post-LN; 94-95 M parameters). The folder gets `model.safetensors` and
`config.json` (`save_pretrained`) and the `preprocessor_config.json` of a
`Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False)`. The
weights are seeded (`--seed`, default 0), so a rerun writes the same tensors. The
weights are random: the outputs mean nothing, only their cost does.

    python3 scripts/make_random_encoder.py out/encoders/wav2vec2-base-random
    python3 scripts/make_random_encoder.py --model-type wavlm out/encoders/wavlm-base-random

Needs torch and transformers (tested with torch==2.15.0, transformers==5.25.0).
"""
import argparse
import sys

try:
    import torch
    from transformers import (
        HubertConfig,
        HubertModel,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Model,
        WavLMConfig,
        WavLMModel,
    )
except ImportError as e:  # pragma: no cover
    sys.exit(f"make_random_encoder.py needs torch and transformers: {e}")

FAMILIES = {
    "wav2vec2": (Wav2Vec2Config, Wav2Vec2Model),
    "hubert": (HubertConfig, HubertModel),
    "wavlm": (WavLMConfig, WavLMModel),
}
# Config overrides per named size, on top of the class defaults (which are "base").
SIZES = {"base": {}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder to write (created; existing files are overwritten)")
    ap.add_argument("--model-type", choices=sorted(FAMILIES), default="wav2vec2")
    ap.add_argument("--config", choices=sorted(SIZES), default="base")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    config_cls, model_cls = FAMILIES[args.model_type]
    # No SpecAugment masking (it is off in eval anyway): the `masked_spec_embed`
    # parameter is still created, as in the real checkpoints.
    config = config_cls(**SIZES[args.config])
    torch.manual_seed(args.seed)
    model = model_cls(config).eval()
    model.save_pretrained(args.out, safe_serialization=True)
    Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=False,
    ).save_pretrained(args.out)
    n = sum(p.numel() for p in model.parameters())
    print(f"{args.out}: random {args.model_type} {args.config} ({n / 1e6:.1f} M parameters, seed {args.seed})")


if __name__ == "__main__":
    main()
