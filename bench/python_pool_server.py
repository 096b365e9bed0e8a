#!/usr/bin/env python3
"""The Python baseline of bench/run_core_bench.sh: elliptical.v1 Classify served by grpcio in
front of a pool of single-threaded worker processes running bench/python_eager.py's
VisionTransformer on a model directory's weights (the way TorchServe, LitServe or KServe run
CPU workers: one process per core, no batching).

    python bench/python_pool_server.py --model-dir DIR --port 0 --port-file F --workers 2
"""
import argparse
import concurrent.futures
import io
import json
import multiprocessing
import os
import sys

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

_model = None
_config = None


def _init_worker(model_dir):
    global _model, _config
    import torch
    from safetensors.torch import load_file
    import python_eager

    torch.set_num_threads(1)
    _config = json.load(open(os.path.join(model_dir, "config.json")))
    v = _config["vit"]
    model = python_eager.VisionTransformer(image_size=v["image_size"], patch=v["patch_size"],
                                           dim=v["embed_dim"], depth=v["depth"], heads=v["num_heads"],
                                           mlp_ratio=v["mlp_ratio"], num_classes=_config["num_classes"])
    missing, unexpected = model.load_state_dict(load_file(os.path.join(model_dir, _config["weights"])),
                                                strict=False)
    if missing or unexpected:
        raise SystemExit(f"weights do not match the baseline model: missing {missing}, unexpected {unexpected}")
    _model = model.eval()


def _classify(encoded):
    import numpy as np
    import torch
    from PIL import Image

    size = _config["vit"]["image_size"]
    image = Image.open(io.BytesIO(encoded)).convert("RGB").resize((size, size), Image.BILINEAR)
    pre = _config.get("preprocess", {})
    mean = np.array(pre.get("mean", [0.485, 0.456, 0.406]), dtype=np.float32)
    std = np.array(pre.get("std", [0.229, 0.224, 0.225]), dtype=np.float32)
    x = (np.asarray(image, dtype=np.float32) / 255.0 - mean) / std
    with torch.inference_mode():
        probs = torch.softmax(_model(torch.from_numpy(x).permute(2, 0, 1).unsqueeze(0)), -1)[0]
    top = torch.topk(probs, 5)
    return [(int(i), float(p)) for p, i in zip(top.values, top.indices)]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", required=True)
    p.add_argument("--model-name", default="classifier")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", default="")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()

    from elliptical_client._generated.elliptical.v1 import classify_pb2, inference_service_pb2_grpc

    pool = concurrent.futures.ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn"),
                                                  initializer=_init_worker, initargs=(args.model_dir,))
    # Start every worker (and fail early on bad weights) before taking calls.
    list(pool.map(_init_worker_probe, range(args.workers)))

    class Servicer(inference_service_pb2_grpc.InferenceServiceServicer):
        def Classify(self, request, context):
            if request.model_name != args.model_name or len(request.images) != 1:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "one image for the served model")
            top = pool.submit(_classify, request.images[0].encoded).result()
            response = classify_pb2.ClassifyResponse(model_name=request.model_name)
            out = response.classifications.add()
            for i, prob in top:
                out.classes.add(class_id=i, probability=prob)
            return response

    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=128))
    inference_service_pb2_grpc.add_InferenceServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    if args.port_file:
        with open(args.port_file, "w") as f:
            f.write(f"{port}\n")
    print(f"python pool server on 127.0.0.1:{port} with {args.workers} workers", file=sys.stderr, flush=True)
    server.wait_for_termination()


def _init_worker_probe(_):
    return os.getpid()


if __name__ == "__main__":
    main()
