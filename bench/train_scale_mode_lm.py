#!/usr/bin/env python3
"""Train a small byte-level elliptical LM to measure the `prefix` vs `segment` estimate of m.

ELLIPTICAL.md ("Generation with a KV cache") asks for the difference between the cache-friendly
`prefix` estimate of the elliptical metric m and the reference's `segment` estimate to be
measured and documented. That needs a language model trained the way the paper's LM is (m as
the mean over the whole training segment, future positions included); the paper's authors
released none, so this script trains a small one:

- post-LN blocks, sinusoidal ascending positions, embeddings scaled by sqrt(d_model), tied
  output with a bias, ReLU feed-forward, LayerNorm eps 1e-5, causal attention;
- layer 0 dot-product with 1/sqrt(head_dim); layers 1..L-1 elliptical with score scale c = 1
  (the paper's LM elliptical branch), m estimated over the whole segment without gradient.

Text: byte-level tokens (vocab 256, token = byte value) of the English prose that ships with
Python itself (pydoc_data.topics, PSF licence), so nothing is downloaded. The first 90% of the
bytes train, the last 10% are held out.

  python bench/train_scale_mode_lm.py --out DIR [--steps 600] [--seed 0]

Writes into DIR: model.safetensors and config.json (the `language_model` format of
docs/model_formats.md, loadable by the C++ server and by bench/lm_scale_modes), the held-out
token ids (heldout_tokens.txt), README.md (provenance) and python_eval.json (held-out
perplexity under both estimates and their next-token agreement, scored as lm_scale_modes does:
non-overlapping windows of 128 tokens, positions 0..126 predicting 1..127).
"""
import argparse
import hashlib
import json
import math
import os
import platform
import time

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

# Model and training shape (small enough for a few minutes on one CPU thread).
VOCAB = 256
D_MODEL = 64
NUM_LAYERS = 4
NUM_HEADS = 4
HEAD_DIM = 16
D_INNER = 256
SEGMENT = 128
BATCH = 16
LR = 3e-3
WARMUP = 50
WEIGHT_DECAY = 0.01
LN_EPS = 1e-5
MAX_POSITIONS = 1024
ELLIPTICAL_SCALE = 1.0  # the paper's LM applies no scale in the elliptical branch
DELTA = 1.0  # divides |v_l - v_{l-1}|; cancels under max-scaling, kept for the config
HELDOUT_FRACTION = 0.1


def load_text_bytes():
    """The pydoc topics (str -> str) concatenated in sorted-key order, UTF-8 encoded.

    Sorted keys make the text independent of dict order; its content still depends on the
    Python version, which README.md records together with a hash of the bytes.
    """
    from pydoc_data.topics import topics

    return "".join(topics[k] for k in sorted(topics)).encode("utf-8")


def max_scale(m):
    """Divide by the maximum over the head dimension; an all-zero head falls back to m = 1."""
    top = m.amax(dim=-1, keepdim=True)
    return torch.where(top > 0, m / top.clamp_min(torch.finfo(m.dtype).tiny), torch.ones_like(m))


def segment_metric(v, v_prev):
    """(B,H,Dh): per sample and head, mean over all the segment's tokens of |v - v_prev| / delta."""
    return max_scale((v - v_prev).abs().mean(dim=2) / DELTA)


def prefix_metric(v, v_prev):
    """(B,H,L,Dh): the query at position t uses the mean over positions 0..t, max-scaled per t."""
    count = torch.arange(1, v.size(2) + 1, dtype=v.dtype).view(1, 1, -1, 1)
    return max_scale((v - v_prev).abs().cumsum(dim=2) / count / DELTA)


def sinusoidal(length):
    """cat(sin(p f), cos(p f)), f = 1 / 10000^(arange(0, d, 2) / d): as the C++ model computes."""
    inv_freq = 1.0 / torch.pow(10000.0, torch.arange(0, D_MODEL, 2, dtype=torch.float32) / D_MODEL)
    angles = torch.arange(length, dtype=torch.float32).unsqueeze(-1) * inv_freq
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


# Module and attribute names mirror docs/model_formats.md so state_dict() is the weights file.
class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_net = nn.Linear(D_MODEL, NUM_HEADS * HEAD_DIM, bias=False)
        self.kv_net = nn.Linear(D_MODEL, 2 * NUM_HEADS * HEAD_DIM, bias=False)  # keys, then values
        self.o_net = nn.Linear(NUM_HEADS * HEAD_DIM, D_MODEL, bias=False)
        self.layer_norm = nn.LayerNorm(D_MODEL, eps=LN_EPS)


class FeedForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(D_MODEL, D_INNER)
        self.fc2 = nn.Linear(D_INNER, D_MODEL)
        self.layer_norm = nn.LayerNorm(D_MODEL, eps=LN_EPS)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = Attention()
        self.ff = FeedForward()


class Output(nn.Module):
    """Tied output: only the bias is a tensor of its own (`out.bias`)."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(VOCAB))


class EllipticalLm(nn.Module):
    def __init__(self):
        super().__init__()
        self.word_emb = nn.Embedding(VOCAB, D_MODEL)
        self.layers = nn.ModuleList(Layer() for _ in range(NUM_LAYERS))
        self.out = Output()
        # Linear weights: small normal init. The embedding: std d_model^-0.5 (Vaswani et al.),
        # so after the sqrt(d_model) input scale token vectors are as large as the sinusoids.
        # (With std 0.02 they start 6x smaller, the blocks see mostly positions, and training
        # sits at the unigram loss for most of the run.)
        for name, p in self.named_parameters():
            if name.endswith("layer_norm.weight"):
                nn.init.ones_(p)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
            elif name == "word_emb.weight":
                nn.init.normal_(p, std=D_MODEL ** -0.5)
            else:
                nn.init.normal_(p, std=0.02)

    def forward(self, tokens, scale_mode="segment"):
        """Logits (B, L, V) for token ids (B, L); all rows are full length (no padding)."""
        b, l = tokens.shape
        x = self.word_emb(tokens) * math.sqrt(D_MODEL) + sinusoidal(l)
        v_prev = None
        for i, layer in enumerate(self.layers):
            a = layer.attn
            q = a.q_net(x).view(b, l, NUM_HEADS, HEAD_DIM).transpose(1, 2)
            k, v = (t.view(b, l, NUM_HEADS, HEAD_DIM).transpose(1, 2) for t in a.kv_net(x).chunk(2, dim=-1))
            if i == 0:
                scale = 1.0 / math.sqrt(HEAD_DIM)  # no previous layer: plain dot-product
            else:
                scale = ELLIPTICAL_SCALE
                # m is a statistic of the activations, not a learned function: no gradient
                # flows through it (the reference computes it without grad).
                with torch.no_grad():
                    if scale_mode == "segment":
                        m = segment_metric(v, v_prev).unsqueeze(2)  # one m for every query
                    else:
                        m = prefix_metric(v, v_prev)  # causal: query t sees tokens 0..t
                q = q * m
            h = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
            x = a.layer_norm(x + a.o_net(h.transpose(1, 2).reshape(b, l, NUM_HEADS * HEAD_DIM)))
            f = layer.ff
            x = f.layer_norm(x + f.fc2(F.relu(f.fc1(x))))
            v_prev = v.detach()
        return F.linear(x, self.word_emb.weight, self.out.bias)


def lr_at(step, steps):
    """Linear warmup (post-LN needs it), then cosine decay to 10% of the peak."""
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    progress = (step - WARMUP) / max(1, steps - WARMUP)
    return LR * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def train(model, train_ids, steps, seed):
    gen = torch.Generator().manual_seed(seed)
    # No weight decay on LayerNorm parameters and biases.
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
        lr=LR, betas=(0.9, 0.98))
    offsets = torch.arange(SEGMENT + 1)
    recent = []
    start = time.perf_counter()
    for step in range(steps):
        # Random segments of SEGMENT + 1 bytes: inputs and next-byte targets.
        starts = torch.randint(0, train_ids.numel() - SEGMENT - 1, (BATCH,), generator=gen)
        chunk = train_ids[starts.unsqueeze(1) + offsets]
        logits = model(chunk[:, :-1], scale_mode="segment")  # the reference's training estimate
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), chunk[:, 1:].reshape(-1))
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        recent.append(loss.item())
        if (step + 1) % 50 == 0 or step + 1 == steps:
            window = recent[-50:]
            print(f"step {step + 1:5d}/{steps}  loss {window[-1]:.4f}  (mean of last {len(window)}: "
                  f"{sum(window) / len(window):.4f})  lr {lr_at(step, steps):.2e}  "
                  f"{time.perf_counter() - start:.0f}s", flush=True)
    # The mean of the last (up to) 50 batches: one batch's loss is noisy.
    window = recent[-50:]
    return time.perf_counter() - start, sum(window) / len(window)


@torch.no_grad()
def evaluate(model, heldout_ids):
    """Perplexity in both modes and next-token argmax agreement, as bench/lm_scale_modes does.

    Non-overlapping windows of SEGMENT tokens; each window runs as a full sequence (in segment
    mode m includes its last token) and positions 0..SEGMENT-2 predict 1..SEGMENT-1.
    """
    windows = heldout_ids.numel() // SEGMENT
    all_windows = heldout_ids[: windows * SEGMENT].view(windows, SEGMENT)
    nll = {"segment": 0.0, "prefix": 0.0}
    agree = scored = 0
    for start in range(0, windows, BATCH):
        batch = all_windows[start:start + BATCH]
        targets = batch[:, 1:]
        top = {}
        for mode in nll:
            logp = F.log_softmax(model(batch, scale_mode=mode)[:, :-1], dim=-1)
            nll[mode] -= logp.gather(-1, targets.unsqueeze(-1)).sum().item()
            top[mode] = logp.argmax(-1)
        agree += (top["segment"] == top["prefix"]).sum().item()
        scored += targets.numel()
    return {
        "scored_tokens": scored,
        "ppl_segment": math.exp(nll["segment"] / scored),
        "ppl_prefix": math.exp(nll["prefix"] / scored),
        "next_token_agreement": agree / scored,
    }


def model_config():
    return {
        "family": "language_model",
        "weights": "model.safetensors",
        "vocab_size": VOCAB,
        "dtype": "float32",
        "device": "cpu",
        "lm": {
            "d_model": D_MODEL, "num_layers": NUM_LAYERS, "num_heads": NUM_HEADS, "head_dim": HEAD_DIM,
            "d_inner": D_INNER, "norm": "post", "activation": "relu", "layer_norm_eps": LN_EPS,
            "positions": "sinusoidal", "position_order": "ascending", "max_positions": MAX_POSITIONS,
            "embed_scale": math.sqrt(D_MODEL), "tie_embeddings": True, "output_bias": True,
        },
        "attention": {"mode": "elliptical", "score_scale": ELLIPTICAL_SCALE, "estimator": "mean",
                      "delta": DELTA},
        "generation": {"scale_mode": "prefix"},
    }


def write_readme(path, args, text, n_train, n_heldout, result):
    digest = hashlib.sha256(text).hexdigest()
    with open(path, "w") as f:
        f.write(f"""# Byte-level elliptical LM for the prefix vs segment measurement

Written by `bench/train_scale_mode_lm.py --steps {args.steps} --seed {args.seed}`.
This model exists only to measure how far the cache-friendly `prefix` estimate of the
elliptical metric is from the reference `segment` estimate it was trained with
(ELLIPTICAL.md, "Generation with a KV cache"). It is not a useful language model and is not
shipped by the project.

## Data
- Source: the text of `pydoc_data.topics.topics` from Python {platform.python_version()}
  (Python's own documentation, PSF licence), values concatenated in sorted-key order,
  UTF-8 encoded. Not shipped by the project.
- {len(text)} bytes, sha256 `{digest}`
  (the text differs between Python versions; the hash identifies the one used here).
- Tokens are bytes (vocab 256). The first {n_train} bytes trained the model; the last
  {n_heldout} are held out (`heldout_tokens.txt`).

## Model
- {NUM_LAYERS} post-LN layers, d_model {D_MODEL}, {NUM_HEADS} heads of {HEAD_DIM}, d_inner {D_INNER}, ReLU,
  sinusoidal ascending positions, embeddings scaled by sqrt(d_model), tied output with bias.
- Layer 0 dot-product (1/sqrt(head_dim)); layers 1..{NUM_LAYERS - 1} elliptical with score scale
  {ELLIPTICAL_SCALE}, m estimated over the whole {SEGMENT}-token training segment (segment mode).
- {args.steps} steps, batch {BATCH}, AdamW lr {LR} (warmup {WARMUP}, cosine decay),
  {result['train_seconds']:.0f} s on one CPU thread.

## Held-out evaluation (Python, `python_eval.json`)
Non-overlapping windows of {SEGMENT} tokens, positions 0..{SEGMENT - 2} predicting 1..{SEGMENT - 1}:
{result['scored_tokens']} scored predictions.

| estimate | perplexity |
|---|---|
| segment (training estimate) | {result['ppl_segment']:.4f} |
| prefix (cache-friendly) | {result['ppl_prefix']:.4f} |

Next-token argmax agreement between the two: {result['next_token_agreement']:.4f}.
The C++ model measures the same with
`lm_scale_modes --model DIR --tokens DIR/heldout_tokens.txt --window {SEGMENT}`.
""")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="model directory to write")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    # The machine is shared: one thread, and one thread makes runs bit-reproducible.
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)

    text = load_text_bytes()
    ids = torch.frombuffer(bytearray(text), dtype=torch.uint8).long()
    n_train = int(len(ids) * (1 - HELDOUT_FRACTION))
    train_ids, heldout_ids = ids[:n_train], ids[n_train:]
    with open(os.path.join(args.out, "heldout_tokens.txt"), "w") as f:
        f.write(" ".join(map(str, heldout_ids.tolist())) + "\n")
    print(f"text: {len(ids)} bytes, train {n_train}, held out {len(heldout_ids)}", flush=True)

    model = EllipticalLm()
    print(f"parameters: {sum(p.numel() for p in model.parameters())}", flush=True)
    model.train()
    train_seconds, final_loss = train(model, train_ids, args.steps, args.seed)
    model.eval()

    # Every tensor the language_model loader expects, nothing else (loading is strict).
    state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(args.out, "model.safetensors"))
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(model_config(), f, indent=2)
        f.write("\n")

    result = evaluate(model, heldout_ids)
    result.update(train_seconds=train_seconds, final_train_loss=final_loss)
    report = {
        "heldout_tokens": len(heldout_ids),
        "window": SEGMENT,
        "ppl_segment": result["ppl_segment"],
        "ppl_prefix": result["ppl_prefix"],
        "next_token_agreement": result["next_token_agreement"],
        "train_seconds": round(train_seconds, 2),
        "final_train_loss": final_loss,
    }
    with open(os.path.join(args.out, "python_eval.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    write_readme(os.path.join(args.out, "README.md"), args, text, n_train, len(heldout_ids), result)
    print(f"held out ({result['scored_tokens']} scored tokens in windows of {SEGMENT}): "
          f"ppl segment {result['ppl_segment']:.4f}, ppl prefix {result['ppl_prefix']:.4f}, "
          f"next-token agreement {result['next_token_agreement']:.4f}", flush=True)
    print(f"wrote {args.out}: model.safetensors config.json heldout_tokens.txt README.md python_eval.json")


if __name__ == "__main__":
    main()
