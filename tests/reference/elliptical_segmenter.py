"""Independent reference of the elliptical Segmenter, written from docs/model_formats.md
(`segmenter`) and ../shared/ELLIPTICAL.md.

Like elliptical_vit.py it shares no code with the C++ model and takes the literal route: the
metric is the d x d matrix diag(m), the median is the lower middle element of the sorted values,
softmax is written out, windows are cut and averaged in plain loops. Works on one window at a time
(batch 1), in whatever dtype the tensors come in (the fixtures use float64).
"""
import math

import torch
import torch.nn.functional as F


def metric(v, v_prev, delta, estimator):
    """v, v_prev: (H, N, D) for one sample -> m: (H, D), max-scaled; an all-zero head gets ones."""
    diff = (v - v_prev).abs() / delta
    if estimator == "mean":
        m = diff.sum(dim=1) / diff.shape[1]
    else:  # lower median over the N tokens, as torch.median
        m = diff.sort(dim=1).values[:, (diff.shape[1] - 1) // 2]
    out = torch.ones_like(m)
    for h in range(m.shape[0]):
        top = m[h].max()
        if top > 0:
            out[h] = m[h] / top
    return out


def softmax(scores):
    e = (scores - scores.max(dim=-1, keepdim=True).values).exp()
    return e / e.sum(dim=-1, keepdim=True)


def linear(x, sd, name):
    y = x @ sd[name + ".weight"].T
    return y + sd[name + ".bias"] if name + ".bias" in sd else y


def layer_norm(x, sd, name, eps):
    return F.layer_norm(x, (x.shape[-1],), sd[name + ".weight"], sd[name + ".bias"], eps)


def block(x, sd, b, heads, eps, v_prev=None, elliptical=None):
    """One pre-LN ViT block on x (N, C). elliptical: None for dot-product attention, else
    (c, delta, estimator). Returns (x, this block's per-head values (H, N, D))."""
    n, dim = x.shape
    d = dim // heads
    h = layer_norm(x, sd, b + "norm1", eps)
    q, k, v = linear(h, sd, b + "attn.qkv").split(dim, dim=-1)
    q, k, v = [t.view(n, heads, d).transpose(0, 1) for t in (q, k, v)]  # (H, N, D)
    if elliptical is not None and v_prev is not None:
        c, delta, estimator = elliptical
        m = metric(v, v_prev, delta, estimator)
        scores = q @ torch.diag_embed(m) @ k.transpose(-1, -2) * c
    else:
        scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    out = (softmax(scores) @ v).transpose(0, 1).reshape(n, dim)
    x = x + linear(out, sd, b + "attn.proj")
    h = F.gelu(linear(layer_norm(x, sd, b + "norm2", eps), sd, b + "mlp.fc1"))
    return x + linear(h, sd, b + "mlp.fc2"), v


def encoder(sd, config, image):
    """image: (3, Hp, Wp), padded to multiples of the patch -> patch features (Hp/P * Wp/P, C)."""
    vit, att = config["vit"], config.get("attention", {})
    depth, heads, eps = vit["depth"], vit["num_heads"], vit.get("layer_norm_eps", 1e-6)
    p, dim = vit["patch_size"], vit["embed_dim"]
    layers = set(att.get("elliptical_layers", range(1, depth)))
    if att.get("mode", "elliptical") != "elliptical":
        layers = set()
    c = att.get("score_scale") or 1.0 / math.sqrt(dim // heads)
    ell = (c, att.get("delta", 1.0), att.get("estimator", "mean"))

    gh, gw = image.shape[1] // p, image.shape[2] // p
    x = F.conv2d(image[None], sd["encoder.patch_embed.proj.weight"], sd["encoder.patch_embed.proj.bias"], stride=p)
    x = x[0].flatten(1).T  # (gh*gw, C), row-major over the grid
    pos = sd["encoder.pos_embed"][0]
    g = math.isqrt(pos.shape[0] - 1)
    grid = pos[1:].T.reshape(1, dim, g, g)
    if (gh, gw) != (g, g):
        grid = F.interpolate(grid, size=(gh, gw), mode="bilinear", align_corners=False)
    x = torch.cat([sd["encoder.cls_token"][0] + pos[:1], x + grid[0].flatten(1).T])
    v_prev = None
    for i in range(depth):
        x, v_prev = block(x, sd, f"encoder.blocks.{i}.", heads, eps, v_prev, ell if i in layers else None)
    return layer_norm(x, sd, "encoder.norm", eps)[1:]


def decoder(sd, config, patches):
    """patches: (N, C) -> per-patch class scores (N, K)."""
    dec = config.get("decoder", {"type": "linear"})
    if dec["type"] == "linear":
        return linear(patches, sd, "decoder.head")
    eps = dec.get("layer_norm_eps", 1e-5)
    heads = dec.get("num_heads", config["vit"]["num_heads"])
    x = linear(patches, sd, "decoder.proj_dec")
    n = x.shape[0]
    x = torch.cat([x, sd["decoder.cls_emb"][0]])  # class embeddings after the patches
    for j in range(dec["depth"]):
        x, _ = block(x, sd, f"decoder.blocks.{j}.", heads, eps)
    x = layer_norm(x, sd, "decoder.decoder_norm", eps)
    p = x[:n] @ sd["decoder.proj_patch"]
    k = x[n:] @ sd["decoder.proj_classes"]
    p = p / p.norm(dim=-1, keepdim=True)
    k = k / k.norm(dim=-1, keepdim=True)
    return layer_norm(p @ k.T, sd, "decoder.mask_norm", eps)


def window_logits(sd, config, window):
    """window: (3, h, w) normalised -> logits (K, h, w): steps 1-5 of the doc."""
    p = config["vit"]["patch_size"]
    h, w = window.shape[1:]
    hp, wp = -(-h // p) * p, -(-w // p) * p
    padded = torch.zeros(3, hp, wp, dtype=window.dtype)
    padded[:, :h, :w] = window
    scores = decoder(sd, config, encoder(sd, config, padded))  # (gh*gw, K)
    grid = scores.T.reshape(1, -1, hp // p, wp // p)
    up = F.interpolate(grid, size=(hp, wp), mode="bilinear", align_corners=False)[0]
    return up[:, :h, :w]


def window_starts(size, window, stride):
    starts, s = [], 0
    while s + window < size:
        starts.append(s)
        s += stride
    if size - window not in starts:
        starts.append(size - window)
    return starts


def segment(sd, config, image):
    """image: (3, H, W) normalised -> logits (K, H, W), averaged over sliding windows."""
    inf = config.get("inference", {})
    size = inf.get("window_size", config["vit"]["image_size"])
    stride = inf.get("window_stride", size * 2 // 3)
    H, W = image.shape[1:]
    wh, ww = min(size, H), min(size, W)
    total, count = None, torch.zeros(H, W, dtype=image.dtype)
    for y in window_starts(H, wh, stride):
        for x in window_starts(W, ww, stride):
            logits = window_logits(sd, config, image[:, y:y + wh, x:x + ww])
            if total is None:
                total = torch.zeros(logits.shape[0], H, W, dtype=image.dtype)
            total[:, y:y + wh, x:x + ww] += logits
            count[y:y + wh, x:x + ww] += 1
    return total / count


def normalise(rgb_uint8, config):
    """(H, W, 3) uint8 -> (3, H, W) float64: [0,1], then the config's mean/std; no resize."""
    t = torch.from_numpy(rgb_uint8).permute(2, 0, 1).double() / 255.0
    pre = config.get("preprocess", {})
    mean = torch.tensor(pre.get("mean", [0.485, 0.456, 0.406]), dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor(pre.get("std", [0.229, 0.224, 0.225]), dtype=torch.float64).view(3, 1, 1)
    return (t - mean) / std
