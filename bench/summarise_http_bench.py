#!/usr/bin/env python3
"""Turns bench/run_http_bench.sh's JSONL into a Markdown report: before against after.

    python bench/summarise_http_bench.py http_front_DATE.jsonl http_front_DATE.md

Per (workload, connections) and side, over its rounds: the mean requests/s (and completion
tokens/s), the median of the rounds' p50 and p99 latencies (ms; for a streamed completion the
whole stream, its time to the first event apart), errors summed over the rounds. A point with
errors or starved connections (completed nothing in the window) is flagged.
"""
import json
import statistics
import sys

WORKLOAD_NAMES = {"classify": "KServe v2 Classify (PNG, BYTES)", "completion": "OpenAI completion",
                  "completion-stream": "OpenAI completion, streamed"}


def fmt(x, digits=0):
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def main():
    src, dst = sys.argv[1:3]
    rows = [json.loads(line) for line in open(src) if line.strip()]
    machine = next((r for r in rows if r["kind"] == "machine"), {})
    servers = {r["side"]: r for r in rows if r["kind"] == "server"}
    runs = [r for r in rows if r["kind"] == "run"]
    sides = [s for s in ("before", "after") if s in servers]
    out = [f"# HTTP front: {' against '.join(sides)}", "",
           f"CPU: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores; "
           f"ISA: {' '.join(machine.get('isa', []))}; kernel {machine.get('kernel', '?')}.", ""]
    for s in sides:
        v = servers[s]
        out.append(f"- **{s}**: `{v['binary']}` (sha256 {v['sha256_16']}…, "
                   f"{'new front (--http_header_timeout)' if v['new_front'] else 'old front (cpp-httplib)'}), "
                   f"flags `{v['flags']}`")
    if len(sides) == 1:
        out.append("- no before binary: this run measured the after binary alone")
    if runs:
        r0 = runs[0]
        n_rounds = len({r["round"] for r in runs})
        out += ["", f"Each point: {n_rounds} round(s) per side, interleaved (before, after, before, after, ...); "
                f"{r0['warmup_s']:g} s warm-up then {r0['duration_s']:g} s measured per run, closed loop over "
                f"keep-alive HTTP/1.1 connections (bench/http_load.py), per-request timeout {r0['timeout_s']:g} s. "
                "req/s: mean over rounds; p50/p99: median over rounds' percentiles. Completions: "
                f"max_tokens {next((r['max_tokens'] for r in runs if r['max_tokens']), '-')}, temperature 0.", ""]

    points = []
    for r in runs:
        k = (r["workload"], r["connections"])
        if k not in points:
            points.append(k)

    def agg(side, k):
        rs = [r for r in runs if r["side"] == side and (r["workload"], r["connections"]) == k]
        if not rs:
            return None
        med = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
        return {
            "rps": statistics.mean(r["rps"] for r in rs),
            "rps_rounds": [r["rps"] for r in rs],
            "tps": statistics.mean(r["tokens_per_s"] for r in rs) if rs[0]["tokens_per_s"] is not None else None,
            "p50": med([r["latency_ms"]["p50"] for r in rs if r["latency_ms"]["p50"] is not None]),
            "p99": med([r["latency_ms"]["p99"] for r in rs if r["latency_ms"]["p99"] is not None]),
            "ttft50": med([r["ttft_ms"]["p50"] for r in rs if r.get("ttft_ms") and r["ttft_ms"]["p50"] is not None]),
            "ttft99": med([r["ttft_ms"]["p99"] for r in rs if r.get("ttft_ms") and r["ttft_ms"]["p99"] is not None]),
            "errors": sum(r["errors"] for r in rs),
            "errors_kinds": sorted({k for r in rs for k in r["errors_by_kind"]}),
            "starved": max(r["starved_connections"] for r in rs),
            "cpu_ms": med([r["server_cpu_ms_per_request"] for r in rs if r.get("server_cpu_ms_per_request")]),
            "threads": max((r["server_threads"] or 0) for r in rs),
            "reconnects": sum(r["reconnects"] for r in rs) / len(rs),
            "client_cpu": max(r["client_cpu_frac"] for r in rs),
            "load": max((r["loadavg_1m"] for r in rs if "loadavg_1m" in r), default=None),
        }

    def flags(a):
        notes = []
        if a["errors"]:
            notes.append(f"**{a['errors']} errors** ({', '.join(a['errors_kinds'])})")
        if a["starved"]:
            notes.append(f"{a['starved']} starved conns")
        return "; ".join(notes)

    for workload in dict.fromkeys(w for w, _ in points):
        completion = workload != "classify"
        stream = workload == "completion-stream"
        out += [f"## {WORKLOAD_NAMES.get(workload, workload)}", ""]
        head = ["conns"]
        for s in sides:
            head += [f"{s} req/s"] + ([f"{s} tok/s"] if completion else []) + [f"{s} p50 / p99 ms"] + \
                ([f"{s} first event p50 / p99 ms"] if stream else [])
        if len(sides) == 2:
            head += ["after/before req/s", "after/before p99"]
        head += ["notes"]
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for w, c in points:
            if w != workload:
                continue
            a = {s: agg(s, (w, c)) for s in sides}
            cells = [str(c)]
            for s in sides:
                x = a[s]
                cells += [fmt(x["rps"], 1)] + ([fmt(x["tps"])] if completion else []) + \
                    [f"{fmt(x['p50'], 1)} / {fmt(x['p99'], 1)}"] + \
                    ([f"{fmt(x['ttft50'], 1)} / {fmt(x['ttft99'], 1)}"] if stream else [])
            if len(sides) == 2:
                b, f = a["before"], a["after"]
                cells.append(f"{f['rps'] / b['rps']:.2f}x" if b["rps"] else "-")
                cells.append(f"{f['p99'] / b['p99']:.2f}x" if b["p99"] and f["p99"] else "-")
            cells.append("; ".join(f"{s}: {flags(a[s])}" for s in sides if flags(a[s])))
            out.append("| " + " | ".join(cells) + " |")
        out.append("")

    out += ["## Diagnostics", "",
            "Server CPU per request (user + system over the window / requests), the server's threads "
            "mid-window, reconnections per run (the server closing keep-alive connections), the load "
            "generator's CPU (fraction of one core; near 1.0 the client, not the server, is the limit), "
            "the machine's highest 1-minute load average at a run's end (this run's server and client "
            "included: well above the cores, other work competed) and each round's req/s.", "",
            "| workload | conns | side | server CPU ms/req | threads | reconnects/run | client CPU | load avg | "
            "req/s by round |",
            "|---|---|---|---|---|---|---|---|---|"]
    for w, c in points:
        for s in sides:
            x = agg(s, (w, c))
            out.append(f"| {w} | {c} | {s} | {fmt(x['cpu_ms'], 2)} | {x['threads']} | {fmt(x['reconnects'])} | "
                       f"{x['client_cpu']:.2f} | {fmt(x['load'], 1)} | {', '.join(fmt(v, 1) for v in x['rps_rounds'])} |")
    out.append("")
    loads = [r["loadavg_1m"] for r in runs if "loadavg_1m" in r]
    cores = machine.get("cores") or 0
    if loads and cores and max(loads) > cores + 1:
        out.append(f"Note: the 1-minute load average reached {max(loads):.1f} on {cores} cores (median "
                   f"{statistics.median(loads):.1f}): other work shared the machine; the interleaved rounds "
                   "spread it over both sides, but single rounds are noisy.")
        out.append("")
    errors = sum(r["errors"] for r in runs)
    out.append(f"Errors in measured windows, all runs: {errors}" + (" (see the notes columns)." if errors else "."))
    open(dst, "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
