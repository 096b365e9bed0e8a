#!/usr/bin/env python3
"""The Open Inference Protocol (KServe v2) against the real server, through Triton's stock clients:
tritonclient.grpc and tritonclient.http (run with the protocol-clients venv), and curl for the REST
examples of docs/protocols/kserve.md. The answers are compared with the server's elliptical.v1
answers for the same images (the project's Python client, run in the project's venv), and the
metrics must count the calls under protocol="kserve_grpc" / "kserve_http".

    .venv-clients/bin/python tests/integration/kserve_test.py \
        --server-binary build/server/elliptical-server --fixtures build/fixtures \
        --reference-python .venv/bin/python
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import checks  # noqa: E402
from checks import check, expect_error, wait_for  # noqa: E402
from server import fixture_repository, read_port, start_server, stop_server  # noqa: E402

SOURCE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

# Run in the project's venv: the elliptical.v1 answers (and the decoded pixels) for the same images.
REFERENCE = r"""
import json, sys
from PIL import Image
from elliptical_client import Client
address, classify_paths, segment_path = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
client = Client(address, timeout_s=60)
client.wait_until_serving(timeout_s=60)
out = {"classify": [], "pixels": [], "segment": None}
for result in client.classify("vit", classify_paths, top_k=1000):
    out["classify"].append([[s.class_id, s.label, s.probability] for s in result])
for path in classify_paths:
    image = Image.open(path).convert("RGB")
    out["pixels"].append({"width": image.width, "height": image.height, "rgb": list(image.tobytes())})
mask = client.segment("seg", segment_path)
out["segment"] = {"width": mask.width, "height": mask.height, "class_ids": list(mask.class_ids),
                  "labels": list(mask.labels)}
# Server reflection describes the protocol's service (a client with no .proto files).
import grpc
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
with grpc.insecure_channel(address) as channel:
    database = ProtoReflectionDescriptorDatabase(channel)
    out["services"] = list(database.get_services())
    service = descriptor_pool.DescriptorPool(database).FindServiceByName("inference.GRPCInferenceService")
    out["methods"] = sorted(m.name for m in service.methods)
print(json.dumps(out))
"""


def docs_snippet():
    """The binary tensor data curl example of docs/protocols/kserve.md, verbatim (with -i added)."""
    text = open(os.path.join(SOURCE_DIR, "docs", "protocols", "kserve.md")).read()
    start = text.index("png=docs/examples/digit-3.png")
    end = text.index("--data-binary @/tmp/infer.bin", start) + len("--data-binary @/tmp/infer.bin")
    return text[start:end].replace("curl http://", "curl -s -i http://")


def wait_ready(grpc_client, seconds=90):
    wait_for(grpc_client.is_server_ready, "the server ready", seconds, retry_on=(InferenceServerException,))

def metric(text, name, **labels):
    """The sum of a counter's series whose labels include LABELS."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name):line.rindex("}")]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def curl(*args):
    result = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", *args], capture_output=True, check=True)
    body, _, status = result.stdout.rpartition(b"\n")
    return int(status), body


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-binary", required=True)
    p.add_argument("--fixtures", required=True, help="the build's fixtures directory")
    p.add_argument("--reference-python", required=True, help="the project's Python, with elliptical_client")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="kserve_")
    repo = fixture_repository(args.fixtures, work)
    http_port_file = os.path.join(work, "http_port")
    metrics_port_file = os.path.join(work, "metrics_port")
    server, address = start_server(args.server_binary, repo, work, "--compute_threads=1", "--http_port=0",
                                   f"--http_port_file={http_port_file}", "--metrics_host=127.0.0.1",
                                   "--metrics_port=0", f"--metrics_port_file={metrics_port_file}")
    try:
        run(args, address, read_port(http_port_file), read_port(metrics_port_file), work)
    finally:
        code = stop_server(server)
        if code != 0:
            print(open(os.path.join(work, "server.log")).read()[-4000:])
        shutil.rmtree(work, ignore_errors=True)
    check(code == 0, "server exits 0 on SIGTERM")
    print(f"{checks.passed} checks passed")


def run(args, address, http_port, metrics_port, work_dir):
    images_dir = os.path.join(args.fixtures, "classifier", "images")
    paths = [os.path.join(images_dir, f"pattern_{i}.png") for i in range(4)]
    seg_dir = os.path.join(args.fixtures, "core", "segmenter", "images")
    seg_path = os.path.join(seg_dir, "window_32x32.png")
    g = grpcclient.InferenceServerClient(url=address)
    h = httpclient.InferenceServerClient(url=f"127.0.0.1:{http_port}")
    wait_ready(g)
    ref = json.loads(subprocess.run([args.reference_python, "-c", REFERENCE, address, ",".join(paths), seg_path],
                                    stdout=subprocess.PIPE, check=True).stdout)
    check("inference.GRPCInferenceService" in ref["services"] and ref["methods"] == sorted(
        ["ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
         "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload"]),
        f"reflection lists and describes inference.GRPCInferenceService: {ref['methods']}")
    classes = len(ref["classify"][0])
    ref_probs = np.zeros((len(paths), classes), dtype=np.float32)
    for i, result in enumerate(ref["classify"]):
        for class_id, _, probability in result:
            ref_probs[i, class_id] = probability
    ref_top = [[c for c, _, _ in result] for result in ref["classify"]]
    ref_labels = {c: label for c, label, _ in ref["classify"][0]}
    pngs = np.array([open(path, "rb").read() for path in paths], dtype=np.object_)
    pixels = np.stack([np.frombuffer(bytes(px["rgb"]), dtype=np.uint8).reshape(px["height"], px["width"], 3)
                       for px in ref["pixels"]])
    seg_png = np.array([open(seg_path, "rb").read()], dtype=np.object_)
    sent = {"kserve_grpc": 0, "kserve_http": 0}

    # --- health and metadata, both bindings ---
    for name, c in (("grpc", g), ("http", h)):
        check(c.is_server_live() and c.is_server_ready(), f"{name}: server live and ready")
        check(c.is_model_ready("vit") and c.is_model_ready("seg") and c.is_model_ready("vit", "1"),
              f"{name}: models ready (with and without version)")
        check(not c.is_model_ready("no-such-model"), f"{name}: an unknown model is not ready")
        server_meta = c.get_server_metadata()
        if name == "grpc":
            server_meta = {"name": server_meta.name, "version": server_meta.version,
                           "extensions": list(server_meta.extensions)}
        check(server_meta["name"] == "elliptical-server" and server_meta["version"]
              and "classification" in server_meta["extensions"], f"{name}: server metadata {server_meta}")
        if name == "http":
            check("binary_tensor_data" in server_meta["extensions"], "http: binary_tensor_data extension")
        meta = c.get_model_metadata("vit", as_json=True) if name == "grpc" else c.get_model_metadata("vit")
        tensors = {t["name"]: (t["datatype"], [int(d) for d in t["shape"]]) for t in meta["inputs"] + meta["outputs"]}
        check(meta["versions"] == ["1"] and meta["platform"] == "elliptical_libtorch", f"{name}: versions, platform")
        # One input, the default form (image): a client that fills every listed input sends one.
        check(len(meta["inputs"]) == 1 and
              tensors == {"image": ("BYTES", [-1]),
                          "probabilities": ("FP32", [-1, classes]), "top_classes": ("INT64", [-1, -1]),
                          "top_labels": ("BYTES", [-1, -1]), "top_probabilities": ("FP32", [-1, -1])},
              f"{name}: classifier metadata {tensors}")
        seg_meta = c.get_model_metadata("seg", as_json=True) if name == "grpc" else c.get_model_metadata("seg")
        seg_tensors = {t["name"]: (t["datatype"], [int(d) for d in t["shape"]]) for t in seg_meta["outputs"]}
        check(seg_tensors == {"mask": ("INT32", [-1, -1, -1]), "labels": ("BYTES", [len(ref["segment"]["labels"])])},
              f"{name}: segmenter metadata {seg_tensors}")
        expect_error(lambda: c.get_model_metadata("no-such-model"), "NOT_FOUND" if name == "grpc" else "404",
                     "no-such-model", f"{name}: metadata of an unknown model")

    def classify(c, mod, tensor_name, data, datatype, binary=True, outputs=None, **kw):
        inp = mod.InferInput(tensor_name, list(data.shape), datatype)
        if mod is httpclient:
            inp.set_data_from_numpy(data, binary_data=binary)
        else:
            inp.set_data_from_numpy(data)
        result = c.infer("vit", [inp], outputs=outputs, **kw)
        sent["kserve_grpc" if mod is grpcclient else "kserve_http"] += 1
        return result

    def same_classes(result, what, k=5):
        probs = result.as_numpy("probabilities")
        check(probs.shape == ref_probs.shape and np.allclose(probs, ref_probs, atol=1e-5),
              f"{what}: probabilities [N, {classes}] equal elliptical.v1's (max diff "
              f"{np.abs(probs - ref_probs).max():.2e})")
        top = result.as_numpy("top_classes")
        check(top.dtype == np.int64 and top.tolist() == [r[:k] for r in ref_top], f"{what}: top_classes {top.tolist()}")
        labels = [[x.decode() if isinstance(x, bytes) else x for x in row] for row in result.as_numpy("top_labels")]
        check(labels == [[ref_labels[c] for c in r[:k]] for r in ref_top], f"{what}: top_labels")
        top_p = result.as_numpy("top_probabilities")
        check(np.allclose(top_p, np.take_along_axis(ref_probs, np.array(ref_top)[:, :k], 1), atol=1e-5),
              f"{what}: top_probabilities")

    # --- classify: PNG bytes and the same pixels, raw (gRPC), binary and JSON (HTTP) ---
    same_classes(classify(g, grpcclient, "image", pngs, "BYTES"), "grpc: image BYTES (raw)")
    same_classes(classify(g, grpcclient, "pixels", pixels, "UINT8"), "grpc: pixels UINT8 [N, H, W, 3] (raw)")
    same_classes(classify(h, httpclient, "image", pngs, "BYTES"), "http: image BYTES (binary)")
    same_classes(classify(h, httpclient, "pixels", pixels, "UINT8"), "http: pixels UINT8 (binary)")
    json_outputs = [httpclient.InferRequestedOutput(n, binary_data=False)
                    for n in ("probabilities", "top_classes", "top_labels", "top_probabilities")]
    same_classes(classify(h, httpclient, "pixels", pixels, "UINT8", binary=False, outputs=json_outputs),
                 "http: pixels UINT8 (JSON in, JSON out)")

    # Typed contents (what clients other than tritonclient may send): typed contents back.
    with grpc.insecure_channel(address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        typed = service_pb2.ModelInferRequest(model_name="vit", id="typed-1")
        tensor = typed.inputs.add(name="pixels", datatype="UINT8", shape=list(pixels.shape))
        tensor.contents.uint_contents.extend(pixels.flatten().tolist())
        typed.outputs.add(name="probabilities")
        answer = stub.ModelInfer(typed, timeout=30)
        sent["kserve_grpc"] += 1
        probs = np.array(answer.outputs[0].contents.fp32_contents, dtype=np.float32).reshape(ref_probs.shape)
        check(len(answer.raw_output_contents) == 0 and answer.id == "typed-1" and list(answer.outputs[0].shape) ==
              list(ref_probs.shape) and np.allclose(probs, ref_probs, atol=1e-5),
              "grpc: typed uint_contents in, typed fp32_contents out, id echoed")

    # top_k and the classification extension.
    r = classify(g, grpcclient, "image", pngs, "BYTES", parameters={"top_k": 2},
                 outputs=[grpcclient.InferRequestedOutput("top_classes")])
    check(r.as_numpy("top_classes").tolist() == [t[:2] for t in ref_top] and r.as_numpy("probabilities") is None,
          "grpc: top_k 2, only the requested output")
    for name, c, mod in (("grpc", g, grpcclient), ("http", h, httpclient)):
        r = classify(c, mod, "image", pngs, "BYTES", outputs=[mod.InferRequestedOutput("probabilities", class_count=3)])
        got = [[x.decode().split(":") for x in row] for row in r.as_numpy("probabilities")]
        check(all(int(s[1]) == ref_top[i][j] and s[2] == ref_labels[ref_top[i][j]] and
                  abs(float(s[0]) - ref_probs[i, ref_top[i][j]]) < 1e-5
                  for i, row in enumerate(got) for j, s in enumerate(row)) and len(got[0]) == 3,
              f"{name}: classification extension (class_count=3) {got[0]}")

    # --- segment ---
    ref_mask = np.array(ref["segment"]["class_ids"], dtype=np.int32).reshape(1, ref["segment"]["height"],
                                                                             ref["segment"]["width"])
    for name, c, mod in (("grpc", g, grpcclient), ("http", h, httpclient)):
        inp = mod.InferInput("image", [1], "BYTES")
        inp.set_data_from_numpy(seg_png)
        r = c.infer("seg", [inp], outputs=[mod.InferRequestedOutput("mask"), mod.InferRequestedOutput("labels")])
        mask = r.as_numpy("mask")
        check(mask.dtype == np.int32 and np.array_equal(mask, ref_mask), f"{name}: segment mask {mask.shape} equals v1's")
        labels = [x.decode() for x in r.as_numpy("labels")]
        check(labels == ref["segment"]["labels"], f"{name}: segment labels")
        two = mod.InferInput("image", [2], "BYTES")
        two.set_data_from_numpy(np.array([open(seg_path, "rb").read(),
                                          open(os.path.join(seg_dir, "small_20x28.png"), "rb").read()], dtype=np.object_))
        expect_error(lambda: c.infer("seg", [two]), "INVALID_ARGUMENT" if name == "grpc" else "400",
                     "differ in size", f"{name}: images of different sizes in one mask")

    # --- errors ---
    for name, c, mod in (("grpc", g, grpcclient), ("http", h, httpclient)):
        invalid = "INVALID_ARGUMENT" if name == "grpc" else "400"
        bad = mod.InferInput("pixels", [1, 2, 2, 2], "UINT8")
        bad.set_data_from_numpy(np.zeros((1, 2, 2, 2), dtype=np.uint8))
        expect_error(lambda: c.infer("vit", [bad]), invalid, 'input "pixels"', f"{name}: two channels")
        wrong = mod.InferInput("pixels", [1, 2, 2, 3], "FP32")
        wrong.set_data_from_numpy(np.zeros((1, 2, 2, 3), dtype=np.float32))
        expect_error(lambda: c.infer("vit", [wrong]), invalid, "not UINT8", f"{name}: wrong datatype")
        unknown = mod.InferInput("INPUT0", [1], "BYTES")
        unknown.set_data_from_numpy(pngs[:1])
        expect_error(lambda: c.infer("vit", [unknown]), invalid, 'unknown input "INPUT0"', f"{name}: unknown input")
        not_image = mod.InferInput("image", [1], "BYTES")
        not_image.set_data_from_numpy(np.array([b"not an image"], dtype=np.object_))
        expect_error(lambda: c.infer("vit", [not_image]), invalid, "image", f"{name}: bytes that are no image")
        expect_error(lambda: c.infer("no-such-model", [not_image]), "NOT_FOUND" if name == "grpc" else "404",
                     "no-such-model", f"{name}: unknown model")
        expect_error(lambda: c.infer("lm", [not_image]), "FAILED_PRECONDITION" if name == "grpc" else "400",
                     "completions", f"{name}: a language model")
        expect_error(lambda: c.infer("vit", [not_image], model_version="2"), "NOT_FOUND" if name == "grpc" else "404",
                     "version", f"{name}: unknown version")
        sent["kserve_grpc" if name == "grpc" else "kserve_http"] += 0  # refused before InferenceCalls or failed

    # --- curl: the REST examples of docs/protocols/kserve.md ---
    base = f"http://127.0.0.1:{http_port}"
    status, body = curl(f"{base}/v2/health/ready")
    check(status == 200, "curl: GET /v2/health/ready 200")
    status, body = curl(f"{base}/v2/models/vit")
    check(status == 200 and json.loads(body)["name"] == "vit", "curl: GET /v2/models/vit")
    request = {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": list(pixels[:1].shape),
                           "data": pixels[:1].flatten().tolist()}],
               "parameters": {"top_k": 3},
               "outputs": [{"name": "top_classes"}, {"name": "top_labels"}]}
    status, body = curl("-X", "POST", "-H", "Content-Type: application/json", "-d", json.dumps(request),
                        f"{base}/v2/models/vit/infer")
    sent["kserve_http"] += 1
    answer = json.loads(body) if status == 200 else {}
    outputs = {o["name"]: o for o in answer.get("outputs", [])}
    check(status == 200 and outputs["top_classes"]["data"] == ref_top[0][:3] and outputs["top_classes"]["shape"] == [1, 3]
          and outputs["top_labels"]["datatype"] == "BYTES", f"curl: POST /v2/models/vit/infer (JSON) {body[:200]!r}")
    # The binary tensor data example of the docs, as written there (file, model and port swapped).
    script = docs_snippet().replace("docs/examples/digit-3.png", paths[0]).replace("digits-vit", "vit") \
        .replace("localhost:8502", f"127.0.0.1:{http_port}").replace("/tmp/infer.bin", os.path.join(work_dir, "infer.bin"))
    result = subprocess.run(["bash", "-c", script], capture_output=True, check=True)
    header_length = next((int(line.split(b":")[1]) for line in result.stdout.split(b"\r\n")
                          if line.lower().startswith(b"inference-header-content-length")), None)
    answer = json.loads(result.stdout.split(b"\r\n\r\n", 1)[1])
    sent["kserve_http"] += 1
    outputs = {o["name"]: o for o in answer.get("outputs", [])}
    top3 = [s.split(":") for s in outputs.get("probabilities", {}).get("data", [])]
    check(header_length is None and outputs["top_labels"]["data"] == [ref_labels[c] for c in ref_top[0][:5]]
          and [int(s[1]) for s in top3] == ref_top[0][:3],
          f"curl: the docs' binary tensor example (PNG as BYTES) {answer}")
    status, body = curl("-X", "POST", "-d", "{not json", f"{base}/v2/models/vit/infer")
    check(status == 400 and "error" in json.loads(body), f"curl: bad JSON 400 {body!r}")
    status, body = curl(f"{base}/v2/models/no-such-model/ready")
    check(status == 404, "curl: an unknown model's ready route 404")

    # --- metrics: the same calls, counted by protocol ---
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    for protocol, count in sent.items():
        ok = metric(text, "elliptical_requests_total", model="vit", rpc="Classify", protocol=protocol, code="OK")
        check(ok == count, f"metrics: {count:g} OK Classify calls with protocol=\"{protocol}\" (counted {ok:g})")
    for protocol in sent:
        seg = metric(text, "elliptical_requests_total", model="seg", rpc="Segment", protocol=protocol)
        check(seg >= 2, f"metrics: Segment calls with protocol=\"{protocol}\" ({seg:g})")
        sizes = metric(text, "elliptical_requests_total", model="seg", rpc="Segment", protocol=protocol,
                       code="INVALID_ARGUMENT")
        check(sizes >= 1, f"metrics: images of different sizes counted INVALID_ARGUMENT under {protocol} ({sizes:g})")
        bad = metric(text, "elliptical_requests_total", model="vit", rpc="Classify", protocol=protocol,
                     code="INVALID_ARGUMENT")
        check(bad >= 1, f"metrics: the undecodable image counted INVALID_ARGUMENT under {protocol} ({bad:g})")
    g.close()
    h.close()


if __name__ == "__main__":
    main()
