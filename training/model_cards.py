"""The model card (README.md) of each default model, filled in from its training run."""
import json
import os

import digits
import model_files

COMMON = """
## Attention

{attention}: every block but the first scales its queries by the elliptical metric m, estimated
per sample and head from the values of consecutive blocks (mean over tokens, max-scaled), with
the score scale c = 1/sqrt(head_dim); the first block is dot-product attention. The same weights
serve with `"attention": {{"mode": "dot_product"}}` too, but were trained elliptical.
Mean token cosine similarity after each block on the held-out set (representation collapse,
lower is more diverse): {cosine}.

## Reproduce

    .venv/bin/python training/train.py --only {what}

The script saves the trained weights in the layout `tools/convert_checkpoint.py {converter}` reads
and lets the converter write this directory, as for any checkpoint.

Seed {seed}, torch {torch}; took {seconds:.0f} s on {machine}. Hyperparameters:
`{hp}`. `eval.json` holds every number on this card. `docs/paper_claims.md` compares this model
with the same network trained with dot-product attention.
"""

CARDS = {
    "classifier": """# digits-vit

An elliptical-attention ViT that reads a handwritten digit (0-9).

| | |
|---|---|
| family | `image_classifier` |
| input | a PNG or JPEG of one digit, white on black, any size (resized to 32 x 32; the training digits are 8 x 8) |
| output | 10 classes, labels `0`..`9` |
| network | ViT, 32 x 32 input, 4 x 4 patches (64 tokens + class token), width 64, 4 blocks, 4 heads, MLP ratio 2 |
| parameters | {params:,} ({size:.2f} MB of float32 safetensors) |
| precision | `dtype: auto`: bfloat16 on CPUs with AMX-BF16 and on CUDA, float32 elsewhere; held-out cost of bf16 in [docs/benchmarks.md](../../docs/benchmarks.md#precision-auto-bfloat16-against-float32) |
| **held-out accuracy** | **{accuracy:.2%}** on {heldout} digits never trained on |

## Data

scikit-learn's `load_digits`, shipped inside the scikit-learn wheel: a copy of the test part of
the UCI "Optical Recognition of Handwritten Digits" data set (E. Alpaydin, C. Kaynak, 1998; UCI
Machine Learning Repository, licence CC BY 4.0), 1,797 digits of 8 x 8 pixels in 16 grey levels.
Grey levels are scaled to 0-255 as a PNG of the digit stores them. A seeded permutation
(seed 0) keeps {train} digits for training and holds out {heldout}. Training adds small random rotations, scalings and shifts.

## Limits

It knows the UCI digits: centred, thick, white strokes on black. A photo of a digit on paper
(dark on light) must be inverted first, and anything that is not a digit still gets a digit.
""",
    "segmenter": """# digit-scenes-segmenter

An elliptical-attention Segmenter (ViT encoder, linear decoder) that labels every pixel of a
scene of handwritten digits with its digit or background.

| | |
|---|---|
| family | `segmenter` |
| input | a 48 x 48 PNG of white digits on black (larger images run in sliding 48 x 48 windows) |
| output | a class per pixel: `background`, `digit 0` .. `digit 9` |
| network | ViT encoder, 4 x 4 patches (144 tokens), width {width}, 4 blocks, 4 heads, MLP ratio 2; linear decoder; logits upsampled bilinearly |
| parameters | {params:,} ({size:.2f} MB of float32 safetensors) |
| precision | `dtype: auto`: bfloat16 on CPUs with AMX-BF16 and on CUDA, float32 elsewhere; held-out cost of bf16 in [docs/benchmarks.md](../../docs/benchmarks.md#precision-auto-bfloat16-against-float32) |
| **held-out mIoU** | **{miou:.2%}** (11 classes, over {heldout} held-out scenes) |

## Data

Scenes made by `training/digits.py` from scikit-learn's `load_digits` (see `digits-vit`; CC BY
4.0): 1 to {max_digits} digits per scene, each enlarged to {glyph_min} to {glyph_max} pixels, tilted by up to {tilt} rad
and placed at random, later digits over earlier ones, faint noise on the background; a pixel is a
digit's where that digit's enlarged glyph is at least 96/255 bright. Training draws fresh scenes
of the training digits every epoch ({train} in all); the {heldout} held-out scenes (seed 2) use
the held-out digits only. mIoU is the mean over the 11 classes
of intersection over union accumulated over all held-out scenes.

## Limits

Per-class IoU on the held-out scenes: background {bg_iou:.1%}, digits {digit_iou_min:.1%} to
{digit_iou_max:.1%} (`eval.json`). Labels are only as fine as 4 x 4 patches allow, so strokes'
edges are where many errors are; where two digits overlap, the one underneath can be lost.
`docs/examples/segmenter-gallery.png` shows eight held-out scenes (top), their true masks
(middle) and this model's (bottom).
""",
    "lm": """# kjv-lm

A small elliptical-attention language model of the King James Bible, with its own SentencePiece
tokenizer. It continues a prompt in the style of the KJV and stops at the end of a verse.

| | |
|---|---|
| family | `language_model` |
| tokenizer | SentencePiece unigram, {vocab} pieces, trained on the training verses; no byte fallback (the text is ASCII) |
| network | decoder-only in the paper's LM layout: post-LayerNorm, width 128, 4 layers, 4 heads of 32, feed-forward 512 (ReLU), sinusoidal positions, embeddings scaled by sqrt(128) and tied to the output; causal elliptical metric (`generation.scale_mode: prefix`, exact with the KV cache) |
| parameters | {params:,} ({size:.2f} MB of float32 safetensors, tokenizer {tok_size:.2f} MB) |
| precision | `dtype: auto`: float32 on the CPU (a language model's decode steps run slower in bf16 there), bfloat16 on CUDA; held-out cost of bf16 in [docs/benchmarks.md](../../docs/benchmarks.md#precision-auto-bfloat16-against-float32) |
| training | {steps} steps of {batch} windows of {window} tokens ({tokens_seen:,} tokens, about {epochs:.1f} passes over {train_tokens:,}) |
| **held-out perplexity** | **{ppl:.2f}** per token, on {heldout} held-out verses |

## Data

The King James Version of the Bible (1611; public domain in most of the world; in the United
Kingdom the Crown's rights in it persist), from Debian's `bible-kjv-text` package, read with its
`bible` program (Debian `bible-kjv`); sha256 of the verse text `{digest}`. One verse is one
document, ended by the end-of-sequence token. Every 20th chapter is held out ({heldout} verses);
the other {train} verses train the tokenizer and the model.

## Limits

A 1-million-parameter model: phrases are KJV-like and mostly grammatical, meaning drifts
within a sentence, and now and then a word is invented. Sample (temperature about 0.8): greedy
decoding (temperature 0) soon repeats itself. It knows nothing but this book.
""",
}


def write(directory, what, result):
    net, config = model_files.load(directory)
    values = {"width": config.get("vit", {}).get("embed_dim"), "params": sum(p.numel() for p in net.parameters()),
              "size": model_files.file_size_mb(directory, config["weights"]),
              "cosine": ", ".join(f"{c:.3f}" for c in result["mean_token_cosine_per_block"]),
              "attention": "Elliptical" if config["attention"]["mode"] == "elliptical" else "Dot-product (baseline)",
              "what": what, "converter": {"classifier": "deit", "segmenter": "segmenter", "lm": "lm"}[what],
              "seed": result["seed"], "torch": result["torch"], "seconds": result["train_seconds"],
              "machine": result["machine"], "hp": json.dumps(result["hyperparameters"])}
    if what == "classifier":
        values.update(accuracy=result["heldout_accuracy"], heldout=result["heldout_images"],
                      train=result["train_images"])
    elif what == "segmenter":
        values.update(miou=result["heldout_miou"], heldout=result["heldout_scenes"], train=result["train_scenes"],
                      max_digits=digits.MAX_DIGITS, glyph_min=digits.GLYPH_SIZES[0], glyph_max=digits.GLYPH_SIZES[1],
                      tilt=digits.MAX_TILT, bg_iou=result["heldout_class_iou"]["background"],
                      digit_iou_min=min(v for k, v in result["heldout_class_iou"].items() if k != "background"),
                      digit_iou_max=max(v for k, v in result["heldout_class_iou"].items() if k != "background"))
    else:
        hp = result["hyperparameters"]
        values.update(vocab=config["vocab_size"], tok_size=model_files.file_size_mb(directory, "tokenizer.model"),
                      steps=hp["steps"], batch=hp["batch"], window=hp["window"], tokens_seen=result["tokens_seen"],
                      train_tokens=result["train_tokens"], epochs=result["tokens_seen"] / result["train_tokens"],
                      ppl=result["heldout_perplexity"], heldout=result["heldout_verses"],
                      train=result["train_verses"], digest=result["text_sha256"])
    with open(os.path.join(directory, "README.md"), "w") as f:
        f.write(CARDS[what].format(**values) + COMMON.format(**values))
