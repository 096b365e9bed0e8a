#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/ (checked in).

Run with the project's venv (pillow, numpy, safetensors and the Python client's generated
protos): .venv/bin/python tests/fuzz/make_corpus.py. Seeds are small on purpose: the fuzzers
mutate them, and the whole corpus stays a few tens of KB. Byte 0 of image_decoder, tokenizer and
inference_service seeds is the target's control byte (see each *_fuzz.cc).
"""
import io
import json
import pathlib
import shutil
import struct

import numpy as np
from PIL import Image
from safetensors.numpy import save as save_safetensors

from elliptical_client._generated.elliptical.v1 import (classify_pb2, generate_pb2, image_pb2,
                                                        models_pb2, segment_pb2)

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fuzz" / "corpus"


def write(target, name, data):
    path = OUT / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def encoded(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def images():
    rng = np.random.default_rng(7)
    rgb = Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8), "RGB")
    grey = Image.fromarray(rng.integers(0, 256, (4, 7), dtype=np.uint8), "L")
    yield "rgb.png", encoded(rgb, "PNG")
    yield "grey.png", encoded(grey, "PNG")
    yield "grey-alpha.png", encoded(grey.convert("LA"), "PNG")
    yield "rgba.png", encoded(rgb.convert("RGBA"), "PNG")
    yield "palette.png", encoded(rgb.convert("P"), "PNG")
    grey16 = Image.fromarray(rng.integers(0, 65535, (3, 3), dtype=np.uint16))
    yield "grey16.png", encoded(grey16, "PNG")
    yield "rgb.jpg", encoded(rgb.resize((16, 16)), "JPEG", quality=80)
    yield "grey.jpg", encoded(grey.resize((9, 9)), "JPEG", quality=60)
    yield "progressive.jpg", encoded(rgb.resize((17, 11)), "JPEG", progressive=True, quality=70)
    yield "subsampled.jpg", encoded(rgb.resize((13, 8)), "JPEG", subsampling=2, quality=50)
    yield "cmyk.jpg", encoded(rgb.resize((9, 7)).convert("CMYK"), "JPEG", quality=70)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    yield "exif.jpg", encoded(rgb.resize((8, 8)), "JPEG", quality=60, exif=exif.tobytes())
    # Restart markers every MCU: the decoder's resynchronisation paths.
    yield "restarts.jpg", encoded(rgb.resize((24, 16)), "JPEG", quality=60, restart_marker_blocks=1)
    yield "one-bit.png", encoded(grey.convert("1"), "PNG")
    yield "palette-trns.png", encoded(rgb.convert("P"), "PNG", transparency=0)
    yield "lossless.webp", encoded(rgb, "WEBP", lossless=True)
    yield "lossy.webp", encoded(rgb.resize((12, 10)), "WEBP", quality=50)
    yield "alpha.webp", encoded(rgb.convert("RGBA"), "WEBP", quality=50)


def image_decoder():
    for name, data in images():
        write("image_decoder", name, b"\x00" + data)
    write("image_decoder", "digit-3.png", b"\x00" + (ROOT / "docs/examples/digit-3.png").read_bytes())
    # Raw pixels, geometry from the mode byte: 3 channels (mode & 3 == 2), width 4 (bits 2-5 = 3).
    write("image_decoder", "raw-matching", bytes([0x80 | (3 << 2) | 2]) + bytes(range(48)))
    # Raw pixels, geometry as three uint32: 2x2x4, then 3x1x1 with a wrong byte count.
    write("image_decoder", "raw-explicit", b"\xc0" + struct.pack("<3I", 2, 2, 4) + bytes(range(16)))
    write("image_decoder", "raw-short", b"\xc0" + struct.pack("<3I", 3, 1, 1) + b"\x01\x02")


def safetensors():
    write("safetensors", "small.safetensors", save_safetensors({
        "weight": np.arange(6, dtype=np.float32).reshape(2, 3),
        "bias": np.array([1, -2], dtype=np.int64),
        "mask": np.array([True, False, True]),
        "bytes": np.zeros((0, 4), dtype=np.uint8),
    }, metadata={"format": "pt"}))
    write("safetensors", "half.safetensors", save_safetensors({
        "h": np.ones((1, 2, 2), dtype=np.float16), "d": np.array(3.5, dtype=np.float64),
        "i": np.array([7], dtype=np.int32)}))
    # A BF16 tensor written by hand (numpy has no bfloat16).
    header = json.dumps({"b": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}).encode()
    write("safetensors", "bf16.safetensors", struct.pack("<Q", len(header)) + header + b"\x80\x3f\x00\x40")


def model_config():
    for config in sorted(ROOT.glob("models/*/config.json")):
        shutil.copy(config, OUT / "model_config" / f"{config.parent.name}.json")
    # Variants the shipped models do not use: a mask-transformer segmenter, a pre-LN LM with
    # learned descending positions, every serving section.
    seg = json.loads((ROOT / "models/digit-scenes-segmenter/config.json").read_text())
    seg["decoder"] = {"type": "mask_transformer", "depth": 1, "embed_dim": 96, "num_heads": 4,
                      "mlp_ratio": 2.0, "layer_norm_eps": 1e-6}
    seg["num_classes"] = 10
    seg["batching"] = {"max_batch_size": 4, "max_queue_delay_ms": 0.5, "max_queue_size": 8,
                       "low_priority_max_wait_ms": 10}
    seg["instances"] = {"count": 2, "threads": 1}
    (OUT / "model_config" / "mask-transformer.json").write_text(json.dumps(seg))
    lm = json.loads((ROOT / "models/kjv-lm/config.json").read_text())
    lm["lm"].update({"norm": "pre", "activation": "gelu", "positions": "learned",
                     "position_order": "descending"})
    lm["attention"].update({"estimator": "median", "elliptical_layers": [1, 3]})
    lm["generation"] = {"scale_mode": "segment", "max_running": 2, "max_waiting": 4,
                        "max_cache_mb": 1.5, "default_max_new_tokens": 2, "max_new_tokens_limit": 3}
    (OUT / "model_config" / "lm-variant.json").write_text(json.dumps(lm))


def tokenizer():
    def seed(name, stops, prompt):
        stop_bytes = stops.encode()
        write("tokenizer", name, bytes([len(stop_bytes)]) + stop_bytes + prompt.encode())
    seed("prompt", "", "And God said unto Moses, I AM THAT I AM")
    seed("stops", "\n.\nLORD", "In the beginning God created the heaven and the earth. And the LORD")
    seed("unicode", "é", "Ésaïe — « Consolez mon peuple » 主 ☃ \u200b tab\there")
    write("tokenizer", "invalid-utf8", b"\x02\xe2\x82" + b"caf\xc3 \xff\xfe verse")


def inference_service():
    digit = (ROOT / "docs/examples/digit-7.png").read_bytes()
    scene = (ROOT / "docs/examples/scene-0.png").read_bytes()
    raw = image_pb2.Image(raw=image_pb2.RawImage(width_px=8, height_px=8, channels=1, pixels=bytes(64)))

    def seed(name, method, message, control=0):
        write("inference_service", name, bytes([method | control]) + message.SerializeToString())
    seed("classify", 0, classify_pb2.ClassifyRequest(
        model_name="vit", images=[image_pb2.Image(encoded=digit), raw], top_k=3,
        return_attention_stats=True, priority=3))
    seed("classify-wrong-family", 0, classify_pb2.ClassifyRequest(model_name="seg", images=[raw]))
    seed("segment", 1, segment_pb2.SegmentRequest(model_name="seg", images=[image_pb2.Image(encoded=scene)]))
    seed("segment-stats", 1, segment_pb2.SegmentRequest(model_name="seg", images=[raw],
                                                       return_attention_stats=True, priority=1))
    seed("generate", 2, generate_pb2.GenerateRequest(
        model_name="lm", prompt="And God said", max_new_tokens=6, temperature=0.8, top_k=20,
        top_p=0.9, seed=9, stop=[".", "\n"]))
    seed("generate-cancel", 2, generate_pb2.GenerateRequest(model_name="lm", prompt="In the beginning"),
         control=8)
    seed("generate-short-deadline", 2, generate_pb2.GenerateRequest(model_name="lm", prompt="Amen"),
         control=16)
    seed("metadata", 3, models_pb2.GetModelMetadataRequest(model_name="lm"))
    seed("list", 4, models_pb2.ListModelsRequest())


if __name__ == "__main__":
    # Only the folders made here are rewritten; http_request/ is written by hand. So is
    # model_config/timm-deit-crop.json: rerunning this drops it (restore it from git).
    for make in (image_decoder, safetensors, model_config, tokenizer, inference_service):
        shutil.rmtree(OUT / make.__name__, ignore_errors=True)
        (OUT / make.__name__).mkdir(parents=True, exist_ok=True)
        make()
    files = [p for p in OUT.rglob("*") if p.is_file()]
    print(f"{len(files)} seeds, {sum(p.stat().st_size for p in files)} bytes in {OUT}")
