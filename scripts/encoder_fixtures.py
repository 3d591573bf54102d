#!/usr/bin/env python3
"""Parity fixtures for sermo's Rust ports of the transformers wav2vec2 / HuBERT / WavLM encoders.

Writes tests/fixtures/encoders/<fixture>/ for five fixtures. Nothing is downloaded: every
model is built from a config with random weights (no pretrained checkpoint is used).

Pinned versions (the script refuses others):  torch==2.15.0  transformers==5.25.0
(plus numpy and safetensors).  Rerun from anywhere:

    python3 scripts/encoder_fixtures.py

It is deterministic (torch.manual_seed / torch.Generator / numpy default_rng seeds,
torch.set_num_threads(1), deterministic algorithms): rerunning rewrites byte-identical
files.

All models use attn_implementation="eager" (the explicit softmax(QK^T*scale + mask) V
path; WavLM always runs its own torch.nn.functional.multi_head_attention_forward path).

Tiny fixtures
=============
Common tiny config: hidden_size 32, 2 layers, 4 heads (head_dim 8), intermediate 64,
conv_dim (32,32,32), conv_kernel (10,3,3), conv_stride (5,2,2), pos conv kernel 16 /
4 groups, gelu everywhere, layer_norm_eps 1e-5, every dropout / layerdrop 0,
apply_spec_augment False but mask_time_prob 0.05 (so transformers still creates the unused
`masked_spec_embed` parameter, as in real checkpoints: loaders must ignore it).
Sequence-classification head: use_weighted_layer_sum True, classifier_proj_size 16,
num_labels 4.

  wav2vec2_group/  Wav2Vec2, feat_extract_norm "group", post-LN, conv_bias False.
                   Extractor do_normalize True, return_attention_mask False (no mask).
                   model.safetensors = Wav2Vec2ForSequenceClassification.save_pretrained
                   (keys `wav2vec2.*`, `projector.*`, `classifier.*`, `layer_weights`;
                   pos-conv weight norm as `...pos_conv_embed.conv.parametrizations.weight.
                   original0` (g, [1,1,16]) / `original1` (v, [32,8,16])), then rewritten
                   with two extra fake pre-training keys `quantizer.codevectors` [1,8,4] and
                   `project_q.weight` [4,4] that a loader must ignore. Has a train step.
  wav2vec2_layer/  Wav2Vec2, feat_extract_norm "layer", do_stable_layer_norm True (pre-LN),
                   conv_bias True. Extractor do_normalize True, return_attention_mask True.
                   pytorch_model.bin = torch.save (zip) of the bare Wav2Vec2Model state dict
                   (no prefix) with the OLD weight-norm names `encoder.pos_conv_embed.conv.
                   weight_g` / `weight_v`. The head is not in that file: its parameters are in
                   expected.safetensors as `head.layer_weights`, `head.projector.{weight,bias}`,
                   `head.classifier.{weight,bias}`.
  hubert/          HuBERT, group norm, post-LN, conv_bias False, feat_proj_layer_norm True
                   (the HubertConfig default, and what the original fairseq HuBERT checkpoints
                   such as hubert-base-ls960 have: the conversion script maps fairseq's
                   `layer_norm` onto `feature_projection.layer_norm`; only DistilHuBERT's
                   conversion sets it False). Extractor do_normalize False, no mask.
                   model.safetensors (metadata {"format": "pt"}) of
                   HubertForSequenceClassification (prefix `hubert.`) with OLD names
                   `weight_g` / `weight_v`.
  wavlm/           WavLM, group norm, post-LN, conv_bias False, num_buckets 32,
                   max_bucket_distance 64. Extractor do_normalize False,
                   return_attention_mask True (WavLM was trained with padding masks; this
                   also covers WavLM's own key-padding-mask path). pytorch_model.bin of
                   WavLMForSequenceClassification (prefix `wavlm.`), NEW parametrizations
                   names. Has a train step.

Every parameter is perturbed after the default init (which would hide bugs: norm weights 1,
biases 0, g = ||v||): p += 0.1 * randn * (p.std() if numel > 1 and std > 0 else 1); then
every LayerNorm / GroupNorm weight *= (1 + 0.2 * randn); the weight-norm g *= (1 + 0.3 *
rand); layer_weights += a random permutation of linspace(-1, 1, 3) (clearly non-uniform).

Input: two clips at 16 kHz, lengths 4000 and 2720 samples (sum of two sines plus a little
noise, peak ~0.3, numpy default_rng(1234), float32), given unpadded as a list to
Wav2Vec2FeatureExtractor(...)(clips, sampling_rate=16000, return_tensors="pt",
padding=True), which zero-pads clip 1 to 4000. NB: with do_normalize True and no
attention mask (wav2vec2_group) the extractor normalizes the *padded* row, zeros included.

expected.safetensors (float32 unless noted):
  audio [2,4000]                raw clips, zero-padded
  lengths [2] int64             4000, 2720
  input_values [2,4000]         the extractor's output for the batch
  attention_mask [2,4000] int64 only where the extractor returns one (and then the model
                                gets it; otherwise attention_mask=None)
  hidden_states.K [2,199,32]    K = 0..2, `<base>(input_values, attention_mask,
                                output_hidden_states=True).hidden_states` of the batch
  last_hidden_state [2,199,32]  wav2vec2_layer only (pre-LN): the model's last_hidden_state,
                                = encoder.layer_norm(hidden_states.2). In transformers 5.25
                                hidden_states[-1] is the raw last-layer output BEFORE that
                                final LayerNorm (capture_outputs(tie_last_hidden_states=False));
                                post-LN models: last_hidden_state == hidden_states.2.
  frame_lengths [2] int64       _get_feat_extract_output_lengths(lengths) = 199, 135
                                (for unmasked models the batch run still computes all
                                199 frames of clip 1: HF does not mask them)
  single.I.input_values [1,n_I] the extractor's output for clip I alone (own normalization)
  single.I.hidden_states.K [1,F_I,32]  clip I alone, unpadded (F_0 = 199, F_1 = 135)
  pooled [2,16]                 the HF head's pooled vector: softmax(layer_weights)-weighted
                                sum of the 3 hidden states, projector, then mean over frames
                                (no mask) or masked mean over the frame mask (mask)
  logits [2,4]                  ForSequenceClassification(input_values, attention_mask).logits
  head.* (wav2vec2_layer only)  head parameters, see above
  train.loss [1]                (wav2vec2_group, wavlm) model.train() (dropouts are all 0),
                                freeze_feature_encoder(), labels [1, 3], mean cross-entropy
  grad.<name>                   for every parameter with requires_grad after the freeze,
                                named as in that folder's weights file. The unused
                                `<prefix>.masked_spec_embed` gets no gradient from autograd
                                and is written as zeros.

Base-size check: wav2vec2_base_prng/
====================================
facebook/wav2vec2-base architecture (written out explicitly below; equal to the
Wav2Vec2Config defaults): hidden 768, 12 layers, 12 heads, ffn 3072, conv_dim 7 x 512,
conv_kernel (10,3,3,3,3,2,2), conv_stride (5,2,2,2,2,2,2), pos conv 128 / 16 groups,
feat_extract_norm "group", do_stable_layer_norm False, conv_bias False, eps 1e-5, gelu.
No weights are saved. Every tensor of the bare `Wav2Vec2Model(config).state_dict()`
(transformers-5 naming, no prefix, nothing skipped; 211 tensors, including
`masked_spec_embed` and `encoder.pos_conv_embed.conv.parametrizations.weight.original0/1`)
is filled by this counter-based generator, all integer arithmetic mod 2^64:

    splitmix64(x):
        x = x + 0x9E3779B97F4A7C15
        z = x
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB
        return z ^ (z >> 31)
    fnv1a64(name): h = 0xcbf29ce484222325; for each byte b of name.encode("utf-8"):
        h = (h ^ b) * 0x100000001b3 (mod 2^64)
    For tensor `name` with shape S (torch's order) and n = prod(S) elements, element i
    (row-major, i = 0..n-1):
        u = splitmix64(fnv1a64(name) + i)              (wrapping add)
        f = float64(u >> 40) / 16777216.0              (exact, in [0, 1))
        s = 2.0 * f - 1.0                              (float64, exact)
        if len(S) == 1 and name ends with "weight", "original0" or "weight_g":
            v = 1.0 + 0.1 * s                          (float64: multiply, then add)
        elif len(S) == 1:
            v = 0.1 * s
        else:
            v = s / sqrt(float64(n / S[0]))            (fan_in = n / S[0]; float64 sqrt
                                                        and divide, both IEEE-rounded)
        value = float32(v)                             (round to nearest even)
    Only the rank (len(S)) decides the branch: the pos-conv g `...original0` has shape
    [1,1,128], so it takes the last branch with fan_in = 128 / 1 = 128.

Input: 16000 samples, audio[i] = 0.5*sin(2*pi*220*i/16000) + 0.25*sin(2*pi*1234.5*i/16000),
computed in float64 (numpy) and cast to float32, then Wav2Vec2FeatureExtractor
(do_normalize=True, no attention mask) -> input_values [1,16000]. Wav2Vec2Model in eval
mode, output_hidden_states=True -> 13 hidden states of [1,49,768].

positions.json: config name, the generator description, `generator_samples` (FNV hash,
first splitmix64 output and a few values of four tensors, for a unit test of the
generator), input_values statistics, and for
hidden-state index K in {0, 1, 6, 12}: the values at frames {0, 1, 24, 48} x dims
{0, 1, 383, 767} (float32 values written as float64 numbers) plus `mean` and `mean_sq`,
the mean and the mean of squares of all 49*768 float32 values of that [49,768] hidden state
accumulated in float64.
"""
import hashlib
import json
import math
import os
import shutil
import sys
import warnings

import numpy as np

TORCH_VERSION = "2.15.0"
TRANSFORMERS_VERSION = "5.25.0"

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.numpy import save_file as np_save_file  # noqa: E402
from safetensors.torch import load_file as pt_load_file  # noqa: E402
from safetensors.torch import save_file as pt_save_file  # noqa: E402
from transformers import (  # noqa: E402
    HubertConfig,
    HubertForSequenceClassification,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForSequenceClassification,
    Wav2Vec2Model,
    WavLMConfig,
    WavLMForSequenceClassification,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "encoders")
SR = 16000
CLIP_LENGTHS = (4000, 2720)
LABELS = (1, 3)

TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    conv_dim=(32, 32, 32),
    conv_kernel=(10, 3, 3),
    conv_stride=(5, 2, 2),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
    hidden_act="gelu",
    feat_extract_activation="gelu",
    layer_norm_eps=1e-5,
    hidden_dropout=0.0,
    activation_dropout=0.0,
    attention_dropout=0.0,
    feat_proj_dropout=0.0,
    final_dropout=0.0,
    layerdrop=0.0,
    apply_spec_augment=False,
    mask_time_prob=0.05,  # keeps `masked_spec_embed` in the checkpoint; unused (see docstring)
    mask_feature_prob=0.0,
    use_weighted_layer_sum=True,
    classifier_proj_size=16,
    num_labels=4,
    attn_implementation="eager",
)

WN_G = "parametrizations.weight.original0"
WN_V = "parametrizations.weight.original1"


def check_versions() -> None:
    tv = torch.__version__.split("+")[0]
    if tv != TORCH_VERSION or transformers.__version__ != TRANSFORMERS_VERSION:
        sys.exit(
            f"needs torch=={TORCH_VERSION} and transformers=={TRANSFORMERS_VERSION}, found "
            f"torch {torch.__version__}, transformers {transformers.__version__}"
        )


# ----------------------------------------------------------------------------- inputs


def make_clips() -> list:
    rng = np.random.default_rng(1234)
    specs = [(220.0, 0.18, 1375.0, 0.09), (330.0, 0.15, 2100.0, 0.12)]
    clips = []
    for n, (f1, a1, f2, a2) in zip(CLIP_LENGTHS, specs):
        t = np.arange(n, dtype=np.float64) / SR
        ph = rng.uniform(0.0, 2.0 * np.pi, size=2)
        y = a1 * np.sin(2 * np.pi * f1 * t + ph[0]) + a2 * np.sin(2 * np.pi * f2 * t + ph[1])
        y = y + 0.02 * rng.standard_normal(n)
        clips.append(y.astype(np.float32))
    return clips


def padded(clips: list) -> np.ndarray:
    out = np.zeros((len(clips), max(len(c) for c in clips)), dtype=np.float32)
    for i, c in enumerate(clips):
        out[i, : len(c)] = c
    return out


def extractor(do_normalize: bool, return_attention_mask: bool) -> Wav2Vec2FeatureExtractor:
    return Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=SR,
        padding_value=0.0,
        do_normalize=do_normalize,
        return_attention_mask=return_attention_mask,
    )


def extract(fe, clips: list):
    enc = fe(clips, sampling_rate=SR, return_tensors="pt", padding=True)
    iv = enc["input_values"].to(torch.float32)
    mask = enc.get("attention_mask")
    return iv, mask


# ----------------------------------------------------------------------------- weights


def perturb(model, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            scale = 1.0
            if p.numel() > 1:
                sd = float(p.std())
                if sd > 0:
                    scale = sd
            p.add_(0.1 * torch.randn(p.shape, generator=g) * scale)
        for _, mod in model.named_modules():
            if isinstance(mod, (torch.nn.LayerNorm, torch.nn.GroupNorm)) and mod.weight is not None:
                mod.weight.mul_(1.0 + 0.2 * torch.randn(mod.weight.shape, generator=g))
        for name, p in model.named_parameters():
            if name.endswith(WN_G):
                p.mul_(1.0 + 0.3 * torch.rand(p.shape, generator=g))
            if name == "layer_weights":
                # spread out so that every layer gets a clearly different weight
                p.add_(torch.linspace(-1.0, 1.0, p.numel())[torch.randperm(p.numel(), generator=g)])
                w = torch.softmax(p, dim=0)
                gaps = (w[:, None] - w[None, :]).abs() + torch.eye(p.numel())
                assert float(gaps.min()) > 0.05, w


def old_wn_name(name: str) -> str:
    return name.replace(WN_G, "weight_g").replace(WN_V, "weight_v")


def clean_state_dict(sd: dict, rename_old: bool = False, strip: str = "") -> dict:
    out = {}
    for k, v in sd.items():
        if strip:
            if not k.startswith(strip):
                continue
            k = k[len(strip):]
        if rename_old:
            k = old_wn_name(k)
        out[k] = v.detach().to(torch.float32).contiguous().clone()
    return out


# ----------------------------------------------------------------------------- runs


def base_of(model):
    return getattr(model, model.base_model_prefix)


def run_base(model, iv, mask, with_last: bool = False):
    with torch.no_grad():
        out = base_of(model)(iv, attention_mask=mask, output_hidden_states=True)
    hs = [h.detach().clone() for h in out.hidden_states]
    return (hs, out.last_hidden_state.detach().clone()) if with_last else hs


def pooled_of(model, hidden_states: list, mask) -> torch.Tensor:
    """Reproduces the HF ForSequenceClassification pooling (use_weighted_layer_sum=True)."""
    with torch.no_grad():
        hs = torch.stack(hidden_states, dim=1)
        w = torch.nn.functional.softmax(model.layer_weights, dim=-1)
        hs = (hs * w.view(-1, 1, 1)).sum(dim=1)
        hs = model.projector(hs)
        if mask is None:
            return hs.mean(dim=1)
        frame_mask = model._get_feature_vector_attention_mask(hs.shape[1], mask)
        hs = hs.masked_fill(~frame_mask.unsqueeze(-1), 0.0)
        return hs.sum(dim=1) / frame_mask.sum(dim=1).view(-1, 1)


def np32(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))


def np64i(t) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(t, dtype=np.int64))


def forward_fixture(model, fe, clips) -> dict:
    """Everything in expected.safetensors except the train step and head parameters."""
    model.eval()
    exp = {}
    iv, mask = extract(fe, clips)
    exp["audio"] = padded(clips)
    exp["lengths"] = np64i(CLIP_LENGTHS)
    exp["input_values"] = np32(iv)
    if mask is not None:
        exp["attention_mask"] = np64i(mask.numpy())
    hs, last = run_base(model, iv, mask, with_last=True)
    assert len(hs) == model.config.num_hidden_layers + 1
    for k, h in enumerate(hs):
        exp[f"hidden_states.{k}"] = np32(h)
    if model.config.do_stable_layer_norm:
        # pre-LN: hidden_states[-1] is the last layer's raw output, last_hidden_state is
        # encoder.layer_norm of it (post-LN models: the two are the same tensor)
        assert float((last - hs[-1]).abs().max()) > 1e-3
        exp["last_hidden_state"] = np32(last)
    else:
        assert torch.equal(last, hs[-1])
    exp["frame_lengths"] = np64i(
        model._get_feat_extract_output_lengths(torch.tensor(CLIP_LENGTHS, dtype=torch.long)).numpy()
    )
    for i, clip in enumerate(clips):
        siv, smask = extract(fe, [clip])
        exp[f"single.{i}.input_values"] = np32(siv)
        for k, h in enumerate(run_base(model, siv, smask)):
            exp[f"single.{i}.hidden_states.{k}"] = np32(h)
    pooled = pooled_of(model, hs, mask)
    with torch.no_grad():
        logits = model(iv, attention_mask=mask).logits
        again = model.classifier(pooled)
    diff = float((again - logits).abs().max())
    assert diff < 1e-5, f"pooled vector does not reproduce the HF logits (max diff {diff})"
    exp["pooled"] = np32(pooled)
    exp["logits"] = np32(logits)
    return exp


def train_step(model, fe, clips, name_map) -> dict:
    iv, mask = extract(fe, clips)
    model.train()
    model.freeze_feature_encoder()
    model.zero_grad(set_to_none=True)
    out = model(iv, attention_mask=mask, labels=torch.tensor(LABELS, dtype=torch.long))
    out.loss.backward()
    exp = {"train.loss": np32(out.loss.detach().reshape(1))}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        grad = p.grad if p.grad is not None else torch.zeros_like(p)
        exp[f"grad.{name_map(name)}"] = np32(grad)
    model.eval()
    model.zero_grad(set_to_none=True)
    return exp


# ----------------------------------------------------------------------------- output


def fresh_dir(name: str) -> str:
    d = os.path.join(OUT, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    return d


def save_expected(d: str, exp: dict) -> None:
    # a single metadata entry: safetensors writes the metadata map in hash order, so several
    # entries would make the header bytes differ from run to run
    meta = {
        "generator": f"scripts/encoder_fixtures.py, torch {TORCH_VERSION}, transformers {TRANSFORMERS_VERSION}",
    }
    np_save_file(exp, os.path.join(d, "expected.safetensors"), metadata=meta)


def save_config(d: str, config, architecture: str) -> None:
    config.architectures = [architecture]
    config.save_pretrained(d)


def fix_modes(d: str) -> None:
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)


def tiny_config(cls, **extra):
    kw = dict(TINY)
    kw.update(extra)
    return cls(**kw)


def fixture_wav2vec2_group(clips) -> None:
    d = fresh_dir("wav2vec2_group")
    config = tiny_config(
        Wav2Vec2Config, feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False,
        feat_quantizer_dropout=0.0,
    )
    torch.manual_seed(101)
    model = Wav2Vec2ForSequenceClassification(config).eval()
    perturb(model, 1001)
    fe = extractor(do_normalize=True, return_attention_mask=False)
    fe.save_pretrained(d)
    model.config.architectures = ["Wav2Vec2ForSequenceClassification"]
    model.save_pretrained(d)
    # add fake pre-training tensors that a loader must ignore
    path = os.path.join(d, "model.safetensors")
    weights = pt_load_file(path)
    g = torch.Generator().manual_seed(1002)
    weights["quantizer.codevectors"] = torch.rand((1, 8, 4), generator=g)
    weights["project_q.weight"] = torch.randn((4, 4), generator=g)
    pt_save_file(weights, path, metadata={"format": "pt"})
    exp = forward_fixture(model, fe, clips)
    exp.update(train_step(model, fe, clips, lambda n: n))
    save_expected(d, exp)
    fix_modes(d)


def fixture_wav2vec2_layer(clips) -> None:
    d = fresh_dir("wav2vec2_layer")
    config = tiny_config(
        Wav2Vec2Config, feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True,
        feat_quantizer_dropout=0.0,
    )
    torch.manual_seed(201)
    model = Wav2Vec2ForSequenceClassification(config).eval()
    perturb(model, 2001)
    fe = extractor(do_normalize=True, return_attention_mask=True)
    fe.save_pretrained(d)
    save_config(d, model.config, "Wav2Vec2Model")
    sd = clean_state_dict(model.state_dict(), rename_old=True, strip="wav2vec2.")
    torch.save(sd, os.path.join(d, "pytorch_model.bin"))
    exp = forward_fixture(model, fe, clips)
    for name in ("layer_weights", "projector.weight", "projector.bias", "classifier.weight", "classifier.bias"):
        exp[f"head.{name}"] = np32(model.state_dict()[name])
    save_expected(d, exp)
    fix_modes(d)


def fixture_hubert(clips) -> None:
    d = fresh_dir("hubert")
    config = tiny_config(
        HubertConfig, feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False,
        feat_proj_layer_norm=True, conv_pos_batch_norm=False,
    )
    torch.manual_seed(301)
    model = HubertForSequenceClassification(config).eval()
    perturb(model, 3001)
    fe = extractor(do_normalize=False, return_attention_mask=False)
    fe.save_pretrained(d)
    model.config.architectures = ["HubertForSequenceClassification"]
    model.save_pretrained(d)
    path = os.path.join(d, "model.safetensors")
    weights = {old_wn_name(k): v.contiguous() for k, v in pt_load_file(path).items()}
    pt_save_file(weights, path, metadata={"format": "pt"})
    exp = forward_fixture(model, fe, clips)
    save_expected(d, exp)
    fix_modes(d)


def fixture_wavlm(clips) -> None:
    d = fresh_dir("wavlm")
    config = tiny_config(
        WavLMConfig, feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False,
        num_buckets=32, max_bucket_distance=64,
    )
    torch.manual_seed(401)
    model = WavLMForSequenceClassification(config).eval()
    perturb(model, 4001)
    fe = extractor(do_normalize=False, return_attention_mask=True)
    fe.save_pretrained(d)
    save_config(d, model.config, "WavLMForSequenceClassification")
    torch.save(clean_state_dict(model.state_dict()), os.path.join(d, "pytorch_model.bin"))
    exp = forward_fixture(model, fe, clips)
    exp.update(train_step(model, fe, clips, lambda n: n))
    save_expected(d, exp)
    fix_modes(d)


# ----------------------------------------------------------------------------- base PRNG

M64 = (1 << 64) - 1


def splitmix64(x: np.ndarray) -> np.ndarray:
    assert x.dtype == np.uint64
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        z = x
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def splitmix64_int(x: int) -> int:
    """Pure-Python reference (explicit mod 2^64), used to check the numpy version."""
    x = (x + 0x9E3779B97F4A7C15) & M64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def fnv1a64(name: str) -> int:
    h = 0xCBF29CE484222325
    for b in name.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def prng_values(name: str, shape) -> np.ndarray:
    n = int(np.prod(shape)) if len(shape) else 1
    with np.errstate(over="ignore"):
        idx = np.uint64(fnv1a64(name)) + np.arange(n, dtype=np.uint64)
    u = splitmix64(idx)
    f = (u >> np.uint64(40)).astype(np.float64) / 16777216.0
    s = 2.0 * f - 1.0
    if len(shape) == 1 and (name.endswith("weight") or name.endswith("original0") or name.endswith("weight_g")):
        v = 1.0 + 0.1 * s
    elif len(shape) == 1:
        v = 0.1 * s
    else:
        fan_in = n / shape[0]
        v = s / math.sqrt(fan_in)
    return v.astype(np.float32).reshape(shape)


def check_prng() -> None:
    # the numpy path must equal explicit mod-2^64 integer arithmetic, including the wrap of
    # the counter add
    for name in ("encoder.layers.0.attention.q_proj.weight", "masked_spec_embed"):
        h = fnv1a64(name)
        for i in (0, 1, 2, 12345, (1 << 64) - h - 1, (1 << 64) - h, (1 << 64) - h + 7):
            i &= M64
            with np.errstate(over="ignore"):
                a = int(splitmix64(np.array([np.uint64(h) + np.uint64(i)], dtype=np.uint64))[0])
            b = splitmix64_int((h + i) & M64)
            assert a == b, (name, i, a, b)
    # FNV-1a test vectors
    assert fnv1a64("") == 0xCBF29CE484222325
    assert fnv1a64("a") == 0xAF63DC4C8601EC8C
    assert fnv1a64("foobar") == 0x85944171F73967E8


def generator_samples() -> list:
    """A few generated values, for a bit-exact unit test of a reimplementation."""
    out = []
    for name, shape in (
        ("masked_spec_embed", (768,)),
        ("feature_extractor.conv_layers.0.layer_norm.weight", (512,)),
        ("encoder.layers.0.attention.q_proj.weight", (768, 768)),
        ("encoder.pos_conv_embed.conv.parametrizations.weight.original0", (1, 1, 128)),
    ):
        h = fnv1a64(name)
        vals = prng_values(name, shape).reshape(-1)
        out.append(
            {
                "name": name,
                "shape": list(shape),
                "fnv1a64": f"0x{h:016x}",
                "splitmix64_of_element_0": f"0x{splitmix64_int(h):016x}",
                "first_values": [float(v) for v in vals[:4]],
                "last_value": float(vals[-1]),
            }
        )
    return out


BASE_ARCH = dict(
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    conv_dim=(512, 512, 512, 512, 512, 512, 512),
    conv_kernel=(10, 3, 3, 3, 3, 2, 2),
    conv_stride=(5, 2, 2, 2, 2, 2, 2),
    conv_bias=False,
    num_conv_pos_embeddings=128,
    num_conv_pos_embedding_groups=16,
    feat_extract_norm="group",
    feat_extract_activation="gelu",
    hidden_act="gelu",
    do_stable_layer_norm=False,
    layer_norm_eps=1e-5,
)

GENERATOR_DOC = (
    "Every tensor of Wav2Vec2Model(config).state_dict() (transformers-5 names, no prefix, nothing "
    "skipped). All integer arithmetic mod 2^64. splitmix64(x): x = x + 0x9E3779B97F4A7C15; z = x; "
    "z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB; "
    "return z ^ (z >> 31). fnv1a64(name): h = 0xcbf29ce484222325; for each UTF-8 byte b: "
    "h = (h ^ b) * 0x100000001b3. Tensor `name`, shape S, n = prod(S) elements, element i "
    "(row-major): u = splitmix64(fnv1a64(name) + i) (wrapping add); f = float64(u >> 40) / 16777216.0; "
    "s = 2.0 * f - 1.0; if len(S) == 1 and name ends with 'weight', 'original0' or 'weight_g': "
    "v = 1.0 + 0.1 * s; elif len(S) == 1: v = 0.1 * s; else: v = s / sqrt(float64(n / S[0])); "
    "value = float32(v) (round to nearest). float64 throughout; the rank alone decides the branch "
    "(the pos-conv g 'encoder.pos_conv_embed.conv.parametrizations.weight.original0' has shape "
    "[1,1,128]: last branch, fan_in 128)."
)


def fixture_base_prng() -> None:
    d = fresh_dir("wav2vec2_base_prng")
    check_prng()
    config = Wav2Vec2Config(**BASE_ARCH, attn_implementation="eager")
    torch.manual_seed(501)
    model = Wav2Vec2Model(config).eval()
    sd = model.state_dict()
    filled = {k: torch.from_numpy(prng_values(k, tuple(v.shape))) for k, v in sd.items()}
    model.load_state_dict(filled, strict=True)
    for k, v in model.state_dict().items():  # every tensor really holds the generated values
        assert torch.equal(v, filled[k]), k
    fe = extractor(do_normalize=True, return_attention_mask=False)
    fe.save_pretrained(d)
    save_config(d, model.config, "Wav2Vec2Model")

    i = np.arange(SR, dtype=np.float64)
    audio = (0.5 * np.sin(2 * np.pi * 220 * i / SR) + 0.25 * np.sin(2 * np.pi * 1234.5 * i / SR)).astype(
        np.float32
    )
    iv, mask = extract(fe, [audio])
    assert mask is None
    with torch.no_grad():
        out = model(iv, output_hidden_states=True)
    hs = out.hidden_states
    assert len(hs) == 13 and tuple(hs[0].shape) == (1, 49, 768)

    frames = [0, 1, 24, 48]
    dims = [0, 1, 383, 767]
    states = {}
    for k in (0, 1, 6, 12):
        h = hs[k][0].to(torch.float32)
        h64 = h.to(torch.float64)
        states[str(k)] = {
            "values": [[float(h[f, c]) for c in dims] for f in frames],
            "mean": float(h64.mean()),
            "mean_sq": float((h64 * h64).mean()),
        }
    iv64 = iv[0].to(torch.float64)
    doc = {
        "config": "facebook/wav2vec2-base architecture (Wav2Vec2Config defaults), random weights",
        "transformers": TRANSFORMERS_VERSION,
        "torch": TORCH_VERSION,
        "generator": GENERATOR_DOC,
        "parameter_tensors": len(sd),
        "parameter_count": int(sum(v.numel() for v in sd.values())),
        "generator_samples": generator_samples(),
        "input": "audio[i] = 0.5*sin(2*pi*220*i/16000) + 0.25*sin(2*pi*1234.5*i/16000), i = 0..15999, "
        "float64 then float32; Wav2Vec2FeatureExtractor(do_normalize=True) -> input_values [1,16000]",
        "input_values": {
            "first": [float(v) for v in iv[0, :4]],
            "mean": float(iv64.mean()),
            "mean_sq": float((iv64 * iv64).mean()),
        },
        "hidden_state_shape": [1, 49, 768],
        "num_hidden_states": len(hs),
        "frames": frames,
        "dims": dims,
        "hidden_states": states,
    }
    with open(os.path.join(d, "positions.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    fix_modes(d)


# ----------------------------------------------------------------------------- main


def main() -> None:
    check_versions()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    # WavLM passes a bool key_padding_mask with a float attn_mask to F.multi_head_attention_forward
    warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    os.makedirs(OUT, exist_ok=True)
    clips = make_clips()
    fixture_wav2vec2_group(clips)
    fixture_wav2vec2_layer(clips)
    fixture_hubert(clips)
    fixture_wavlm(clips)
    fixture_base_prng()
    for root, _, files in sorted(os.walk(OUT)):
        for f in sorted(files):
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()[:16]
            print(f"{os.path.relpath(p, ROOT)}  {os.path.getsize(p):>8}  {digest}")


if __name__ == "__main__":
    main()
