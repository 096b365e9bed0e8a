#!/usr/bin/env python3
"""Held-out accuracy of the three default models served in float32 and in bfloat16, side by
side: digits-vit top-1, digit-scenes-segmenter mIoU and kjv-lm per-token perplexity over the
held-out verses (each verse scored by the Score RPC). The server computes each number itself,
through its real decode, preprocessing and batching; only --dtype differs between the runs.

    .venv/bin/python bench/precision_accuracy.py --server-binary build/server/elliptical-server \\
        [--verses 400] [--out bench/results/precision_accuracy-LABEL.json]
"""
import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(ROOT, "training"))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

import digits  # noqa: E402
import kjv  # noqa: E402
from elliptical_client import Client  # noqa: E402
from server import start_server  # noqa: E402


def cpu_name_and_isa():
    name, flags = platform.processor(), set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and not name:
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16") if f in flags]
    return name, isa


def pngs(directory, images):
    os.makedirs(directory, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        paths.append(os.path.join(directory, f"{i:04d}.png"))
        Image.fromarray(image, mode="L").save(paths[-1])
    return paths


def measure(client, work, verses):
    images, labels = digits.load_split()["heldout"]
    paths = pngs(os.path.join(work, "digits"), images)
    predicted = []
    for i in range(0, len(paths), 32):
        predicted += [int(c[0].label) for c in client.classify("digits-vit", paths[i:i + 32], top_k=1)]
    top1 = float(np.mean(np.array(predicted) == labels))
    print(f"  digits-vit top-1 {top1:.4f} ({len(labels)} images)", flush=True)

    scenes, masks = digits.heldout_scenes()
    conf = np.zeros((len(digits.SCENE_LABELS),) * 2, np.int64)
    for path, mask in zip(pngs(os.path.join(work, "scenes"), scenes), masks):
        got = client.segment("digit-scenes-segmenter", path)
        conf += digits.confusion(np.array(got.class_ids).reshape(mask.shape), mask, len(digits.SCENE_LABELS))
    miou = float(digits.mean_iou(conf))
    print(f"  digit-scenes-segmenter mIoU {miou:.4f} ({len(scenes)} scenes)", flush=True)

    _, held, _ = kjv.split()
    logprob, tokens = 0.0, 0
    for i, verse in enumerate(held[:verses]):
        s = client.score("kjv-lm", verse)
        logprob += s.total_logprob
        tokens += s.scored_tokens
        if (i + 1) % 100 == 0:
            print(f"    scored {i + 1}/{min(verses, len(held))} verses", flush=True)
    ppl = math.exp(-logprob / tokens)
    print(f"  kjv-lm perplexity {ppl:.3f} ({tokens} tokens)", flush=True)
    return {"digits_vit_top1": top1, "segmenter_miou": miou, "lm_perplexity": ppl, "lm_tokens": tokens}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-binary", required=True)
    p.add_argument("--verses", type=int, default=400, help="held-out verses the LM scores")
    p.add_argument("--out", help="JSON file to write")
    args = p.parse_args()
    cpu, isa = cpu_name_and_isa()
    print(f"CPU: {cpu}; ISA: {' '.join(isa)}")
    result = {"cpu": cpu, "isa": isa, "runs": {}}
    for dtype in ("float32", "bfloat16"):
        work = tempfile.mkdtemp(prefix=f"precision_{dtype}_")
        print(f"{dtype}:", flush=True)
        server, address = start_server(args.server_binary, os.path.join(ROOT, "models"), work, f"--dtype={dtype}")
        try:
            with Client(address, timeout_s=120) as client:
                client.wait_until_serving(timeout_s=60)
                start = time.time()
                result["runs"][dtype] = measure(client, work, args.verses)
                result["runs"][dtype]["seconds"] = round(time.time() - start, 1)
        finally:
            server.terminate()
            server.wait(timeout=30)
    f, b = result["runs"]["float32"], result["runs"]["bfloat16"]
    result["loss_points"] = {"digits_vit_top1": round(100 * (f["digits_vit_top1"] - b["digits_vit_top1"]), 3),
                             "segmenter_miou": round(100 * (f["segmenter_miou"] - b["segmenter_miou"]), 3),
                             "lm_perplexity_increase_pct":
                                 round(100 * (b["lm_perplexity"] / f["lm_perplexity"] - 1), 3)}
    print(json.dumps(result["loss_points"]))
    if args.out:
        with open(args.out, "w") as out:
            json.dump(result, out, indent=1)
            out.write("\n")


if __name__ == "__main__":
    main()
