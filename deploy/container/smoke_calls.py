"""The calls of scripts/container_smoke.sh, made with the Python client where the host has no
built elliptical-client.

    smoke_calls.py ADDRESS health               exit 0 when the server is SERVING
    smoke_calls.py ADDRESS all EXAMPLES_DIR     Classify, Segment and Generate on the default models
"""
import sys
import time

from elliptical_client import Client


def main() -> int:
    address, what = sys.argv[1], sys.argv[2]
    with Client(address, timeout_s=30) as client:
        if what == "health":
            return 0 if client.health() == "SERVING" else 1
        examples = sys.argv[3]
        for model in client.list_models():
            print(f"{model.name:28} {model.family:18} {model.state}")

        start = time.monotonic()
        results = client.classify("digits-vit", [f"{examples}/digit-3.png", f"{examples}/digit-7.png"], top_k=3)
        for name, scores in zip(("digit-3.png", "digit-7.png"), results):
            print(f"classify {name}: " + ", ".join(f"{s.label} {s.probability:.4f}" for s in scores))
        print(f"  {1e3 * (time.monotonic() - start):.0f} ms")
        if [r[0].label for r in results] != ["3", "7"]:
            print("classify: expected 3 and 7")
            return 1

        start = time.monotonic()
        mask = client.segment("digit-scenes-segmenter", f"{examples}/scene-0.png")
        found = sorted({mask.labels[i] for i in set(mask.class_ids)} - {mask.labels[0]})
        print(f"segment scene-0.png: {mask.width}x{mask.height}, labels {', '.join(found)}; "
              f"{1e3 * (time.monotonic() - start):.0f} ms")
        if not found:
            print("segment: no digit found")
            return 1

        start = time.monotonic()
        generation = client.generate("kjv-lm", "And God said", max_new_tokens=48, temperature=0.8, seed=9)
        text = generation.text()
        s = generation.summary
        print(f"generate: And God said{text}")
        print(f"  [{s.finish_reason}: {s.prompt_tokens} prompt tokens, {s.generated_tokens} generated, "
              f"first token after {s.time_to_first_token_us / 1e3:.1f} ms; "
              f"{1e3 * (time.monotonic() - start):.0f} ms]")
        if s.generated_tokens == 0:
            print("generate: no tokens")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
