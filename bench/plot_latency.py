#!/usr/bin/env python3
"""Draws latency (p50 and p99) against throughput from elliptical-loadgen reports, one curve per
setting, as a PNG (Pillow only, no plotting library needed).

    python bench/plot_latency.py --rpc classify --out plot.png rows.jsonl
ROWS is elliptical-loadgen's --out file (a JSON array, one curve), or lines of reports each with a
"batching" (or "label") field naming its curve.
"""
import argparse
import json
import math

from PIL import Image, ImageDraw

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rpc", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--title", default="")
    p.add_argument("rows")
    args = p.parse_args()
    text = open(args.rows).read()
    # elliptical-loadgen --out writes a JSON array; the bench scripts write one report a line.
    rows = json.loads(text) if text.lstrip().startswith("[") else [json.loads(l) for l in text.splitlines() if l.strip()]
    rows = [r for r in rows if r["rpc"] == args.rpc and r["ok"] > 0]
    curves = {}
    for r in rows:
        curves.setdefault(str(r.get("batching", r.get("label", ""))), []).append(r)

    W, H, L, R, T, B = 900, 560, 80, 30, 50, 70
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    xs = [r["throughput"] for r in rows] or [1]
    ys = [r["latency_ms"][q] for r in rows for q in ("p50", "p99")] or [1]
    xmax = max(xs) * 1.1
    ymin, ymax = max(min(ys) / 1.5, 0.01), max(ys) * 1.5  # log scale

    def px(x, y):
        fx = x / xmax
        fy = (math.log10(y) - math.log10(ymin)) / (math.log10(ymax) - math.log10(ymin))
        return L + fx * (W - L - R), H - B - fy * (H - T - B)

    d.rectangle([L, T, W - R, H - B], outline="black")
    for i in range(6):
        x = xmax * i / 5
        X, _ = px(x, ymin)
        d.line([X, H - B, X, H - B + 5], fill="black")
        d.text((X - 15, H - B + 8), f"{x:.0f}", fill="black")
    decade = math.floor(math.log10(ymin))
    while 10 ** decade <= ymax:
        for m in (1, 2, 5):
            y = m * 10 ** decade
            if ymin <= y <= ymax:
                _, Y = px(0, y)
                d.line([L - 5, Y, L, Y], fill="black")
                d.line([L, Y, W - R, Y], fill=(230, 230, 230))
                d.text((L - 45, Y - 6), f"{y:g}", fill="black")
        decade += 1
    d.text((W / 2 - 90, H - 30), f"throughput ({'requests' if args.rpc != 'generate' else 'requests'}/s)", fill="black")
    d.text((10, T - 30), "latency, ms (log scale): solid p50, thin p99", fill="black")
    d.text((L, 10), args.title or f"{args.rpc}: latency against throughput", fill="black")

    for i, (name, pts) in enumerate(sorted(curves.items())):
        colour = COLOURS[i % len(COLOURS)]
        pts = sorted(pts, key=lambda r: r.get("concurrency") or r.get("offered_rate") or 0)
        for q, width in (("p50", 3), ("p99", 1)):
            line = [px(r["throughput"], r["latency_ms"][q]) for r in pts]
            if len(line) > 1:
                d.line(line, fill=colour, width=width)
            for (X, Y), r in zip(line, pts):
                d.ellipse([X - 3, Y - 3, X + 3, Y + 3], fill=colour)
                if q == "p50":
                    d.text((X + 5, Y - 14), f"{r.get('concurrency') or r.get('offered_rate')}", fill=colour)
        d.text((W - R - 200, T + 10 + 16 * i), f"batching {name}" if name in ("on", "off") else name, fill=colour)
    img.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
