#!/usr/bin/env python3
"""What one /metrics scrape costs, on the HTTP port and on the metrics port side by side: a
scraper on one keep-alive connection (as a router's is) scrapes N times with the server idle,
then N times while clients keep the fixture classifier (KServe REST) and language model (OpenAI
streams) busy. Reports p50, p99 and max per scrape, the exposition's size and (idle) the server's
CPU time per scrape, with the machine.
Routers scrape every 50 ms, so a scrape must stay far below that, under load too.

    .venv-clients/bin/python bench/metrics_scrape.py --server-binary build/server/elliptical-server \
        --fixtures build/fixtures [--scrapes 1000] [--label NAME]

Writes bench/results/metrics_scrape-<label>.jsonl (one line per port and phase, then the machine).
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time

import numpy as np
import openai
import tritonclient.http as httpclient

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "support"))
sys.path.insert(0, HERE)
from machine import machine  # noqa: E402
from server import fixture_repository, start_server, stop_server  # noqa: E402


def wait_port(path, timeout_s=60):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if os.path.exists(path) and open(path).read().strip():
            return int(open(path).read())
        time.sleep(0.05)
    raise SystemExit(f"no port in {path}")


def scrape_times(port, n):
    """-> (seconds per scrape, bytes of the last), over one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times, size = [], 0
    for _ in range(n):
        start = time.perf_counter()
        try:
            conn.request("GET", "/metrics")
            body = conn.getresponse().read()
        except (http.client.HTTPException, ConnectionError, socket.timeout):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/metrics")
            body = conn.getresponse().read()
        times.append(time.perf_counter() - start)
        size = len(body)
    conn.close()
    return times, size


def cpu_seconds(pid):
    """User + system CPU time the process has used."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(times):
    ms = sorted(t * 1e3 for t in times)
    return {"p50_ms": round(statistics.median(ms), 3), "p99_ms": round(ms[int(0.99 * (len(ms) - 1))], 3),
            "max_ms": round(ms[-1], 3), "scrapes": len(ms)}


def load(http_port, fixtures, stop, counts):
    """Classify calls and OpenAI streams until `stop` is set."""
    png = open(os.path.join(fixtures, "classifier", "images", "pattern_0.png"), "rb").read()

    def classify():
        client = httpclient.InferenceServerClient(url=f"127.0.0.1:{http_port}")
        tensor = httpclient.InferInput("image", [4], "BYTES")
        tensor.set_data_from_numpy(np.array([png] * 4, dtype=np.object_))
        while not stop.is_set():
            client.infer("vit", [tensor])
            counts["classify"] += 1

    def generate():
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{http_port}/v1", api_key="unused", max_retries=0)
        while not stop.is_set():
            for _ in client.completions.create(model="lm", prompt="And God said", max_tokens=64, stream=True):
                pass
            counts["generate"] += 1

    threads = [threading.Thread(target=f) for f in [classify] * 4 + [generate] * 4]
    for t in threads:
        t.start()
    return threads


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-binary", required=True)
    p.add_argument("--fixtures", required=True)
    p.add_argument("--scrapes", type=int, default=1000)
    p.add_argument("--label", default=f"{socket.gethostname()}-{os.cpu_count()}cpu")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="metrics_scrape_")
    server = None
    rows = []
    try:
        repo = fixture_repository(args.fixtures, work)
        http_file, metrics_file = os.path.join(work, "http_port"), os.path.join(work, "metrics_port")
        server, _ = start_server(args.server_binary, repo, work, "--http_port=0", f"--http_port_file={http_file}",
                                 "--metrics_port=0", f"--metrics_port_file={metrics_file}")
        ports = {"http": wait_port(http_file), "metrics": wait_port(metrics_file)}
        client = httpclient.InferenceServerClient(url=f"127.0.0.1:{ports['http']}")
        deadline = time.time() + 60
        while not client.is_server_ready() and time.time() < deadline:
            time.sleep(0.1)
        for phase in ("idle", "loaded"):
            stop, threads, counts = threading.Event(), [], {"classify": 0, "generate": 0}
            if phase == "loaded":
                threads = load(ports["http"], args.fixtures, stop, counts)
                time.sleep(1)  # let the load reach its steady state before timing scrapes
            # The two ports alternate in rounds so that both see the same load.
            times = {name: [] for name in ports}
            sizes, cpu = {}, {name: 0.0 for name in ports}
            for _ in range(10):
                for name, port in ports.items():
                    before = cpu_seconds(server.pid)
                    t, sizes[name] = scrape_times(port, args.scrapes // 10)
                    cpu[name] += cpu_seconds(server.pid) - before
                    times[name] += t
            stop.set()
            for t in threads:
                t.join()
            for name in ports:
                # The server's CPU per scrape: meaningful idle only (under load the calls use it too).
                row = {"phase": phase, "port": name, "bytes": sizes[name], **summary(times[name]),
                       "server_cpu_ms_per_scrape": round(cpu[name] * 1e3 / len(times[name]), 3) if phase == "idle" else None,
                       "load_calls": dict(counts) if phase == "loaded" else None}
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        if server is not None:
            stop_server(server)
        shutil.rmtree(work, ignore_errors=True)
    out = os.path.join(HERE, "results", f"metrics_scrape-{args.label}.jsonl")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
        f.write(json.dumps({"machine": machine()}) + "\n")
    print(f"machine: {json.dumps(machine())}\nwrote {out}")


if __name__ == "__main__":
    main()
