#!/usr/bin/env python3
"""Draws a soak's resident memory and per-RPC throughput over time from its JSONL, as a PNG:
with matplotlib when it is installed, else with Pillow (as bench/plot_latency.py does), else
not at all (it says so and exits 0: the plot is optional).

    python bench/soak/plot_soak.py bench/results/soak-NAME.jsonl bench/results/soak-NAME.png
"""
import json
import sys

KINDS = ["classify", "segment", "generate", "generate_cancel", "deadline_classify", "deadline_generate", "bad_request"]
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#7f7f7f"]


def series(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    samples = [r for r in rows if r.get("type") == "sample"]
    run = next((r for r in rows if r.get("type") == "run"), {})
    t = [s["t"] / 60 for s in samples]
    rss = [((s["server"]["proc"].get("rss_bytes") or s["server"]["metrics_rss_bytes"] or 0) / (1 << 20)) for s in samples]
    per = {k: [s["rpc"].get(k, {}).get("per_s", 0.0) for s in samples] for k in KINDS}
    per = {k: v for k, v in per.items() if any(v)}
    warm = run.get("warmup_minutes")
    return t, rss, per, warm


def with_matplotlib(path, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t, rss, per, warm = series(path)
    fig, (a, b) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    a.plot(t, rss, color="#1f77b4")
    a.set_ylabel("server resident MiB")
    for k, colour in zip(KINDS, COLOURS):
        if k in per:
            b.plot(t, per[k], label=k, color=colour)
    b.set_ylabel("calls per second")
    b.set_xlabel("minutes")
    b.legend(fontsize=8)
    for ax in (a, b):
        ax.grid(alpha=0.3)
        if warm is not None:
            ax.axvline(warm, color="grey", linestyle="--", linewidth=1)
    fig.suptitle("soak: resident memory and throughput (dashed: end of warm-up)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def with_pillow(path, out):
    from PIL import Image, ImageDraw
    t, rss, per, warm = series(path)
    W, H, L, R, T, gap = 900, 640, 80, 170, 40, 60
    ph = (H - T - 2 * gap) // 2
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    d.text((L, 12), "soak: resident memory (top) and calls per second (bottom); dashed: end of warm-up", fill="black")
    xmax = max(t) if t and max(t) > 0 else 1.0

    def panel(top, curves, label):
        ys = [y for _, ys_, _ in curves for y in ys_] or [1.0]
        lo, hi = min(0.0, min(ys)), max(ys) * 1.1 or 1.0
        box = (L, top, W - R, top + ph)
        d.rectangle(box, outline="black")
        X = lambda x: L + (W - R - L) * x / xmax  # noqa: E731
        Y = lambda y: top + ph - ph * (y - lo) / (hi - lo)  # noqa: E731
        for i in range(5):
            v = lo + (hi - lo) * i / 4
            d.line((L - 4, Y(v), L, Y(v)), fill="black")
            d.text((8, Y(v) - 6), f"{v:.0f}", fill="black")
        d.text((8, top - 16), label, fill="black")
        if warm is not None:
            for y in range(top, top + ph, 8):
                d.line((X(warm), y, X(warm), y + 4), fill="grey")
        for n, (name, ys_, colour) in enumerate(curves):
            pts = [(X(x), Y(y)) for x, y in zip(t, ys_)]
            if len(pts) > 1:
                d.line(pts, fill=colour, width=2)
            d.line((W - R + 12, top + 10 + 16 * n, W - R + 32, top + 10 + 16 * n), fill=colour, width=3)
            d.text((W - R + 38, top + 4 + 16 * n), name, fill="black")

    panel(T + 10, [("resident MiB", rss, COLOURS[0])], "MiB")
    panel(T + ph + gap, [(k, per[k], c) for k, c in zip(KINDS, COLOURS) if k in per], "calls/s")
    for i in range(6):
        x = xmax * i / 5
        px = L + (W - R - L) * x / xmax
        d.text((px - 10, H - gap + 28), f"{x:.1f}", fill="black")
    d.text(((W - R) // 2, H - 18), "minutes", fill="black")
    img.save(out)


def main():
    path, out = sys.argv[1], sys.argv[2]
    try:
        import matplotlib  # noqa: F401
        with_matplotlib(path, out)
        print(f"plot (matplotlib): {out}")
        return 0
    except ImportError:
        pass
    try:
        import PIL  # noqa: F401
    except ImportError:
        print("no plot: neither matplotlib nor Pillow is installed in this Python")
        return 0
    with_pillow(path, out)
    print(f"plot (Pillow; matplotlib is not installed): {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
