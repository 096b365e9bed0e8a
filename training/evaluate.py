"""Held-out metrics, computed the way the server serves: the classifier on 8 x 8 grey digits that
the server would resize, the segmenter on whole 48 x 48 scenes, the LM on held-out verses."""
import math

import torch
import torch.nn.functional as F

import digits
import nets

BATCH = 128
LM_WINDOW = 128


def classifier_inputs(images, config):
    pre = config["preprocess"]
    return digits.to_model_input(images, config["vit"]["image_size"], pre["mean"][0], pre["std"][0])


def segmenter_inputs(scenes, config):
    pre = config["preprocess"]
    return digits.to_model_input(scenes, digits.SCENE_SIZE, pre["mean"][0], pre["std"][0])


@torch.no_grad()
def predict(net, inputs, cosine=None):
    """Batched argmax over dim 1 of the net's outputs; appends per-block cosine rows if asked."""
    out = []
    for i in range(0, len(inputs), BATCH):
        trace = nets.Trace() if cosine is not None else None
        out.append(net(inputs[i:i + BATCH], trace).argmax(dim=1))
        if trace is not None:
            cosine.append(torch.stack(trace.cosine, dim=1))  # (b, blocks)
    return torch.cat(out)


def accuracy(net, inputs, labels, cosine=None):
    return float((predict(net, inputs, cosine) == torch.as_tensor(labels)).float().mean())


def segmentation_confusion(net, inputs, masks, cosine=None):
    pred = predict(net, inputs, cosine).numpy()
    return digits.confusion(pred, masks, len(digits.SCENE_LABELS))


def miou(net, inputs, masks, cosine=None):
    return digits.mean_iou(segmentation_confusion(net, inputs, masks, cosine))


def lm_stream(sp, verses):
    """Token ids of the verses, each followed by the end-of-sequence id."""
    ids = []
    for encoded in sp.encode(verses):
        ids.extend(encoded)
        ids.append(sp.eos_id())
    return torch.tensor(ids, dtype=torch.int64)


def lm_windows(stream):
    """Non-overlapping windows of LM_WINDOW tokens (the ragged tail dropped): (n, LM_WINDOW)."""
    n = len(stream) // LM_WINDOW
    return stream[:n * LM_WINDOW].view(n, LM_WINDOW)


@torch.no_grad()
def perplexity(net, windows, inputs=None, cosine=None):
    """Per-token perplexity of positions 1..W-1 given what precedes them. inputs (default: the
    windows) may differ from the windows, e.g. with tokens swapped; targets stay the windows'."""
    total, count = 0.0, 0
    for i in range(0, len(windows), 64):
        w = windows[i:i + 64]
        x = (inputs if inputs is not None else windows)[i:i + 64]
        trace = nets.Trace() if cosine is not None else None
        logits = net(x[:, :-1], trace)
        if trace is not None:
            cosine.append(torch.stack(trace.cosine, dim=1))
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1), reduction="sum")
        total += float(nll)
        count += w[:, 1:].numel()
    return math.exp(total / count)


def mean_cosine_per_block(rows):
    """Rows appended by predict/perplexity -> the per-block mean over every sample."""
    return [round(float(x), 4) for x in torch.cat(rows).mean(dim=0)]
