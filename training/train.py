#!/usr/bin/env python3
"""Trains the server's default models and writes them as model directories, each with its
weights, config, held-out metrics (eval.json) and model card (README.md):

  digits-vit              image_classifier  scikit-learn's handwritten digits, 8 x 8
  digit-scenes-segmenter  segmenter         48 x 48 scenes composed of those digits
  kjv-lm                  language_model    the King James Bible, SentencePiece tokenizer

  .venv/bin/python training/train.py                       # all three, elliptical, into models/
  .venv/bin/python training/train.py --only lm --out /tmp/m
  .venv/bin/python training/train.py --attention dot_product --out build/claims   # the baseline

Seeded and single-threaded by default (--threads), so a rerun on the same machine and torch
version gives the same weights. Progress goes to stderr.
"""
import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import digits  # noqa: E402
import evaluate  # noqa: E402
import kjv  # noqa: E402
import model_cards  # noqa: E402
import model_files  # noqa: E402
import nets  # noqa: E402

SEED = 0
NAMES = {"classifier": "digits-vit", "segmenter": "digit-scenes-segmenter", "lm": "kjv-lm"}
SMALL_VIT = {"patch_size": 4, "in_channels": 3, "embed_dim": 64, "depth": 4, "num_heads": 4,
             "mlp_ratio": 2.0, "qkv_bias": True, "layer_norm_eps": 1e-6}
# The segmenter needs more width than the classifier: it names the digit at every patch.
SEGMENTER_VIT = dict(SMALL_VIT, embed_dim=96)
GREY = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}

CLASSIFIER = {"epochs": 60, "batch": 64, "lr": 2e-3, "weight_decay": 0.05, "warmup": 100}
SEGMENTER = {"epochs": 30, "batch": 32, "lr": 2e-3, "weight_decay": 0.05, "warmup": 100, "scenes": 4000}
LM = {"steps": 3000, "batch": 16, "window": 128, "lr": 2e-3, "weight_decay": 0.05, "warmup": 200,
      "vocab": 2048}


def attention_config(mode):
    return {"mode": mode, "estimator": "mean", "delta": 1.0}


class Progress:
    def __init__(self, what, total):
        self.what, self.total, self.start, self.last = what, total, time.time(), 0.0

    def step(self, done, **values):
        now = time.time()
        if now - self.last < 5 and done < self.total:
            return
        self.last = now
        shown = " ".join(f"{k} {v:.4g}" for k, v in values.items())
        eta = (now - self.start) / max(done, 1) * (self.total - done)
        print(f"[train] {self.what}: {done}/{self.total} {shown} (eta {eta:.0f} s)", file=sys.stderr, flush=True)


class Optimiser:
    """AdamW with warm-up and cosine decay; step(loss) runs one update and reports progress."""

    def __init__(self, net, hp, total_steps, what, clip=None):
        self.params = list(net.parameters())
        self.opt = torch.optim.AdamW(self.params, lr=hp["lr"], weight_decay=hp["weight_decay"])
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: nets.cosine_schedule(s, total_steps, hp["warmup"]))
        self.progress, self.done, self.clip = Progress(what, total_steps), 0, clip

    def step(self, loss):
        self.opt.zero_grad()
        loss.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.opt.step()
        self.sched.step()
        self.done += 1
        self.progress.step(self.done, loss=loss.item())


def augment(batch, generator):
    """Small random rotations, scalings and shifts of [0,1] images (black fill), before
    normalisation: the 1,438 training digits are few for a transformer."""
    n = batch.shape[0]
    angle = (torch.rand(n, generator=generator) - 0.5) * (2 * 0.2)  # +-0.2 rad
    scale = 1 + (torch.rand(n, generator=generator) - 0.5) * 0.2
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 0.2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, batch.shape, align_corners=False)
    return F.grid_sample(batch, grid, align_corners=False, padding_mode="zeros")


def train_classifier(out, mode):
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    split = digits.load_split()
    config = {"family": "image_classifier", "weights": "model.safetensors", "labels": "labels.txt",
              "num_classes": 10, "dtype": "auto", "device": "auto",
              "vit": dict(SMALL_VIT, image_size=32), "attention": attention_config(mode), "preprocess": GREY,
              "batching": {"max_batch_size": 32, "max_queue_delay_ms": 2}}
    net = model_files.build(config)
    images, labels = split["train"]
    # [0,1] at the model's size, as the server resizes; normalised after augmentation.
    unit = digits.to_model_input(images, 32, mean=0.0, std=1.0)
    labels = torch.as_tensor(labels)
    hp = CLASSIFIER
    steps_per_epoch = -(-len(labels) // hp["batch"])
    total = hp["epochs"] * steps_per_epoch
    opt = Optimiser(net, hp, total, f"{NAMES['classifier']} ({mode})")
    net.train()
    for _ in range(hp["epochs"]):
        order = torch.randperm(len(labels), generator=gen)
        for i in range(0, len(labels), hp["batch"]):
            idx = order[i:i + hp["batch"]]
            x = (augment(unit[idx], gen) - 0.5) / 0.5
            opt.step(F.cross_entropy(net(x), labels[idx], label_smoothing=0.1))
    net.eval()
    held_images, held_labels = split["heldout"]
    cosine = []
    acc = evaluate.accuracy(net, evaluate.classifier_inputs(held_images, config), held_labels, cosine)
    model_files.save(out, net, config, labels=digits.CLASSES)
    return {"heldout_accuracy": round(acc, 4), "heldout_images": len(held_labels),
            "train_images": len(labels), "steps": total,
            "mean_token_cosine_per_block": evaluate.mean_cosine_per_block(cosine)}


def train_segmenter(out, mode):
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    hp = SEGMENTER
    config = {"family": "segmenter", "weights": "model.safetensors", "labels": "labels.txt",
              "num_classes": len(digits.SCENE_LABELS), "dtype": "auto", "device": "auto",
              "vit": dict(SEGMENTER_VIT, image_size=digits.SCENE_SIZE), "attention": attention_config(mode),
              "decoder": {"type": "linear"},
              "inference": {"window_size": digits.SCENE_SIZE, "window_stride": digits.SCENE_SIZE * 2 // 3},
              "preprocess": GREY, "batching": {"max_batch_size": 16, "max_queue_delay_ms": 2}}
    net = model_files.build(config)
    steps_per_epoch = -(-hp["scenes"] // hp["batch"])
    total = hp["epochs"] * steps_per_epoch
    opt = Optimiser(net, hp, total, f"{NAMES['segmenter']} ({mode})")
    net.train()
    for epoch in range(hp["epochs"]):
        # New scenes every epoch: the 1,438 training digits in ever new places, sizes and tilts.
        scenes, masks = digits.training_scenes(hp["scenes"], epoch)
        x_all = evaluate.segmenter_inputs(scenes, config)
        y_all = torch.as_tensor(masks).long()
        order = torch.randperm(len(y_all), generator=gen)
        for i in range(0, len(y_all), hp["batch"]):
            idx = order[i:i + hp["batch"]]
            opt.step(F.cross_entropy(net(x_all[idx]), y_all[idx]))
    net.eval()
    held_scenes, held_masks = digits.heldout_scenes()
    cosine = []
    conf = evaluate.segmentation_confusion(net, evaluate.segmenter_inputs(held_scenes, config), held_masks, cosine)
    model_files.save(out, net, config, labels=digits.SCENE_LABELS)
    return {"heldout_miou": round(digits.mean_iou(conf), 4), "heldout_scenes": len(held_masks),
            "heldout_class_iou": dict(zip(digits.SCENE_LABELS, np.round(digits.class_iou(conf), 4).tolist())),
            "train_scenes": hp["scenes"] * hp["epochs"], "steps": total,
            "mean_token_cosine_per_block": evaluate.mean_cosine_per_block(cosine)}


def train_tokenizer(verses, tmp):
    """-> (processor, path of the .model file in tmp)."""
    import sentencepiece as spm

    corpus = os.path.join(tmp, "train.txt")
    with open(corpus, "w") as f:
        f.write("\n".join(verses) + "\n")
    prefix = os.path.join(tmp, "tokenizer")
    # No byte fallback: the text is ASCII, and every character is in the vocabulary.
    spm.SentencePieceTrainer.train(input=corpus, model_prefix=prefix, vocab_size=LM["vocab"],
                                   model_type="unigram", character_coverage=1.0, num_threads=1,
                                   unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2,
                                   input_sentence_size=0, shuffle_input_sentence=False)
    return spm.SentencePieceProcessor(model_file=prefix + ".model"), prefix + ".model"


def train_lm(out, mode):
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    hp = LM
    train_verses, held_verses, digest = kjv.split()
    tmp = tempfile.mkdtemp(prefix="kjv-tokenizer-")
    sp, tokenizer_path = train_tokenizer(train_verses, tmp)
    stream = evaluate.lm_stream(sp, train_verses)
    starts, pos = [], 0  # training windows begin where a verse begins, as a prompt does
    for encoded in sp.encode(train_verses):
        starts.append(pos)
        pos += len(encoded) + 1
    starts = torch.tensor([s for s in starts if s + hp["window"] + 1 <= len(stream)])
    # The paper's LM architecture (post-LN, ReLU, embeddings scaled by sqrt(d_model), tied output
    # with a bias), so that tools/convert_checkpoint.py's `lm` path exports it.
    lm = {"d_model": 128, "num_layers": 4, "num_heads": 4, "head_dim": 32, "d_inner": 512, "norm": "post",
          "activation": "relu", "layer_norm_eps": 1e-5, "positions": "sinusoidal", "position_order": "ascending",
          "max_positions": 1024, "embed_scale": 128 ** 0.5, "tie_embeddings": True, "output_bias": True}
    config = {"family": "language_model", "weights": "model.safetensors", "tokenizer": "tokenizer.model",
              "vocab_size": sp.get_piece_size(), "dtype": "auto", "device": "auto", "lm": lm,
              "attention": attention_config(mode),
              "generation": {"scale_mode": "prefix", "default_max_new_tokens": 48, "max_new_tokens_limit": 512}}
    net = model_files.build(config)
    opt = Optimiser(net, hp, hp["steps"], f"{NAMES['lm']} ({mode})", clip=1.0)
    offsets = torch.arange(hp["window"] + 1)
    net.train()
    for _ in range(hp["steps"]):
        pick = starts[torch.randint(len(starts), (hp["batch"],), generator=gen)]
        w = stream[pick[:, None] + offsets]
        logits = net(w[:, :-1])
        opt.step(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1)))
    net.eval()
    cosine = []
    ppl = evaluate.perplexity(net, evaluate.lm_windows(evaluate.lm_stream(sp, held_verses)), cosine=cosine)
    model_files.save(out, net, config, tokenizer=tokenizer_path)
    shutil.rmtree(tmp)
    return {"heldout_perplexity": round(ppl, 3), "heldout_verses": len(held_verses),
            "train_verses": len(train_verses), "train_tokens": len(stream), "text_sha256": digest,
            "steps": hp["steps"], "tokens_seen": hp["steps"] * hp["batch"] * hp["window"],
            "mean_token_cosine_per_block": evaluate.mean_cosine_per_block(cosine)}


TRAINERS = {"classifier": train_classifier, "segmenter": train_segmenter, "lm": train_lm}
HYPERPARAMETERS = {"classifier": CLASSIFIER, "segmenter": SEGMENTER, "lm": LM}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                  "models"))
    p.add_argument("--only", nargs="+", choices=sorted(TRAINERS), default=sorted(TRAINERS))
    p.add_argument("--attention", choices=["elliptical", "dot_product"], default="elliptical")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: reproducible bit for bit)")
    p.add_argument("--seed", type=int, default=SEED,
                   help="initialisation and batch-order seed (the data split and scenes keep theirs)")
    args = p.parse_args()
    globals()["SEED"] = args.seed
    torch.set_num_threads(args.threads)
    for what in args.only:
        directory = os.path.join(args.out, NAMES[what])
        start = time.time()
        result = TRAINERS[what](directory, args.attention)
        result.update({"attention": args.attention, "seed": SEED, "hyperparameters": HYPERPARAMETERS[what],
                       "train_seconds": round(time.time() - start, 1), "torch": torch.__version__,
                       "machine": f"the CPU ({platform.machine()}, {os.cpu_count()} cores, "
                                  f"{torch.get_num_threads()} torch thread(s))"})
        model_files.write_json(os.path.join(directory, "eval.json"), result)
        model_cards.write(directory, what, result)
        print(f"[train] wrote {directory}: " + json.dumps({k: v for k, v in result.items()
                                                          if k.startswith("heldout")}), file=sys.stderr)


if __name__ == "__main__":
    main()
