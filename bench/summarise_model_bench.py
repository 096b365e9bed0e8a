#!/usr/bin/env python3
"""Merges runs of bench/model_forward (C++) and bench/python_eager.py into one JSON file and a
Markdown table: throughput per model and batch, the elliptical overhead over dot-product within
each implementation, and the C++/Python speed ratio. Of repeated runs, the best is kept."""
import argparse
import json
import platform
import subprocess


def load(paths):
    runs, best = [], {}
    for path in paths:
        with open(path) as f:
            run = json.load(f)
        runs.append({k: v for k, v in run.items() if k != "results"})
        for r in run["results"]:
            key = (run["implementation"], r["model"], r["batch"], r["attention"])
            if key not in best or r["items_per_second"] > best[key]["items_per_second"]:
                best[key] = r
    return runs, best


def machine():
    try:
        cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        name = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), "")
    except OSError:
        name = ""
    return {"cpu": name or platform.processor(), "kernel": platform.release()}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--label", required=True)
    p.add_argument("--json", required=True)
    p.add_argument("--markdown", required=True)
    p.add_argument("runs", nargs="+")
    args = p.parse_args()
    runs, best = load(args.runs)

    rows = []
    configs = sorted({(m, b) for (_, m, b, _) in best}, key=lambda c: (c[0], c[1]))
    for model, batch in configs:
        def ips(impl, mode):
            r = best.get((impl, model, batch, mode))
            return r["items_per_second"] if r else None

        row = {"model": model, "batch": batch}
        for impl in ("cpp", "python_eager"):
            e, d = ips(impl, "elliptical"), ips(impl, "dot_product")
            row[f"{impl}_elliptical"] = e
            row[f"{impl}_dot_product"] = d
            row[f"{impl}_overhead"] = (d / e - 1) if e and d else None
        ce, pe = row["cpp_elliptical"], row["python_eager_elliptical"]
        row["cpp_over_python"] = ce / pe if ce and pe else None
        rows.append(row)

    first = runs[0]
    summary = {"label": args.label, "machine": machine(), "runs": runs, "rows": rows}
    with open(args.json, "w") as f:
        json.dump(summary, f, indent=1)

    def num(x, fmt="{:.1f}"):
        return "-" if x is None else fmt.format(x)

    lines = [
        f"# Model forward throughput: {args.label}",
        "",
        f"Machine: {summary['machine']['cpu']} ({first.get('device_name', '')}), device {first['device']}, "
        f"{first['dtype']}, {first['threads']} threads, torch {first.get('torch_version', '?')}.",
        "Items per second (images, or 256-token sequences for lm16), best of the runs; overhead is the",
        "elliptical model's extra time per forward over dot-product on the same weights, measured with",
        "their forwards interleaved.",
        "",
        "| model | batch | C++ elliptical | C++ dot | C++ overhead | Python elliptical | Python dot | Python overhead | C++ / Python (elliptical) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['batch']} | {num(r['cpp_elliptical'])} | {num(r['cpp_dot_product'])} | "
            f"{num(r['cpp_overhead'] and 100 * r['cpp_overhead'], '{:+.1f}%')} | {num(r['python_eager_elliptical'])} | "
            f"{num(r['python_eager_dot_product'])} | {num(r['python_eager_overhead'] and 100 * r['python_eager_overhead'], '{:+.1f}%')} | "
            f"{num(r['cpp_over_python'], '{:.2f}x')} |")
    with open(args.markdown, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
