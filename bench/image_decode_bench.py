#!/usr/bin/env python3
"""Decode time of 224x224 and 1024x1024 JPEG and PNG images (and WebP), the server's decoder
(libjpeg-turbo, libpng, libwebp) against stb_image, which it replaced, side by side in one
process (bench/image_decode.cc). bench/run_image_decode_bench.sh builds the tool and runs this.

    python bench/image_decode_bench.py --tool build/bench/image_decode --label NAME

Writes bench/results/image_decode-NAME.jsonl (the machine, then one line per file and decoder)
and bench/results/image_decode-NAME.md (the table, with stb / new as the speed-up).

The images are made here with Pillow, photo-like: smooth gradients, an edge, sensor-like noise
(a flat synthetic picture would flatter PNG's filters and JPEG's entropy coder alike). JPEG at
quality 90 with Pillow's default 4:2:0 chroma subsampling, baseline and progressive; PNG RGB at
zlib level 6 (Pillow's default); WebP lossy at quality 80 (stb has no WebP: new decoder only).
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import machine  # noqa: E402


def photo(size, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    r = 128 + 100 * np.sin(x / (size / 3.1)) * np.cos(y / (size / 2.3))
    g = 255 * x / (size - 1)
    b = np.where((x - size / 2) ** 2 + (y - size / 2) ** 2 < (size / 3) ** 2, 200.0, 40.0)
    rgb = np.stack([r, g, b], axis=-1) + rng.normal(0, 6, (size, size, 3))
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tool", required=True, help="the image_decode binary")
    parser.add_argument("--label", required=True)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-ms", type=float, default=150)
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    results = os.path.join(root, "bench", "results")
    os.makedirs(results, exist_ok=True)

    with tempfile.TemporaryDirectory() as work:
        files = []
        for size in (224, 1024):
            image = photo(size, seed=size)
            for name, fmt, options in [(f"photo_{size}.jpg", "JPEG", {"quality": 90}),
                                       (f"photo_{size}_progressive.jpg", "JPEG", {"quality": 90, "progressive": True}),
                                       (f"photo_{size}.png", "PNG", {}),
                                       (f"photo_{size}.webp", "WEBP", {"quality": 80})]:
                path = os.path.join(work, name)
                image.save(path, format=fmt, **options)
                files.append(path)
        report_path = os.path.join(work, "report.json")
        subprocess.run([args.tool, f"--rounds={args.rounds}", f"--min_ms={args.min_ms}", f"--out={report_path}",
                        *files], check=True)
        with open(report_path) as f:
            report = json.load(f)

    host = machine()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = report["results"]
    with open(os.path.join(results, f"image_decode-{args.label}.jsonl"), "w") as f:
        f.write(json.dumps({"machine": host, "when": when, "rounds": args.rounds, "min_ms": args.min_ms}) + "\n")
        for row in rows:
            f.write(json.dumps(row) + "\n")

    by_file = {}
    for row in rows:
        by_file.setdefault(row["file"], {})[row["decoder"]] = row
    new, stb = "libjpeg-turbo/libpng/libwebp", "stb_image"
    lines = [f"# Image decode: {args.label}", "",
             f"Machine: {host['cpu']}, {host['cores']} CPUs, ISA {' '.join(host['isa'])}, kernel {host['kernel']}; {when}.",
             "", "Produced by `bash bench/run_image_decode_bench.sh`: one thread, bytes in memory to 8-bit RGB, "
             f"{args.rounds} rounds alternating the decoders (each at least {args.min_ms:g} ms of CPU time of "
             "back-to-back decodes); the median round's CPU time per decode (the thread's own, so other "
             "processes on a shared machine do not count). Speed-up = stb / new, measured side by side.", "",
             "| image | size | bytes | stb_image ms | new ms | speed-up |", "|---|---|---|---|---|---|"]
    for name, pair in by_file.items():
        n, s = pair[new], pair.get(stb, {})
        s_ms = s.get("median_cpu_ms")
        stb_cell = "-" if s_ms is None else f"{s_ms:.3f}"
        ratio_cell = "-" if s_ms is None else f"{s_ms / n['median_cpu_ms']:.2f}x"
        lines.append(f"| {name} | {n['width']}x{n['height']} | {n['bytes']:,} | {stb_cell} | "
                     f"{n['median_cpu_ms']:.3f} | {ratio_cell} |")
    if not report["stb_available"]:
        lines += ["", "libstb-dev was not installed when the tool was built: no stb_image column."]
    with open(os.path.join(results, f"image_decode-{args.label}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
