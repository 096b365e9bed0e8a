#!/usr/bin/env python3
"""Converts PyTorch checkpoints into the model directories of docs/model_formats.md.

    python tools/convert_checkpoint.py deit deit_tiny_patch16_224.pth models/deit-tiny --labels imagenet.txt \
        --timm-model deit_tiny_patch16_224
    python tools/convert_checkpoint.py segmenter checkpoint.pth models/seg-ade20k --labels ade20k.txt
    python tools/convert_checkpoint.py lm model.pt models/wt103-lm --num-heads 8

A checkpoint is a .safetensors file, or a .pth/.pt file holding a state_dict, a dict with the
state_dict under "model"/"state_dict"/"model_state_dict", or (with --trust-pickle) a pickled
nn.Module. "module." prefixes (DataParallel) are stripped. Elliptical attention adds no
parameters, so every checkpoint converts the same way for either attention mode; --attention only
sets the config's default.

  deit       timm VisionTransformer / DeiT (not distilled) -> image_classifier, with timm's eval
             preprocessing (shorter side to floor(size / crop_pct), centre crop, PIL bicubic or
             bilinear, mean/std) from timm's data config: --timm-model's pretrained config, a
             pickled timm model's pretrained_cfg, or timm's defaults
  segmenter  the paper's Segmenter (ADE20K/model/segmenter.py): encoder.* (timm ViT layout,
             encoder.head dropped) + decoder.head (linear) or the mask transformer -> segmenter
  lm         the paper's decoder LM (Wikitext/.../mem_transformer.py, MemTransformerLM with
             absolute positions, attn_type 2, no adaptive softmax) -> language_model
"""
import argparse
import json
import math
import os
import pickle
import re
import shutil
import sys

import torch
from safetensors.torch import save_file

# The served dtype and the stored one: "auto" (the server picks per machine, model/io/precision.h)
# keeps float32 weights, from which any precision can be made at load.
DTYPES = {"auto": torch.float32, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# DeiT/ViT sizes whose head count is standard (Tiny, Small, Base, Large); others need --num-heads.
KNOWN_HEADS = {192: 3, 384: 6, 768: 12, 1024: 16}
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


class ConversionError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Reading and writing


def load_state_dict(path, trust_pickle=False, modules=None):
    """Returns {name: tensor} from a checkpoint file, unwrapped and without "module." prefixes.

    A pickled nn.Module found in the file is appended to `modules` when given (its timm
    pretrained_cfg says how its images were preprocessed)."""
    if not os.path.isfile(path):
        raise ConversionError(f"no such file: {path}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        obj = load_file(path)
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
        except pickle.UnpicklingError as e:
            if trust_pickle:
                raise ConversionError(f"cannot read {path}: {e}") from e
            found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
            raise ConversionError(
                f"{path} holds Python objects besides tensors ({found.group(1) if found else 'see torch.load'}"
                "). If you trust the file, pass --trust-pickle: unpickling runs code from it.") from e
        except Exception as e:  # noqa: BLE001 (not a zip or legacy pickle; torch raises several types)
            raise ConversionError(f"cannot read {path} as a PyTorch checkpoint ({type(e).__name__}: {e})") from e
    if isinstance(obj, torch.nn.Module):
        if modules is not None:
            modules.append(obj)
        obj = obj.state_dict()
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), (dict, torch.nn.Module)):
            obj = obj[key]
            if isinstance(obj, torch.nn.Module):
                if modules is not None:
                    modules.append(obj)
                obj = obj.state_dict()
            break
    if not isinstance(obj, dict):
        raise ConversionError(f"{path} holds a {type(obj).__name__}, not a state_dict")
    sd = {}
    for name, value in obj.items():
        if isinstance(value, torch.Tensor):
            while name.startswith("module."):
                name = name[len("module."):]
            sd[name] = value
    if not sd:
        raise ConversionError(f"{path} holds no tensors")
    return sd


def need(sd, name, what):
    if name not in sd:
        raise ConversionError(f"{what}: tensor {name} missing from the checkpoint")
    return sd[name]


def count_blocks(sd, pattern):
    """Number of blocks: the indices that `pattern` (a regex, index in group 1) finds must be 0..n-1."""
    indices = {int(m.group(1)) for k in sd for m in [re.match(pattern, k)] if m}
    n = 0
    while n in indices:
        n += 1
    if indices and n != max(indices) + 1:
        raise ConversionError(f"block indices {sorted(indices)} are not 0..{max(indices)}")
    return n


def check_shapes(tensors, expected, what):
    """Fails, naming every offending tensor, unless `tensors` holds exactly `expected`'s shapes."""
    problems = []
    for name, shape in expected.items():
        if name not in tensors:
            problems.append(f"missing {name} {tuple(shape)}")
        elif tuple(tensors[name].shape) != tuple(shape):
            problems.append(f"{name} has shape {tuple(tensors[name].shape)}, expected {tuple(shape)}")
    problems += [f"unexpected tensor {name} {tuple(tensors[name].shape)}"
                 for name in tensors if name not in expected]
    if problems:
        raise ConversionError(f"{what}:\n  " + "\n  ".join(problems))


def write_model_dir(out, config, tensors, labels=None, extra_files=()):
    os.makedirs(out, exist_ok=True)
    dtype = DTYPES[config["dtype"]]
    # Copies: checkpoints may hold views of shared storage, which safetensors refuses to write.
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v).clone(memory_format=torch.contiguous_format)
               for k, v in tensors.items()}
    weights = os.path.join(out, config["weights"])
    save_file(tensors, weights, metadata={"format": "pt", "converted_by": "tools/convert_checkpoint.py"})
    params = sum(t.numel() for t in tensors.values())
    print(f"wrote {weights}: {len(tensors)} tensors, {params / 1e6:.3f}M parameters, {config['dtype']}")
    if labels is not None:
        with open(os.path.join(out, config["labels"]), "w") as f:
            f.write("\n".join(labels) + "\n")
        print(f"wrote {os.path.join(out, config['labels'])}: {len(labels)} labels")
    for src, name in extra_files:
        shutil.copyfile(src, os.path.join(out, name))
        print(f"wrote {os.path.join(out, name)} (copy of {src})")
    path = os.path.join(out, "config.json")
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    print(f"wrote {path}")


def read_labels(path, num_classes):
    if path is None:
        return [f"class_{i}" for i in range(num_classes)]
    with open(path) as f:
        labels = [line.rstrip("\r\n") for line in f]
    while labels and not labels[-1]:
        labels.pop()
    if len(labels) != num_classes:
        raise ConversionError(f"{path} has {len(labels)} labels but the checkpoint has {num_classes} classes")
    return labels


def attention_config(args, depth, delta):
    att = {"mode": args.attention, "estimator": args.estimator, "delta": delta}
    if args.elliptical_layers is not None:
        layers = [int(x) for x in args.elliptical_layers.split(",") if x.strip()]
        bad = [i for i in layers if not 0 <= i < depth]
        if bad:
            raise ConversionError(f"--elliptical-layers {bad} outside 0..{depth - 1}")
        att["elliptical_layers"] = layers
    return att


# ---------------------------------------------------------------------------------------------
# ViT (timm layout), shared by deit and the Segmenter's encoder


def vit_tensors(sd, num_heads, what, prefix=""):
    """Infers the ViT shape from timm-layout tensors under `prefix` and checks them all.

    Returns (vit config, {name without prefix: tensor}) without the classification head."""
    if prefix + "fc_norm.weight" in sd:
        raise ConversionError(f"{what}: fc_norm means global average pooling; the format classifies "
                              "from the class token (timm global_pool='token')")
    if prefix + "dist_token" in sd or prefix + "head_dist.weight" in sd:
        raise ConversionError(
            f"{what}: this is a distilled DeiT (dist_token, head_dist); the format has one class "
            "token and one head. Convert the non-distilled checkpoint of the same model instead.")
    cls = need(sd, prefix + "cls_token", what)
    patch = need(sd, prefix + "patch_embed.proj.weight", what)
    pos = need(sd, prefix + "pos_embed", what)
    dim = cls.shape[-1]
    if patch.dim() != 4 or patch.shape[0] != dim or patch.shape[2] != patch.shape[3]:
        raise ConversionError(f"{what}: patch_embed.proj.weight {tuple(patch.shape)} is not a square "
                              f"({dim}, C, P, P) convolution")
    p, channels = patch.shape[2], patch.shape[1]
    grid = math.isqrt(pos.shape[1] - 1)
    if pos.dim() != 3 or grid * grid != pos.shape[1] - 1:
        raise ConversionError(f"{what}: pos_embed {tuple(pos.shape)} is not (1, 1+G*G, {dim}) for a "
                              "square grid G (one class token, no register tokens)")
    depth = count_blocks(sd, re.escape(prefix) + r"blocks\.(\d+)\.")
    if depth == 0:
        raise ConversionError(f"{what}: no {prefix}blocks.0.* tensors")
    hidden = need(sd, prefix + "blocks.0.mlp.fc1.weight", what).shape[0]
    qkv_bias = prefix + "blocks.0.attn.qkv.bias" in sd
    heads = num_heads or KNOWN_HEADS.get(dim)
    if heads is None:
        raise ConversionError(f"{what}: embed_dim {dim} has no standard head count; pass --num-heads")
    if dim % heads:
        raise ConversionError(f"{what}: embed_dim {dim} is not divisible by {heads} heads")

    vit = {"image_size": grid * p, "patch_size": p, "in_channels": channels, "embed_dim": dim,
           "depth": depth, "num_heads": heads, "mlp_ratio": hidden / dim, "qkv_bias": qkv_bias,
           "layer_norm_eps": 1e-6}
    expected = {"patch_embed.proj.weight": (dim, channels, p, p), "patch_embed.proj.bias": (dim,),
                "cls_token": (1, 1, dim), "pos_embed": (1, 1 + grid * grid, dim),
                "norm.weight": (dim,), "norm.bias": (dim,)}
    for i in range(depth):
        b = f"blocks.{i}."
        expected.update(block_shapes(b, dim, hidden, qkv_bias))
    tensors = {name[len(prefix):]: t for name, t in sd.items()
               if name.startswith(prefix) and not name.startswith(prefix + "head.")}
    check_shapes(tensors, expected, what)
    return vit, tensors


def block_shapes(b, dim, hidden, qkv_bias=True):
    shapes = {b + "norm1.weight": (dim,), b + "norm1.bias": (dim,),
              b + "attn.qkv.weight": (3 * dim, dim),
              b + "attn.proj.weight": (dim, dim), b + "attn.proj.bias": (dim,),
              b + "norm2.weight": (dim,), b + "norm2.bias": (dim,),
              b + "mlp.fc1.weight": (hidden, dim), b + "mlp.fc1.bias": (hidden,),
              b + "mlp.fc2.weight": (dim, hidden), b + "mlp.fc2.bias": (dim,)}
    if qkv_bias:
        shapes[b + "attn.qkv.bias"] = (3 * dim,)
    return shapes


def preprocess_config(args):
    mean = IMAGENET_MEAN if args.mean is None else args.mean
    std = IMAGENET_STD if args.std is None else args.std
    if min(std) <= 0:
        raise ConversionError(f"--std {std} must be positive")
    return {"mean": mean, "std": std}


# timm's eval defaults (timm.data.constants: DEFAULT_CROP_PCT, bicubic, ImageNet statistics),
# for when timm cannot be imported; an empty timm PretrainedCfg resolves to the same.
TIMM_DEFAULT_DATA = {"crop_pct": 0.875, "crop_mode": "center", "interpolation": "bicubic",
                     "mean": tuple(IMAGENET_MEAN), "std": tuple(IMAGENET_STD)}


def timm_data_config(args, module):
    """timm's evaluation data config for the checkpoint being converted, and where it came from:
    --timm-model's pretrained config, else a pickled timm model's own pretrained_cfg, else timm's
    defaults. The dict holds input_size (or not, for the defaults), crop_pct, crop_mode,
    interpolation, mean and std, as timm.data.resolve_data_config returns them."""
    try:
        import timm.data
        import timm.models
    except ImportError as e:
        if args.timm_model:
            raise ConversionError(f"--timm-model needs the timm package ({e})") from e
        return dict(TIMM_DEFAULT_DATA), "timm's defaults (timm not importable)"
    if args.timm_model:
        try:
            cfg = timm.models.get_pretrained_cfg(args.timm_model)
        except Exception as e:  # noqa: BLE001 (timm raises several types for unknown names)
            raise ConversionError(f"--timm-model {args.timm_model}: {e}") from e
        if cfg is None:
            raise ConversionError(f"--timm-model {args.timm_model}: timm has no pretrained config of that name")
        return timm.data.resolve_data_config({}, pretrained_cfg=cfg.to_dict()), f"timm {args.timm_model}"
    if module is not None and (getattr(module, "pretrained_cfg", None) or getattr(module, "default_cfg", None)):
        return timm.data.resolve_data_config({}, model=module), "the pickled model's pretrained_cfg"
    # A PretrainedCfg with no field set holds timm's defaults.
    data = timm.data.resolve_data_config({}, pretrained_cfg=timm.models.PretrainedCfg().to_dict())
    data.pop("input_size", None)  # a default, not this checkpoint's
    return data, "timm's defaults"


def deit_preprocess_config(args, image_size, module):
    """The classifier's "preprocess": timm's eval transform (shorter side to floor(size / crop_pct),
    centre crop, PIL interpolation, mean/std) from timm's data config, with any explicit
    --resize/--crop-pct/--interpolation/--mean/--std over it."""
    data, source = timm_data_config(args, module)
    if "input_size" in data and tuple(data["input_size"][1:]) != (image_size, image_size):
        raise ConversionError(f"{source} says input size {tuple(data['input_size'])}, but the checkpoint's "
                              f"position embeddings are for {image_size} x {image_size}")
    if (data.get("crop_mode") or "center") != "center" and args.resize is None:
        raise ConversionError(f"{source} uses crop_mode {data['crop_mode']!r}; the format has the centre crop "
                              "only (pass --resize and --crop-pct to choose)")
    interpolation = args.interpolation or data["interpolation"]
    if interpolation not in ("bilinear", "bicubic", "torch_bilinear"):
        raise ConversionError(f"{source} uses {interpolation!r} interpolation; the format has bilinear and "
                              "bicubic (pass --interpolation to choose)")
    resize = args.resize or "shorter_side_then_center_crop"
    pre = {"resize": resize, "interpolation": interpolation}
    if resize == "shorter_side_then_center_crop":
        crop_pct = float(args.crop_pct if args.crop_pct is not None else data.get("crop_pct") or 0.875)
        if not 0 < crop_pct <= 1:
            raise ConversionError(f"crop_pct {crop_pct} from {source} is not in (0, 1]")
        if interpolation == "torch_bilinear":
            raise ConversionError("--interpolation torch_bilinear needs --resize stretch")
        pre["crop_pct"] = crop_pct
    elif args.crop_pct is not None:
        raise ConversionError("--crop-pct applies to --resize shorter_side_then_center_crop only")
    mean = args.mean if args.mean is not None else [float(v) for v in data["mean"]]
    std = args.std if args.std is not None else [float(v) for v in data["std"]]
    if len(mean) != 3 or len(std) != 3:
        raise ConversionError(f"{source} has mean {mean} / std {std}; the format takes 3-channel images")
    if min(std) <= 0:
        raise ConversionError(f"std {std} must be positive")
    pre["mean"], pre["std"] = mean, std
    print(f"deit: preprocess from {source}: " + ", ".join(f"{k} {v}" for k, v in pre.items()))
    return pre


def convert_deit(args):
    what = f"deit {args.checkpoint}"
    modules = []
    sd = load_state_dict(args.checkpoint, args.trust_pickle, modules)
    vit, tensors = vit_tensors(sd, args.num_heads, what)
    head = need(sd, "head.weight", what)
    num_classes = head.shape[0]
    tensors["head.weight"], tensors["head.bias"] = head, need(sd, "head.bias", what)
    if tuple(tensors["head.bias"].shape) != (num_classes,) or head.shape[1] != vit["embed_dim"]:
        raise ConversionError(f"{what}: head.weight {tuple(head.shape)} / head.bias "
                              f"{tuple(tensors['head.bias'].shape)} do not match embed_dim {vit['embed_dim']}")
    config = {"family": "image_classifier", "weights": "model.safetensors", "labels": "labels.txt",
              "num_classes": num_classes, "dtype": args.dtype, "device": args.device, "vit": vit,
              "attention": attention_config(args, vit["depth"], args.delta),
              "preprocess": deit_preprocess_config(args, vit["image_size"], modules[0] if modules else None)}
    labels = read_labels(args.labels, num_classes)
    print(f"deit: embed {vit['embed_dim']}, depth {vit['depth']}, heads {vit['num_heads']}, patch "
          f"{vit['patch_size']}, image {vit['image_size']}, {num_classes} classes")
    write_model_dir(args.out, config, tensors, labels)


# ---------------------------------------------------------------------------------------------
# Segmenter


def convert_segmenter(args):
    what = f"segmenter {args.checkpoint}"
    sd = load_state_dict(args.checkpoint, args.trust_pickle)
    strays = [k for k in sd if not k.startswith(("encoder.", "decoder."))]
    if strays:
        raise ConversionError(f"{what}: tensors outside encoder.*/decoder.*: {', '.join(strays[:8])}")
    vit, enc = vit_tensors(sd, args.num_heads, what, prefix="encoder.")
    # The paper's encoder is its MahalaVisionTransformer, whose LayerNorms default to eps 1e-6
    # (timm's); the original Segmenter's own ViT (rstrudel/segmenter) uses nn.LayerNorm's 1e-5.
    vit["layer_norm_eps"] = args.encoder_eps
    tensors = {"encoder." + k: v for k, v in enc.items()}
    dec = {k: v for k, v in sd.items() if k.startswith("decoder.")}
    dim = vit["embed_dim"]

    if "decoder.head.weight" in dec:
        num_classes = dec["decoder.head.weight"].shape[0]
        decoder = {"type": "linear"}
        expected = {"decoder.head.weight": (num_classes, dim), "decoder.head.bias": (num_classes,)}
    elif "decoder.cls_emb" in dec:
        num_classes, d = dec["decoder.cls_emb"].shape[1], dec["decoder.cls_emb"].shape[2]
        depth = count_blocks(dec, r"decoder\.blocks\.(\d+)\.")
        hidden = need(dec, "decoder.blocks.0.mlp.fc1.weight", what).shape[0]
        # The paper's factory gives the mask transformer d_model // 64 heads.
        heads = args.decoder_heads or d // 64
        if heads < 1 or d % heads:
            raise ConversionError(f"{what}: decoder width {d} does not split into {heads} heads; "
                                  "pass --decoder-heads")
        for i in range(depth):
            qkv, bias = f"decoder.blocks.{i}.attn.qkv.weight", f"decoder.blocks.{i}.attn.qkv.bias"
            if qkv in dec and dec[qkv].shape[0] == 2 * d:
                # The paper's decoder attention projects only keys and values and scores k.k^T;
                # with queries equal to keys, a standard q,k,v block computes the same.
                k_w, v_w = dec[qkv].split(d)
                dec[qkv] = torch.cat([k_w, k_w, v_w])
                if bias in dec:
                    k_b, v_b = dec[bias].split(d)
                    dec[bias] = torch.cat([k_b, k_b, v_b])
                print(f"  {qkv}: key-value projection (k.k^T attention) expanded to q,k,v with q = k")
        decoder = {"type": "mask_transformer", "depth": depth, "embed_dim": d, "num_heads": heads,
                   "mlp_ratio": hidden / d, "layer_norm_eps": args.decoder_eps}
        expected = {"decoder.proj_dec.weight": (d, dim), "decoder.proj_dec.bias": (d,),
                    "decoder.cls_emb": (1, num_classes, d),
                    "decoder.decoder_norm.weight": (d,), "decoder.decoder_norm.bias": (d,),
                    "decoder.proj_patch": (d, d), "decoder.proj_classes": (d, d),
                    "decoder.mask_norm.weight": (num_classes,), "decoder.mask_norm.bias": (num_classes,)}
        for i in range(depth):
            expected.update(block_shapes(f"decoder.blocks.{i}.", d, hidden))
    else:
        raise ConversionError(f"{what}: no decoder.head.weight (linear decoder) nor decoder.cls_emb "
                              "(mask transformer)")
    check_shapes(dec, expected, what)
    tensors.update(dec)

    window = args.window_size or vit["image_size"]
    config = {"family": "segmenter", "weights": "model.safetensors", "labels": "labels.txt",
              "num_classes": num_classes, "dtype": args.dtype, "device": args.device, "vit": vit,
              "attention": attention_config(args, vit["depth"], args.delta), "decoder": decoder,
              "inference": {"window_size": window, "window_stride": args.window_stride or window * 2 // 3},
              "preprocess": preprocess_config(args)}
    labels = read_labels(args.labels, num_classes)
    print(f"segmenter: encoder embed {dim}, depth {vit['depth']}, heads {vit['num_heads']}, patch "
          f"{vit['patch_size']}, image {vit['image_size']}; {decoder['type']} decoder; {num_classes} classes")
    write_model_dir(args.out, config, tensors, labels)


# ---------------------------------------------------------------------------------------------
# Language model


def convert_lm(args):
    what = f"lm {args.checkpoint}"
    sd = load_state_dict(args.checkpoint, args.trust_pickle)
    if args.pre_lnorm:
        # MemTransformerLM(pre_lnorm=True) has no final LayerNorm and computes queries from the
        # un-normalised input (only keys and values see the attention LayerNorm); the format's
        # pre-LN blocks normalise q, k and v alike and end with final_norm.
        raise ConversionError(
            "the paper's pre-LN LM (pre_lnorm=True) cannot be expressed in this format: it has no "
            "final LayerNorm and its queries skip the attention LayerNorm")
    for key, why in (("r_w_bias", "relative positions (attn_type 0)"), ("r_emb", "learned relative positions"),
                     ("crit.cluster_weight", "an adaptive softmax (cutoffs)"),
                     ("word_emb.emb_layers.1.weight", "an adaptive input embedding (div_val > 1)"),
                     ("crit.out_layers.1.weight", "an adaptive softmax (div_val > 1)"),
                     ("word_emb.emb_projs.0", "an embedding projection (d_embed != d_model)"),
                     ("crit.out_projs.0", "an output projection (d_embed != d_model)")):
        if key in sd:
            raise ConversionError(f"{what}: {key} means {why}; only absolute positions (attn_type 2) "
                                  "with a plain vocabulary-sized embedding and softmax convert")
    emb = need(sd, "word_emb.emb_layers.0.weight", what)
    vocab, d = emb.shape
    layers = count_blocks(sd, r"layers\.(\d+)\.")
    if layers == 0:
        raise ConversionError(f"{what}: no layers.0.* tensors")
    inner_qk = need(sd, "layers.0.dec_attn.q_net.weight", what).shape[0]
    heads = args.num_heads
    if inner_qk % heads:
        raise ConversionError(f"{what}: q_net has {inner_qk} outputs, not divisible by {heads} heads")
    head_dim = inner_qk // heads
    d_inner = need(sd, "layers.0.pos_ff.CoreNet.0.weight", what).shape[0]

    renames = {"word_emb.emb_layers.0.weight": "word_emb.weight", "crit.out_layers.0.bias": "out.bias"}
    for i in range(layers):
        a, f = f"layers.{i}.dec_attn.", f"layers.{i}.pos_ff."
        o = f"layers.{i}."
        for n in ("q_net.weight", "kv_net.weight", "o_net.weight", "layer_norm.weight", "layer_norm.bias"):
            renames[a + n] = o + "attn." + n
        for src, dst in (("CoreNet.0", "ff.fc1"), ("CoreNet.3", "ff.fc2"), ("layer_norm", "ff.layer_norm")):
            renames[f"{f}{src}.weight"], renames[f"{f}{src}.bias"] = o + dst + ".weight", o + dst + ".bias"
    tensors, unknown = {}, []
    for name, t in sd.items():
        if name in renames:
            tensors[renames[name]] = t
        elif name not in ("pos_emb.inv_freq", "crit.out_layers.0.weight"):
            unknown.append(name)
    if unknown:
        raise ConversionError(f"{what}: tensors this converter does not know: {', '.join(unknown[:8])}")
    out_w = sd.get("crit.out_layers.0.weight")
    tied = out_w is None or (out_w.shape == emb.shape and torch.equal(out_w, emb))
    if not tied:
        tensors["out.weight"] = out_w
    bias = "out.bias" in tensors

    expected = {"word_emb.weight": (vocab, d)}
    for i in range(layers):
        o = f"layers.{i}."
        expected.update({o + "attn.q_net.weight": (inner_qk, d), o + "attn.kv_net.weight": (2 * inner_qk, d),
                         o + "attn.o_net.weight": (d, inner_qk),
                         o + "attn.layer_norm.weight": (d,), o + "attn.layer_norm.bias": (d,),
                         o + "ff.fc1.weight": (d_inner, d), o + "ff.fc1.bias": (d_inner,),
                         o + "ff.fc2.weight": (d, d_inner), o + "ff.fc2.bias": (d,),
                         o + "ff.layer_norm.weight": (d,), o + "ff.layer_norm.bias": (d,)})
    if not tied:
        expected["out.weight"] = (vocab, d)
    if bias:
        expected["out.bias"] = (vocab,)
    check_shapes(tensors, expected, what)

    order = args.position_order
    scale_mode = args.scale_mode or ("prefix" if order == "ascending" and args.estimator == "mean" else "segment")
    if scale_mode == "prefix" and (order != "ascending" or args.estimator != "mean"):
        raise ConversionError("--scale-mode prefix needs --position-order ascending and --estimator mean")
    attention = attention_config(args, layers, args.delta)
    attention["score_scale"] = args.score_scale
    config = {"family": "language_model", "weights": "model.safetensors", "vocab_size": vocab,
              "dtype": args.dtype, "device": args.device,
              "lm": {"d_model": d, "num_layers": layers, "num_heads": heads, "head_dim": head_dim,
                     "d_inner": d_inner, "norm": "post", "activation": "relu",
                     # Every LayerNorm of MemTransformerLM is nn.LayerNorm's default.
                     "layer_norm_eps": 1e-5, "positions": "sinusoidal", "position_order": order,
                     "max_positions": args.max_positions,
                     # AdaptiveEmbedding multiplies by sqrt(d_proj) = sqrt(d_model).
                     "embed_scale": math.sqrt(d), "tie_embeddings": tied, "output_bias": bias},
              "attention": attention, "generation": {"scale_mode": scale_mode}}
    extra = []
    if args.tokenizer:
        name = os.path.basename(args.tokenizer)
        config["tokenizer"] = name
        extra.append((args.tokenizer, name))
    print(f"lm: vocab {vocab}, d_model {d}, {layers} layers, {heads} heads of {head_dim}, d_inner "
          f"{d_inner}, {'tied' if tied else 'untied'} output, positions {order}, scale_mode {scale_mode}")
    write_model_dir(args.out, config, tensors, extra_files=extra)


# ---------------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, delta, estimator):
        p.add_argument("checkpoint", help=".pth/.pt/.safetensors file")
        p.add_argument("out", help="model directory to write")
        p.add_argument("--attention", choices=["elliptical", "dot_product"], default="elliptical")
        p.add_argument("--estimator", choices=["mean", "median"], default=estimator)
        p.add_argument("--delta", type=float, default=delta, help="divides |v_l - v_{l-1}|; cancels out")
        p.add_argument("--elliptical-layers", help="comma-separated 0-based blocks (default: all but the first)")
        p.add_argument("--dtype", choices=sorted(DTYPES), default="auto",
                      help="served dtype (auto: bfloat16 where the CPU has AMX or on CUDA, else float32); "
                           "auto stores float32, the others store what they serve")
        p.add_argument("--device", default="auto", help="config device: auto, cpu, cuda, cuda:N")
        p.add_argument("--trust-pickle", action="store_true",
                       help="allow checkpoints that are more than tensors (runs code from the file)")

    def vision(p):
        p.add_argument("--labels", help="one label a line (default class_0, class_1, ...)")
        p.add_argument("--num-heads", type=int, help="encoder heads (default: 3/6/12/16 for 192/384/768/1024)")
        p.add_argument("--mean", type=float, nargs=3, metavar=("R", "G", "B"),
                       help="normalisation mean (default: ImageNet's; deit: timm's data config)")
        p.add_argument("--std", type=float, nargs=3, metavar=("R", "G", "B"),
                       help="normalisation std (default: ImageNet's; deit: timm's data config)")

    p = sub.add_parser("deit", help="timm VisionTransformer / DeiT -> image_classifier")
    common(p, delta=5.0, estimator="mean")
    vision(p)
    p.add_argument("--timm-model", help="timm model name (e.g. deit_small_patch16_224) whose pretrained config "
                   "gives the preprocessing (input size, crop_pct, interpolation, mean, std); default: a pickled "
                   "timm model's own pretrained_cfg (--trust-pickle), else timm's defaults")
    p.add_argument("--resize", choices=["stretch", "shorter_side_then_center_crop"],
                   help="override timm's: preprocess.resize (default shorter_side_then_center_crop)")
    p.add_argument("--crop-pct", type=float, help="override timm's crop_pct, in (0, 1]")
    p.add_argument("--interpolation", choices=["bilinear", "bicubic", "torch_bilinear"],
                   help="override timm's interpolation")
    p.set_defaults(func=convert_deit)

    p = sub.add_parser("segmenter", help="the paper's Segmenter -> segmenter")
    common(p, delta=5.0, estimator="mean")  # its factory builds the encoder with median=False
    vision(p)
    p.add_argument("--decoder-heads", type=int, help="mask transformer heads (default: width // 64)")
    p.add_argument("--encoder-eps", type=float, default=1e-6,
                   help="encoder LayerNorm eps: 1e-6 for the paper's encoder, 1e-5 for rstrudel/segmenter's")
    p.add_argument("--decoder-eps", type=float, default=1e-5, help="mask transformer LayerNorm eps")
    p.add_argument("--window-size", type=int, help="sliding window (default: vit image size)")
    p.add_argument("--window-stride", type=int, help="default: two thirds of the window")
    p.set_defaults(func=convert_segmenter)

    p = sub.add_parser("lm", help="the paper's MemTransformerLM (absolute positions) -> language_model")
    common(p, delta=1.0, estimator="mean")
    p.add_argument("--num-heads", type=int, required=True, help="n_head of the trained model")
    p.add_argument("--pre-lnorm", action="store_true", help="the model was trained with pre_lnorm (refused)")
    p.add_argument("--position-order", choices=["ascending", "descending"], default="descending",
                   help="MemTransformerLM counts positions backwards (klen-1 .. 0): descending")
    p.add_argument("--scale-mode", choices=["prefix", "segment"],
                   help="generation.scale_mode (default: prefix where allowed, else segment)")
    p.add_argument("--score-scale", type=float, default=1.0,
                   help="c in elliptical layers; the paper's LM applies none (1.0)")
    p.add_argument("--max-positions", type=int, default=2048)
    p.add_argument("--tokenizer", help="tokenizer file to copy into the model directory")
    p.set_defaults(func=convert_lm)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except ConversionError as e:
        print(f"convert_checkpoint {args.command}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
