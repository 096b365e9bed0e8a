#!/usr/bin/env python3
"""Turns bench/run_core_bench.sh's JSON lines into the Markdown report beside them.

    python bench/summarise_core_bench.py core-LABEL.jsonl core-LABEL.md LABEL
"""
import json
import platform
import subprocess
import sys


def machine():
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    name = next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name")), "?")
    flags = next((l.split(":", 1)[1].split() for l in lscpu.splitlines() if l.startswith("Flags")), [])
    bf16 = [f for f in ("avx512_bf16", "amx_bf16") if f in flags] or ["none"]
    cpus = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return f"{name}, {cpus} CPUs (bf16 instructions: {', '.join(bf16)}), kernel {platform.release()}, no GPU"


def main():
    rows = [json.loads(l) for l in open(sys.argv[1])]
    part = lambda p: [r for r in rows if r["part"] == p]
    out = [f"# Serving core: {sys.argv[3]}", "", f"Machine: {machine()}.", "",
           "Produced by `bash bench/run_core_bench.sh`; `ours` is this build, `baseline` the build given with",
           "`--baseline-server`. Same machine, one run, side by side.", ""]

    out += ["## Open Generate streams", "",
            "| server | streams | refused | server threads | resident MiB | Classify calls | Classify p50 ms | Classify p99 ms |",
            "|---|---|---|---|---|---|---|---|"]
    for r in part("streams"):
        fmt = lambda v: "-" if v is None else f"{v:.1f}"
        out.append(f"| {r['server']} | {r['streams']} | {r['refused']} {r['refused_by_code'] or ''} | "
                   f"{r['server_threads']} | {r['server_rss_bytes'] / 2**20:.0f} | {r['classify_calls']} | "
                   f"{fmt(r['classify_p50_ms'])} | {fmt(r['classify_p99_ms'])} |")

    out += ["", "## Generate throughput (64 new tokens per request, closed loop)", "",
            "| server | streams | tokens/s | TTFT p50 ms | errors |", "|---|---|---|---|---|"]
    for r in part("generate"):
        out.append(f"| {r['server']} | {r['concurrency']} | {r.get('tokens_per_second', 0):.0f} | "
                   f"{r.get('ttft_ms', {}).get('p50', 0):.1f} | {sum(r['errors'].values())} {r['errors'] or ''} |")

    out += ["", "## Time per output token against position (one stream)", "",
            "| server | position 1 ms | position 256 ms | position 1024 ms |", "|---|---|---|---|"]
    for r in part("token_times"):
        f = lambda k: "-" if r.get(k) is None else f"{r[k]:.2f}"
        out.append(f"| {r['server']} | {f('tpot_ms_at_1')} | {f('tpot_ms_at_256')} | {f('tpot_ms_at_1024')} |")

    out += ["", "## Classify (fixture ViT, 32 px)", "",
            "| server | batching | clients | req/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|---|"]
    for r in part("classify"):
        lat = r["latency_ms"]
        out.append(f"| {r['server']} | {r['setting']} | {r['concurrency']} | {r['throughput']:.1f} | "
                   f"{lat['p50']:.2f} | {lat['p99']:.2f} | {sum(r['errors'].values())} |")

    out += ["", "## DeiT-Tiny 224, elliptical", "",
            "| server | setting | clients | images/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|---|"]
    for r in part("deit"):
        lat = r["latency_ms"]
        out.append(f"| {r['server']} | {r['setting']} | {r['concurrency']} | {r['throughput']:.1f} | "
                   f"{lat['p50']:.1f} | {lat['p99']:.1f} | {sum(r['errors'].values())} |")
    text = "\n".join(out) + "\n"
    open(sys.argv[2], "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
