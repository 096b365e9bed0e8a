#!/usr/bin/env python3
"""Writes a model directory holding a small elliptical ViT classifier with seeded random weights.

The weights are random: the answers are meaningless, but the model exercises every part of the
serving path (config, safetensors, labels, elliptical attention). The test fixtures build on it;
the default models in models/ are trained ones (training/train.py).

    python tools/make_demo_model.py --out /tmp/models/demo-vit-classifier
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file

DEFAULT_CONFIG = {
    "family": "image_classifier",
    "weights": "model.safetensors",
    "labels": "labels.txt",
    "num_classes": 10,
    "dtype": "auto",
    "device": "auto",
    "vit": {"image_size": 32, "patch_size": 4, "in_channels": 3, "embed_dim": 96, "depth": 6,
            "num_heads": 3, "mlp_ratio": 4.0, "qkv_bias": True, "layer_norm_eps": 1e-6},
    "attention": {"mode": "elliptical", "estimator": "mean", "delta": 5.0},
    "preprocess": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
}


def vit_state_dict(vit: dict, num_classes: int, seed: int) -> dict:
    """Random tensors in timm's VisionTransformer layout. Larger than timm's init (std 0.02) so
    that the random model gives peaked, input-dependent answers that tests can tell apart."""
    g = torch.Generator().manual_seed(seed)
    d, p, c = vit["embed_dim"], vit["patch_size"], vit["in_channels"]
    hidden = int(d * vit["mlp_ratio"])
    n = (vit["image_size"] // p) ** 2

    def rnd(*shape, std=0.1):
        return (torch.randn(*shape, generator=g) * std).contiguous()

    sd = {
        "patch_embed.proj.weight": rnd(d, c, p, p, std=(1.0 / (c * p * p)) ** 0.5),
        "patch_embed.proj.bias": rnd(d, std=0.02),
        "cls_token": rnd(1, 1, d, std=0.5),
        "pos_embed": rnd(1, n + 1, d, std=0.5),
        "norm.weight": 1.0 + rnd(d, std=0.1),
        "norm.bias": rnd(d, std=0.1),
        "head.weight": rnd(num_classes, d, std=1.0 / d ** 0.5 * 3),
        "head.bias": rnd(num_classes, std=0.1),
    }
    for i in range(vit["depth"]):
        b = f"blocks.{i}."
        sd.update({
            b + "norm1.weight": 1.0 + rnd(d, std=0.1), b + "norm1.bias": rnd(d, std=0.1),
            b + "attn.qkv.weight": rnd(3 * d, d, std=d ** -0.5), b + "attn.qkv.bias": rnd(3 * d, std=0.05),
            b + "attn.proj.weight": rnd(d, d, std=d ** -0.5), b + "attn.proj.bias": rnd(d, std=0.05),
            b + "norm2.weight": 1.0 + rnd(d, std=0.1), b + "norm2.bias": rnd(d, std=0.1),
            b + "mlp.fc1.weight": rnd(hidden, d, std=d ** -0.5), b + "mlp.fc1.bias": rnd(hidden, std=0.05),
            b + "mlp.fc2.weight": rnd(d, hidden, std=hidden ** -0.5), b + "mlp.fc2.bias": rnd(d, std=0.05),
        })
    return sd


def write_classifier(out_dir: str, config: dict, labels: list, seed: int) -> dict:
    """Writes config.json, model.safetensors and labels.txt; returns the state dict."""
    os.makedirs(out_dir, exist_ok=True)
    sd = vit_state_dict(config["vit"], config["num_classes"], seed)
    save_file(sd, os.path.join(out_dir, config["weights"]), metadata={"seed": str(seed)})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    with open(os.path.join(out_dir, config["labels"]), "w") as f:
        f.write("\n".join(labels) + "\n")
    return sd


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="model directory to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    labels = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    write_classifier(args.out, DEFAULT_CONFIG, labels, args.seed)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
