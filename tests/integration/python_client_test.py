#!/usr/bin/env python3
"""The Python client package against the real server: every RPC, an error, and shutdown.

    python tests/integration/python_client_test.py --server-binary build/server/elliptical-server \
        --fixtures build/fixtures
"""
import argparse
import os
import shutil
import sys
import tempfile

from elliptical_client import Client, ClientError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import checks  # noqa: E402
from checks import check  # noqa: E402
from server import fixture_repository, start_server, stop_server  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-binary", required=True)
    p.add_argument("--fixtures", required=True, help="the build's fixtures directory")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="python_client_")
    repo = fixture_repository(args.fixtures, work)
    server, address = start_server(args.server_binary, repo, work, "--compute_threads=1")
    try:
        client = Client(address, timeout_s=30)
        try:
            client.wait_until_serving(timeout_s=60)
        except ClientError as e:
            print(e)
        check(client.health() == "SERVING", "health is SERVING")
        check(client.health("lm") == "SERVING", "per-model health")

        models = {m.name: m for m in client.list_models()}
        check(set(models) == {"vit", "seg", "lm"} and all(m.state == "ready" for m in models.values()),
              f"list_models: {sorted(models)} all ready")
        check(models["seg"].family == "segmenter", "families are named")
        meta = client.metadata("vit")
        check(meta.image_size_px == 32 and len(meta.labels) == 10, "metadata of the classifier")

        images = [os.path.join(args.fixtures, "classifier", "images", f"pattern_{i}.png") for i in range(2)]
        with open(images[1], "rb") as f:
            result = client.classify("vit", [images[0], f.read()], top_k=3)
        probs = [s.probability for s in result[0]]
        check(len(result) == 2 and len(result[0]) == 3, "classify: 3 classes for each of 2 images (path and bytes)")
        check(probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001, "classify: sorted probabilities")

        mask = client.segment("seg", os.path.join(args.fixtures, "core", "segmenter", "images", "large_70x45.png"))
        check((mask.width, mask.height) == (70, 45) and len(mask.class_ids) == 70 * 45, "segment: mask of the image's size")
        check(max(mask.class_ids) < len(mask.labels), "segment: class ids index the labels")

        generation = client.generate("lm", "The lighthouse keeper", max_new_tokens=12)
        pieces = list(generation)
        check(len(pieces) >= 12 and generation.summary.generated_tokens == 12, "generate: streamed 12 tokens")
        check(generation.summary.finish_reason == "length", "generate: finish reason")
        a = client.generate("lm", "Once upon", max_new_tokens=10, temperature=1.0, seed=7).text()
        b = client.generate("lm", "Once upon", max_new_tokens=10, temperature=1.0, seed=7).text()
        check(a == b and a, "generate: same seed, same text")

        try:
            client.classify("no-such-model", images[:1])
            check(False, "unknown model raises")
        except ClientError as e:
            check(e.code == "NOT_FOUND", f"unknown model: ClientError {e.code}")
        try:
            list(client.generate("lm", "", max_new_tokens=4))
            check(False, "empty prompt raises")
        except ClientError as e:
            check(e.code == "INVALID_ARGUMENT", f"empty prompt: ClientError {e.code}")
        client.close()
    finally:
        code = stop_server(server)
        shutil.rmtree(work, ignore_errors=True)
    check(code == 0, "server exits 0 on SIGTERM")
    print(f"{checks.passed} checks passed")


if __name__ == "__main__":
    main()
