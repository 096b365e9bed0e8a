#!/usr/bin/env python3
"""A generic Open Inference Protocol (KServe v2) client, as generic tools are: it reads a model's
metadata, builds one input for every input listed there (its name, datatype and shape, the -1
dimensions filled from the data) and sends the request, with tritonclient.grpc and
tritonclient.http. It must classify (and segment) with each input form a model can be configured
to list (config.json "input_form": image, pixels, tensor), over both transports.

The tensor form carries the client's own preprocessing. The reference for it is the image form:
the tensor a client computes with the model's documented preprocessing (config.json's size,
resize, mean and std, in PyTorch from the project's venv) must give the probabilities the server
gives for the PNG it came from, within a float32 tolerance.

    .venv-clients/bin/python tests/integration/kserve_generic_client_test.py \
        --server-binary build/server/elliptical-server --reference-python .venv/bin/python
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import ml_dtypes
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(HERE, "..", "support"))
import checks  # noqa: E402
from checks import check, expect_error, wait_for  # noqa: E402
from server import read_port, start_server, stop_server  # noqa: E402

FORMS = ("image", "pixels", "tensor")
DIGITS = [os.path.join(SOURCE_DIR, "docs", "examples", f"digit-{i}.png") for i in range(10)]
SCENE = os.path.join(SOURCE_DIR, "docs", "examples", "scene-0.png")

# Run in the project's venv (PyTorch, Pillow): the pixels and the preprocessed tensors a client
# makes of the images, following each model's config.json as docs/model-config.md describes the
# preprocessing, and a bound on the classifier's logits (for the tolerance below).
REFERENCE = r"""
import json, sys
import numpy as np, torch, torch.nn.functional as F
from PIL import Image
from safetensors.numpy import load_file
out_path, classifier_dir, segmenter_dir, scene, *digits = sys.argv[1:]

def rgb(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)

def normalise(t, pre):
    mean = torch.tensor(pre["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(pre["std"], dtype=torch.float32).view(1, 3, 1, 1)
    return (t - mean) / std

def to_unit(pixels):  # (H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1]
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).unsqueeze(0).to(torch.float32).div_(255.0)

vit = json.load(open(classifier_dir + "/config.json"))
seg = json.load(open(segmenter_dir + "/config.json"))
size = vit["vit"]["image_size"]
# The classifier's default resize (no "resize" key): a stretch to size x size with bilinear
# interpolation, antialiased, on the [0, 1] floats.
assert set(vit["preprocess"]) == {"mean", "std"}, vit["preprocess"]
pixels = np.stack([rgb(p) for p in digits])
tensors = []
for p in pixels:
    t = to_unit(p)
    if t.shape[2:] != (size, size):
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    tensors.append(normalise(t, vit["preprocess"]))
# The segmenter keeps the image's size: normalisation only.
scene_pixels = rgb(scene)[None]
scene_tensor = normalise(to_unit(scene_pixels[0]), seg["preprocess"])

# |logit| <= sum_j |W_ij| (|gamma_j| sqrt(D - 1) + |beta_j|) + |b_i|: the head reads the final
# LayerNorm, whose normalised values (zero mean, mean square at most 1) are at most sqrt(D - 1).
w = load_file(classifier_dir + "/model.safetensors")
d = w["norm.weight"].shape[0]
h = np.abs(w["norm.weight"]) * np.sqrt(d - 1) + np.abs(w["norm.bias"])
logit_bound = float((np.abs(w["head.weight"]) @ h + np.abs(w["head.bias"])).max())
np.savez(out_path, pixels=pixels, tensors=torch.cat(tensors).numpy(), scene_pixels=scene_pixels,
         scene_tensor=scene_tensor.numpy(), logit_bound=np.array(logit_bound))
"""

# Tolerance. The image request and the tensor request run the same float32 network (the server
# runs with --dtype=float32) on input tensors that differ at most by the rounding of the
# preprocessing done twice (the server's LibTorch and the client's PyTorch: the same operations,
# so at most an ulp or so of each element, below the error of one reduction). As in
# tests/support/float32_tolerance.h: each of R sequential reductions of length at most n adds a
# relative error of at most lambda * sqrt(n) * u (u = 2^-24, lambda = 4), R = 10 per block with
# the embedding and the head as one block more, doubled for two evaluations: the logits agree to
# LOGIT_TOL * max(1, |logit|). Softmax's Jacobian has infinity norm at most 1/2, so a probability
# moves by at most half the largest logit error, plus a few ulps of the softmax itself.
U, LAMBDA = 2.0 ** -24, 4.0


def probability_tolerance(config, logit_bound):
    v = config["vit"]
    longest = max(v["embed_dim"], int(v["mlp_ratio"] * v["embed_dim"]), 1 + (v["image_size"] // v["patch_size"]) ** 2)
    logit_tol = 2 * (v["depth"] + 1) * 10 * LAMBDA * math.sqrt(longest) * U
    return 0.5 * logit_tol * max(1.0, logit_bound) + 8 * U


def make_repository(work):
    """Every form of the shipped digits classifier and scenes segmenter; image is the default
    (no key). A model with a misspelled form, which must fail to load with a clear reason."""
    repo = os.path.join(work, "models")
    for base, source in (("digits", "digits-vit"), ("scenes", "digit-scenes-segmenter")):
        for form in FORMS:
            target = os.path.join(repo, f"{base}-{form}")
            shutil.copytree(os.path.join(SOURCE_DIR, "models", source), target)
            config_path = os.path.join(target, "config.json")
            config = json.load(open(config_path))
            if form != "image":
                config["input_form"] = form
            json.dump(config, open(config_path, "w"), indent=2)
    bad = os.path.join(repo, "digits-bad-form")
    shutil.copytree(os.path.join(repo, "digits-tensor"), bad)
    config = json.load(open(os.path.join(bad, "config.json")))
    config["input_form"] = "nchw"
    json.dump(config, open(os.path.join(bad, "config.json"), "w"))
    return repo


def wait_ready(client, seconds=120):
    wait_for(client.is_server_ready, "the server ready", seconds, retry_on=(InferenceServerException,))

def metadata(client, mod, model):
    return client.get_model_metadata(model, as_json=True) if mod is grpcclient else client.get_model_metadata(model)


class Sample:
    """What a client has of its images, in each datatype a metadata entry may ask for."""

    def __init__(self, pngs, pixels, tensor):
        self.pngs, self.pixels, self.tensor = pngs, pixels, tensor

    def data(self, datatype):
        return {"BYTES": lambda: np.array(self.pngs, dtype=np.object_),
                "UINT8": lambda: self.pixels,
                "FP32": lambda: self.tensor.astype(np.float32),
                "FP16": lambda: self.tensor.astype(np.float16),
                "BF16": lambda: self.tensor.astype(ml_dtypes.bfloat16)}[datatype]()


def generic_infer(client, mod, model, sample, binary=True):
    """Builds the request from the metadata alone: every listed input, every listed output.
    -> {output name: array}."""
    meta = metadata(client, mod, model)
    inputs = []
    for t in meta["inputs"]:
        data = sample.data(t["datatype"])
        shape = [int(d) for d in t["shape"]]
        check(len(shape) == data.ndim and all(d in (-1, s) for d, s in zip(shape, data.shape)),
              f"{model}: the metadata's {t['name']} {t['datatype']} {shape} fits the client's data {list(data.shape)}")
        inp = mod.InferInput(t["name"], list(data.shape), t["datatype"])
        if mod is httpclient:
            inp.set_data_from_numpy(data, binary_data=binary)
        else:
            inp.set_data_from_numpy(data)
        inputs.append(inp)
    outputs = [mod.InferRequestedOutput(o["name"], **({} if mod is grpcclient else {"binary_data": binary}))
               for o in meta["outputs"]]
    result = client.infer(model, inputs, outputs=outputs)
    return {o["name"]: result.as_numpy(o["name"]) for o in meta["outputs"]}


def infer_named(client, mod, model, name, data, datatype, output):
    inp = mod.InferInput(name, list(data.shape), datatype)
    inp.set_data_from_numpy(data)
    return client.infer(model, [inp], outputs=[mod.InferRequestedOutput(output)]).as_numpy(output)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-binary", required=True)
    p.add_argument("--reference-python", required=True, help="the project's Python, with torch and Pillow")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="kserve_generic_")
    repo = make_repository(work)
    reference = os.path.join(work, "reference.npz")
    subprocess.run([args.reference_python, "-c", REFERENCE, reference, os.path.join(repo, "digits-image"),
                    os.path.join(repo, "scenes-image"), SCENE, *DIGITS], check=True)
    http_port_file = os.path.join(work, "http_port")
    # float32 whatever the CPU ("auto" picks bfloat16 on AMX): the tolerance is a float32 one.
    server, address = start_server(args.server_binary, repo, work, "--dtype=float32", "--http_port=0",
                                   f"--http_port_file={http_port_file}")
    try:
        run(address, read_port(http_port_file), dict(np.load(reference)), repo)
    finally:
        code = stop_server(server)
        if code != 0:
            print(open(os.path.join(work, "server.log")).read()[-4000:])
        shutil.rmtree(work, ignore_errors=True)
    check(code == 0, "server exits 0 on SIGTERM")
    print(f"{checks.passed} checks passed")


def run(address, http_port, ref, repo):
    g = grpcclient.InferenceServerClient(url=address)
    h = httpclient.InferenceServerClient(url=f"127.0.0.1:{http_port}")
    wait_ready(g)
    config = json.load(open(os.path.join(repo, "digits-image", "config.json")))
    size = config["vit"]["image_size"]
    tol = probability_tolerance(config, float(ref["logit_bound"]))
    digits = Sample([open(p, "rb").read() for p in DIGITS], ref["pixels"], ref["tensors"])
    scene = Sample([open(SCENE, "rb").read()], ref["scene_pixels"], ref["scene_tensor"])
    transports = (("grpc", g, grpcclient), ("http", h, httpclient))

    # --- metadata: exactly the one input the configured form names ---
    want_inputs = {"image": [("image", "BYTES", [-1])], "pixels": [("pixels", "UINT8", [-1, -1, -1, -1])],
                   "tensor": [("tensor", "FP32", [-1, 3, size, size])]}
    for name, c, mod in transports:
        for form in FORMS:
            for base, tensor_shape in (("digits", [-1, 3, size, size]), ("scenes", [-1, 3, -1, -1])):
                meta = metadata(c, mod, f"{base}-{form}")
                got = [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in meta["inputs"]]
                want = want_inputs[form] if form != "tensor" else [("tensor", "FP32", tensor_shape)]
                check(got == want, f"{name}: {base}-{form} metadata lists exactly {want}: {got}")

    # --- the reference: the PNGs through the default (image) form over gRPC ---
    image_probs = generic_infer(g, grpcclient, "digits-image", digits)["probabilities"]
    labels = [int(x) for x in np.argmax(image_probs, axis=1)]
    check(labels == list(range(10)), f"digits-image classifies the ten example digits as 0..9: {labels}")
    image_mask = generic_infer(g, grpcclient, "scenes-image", scene)["mask"]
    check(image_mask.shape == (1,) + ref["scene_pixels"].shape[1:3] and len(np.unique(image_mask)) > 1,
          f"scenes-image segments the example scene into several classes {np.unique(image_mask).tolist()}")

    # --- every form, both transports (HTTP binary and JSON), built from the metadata only ---
    for name, c, mod in transports:
        for binary in ((True, False) if mod is httpclient else (True,)):
            how = f"{name}{'' if mod is grpcclient else (' binary' if binary else ' JSON')}"
            for form in FORMS:
                if not binary and form == "image":
                    continue  # a PNG is no JSON string: BYTES of binary files need the binary extension
                out = generic_infer(c, mod, f"digits-{form}", digits, binary)
                probs = out["probabilities"]
                gap = float(np.abs(probs - image_probs).max())
                check(probs.shape == image_probs.shape and gap <= tol,
                      f"{how}: digits-{form} gives the image form's probabilities (max gap {gap:.2e}, "
                      f"tolerance {tol:.2e})")
                top = [int(r[0]) for r in out["top_classes"]]
                check(top == list(range(10)), f"{how}: digits-{form} top classes {top}")
                mask = generic_infer(c, mod, f"scenes-{form}", scene, binary)["mask"]
                # The segmenter's only preprocessing is the normalisation, the same float32
                # operations on both sides: the same input bits, the same classes.
                check(np.array_equal(mask, image_mask), f"{how}: scenes-{form} mask equals the image form's "
                      f"({int((mask != image_mask).sum())} pixels differ)")

    # --- FP16 and BF16 are accepted by name: the same values as FP32 give the same answer ---
    for name, c, mod in transports:
        for datatype, np_type in (("FP16", np.float16), ("BF16", ml_dtypes.bfloat16)):
            rounded = ref["tensors"].astype(np_type)
            low = infer_named(c, mod, "digits-tensor", "tensor", rounded, datatype, "probabilities")
            full = infer_named(c, mod, "digits-tensor", "tensor", rounded.astype(np.float32), "FP32", "probabilities")
            gap = float(np.abs(low - full).max())
            check(gap <= tol, f"{name}: tensor {datatype} equals FP32 of the same values (max gap {gap:.2e})")

    # --- the other forms stay accepted by name, whatever the metadata lists ---
    for name, c, mod in transports:
        probs = infer_named(c, mod, "digits-tensor", "image", digits.data("BYTES"), "BYTES", "probabilities")
        check(float(np.abs(probs - image_probs).max()) <= tol, f"{name}: digits-tensor still takes image")
        probs = infer_named(c, mod, "digits-image", "tensor", digits.data("FP32"), "FP32", "probabilities")
        check(float(np.abs(probs - image_probs).max()) <= tol, f"{name}: digits-image still takes tensor")
        probs = infer_named(c, mod, "digits-image", "pixels", digits.data("UINT8"), "UINT8", "probabilities")
        check(float(np.abs(probs - image_probs).max()) <= tol, f"{name}: digits-image still takes pixels")

    # --- refusals name the input and the limit ---
    for name, c, mod in transports:
        invalid = "INVALID_ARGUMENT" if mod is grpcclient else "400"
        nan = ref["tensors"][:2].copy()
        nan[1, 2, 5, 7] = np.nan
        expect_error(lambda: infer_named(c, mod, "digits-tensor", "tensor", nan, "FP32", "probabilities"), invalid,
                     f'input "tensor": element {3 * size * size + 2 * size * size + 5 * size + 7} is not finite',
                     f"{name}: a NaN in the tensor")
        small = np.zeros((1, 3, size - 4, size - 4), dtype=np.float32)
        expect_error(lambda: infer_named(c, mod, "digits-tensor", "tensor", small, "FP32", "probabilities"), invalid,
                     f"is not [-1, 3, {size}, {size}]", f"{name}: a tensor of another size")
        nhwc = np.zeros((1, size, size, 3), dtype=np.float32)
        expect_error(lambda: infer_named(c, mod, "digits-tensor", "tensor", nhwc, "FP32", "probabilities"), invalid,
                     f"is not [-1, 3, {size}, {size}]", f"{name}: an NHWC tensor")
        doubles = ref["tensors"][:1].astype(np.float64)
        expect_error(lambda: infer_named(c, mod, "digits-tensor", "tensor", doubles, "FP64", "probabilities"), invalid,
                     "not FP32, FP16 or BF16", f"{name}: an FP64 tensor")
        # A client that fills two inputs (what the old two-input metadata led generic clients to).
        both = [mod.InferInput("image", [1], "BYTES"), mod.InferInput("tensor", [1, 3, size, size], "FP32")]
        both[0].set_data_from_numpy(digits.data("BYTES")[:1])
        both[1].set_data_from_numpy(digits.data("FP32")[:1])
        expect_error(lambda: c.infer("digits-tensor", both), invalid, "exactly one input",
                     f"{name}: two inputs, naming the accepted ones")
        unavailable = "UNAVAILABLE" if mod is grpcclient else "503"
        expect_error(lambda: infer_named(c, mod, "digits-bad-form", "image", digits.data("BYTES"), "BYTES",
                                         "probabilities"),
                     unavailable, '"input_form" must be "image", "pixels" or "tensor", not "nchw"',
                     f"{name}: an unknown input_form fails the model's load with the allowed values")
    g.close()
    h.close()


if __name__ == "__main__":
    main()
