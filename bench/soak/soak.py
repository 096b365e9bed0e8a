#!/usr/bin/env python3
"""Mixed-load soak of the real server: concurrent clients call Classify (the example digits),
Segment (the example scenes) and Generate (streams of varying length, some cancelled mid-stream,
some with deadlines that expire, a trickle of bad requests), while a sampler records, every
--interval seconds, per-RPC throughput, latency p50/p99 and status codes (expected or not), the
server's resident memory, threads and open files (/proc/<pid>) and its /metrics gauges.

    bash bench/soak/run_soak.sh --minutes 30                  # starts the server on the shipped models
    bash bench/soak/run_soak.sh --minutes 2 --address 127.0.0.1:8500 \
        --metrics-url http://127.0.0.1:8501/metrics --server-pid 1234    # a server already running

Writes OUT/soak-NAME.jsonl (one line per sample, then a summary line), OUT/soak-NAME.md and
OUT/soak-NAME.png (RSS and throughput over time). Exits 1 when a call ends with a status its
kind does not expect (or a wrong answer), when resident memory grows more than
--max-rss-growth-pct between the end of the warm-up and the end, when the server dies, or when
its gauges do not return to idle after the load stops.

Each kind of call and what it accepts:
  classify            1-4 example digits; OK with the same top-1 labels as at the start
  segment             an example scene; OK with >= 99% of pixels as at the start
  generate            prompt, max_new_tokens 1-512, greedy or sampled; OK with a summary
  generate_cancel     a long sampled stream cancelled after a few pieces; CANCELLED (or OK)
  deadline_classify   Classify with a 1 ms deadline; DEADLINE_EXCEEDED or OK
  deadline_generate   a long stream with a 20-100 ms deadline; DEADLINE_EXCEEDED or OK
  bad_request         undecodable image, no images, too many, empty prompt, max_new_tokens
                      over the limit: INVALID_ARGUMENT; an unknown model: NOT_FOUND
"""
import argparse
import datetime
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soaklib import (CLASSIFIER, LM, ROOT, SEGMENTER, Client, ClientError, Server, example, idle,  # noqa: E402
                     proc_status, scrape, wait_until)

KINDS = ["classify", "segment", "generate", "generate_cancel", "deadline_classify", "deadline_generate",
         "bad_request"]
PROMPTS = ["And God said", "In the beginning", "The LORD is my shepherd", "And it came to pass",
           "Blessed are", "Then Jesus", "And the king", "Hear, O Israel"]
DIGITS = [example(f"digit-{i}.png") for i in range(10)]
SCENES = [example(f"scene-{i}.png") for i in range(3)]
MIB = 1 << 20


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class Tally:
    """Outcomes of the calls, per kind: counts by (code, expected), latencies, Generate tokens.
    take() hands over the interval's and starts the next; totals are kept for the summary."""

    def __init__(self):
        self.lock = threading.Lock()
        self.interval = {}
        self.total = {k: {"count": 0, "codes": {}, "unexpected": 0, "tokens": 0} for k in KINDS}
        self.examples = []  # the first few unexpected outcomes, with their messages

    def record(self, kind, code, latency_s, expected, tokens=0, message=""):
        with self.lock:
            i = self.interval.setdefault(kind, {"count": 0, "codes": {}, "unexpected": 0, "lat": [], "tokens": 0})
            t = self.total[kind]
            key = code if expected else f"{code} (unexpected)"
            for d in (i, t):
                d["count"] += 1
                d["codes"][key] = d["codes"].get(key, 0) + 1
                d["tokens"] += tokens
                d["unexpected"] += 0 if expected else 1
            if code == "OK":
                i["lat"].append(latency_s)
            if not expected and len(self.examples) < 20:
                self.examples.append({"kind": kind, "code": code, "message": message[:300]})

    def take(self):
        with self.lock:
            out, self.interval = self.interval, {}
        return out


class Load:
    """The client threads: each has its own channel and runs its kind of call in a loop until
    stop is set."""

    def __init__(self, address, tally, stop, reference, think_s, seed):
        self.address, self.tally, self.stop, self.ref, self.think_s = address, tally, stop, reference, think_s
        self.seed = seed

    def run(self, kind, index):
        rng = random.Random(self.seed * 1000 + KINDS.index(kind) * 100 + index)
        body = getattr(self, kind)
        pause = {"bad_request": 0.1, "deadline_classify": 0.05, "deadline_generate": 0.05}.get(kind, self.think_s)
        # deadline_classify's client gives each call 1 ms; the others 60 s.
        with Client(self.address, timeout_s=0.001 if kind == "deadline_classify" else 60) as client:
            while not self.stop.is_set():
                start = time.perf_counter()
                try:
                    code, expected, tokens, message = body(client, rng)
                except ClientError as e:
                    code, expected, tokens, message = e.code, False, 0, e.message
                except Exception as e:  # a bug of this script, or a broken answer: counted, never hidden
                    code, expected, tokens, message = f"CLIENT_{type(e).__name__}", False, 0, str(e)
                self.tally.record(kind, code, time.perf_counter() - start, expected, tokens, message)
                if pause:
                    self.stop.wait(pause)

    def classify(self, client, rng):
        picks = rng.sample(range(10), rng.randint(1, 4))
        result = client.classify(CLASSIFIER, [DIGITS[i] for i in picks], top_k=3)
        labels = [r[0].label for r in result]
        want = [self.ref["classify"][i] for i in picks]
        if labels != want:
            return "WRONG_ANSWER", False, 0, f"top-1 {labels}, at the start {want}"
        return "OK", True, 0, ""

    def segment(self, client, rng):
        i = rng.randrange(len(SCENES))
        mask = client.segment(SEGMENTER, SCENES[i])
        ref = self.ref["segment"][i]
        same = sum(a == b for a, b in zip(mask.class_ids, ref)) / max(1, len(ref))
        if len(mask.class_ids) != len(ref) or same < 0.99:
            return "WRONG_ANSWER", False, 0, f"scene-{i}: {same:.1%} of pixels as at the start"
        return "OK", True, 0, ""

    def generate(self, client, rng):
        n = rng.choice([1, 8, 32, 64, 128, 256, 512])
        temperature = rng.choice([0.0, 0.8, 10.0])  # 10: near-uniform sampling, rarely ends early
        g = client.generate(LM, rng.choice(PROMPTS), max_new_tokens=n, temperature=temperature,
                            seed=rng.randint(1, 1 << 30))
        for _ in g:
            pass
        s = g.summary
        if s is None or s.generated_tokens > n or s.generated_tokens != len(g.token_ids):
            return "BAD_SUMMARY", False, len(g.token_ids), f"max_new_tokens {n}: summary {s}, {len(g.token_ids)} ids"
        return "OK", True, s.generated_tokens, ""

    def generate_cancel(self, client, rng):
        g = client.generate(LM, rng.choice(PROMPTS), max_new_tokens=512, temperature=10.0,
                            seed=rng.randint(1, 1 << 30))
        after = rng.randint(1, 40)
        pieces = 0
        for _ in g:
            pieces += 1
            if pieces == after:
                g.cancel()
        return ("OK" if g.summary else "CANCELLED"), True, len(g.token_ids), ""

    def deadline_classify(self, client, rng):
        try:
            client.classify(CLASSIFIER, [DIGITS[rng.randrange(10)]])
            return "OK", True, 0, ""
        except ClientError as e:
            return e.code, e.code == "DEADLINE_EXCEEDED", 0, e.message

    def deadline_generate(self, client, rng):
        g = client.generate(LM, rng.choice(PROMPTS), max_new_tokens=512, temperature=10.0,
                            seed=rng.randint(1, 1 << 30), timeout_s=rng.uniform(0.02, 0.1))
        try:
            for _ in g:
                pass
            return "OK", True, len(g.token_ids), ""
        except ClientError as e:
            return e.code, e.code == "DEADLINE_EXCEEDED", len(g.token_ids), e.message

    BAD = [
        ("undecodable image", "INVALID_ARGUMENT", lambda c: c.classify(CLASSIFIER, [b"GIF89a not an image"])),
        ("no images", "INVALID_ARGUMENT", lambda c: c.classify(CLASSIFIER, [])),
        ("65 images", "INVALID_ARGUMENT", lambda c: c.classify(CLASSIFIER, [DIGITS[0]] * 65)),
        ("undecodable scene", "INVALID_ARGUMENT", lambda c: c.segment(SEGMENTER, b"\x89PNG\r\n\x1a\n truncated")),
        ("empty prompt", "INVALID_ARGUMENT", lambda c: c.generate(LM, "", max_new_tokens=8).text()),
        ("max_new_tokens 100000", "INVALID_ARGUMENT", lambda c: c.generate(LM, "And", max_new_tokens=100000).text()),
        ("unknown model", "NOT_FOUND", lambda c: c.classify("no-such-model", [DIGITS[0]])),
    ]

    def bad_request(self, client, rng):
        what, want, call = rng.choice(self.BAD)
        try:
            call(client)
            return "OK", False, 0, f"{what}: accepted"
        except ClientError as e:
            return e.code, e.code == want, 0, f"{what}: {e.message}"


def reference_answers(address):
    """What the server answers with no other load: each digit's top-1 label, each scene's mask."""
    with Client(address, timeout_s=60) as c:
        return {"classify": [c.classify(CLASSIFIER, [d], top_k=1)[0][0].label for d in DIGITS],
                "segment": [c.segment(SEGMENTER, s).class_ids for s in SCENES]}


def server_state(metrics, pid):
    """The sample's server side: /proc of its process, and the gauges and totals of /metrics."""
    out = {"proc": proc_status(pid), "metrics_rss_bytes": None}
    if metrics.has("elliptical_process_resident_memory_bytes"):
        out["metrics_rss_bytes"] = metrics.value("elliptical_process_resident_memory_bytes")
    elif metrics.has("process_resident_memory_bytes"):
        out["metrics_rss_bytes"] = metrics.value("process_resident_memory_bytes")
    out["gauges"] = {
        "in_flight": metrics.by("elliptical_in_flight_requests", "rpc"),
        "queue_items": metrics.by("elliptical_queue_items", "model"),
        "running_sequences": metrics.value("elliptical_running_sequences"),
        "waiting_sequences": metrics.value("elliptical_waiting_sequences"),
        "kv_cache_slots_used": metrics.value("elliptical_kv_cache_slots_used"),
        "kv_cache_reserved_bytes": metrics.value("elliptical_kv_cache_reserved_bytes"),
        "model_ready": metrics.by("elliptical_model_ready", "model"),
        "device_memory_allocated_bytes": metrics.value("elliptical_device_memory_allocated_bytes"),
    }
    out["server_requests_by_code"] = metrics.by("elliptical_requests_total", "code")
    out["rejections_by_reason"] = metrics.by("elliptical_rejections_total", "reason")
    out["generated_tokens_total"] = metrics.value("elliptical_generated_tokens_total")
    return out


def rss_of(sample):
    return sample["server"]["proc"].get("rss_bytes") or sample["server"]["metrics_rss_bytes"]


def progress_line(s):
    r = s["rpc"]
    per = lambda k: r.get(k, {}).get("per_s", 0.0)  # noqa: E731
    p99 = lambda k: r.get(k, {}).get("p99_ms")  # noqa: E731
    fmt = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
    g, proc = s["server"]["gauges"], s["server"]["proc"]
    rss = rss_of(s)
    return (f"[soak] {s['t']:7.0f}s {s['phase']:7s} cls {per('classify'):6.1f}/s seg {per('segment'):5.1f}/s "
            f"gen {per('generate'):5.1f}/s ({r.get('generate', {}).get('tokens_per_s', 0):6.0f} tok/s) "
            f"cancel {per('generate_cancel'):4.1f}/s dl {per('deadline_classify') + per('deadline_generate'):4.1f}/s "
            f"bad {per('bad_request'):4.1f}/s | p99 ms cls {fmt(p99('classify'))} seg {fmt(p99('segment'))} "
            f"gen {fmt(p99('generate'))} | unexpected {s['unexpected']} | "
            f"rss {'-' if rss is None else f'{rss / MIB:.1f}'} MiB thr {proc.get('threads', '-')} "
            f"fds {proc.get('fds', '-')} | in-flight {sum(g['in_flight'].values()):.0f} "
            f"running {g['running_sequences']:.0f} slots {g['kv_cache_slots_used']:.0f}")


def summarise(run, samples, final, tally, args):
    """The verdict and the Markdown summary."""
    measured = [s for s in samples if s["phase"] == "measure"]
    rss = [(s["t"], rss_of(s)) for s in measured if rss_of(s)]
    memory = {"warmup_end_bytes": None, "end_bytes": None, "max_bytes": None, "growth_pct": None,
              "slope_mib_per_hour": None}
    if len(rss) >= 2:
        memory.update(warmup_end_bytes=rss[0][1], end_bytes=rss[-1][1], max_bytes=max(v for _, v in rss),
                      growth_pct=100.0 * (rss[-1][1] - rss[0][1]) / rss[0][1])
        mt, mv = sum(t for t, _ in rss) / len(rss), sum(v for _, v in rss) / len(rss)
        var = sum((t - mt) ** 2 for t, _ in rss)
        if var > 0:
            memory["slope_mib_per_hour"] = sum((t - mt) * (v - mv) for t, v in rss) / var * 3600 / MIB
    unexpected = sum(t["unexpected"] for t in tally.total.values())
    failures = []
    if unexpected:
        failures.append(f"{unexpected} calls ended with a status their kind does not expect")
    if memory["growth_pct"] is not None and memory["growth_pct"] > args.max_rss_growth_pct:
        failures.append(f"resident memory grew {memory['growth_pct']:.1f}% after warm-up "
                        f"(limit {args.max_rss_growth_pct:g}%)")
    if final.get("server_died"):
        failures.append(f"the server exited during the soak (status {final['server_died']})")
    if final.get("not_idle"):
        failures.append(f"gauges still held after the load stopped: {final['not_idle']}")
    if final.get("exit_status") not in (None, 0):
        failures.append(f"the server's exit status after SIGTERM was {final['exit_status']}")
    verdict = {"pass": not failures, "failures": failures, "unexpected": unexpected, "memory": memory}

    first, last = (measured[0], measured[-1]) if measured else (None, None)
    lines = [f"# Soak: {run['name']}", "",
             f"{run['started']}, {run['minutes']:g} minutes ({run['warmup_minutes']:g} of warm-up), samples every "
             f"{run['interval_s']:g} s; machine: {run['machine']}; server: `{run['server']}`"
             + (f" (flags: `{' '.join(run['server_flags'])}`)" if run['server_flags'] else "") + f"; clients: {run['clients']}"
             + (f", {run['think_ms']:g} ms between calls" if run["think_ms"] else ", closed loop") + ".", "",
             f"Result: **{'PASS' if verdict['pass'] else 'FAIL'}**" + ("" if verdict["pass"] else ": " + "; ".join(failures)),
             "", "## Resident memory", ""]
    if memory["growth_pct"] is not None:
        lines += ["| after warm-up MiB | at the end MiB | max MiB | growth | trend (least squares) |", "|---|---|---|---|---|",
                  f"| {memory['warmup_end_bytes'] / MIB:.1f} | {memory['end_bytes'] / MIB:.1f} | {memory['max_bytes'] / MIB:.1f} "
                  f"| {memory['growth_pct']:+.2f}% | {memory['slope_mib_per_hour'] or 0:+.1f} MiB/hour |"]
    else:
        lines.append("Fewer than two samples after the warm-up: no growth figure.")
    if first and last:
        pf, pl = first["server"]["proc"], last["server"]["proc"]
        lines += ["", f"Server threads {pf.get('threads', '-')} -> {pl.get('threads', '-')}, open files "
                  f"{pf.get('fds', '-')} -> {pl.get('fds', '-')} (first to last sample after warm-up)."]
    lines += ["", "## Calls", "", "| kind | calls | p50 ms | p99 ms | per s, first interval after warm-up | per s, last | change | codes |",
              "|---|---|---|---|---|---|---|---|"]
    for k in KINDS:
        t = tally.total[k]
        if not t["count"]:
            continue
        f = first["rpc"].get(k, {}).get("per_s") if first else None
        l = last["rpc"].get(k, {}).get("per_s") if last else None
        change = f"{100 * (l - f) / f:+.1f}%" if f and l is not None else ""
        codes = ", ".join(f"{c} {n}" for c, n in sorted(t["codes"].items()))
        lat = final["latency_ms"].get(k, {})
        fmt = lambda v: "" if v is None else f"{v:.1f}"  # noqa: E731
        lines.append(f"| {k} | {t['count']} | {fmt(lat.get('p50'))} | {fmt(lat.get('p99'))} | {fmt(f)} | {fmt(l)} "
                     f"| {change} | {codes} |")
    gen_tokens = tally.total["generate"]["tokens"]
    lines += ["", f"Generate (kind `generate`): {gen_tokens} tokens received; the server's "
              f"`elliptical_generated_tokens_total`: {final.get('generated_tokens_total', 0):.0f} (it counts the "
              "streams that finish OK, of every kind)."]
    if final.get("server_requests_by_code"):
        lines += ["", "Server-side finished RPCs by code (`elliptical_requests_total`): "
                  + ", ".join(f"{c} {v:.0f}" for c, v in sorted(final["server_requests_by_code"].items()))
                  + "; rejections (`elliptical_rejections_total`): "
                  + ", ".join(f"{c} {v:.0f}" for c, v in sorted(final.get("rejections_by_reason", {}).items()))]
    if tally.examples:
        lines += ["", "## Unexpected outcomes (first 20)", ""]
        lines += [f"- {e['kind']}: {e['code']}: {e['message']}" for e in tally.examples]
    lines += ["", f"After the load: {'idle within ' + format(final['idle_after_s'], '.1f') + ' s' if final.get('idle_after_s') is not None else 'not idle: ' + str(final.get('not_idle'))}"
              + ("" if final.get("exit_status") is None else f"; SIGTERM: exit status {final['exit_status']}") + "."]
    return verdict, "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--warmup-minutes", type=float, default=None,
                   help="samples before this are warm-up (default: 10%% of the run, at most 3 minutes)")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    p.add_argument("--name", "--label", default=f"{socket.gethostname().split('.')[0]}-{os.cpu_count()}cpu")
    p.add_argument("--out-dir", default=os.path.join(ROOT, "bench", "results"))
    p.add_argument("--server-binary", default=os.path.join(ROOT, "build", "server", "elliptical-server"))
    p.add_argument("--model-repository", default=os.path.join(ROOT, "models"))
    p.add_argument("--compute-threads", type=int, default=0, help="the server's --compute_threads (0: its default)")
    p.add_argument("--server-flag", action="append", default=[], help="another flag for the server (repeatable)")
    p.add_argument("--address", default="", help="use this running server instead of starting one")
    p.add_argument("--metrics-url", default="", help="with --address: its /metrics URL")
    p.add_argument("--server-pid", type=int, default=0, help="with --address: its process id, for /proc")
    for kind, n in [("classify", 2), ("segment", 1), ("generate", 2), ("cancel", 1), ("deadline", 1), ("bad", 1)]:
        p.add_argument(f"--{kind}-clients", type=int, default=n)
    p.add_argument("--think-ms", type=float, default=0.0, help="pause of each client between calls")
    p.add_argument("--max-rss-growth-pct", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    warmup = args.warmup_minutes if args.warmup_minutes is not None else min(3.0, 0.1 * args.minutes)

    os.makedirs(args.out_dir, exist_ok=True)
    base = os.path.join(args.out_dir, f"soak-{args.name}")
    flags = ([f"--compute_threads={args.compute_threads}"] if args.compute_threads else []) + args.server_flag
    server = None
    work = tempfile.mkdtemp(prefix="soak-")
    if args.address:
        address, metrics_url, pid = args.address, args.metrics_url, args.server_pid
    else:
        print(f"[soak] starting {args.server_binary} on {args.model_repository} (log {work}/server.log)", flush=True)
        server = Server(args.server_binary, args.model_repository, work, flags)
        address, metrics_url, pid = server.address, server.metrics_url, server.pid
    with Client(address, timeout_s=10) as c:
        c.wait_until_serving(timeout_s=120)
    reference = reference_answers(address)

    clients = {"classify": args.classify_clients, "segment": args.segment_clients, "generate": args.generate_clients,
               "generate_cancel": args.cancel_clients, "deadline_classify": args.deadline_clients,
               "deadline_generate": args.deadline_clients, "bad_request": args.bad_clients}
    run = {"type": "run", "name": args.name, "started": datetime.datetime.now().isoformat(timespec="seconds"),
           "minutes": args.minutes, "warmup_minutes": warmup, "interval_s": args.interval,
           "machine": f"{platform.node()}, {os.cpu_count()} CPUs, {platform.machine()}",
           "server": os.path.abspath(args.server_binary) if server else address, "server_flags": flags,
           "clients": ", ".join(f"{k} {n}" for k, n in clients.items() if n), "think_ms": args.think_ms,
           "address": address, "metrics_url": metrics_url, "pid": pid}
    print(f"[soak] {address}, metrics {metrics_url or 'none'}, pid {pid or 'unknown'}; {args.minutes:g} min, "
          f"warm-up {warmup:g} min, clients: {run['clients']}", flush=True)

    tally, stop = Tally(), threading.Event()
    interrupted = []
    signal.signal(signal.SIGINT, lambda *_: (interrupted.append(1), stop.set()))
    signal.signal(signal.SIGTERM, lambda *_: (interrupted.append(1), stop.set()))
    load = Load(address, tally, stop, reference, args.think_ms / 1000.0, args.seed)
    threads = [threading.Thread(target=load.run, args=(k, i), daemon=True, name=f"{k}-{i}")
               for k, n in clients.items() for i in range(n)]
    jsonl = open(base + ".jsonl", "w")
    jsonl.write(json.dumps(run) + "\n")
    samples, final = [], {"latency_ms": {}}
    all_lat = {k: [] for k in KINDS}
    t0 = time.monotonic()
    for t in threads:
        t.start()
    last = t0
    end = t0 + 60 * args.minutes
    while not stop.is_set():
        stop.wait(max(0.0, min(last + args.interval, end) - time.monotonic()))
        now = time.monotonic()
        interval = tally.take()
        dt = max(1e-9, now - last)
        last = now
        rpc = {}
        for k, d in interval.items():
            all_lat[k].extend(d["lat"])
            rpc[k] = {"count": d["count"], "per_s": d["count"] / dt, "codes": d["codes"], "unexpected": d["unexpected"],
                      "p50_ms": (percentile(d["lat"], 0.5) or 0) * 1000 if d["lat"] else None,
                      "p99_ms": (percentile(d["lat"], 0.99) or 0) * 1000 if d["lat"] else None}
            if d["tokens"]:
                rpc[k]["tokens_per_s"] = d["tokens"] / dt
        elapsed = now - t0
        sample = {"type": "sample", "t": round(elapsed, 2), "phase": "warmup" if elapsed < 60 * warmup else "measure",
                  "interval_s": round(dt, 3), "rpc": rpc, "unexpected": sum(r["unexpected"] for r in rpc.values()),
                  "server": server_state(scrape(metrics_url), pid)}
        samples.append(sample)
        jsonl.write(json.dumps(sample) + "\n")
        jsonl.flush()
        print(progress_line(sample), flush=True)
        if server and not server.alive():
            final["server_died"] = server.process.returncode
            stop.set()
        if now >= end - 1e-3:
            stop.set()
    if interrupted:
        print("[soak] interrupted: stopping the clients and writing what was measured", flush=True)
    for t in threads:
        t.join(timeout=90)
    final["clients_stuck"] = [t.name for t in threads if t.is_alive()]
    for k, lat in all_lat.items():
        if lat:
            final["latency_ms"][k] = {"p50": 1000 * percentile(lat, 0.5), "p99": 1000 * percentile(lat, 0.99)}
    if metrics_url and not final.get("server_died"):
        t_idle = time.monotonic()
        try:
            wait_until("server idle", lambda: not idle(scrape(metrics_url)), 30, poll_s=0.2)
            final["idle_after_s"] = time.monotonic() - t_idle
        except TimeoutError:
            final["not_idle"] = idle(scrape(metrics_url))
        m = scrape(metrics_url)
        final["server_requests_by_code"] = m.by("elliptical_requests_total", "code")
        final["rejections_by_reason"] = m.by("elliptical_rejections_total", "reason")
        final["generated_tokens_total"] = m.value("elliptical_generated_tokens_total")
    if server and not final.get("server_died"):
        final["exit_status"] = server.stop(timeout_s=90)
    verdict, markdown = summarise(run, samples, final, tally, args)
    jsonl.write(json.dumps({"type": "summary", **verdict, "totals": tally.total, "final": final}) + "\n")
    jsonl.close()
    open(base + ".md", "w").write(markdown)
    if os.path.exists(base + ".png"):
        os.remove(base + ".png")  # a plot from an earlier run of this name would mislead
    plot = subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "plot_soak.py"),
                           base + ".jsonl", base + ".png"], capture_output=True, text=True)
    print(markdown, flush=True)
    print("[soak] " + ((plot.stdout + plot.stderr).strip() or f"plot: exit status {plot.returncode}"), flush=True)
    print(f"[soak] wrote {base}.jsonl, {base}.md" + (f", {base}.png" if os.path.exists(base + ".png") else ""),
          flush=True)
    if server and verdict["pass"]:
        shutil.rmtree(work, ignore_errors=True)
    elif server:
        print(f"[soak] server log kept in {work}/server.log", flush=True)
    return 0 if verdict["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
