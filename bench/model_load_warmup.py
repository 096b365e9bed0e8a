#!/usr/bin/env python3
"""What warm-up buys: for each model, a fresh server (--model_control_mode=explicit, nothing
loaded at start) loads it with LoadModel (elliptical.v1, which answers once the model is READY),
then the first request is timed, then the next 20. Once with --warmup=true and once with
--warmup=false, each model in a fresh process per round (LibTorch's and oneDNN's caches start
cold, as in a new pod), --rounds rounds each. Reports, per model and mode, the medians over the
rounds of:

  load_rpc_ms      LoadModel called -> answered (READY)
  load_ms          what the server reports for reading the weights and building the model
  warmup_ms        what it reports for the warm-up (0 with --warmup=false)
  first_ms         the first request after the load
  next20_p50_ms    the median of the 20 requests after it

Requests: Classify of one image (classifiers), Segment of one image (the segmenter), a Generate
stream of 16 tokens, greedy (the language model; the whole stream). Models: the shipped
models/digits-vit, models/digit-scenes-segmenter and models/kjv-lm, and a DeiT-Tiny-shaped
classifier with random weights (224 px, 12 layers, width 192; tools/make_demo_model.py), at
their config.json's dtype and device ("auto": what the server picks on this CPU).

    .venv/bin/python bench/model_load_warmup.py --server-binary build/server/elliptical-server \\
        [--rounds 3] [--label ci-vm-2core]

Writes bench/results/model_load_warmup-<label>.json (every round, the machine) and .md.
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
from elliptical_client import Client
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, HERE)
from machine import machine  # noqa: E402
from server import start_server, stop_server  # noqa: E402

NEXT = 20
TOKENS = 16


def make_repository(work):
    """The shipped models and a DeiT-Tiny-shaped classifier under WORK/models; -> (repo, {model: request})."""
    import make_demo_model as demo
    repo = os.path.join(work, "models")
    for name in ("digits-vit", "digit-scenes-segmenter", "kjv-lm"):
        shutil.copytree(os.path.join(ROOT, "models", name), os.path.join(repo, name))
    config = dict(demo.DEFAULT_CONFIG)
    config["vit"] = {"image_size": 224, "patch_size": 16, "in_channels": 3, "embed_dim": 192, "depth": 12,
                     "num_heads": 3, "mlp_ratio": 4.0, "qkv_bias": True, "layer_norm_eps": 1e-6}
    config["num_classes"] = 1000
    config["attention"] = {"mode": "elliptical", "estimator": "mean", "delta": 1.0}
    demo.write_classifier(os.path.join(repo, "deit-tiny"), config, [f"class_{i}" for i in range(1000)], seed=7)
    deit_image = os.path.join(work, "deit.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)).save(deit_image)
    digit = open(os.path.join(ROOT, "docs", "examples", "digit-3.png"), "rb").read()
    scene = open(os.path.join(ROOT, "docs", "examples", "scene-0.png"), "rb").read()
    deit = open(deit_image, "rb").read()
    requests = {
        "digits-vit": lambda c: c.classify("digits-vit", [digit], top_k=1),
        "deit-tiny": lambda c: c.classify("deit-tiny", [deit], top_k=1),
        "digit-scenes-segmenter": lambda c: c.segment("digit-scenes-segmenter", scene),
        "kjv-lm": lambda c: c.generate("kjv-lm", "And God said", max_new_tokens=TOKENS).text(),
    }
    return repo, requests


def timed(call):
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1e3


def one_round(args, repo, work, model, request, warmup):
    run = os.path.join(work, f"run-{model}-{warmup}")
    shutil.rmtree(run, ignore_errors=True)
    os.makedirs(run)
    server, address = start_server(args.server_binary, repo, run, "--model_control_mode=explicit",
                                   f"--warmup={'true' if warmup else 'false'}", *args.server_flag)
    try:
        with Client(address, timeout_s=600) as c:
            deadline = time.monotonic() + 60
            while True:  # nothing is loaded: health is NOT_SERVING, so wait for the index instead
                try:
                    c.repository_index()
                    break
                except Exception:  # noqa: BLE001 - still starting
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            start = time.perf_counter()
            versions = c.load_model(model)
            load_rpc_ms = (time.perf_counter() - start) * 1e3
            v = versions[0]
            if v.state != "ready":
                raise SystemExit(f"{model}: {v.state} {v.reason}")
            first = timed(lambda: request(c))
            rest = [timed(lambda: request(c)) for _ in range(NEXT)]
    finally:
        stop_server(server)
    return {"model": model, "warmup": warmup, "load_rpc_ms": load_rpc_ms, "load_ms": v.load_ms,
            "warmup_ms": v.warmup_ms, "first_ms": first, "next20_p50_ms": statistics.median(rest),
            "next20_ms": rest}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-binary", required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--label", default="ci-vm-2core")
    p.add_argument("--models", default="digits-vit,digit-scenes-segmenter,kjv-lm,deit-tiny")
    p.add_argument("--server-flag", action="append", default=[], help="another server flag (repeatable)")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="model_load_warmup_")
    repo, requests = make_repository(work)
    rows = []
    for model in args.models.split(","):
        for warmup in (True, False):
            for r in range(args.rounds):
                row = one_round(args, repo, work, model, requests[model], warmup)
                row["round"] = r
                rows.append(row)
                print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v)
                                  for k, v in row.items() if k != "next20_ms"}), flush=True)
    m = machine()
    summary = []
    for model in args.models.split(","):
        for warmup in (True, False):
            mine = [r for r in rows if r["model"] == model and r["warmup"] == warmup]
            summary.append({"model": model, "warmup": warmup,
                            **{k: statistics.median(r[k] for r in mine)
                               for k in ("load_rpc_ms", "load_ms", "warmup_ms", "first_ms", "next20_p50_ms")}})
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, f"model_load_warmup-{args.label}")
    with open(base + ".json", "w") as f:
        json.dump({"machine": m, "rounds": args.rounds, "server_flags": args.server_flag, "summary": summary,
                   "runs": rows}, f, indent=1)
    lines = [f"# Model load and warm-up ({args.label})", "",
             f"CPU: {m['cpu']}, {m['cores']} cores; ISA: {', '.join(m['isa'])}",
             f"(avx512_bf16: {'yes' if 'avx512_bf16' in m['isa'] else 'no'}, "
             f"AMX: {'yes' if 'amx_bf16' in m['isa'] else 'no'}); kernel {m['kernel']}.", "",
             f"A fresh server per round (--model_control_mode=explicit, nothing loaded at start; "
             f"flags: {' '.join(args.server_flag) or 'defaults'}); LoadModel, then the first request "
             f"and {NEXT} more. Medians over {args.rounds} rounds, ms. `python3 bench/model_load_warmup.py` "
             "(its docstring says what each column is).", "",
             "| model | --warmup | LoadModel -> READY | load (server) | warm-up (server) | first request | "
             f"next {NEXT}, p50 | first / p50 |",
             "|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['model']} | {str(s['warmup']).lower()} | {s['load_rpc_ms']:.1f} | {s['load_ms']:.1f} | "
                     f"{s['warmup_ms']:.1f} | {s['first_ms']:.2f} | {s['next20_p50_ms']:.2f} | "
                     f"{s['first_ms'] / s['next20_p50_ms']:.1f}x |")
    lines += ["", "Requests: Classify of one image (digits-vit: docs/examples/digit-3.png; deit-tiny: a random "
              "224 x 224 PNG), Segment of docs/examples/scene-0.png, a Generate stream of "
              f"{TOKENS} tokens (kjv-lm, greedy, the whole stream)."]
    with open(base + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
