"""Writes and reads model directories in the server's format (docs/model_formats.md).

A trained model is exported the way a user converts a checkpoint: its state_dict is saved in the
layout tools/convert_checkpoint.py reads (timm's ViT, the paper's Segmenter, the paper's decoder
LM) and the converter writes the model directory; only the server's own settings (batching,
generation limits) are added to the config it wrote."""
import json
import math
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file

import nets

CONVERTER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools",
                         "convert_checkpoint.py")
SERVING_KEYS = ("batching", "generation")


def paper_lm_layout(state_dict):
    """Our LM's tensor names -> the paper's MemTransformerLM names (what the converter reads)."""
    out = {}
    for name, t in state_dict.items():
        name = (name.replace("word_emb.weight", "word_emb.emb_layers.0.weight")
                .replace("out.bias", "crit.out_layers.0.bias")
                .replace(".attn.", ".dec_attn.").replace(".ff.fc1.", ".pos_ff.CoreNet.0.")
                .replace(".ff.fc2.", ".pos_ff.CoreNet.3.").replace(".ff.layer_norm.", ".pos_ff.layer_norm."))
        out[name] = t
    return out


def converter_arguments(config, checkpoint, directory, labels_path, tokenizer):
    att = config["attention"]
    common = ["--attention", att["mode"], "--estimator", att["estimator"], "--delta", repr(att["delta"]),
              "--dtype", config["dtype"], "--device", config["device"]]
    if config["family"] == "language_model":
        lm = config["lm"]
        return ["lm", checkpoint, directory, "--num-heads", str(lm["num_heads"]), "--position-order", "ascending",
                "--scale-mode", config["generation"]["scale_mode"],
                "--score-scale", repr(1 / math.sqrt(lm["head_dim"])),
                "--max-positions", str(lm["max_positions"]), "--tokenizer", tokenizer, *common]
    vit, pre = config["vit"], config["preprocess"]
    args = [checkpoint, directory, "--labels", labels_path, "--num-heads", str(vit["num_heads"]),
            "--mean", *map(repr, pre["mean"]), "--std", *map(repr, pre["std"]), *common]
    if config["family"] == "image_classifier":
        return ["deit", *args]
    inference = config["inference"]
    return ["segmenter", *args, "--encoder-eps", repr(vit["layer_norm_eps"]),
            "--window-size", str(inference["window_size"]), "--window-stride", str(inference["window_stride"])]


def save(directory, net, config, labels=None, tokenizer=None):
    """Exports through the converter and checks that the directory it wrote describes `config`'s
    network: the weights load strictly into a network built from the written config."""
    state = {k: v.detach().float().contiguous() for k, v in net.state_dict().items()}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = os.path.join(tmp, "checkpoint.pth")
        torch.save(paper_lm_layout(state) if config["family"] == "language_model" else state, checkpoint)
        labels_path = None
        if labels is not None:
            labels_path = os.path.join(tmp, "labels.txt")
            with open(labels_path, "w") as f:
                f.write("\n".join(labels) + "\n")
        subprocess.run([sys.executable, CONVERTER,
                        *converter_arguments(config, checkpoint, directory, labels_path, tokenizer)],
                       check=True, stdout=subprocess.DEVNULL)
    path = os.path.join(directory, "config.json")
    with open(path) as f:
        written = json.load(f)
    for key in SERVING_KEYS:
        if key in config:
            written[key] = {**written.get(key, {}), **config[key]}
    write_json(path, written)
    reloaded, _ = load(directory)
    for name, t in reloaded.state_dict().items():
        if not torch.equal(t, state[name]):
            raise RuntimeError(f"{directory}: {name} differs after conversion")


def build(config):
    """A fresh network for a config (the family and attention mode it names)."""
    mode = config["attention"]["mode"]
    if config["family"] == "image_classifier":
        return nets.VisionTransformer(config["vit"], mode, config["num_classes"])
    if config["family"] == "segmenter":
        return nets.LinearSegmenter(config["vit"], mode, config["num_classes"])
    return nets.DecoderLm(config["lm"], mode, config["vocab_size"])


def load(directory):
    """-> (network in eval mode with the directory's weights, config)."""
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    net = build(config)
    net.load_state_dict(load_file(os.path.join(directory, config["weights"])), strict=True)
    return net.eval(), config


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")


def file_size_mb(directory, name):
    return os.path.getsize(os.path.join(directory, name)) / 1e6
