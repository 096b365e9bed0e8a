#!/usr/bin/env python3
"""A closed-loop load generator for the server's HTTP port (standard library only).

N keep-alive HTTP/1.1 connections (asyncio streams), each sending one request after the other
for --warmup-s + --duration-s seconds, then letting its request in flight finish (at most
--timeout-s). Prints one JSON line of results.

Workloads (--workload):
  classify            POST /v2/models/{model}/infer, KServe v2 REST: the image file (PNG or JPEG)
                      as a BYTES tensor `image` [1] through the binary tensor data extension, the
                      body docs/protocols/kserve.md shows (a JSON header whose length the header
                      Inference-Header-Content-Length gives, then the 4-byte little-endian length
                      and the file); the answer's outputs as JSON. (The file cannot travel as a
                      JSON string in "data": JSON strings are Unicode, and the server would take
                      the UTF-8 encoding of the file's bytes above 0x7f: 400, not a PNG.)
  completion          POST /v1/completions, {"model", "prompt", "max_tokens", "temperature": 0}
  completion-stream   the same with "stream": true: server-sent events until `data: [DONE]`

Counted: a request that starts in the measured window (after the warm-up) gives a latency (from
before its connection is opened, when the server had closed the previous one, to its last byte);
one that completes OK in the window counts toward requests/s (and its completion tokens,
from the response's usage, toward tokens/s). A non-200 answer, a response cut short, a stream
without [DONE], a connect that fails or a request past --timeout-s, connect included (the
connection is then dropped and opened anew) is an error, counted by kind, in the window and over the whole run; a run with errors says so on
stderr. `starved_connections`: connections that completed no request in the window (a front
that queues connections beyond its threads).

  python3 bench/http_load.py --addr 127.0.0.1:8502 --workload classify --model digits-vit \
      --image docs/examples/digit-3.png --connections 32 --duration-s 10
  python3 bench/http_load.py --addr ... --workload completion-stream --model kjv-lm --check
"""
import argparse
import asyncio
import json
import os
import re
import sys
import time

USAGE_TOKENS = re.compile(rb'"completion_tokens"\s*:\s*(\d+)')


class ResponseError(Exception):
    def __init__(self, kind, detail=""):
        super().__init__(f"{kind} {detail}".strip())
        self.kind = kind


def build_request(args, host):
    """The request's bytes, built once and sent as they are on every connection."""
    if args.workload == "classify":
        image = open(args.image, "rb").read()
        header = json.dumps({
            "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                        "parameters": {"binary_data_size": len(image) + 4}}],
            "parameters": {"top_k": args.top_k},
            "outputs": [{"name": "top_classes"}, {"name": "top_labels"}, {"name": "top_probabilities"}],
        }, separators=(",", ":")).encode()
        body = header + len(image).to_bytes(4, "little") + image
        path = f"/v2/models/{args.model}/infer"
        extra = (f"Content-Type: application/octet-stream\r\n"
                 f"Inference-Header-Content-Length: {len(header)}\r\n")
    else:
        request = {"model": args.model, "prompt": args.prompt, "max_tokens": args.max_tokens,
                   "temperature": 0}
        if args.workload == "completion-stream":
            request["stream"] = True
        body = json.dumps(request).encode()
        path = "/v1/completions"
        extra = "Content-Type: application/json\r\n"
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def read_response(reader, stream):
    """Reads one response. Returns (status, body bytes, keep_alive, first-event time or None)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        raise ResponseError("closed_before_response" if not e.partial else "truncated_head")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ResponseError("bad_status_line", lines[0][:80])
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    keep_alive = headers.get("connection", "").lower() != "close" and parts[0] != "HTTP/1.0"
    first_event = None
    try:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size_line = await reader.readline()
                if not size_line.endswith(b"\n"):
                    raise ResponseError("truncated_body")
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                data = await reader.readexactly(size + 2)
                if first_event is None and stream:
                    first_event = time.perf_counter()
                chunks.append(data[:-2])
            body = b"".join(chunks)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
            if stream and body:
                first_event = time.perf_counter()  # a whole stream in one body: no earlier event
        else:  # delimited by the connection's close
            chunks = []
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if first_event is None and stream:
                    first_event = time.perf_counter()
                chunks.append(data)
            body = b"".join(chunks)
            keep_alive = False
    except asyncio.IncompleteReadError:
        raise ResponseError("truncated_body")
    return status, body, keep_alive, first_event


class Stats:
    def __init__(self):
        self.records = []  # (t_send, t_done, tokens, t_first or None) of OK requests
        self.errors = []  # (t_send, kind)
        self.reconnects = 0
        self.connect_failures = 0
        self.ok_in_window_by_conn = {}


async def connection_loop(cid, args, request, stats, warm_end, end):
    host, port = args.addr.rsplit(":", 1)
    stream = args.workload == "completion-stream"
    completion = args.workload != "classify"
    reader = writer = None
    first_connect = True
    while time.perf_counter() < end:
        # A request's latency starts before its connection is opened when it needs a new one
        # (the server closed the last one): a client waits for the connect too.
        t_send = time.perf_counter()
        if writer is None:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port), limit=1 << 20),
                                                        args.timeout_s)
            except (OSError, asyncio.TimeoutError) as e:
                stats.connect_failures += 1
                stats.errors.append((t_send, "connect_timeout" if isinstance(e, asyncio.TimeoutError)
                                     else f"connect_{type(e).__name__}"))
                await asyncio.sleep(0.05)
                continue
            if not first_connect:
                stats.reconnects += 1
            first_connect = False
        try:
            writer.write(request)
            status, body, keep_alive, t_first = await asyncio.wait_for(
                _send_and_read(writer, reader, stream), max(0.001, t_send + args.timeout_s - time.perf_counter()))
        except asyncio.TimeoutError:
            stats.errors.append((t_send, "timeout"))
            writer.close()
            writer = None
            continue
        except ResponseError as e:
            stats.errors.append((t_send, e.kind))
            writer.close()
            writer = None
            continue
        except (OSError, ValueError) as e:
            stats.errors.append((t_send, type(e).__name__))
            writer.close()
            writer = None
            continue
        t_done = time.perf_counter()
        tokens = 0
        if status != 200:
            stats.errors.append((t_send, f"status_{status}"))
        elif stream and b"data: [DONE]" not in body:
            stats.errors.append((t_send, "stream_without_done"))
        else:
            if completion:
                found = USAGE_TOKENS.findall(body)
                tokens = int(found[-1]) if found else 0
            stats.records.append((t_send, t_done, tokens, t_first))
            if warm_end <= t_done <= end:
                stats.ok_in_window_by_conn[cid] = stats.ok_in_window_by_conn.get(cid, 0) + 1
        if not keep_alive:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def _send_and_read(writer, reader, stream):
    await writer.drain()
    return await read_response(reader, stream)


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def proc_cpu_s(pid):
    """User + system CPU seconds of a process and its threads, and its thread count (Linux)."""
    if not pid:
        return None, None
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        threads = int(fields[17])
        return (int(fields[11]) + int(fields[12])) / ticks, threads
    except (OSError, ValueError, IndexError):
        return None, None


async def check(args, request):
    host, port = args.addr.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    status, body, _, _ = await asyncio.wait_for(
        _send_and_read(writer, reader, args.workload == "completion-stream"), args.timeout_s)
    writer.close()
    print(f"HTTP {status}: {body[:600].decode('utf-8', 'replace')}")
    ok = status == 200 and (args.workload != "completion-stream" or b"data: [DONE]" in body)
    return 0 if ok else 1


async def run(args, request):
    t0 = time.perf_counter()
    warm_end = t0 + args.warmup_s
    end = warm_end + args.duration_s
    stats = Stats()
    cpu0 = time.process_time()
    server_threads = None

    async def sample_threads():
        nonlocal server_threads
        await asyncio.sleep(max(0.0, warm_end + args.duration_s / 2 - time.perf_counter()))
        _, server_threads = proc_cpu_s(args.server_pid)

    sampler = asyncio.ensure_future(sample_threads())
    # Measure the server's CPU over the window only.
    server_cpu_window = {}

    async def sample_cpu():
        await asyncio.sleep(max(0.0, warm_end - time.perf_counter()))
        server_cpu_window["start"] = proc_cpu_s(args.server_pid)[0]
        server_cpu_window["client_start"] = time.process_time()
        await asyncio.sleep(max(0.0, end - time.perf_counter()))
        server_cpu_window["end"] = proc_cpu_s(args.server_pid)[0]
        server_cpu_window["client_end"] = time.process_time()

    cpu_sampler = asyncio.ensure_future(sample_cpu())
    await asyncio.gather(*(connection_loop(i, args, request, stats, warm_end, end)
                           for i in range(args.connections)))
    await sampler
    await cpu_sampler
    wall = time.perf_counter() - t0

    window = [r for r in stats.records if warm_end <= r[1] <= end]
    latencies = sorted((r[1] - r[0]) * 1e3 for r in stats.records if warm_end <= r[0] < end)
    ttfts = sorted((r[3] - r[0]) * 1e3 for r in stats.records if warm_end <= r[0] < end and r[3] is not None)
    errors_window, errors_all = {}, {}
    for t_send, kind in stats.errors:
        errors_all[kind] = errors_all.get(kind, 0) + 1
        if warm_end <= t_send < end:
            errors_window[kind] = errors_window.get(kind, 0) + 1

    def lat(values):
        return {"p50": percentile(values, 0.5), "p90": percentile(values, 0.9), "p99": percentile(values, 0.99),
                "max": values[-1] if values else None,
                "mean": sum(values) / len(values) if values else None, "n": len(values)}

    result = {
        "workload": args.workload, "model": args.model, "connections": args.connections,
        "duration_s": args.duration_s, "warmup_s": args.warmup_s, "timeout_s": args.timeout_s,
        "max_tokens": args.max_tokens if args.workload != "classify" else None,
        "requests": len(window), "rps": len(window) / args.duration_s,
        "tokens": sum(r[2] for r in window),
        "tokens_per_s": sum(r[2] for r in window) / args.duration_s if args.workload != "classify" else None,
        "latency_ms": lat(latencies),
        "ttft_ms": lat(ttfts) if args.workload == "completion-stream" else None,
        "errors": sum(errors_window.values()), "errors_by_kind": errors_window,
        "errors_whole_run": sum(errors_all.values()), "errors_whole_run_by_kind": errors_all,
        "reconnects": stats.reconnects, "connect_failures": stats.connect_failures,
        "starved_connections": args.connections - len(stats.ok_in_window_by_conn),
        "client_cpu_frac": ((server_cpu_window["client_end"] - server_cpu_window["client_start"]) / args.duration_s),
        "client_cpu_s_whole_run": time.process_time() - cpu0,
        "server_cpu_s": (server_cpu_window["end"] - server_cpu_window["start"])
        if server_cpu_window.get("start") is not None and server_cpu_window.get("end") is not None else None,
        "server_threads": server_threads, "wall_s": wall,
        # The machine's 1-minute load average at the end (this run's client and server included):
        # well above the cores, something else competed for them.
        "loadavg_1m": os.getloadavg()[0],
    }
    if result["server_cpu_s"] is not None and result["requests"]:
        result["server_cpu_ms_per_request"] = result["server_cpu_s"] * 1e3 / result["requests"]
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--addr", required=True, help="host:port of the HTTP port")
    p.add_argument("--workload", required=True, choices=["classify", "completion", "completion-stream"])
    p.add_argument("--model", required=True)
    p.add_argument("--image", help="classify: a PNG or JPEG file")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--prompt", default="And God said")
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--duration-s", type=float, default=10)
    p.add_argument("--warmup-s", type=float, default=2)
    p.add_argument("--timeout-s", type=float, default=20, help="per request; past it: an error, a new connection")
    p.add_argument("--server-pid", type=int, help="the server's pid, for its CPU time and thread count")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                   help="added to the JSON line (repeatable)")
    p.add_argument("--check", action="store_true", help="send one request, print the answer, exit 1 unless OK")
    args = p.parse_args()
    if args.workload == "classify" and not args.image:
        p.error("classify needs --image")
    request = build_request(args, args.addr)
    if args.check:
        sys.exit(asyncio.run(check(args, request)))
    result = asyncio.run(run(args, request))
    for label in args.label:
        k, v = label.split("=", 1)
        result[k] = v
    if result["errors"] or result["errors_whole_run"]:
        print(f"[http_load] {args.workload} x{args.connections}: {result['errors']} errors in the window "
              f"{result['errors_by_kind']}, {result['errors_whole_run']} in the whole run", file=sys.stderr)
    if result["starved_connections"]:
        print(f"[http_load] {args.workload} x{args.connections}: {result['starved_connections']} connections "
              f"completed no request in the window", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
