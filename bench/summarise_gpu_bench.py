#!/usr/bin/env python3
"""The JSON lines of bench/run_gpu_classify.sh and bench/run_gpu_lm.sh, and their Markdown.

    summarise_gpu_bench.py record --jsonl F --md M KEY=VALUE...          a record (run, note, done)
    summarise_gpu_bench.py point --jsonl F --md M --loadgen R KEY=VALUE... elliptical-loadgen's
                                                                         report R, with KEY=VALUE
    summarise_gpu_bench.py md --jsonl F --md M                          the table again

Each call appends at most one line and rewrites the whole Markdown from the lines, so both stay
valid after every point whatever cuts the run short. VALUE is parsed as JSON where it can be
(numbers, true/false), else kept as a string.
"""
import argparse
import json
import os


def parse_pairs(pairs):
    out = {}
    for p in pairs:
        key, _, value = p.partition("=")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def read(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def f1(v):
    return "" if v is None else f"{v:.1f}"


def f2(v):
    return "" if v is None else f"{v:.2f}"


def errors(p):
    e = p.get("errors") or {}
    return ", ".join(f"{k} {v}" for k, v in sorted(e.items())) or "0"


def header(run, title):
    lines = [f"# {title}: {run.get('device_name', '?')}", ""]
    if run.get("description"):
        lines += [run["description"], ""]
    facts = [f"{k.replace('_', ' ')} {run[k]}" for k in ("device", "server_flags", "loadgen", "started") if k in run]
    if facts:
        lines += ["; ".join(facts) + ".", ""]
    return lines


def classify_md(rows):
    run = next((r for r in rows if r.get("record") == "run"), {})
    lines = header(run, "Classify through the server")
    lines += ["| model | attention | clients | images/s | p50 ms | p90 ms | p99 ms | server decode ms | "
              "preprocess ms | queue ms | compute ms | mean batch | errors |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in (r for r in rows if r.get("record") == "point"):
        lat, s = p["latency_ms"], p.get("server_ms", {})
        lines.append(f"| {p.get('model')} | {p.get('attention', '')} | {p['concurrency']} | {f1(p['throughput'])} | "
                     f"{f2(lat['p50'])} | {f2(lat['p90'])} | {f2(lat['p99'])} | {f2(s.get('decode'))} | "
                     f"{f2(s.get('preprocess'))} | {f2(s.get('queue'))} | {f2(s.get('compute'))} | "
                     f"{f1(s.get('mean_batch_size'))} | {errors(p)} |")
    return lines


def lm_md(rows):
    run = next((r for r in rows if r.get("record") == "run"), {})
    lines = header(run, "Language-model decoding through the server")
    points = {}
    order = []
    for p in (r for r in rows if r.get("record") == "point"):
        key = (p.get("model"), p["concurrency"])
        if key not in points:
            points[key] = {}
            order.append(key)
        points[key][bool(p.get("cuda_graphs"))] = p
    lines += ["| model | streams | tokens/s, graphs off | tokens/s, graphs on | on / off | TTFT p50 ms off | on | "
              "per-token p50 ms off | on | errors off | on |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key in order:
        off, on = points[key].get(False), points[key].get(True)

        def get(p, *path):
            for k in path:
                p = None if p is None else p.get(k)
            return p
        ratio = (f"{on['tokens_per_second'] / off['tokens_per_second']:.2f}x"
                 if on and off and off.get("tokens_per_second") else "")
        lines.append(f"| {key[0]} | {key[1]} | {f1(get(off, 'tokens_per_second'))} | {f1(get(on, 'tokens_per_second'))} | "
                     f"{ratio} | {f2(get(off, 'ttft_ms', 'p50'))} | {f2(get(on, 'ttft_ms', 'p50'))} | "
                     f"{f2(get(off, 'tpot_ms', 'p50'))} | {f2(get(on, 'tpot_ms', 'p50'))} | "
                     f"{errors(off) if off else ''} | {errors(on) if on else ''} |")
    return lines


def write_md(jsonl, md):
    rows = read(jsonl)
    run = next((r for r in rows if r.get("record") == "run"), {})
    lines = lm_md(rows) if run.get("bench") == "gpu_lm" else classify_md(rows)
    notes = [r["text"] for r in rows if r.get("record") == "note"]
    end = [r for r in rows if r.get("record") in ("done", "stopped")]
    lines += [""] + [f"- {n}" for n in notes]
    lines += ["", f"Status: {end[-1]['status'] if end else 'running (or cut off: no end record)'}."]
    with open(md, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["record", "point", "md"])
    p.add_argument("--jsonl", required=True)
    p.add_argument("--md", required=True)
    p.add_argument("--loadgen", help="point: elliptical-loadgen's --out file (a JSON array of one report)")
    p.add_argument("pairs", nargs="*")
    a = p.parse_intermixed_args()
    line = None
    if a.action == "record":
        line = parse_pairs(a.pairs)
    elif a.action == "point":
        with open(a.loadgen) as f:
            report = json.load(f)[0]
        line = {"record": "point", **parse_pairs(a.pairs), **report}
    if line is not None:
        with open(a.jsonl, "a") as f:
            f.write(json.dumps(line) + "\n")
    write_md(a.jsonl, a.md)


if __name__ == "__main__":
    main()
