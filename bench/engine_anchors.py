#!/usr/bin/env python3
"""Optional anchors for bench/run_cpu_speed_bench.sh: the DeiT-Tiny 224 elliptical forward
(training/nets.py, random weights) exported to ONNX and run by OpenVINO (float32 and bf16
inference precision) and ONNX Runtime (float32), images/s at each thread count and batch size.

Each engine runs only when its Python package is installed (pip install openvino onnxruntime
onnx onnxscript); without any, this prints why and exits 1, and the benchmark goes on without
the anchors. Writes a JSON list of rows like bench/model_forward's results.

    .venv/bin/python bench/engine_anchors.py --threads 1,2 --batches 1,8 --out anchors.json
"""
import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "training"))

DEIT_TINY = {"image_size": 224, "patch_size": 16, "in_channels": 3, "embed_dim": 192, "depth": 12,
             "num_heads": 3, "mlp_ratio": 4.0, "layer_norm_eps": 1e-6}


def export(path):
    import torch
    import nets
    torch.manual_seed(0)
    net = nets.VisionTransformer(DEIT_TINY, "elliptical", 1000).eval()
    x = torch.randn(1, 3, 224, 224)
    torch.onnx.export(net, (x,), path, input_names=["images"], output_names=["logits"],
                      dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)


def interleaved(cases, seconds):
    """Runs every case once in turn (A B C A B C ...) until each has run `seconds` in all, so the
    noise of a shared machine falls on all alike. -> one result dict per case."""
    for _, run in cases:
        run()
        run()
    times = [[] for _ in cases]
    while min(sum(t) for t in times) < seconds or min(len(t) for t in times) < 3:
        for i, (_, run) in enumerate(cases):
            start = time.perf_counter()
            run()
            times[i].append(time.perf_counter() - start)
    out = []
    for (meta, _), t in zip(cases, times):
        t.sort()
        median = t[len(t) // 2]
        out.append({**meta, "median_seconds": median, "items_per_second": meta["batch"] / median,
                    "iterations": len(t)})
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    have = {name: importlib.util.find_spec(name) is not None for name in ("openvino", "onnxruntime", "onnx")}
    if not have["onnx"] or not (have["openvino"] or have["onnxruntime"]):
        print(f"[anchors] skipped: needs onnx and openvino or onnxruntime installed ({have})", file=sys.stderr)
        return 1
    import numpy as np
    threads = [int(t) for t in args.threads.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "deit_tiny.onnx")
        export(path)
        for t in threads:
            engines = []
            if have["openvino"]:
                import openvino as ov
                core = ov.Core()
                for precision in ("f32", "bf16"):
                    compiled = core.compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": t,
                                                                "INFERENCE_PRECISION_HINT": precision})
                    engines.append((f"openvino_{precision}", lambda x, c=compiled: c(x)))
            if have["onnxruntime"]:
                import onnxruntime as ort
                options = ort.SessionOptions()
                options.intra_op_num_threads = t
                options.inter_op_num_threads = 1
                session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
                engines.append(("onnxruntime_f32", lambda x, s=session: s.run(None, {"images": x})))
            for name, run in engines:
                for b in batches:
                    x = np.random.default_rng(0).standard_normal((b, 3, 224, 224)).astype(np.float32)
                    cases.append(({"engine": name, "threads": t, "batch": b, "model": "deit_tiny"},
                                  lambda run=run, x=x: run(x)))
        rows = interleaved(cases, args.seconds)
    for r in rows:
        print(f"[anchors] {r['engine']} {r['threads']} threads batch {r['batch']}: "
              f"{r['items_per_second']:.1f} images/s", file=sys.stderr)
    with open(args.out, "w") as f:
        json.dump(rows, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
