"""Trainable elliptical-attention networks whose state_dict keys are the server's tensor layout
(docs/model_formats.md), so a trained model is saved with safetensors as it is.

Elliptical attention as ELLIPTICAL.md defines it and the server computes it: in every block but
the first, m is estimated per sample and head from |v_l - v_{l-1}| (mean over tokens), without
gradient, divided by its maximum over the head dimension, and the queries are scaled by m before
a softmax with the constant c. `attention="dot_product"` gives the same network with plain
attention (the baseline of docs/paper_claims.md). Every forward can also report the mean token
cosine similarity after each block (representation collapse), computed as the server does.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


def max_scale(m):
    """Divides by the maximum over the last (head) dimension; an all-zero head gets m = 1."""
    top = m.amax(dim=-1, keepdim=True)
    return torch.where(top > 0, m / top.clamp_min(torch.finfo(m.dtype).tiny), torch.ones_like(m))


def mean_token_cosine(x):
    """x: (B, N, C) -> (B,): the mean cosine similarity over pairs of distinct tokens."""
    unit = F.normalize(x.float(), dim=-1)
    n = x.shape[1]
    total = unit.sum(dim=1)
    return ((total * total).sum(-1) - n) / max(n * (n - 1), 1)


class Trace:
    """Collects per-block values of a forward pass when given to it."""

    def __init__(self):
        self.cosine = []  # per block: (B,) mean token cosine similarity


class VitAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, v_prev, elliptical):
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        if elliptical and v_prev is not None:
            with torch.no_grad():
                m = max_scale((v - v_prev).abs().mean(dim=2))  # (B, H, D)
            q = q * m.unsqueeze(2)
        out = F.scaled_dot_product_attention(q, k, v)  # c = 1/sqrt(head_dim), the config default
        return self.proj(out.transpose(1, 2).reshape(B, N, C)), v


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class VitBlock(nn.Module):
    def __init__(self, dim, heads, mlp_ratio, eps):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = VitAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, v_prev, elliptical):
        a, v = self.attn(self.norm1(x), v_prev, elliptical)
        x = x + a
        return x + self.mlp(self.norm2(x)), v


class VisionTransformer(nn.Module):
    """timm's ViT layout (patch_embed.proj, cls_token, pos_embed, blocks.i.*, norm, head)."""

    def __init__(self, vit, attention, num_classes=0):
        super().__init__()
        dim, grid = vit["embed_dim"], vit["image_size"] // vit["patch_size"]
        eps = vit.get("layer_norm_eps", 1e-6)
        self.patch_size = vit["patch_size"]
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(vit.get("in_channels", 3), dim, self.patch_size, self.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + grid * grid, dim) * 0.02)
        self.blocks = nn.ModuleList(VitBlock(dim, vit["num_heads"], vit["mlp_ratio"], eps)
                                    for _ in range(vit["depth"]))
        self.norm = nn.LayerNorm(dim, eps=eps)
        if num_classes:
            self.head = nn.Linear(dim, num_classes)
        self.elliptical = attention == "elliptical"

    def features(self, images, trace=None):
        x = self.patch_embed.proj(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        v_prev = None
        for i, block in enumerate(self.blocks):
            x, v_prev = block(x, v_prev, self.elliptical and i > 0)
            if trace is not None:
                trace.cosine.append(mean_token_cosine(x).detach())
        return self.norm(x)

    def forward(self, images, trace=None):
        return self.head(self.features(images, trace)[:, 0])


class LinearSegmenter(nn.Module):
    """The `segmenter` family with a linear decoder: encoder.* (a ViT without head), decoder.head."""

    def __init__(self, vit, attention, num_classes):
        super().__init__()
        self.encoder = VisionTransformer(vit, attention)
        self.decoder = nn.Module()
        self.decoder.head = nn.Linear(vit["embed_dim"], num_classes)

    def forward(self, images, trace=None):
        """images (B, 3, H, W) with H, W multiples of the patch -> logits (B, K, H, W)."""
        B, _, H, W = images.shape
        p = self.encoder.patch_size
        patches = self.encoder.features(images, trace)[:, 1:]
        logits = self.decoder.head(patches).transpose(1, 2).reshape(B, -1, H // p, W // p)
        return F.interpolate(logits, size=(H, W), mode="bilinear", align_corners=False)


def sinusoid(n, d_model, device=None):
    f = 1.0 / 10000 ** (torch.arange(0, d_model, 2, dtype=torch.float32, device=device) / d_model)
    angles = torch.arange(n, dtype=torch.float32, device=device)[:, None] * f[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class LmAttention(nn.Module):
    def __init__(self, lm):
        super().__init__()
        self.heads, self.head_dim, self.pre = lm["num_heads"], lm["head_dim"], lm["norm"] == "pre"
        inner = self.heads * self.head_dim
        self.q_net = nn.Linear(lm["d_model"], inner, bias=False)
        self.kv_net = nn.Linear(lm["d_model"], 2 * inner, bias=False)
        self.o_net = nn.Linear(inner, lm["d_model"], bias=False)
        self.layer_norm = nn.LayerNorm(lm["d_model"], eps=lm["layer_norm_eps"])

    def forward(self, x, v_prev, elliptical):
        B, N, _ = x.shape
        H, D = self.heads, self.head_dim
        h = self.layer_norm(x) if self.pre else x
        q = self.q_net(h).view(B, N, H, D).transpose(1, 2)
        k, v = self.kv_net(h).view(B, N, 2, H, D).permute(2, 0, 3, 1, 4)
        if elliptical and v_prev is not None:
            # The `prefix` estimate: the query at position t uses m from positions 0..t (a running
            # mean), so the server's KV-cache decoding computes exactly what was trained.
            with torch.no_grad():
                counts = torch.arange(1, N + 1, device=x.device, dtype=x.dtype).view(1, 1, N, 1)
                m = max_scale((v - v_prev).abs().cumsum(dim=2) / counts)  # (B, H, N, D)
            q = q * m
        out = self.o_net(F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, N, H * D))
        return (x + out if self.pre else self.layer_norm(x + out)), v


class LmFeedForward(nn.Module):
    def __init__(self, lm):
        super().__init__()
        self.pre, self.relu = lm["norm"] == "pre", lm["activation"] == "relu"
        self.fc1 = nn.Linear(lm["d_model"], lm["d_inner"])
        self.fc2 = nn.Linear(lm["d_inner"], lm["d_model"])
        self.layer_norm = nn.LayerNorm(lm["d_model"], eps=lm["layer_norm_eps"])

    def forward(self, x):
        h = self.fc1(self.layer_norm(x) if self.pre else x)
        h = self.fc2(F.relu(h) if self.relu else F.gelu(h))
        return x + h if self.pre else self.layer_norm(x + h)


class LmLayer(nn.Module):
    def __init__(self, lm):
        super().__init__()
        self.attn = LmAttention(lm)
        self.ff = LmFeedForward(lm)


class DecoderLm(nn.Module):
    """The `language_model` family with sinusoidal ascending positions and a tied output
    embedding with a bias: word_emb, layers.i.attn.*, layers.i.ff.*, out.bias, and final_norm
    when the blocks are pre-LN (lm["norm"] "pre" or "post", lm["activation"] "relu" or "gelu")."""

    def __init__(self, lm, attention, vocab_size):
        super().__init__()
        self.lm = lm
        self.word_emb = nn.Embedding(vocab_size, lm["d_model"])
        # Unit-scale token vectors after embed_scale = sqrt(d_model), like the sinusoids they meet.
        nn.init.normal_(self.word_emb.weight, std=lm["d_model"] ** -0.5)
        self.layers = nn.ModuleList(LmLayer(lm) for _ in range(lm["num_layers"]))
        if lm["norm"] == "pre":
            self.final_norm = nn.LayerNorm(lm["d_model"], eps=lm["layer_norm_eps"])
        self.out = nn.Module()
        self.out.bias = nn.Parameter(torch.zeros(vocab_size))
        self.elliptical = attention == "elliptical"

    def forward(self, tokens, trace=None):
        """tokens (B, N) -> logits (B, N, V)."""
        x = self.word_emb(tokens) * self.lm["embed_scale"] + sinusoid(tokens.shape[1], self.lm["d_model"],
                                                                      tokens.device)
        v_prev = None
        for i, layer in enumerate(self.layers):
            x, v_prev = layer.attn(x, v_prev, self.elliptical and i > 0)
            x = layer.ff(x)
            if trace is not None:
                trace.cosine.append(mean_token_cosine(x).detach())
        if self.lm["norm"] == "pre":
            x = self.final_norm(x)
        return x @ self.word_emb.weight.T + self.out.bias


def cosine_schedule(step, total, warmup):
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
