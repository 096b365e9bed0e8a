#!/usr/bin/env python3
"""The model repository API end to end: KServe's repository extension as Triton's own clients
call it (tritonclient.grpc and tritonclient.http: get_model_repository_index, load_model,
unload_model), elliptical.v1's RepositoryIndex/LoadModel/UnloadModel through the Python client
(run in the project's venv) and the CLI, on real servers on loopback over a temporary copy of the
shipped models:

  A  --model_control_mode=explicit --load_model=digits-vit, no tokens: index and states, load,
     infer, unload (then UNAVAILABLE), reload, a two-version model through the versioned routes,
     a load that fails (UNAVAILABLE with its reason), unknown and hostile names (a valid model
     placed just outside the repository must stay out of reach), Triton's override parameters,
     another repository's name;
  B  inference tokens and repository tokens (--repository_access=auto): an inference token infers
     and reads the index but may not load (PERMISSION_DENIED / 403); a repository token may;
  C  inference tokens only (auto): no token may load, the refusal names the flags;
  D  --model_control_mode=none: a load is FAILED_PRECONDITION / 400 naming the flag.

    .venv-clients/bin/python tests/integration/repository_api_test.py \\
        --server-binary build/server/elliptical-server --client-binary build/client/elliptical-client \\
        --project-python .venv/bin/python
"""
import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
import checks  # noqa: E402
from checks import check, expect_error, wait_for  # noqa: E402
from server import read_port, start_server, stop_server  # noqa: E402

MODELS = ("digits-vit", "digit-scenes-segmenter", "kjv-lm")
TWIN = "digits-twin"  # digits-vit as versions 1 and 2 (version_policy all): the versioned routes
BROKEN = "digits-broken"  # digits-vit with its weights cut short: every load fails
DIGIT = os.path.join(SOURCE_DIR, "docs", "examples", "digit-3.png")
SCENE = os.path.join(SOURCE_DIR, "docs", "examples", "scene-0.png")
INFERENCE_TOKEN = "inference-token-1"
REPOSITORY_TOKEN = "repository-token-1"
LONG_NAME = "m" * 300

# elliptical.v1 through the project's Python client (the project's venv): the repository RPCs, and
# their refusals. Prints one JSON object of what it saw.
V1_CLIENT = r"""
import json, sys
from elliptical_client import Client, ClientError
address, token = sys.argv[1], sys.argv[2] or None
out = {}
def code(call):
    try:
        call()
        return "OK"
    except ClientError as e:
        return e.code + ": " + e.message
with Client(address, timeout_s=60, token=token) as c:
    if sys.argv[3] == "lifecycle":
        out["index"] = [[v.name, v.version, v.state] for v in c.repository_index()]
        out["ready_index"] = [[v.name, v.version, v.state] for v in c.repository_index(ready_only=True)]
        loaded = c.load_model("kjv-lm")
        out["loaded"] = [[v.name, v.version, v.state, v.load_ms > 0] for v in loaded]
        out["listed"] = {m.name: [m.state, m.version, m.ready_versions] for m in c.list_models()}
        out["generate_loaded"] = code(lambda: c.generate("kjv-lm", "And God said", max_new_tokens=2).text())
        c.unload_model("kjv-lm")
        out["generate_unloaded"] = code(lambda: c.generate("kjv-lm", "And God said", max_new_tokens=2).text())
        out["listed_after"] = {m.name: m.state for m in c.list_models()}
        out["unknown"] = code(lambda: c.load_model("no-such-model"))
        out["dotdot"] = code(lambda: c.load_model("../outside"))
        out["empty"] = code(lambda: c.unload_model(""))
        out["long"] = code(lambda: c.load_model("m" * 300))
    else:
        out["index"] = code(lambda: c.repository_index())
        out["load"] = code(lambda: c.load_model("kjv-lm"))
        out["unload"] = code(lambda: c.unload_model("kjv-lm"))
print(json.dumps(out))
"""


def poll(condition, what, seconds=60):
    """wait_for, any error counting as not yet (a server still starting answers errors)."""
    return wait_for(condition, what, seconds, retry_on=(Exception,))

def states(index):
    """{(name, version): state} of a gRPC index message, or an HTTP index list."""
    if isinstance(index, list):
        return {(m["name"], m.get("version", "")): m["state"] for m in index}
    return {(m.name, m.version): m.state for m in index.models}


def model_states(index):
    """{name: state of its newest listed version}. A model's every version on disk is listed; one
    with no readable version is listed once, with version ""."""
    newest = {}
    for (name, version), state in states(index).items():
        number = int(version) if version else 0
        if name not in newest or number > newest[name][0]:
            newest[name] = (number, state)
    return {name: state for name, (_, state) in newest.items()}


def post(port, path, body=b"", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def start(args, repo, work, *flags):
    os.makedirs(work, exist_ok=True)
    http_file = os.path.join(work, "http_port")
    server, address = start_server(args.server_binary, repo, work, "--compute_threads=1", "--http_port=0",
                                   f"--http_port_file={http_file}", *flags)
    return server, address, read_port(http_file, server)


def png_input(mod, path):
    inp = mod.InferInput("image", [1], "BYTES")
    inp.set_data_from_numpy(np.array([open(path, "rb").read()], dtype=np.object_))
    return inp


def v1_client(args, address, token, mode):
    r = subprocess.run([args.project_python, "-c", V1_CLIENT, address, token or "", mode],
                       capture_output=True, text=True, timeout=180)
    check(r.returncode == 0, f"v1 client ({mode}) ran: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout)


def explicit_mode(args, repo, work):
    server, address, http_port = start(args, repo, os.path.join(work, "a"), "--model_control_mode=explicit",
                                       "--load_model=digits-vit")
    try:
        g = grpcclient.InferenceServerClient(address)
        h = httpclient.InferenceServerClient(f"127.0.0.1:{http_port}", network_timeout=120)
        poll(lambda: g.is_model_ready("digits-vit"), "A: digits-vit ready")

        # --- the index: one version each, only the named model loaded.
        grpc_index = g.get_model_repository_index()
        index = model_states(grpc_index)
        twin = {k: v for k, v in states(grpc_index).items() if k[0] == TWIN}
        check(set(twin.values()) == {"UNAVAILABLE"} and set(twin) <= {(TWIN, ""), (TWIN, "1"), (TWIN, "2")},
              f"A: the two-version model is not loaded: {twin}")
        index = {k: v for k, v in model_states(service_pb2.RepositoryIndexResponse(
            models=[m for m in grpc_index.models if m.name not in (TWIN, BROKEN)])).items()}
        check(index == {"digits-vit": "READY", "digit-scenes-segmenter": "UNAVAILABLE", "kjv-lm": "UNAVAILABLE"},
              f"A: gRPC index {index}")
        check(states(grpc_index)[("digits-vit", "1")] == "READY", "A: the loaded model's version is \"1\"")
        http_index = h.get_model_repository_index()
        check(states(http_index) == states(grpc_index), f"A: HTTP index (Triton's JSON list) {http_index}")
        check(all(set(m) <= {"name", "version", "state", "reason"} for m in http_index), "A: HTTP index fields")
        check(sorted({m["name"] for m in http_index}) == sorted(MODELS + (TWIN, BROKEN)),
              "A: the model beside the repository is not indexed")
        ready = g._client_stub.RepositoryIndex(service_pb2.RepositoryIndexRequest(ready=True))
        check(states(ready) == {("digits-vit", "1"): "READY"}, f"A: gRPC index, ready only: {states(ready)}")
        status, body = post(http_port, "/v2/repository/index", json.dumps({"ready": True}).encode())
        check(status == 200 and states(json.loads(body)) == {("digits-vit", "1"): "READY"},
              f"A: HTTP index, ready only: {status} {body[:200]!r}")
        try:
            g._client_stub.RepositoryIndex(service_pb2.RepositoryIndexRequest(repository_name="other"))
            check(False, "A: another repository's index refused")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.NOT_FOUND, f"A: another repository's index: {e.code()} {e.details()}")
        status, body = post(http_port, "/v2/repository/index", b'{"ready": "yes"}')
        check(status == 400 and b"error" in body, f"A: HTTP index with a bad body: {status} {body!r}")

        # --- an unloaded model is refused; load it over gRPC, infer; unload over HTTP.
        expect_error(lambda: g.infer("digit-scenes-segmenter", [png_input(grpcclient, SCENE)]), "UNAVAILABLE", "",
                     "A: gRPC infer before the load")
        check(not g.is_model_ready("digit-scenes-segmenter"), "A: segmenter not ready before the load")
        g.load_model("digit-scenes-segmenter")
        check(g.is_model_ready("digit-scenes-segmenter"), "A: segmenter ready once load_model returned")
        check(model_states(g.get_model_repository_index())["digit-scenes-segmenter"] == "READY",
              "A: the index says READY after the load")
        mask = g.infer("digit-scenes-segmenter", [png_input(grpcclient, SCENE)]).as_numpy("mask")
        check(mask is not None and mask.ndim == 3 and mask.shape[0] == 1, f"A: gRPC segment after the load: {mask.shape}")
        h.unload_model("digit-scenes-segmenter")  # sends {"parameters": {"unload_dependents": false}}
        expect_error(lambda: g.infer("digit-scenes-segmenter", [png_input(grpcclient, SCENE)]), "UNAVAILABLE", "",
                     "A: gRPC infer after the HTTP unload")
        expect_error(lambda: h.infer("digit-scenes-segmenter", [png_input(httpclient, SCENE)]), "503", "",
                     "A: HTTP infer after the unload")
        poll(lambda: model_states(h.get_model_repository_index())["digit-scenes-segmenter"] == "UNAVAILABLE",
             "A: the index says UNAVAILABLE after the unload")
        check(True, "A: the index says UNAVAILABLE after the unload")
        # Load again over HTTP, infer over HTTP; unload over gRPC (unload_dependents is sent).
        h.load_model("digit-scenes-segmenter")
        check(h.is_model_ready("digit-scenes-segmenter"), "A: ready again after the HTTP load")
        mask = h.infer("digit-scenes-segmenter", [png_input(httpclient, SCENE)]).as_numpy("mask")
        check(mask is not None and mask.shape[0] == 1, "A: HTTP segment after the reload")
        g.unload_model("digit-scenes-segmenter", unload_dependents=True)
        check(not g.is_model_ready("digit-scenes-segmenter"), "A: not ready after the gRPC unload")
        # The model that stayed loaded answers throughout.
        top = g.infer("digits-vit", [png_input(grpcclient, DIGIT)]).as_numpy("probabilities")
        check(top is not None and int(np.argmax(top[0])) == 3, "A: digits-vit still classifies digit-3 as 3")

        # --- two versions: both load, and the versioned routes reach each one.
        h.load_model(TWIN)
        twin = {k: v for k, v in states(g.get_model_repository_index()).items() if k[0] == TWIN}
        check(twin == {(TWIN, "1"): "READY", (TWIN, "2"): "READY"}, f"A: both versions of {TWIN} ready: {twin}")
        meta = g.get_model_metadata(TWIN)
        check(sorted(meta.versions) == ["1", "2"], f"A: metadata lists both versions: {list(meta.versions)}")
        for version in ("1", "2"):
            r = g.infer(TWIN, [png_input(grpcclient, DIGIT)], model_version=version)
            check(r.get_response().model_version == version and int(np.argmax(r.as_numpy("probabilities")[0])) == 3,
                  f"A: gRPC infer of version {version} is answered by it")
            r = h.infer(TWIN, [png_input(httpclient, DIGIT)], model_version=version)
            check(r.get_response()["model_version"] == version, f"A: HTTP /versions/{version}/infer is answered by it")
            check(h.is_model_ready(TWIN, model_version=version), f"A: HTTP /versions/{version}/ready")
        r = g.infer(TWIN, [png_input(grpcclient, DIGIT)])
        check(r.get_response().model_version == "2", "A: no version: the newest ready one answers")
        expect_error(lambda: g.infer(TWIN, [png_input(grpcclient, DIGIT)], model_version="7"), "NOT_FOUND", "",
                     "A: gRPC infer of a version that does not exist")
        expect_error(lambda: h.infer(TWIN, [png_input(httpclient, DIGIT)], model_version="7"), "404", "",
                     "A: HTTP /versions/7/infer")
        check(not h.is_model_ready(TWIN, model_version="7"), "A: HTTP /versions/7/ready is not ready")
        g.unload_model(TWIN)
        poll(lambda: set(v for k, v in states(g.get_model_repository_index()).items() if k[0] == TWIN)
             == {"UNAVAILABLE"}, f"A: both versions of {TWIN} unavailable after the unload")

        # --- unknown and hostile names.
        expect_error(lambda: g.load_model("no-such-model"), "NOT_FOUND", "no-such-model", "A: gRPC load of an unknown model")
        expect_error(lambda: h.load_model("no-such-model"), "404", "no-such-model", "A: HTTP load of an unknown model")
        expect_error(lambda: g.unload_model("no-such-model"), "NOT_FOUND", "", "A: gRPC unload of an unknown model")
        for name in ("../outside", "..", "", LONG_NAME, "a/b", "x\ny"):
            expect_error(lambda: g.load_model(name), "INVALID_ARGUMENT", "", f"A: gRPC load of {name[:20]!r}")
        expect_error(lambda: h.load_model(LONG_NAME), "400", "", "A: HTTP load of a 300-byte name")
        for path in ("/v2/repository/models/..%2Foutside/load", "/v2/repository/models/%2E%2E%2Foutside/unload",
                     "/v2/repository/models/%00/load"):
            status, body = post(http_port, path)
            check(status == 400 and b"error" in body, f"A: HTTP {path}: {status} {body[:120]!r}")
        status, _ = post(http_port, "/v2/repository/models/../outside/load")
        check(status == 404, f"A: HTTP with a literal ../ routes nowhere: {status}")
        check({m.name for m in g.get_model_repository_index().models} == set(MODELS + (TWIN, BROKEN)),
              "A: the same models after the hostile names")

        # --- a load that fails: its error, then UNAVAILABLE with the reason in the index.
        try:
            g.load_model(BROKEN)
            check(False, "A: the load of a model with cut weights fails")
        except InferenceServerException as e:
            check(e.status() not in ("StatusCode.OK", None), f"A: the failing load answers {e.status()} {e.message()[:120]!r}")
        broken = [m for m in g.get_model_repository_index().models if m.name == BROKEN]
        check(len(broken) == 1 and broken[0].state == "UNAVAILABLE" and broken[0].reason
              and not broken[0].reason.startswith("not loaded"),
              f"A: the failed model is UNAVAILABLE with why: {[(m.version, m.state, m.reason[:100]) for m in broken]}")
        expect_error(lambda: h.load_model(BROKEN), "", "", "A: the failing load over HTTP")
        check(g.is_model_ready("digits-vit"), "A: the other models serve on")

        # --- Triton's override parameters and other refusals.
        expect_error(lambda: g.load_model("digit-scenes-segmenter", config='{"backend": "x"}'), "INVALID_ARGUMENT",
                     '"config"', "A: gRPC load with a config override")
        expect_error(lambda: h.load_model("digit-scenes-segmenter", config='{"backend": "x"}'),
                     "400", '"config"', "A: HTTP load with a config override")
        expect_error(lambda: g.load_model("digit-scenes-segmenter", files={"file:1/x": b"1"}),
                     "INVALID_ARGUMENT", '"file:1/x"', "A: gRPC load with a file override names it")
        status, body = post(http_port, "/v2/repository/models/digit-scenes-segmenter/load",
                            json.dumps({"parameters": {"file:1/x": "AA=="}}).encode())
        check(status == 400 and b'file:1/x' in body, f"A: HTTP load with a file override names it: {body[:160]!r}")
        status, body = post(http_port, "/v2/repository/models/digit-scenes-segmenter/unload",
                            json.dumps({"parameters": {"priority": 1}}).encode())
        check(status == 400 and b"priority" in body, f"A: HTTP unload with an unknown parameter: {body[:160]!r}")
        try:
            g._client_stub.RepositoryModelLoad(service_pb2.RepositoryModelLoadRequest(
                repository_name="other", model_name="digit-scenes-segmenter"))
            check(False, "A: a load in another repository refused")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.NOT_FOUND, f"A: a load in another repository: {e.code()}")
        check(not g.is_model_ready("digit-scenes-segmenter"), "A: no refused load loaded anything")

        # --- elliptical.v1 through the Python client.
        v1 = v1_client(args, address, None, "lifecycle")
        check(sorted((n, s) for n, _, s in v1["index"] if n not in (TWIN, BROKEN)) == [
                  ("digit-scenes-segmenter", "unavailable"), ("digits-vit", "ready"), ("kjv-lm", "unavailable")]
              and ["digits-vit", 1, "ready"] in v1["index"], f"v1: repository_index {v1['index']}")
        check(v1["ready_index"] == [["digits-vit", 1, "ready"]], f"v1: repository_index(ready_only) {v1['ready_index']}")
        check(v1["loaded"] == [["kjv-lm", 1, "ready", True]], f"v1: load_model returns the ready version {v1['loaded']}")
        check(v1["listed"]["kjv-lm"] == ["ready", 1, [1]], f"v1: list_models after the load {v1['listed']['kjv-lm']}")
        check(v1["generate_loaded"] == "OK", f"v1: generate after the load: {v1['generate_loaded']}")
        check(v1["generate_unloaded"].startswith("UNAVAILABLE"), f"v1: generate after the unload: {v1['generate_unloaded']}")
        check(v1["listed_after"]["kjv-lm"] in ("unavailable", "unloading"), f"v1: list_models after the unload")
        check(v1["unknown"].startswith("NOT_FOUND"), f"v1: unknown model: {v1['unknown']}")
        for key in ("dotdot", "empty", "long"):
            check(v1[key].startswith("INVALID_ARGUMENT"), f"v1: {key} name: {v1[key][:100]}")

        # --- the CLI, once: load, index, unload.
        cli = [args.client_binary, f"--server={address}", "--timeout_s=120"]
        r = subprocess.run(cli + ["models", "load", "digit-scenes-segmenter"], capture_output=True, text=True, timeout=180)
        check(r.returncode == 0 and "digit-scenes-segmenter" in r.stdout and "ready" in r.stdout,
              f"CLI: models load: {r.returncode} {r.stdout.strip()!r} {r.stderr.strip()[-200:]!r}")
        r = subprocess.run(cli + ["models", "index"], capture_output=True, text=True, timeout=60)
        rows = {line.split()[0]: line.split()[3].rstrip(":") for line in r.stdout.splitlines()[1:]
                if line.strip() and not line.startswith((TWIN, BROKEN))}
        check(r.returncode == 0 and rows == {"digit-scenes-segmenter": "ready", "digits-vit": "ready",
                                             "kjv-lm": "unavailable"}, f"CLI: models index: {rows}")
        r = subprocess.run(cli + ["models", "unload", "no-such-model"], capture_output=True, text=True, timeout=60)
        check(r.returncode == 1 and "NOT_FOUND" in r.stderr + r.stdout, f"CLI: unload of an unknown model: {r.returncode}")
        r = subprocess.run(cli + ["models", "frobnicate"], capture_output=True, text=True, timeout=60)
        check(r.returncode == 2, "CLI: an unknown models subcommand is a usage error")
    finally:
        check(stop_server(server) == 0, "A: the server drained and exited cleanly")


def with_tokens(args, repo, work):
    tokens, repository_tokens = os.path.join(work, "tokens.txt"), os.path.join(work, "repository-tokens.txt")
    with open(tokens, "w") as f:
        f.write(f"{INFERENCE_TOKEN}\n")
    with open(repository_tokens, "w") as f:
        f.write(f"# may load and unload\n{REPOSITORY_TOKEN}\n")
    inference = {"authorization": f"Bearer {INFERENCE_TOKEN}"}
    repository = {"authorization": f"Bearer {REPOSITORY_TOKEN}"}

    # B: both token files, --repository_access=auto.
    server, address, http_port = start(args, repo, os.path.join(work, "b"), "--model_control_mode=explicit",
                                       "--load_model=digits-vit", f"--auth_tokens_file={tokens}",
                                       f"--repository_tokens_file={repository_tokens}")
    try:
        g = grpcclient.InferenceServerClient(address)
        h = httpclient.InferenceServerClient(f"127.0.0.1:{http_port}", network_timeout=120)
        poll(lambda: g.is_model_ready("digits-vit", headers=inference), "B: digits-vit ready")
        top = g.infer("digits-vit", [png_input(grpcclient, DIGIT)], headers=inference).as_numpy("probabilities")
        check(int(np.argmax(top[0])) == 3, "B: an inference token infers")
        check({m.name for m in g.get_model_repository_index(headers=inference).models} == set(MODELS + (TWIN, BROKEN)),
              "B: an inference token reads the index")
        check({m["name"] for m in h.get_model_repository_index(headers={"Authorization": inference["authorization"]})}
              == set(MODELS + (TWIN, BROKEN)), "B: ... over HTTP too")
        expect_error(lambda: g.get_model_repository_index(), "UNAUTHENTICATED", "", "B: the index needs a token")
        expect_error(lambda: g.load_model("kjv-lm", headers=inference), "PERMISSION_DENIED", "--repository_tokens_file",
                     "B: an inference token may not load (gRPC)")
        expect_error(lambda: h.load_model("kjv-lm", headers={"Authorization": inference["authorization"]}), "403",
                     "--repository_tokens_file", "B: an inference token may not load (HTTP)")
        expect_error(lambda: h.unload_model("digits-vit", headers={"Authorization": inference["authorization"]}),
                     "403", "", "B: an inference token may not unload (HTTP)")
        expect_error(lambda: g.load_model("kjv-lm"), "UNAUTHENTICATED", "", "B: no token: UNAUTHENTICATED")
        expect_error(lambda: h.load_model("kjv-lm"), "401", "", "B: no token over HTTP: 401")
        check(not g.is_model_ready("kjv-lm", headers=inference), "B: nothing was loaded by the refused calls")
        g.load_model("kjv-lm", headers=repository)
        check(g.is_model_ready("kjv-lm", headers=inference), "B: a repository token loads (gRPC)")
        h.unload_model("kjv-lm", headers={"Authorization": repository["authorization"]})
        check(not g.is_model_ready("kjv-lm", headers=inference), "B: a repository token unloads (HTTP)")
        top = g.infer("digits-vit", [png_input(grpcclient, DIGIT)], headers=repository).as_numpy("probabilities")
        check(int(np.argmax(top[0])) == 3, "B: a repository token infers too")
        v1 = v1_client(args, address, INFERENCE_TOKEN, "refusals")
        check(v1["index"] == "OK" and v1["load"].startswith("PERMISSION_DENIED")
              and v1["unload"].startswith("PERMISSION_DENIED"), f"B: v1 with an inference token: {v1}")
        v1 = v1_client(args, address, REPOSITORY_TOKEN, "refusals")
        check(v1 == {"index": "OK", "load": "OK", "unload": "OK"}, f"B: v1 with a repository token: {v1}")
    finally:
        check(stop_server(server) == 0, "B: the server exited cleanly")

    # C: inference tokens only: under auto no token may change the repository.
    server, address, http_port = start(args, repo, os.path.join(work, "c"), "--model_control_mode=explicit",
                                       "--load_model=digits-vit", f"--auth_tokens_file={tokens}")
    try:
        g = grpcclient.InferenceServerClient(address)
        poll(lambda: g.is_model_ready("digits-vit", headers=inference), "C: digits-vit ready")
        expect_error(lambda: g.load_model("kjv-lm", headers=inference), "PERMISSION_DENIED", "--auth_tokens_file",
                     "C: auto with inference tokens only refuses loads, naming the flags")
        status, body = post(http_port, "/v2/repository/models/kjv-lm/load", b"",
                            {"Authorization": inference["authorization"]})
        check(status == 403 and b"--repository_access" in body, f"C: ... over HTTP: {status} {body[:160]!r}")
    finally:
        check(stop_server(server) == 0, "C: the server exited cleanly")


def control_mode_none(args, repo, work):
    server, address, http_port = start(args, repo, os.path.join(work, "d"), "--model_control_mode=none")
    try:
        g = grpcclient.InferenceServerClient(address)
        poll(lambda: all(g.is_model_ready(m) for m in MODELS + (TWIN,)), "D: every model ready in mode none")
        index = g.get_model_repository_index()
        check({k: v for k, v in states(index).items() if k[0] != BROKEN}
              == {**{(m, "1"): "READY" for m in MODELS}, (TWIN, "1"): "READY", (TWIN, "2"): "READY"},
              f"D: the index in mode none: {states(index)}")
        broken = [m for m in index.models if m.name == BROKEN]
        check(len(broken) == 1 and broken[0].state == "UNAVAILABLE" and broken[0].reason,
              f"D: a model that failed to load is UNAVAILABLE with why: {[(m.state, m.reason[:80]) for m in broken]}")
        expect_error(lambda: g.load_model("kjv-lm"), "FAILED_PRECONDITION", "--model_control_mode",
                     "D: gRPC load in mode none")
        expect_error(lambda: g.unload_model("kjv-lm"), "FAILED_PRECONDITION", "--model_control_mode",
                     "D: gRPC unload in mode none")
        h = httpclient.InferenceServerClient(f"127.0.0.1:{http_port}")
        expect_error(lambda: h.load_model("kjv-lm"), "400", "--model_control_mode", "D: HTTP load in mode none")
        check(g.is_model_ready("kjv-lm"), "D: kjv-lm still ready")
    finally:
        check(stop_server(server) == 0, "D: the server exited cleanly")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-binary", required=True)
    p.add_argument("--client-binary", required=True)
    p.add_argument("--project-python", required=True, help="the project's venv Python (the elliptical_client package)")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="repository-api-")
    try:
        repo = os.path.join(work, "models")
        for name in MODELS:
            shutil.copytree(os.path.join(SOURCE_DIR, "models", name), os.path.join(repo, name))
        for version in ("1", "2"):
            shutil.copytree(os.path.join(SOURCE_DIR, "models", "digits-vit"), os.path.join(repo, TWIN, version))
        with open(os.path.join(repo, TWIN, "config.json"), "w") as f:
            json.dump({"version_policy": {"all": {}}}, f)
        shutil.copytree(os.path.join(SOURCE_DIR, "models", "digits-vit"), os.path.join(repo, BROKEN))
        with open(os.path.join(repo, BROKEN, "model.safetensors"), "r+b") as f:
            f.truncate(64)
        # A valid model just outside the repository: "../outside" must never reach it.
        shutil.copytree(os.path.join(SOURCE_DIR, "models", "digits-vit"), os.path.join(work, "outside"))
        explicit_mode(args, repo, work)
        with_tokens(args, repo, work)
        control_mode_none(args, repo, work)
        print(f"{checks.passed} checks passed")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
