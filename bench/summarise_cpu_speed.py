#!/usr/bin/env python3
"""Turns bench/run_cpu_speed_bench.sh's JSONL into a Markdown report.

    python bench/summarise_cpu_speed.py results.jsonl report.md LABEL
"""
import json
import sys


def main():
    src, dst, label = sys.argv[1:4]
    rows = [json.loads(line) for line in open(src) if line.strip()]
    machine = next((r for r in rows if r["part"] == "machine" and r["setting"] == "cpu"), {})
    cores = next((r["cores"] for r in rows if r["part"] == "machine" and r["setting"] == "cores"), 0)
    out = [f"# CPU speed: {label}", "",
           f"CPU: {machine.get('cpu', '?')}, {cores} cores; ISA: {' '.join(machine.get('isa', []))}.", ""]

    forward = [r for r in rows if r["part"] == "forward"]
    if forward:
        out += ["## DeiT-Tiny 224 forward alone (elliptical), images/s", "",
                f"| precision | 1 thread, batch 1 | 1 thread, batch 8 | {cores} threads, batch 1 | "
                f"{cores} threads, batch 8 | {cores} threads / 1, batch 8 |",
                "|---|---|---|---|---|---|"]
        kinds = []
        for r in forward:
            k = (r["dtype"], r["packed"])
            if k not in kinds:
                kinds.append(k)
        for dtype, packed in kinds:
            def get(t, b):
                for r in forward:
                    if (r["dtype"], r["packed"], r["threads"], r["batch"]) == (dtype, packed, t, b):
                        return r["items_per_second"]
                return None
            cells = [get(1, 1), get(1, 8), get(cores, 1), get(cores, 8)]
            ratio = cells[3] / cells[1] if cells[1] and cells[3] else None
            name = dtype if dtype == "float32" else f"{dtype}, {'packed' if packed else 'unpacked'} weights"
            if dtype == "float32" and not packed and any(r["dtype"] == "float32" and r["packed"] for r in forward):
                continue
            out.append(f"| {name} | " + " | ".join(f"{c:.1f}" if c else "-" for c in cells) +
                       f" | {ratio:.2f}x |" if ratio else " | - |")
        out.append("")

    anchors = [r for r in rows if r["part"] == "anchors"]
    if anchors:
        out += ["## Other engines on the same network (ONNX export of training/nets.py), images/s", "",
                "| engine | threads | batch 1 | batch 8 |", "|---|---|---|---|"]
        seen = []
        for r in anchors:
            k = (r["engine"], r["threads"])
            if k in seen:
                continue
            seen.append(k)
            cell = {a["batch"]: a["items_per_second"] for a in anchors if (a["engine"], a["threads"]) == k}
            out.append(f"| {k[0]} | {k[1]} | {cell.get(1, 0):.1f} | {cell.get(8, 0):.1f} |")
        out.append("")

    # Rounds of one (setting, clients): the median round by throughput.
    rounds = {}
    for r in rows:
        if r["part"] == "server":
            rounds.setdefault((r["setting"], r["concurrency"]), []).append(r)
    server = []
    for key in rounds:
        group = sorted(rounds[key], key=lambda r: r["throughput"])
        median = dict(group[len(group) // 2])
        median["rounds"] = [round(r["throughput"], 1) for r in rounds[key]]
        server.append(median)
    server.sort(key=lambda r: (r["setting"].split("_lend_")[0] != "float32", r["concurrency"],
                               r["setting"]))
    if server:
        out += ["## Through the server: Classify, 224 x 224 PNG, closed loop", "",
                "Server stages are the means of the server's own per-request timing (ServerTiming); "
                "`rest` is the client-measured mean latency minus them (gRPC, response, client). "
                "Each row is the median of its rounds (req/s of every round in the last column); the "
                "two lending settings alternate round by round.", "",
                "| dtype, lone batch threads | clients | req/s | p50 ms | p99 ms | decode | preprocess | "
                "queue | compute | rest | mean batch | rounds, req/s |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in server:
            s = r.get("server_ms", {})
            stages = sum(s.get(k, 0) for k in ("decode", "preprocess", "queue", "compute"))
            dtype, lend = r["setting"].split("_lend_")
            who = f"{dtype}, {'every idle instance' if lend == 'true' else 'own instance only'}"
            out.append(f"| {who} | {r['concurrency']} | {r['throughput']:.1f} | {r['latency_ms']['p50']:.1f} | "
                       f"{r['latency_ms']['p99']:.1f} | {s.get('decode', 0):.2f} | {s.get('preprocess', 0):.2f} | "
                       f"{s.get('queue', 0):.2f} | {s.get('compute', 0):.2f} | "
                       f"{s.get('mean_latency', 0) - stages:.2f} | {s.get('mean_batch_size', 0):.2f} | "
                       f"{', '.join(map(str, r['rounds']))} |")
        out.append("")
    lm = {}
    for r in rows:
        if r["part"] == "lm":
            lm.setdefault((r["setting"], r["concurrency"]), []).append(r)
    if lm:
        out += ["## kjv-lm Generate (64 new tokens), tokens/s, median of rounds", "",
                "| dtype | streams | tokens/s | time per output token p50 ms | rounds, tokens/s |",
                "|---|---|---|---|---|"]
        for (dtype, clients), group in sorted(lm.items(), key=lambda kv: (kv[0][1], kv[0][0] != "float32")):
            group = sorted(group, key=lambda r: r["tokens_per_second"])
            m = group[len(group) // 2]
            out.append(f"| {dtype} | {clients} | {m['tokens_per_second']:.0f} | {m['tpot_ms']['p50']:.2f} | "
                       f"{', '.join(str(round(r['tokens_per_second'])) for r in group)} |")
        out.append("")
    with open(dst, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
