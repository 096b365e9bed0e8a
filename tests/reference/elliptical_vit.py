"""Independent reference of the elliptical ViT classifier, written from ../shared/ELLIPTICAL.md.

It shares no code with the C++ model and takes the literal route the paper describes: the metric
is built as the d x d matrix diag(m) and scores are q diag(m) k^T * c, with an explicit softmax.
The C++ model instead scales q element-wise and calls a fused attention kernel; agreement between
the two is the test.
"""
import math

import torch
import torch.nn.functional as F


def elliptical_metric(v, v_prev, delta=1.0, estimator="mean"):
    """v, v_prev: (B, H, N, D) -> m: (B, H, D), max-scaled per sample and head."""
    diff = (v - v_prev).abs() / delta
    if estimator == "mean":
        m = diff.mean(dim=2)
    else:
        m = diff.median(dim=2).values
    top = m.max(dim=-1, keepdim=True).values
    return torch.where(top > 0, m / torch.where(top > 0, top, torch.ones_like(top)), torch.ones_like(m))


def attention(x, sd, prefix, num_heads, v_prev, elliptical, c):
    B, N, C = x.shape
    D = C // num_heads
    qkv = x @ sd[prefix + "qkv.weight"].T + sd[prefix + "qkv.bias"]
    q, k, v = qkv.split(C, dim=-1)
    q, k, v = [t.view(B, N, num_heads, D).transpose(1, 2) for t in (q, k, v)]  # (B, H, N, D)
    if elliptical:
        m = elliptical_metric(v, v_prev)
        metric = torch.diag_embed(m)  # (B, H, D, D): the paper's diag(m)
        scores = q @ metric @ k.transpose(-1, -2) * c
    else:
        scores = q @ k.transpose(-1, -2) / math.sqrt(D)
    out = scores.softmax(dim=-1) @ v  # (B, H, N, D)
    out = out.transpose(1, 2).reshape(B, N, C)
    return out @ sd[prefix + "proj.weight"].T + sd[prefix + "proj.bias"], v


def vit_logits(sd, config, images):
    """images: (B, 3, S, S) normalised float64 or float32. Returns logits (B, classes)."""
    vit = config["vit"]
    att = config.get("attention", {})
    depth, heads, eps = vit["depth"], vit["num_heads"], vit.get("layer_norm_eps", 1e-6)
    d = vit["embed_dim"]
    elliptical_layers = set(att.get("elliptical_layers", range(1, depth)))
    if att.get("mode", "elliptical") != "elliptical":
        elliptical_layers = set()
    c = att.get("score_scale") or 1.0 / math.sqrt(d // heads)

    p = vit["patch_size"]
    x = F.conv2d(images, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=p)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([sd["cls_token"].expand(x.shape[0], -1, -1), x], dim=1) + sd["pos_embed"]
    v_prev = None
    for i in range(depth):
        b = f"blocks.{i}."
        h = F.layer_norm(x, (d,), sd[b + "norm1.weight"], sd[b + "norm1.bias"], eps)
        a, v = attention(h, sd, b + "attn.", heads, v_prev, i in elliptical_layers, c)
        x = x + a
        h = F.layer_norm(x, (d,), sd[b + "norm2.weight"], sd[b + "norm2.bias"], eps)
        h = F.gelu(h @ sd[b + "mlp.fc1.weight"].T + sd[b + "mlp.fc1.bias"])
        x = x + h @ sd[b + "mlp.fc2.weight"].T + sd[b + "mlp.fc2.bias"]
        v_prev = v
    x = F.layer_norm(x, (d,), sd["norm.weight"], sd["norm.bias"], eps)
    return x[:, 0] @ sd["head.weight"].T + sd["head.bias"]


def preprocess(rgb_uint8, config):
    """(H, W, 3) uint8 -> (1, 3, S, S) normalised float32, resized like the server."""
    size = config["vit"]["image_size"]
    t = torch.from_numpy(rgb_uint8).permute(2, 0, 1).unsqueeze(0).float() / 255.0
    if t.shape[-2:] != (size, size):
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    pre = config.get("preprocess", {})
    mean = torch.tensor(pre.get("mean", [0.485, 0.456, 0.406])).view(1, 3, 1, 1)
    std = torch.tensor(pre.get("std", [0.229, 0.224, 0.225])).view(1, 3, 1, 1)
    return (t - mean) / std
