#!/usr/bin/env python3
"""Python PyTorch eager baseline for bench/model_forward.cc.

The issue's targets are "the C++ model at least as fast as Python eager" and "elliptical
overhead at most 5% over dot-product at batch >= 8". This file is the eager side of that
comparison: plain torch.nn modules (no torch.compile, no TorchScript) written the way an
efficient PyTorch user would write them (fused qkv, SDPA, m applied by scaling q), not a
literal copy of the paper's reference code (which builds diag(m) as a d x d matrix).

It writes the same JSON schema as the C++ benchmark so bench/run_model_bench.sh can put the
two side by side:

  python bench/python_eager.py --models deit_tiny,deit_small,lm16 --batches 1,8,64 \
      --modes elliptical,dot_product --device cpu --dtype float32 --out python.json
  python bench/python_eager.py --check   # self-check on a tiny config, then exit
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

LM_TOKENS = 256  # the paper's LM segment length


def elliptical_metric(v, v_prev):
    """m[b,h,:] = mean over tokens of |v - v_prev|, max-scaled over the head dim; (B,H,D) float32.

    Float32 so bf16/fp16 runs estimate m as precisely as float32 ones. A head whose values did
    not move at all would divide by zero; it falls back to m = 1 (plain dot-product).
    """
    m = (v.float() - v_prev.float()).abs_().mean(dim=2)
    top = m.amax(dim=-1, keepdim=True)
    return torch.where(top > 0, m / top, 1.0)


def scale_queries(q, v, v_prev, unit_metric):
    """q * m broadcast over tokens; m is per sample and per head, never pooled over the batch."""
    if unit_metric:  # --check only: keep the elliptical code path but make m all ones
        m = torch.ones(q.shape[0], q.shape[1], q.shape[3], device=q.device)
    else:
        m = elliptical_metric(v, v_prev)
    return q * m.to(q.dtype).unsqueeze(2)


# --------------------------------------------------------------------------------------------
# ViT / DeiT (timm's VisionTransformer layout, pre-LN, erf GELU, LayerNorm eps 1e-6)


class VitAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, v_prev, elliptical, unit_metric):
        b, n, c = x.shape
        # One fused matmul, then views: q, k, v are (B, H, N, D) strided views, as in timm.
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        if elliptical:
            q = scale_queries(q, v, v_prev, unit_metric)
        # Vision: c = 1/sqrt(D) in both branches (also SDPA's default; passed for clarity).
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0 / math.sqrt(q.shape[-1]))
        return self.proj(out.transpose(1, 2).reshape(b, n, c)), v


class VitBlock(nn.Module):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = VitAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential()  # named fc1/fc2 like timm's Mlp
        self.mlp.add_module("fc1", nn.Linear(dim, int(dim * mlp_ratio)))
        self.mlp.add_module("act", nn.GELU())
        self.mlp.add_module("fc2", nn.Linear(int(dim * mlp_ratio), dim))

    def forward(self, x, v_prev, elliptical, unit_metric):
        h, v = self.attn(self.norm1(x), v_prev, elliptical, unit_metric)
        x = x + h
        return x + self.mlp(self.norm2(x)), v


class PatchEmbed(nn.Module):
    def __init__(self, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, images):
        return self.proj(images).flatten(2).transpose(1, 2)  # (B, G*G, C)


class VisionTransformer(nn.Module):
    """`elliptical` and `unit_metric` are attributes, so both modes run on the same weights."""

    def __init__(self, image_size=224, patch=16, dim=192, depth=12, heads=3, mlp_ratio=4.0,
                 num_classes=1000):
        super().__init__()
        self.patch_embed = PatchEmbed(patch, dim)
        tokens = 1 + (image_size // patch) ** 2
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.blocks = nn.ModuleList(VitBlock(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        self.tokens_per_item = tokens
        self.elliptical = True
        self.unit_metric = False

    def forward(self, images):
        x = self.patch_embed(images)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        v_prev = None
        for i, block in enumerate(self.blocks):
            # M positions 1..depth-1: layer 0 has no previous layer's values.
            x, v_prev = block(x, v_prev, self.elliptical and i > 0, self.unit_metric)
        return self.head(self.norm(x)[:, 0])


# --------------------------------------------------------------------------------------------
# The paper's WikiText-103 LM shape: post-LN, sinusoidal positions, tied output with bias.


class LmAttention(nn.Module):
    def __init__(self, d_model, heads, head_dim):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.q_net = nn.Linear(d_model, heads * head_dim, bias=False)
        self.kv_net = nn.Linear(d_model, 2 * heads * head_dim, bias=False)  # keys, then values
        self.o_net = nn.Linear(heads * head_dim, d_model, bias=False)
        self.layer_norm = nn.LayerNorm(d_model)

    def forward(self, x, v_prev, elliptical, score_scale, unit_metric):
        b, n, _ = x.shape
        q = self.q_net(x).view(b, n, self.heads, self.head_dim).transpose(1, 2)
        k, v = self.kv_net(x).view(b, n, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if elliptical:
            # Segment mode: m over every token of the segment (no padding in this benchmark).
            q = scale_queries(q, v, v_prev, unit_metric)
        else:
            score_scale = 1.0 / math.sqrt(self.head_dim)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=score_scale)
        h = self.o_net(out.transpose(1, 2).reshape(b, n, -1))
        return self.layer_norm(x + h), v


class LmFeedForward(nn.Module):
    def __init__(self, d_model, d_inner):
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_inner)
        self.fc2 = nn.Linear(d_inner, d_model)
        self.layer_norm = nn.LayerNorm(d_model)

    def forward(self, x):
        return self.layer_norm(x + self.fc2(F.relu(self.fc1(x))))


class LmLayer(nn.Module):
    def __init__(self, d_model, heads, head_dim, d_inner):
        super().__init__()
        self.attn = LmAttention(d_model, heads, head_dim)
        self.ff = LmFeedForward(d_model, d_inner)


class LanguageModel(nn.Module):
    def __init__(self, vocab=8000, d_model=128, layers=16, heads=8, head_dim=16, d_inner=2048,
                 score_scale=1.0, max_positions=2048):
        super().__init__()
        self.word_emb = nn.Embedding(vocab, d_model)
        self.layers = nn.ModuleList(LmLayer(d_model, heads, head_dim, d_inner) for _ in range(layers))
        self.out = nn.Module()
        self.out.bias = nn.Parameter(torch.zeros(vocab))
        # Sinusoids precomputed once (sines first half, cosines second), like a model would.
        f = 1.0 / 10000 ** (torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
        p = torch.arange(max_positions, dtype=torch.float32)[:, None] * f
        self.register_buffer("pos", torch.cat([p.sin(), p.cos()], dim=-1), persistent=False)
        self.embed_scale = math.sqrt(d_model)
        self.score_scale = score_scale  # c in elliptical layers; the paper's LM uses 1.0
        self.tokens_per_item = LM_TOKENS
        self.elliptical = True
        self.unit_metric = False

    def forward(self, tokens):
        x = self.word_emb(tokens) * self.embed_scale + self.pos[: tokens.shape[1]]
        v_prev = None
        for i, layer in enumerate(self.layers):
            x, v_prev = layer.attn(x, v_prev, self.elliptical and i > 0, self.score_scale,
                                   self.unit_metric)
            x = layer.ff(x)
        return F.linear(x, self.word_emb.weight, self.out.bias)  # logits for every position


# --------------------------------------------------------------------------------------------
# Benchmark


MODELS = {  # the paper's shapes, every other field at its default above
    "deit_tiny": lambda: VisionTransformer(dim=192, heads=3),
    "deit_small": lambda: VisionTransformer(dim=384, heads=6),
    "lm16": lambda: LanguageModel(),
}


def build(name):
    torch.manual_seed(0)  # throughput does not depend on the values; same weights every run
    return MODELS[name]()


def make_input(model, batch, device, dtype):
    if isinstance(model, LanguageModel):
        return torch.randint(model.word_emb.num_embeddings, (batch, LM_TOKENS), device=device)
    return torch.randn(batch, 3, 224, 224, device=device, dtype=dtype)


def quantile(sorted_seconds, q):
    # Nearest rank, the same rule as bench/model_forward.cc, so the two reports compare.
    return sorted_seconds[int(q * (len(sorted_seconds) - 1) + 0.5)]


def measure(model, name, batch, modes, args, device, dtype):
    """Times every mode of one (model, batch). Forwards alternate between the modes, one each in
    turn, so machine noise (other jobs, frequency changes) hits both sides of the ratio alike."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    x = make_input(model, batch, device, dtype)
    times = {mode: [] for mode in modes}
    with torch.inference_mode():
        for mode in modes:
            model.elliptical = mode == "elliptical"
            for _ in range(args.warmup):
                model(x)
        sync()
        while any(sum(t) < args.min_seconds or len(t) < 3 for t in times.values()):
            for mode in modes:
                model.elliptical = mode == "elliptical"
                start = time.perf_counter()
                model(x)
                sync()
                times[mode].append(time.perf_counter() - start)
    results = []
    for mode in modes:
        s = sorted(times[mode])
        median = quantile(s, 0.5)
        print(f"[python] {name} b={batch} {mode}: {median * 1e3:.1f} ms/forward, "
              f"{batch / median:.0f} items/s", file=sys.stderr, flush=True)
        results.append({"model": name, "attention": mode, "batch": batch,
                        "tokens_per_item": model.tokens_per_item, "iterations": len(s),
                        "median_seconds": median, "p10_seconds": quantile(s, 0.1),
                        "p90_seconds": quantile(s, 0.9), "items_per_second": batch / median})
    return results


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def busy_cores(interval=0.5):
    """Cores kept busy by other processes (we are idle while sampling /proc/stat); 0 if unknown."""
    def sample():
        with open("/proc/stat") as f:
            ticks = [int(t) for t in f.readline().split()[1:9]]  # guest time is in user already
        return sum(ticks), ticks[3] + ticks[4]  # total, idle + iowait
    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
        cores = len(os.sched_getaffinity(0))
    except (OSError, ValueError, AttributeError):
        return 0.0
    return cores * (1 - (idle1 - idle0) / max(total1 - total0, 1))


def check():
    """Self-check on tiny configs: elliptical mode with m forced to 1 must equal dot-product mode
    (same weights, same code path but for m), real m must change the output, never NaN, and a
    sample's output must not depend on its batch mates (m is per sample)."""
    torch.manual_seed(0)
    vit = VisionTransformer(image_size=32, patch=8, dim=32, depth=3, heads=2, num_classes=10).eval()
    # score_scale = 1/sqrt(D) so that unit-m elliptical layers match dot-product exactly
    # (with the paper's c = 1 they differ by design).
    lm = LanguageModel(vocab=50, d_model=32, layers=3, heads=4, head_dim=8, d_inner=64,
                       score_scale=1.0 / math.sqrt(8)).eval()
    inputs = [(vit, torch.randn(3, 3, 32, 32)), (lm, torch.randint(50, (3, 12)))]
    with torch.inference_mode():
        same = torch.ones(1, 1, 4, 3)  # v == v_prev: the all-zero head falls back to m = 1
        ok = torch.equal(elliptical_metric(same, same), torch.ones(1, 1, 3))
        print(f"[check] all-zero guard: {'ok' if ok else 'FAILED'}", file=sys.stderr)
        for model, x in inputs:
            model.elliptical = False
            dot = model(x)
            model.elliptical, model.unit_metric = True, True
            unit = model(x)
            model.unit_metric = False
            ell = model(x)
            ell_one = model(x[:1])
            name = type(model).__name__
            checks = {
                "unit-m elliptical == dot-product": torch.allclose(unit, dot, atol=1e-5, rtol=1e-5),
                "real m changes the output": not torch.allclose(ell, dot, atol=1e-4, rtol=1e-4),
                "finite": bool(torch.isfinite(ell).all()),
                "batch-independent": torch.allclose(ell[:1], ell_one, atol=1e-5, rtol=1e-5),
            }
            for what, passed in checks.items():
                print(f"[check] {name}: {what}: {'ok' if passed else 'FAILED'}", file=sys.stderr)
                ok &= passed
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="deit_tiny,deit_small,lm16")
    p.add_argument("--batches", default="1,8,64")
    p.add_argument("--modes", default="elliptical,dot_product")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--threads", type=int, default=0, help="intra-op threads; 0 keeps torch's default")
    p.add_argument("--min-seconds", type=float, default=3.0)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", default="", help="JSON file to write (stdout when empty)")
    p.add_argument("--check", action="store_true", help="run the self-check and exit")
    args = p.parse_args()
    if args.check:
        return check()

    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    dtype = getattr(torch, args.dtype)
    if dtype == torch.float16 and device.type == "cpu":
        p.error("dtype float16 is for CUDA; use float32 or bfloat16 on CPU")  # as the C++ bench
    models = args.models.split(",")
    if any(m not in MODELS for m in models):
        p.error(f"--models takes {', '.join(MODELS)}, not {args.models}")
    modes = args.modes.split(",")
    if any(m not in ("elliptical", "dot_product") for m in modes):
        p.error(f"--modes takes elliptical and/or dot_product, not {args.modes}")
    batches = [int(b) for b in args.batches.split(",")]
    if any(b < 1 for b in batches):
        p.error("batch sizes must be >= 1")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    busy = busy_cores() if device.type == "cpu" else 0.0
    if busy >= 0.5:
        # Intra-op threads wait for each other at every op: a core taken by another job (a
        # compiler) can make a forward many times slower. The mode ratio stays comparable
        # (modes alternate), absolute times do not.
        print(f"[python] warning: {busy:.1f} cores busy with other work before starting; CPU "
              f"timings (threads={torch.get_num_threads()}) may be inflated", file=sys.stderr)

    results = []
    for name in models:
        model = build(name).to(device=device, dtype=dtype).eval()
        for batch in batches:
            results.extend(measure(model, name, batch, modes, args, device, dtype))
        del model

    report = {
        "implementation": "python_eager",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "results": results,
    }
    text = json.dumps(report, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
