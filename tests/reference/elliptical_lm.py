"""Independent reference of the elliptical decoder LM, written from docs/model_formats.md
(`language_model`) and ../shared/ELLIPTICAL.md. Reads tensors in the format's layout.

It shares no code with the C++ model and takes the literal route: each sequence of a batch runs
alone on its real tokens (so padding can reach neither attention nor m, which is what masking must
achieve), the metric is the d x d matrix diag(m), softmax is written out, and the `prefix` scale
mode is an explicit loop over query positions, each estimating m from positions 0..t only.
"""
import math

import torch
import torch.nn.functional as F


def max_scale(m):
    """m: (H, D) -> divided by its maximum per head; an all-zero head gets ones."""
    out = torch.ones_like(m)
    for h in range(m.shape[0]):
        top = m[h].max()
        if top > 0:
            out[h] = m[h] / top
    return out


def reduce_tokens(diff, estimator):
    """diff: (H, N, D) -> (H, D) over the N tokens: mean or lower median (as torch.median)."""
    if estimator == "mean":
        return diff.sum(dim=1) / diff.shape[1]
    return diff.sort(dim=1).values[:, (diff.shape[1] - 1) // 2]


def softmax(scores):
    e = (scores - scores.max(dim=-1, keepdim=True).values).exp()
    return e / e.sum(dim=-1, keepdim=True)


def sinusoid(positions, d_model):
    f = 1.0 / 10000 ** (torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    angles = positions.double()[:, None] * f[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def attention(x, sd, a, lm, v_prev, elliptical, scale_mode):
    """x: (n, d_model) of one sequence. elliptical: None (dot-product) or (c, delta, estimator).
    Returns (output (n, d_model), values (H, n, Dh))."""
    n = x.shape[0]
    H, Dh = lm["num_heads"], lm["head_dim"]
    q = (x @ sd[a + "q_net.weight"].T).view(n, H, Dh).transpose(0, 1)  # (H, n, Dh)
    kv = x @ sd[a + "kv_net.weight"].T
    k = kv[:, :H * Dh].view(n, H, Dh).transpose(0, 1)
    v = kv[:, H * Dh:].view(n, H, Dh).transpose(0, 1)
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    if elliptical is None or v_prev is None:
        scores = q @ k.transpose(-1, -2) / math.sqrt(Dh)
    else:
        c, delta, estimator = elliptical
        diff = (v - v_prev).abs() / delta
        scores = torch.empty(H, n, n, dtype=x.dtype)
        for t in range(n):
            # segment: every query uses m from the whole sequence; prefix: from positions 0..t.
            seen = diff if scale_mode == "segment" else diff[:, :t + 1]
            m = max_scale(reduce_tokens(seen, estimator))
            for h in range(H):
                scores[h, t] = q[h, t] @ torch.diag(m[h]) @ k[h].T * c
    scores = scores.masked_fill(~causal, float("-inf"))
    out = (softmax(scores) @ v).transpose(0, 1).reshape(n, H * Dh)
    return out @ sd[a + "o_net.weight"].T, v


def layer_norm(x, sd, name, eps):
    return F.layer_norm(x, (x.shape[-1],), sd[name + ".weight"], sd[name + ".bias"], eps)


def feed_forward(x, sd, f, activation):
    h = x @ sd[f + "fc1.weight"].T + sd[f + "fc1.bias"]
    h = F.relu(h) if activation == "relu" else F.gelu(h)
    return h @ sd[f + "fc2.weight"].T + sd[f + "fc2.bias"]


def sequence_logits(sd, config, tokens, scale_mode):
    """tokens: (n,) int64 of one sequence -> logits (n, V)."""
    lm, att = config["lm"], config.get("attention", {})
    L, d = lm["num_layers"], lm["d_model"]
    eps, act = lm.get("layer_norm_eps", 1e-5), lm.get("activation", "relu")
    layers = set(att.get("elliptical_layers", range(1, L)))
    if att.get("mode", "elliptical") != "elliptical":
        layers = set()
    c = att.get("score_scale") or 1.0 / math.sqrt(lm["head_dim"])
    ell = (c, att.get("delta", 1.0), att.get("estimator", "mean"))

    n = tokens.shape[0]
    positions = torch.arange(n)
    if lm.get("position_order", "ascending") == "descending":
        positions = n - 1 - positions
    x = sd["word_emb.weight"][tokens] * lm.get("embed_scale", 1.0)
    if lm.get("positions", "sinusoidal") == "learned":
        x = x + sd["pos_emb.weight"][positions]
    else:
        x = x + sinusoid(positions, d).to(x.dtype)

    v_prev = None
    for i in range(L):
        o = f"layers.{i}."
        e = ell if i in layers else None
        if lm.get("norm", "post") == "post":
            a, v = attention(x, sd, o + "attn.", lm, v_prev, e, scale_mode)
            x = layer_norm(x + a, sd, o + "attn.layer_norm", eps)
            x = layer_norm(x + feed_forward(x, sd, o + "ff.", act), sd, o + "ff.layer_norm", eps)
        else:
            a, v = attention(layer_norm(x, sd, o + "attn.layer_norm", eps), sd, o + "attn.", lm, v_prev, e, scale_mode)
            x = x + a
            x = x + feed_forward(layer_norm(x, sd, o + "ff.layer_norm", eps), sd, o + "ff.", act)
        v_prev = v
    if lm.get("norm", "post") == "pre":
        x = layer_norm(x, sd, "final_norm", eps)
    w = sd["word_emb.weight"] if lm.get("tie_embeddings", True) else sd["out.weight"]
    logits = x @ w.T
    if lm.get("output_bias", True):
        logits = logits + sd["out.bias"]
    return logits


def lm_logits(sd, config, tokens, lengths, scale_mode):
    """tokens: (B, L) right-padded, lengths: (B,) -> logits (B, L, V), zero at padded positions."""
    rows = [sequence_logits(sd, config, tokens[b, :int(lengths[b])], scale_mode) for b in range(tokens.shape[0])]
    out = torch.zeros(tokens.shape[0], tokens.shape[1], rows[0].shape[-1], dtype=rows[0].dtype)
    for b, r in enumerate(rows):
        out[b, :r.shape[0]] = r
    return out
