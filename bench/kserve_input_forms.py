#!/usr/bin/env python3
"""The KServe v2 input forms side by side: the same digits through `image` (PNG bytes: the server
decodes, resizes and normalises), `pixels` (UINT8: the server resizes and normalises) and `tensor`
(FP32, the client's own preprocessing: the server only checks and copies it), over gRPC with
tritonclient, one request at a time (closed loop, one client), so the latency is the server's
path plus the model. The forms run interleaved, request by request, in one server, so the noise
of a shared machine falls on all of them alike; the result is each form's median latency and
its ratio to the image form's, with the machine (bench/machine.py) beside it.

    .venv-clients/bin/python bench/kserve_input_forms.py --server-binary build/server/elliptical-server \
        --reference-python .venv/bin/python [--rounds 300] [--batch "1 8"] [--dtype float32]

Prints one JSON line per (batch, form) and a summary table; writes nothing else. Runs the shipped
digits-vit from models/ (three copies, one per input_form; the metadata each lists is the input
sent, as a generic client would send it).
"""
import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import tritonclient.grpc as grpcclient

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
from machine import machine  # noqa: E402
from server import start_server, stop_server  # noqa: E402

# The generic-client test's repository and client-side preprocessing (one definition of both).
_spec = importlib.util.spec_from_file_location(
    "generic", os.path.join(ROOT, "tests", "integration", "kserve_generic_client_test.py"))
generic = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(generic)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-binary", required=True)
    p.add_argument("--reference-python", required=True, help="the project's Python (torch, Pillow)")
    p.add_argument("--rounds", type=int, default=300, help="requests per form and batch size")
    p.add_argument("--batch", default="1 8", help="images per request")
    p.add_argument("--dtype", default="float32")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="kserve_forms_")
    repo = generic.make_repository(work)
    ref_path = os.path.join(work, "reference.npz")
    subprocess.run([args.reference_python, "-c", generic.REFERENCE, ref_path, os.path.join(repo, "digits-image"),
                    os.path.join(repo, "scenes-image"), generic.SCENE, *generic.DIGITS], check=True)
    ref = dict(np.load(ref_path))
    server, address = start_server(args.server_binary, repo, work, f"--dtype={args.dtype}")
    rows = []
    try:
        client = grpcclient.InferenceServerClient(url=address)
        generic.wait_ready(client)
        for n in [int(b) for b in args.batch.split()]:
            pngs = [open(generic.DIGITS[i % 10], "rb").read() for i in range(n)]
            sample = generic.Sample(pngs, ref["pixels"][np.arange(n) % 10], ref["tensors"][np.arange(n) % 10])
            requests = {}
            for form in generic.FORMS:
                t = client.get_model_metadata(f"digits-{form}", as_json=True)["inputs"][0]
                data = sample.data(t["datatype"])
                inp = grpcclient.InferInput(t["name"], list(data.shape), t["datatype"])
                inp.set_data_from_numpy(data)
                requests[form] = inp
            out = [grpcclient.InferRequestedOutput("top_classes")]
            latencies = {form: [] for form in generic.FORMS}
            for r in range(args.rounds + 20):  # the first 20 rounds warm up
                for form in generic.FORMS:
                    start = time.perf_counter()
                    client.infer(f"digits-{form}", [requests[form]], outputs=out)
                    if r >= 20:
                        latencies[form].append(time.perf_counter() - start)
            base = statistics.median(latencies["image"])
            for form in generic.FORMS:
                median = statistics.median(latencies[form])
                rows.append({"batch": n, "form": form, "median_ms": round(median * 1e3, 3),
                             "p90_ms": round(float(np.percentile(latencies[form], 90)) * 1e3, 3),
                             "vs_image": round(median / base, 3), "rounds": args.rounds})
        client.close()
    finally:
        stop_server(server)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"machine": machine(), "dtype": args.dtype}))
    for row in rows:
        print(json.dumps(row))
    print("\n| images/request | form | median ms | p90 ms | median / image form's |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['batch']} | {row['form']} | {row['median_ms']} | {row['p90_ms']} | {row['vs_image']} |")


if __name__ == "__main__":
    main()
