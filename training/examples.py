#!/usr/bin/env python3
"""Writes the example inputs the README calls the default models with: one held-out digit of
each class (8 x 8 PNG) and a few held-out digit scenes (48 x 48 PNG), none of them seen in
training; and, for looking at, a gallery of held-out scenes with their true and predicted
masks (segmenter-gallery.png, by the segmenter in --models).

  .venv/bin/python training/examples.py --out docs/examples [--models models]
"""
import argparse
import colorsys
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import digits  # noqa: E402
import evaluate  # noqa: E402
import model_files  # noqa: E402

GALLERY_SCENES = 8
ZOOM = 3


def colours(mask):
    """Class ids -> RGB: background dark grey, digits on a colour wheel."""
    palette = np.array([[64, 64, 64]] + [[int(255 * c) for c in colorsys.hsv_to_rgb(d / 10, 0.8, 0.95)]
                                         for d in range(10)], np.uint8)
    return palette[mask]


def gallery(models, out):
    """Rows: scene, true mask, predicted mask; one column per held-out scene."""
    net, config = model_files.load(os.path.join(models, "digit-scenes-segmenter"))
    scenes, masks = digits.heldout_scenes()
    scenes, masks = scenes[:GALLERY_SCENES], masks[:GALLERY_SCENES]
    predicted = evaluate.predict(net, evaluate.segmenter_inputs(scenes, config)).numpy()
    rows = [np.concatenate(list(np.stack([scenes] * 3, -1)), 1), np.concatenate(list(colours(masks)), 1),
            np.concatenate(list(colours(predicted)), 1)]
    image = Image.fromarray(np.concatenate(rows, 0))
    image.resize((image.width * ZOOM, image.height * ZOOM), Image.NEAREST).save(out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--models", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                    "models"))
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    images, labels = digits.load_split()["heldout"]
    for d in range(10):
        first = int((labels == d).nonzero()[0][0])
        Image.fromarray(images[first], mode="L").save(os.path.join(args.out, f"digit-{d}.png"))
    scenes, _ = digits.heldout_scenes()
    for i in range(3):
        Image.fromarray(scenes[i], mode="L").save(os.path.join(args.out, f"scene-{i}.png"))
    gallery(args.models, os.path.join(args.out, "segmenter-gallery.png"))
    print(f"wrote 10 digits, 3 scenes and segmenter-gallery.png to {args.out}")


if __name__ == "__main__":
    main()
