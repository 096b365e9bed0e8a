#!/usr/bin/env python3
"""A timm DeiT converted by tools/convert_checkpoint.py and served by the real server gives the
probabilities of timm's own eval pipeline on PNG files of several sizes: the converter writes
timm's data config (crop_pct, interpolation, mean, std) and the server resizes, crops and
normalises as timm.data.create_transform does on a PIL image.

    python tests/integration/timm_preprocess_test.py --server-binary build/server/elliptical-server

The models are small random timm VisionTransformers (no downloads), pickled with a
pretrained_cfg as timm's DeiT configs have, adapted to their 32-pixel input; the converter reads
that cfg (timm.data.resolve_data_config) from the pickle. PNG only: the server's JPEG pixels
are PIL's (both decode with libjpeg-turbo's integer IDCT and upsampling, which
tests/server/image_decoder_test.cc checks against Pillow), so a JPEG here would test the decoder
again, not the preprocessing.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import timm.data
import torch
from PIL import Image
from timm.models.vision_transformer import VisionTransformer

from elliptical_client import Client, ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
import checks  # noqa: E402
from checks import check  # noqa: E402
from server import start_server, stop_server  # noqa: E402

CONVERTER = os.path.join(HERE, "..", "..", "tools", "convert_checkpoint.py")
SIZE, PATCH, DIM, DEPTH, HEADS, CLASSES = 32, 8, 48, 3, 3, 10
# name -> the pretrained_cfg fields that differ between the two (timm's DeiT: bicubic, 0.9).
MODELS = {"deit-bicubic": {"interpolation": "bicubic", "crop_pct": 0.9,
                           "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)},
          "deit-bilinear": {"interpolation": "bilinear", "crop_pct": 0.95,
                            "mean": (0.5, 0.4, 0.3), "std": (0.25, 0.2, 0.3)}}
# (width, height): downscaled and upscaled, landscape, portrait, square, already 32 on one side,
# and odd margins (torchvision's CenterCrop rounds half offsets to even).
IMAGES = [(40, 30), (23, 57), (100, 100), (32, 32), (300, 120), (33, 70), (71, 36)]

# Tolerance. Both sides run the same float32 network on the same input tensor (equal bytes after
# resize and crop, then the same ToTensor and Normalize operations); they differ only in the order
# of their float32 sums (timm's PyTorch modules against the server's LibTorch ViT). As in
# tests/support/float32_tolerance.h: each of R sequential reductions of length at most n adds a
# relative error of at most lambda * sqrt(n) * u (u = 2^-24, lambda = 4, probabilistic bound of
# Higham and Mary), R = 10 per block with the embedding and head as one block more, doubled for two
# evaluations: logits agree to tol * max(1, |logit|). Softmax's Jacobian has infinity norm at most
# 1/2, so each probability moves by at most half the largest logit error, plus a few float32 ulps
# of the softmax itself.
U, LAMBDA = 2.0 ** -24, 4.0
LOGIT_TOL = 2 * (DEPTH + 1) * 10 * LAMBDA * math.sqrt(max(DIM, 4 * DIM, 1 + (SIZE // PATCH) ** 2)) * U


def random_deit(seed, cfg):
    """A timm VisionTransformer with weights large enough that the logits vary (timm's init gives
    near-constant ones), carrying a DeiT-like pretrained_cfg for its 32-pixel input."""
    torch.manual_seed(seed)
    model = VisionTransformer(img_size=SIZE, patch_size=PATCH, embed_dim=DIM, depth=DEPTH, num_heads=HEADS,
                              num_classes=CLASSES, class_token=True, global_pool="token")
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            std = 0.5 if name in ("cls_token", "pos_embed") else p[0].numel() ** -0.5 if p.dim() >= 2 else 0.1
            p.add_(torch.randn(p.shape, generator=g) * std)
    model.pretrained_cfg = dict(input_size=(3, SIZE, SIZE), crop_mode="center", num_classes=CLASSES, **cfg)
    return model.eval()


def picture(index, width, height):
    """Edges, gradients and noise, so that where the crop falls changes the class scores."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 127 + 120 * np.sin(x / (2.0 + index) + y / 5.0)
    g = 255 * (y / max(height - 1, 1)) ** (1 + index % 3)
    b = np.where((x - width * 0.3) ** 2 + (y - height * 0.7) ** 2 < (min(width, height) / 4) ** 2, 230, 25)
    noise = np.random.default_rng(index).normal(0, 20, (height, width, 3))
    return (np.stack([r, g, b], axis=-1) + noise).clip(0, 255).astype(np.uint8)


def convert(*argv):
    # float32: the comparison with timm's probabilities is a float32 one.
    subprocess.run([sys.executable, CONVERTER, *map(str, argv), "--dtype", "float32"], check=True,
                   stdout=subprocess.DEVNULL)


def served_probabilities(client, model, paths):
    out = []
    for result in client.classify(model, paths, top_k=CLASSES):
        p = np.zeros(CLASSES)
        for s in result:
            p[s.class_id] = s.probability
        out.append(p)
    return np.stack(out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-binary", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    work = tempfile.mkdtemp(prefix="timm_preprocess_")
    repo = os.path.join(work, "models")
    paths = []
    for i, (w, h) in enumerate(IMAGES):
        paths.append(os.path.join(work, f"image_{w}x{h}.png"))
        Image.fromarray(picture(i, w, h)).save(paths[-1])

    models, expected = {}, {}
    for seed, (name, cfg) in enumerate(MODELS.items()):
        model = random_deit(40 + 10 * seed, cfg)
        ckpt = os.path.join(work, f"{name}.pth")
        torch.save(model, ckpt)  # the whole module: its pretrained_cfg travels with it
        convert("deit", ckpt, os.path.join(repo, name), "--num-heads", HEADS, "--attention", "dot_product",
                "--device", "cpu", "--trust-pickle")
        with open(os.path.join(repo, name, "config.json")) as f:
            pre = json.load(f)["preprocess"]
        check(pre == {"resize": "shorter_side_then_center_crop", "interpolation": cfg["interpolation"],
                      "crop_pct": cfg["crop_pct"], "mean": list(cfg["mean"]), "std": list(cfg["std"])},
              f"{name}: the converter wrote timm's data config {pre}")
        # timm's own pipeline: its data config, its transform on the PIL image, its model.
        transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
        with torch.no_grad():
            batch = torch.stack([transform(Image.open(path).convert("RGB")) for path in paths])
            logits = model(batch)
        models[name] = model
        expected[name] = (torch.softmax(logits, -1).numpy(), logits.abs().max().item())

    # The same weights with the old preprocessing (stretch, LibTorch's float bilinear): a control
    # that the comparison below can tell the resizes apart.
    shutil.copytree(os.path.join(repo, "deit-bicubic"), os.path.join(repo, "deit-stretch"))
    with open(os.path.join(repo, "deit-stretch", "config.json")) as f:
        config = json.load(f)
    config["preprocess"] = {"mean": config["preprocess"]["mean"], "std": config["preprocess"]["std"]}
    with open(os.path.join(repo, "deit-stretch", "config.json"), "w") as f:
        json.dump(config, f)

    # The input size must agree with the checkpoint's: deit_tiny_patch16_224's config is for 224.
    r = subprocess.run([sys.executable, CONVERTER, "deit", os.path.join(work, "deit-bicubic.pth"),
                        os.path.join(work, "refused"), "--num-heads", str(HEADS), "--trust-pickle",
                        "--timm-model", "deit_tiny_patch16_224"], capture_output=True, text=True)
    check(r.returncode == 1 and "input size (3, 224, 224)" in r.stderr,
          f"a timm config for another input size is refused: {r.stderr.strip()}")

    server, address = start_server(args.server_binary, repo, work, "--compute_threads=1")
    try:
        client = Client(address, timeout_s=30)
        try:
            client.wait_until_serving(timeout_s=60)
        except ClientError as e:
            print(e)
        for name in MODELS:
            want, max_logit = expected[name]
            tol = 0.5 * LOGIT_TOL * max(1.0, max_logit) + 8 * U
            got = served_probabilities(client, name, paths)
            gap = np.abs(got - want).max(axis=1)
            for (w, h), g in zip(IMAGES, gap):
                check(g <= tol, f"{name} {w}x{h}: served probabilities within {g:.2e} of timm's (tolerance {tol:.2e})")
            check(len(set(want.argmax(1))) > 1, f"{name}: the images are told apart ({want.argmax(1)})")
            if name == "deit-bicubic":
                stretched = np.abs(served_probabilities(client, "deit-stretch", paths) - want).max(axis=1)
                far = [f"{w}x{h}" for (w, h), g in zip(IMAGES, stretched) if g > 10 * tol]
                check(len(far) >= len(IMAGES) - 1,
                      f"control: the old stretch resize misses timm's by over 10x the tolerance on {far} "
                      f"(gaps {np.array2string(stretched, precision=3)})")
        client.close()
    finally:
        code = stop_server(server)
        if code == 0:
            shutil.rmtree(work, ignore_errors=True)
    check(code == 0, f"server exits 0 on SIGTERM (log: {work}/server.log)")
    print(f"{checks.passed} checks passed")


if __name__ == "__main__":
    main()
