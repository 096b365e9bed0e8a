#!/usr/bin/env python3
"""Writes the example inputs the README calls the default models with: one held-out digit of
each class (8 x 8 PNG) and a few held-out digit scenes (48 x 48 PNG), none of them seen in
training.

  .venv/bin/python training/examples.py --out docs/examples
"""
import argparse
import os
import sys

from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import digits  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    images, labels = digits.load_split()["heldout"]
    for d in range(10):
        first = int((labels == d).nonzero()[0][0])
        Image.fromarray(images[first], mode="L").save(os.path.join(args.out, f"digit-{d}.png"))
    scenes, _ = digits.heldout_scenes()
    for i in range(3):
        Image.fromarray(scenes[i], mode="L").save(os.path.join(args.out, f"scene-{i}.png"))
    print(f"wrote 10 digits and 3 scenes to {args.out}")


if __name__ == "__main__":
    main()
