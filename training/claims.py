#!/usr/bin/env python3
"""Checks the Elliptical Attention paper's two claims at small scale, on the default models and
their dot-product twins (same network, data, seed and budget, trained with
`training/train.py --attention dot_product`):

  (a) representation collapse: mean token cosine similarity after each block, held-out set;
  (b) robustness: accuracy, mIoU and perplexity under contaminated inputs: Gaussian noise, FGSM
      and PGD (L-infinity, on the [0,1] pixels at the model's input size) for the vision models,
      random token swaps for the LM. The same noise and swaps (seeded) hit both models.

  .venv/bin/python training/claims.py --elliptical models --dot-product build/claims \
      --out bench/results/paper_claims

Writes OUT.json (every number) and OUT.md (the tables docs/paper_claims.md shows). The attacks'
gradients do not flow through m, which the model computes without gradient, as in training.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import digits  # noqa: E402
import evaluate  # noqa: E402
import kjv  # noqa: E402
import model_files  # noqa: E402
import train  # noqa: E402

NOISE_SIGMAS = [0.05, 0.1, 0.2]
FGSM_EPS = [0.01, 0.02, 0.04]
PGD_EPS = [0.01, 0.02]
PGD_STEPS = 10
SWAP_RATES = [0.05, 0.1, 0.2]


def log(message):
    print(f"[claims] {message}", file=sys.stderr, flush=True)


def normalise(unit):
    return (unit - 0.5) / 0.5  # the default models' preprocess: mean 0.5, std 0.5


def with_noise(unit, sigma, seed):
    g = torch.Generator().manual_seed(seed)
    return (unit + sigma * torch.randn(unit.shape, generator=g)).clamp(0, 1)


def attack(net, unit, targets, eps, steps):
    """FGSM (steps 1, one step of eps) or PGD (steps > 1, step eps/4, no random start) on the
    cross-entropy of the true targets; returns perturbed [0,1] inputs."""
    adv = unit.clone()
    step = eps if steps == 1 else eps / 4
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(net(normalise(adv)), targets)
        grad, = torch.autograd.grad(loss, adv)
        adv = (adv.detach() + step * grad.sign()).clamp(unit - eps, unit + eps).clamp(0, 1)
    return adv.detach()


def attacked(net, unit, targets, eps, steps):
    return torch.cat([attack(net, unit[i:i + 64], targets[i:i + 64], eps, steps) for i in range(0, len(unit), 64)])


def image_report(net, unit, targets, score, noise_seed, pgd_eps):
    """score(normalised inputs, cosine rows or None) -> the metric; attacks aim at `targets`."""
    cosine = []
    row = {"clean": score(normalise(unit), cosine)}
    for s in NOISE_SIGMAS:
        row[f"noise {s}"] = score(normalise(with_noise(unit, s, noise_seed)), None)
    for e in FGSM_EPS:
        row[f"FGSM {e}"] = score(normalise(attacked(net, unit, targets, e, 1)), None)
    for e in pgd_eps:
        row[f"PGD-{PGD_STEPS} {e}"] = score(normalise(attacked(net, unit, targets, e, PGD_STEPS)), None)
    return row, evaluate.mean_cosine_per_block(cosine)


def classifier_report(net, directory):
    held_images, held_labels = digits.load_split()["heldout"]
    labels = torch.as_tensor(held_labels)
    return image_report(net, digits.to_model_input(held_images, 32, mean=0.0, std=1.0), labels,
                        lambda x, cosine: evaluate.accuracy(net, x, labels, cosine), 11, PGD_EPS)


def segmenter_report(net, directory):
    scenes, masks = digits.heldout_scenes()
    return image_report(net, digits.to_model_input(scenes, digits.SCENE_SIZE, mean=0.0, std=1.0),
                        torch.as_tensor(masks).long(), lambda x, cosine: evaluate.miou(net, x, masks, cosine),
                        12, [])


def lm_report(net, directory):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=os.path.join(directory, "tokenizer.model"))
    _, held, _ = kjv.split()
    windows = evaluate.lm_windows(evaluate.lm_stream(sp, held))
    cosine = []
    row = {"clean": evaluate.perplexity(net, windows, cosine=cosine)}
    for rate in SWAP_RATES:
        g = torch.Generator().manual_seed(13)
        swap = torch.rand(windows.shape, generator=g) < rate
        random_ids = torch.randint(sp.get_piece_size(), windows.shape, generator=g)
        row[f"swap {rate:.0%}"] = evaluate.perplexity(net, windows, inputs=torch.where(swap, random_ids, windows))
    return row, evaluate.mean_cosine_per_block(cosine)


REPORTS = {"classifier": ("accuracy", classifier_report), "segmenter": ("mIoU", segmenter_report),
           "lm": ("perplexity", lm_report)}


def table(results, what, metric):
    rows = results[what]
    columns = list(rows["elliptical"]["robustness"])
    fmt = (lambda v: f"{v:.2f}") if metric == "perplexity" else (lambda v: f"{v:.1%}")
    lines = [f"| {train.NAMES[what]} ({metric}) | " + " | ".join(columns) + " |",
             "|---|" + "---|" * len(columns)]
    for mode in ("elliptical", "dot_product"):
        r = rows[mode]["robustness"]
        lines.append(f"| {mode} | " + " | ".join(fmt(r[c]) for c in columns) + " |")
    lines.append("")
    lines.append(f"| {train.NAMES[what]}: mean token cosine after block | "
                 + " | ".join(str(i) for i in range(len(rows["elliptical"]["cosine"]))) + " |")
    lines.append("|---|" + "---|" * len(rows["elliptical"]["cosine"]))
    for mode in ("elliptical", "dot_product"):
        lines.append(f"| {mode} | " + " | ".join(f"{c:.3f}" for c in rows[mode]["cosine"]) + " |")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--elliptical", required=True, help="repository with the elliptical models")
    p.add_argument("--dot-product", required=True, help="repository with their dot-product twins")
    p.add_argument("--out", required=True, help="path prefix of the .json and .md written")
    p.add_argument("--only", nargs="+", choices=sorted(REPORTS), default=["classifier", "segmenter", "lm"])
    args = p.parse_args()
    torch.set_num_threads(1)
    results = {}
    for what in args.only:
        results[what] = {}
        for mode, repo in (("elliptical", args.elliptical), ("dot_product", args.dot_product)):
            directory = os.path.join(repo, train.NAMES[what])
            net, config = model_files.load(directory)
            if config["attention"]["mode"] != mode:
                raise SystemExit(f"{directory} is a {config['attention']['mode']} model, expected {mode}")
            start = time.time()
            row, cosine = REPORTS[what][1](net, directory)
            results[what][mode] = {"robustness": row, "cosine": cosine}
            log(f"{train.NAMES[what]} {mode}: {json.dumps(row)} cosine {cosine} ({time.time() - start:.0f} s)")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    with open(args.out + ".md", "w") as f:
        for what in results:
            f.write(table(results, what, REPORTS[what][0]) + "\n")
    log(f"wrote {args.out}.json and {args.out}.md")


if __name__ == "__main__":
    main()
