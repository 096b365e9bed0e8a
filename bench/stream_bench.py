#!/usr/bin/env python3
"""Generate-side measurements of bench/run_core_bench.sh against a running server.

  open-streams: opens N Generate streams at once and holds them; reports how many the server
      accepted or refused, its thread count and resident memory while they are open, and the
      Classify latency percentiles of a second client meanwhile.
  token-times: one stream of many tokens; reports the time per output token around given
      positions (a per-step copy of the KV cache makes it grow with the position).

Each prints one JSON object.
"""
import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time

import grpc

from elliptical_client._generated.elliptical.v1 import (classify_pb2, generate_pb2, image_pb2,
                                                        inference_service_pb2_grpc)


def proc_status(pid):
    text = open(f"/proc/{pid}/status").read()
    threads = int(re.search(r"^Threads:\s+(\d+)", text, re.M).group(1))
    rss_kb = int(re.search(r"^VmRSS:\s+(\d+)", text, re.M).group(1))
    return threads, rss_kb * 1024


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else None


async def open_streams(args):
    ch = grpc.aio.insecure_channel(args.server)
    if True:  # the channel is left open: main() exits the process once the result is printed
        stub = inference_service_pb2_grpc.InferenceServiceStub(ch)
        calls = [stub.Generate(generate_pb2.GenerateRequest(model_name=args.lm, prompt=f"stream {i}", coalesce_tokens=True,
                                                            max_new_tokens=args.max_new_tokens))
                 for i in range(args.streams)]
        refused, outcomes = 0, {}

        async def first(call):
            nonlocal refused
            try:
                await call.read()
                return "running"
            except grpc.aio.AioRpcError as e:
                outcomes[e.code().name] = outcomes.get(e.code().name, 0) + 1
                return "refused"

        firsts = [asyncio.ensure_future(first(c)) for c in calls]
        await asyncio.sleep(args.settle_s)  # let every call reach the server (or be refused)
        threads, rss = proc_status(args.pid)
        image = open(args.image, "rb").read()
        request = classify_pb2.ClassifyRequest(model_name=args.classifier, images=[image_pb2.Image(encoded=image)])
        latencies, errors = [], 0
        end = time.time() + args.classify_s
        while time.time() < end:
            start = time.perf_counter()
            try:
                await stub.Classify(request, timeout=30)
                latencies.append(time.perf_counter() - start)
            except grpc.aio.AioRpcError:
                errors += 1
        threads_after, rss_after = proc_status(args.pid)
        done = [f.result() for f in firsts if f.done()]
        for c in calls:
            c.cancel()
        await asyncio.wait(firsts, timeout=30)
        return {"streams": args.streams, "refused_by_code": outcomes,
                "refused": sum(outcomes.values()), "first_token_seen": done.count("running"),
                "server_threads": max(threads, threads_after), "server_rss_bytes": max(rss, rss_after),
                "classify_calls": len(latencies), "classify_errors": errors,
                "classify_p50_ms": 1000 * percentile(latencies, 0.5) if latencies else None,
                "classify_p99_ms": 1000 * percentile(latencies, 0.99) if latencies else None}


def token_times(args):
    channel = grpc.insecure_channel(args.server)
    stub = inference_service_pb2_grpc.InferenceServiceStub(channel)
    arrivals = []
    for message in stub.Generate(generate_pb2.GenerateRequest(model_name=args.lm, prompt="Once upon a time", coalesce_tokens=True,
                                                             max_new_tokens=args.max_new_tokens), timeout=600):
        if message.HasField("summary"):
            continue
        n = max(1, len(message.tokens))
        now = time.perf_counter()
        arrivals.extend([now] * n)
    out = {"tokens": len(arrivals)}
    for position in [int(p) for p in args.positions.split(",")]:
        lo = max(1, position)
        window = [arrivals[i] - arrivals[i - 1] for i in range(lo, min(len(arrivals), lo + args.window))]
        out[f"tpot_ms_at_{position}"] = 1000 * statistics.median(window) if window else None
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["open-streams", "token-times"])
    p.add_argument("--server", required=True)
    p.add_argument("--lm", default="lm")
    p.add_argument("--classifier", default="classifier")
    p.add_argument("--image", default="")
    p.add_argument("--pid", type=int, default=0, help="the server's process id (open-streams)")
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--max-new-tokens", type=int, default=1000)
    p.add_argument("--settle-s", type=float, default=5)
    p.add_argument("--classify-s", type=float, default=8)
    p.add_argument("--positions", default="1,256,1024")
    p.add_argument("--window", type=int, default=32)
    args = p.parse_args()
    async def report():
        print(json.dumps(await open_streams(args)), flush=True)
        # grpcio's asyncio machinery can hang the event loop's teardown after many cancelled
        # streams (the server has finished them all by then); the result is out, so leave.
        os._exit(0)

    if args.what == "open-streams":
        asyncio.run(report())
    print(json.dumps(token_times(args)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
