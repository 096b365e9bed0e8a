"""Writes and reads model directories in the server's format (docs/model_formats.md)."""
import json
import os

import torch
from safetensors.torch import load_file, save_file

import nets


def save(directory, net, config, labels=None):
    os.makedirs(directory, exist_ok=True)
    tensors = {k: v.detach().float().contiguous() for k, v in net.state_dict().items()}
    save_file(tensors, os.path.join(directory, config["weights"]))
    if labels is not None:
        with open(os.path.join(directory, config["labels"]), "w") as f:
            f.write("\n".join(labels) + "\n")
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


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


def no_grad_batches(n, batch):
    for start in range(0, n, batch):
        yield slice(start, min(n, start + batch))


torch.set_float32_matmul_precision("highest")
