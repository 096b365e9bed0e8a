#!/usr/bin/env python3
"""Many concurrent calls against the real server on loopback: 1,000 Generate streams held open
against the fixture language model while Classify, ListModels and health keep answering;
overload refused by the server itself (RESOURCE_EXHAUSTED, counted); no thread per call; and
cancelling the streams frees the model's cache slots, read from the server's own gauges.

    python tests/integration/concurrency_test.py --server-binary build/server/elliptical-server \
        --fixtures build/fixtures
"""
import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from elliptical_client._generated.elliptical.v1 import (classify_pb2, generate_pb2, image_pb2,
                                                        inference_service_pb2_grpc, models_pb2)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import checks  # noqa: E402
from checks import check  # noqa: E402
from server import fixture_repository, start_server  # noqa: E402

STREAMS = 1000
EXTRA = 50          # beyond what the queue holds: these must be refused by the server
MAX_RUNNING = 4
MAX_WAITING = STREAMS - MAX_RUNNING  # the 1,000 streams fit exactly: running + waiting
MAX_NEW_TOKENS = 4000  # long enough that no stream ends while the test holds them


def metrics_text(port):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()


def gauge(text, name, **labels):
    """The value of one series (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def wait_for(port, what, predicate, timeout_s=60):
    """Polls the metrics endpoint until `predicate(text)` holds (a condition, not a sleep for
    ordering: the loop ends as soon as the server reports it). The event loop keeps running the
    calls meanwhile."""
    deadline = time.time() + timeout_s
    text = ""
    while time.time() < deadline:
        text = await asyncio.get_running_loop().run_in_executor(None, metrics_text, port)
        if predicate(text):
            return text
        await asyncio.sleep(0.2)
    print("\n".join(l for l in text.splitlines() if 'model="lm"' in l and not l.startswith("#")))
    check(False, f"{what} (within {timeout_s} s)")
    return text


def threads_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^Threads:\s+(\d+)", f.read(), re.M).group(1))


async def run(address, metrics_port, pid, image):
    async with grpc.aio.insecure_channel(address) as channel:
        stub = inference_service_pb2_grpc.InferenceServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(600):
            try:
                if (await health.Check(health_pb2.HealthCheckRequest(), timeout=5)).status == \
                        health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)

        def open_stream(i):
            return stub.Generate(generate_pb2.GenerateRequest(
                model_name="lm", prompt=f"stream {i}", max_new_tokens=MAX_NEW_TOKENS))

        # The first MAX_RUNNING streams take the cache slots before the rest arrive, so that the
        # rest fit the waiting queue exactly whatever the order the scheduler admits them in.
        streams = [open_stream(i) for i in range(MAX_RUNNING)]
        await wait_for(metrics_port, f"the first {MAX_RUNNING} streams admitted",
                       lambda t: gauge(t, "elliptical_kv_cache_slots_used", model="lm") +
                       gauge(t, "elliptical_requests_total", code="OK", model="lm", rpc="Generate") >= MAX_RUNNING)
        streams += [open_stream(i) for i in range(MAX_RUNNING, STREAMS)]
        # A stream's first message is only sent once it runs; acceptance shows in the gauges.
        # Every stream was accepted: each is in flight or has already finished (the fixture LM is
        # fast), and none was refused.
        done = lambda t: gauge(t, "elliptical_requests_total", code="OK", model="lm", rpc="Generate")
        text = await wait_for(
            metrics_port, f"all {STREAMS} streams accepted (in flight or finished)",
            lambda t: gauge(t, "elliptical_in_flight_requests", model="lm", rpc="Generate") + done(t) == STREAMS,
            timeout_s=120)
        check(gauge(text, "elliptical_rejections_total", model="lm", reason="queue_full") == 0, "none refused")
        # The load gauges are sampled once a second: wait for a sample with the queue full.
        text = await wait_for(metrics_port, f"{MAX_RUNNING} cache slots held, the rest waiting",
                              lambda t: gauge(t, "elliptical_kv_cache_slots_used", model="lm") == MAX_RUNNING and
                              gauge(t, "elliptical_waiting_sequences", model="lm") > STREAMS // 2)
        threads = threads_of(pid)
        check(threads < 100, f"{STREAMS} open streams hold no thread each: the server has {threads} threads")

        # Other models and health keep answering while the language model is saturated.
        request = classify_pb2.ClassifyRequest(model_name="vit", images=[image_pb2.Image(encoded=image)])
        answers = await asyncio.gather(*[stub.Classify(request, timeout=30) for _ in range(20)])
        check(all(len(a.classifications) == 1 for a in answers), "20 Classify calls answered meanwhile")
        listed = await stub.ListModels(models_pb2.ListModelsRequest(), timeout=10)
        check({m.name for m in listed.models} == {"vit", "seg", "lm"}, "ListModels answers meanwhile")
        status = (await health.Check(health_pb2.HealthCheckRequest(), timeout=10)).status
        check(status == health_pb2.HealthCheckResponse.SERVING, "health answers SERVING meanwhile")

        # Overload: the server's own refusal, with a reason, counted.
        extra = [open_stream(STREAMS + i) for i in range(EXTRA)]
        async def refusal(call):
            try:
                await asyncio.wait_for(call.read(), timeout=5)
            except grpc.aio.AioRpcError as e:
                return e
            except asyncio.TimeoutError:
                pass  # accepted: a slot freed up meanwhile
            return None

        refusals = [e for e in await asyncio.gather(*[refusal(c) for c in extra]) if e is not None]
        refused = len(refusals)
        check(refused > 0, f"{refused} of {EXTRA} calls beyond the queue refused")
        check(all(e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_waiting" in e.details() for e in refusals),
              f"each as RESOURCE_EXHAUSTED naming the limit: {refusals[0].details() if refusals else ''}")
        text = await wait_for(metrics_port, "every refusal counted",
                        lambda t: gauge(t, "elliptical_rejections_total", model="lm", reason="queue_full") == refused)

        # Cancelling frees the slots: asserted on the server's gauges, not on timing.
        open_before = gauge(metrics_text(metrics_port), "elliptical_in_flight_requests", model="lm", rpc="Generate")
        for call in streams + extra:
            call.cancel()
        await wait_for(metrics_port, "the cancelled streams leave: no Generate in flight",
                 lambda t: gauge(t, "elliptical_in_flight_requests", model="lm", rpc="Generate") == 0)
        text = await wait_for(metrics_port, "cancel frees every cache slot",
                        lambda t: gauge(t, "elliptical_kv_cache_slots_used", model="lm") == 0 and
                        gauge(t, "elliptical_waiting_sequences", model="lm") == 0)
        check(gauge(text, "elliptical_rejections_total", model="lm", reason="cancelled") >= open_before > STREAMS // 2,
              f"the cancellations are counted (at least the {open_before:.0f} streams open before)")
        after = await stub.Generate(generate_pb2.GenerateRequest(
            model_name="lm", prompt="after", max_new_tokens=3), timeout=30).read()
        check(after.token.text is not None, "the model serves again after the cancellations")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-binary", required=True)
    p.add_argument("--fixtures", required=True)
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="concurrency_")
    repo = fixture_repository(args.fixtures, work)
    config_path = os.path.join(repo, "lm", "config.json")
    config = json.load(open(config_path))
    config.setdefault("generation", {}).update(
        {"max_running": MAX_RUNNING, "max_waiting": MAX_WAITING, "max_new_tokens_limit": MAX_NEW_TOKENS})
    json.dump(config, open(config_path, "w"), indent=2)
    metrics_port_file = os.path.join(work, "metrics_port")
    server, address = start_server(args.server_binary, repo, work, "--metrics_port=0",
                                   f"--metrics_port_file={metrics_port_file}")
    try:
        while not (os.path.exists(metrics_port_file) and open(metrics_port_file).read().strip()):
            time.sleep(0.05)
        metrics_port = int(open(metrics_port_file).read())
        image = open(os.path.join(args.fixtures, "classifier", "images", "pattern_1.png"), "rb").read()
        asyncio.run(run(address, metrics_port, server.pid, image))
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(f"{checks.passed} checks passed")


if __name__ == "__main__":
    main()
