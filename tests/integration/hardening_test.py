#!/usr/bin/env python3
"""What a hostile or careless client tries, against the real server on loopback: each case
failed (crashed, stalled, flooded the log or answered wrongly) before the edge validation, the
work-stopping batcher, the draining shutdown and the rate-limited log.

    python tests/integration/hardening_test.py --server-binary build/server/elliptical-server \
        --fixtures build/fixtures
"""
import argparse
import io
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
import zlib
import struct

import grpc

from elliptical_client._generated.elliptical.v1 import (classify_pb2, generate_pb2, image_pb2,
                                                        inference_service_pb2_grpc, models_pb2,
                                                        segment_pb2)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import checks  # noqa: E402
from checks import check  # noqa: E402
from server import fixture_repository, start_server  # noqa: E402

Code = grpc.StatusCode


def png(width, height, channels=1):
    """A valid PNG of zeros: a few hundred bytes that declare width x height pixels."""
    color = {1: 0, 3: 2}[channels]
    row = b"\x00" + bytes(width * channels)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def call_error(fn, *args, **kwargs):
    """The status code and message of a call expected to fail (None, "" when it succeeds)."""
    try:
        fn(*args, **kwargs)
        return None, ""
    except grpc.RpcError as e:
        return e.code(), e.details() or ""


def metrics_text(port):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()


def series(text, name, **labels):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_for(port, what, predicate, timeout_s=120):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        text = metrics_text(port)
        if predicate(text):
            return text
        time.sleep(0.05)
    check(False, f"{what} (within {timeout_s} s)")


def start(binary, repo, work, *flags):
    port_file = os.path.join(work, "metrics_port")
    server, address = start_server(binary, repo, work, "--compute_threads=1", "--instances=1",
                                   "--metrics_port=0", f"--metrics_port_file={port_file}", *flags)
    deadline = time.time() + 60
    while not (os.path.exists(port_file) and open(port_file).read().strip()) and time.time() < deadline:
        time.sleep(0.05)
    channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20)])
    stub = inference_service_pb2_grpc.InferenceServiceStub(channel)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            models = stub.ListModels(models_pb2.ListModelsRequest(), timeout=5).models
            if models and all(m.status.state != models_pb2.MODEL_STATE_LOADING for m in models):
                break
        except grpc.RpcError:
            pass
        time.sleep(0.05)
    return server, address, channel, stub, int(open(port_file).read())


def edge_validation(stub):
    image = image_pb2.Image(encoded=png(32, 32, 3))
    # top_k: 2^31 crashed the server (a signed cast before partial_sort); 2^32-1 returned no class.
    r = stub.Classify(classify_pb2.ClassifyRequest(model_name="vit", images=[image], top_k=1000), timeout=30)
    check(len(r.classifications[0].classes) == 10, "top_k = 1000 is capped at the 10 classes")
    for top_k in (2**31, 2**32 - 1):
        code, msg = call_error(stub.Classify, classify_pb2.ClassifyRequest(model_name="vit", images=[image],
                                                                           top_k=top_k), timeout=30)
        check(code == Code.INVALID_ARGUMENT and f"top_k {top_k}" in msg and "limit" in msg,
              f"top_k = {top_k} is INVALID_ARGUMENT naming top_k and its limit: {msg!r}")

    # Raw sides whose product overflows: passed both size checks and ended UNKNOWN.
    raw = image_pb2.RawImage(width_px=4294571377, height_px=2863575501, channels=3, pixels=bytes(1399))
    code, msg = call_error(stub.Classify, classify_pb2.ClassifyRequest(
        model_name="vit", images=[image_pb2.Image(raw=raw)]), timeout=30)
    check(code == Code.INVALID_ARGUMENT and "images[0]" in msg and "limit" in msg,
          f"overflowing raw sides are INVALID_ARGUMENT naming the image: {msg!r}")

    # Decompression bombs: a small file that declares many pixels, one or many per request.
    bomb = png(8192, 8192)
    check(len(bomb) < 100_000, f"the bomb is a {len(bomb)}-byte PNG")
    code, msg = call_error(stub.Segment, segment_pb2.SegmentRequest(
        model_name="seg", images=[image_pb2.Image(encoded=bomb)]), timeout=30)
    check(code == Code.INVALID_ARGUMENT and "8192x8192" in msg and "per image" in msg,
          f"one 8192^2 PNG is refused before decoding: {msg!r}")
    many = [image_pb2.Image(encoded=png(3000, 3000))] * 4
    code, msg = call_error(stub.Segment, segment_pb2.SegmentRequest(model_name="seg", images=many), timeout=30)
    check(code == Code.RESOURCE_EXHAUSTED and "per request" in msg,
          f"four 3000^2 PNGs exceed the request's pixel budget: {msg!r}")

    # Stop strings: 50,000 of 1,000 characters slowed every stream for 100 s.
    lm = dict(model_name="lm", prompt="The lighthouse", max_new_tokens=4)
    code, msg = call_error(lambda r, **kw: list(stub.Generate(r, **kw)),
                           generate_pb2.GenerateRequest(**lm, stop=["x" * 1000] * 50_000), timeout=30)
    check(code == Code.INVALID_ARGUMENT and "stop holds 50000" in msg and "limit is 16" in msg,
          f"50,000 stop strings are INVALID_ARGUMENT naming the limit: {msg!r}")
    code, msg = call_error(lambda r, **kw: list(stub.Generate(r, **kw)),
                           generate_pb2.GenerateRequest(**lm, stop=["ok", "y" * 257]), timeout=30)
    check(code == Code.INVALID_ARGUMENT and "stop[1]" in msg and "257 bytes" in msg,
          f"a 257-byte stop string is refused by its index: {msg!r}")
    code, msg = call_error(lambda r, **kw: list(stub.Generate(r, **kw)),
                           generate_pb2.GenerateRequest(model_name="lm", prompt="p" * (300 << 10)), timeout=30)
    check(code == Code.INVALID_ARGUMENT and "prompt" in msg and "262144" in msg,
          f"a 300 KiB prompt is refused with the limit: {msg!r}")
    code, msg = call_error(lambda r, **kw: list(stub.Generate(r, **kw)),
                           generate_pb2.GenerateRequest(**lm, top_p=float("nan")), timeout=30)
    check(code == Code.INVALID_ARGUMENT and "top_p" in msg, f"top_p = NaN is refused: {msg!r}")
    pieces = list(stub.Generate(generate_pb2.GenerateRequest(**lm, temperature=1e-40, stop=["zz"]), timeout=30))
    logprobs = [t.logprob for p in pieces for t in p.tokens]
    check(logprobs and all(lp == lp and lp <= 0 for lp in logprobs),
          "temperature 1e-40 is greedy with finite logprobs")
    code, msg = call_error(stub.Classify, classify_pb2.ClassifyRequest(model_name="m" * 100_000, images=[image]),
                           timeout=30)
    check(code == Code.INVALID_ARGUMENT and len(msg) < 200, f"a 100 KB model name is not echoed: {msg!r}")


def work_stops_past_its_deadline(stub, metrics_port):
    """A Segment call past its deadline stops computing at the next group of windows, so the
    calls behind it do not wait for work nobody will read."""
    side = 1536
    rng = random.Random(7)
    pixels = bytes(rng.getrandbits(8) for _ in range(side * side * 3))
    request = segment_pb2.SegmentRequest(model_name="seg", images=[image_pb2.Image(
        raw=image_pb2.RawImage(width_px=side, height_px=side, channels=3, pixels=pixels))])
    full = stub.Segment(request, timeout=300).timing.compute_us / 1e6
    check(full > 0.2, f"a {side}^2 Segment computes for {full:.2f} s in full")

    before = metrics_text(metrics_port)
    batches = series(before, "elliptical_instance_batches_total", model="seg")
    busy = series(before, "elliptical_instance_busy_seconds_total", model="seg")
    code, _ = call_error(stub.Segment, request, timeout=full / 10)
    check(code == Code.DEADLINE_EXCEEDED, "the same call with a deadline of a tenth of that expires")
    after = wait_for(metrics_port, "its batch ends",
                     lambda t: series(t, "elliptical_instance_batches_total", model="seg") > batches)
    spent = series(after, "elliptical_instance_busy_seconds_total", model="seg") - busy
    check(spent < full / 2, f"it stopped after {spent:.2f} s of compute, not {full:.2f} s")


def cancelled_tokens_are_counted(stub, metrics_port):
    """Tokens of a stream the client cancels were computed: they count (they did not)."""
    before = series(metrics_text(metrics_port), "elliptical_generated_tokens_total", model="lm")
    stream = stub.Generate(generate_pb2.GenerateRequest(model_name="lm", prompt="The lighthouse",
                                                        max_new_tokens=500), timeout=60)
    received = 0
    for message in stream:
        received += len(message.tokens)
        if received >= 5:
            break
    stream.cancel()
    wait_for(metrics_port, f"the {received} tokens read before the cancel are counted",
             lambda t: series(t, "elliptical_generated_tokens_total", model="lm") >= before + received,
             timeout_s=30)
    check(True, f"a cancelled stream's {received}+ tokens are in elliptical_generated_tokens_total")


def log_is_bounded(address, log_path):
    """Invalid UTF-8 in a string field made libprotobuf log a line per request; now its log is
    ours, rate-limited."""
    channel = grpc.insecure_channel(address)
    # A ClassifyRequest whose model_name (field 1, length-delimited) is not UTF-8.
    raw = channel.unary_unary("/elliptical.v1.InferenceService/Classify",
                              request_serializer=None, response_deserializer=None)
    body = b"\x0a\x04\xff\xfe\xfd\xfc"
    codes = set()
    for _ in range(200):
        codes.add(call_error(raw, body, timeout=10)[0])
    check(None not in codes, f"200 requests with invalid UTF-8 all fail: {sorted(str(c) for c in codes)}")
    log = open(log_path, errors="replace").read()
    lines = [l for l in log.splitlines() if "UTF-8" in l]
    check(0 < len(lines) <= 10, f"they left {len(lines)} log lines, not 200")
    check(all(re.match(r"^[IWE] \d{4}-", l) for l in lines), "libprotobuf's lines go through the server's log")


def no_paths_for_clients(stub, repo, log_path):
    models = {m.name: m for m in stub.ListModels(models_pb2.ListModelsRequest(), timeout=10).models}
    broken = models["broken"].status
    check(broken.state == models_pb2.MODEL_STATE_FAILED, "the broken model failed to load")
    check("broken/config.json" in broken.reason and repo not in broken.reason,
          f"its reason names the file within the repository, not the server's path: {broken.reason!r}")
    check(os.path.join(repo, "broken") in open(log_path).read(), "the log keeps the full path")


def shutdown_is_fast_with_idle_connections(server, address, work):
    """An idle client connection held shutdown for 20 s (gRPC waited for its goodbye)."""
    idle = grpc.insecure_channel(address)
    grpc.channel_ready_future(idle).result(timeout=10)
    start = time.time()
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=60)
    took = time.time() - start
    check(server.returncode == 0, "the server exits cleanly on SIGTERM")
    check(took < 5, f"with an idle connection open it stopped in {took:.2f} s")
    idle.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-binary", required=True)
    p.add_argument("--fixtures", required=True)
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="hardening_")
    repo = fixture_repository(args.fixtures, work)
    shutil.copytree(os.path.join(repo, "vit"), os.path.join(repo, "broken"))
    with open(os.path.join(repo, "broken", "config.json"), "a") as f:
        f.write("not json")
    server, address, channel, stub, metrics_port = start(args.server_binary, repo, work)
    log_path = os.path.join(work, "server.log")
    try:
        edge_validation(stub)
        work_stops_past_its_deadline(stub, metrics_port)
        cancelled_tokens_are_counted(stub, metrics_port)
        log_is_bounded(address, log_path)
        no_paths_for_clients(stub, repo, log_path)
        channel.close()
        shutdown_is_fast_with_idle_connections(server, address, work)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    print(f"{checks.passed} checks passed")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
