"""The handwritten digits scikit-learn ships (load_digits: 1,797 images of 8 x 8 pixels, 16 grey
levels, from the UCI "Optical Recognition of Handwritten Digits" set), the seeded train/held-out
split, and the digit scenes the segmenter learns from. Everything is deterministic: the test
fixtures rebuild the same held-out images from the same seeds.
"""
import functools

import numpy as np
import torch
import torch.nn.functional as F

SPLIT_SEED = 0
HELDOUT_FRACTION = 0.2
CLASSES = [str(d) for d in range(10)]
SCENE_SIZE = 48
SCENE_LABELS = ["background"] + [f"digit {d}" for d in range(10)]
GLYPH_SIZES = (18, 26)  # smallest and largest side of an enlarged digit, in pixels
MAX_TILT = 0.25  # radians a digit may be rotated by
MAX_DIGITS = 2  # per scene
INK_THRESHOLD = 96  # a scene pixel belongs to a digit where its glyph is at least this bright


@functools.lru_cache(maxsize=None)
def load_split():
    """-> dict(train=(images, labels), heldout=(images, labels)); images (n, 8, 8) uint8 0..255
    (the 16 grey levels scaled, as a PNG of the digit stores them), labels (n,) int64. Read once
    per process (the segmenter draws new scenes from it every epoch); callers must not modify it."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = np.rint(data.images * (255.0 / 16.0)).astype(np.uint8)
    labels = data.target.astype(np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    cut = int(round(len(labels) * (1 - HELDOUT_FRACTION)))
    train, held = order[:cut], order[cut:]
    return {"train": (images[train], labels[train]), "heldout": (images[held], labels[held])}


def to_model_input(grey_uint8, image_size, mean=0.5, std=0.5):
    """(n, h, w) uint8 -> (n, 3, S, S) float32, as the server prepares a decoded grey PNG: RGB
    copies, [0, 1], bilinear antialiased resize to the model's size, normalisation."""
    t = torch.from_numpy(np.ascontiguousarray(grey_uint8)).float().div(255.0).unsqueeze(1)
    if t.shape[-2:] != (image_size, image_size):
        t = F.interpolate(t, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
    return ((t - mean) / std).expand(-1, 3, -1, -1).contiguous()


def glyph(image, size, tilt=0.0):
    """An 8 x 8 digit enlarged to size x size (uint8), smoothly, rotated by tilt radians."""
    t = torch.from_numpy(image).float().view(1, 1, 8, 8)
    big = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    if tilt:
        c, s = np.cos(tilt), np.sin(tilt)
        theta = torch.tensor([[[c, -s, 0.0], [s, c, 0.0]]], dtype=torch.float32)
        big = F.grid_sample(big, F.affine_grid(theta, big.shape, align_corners=False), align_corners=False)
    return big.clamp(0, 255).round().to(torch.uint8).view(size, size).numpy()


def make_scenes(images, labels, count, seed):
    """Scenes of SCENE_SIZE^2 pixels: 1 to MAX_DIGITS digits of the given set, each enlarged to a side
    in GLYPH_SIZES, tilted by up to MAX_TILT and placed at random (later digits over earlier
    ones), faint noise on the background. -> (scenes (count, S, S) uint8, masks (count, S, S) uint8: 0 background, 1 + d
    where digit d's ink is)."""
    rng = np.random.default_rng(seed)
    scenes = np.zeros((count, SCENE_SIZE, SCENE_SIZE), np.uint8)
    masks = np.zeros((count, SCENE_SIZE, SCENE_SIZE), np.uint8)
    for i in range(count):
        canvas = rng.normal(0, 6, (SCENE_SIZE, SCENE_SIZE)).clip(0, 40)
        mask = np.zeros((SCENE_SIZE, SCENE_SIZE), np.uint8)
        for _ in range(rng.integers(1, MAX_DIGITS + 1)):
            j = rng.integers(len(labels))
            size = int(rng.integers(GLYPH_SIZES[0], GLYPH_SIZES[1] + 1))
            g = glyph(images[j], size, float(rng.uniform(-MAX_TILT, MAX_TILT)))
            y, x = rng.integers(0, SCENE_SIZE - size + 1, size=2)
            ink = g >= INK_THRESHOLD
            region = canvas[y:y + size, x:x + size]
            region[ink] = g[ink]  # the newer digit covers the older one where it has ink
            mask[y:y + size, x:x + size][ink] = 1 + labels[j]
        scenes[i] = canvas.round().astype(np.uint8)
        masks[i] = mask
    return scenes, masks


HELDOUT_SCENES = 300
HELDOUT_SCENE_SEED = 2


def heldout_scenes():
    """The held-out scenes: made of held-out digits only, seeded."""
    return make_scenes(*load_split()["heldout"], HELDOUT_SCENES, seed=HELDOUT_SCENE_SEED)


def training_scenes(count, epoch):
    """A fresh set of training scenes per epoch (seed 1000 + epoch), of training digits only."""
    return make_scenes(*load_split()["train"], count, seed=1000 + epoch)


def confusion(pred, target, classes):
    """Accumulates a (classes x classes) confusion matrix of flat integer arrays."""
    return np.bincount(target.reshape(-1).astype(np.int64) * classes + pred.reshape(-1).astype(np.int64),
                       minlength=classes * classes).reshape(classes, classes)


def class_iou(conf):
    """Per class: intersection over union accumulated over all images (nan if never seen)."""
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - inter
    return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def mean_iou(conf):
    """Dataset-level mIoU: per class, intersection over union summed over all images, then the
    mean over the classes that occur in the target or the prediction."""
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - inter
    present = union > 0
    return float((inter[present] / union[present]).mean())
