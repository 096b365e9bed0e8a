#!/usr/bin/env python3
"""Model directories and inputs for the GPU serving benchmarks, made where they run (a DeiT-Base
checkpoint or a 200M-parameter LM would not fit the device tool's 64 MiB carry; these take
seconds to write):

    classifier --shape deit_small --out DIR   a DeiT-shaped ViT classifier (224 px, patch 16,
                                               1000 classes), seeded random weights, timm's
                                               preprocessing (shorter side, centre crop, bicubic)
    image --out FILE.jpg                       a 500 x 375 JPEG photograph-like picture (quality 90)
    lm --shape kjv --out DIR                   the shipped kjv-lm, its end-of-sequence logit
                                               suppressed so every stream runs to max_new_tokens
    lm --shape wide --out DIR                  an LM of 16 layers, d_model 1024 (16 heads of 64),
                                               d_inner 4096, 256 positions, with kjv-lm's tokenizer
                                               (vocabulary 2048), seeded random bf16 weights, EOS
                                               suppressed;
                                               --d-model/--layers/... shrink it (the CPU form)

Random weights of the right shapes measure speed, not answers. Both LMs get a KV-cache budget
(generation.max_cache_mb) with room for 256 running streams.
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))

DEIT = {"deit_tiny": (192, 3), "deit_small": (384, 6), "deit_base": (768, 12)}


def classifier(args):
    from make_demo_model import write_classifier

    embed, heads = DEIT[args.shape]
    config = {
        "family": "image_classifier", "weights": "model.safetensors", "labels": "labels.txt",
        "num_classes": 1000, "dtype": args.dtype, "device": "auto",
        "vit": {"image_size": 224, "patch_size": 16, "in_channels": 3, "embed_dim": embed, "depth": 12,
                "num_heads": heads, "mlp_ratio": 4.0, "qkv_bias": True, "layer_norm_eps": 1e-6},
        "attention": {"mode": args.attention, "estimator": "mean", "delta": 5.0},
        "preprocess": {"resize": "shorter_side_then_center_crop", "interpolation": "bicubic", "crop_pct": 0.875,
                       "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        "batching": {"max_batch_size": args.max_batch_size, "max_queue_delay_ms": 2},
    }
    write_classifier(args.out, config, [f"class_{i}" for i in range(1000)], seed=7)
    print(f"wrote {args.out} ({args.shape}, {args.attention})")


def image(args):
    from PIL import Image

    h, w = args.height, args.width
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    g = np.random.default_rng(3)
    # Smooth gradients, a few discs and some noise: a JPEG of typical size and entropy.
    rgb = np.stack([120 + 100 * np.sin(x / 37 + y / 53), 90 + 80 * np.cos(y / 29), 60 + 0.3 * x], -1)
    for _ in range(6):
        cx, cy, r = g.uniform(0, w), g.uniform(0, h), g.uniform(20, 90)
        rgb[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = g.uniform(0, 255, 3)
    rgb += g.normal(0, 12, rgb.shape)
    Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(args.out, quality=90)
    print(f"wrote {args.out} ({w} x {h}, {os.path.getsize(args.out)} bytes)")


def eos_id(tokenizer):
    import sentencepiece as spm
    return spm.SentencePieceProcessor(model_file=tokenizer).eos_id()


def lm(args):
    source = os.path.join(ROOT, "models", "kjv-lm")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(source, "config.json")) as f:
        config = json.load(f)
    shutil.copy(os.path.join(source, "tokenizer.model"), os.path.join(args.out, "tokenizer.model"))
    eos = eos_id(os.path.join(source, "tokenizer.model"))
    if args.shape == "kjv":
        sd = load_file(os.path.join(source, "model.safetensors"))
    else:
        d, layers, heads, hd, di = args.d_model, args.layers, args.heads, args.head_dim, args.d_inner
        vocab = config["vocab_size"]
        g = torch.Generator().manual_seed(11)

        def rnd(*shape, std=0.02, mean=0.0):
            return (mean + torch.randn(*shape, generator=g) * std).to(torch.bfloat16).contiguous()

        sd = {"word_emb.weight": rnd(vocab, d, std=d ** -0.5), "out.bias": rnd(vocab, std=0.1)}
        for i in range(layers):
            o = f"layers.{i}."
            sd.update({o + "attn.q_net.weight": rnd(heads * hd, d, std=d ** -0.5),
                       o + "attn.kv_net.weight": rnd(2 * heads * hd, d, std=d ** -0.5),
                       o + "attn.o_net.weight": rnd(d, heads * hd, std=(heads * hd) ** -0.5),
                       o + "attn.layer_norm.weight": rnd(d, mean=1.0), o + "attn.layer_norm.bias": rnd(d),
                       o + "ff.fc1.weight": rnd(di, d, std=d ** -0.5), o + "ff.fc1.bias": rnd(di),
                       o + "ff.fc2.weight": rnd(d, di, std=di ** -0.5), o + "ff.fc2.bias": rnd(d),
                       o + "ff.layer_norm.weight": rnd(d, mean=1.0), o + "ff.layer_norm.bias": rnd(d)})
        config["lm"].update({"d_model": d, "num_layers": layers, "num_heads": heads, "head_dim": hd, "d_inner": di,
                             "embed_scale": d ** 0.5, "max_positions": args.max_positions})
        config["attention"]["score_scale"] = hd ** -0.5
    # Random or not, a sampled end-of-sequence would end a stream early: tokens/s would then
    # measure shorter requests at lower occupancy than the concurrency asks for.
    sd["out.bias"] = sd["out.bias"].clone()
    sd["out.bias"][eos] = -1e4
    save_file(sd, os.path.join(args.out, "model.safetensors"))
    config["generation"]["max_new_tokens_limit"] = max(config["generation"].get("max_new_tokens_limit", 0), 256)
    # Room in the KV cache for every stream the benchmark runs: the default budget (512 MB) holds
    # 15 of the wide model's slots, which would cap 256 streams at 15 running. This is a cap, not
    # an allocation: the cache takes max_running slots of the model's dtype.
    config["generation"]["max_cache_mb"] = args.max_cache_mb
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    params = sum(t.numel() for t in sd.values())
    print(f"wrote {args.out} ({args.shape}: {config['lm']['num_layers']} layers, d_model {config['lm']['d_model']}, "
          f"{params / 1e6:.1f}M parameters, end of sequence suppressed)")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("classifier")
    c.add_argument("--shape", choices=sorted(DEIT), default="deit_small")
    c.add_argument("--attention", choices=["elliptical", "dot_product"], default="elliptical")
    c.add_argument("--dtype", default="auto")
    c.add_argument("--max-batch-size", type=int, default=32)
    c.add_argument("--out", required=True)
    i = sub.add_parser("image")
    i.add_argument("--out", required=True)
    i.add_argument("--width", type=int, default=500)
    i.add_argument("--height", type=int, default=375)
    m = sub.add_parser("lm")
    m.add_argument("--shape", choices=["kjv", "wide"], default="kjv")
    m.add_argument("--out", required=True)
    m.add_argument("--d-model", type=int, default=1024)
    m.add_argument("--layers", type=int, default=16)
    m.add_argument("--heads", type=int, default=16)
    m.add_argument("--head-dim", type=int, default=64)
    m.add_argument("--d-inner", type=int, default=4096)
    m.add_argument("--max-positions", type=int, default=256, help="wide: context (prompt + 64 new tokens fit)")
    m.add_argument("--max-cache-mb", type=int, default=16384, help="generation.max_cache_mb")
    args = p.parse_args()
    torch.set_num_threads(min(8, torch.get_num_threads()))
    {"classifier": classifier, "image": image, "lm": lm}[args.what](args)


if __name__ == "__main__":
    main()
