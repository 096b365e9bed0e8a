#!/usr/bin/env python3
"""The shipped default models (models/), served by the real server and called through gRPC with
the Python client, reach the held-out numbers their training recorded (models/*/eval.json):

- digits-vit classifies the held-out digits, written as 8 x 8 PNG files, within 1 point of its
  recorded accuracy;
- digit-scenes-segmenter segments the held-out scenes, written as PNG files, within 1 point of
  its recorded mIoU;
- kjv-lm with a fixed seed returns the same sampled text twice (another seed, another text),
  continues the prompt, ends a verse by itself, and writes words of its book.

    python tests/integration/default_models_test.py --server-binary build/server/elliptical-server
"""
import argparse
import json
import os
import re
import sys
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "training"))
sys.path.insert(0, os.path.join(HERE, "..", "support"))

import checks  # noqa: E402
import digits  # noqa: E402
import kjv  # noqa: E402
from checks import check  # noqa: E402
from elliptical_client import Client  # noqa: E402
from server import start_server  # noqa: E402

TOLERANCE = 0.01  # one point


def recorded(name):
    with open(os.path.join(ROOT, "models", name, "eval.json")) as f:
        return json.load(f)


def write_pngs(directory, images):
    paths = []
    os.makedirs(directory, exist_ok=True)
    for i, image in enumerate(images):
        paths.append(os.path.join(directory, f"{i:04d}.png"))
        Image.fromarray(image, mode="L").save(paths[-1])
    return paths


def check_classifier(client, work):
    images, labels = digits.load_split()["heldout"]
    paths = write_pngs(os.path.join(work, "digits"), images)
    predicted = []
    for i in range(0, len(paths), 32):  # several images per request, as a client batches them
        predicted += [int(c[0].label) for c in client.classify("digits-vit", paths[i:i + 32], top_k=1)]
    accuracy = float(np.mean(np.array(predicted) == labels))
    want = recorded("digits-vit")["heldout_accuracy"]
    check(len(predicted) == len(labels) == recorded("digits-vit")["heldout_images"],
          f"classified all {len(labels)} held-out digits")
    check(abs(accuracy - want) <= TOLERANCE, f"served accuracy {accuracy:.4f}, recorded {want:.4f}")


def check_segmenter(client, work):
    scenes, masks = digits.heldout_scenes()
    paths = write_pngs(os.path.join(work, "scenes"), scenes)
    conf = np.zeros((len(digits.SCENE_LABELS),) * 2, np.int64)
    for path, mask in zip(paths, masks):
        got = client.segment("digit-scenes-segmenter", path)
        if (got.height, got.width) != mask.shape or got.labels != digits.SCENE_LABELS:
            check(False, f"{path}: mask {got.height}x{got.width} with labels {got.labels}")
        conf += digits.confusion(np.array(got.class_ids).reshape(mask.shape), mask, len(digits.SCENE_LABELS))
    score = digits.mean_iou(conf)
    want = recorded("digit-scenes-segmenter")["heldout_miou"]
    check(len(paths) == recorded("digit-scenes-segmenter")["heldout_scenes"],
          f"segmented all {len(paths)} held-out scenes, masks at the scenes' size with the model's labels")
    check(abs(score - want) <= TOLERANCE, f"served mIoU {score:.4f}, recorded {want:.4f}")


def check_lm(client):
    def sample(seed):
        g = client.generate("kjv-lm", "And the LORD said unto Moses,", max_new_tokens=64, temperature=0.8,
                            top_p=0.95, seed=seed)
        return g.text(), g.summary

    first, summary = sample(7)
    second, _ = sample(7)
    other, other_summary = sample(8)
    print(f"     seed 7: {first!r}\n     seed 8: {other!r}")
    check(first == second and first.strip(), "the same seed gives the same text")
    check(other != first, "another seed gives another text")
    check(first.startswith(" "), "the text continues the prompt with a space")
    check("end_of_sequence" in (summary.finish_reason, other_summary.finish_reason),
          f"a verse ends by itself (finish reasons {summary.finish_reason}, {other_summary.finish_reason})")
    vocabulary = {w.lower() for chapter in kjv.read_verses() for v in chapter for w in re.findall(r"[A-Za-z]+", v)}
    words = re.findall(r"[A-Za-z]+", first + " " + other)
    known = sum(w.lower() in vocabulary for w in words) / max(len(words), 1)
    check(len(words) >= 10 and known >= 0.9, f"{known:.0%} of {len(words)} generated words are the book's")
    check(summary.prompt_tokens > 0 and summary.generated_tokens > 0, "summary counts tokens")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-binary", required=True)
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="default_models_")
    server, address = start_server(args.server_binary, os.path.join(ROOT, "models"), work)
    try:
        with Client(address, timeout_s=60) as client:
            client.wait_until_serving(timeout_s=60)
            models = {m.name: m.state for m in client.list_models()}
            check(models == {"digits-vit": "ready", "digit-scenes-segmenter": "ready", "kjv-lm": "ready"},
                  f"the default repository serves its three models: {models}")
            check_classifier(client, work)
            check_segmenter(client, work)
            check_lm(client)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"{checks.passed} checks passed")


if __name__ == "__main__":
    main()
