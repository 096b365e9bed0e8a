#!/usr/bin/env python3
"""Classifies images and streams generated text with the elliptical_client package.

    python client/python/examples/classify_and_generate.py --server localhost:8500 \
        docs/examples/digit-3.png docs/examples/digit-7.png --prompt "And God said"
"""
import argparse
import sys

from elliptical_client import Client, ClientError


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", default="localhost:8500")
    p.add_argument("--classifier", help="classifier model (default: the first ready one)")
    p.add_argument("--lm", help="language model (default: the first ready one)")
    p.add_argument("--prompt", default="And God said")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("images", nargs="*")
    args = p.parse_args()
    with Client(args.server) as client:
        try:
            models = client.list_models()
            ready = lambda family: next((m.name for m in models if m.family == family and m.state == "ready"), None)
            classifier = args.classifier or ready("image_classifier")
            if args.images and classifier:
                for path, scores in zip(args.images, client.classify(classifier, args.images, top_k=3)):
                    print(path, ", ".join(f"{s.label} {s.probability:.3f}" for s in scores))
            lm = args.lm or ready("language_model")
            if lm:
                generation = client.generate(lm, args.prompt, max_new_tokens=args.max_new_tokens)
                print(args.prompt, end="", flush=True)
                for piece in generation:
                    print(piece, end="", flush=True)
                print(f"\n[{generation.summary.generated_tokens} tokens, {generation.summary.finish_reason}]")
        except ClientError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
