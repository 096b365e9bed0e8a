#!/usr/bin/env python3
"""The standard metric names routers and autoscalers read (standard_metric_names.json: Triton's for
vision models, vLLM's for language models, copied as data from their published docs) in the real
server's live exposition, on the HTTP port and on the metrics port:

1. idle: every mapped name exists with its type and labels, for each model of its kind and no
   other; the exposition parses with Prometheus' own parser (promtool check metrics), and both
   ports serve the same families;
2. vision load through tritonclient.http (KServe v2 REST): a call held in the batching queue shows
   as nv_inference_pending_request_count = 1 (the batcher waits for a full batch; a second call
   fills it), then every counter moves by what was served, in agreement with our own families; a
   bad image counts as a failure with reason OTHER;
3. language load through the OpenAI SDK: streams held open fill the running batch and the queue,
   seen in vllm:num_requests_running, _waiting and kv_cache_usage_perc; completed generations
   move the histograms (inter-token gaps counted one per token after the first) and the token
   counters by the usage the server reported;
4. /metrics on the HTTP port follows the metrics port's basic auth and not the bearer tokens, and
   --http_metrics=false takes it off the HTTP port.

    .venv-clients/bin/python tests/integration/standard_metrics_test.py \
        --server-binary build/server/elliptical-server --fixtures build/fixtures
"""
import argparse
import base64
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request

import numpy as np
import openai
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
import checks  # noqa: E402
import exposition  # noqa: E402
from checks import check, wait_for  # noqa: E402
from server import fixture_repository, start_with_ports, stop_server  # noqa: E402

MAX_RUNNING = 2        # --max_running_sequences: the cache has this many slots
HELD_STREAMS = 6       # beyond MAX_RUNNING: the rest wait
MAX_BATCH = 8          # --max_batch_size; with a minute's queue delay a batch starts only when full
HOLD_TOKENS = 4000     # long enough that no held stream ends while the test looks
TOKEN = "standard-metrics-token"
USER, PASSWORD = "scraper", "s3cret"
VISION_MODELS = ("vit", "seg")
LANGUAGE_MODELS = ("lm",)


def http_get(port, path, headers=None):
    """-> (status, body, headers)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def scrape(port, headers=None):
    status, body, _ = http_get(port, "/metrics", headers)
    if status != 200:
        check(False, f"GET /metrics on port {port}: 200 (got {status})")
    return exposition.parse(body)


def mapping(path):
    data = json.load(open(path))
    return [dict(m, applies_to=f["applies_to"], source=f["source"]) for f in data["families"] for m in f["metrics"]]


def series_of(families, name):
    return families.get(name, {"samples": []})["samples"]


# ---------------------------------------------------------------------------------------------
# 1. Names, types, labels

def check_promtool(text, where):
    """Prometheus' own parser reads the exposition: `promtool check metrics` exits 1 on a parse
    error, 3 on naming-convention notes only (the colons of vLLM's names, legal in the format and
    by convention left to recording rules; counters without _total, as Triton names them)."""
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    notes = [l for l in (r.stdout + r.stderr).splitlines() if l.strip()]
    check(r.returncode in (0, 3), f"{where}: promtool parses the exposition (exit {r.returncode}, "
          f"{len(notes)} naming notes{': ' + notes[0] if r.returncode not in (0, 3) and notes else ''})")
    ours = [n for n in notes if not n.startswith(("nv_inference_", "vllm:"))]
    check(not ours, f"{where}: promtool's naming notes concern the standard names only ({ours[:2]})")


def check_names(families, names, where):
    for m in names:
        name, kind = m["name"], m["type"]
        family = families.get(name)
        check(family is not None and family["type"] == kind,
              f"{where}: {name} exists as a {kind} ({family['type'] if family else 'absent'}; {m['source']})")
        models = VISION_MODELS if m["applies_to"] == "vision" else LANGUAGE_MODELS
        key = "model" if m["applies_to"] == "vision" else "model_name"
        allowed = set(m["labels"]) | set(m.get("extra_labels", []))
        samples = series_of(families, name)
        for model in models:
            mine = [l for n, l, _ in samples if l.get(key) == model]
            label_sets = [set(l) - {"le"} for l in mine]
            check(mine and all(set(m["labels"]) <= s <= allowed for s in label_sets),
                  f"{where}: {name}{{{key}=\"{model}\"}} with labels {sorted(m['labels'])} "
                  f"({sorted(map(sorted, map(list, label_sets)))[:1]})")
            if m["applies_to"] == "vision":
                check(all(l.get("version") == "1" for l in mine), f"{where}: {name} of {model} is version 1")
            for label, values in m.get("label_values", {}).items():
                present = {l.get(label) for l in mine}
                check(set(values) <= present, f"{where}: {name} of {model} has {label} in {values}")
            if kind == "histogram":
                suffixes = {n[len(name):] for n, l, _ in samples if l.get(key) == model}
                check(suffixes == {"_bucket", "_sum", "_count"} and any(l.get("le") == "+Inf" for _, l, _ in samples),
                      f"{where}: {name} of {model} has buckets up to +Inf, _sum and _count")
        others = {l.get(key) for _, l, _ in samples} - set(models)
        check(not others, f"{where}: {name} only for {m['applies_to']} models (not for {sorted(others)})")


def check_idle(families, names):
    for model in VISION_MODELS:
        check(exposition.value(families, "nv_inference_pending_request_count", model=model) == 0,
              f"idle: nothing pending for {model}")
    for gauge in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"):
        check(exposition.value(families, gauge, model_name="lm") == 0, f"idle: {gauge} is 0")
    info = [l for _, l, v in series_of(families, "vllm:cache_config_info") if v == 1]
    check(len(info) == 1 and info[0].get("num_gpu_blocks") == str(MAX_RUNNING) and info[0].get("block_size") == "4096",
          f"vllm:cache_config_info = 1 with {MAX_RUNNING} blocks (slots) of 4096 tokens (max_positions): {info}")


# ---------------------------------------------------------------------------------------------
# 2. Vision

def infer(client, model, pngs):
    tensor = httpclient.InferInput("image", [len(pngs)], "BYTES")
    tensor.set_data_from_numpy(np.array(pngs, dtype=np.object_))
    return client.infer(model, [tensor])


def standard_vs_ours(f, model):
    """Our families' numbers that the Triton names must equal."""
    ok = sum(v for _, l, v in series_of(f, "elliptical_requests_total") if l.get("model") == model and l.get("code") == "OK")
    return {
        "nv_inference_request_success": ok,
        "nv_inference_count": exposition.value(f, "elliptical_batch_size_sum", model=model),
        "nv_inference_exec_count": exposition.value(f, "elliptical_batch_size_count", model=model),
        "nv_inference_pending_request_count": exposition.value(f, "elliptical_queue_items", model=model),
    }


def check_vision(port, fixtures):
    images = os.path.join(fixtures, "classifier", "images")
    pngs = [open(os.path.join(images, f"pattern_{i % 4}.png"), "rb").read() for i in range(MAX_BATCH)]
    window = open(os.path.join(fixtures, "core", "segmenter", "images", "window_32x32.png"), "rb").read()
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{port}")
    v = lambda f, name, model="vit", **l: exposition.value(f, name, model=model, version="1", **l) or 0
    before = scrape(port)

    # One image waits for a full batch; the scrape sees it pending, then a second call fills the batch.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        # A client of its own: tritonclient.http's connections belong to the thread that made them.
        first = pool.submit(lambda: infer(httpclient.InferenceServerClient(url=f"127.0.0.1:{port}"), "vit", pngs[:1]))
        held = wait_for(lambda: (lambda f: f if v(f, "nv_inference_pending_request_count") == 1 else None)(scrape(port)),
                        "a call held in vit's batching queue shows as nv_inference_pending_request_count 1")
        check(exposition.value(held, "elliptical_queue_items", model="vit") == 1,
              "  and elliptical_queue_items agrees in the same scrape")
        rest = infer(client, "vit", pngs[1:])
        first = first.result(timeout=60)
    check(first.as_numpy("probabilities").shape[0] == 1 and rest.as_numpy("probabilities").shape[0] == MAX_BATCH - 1,
          "both calls answered")
    seg = infer(client, "seg", [window] * MAX_BATCH)
    check(seg.as_numpy("mask").shape[0] == MAX_BATCH, f"seg: {MAX_BATCH} masks")
    try:
        infer(client, "vit", [b"not an image"] + pngs[1:])
        check(False, "a bad image is refused")
    except InferenceServerException as e:
        check("400" in str(e.status()) or "image" in str(e).lower(), f"a bad image is refused: {str(e)[:80]}")

    after = wait_for(lambda: (lambda f: f if v(f, "nv_inference_pending_request_count") == 0 else None)(scrape(port)),
                     "vit's queue empty again")
    d = lambda name, model="vit", **l: v(after, name, model, **l) - v(before, name, model, **l)
    check(d("nv_inference_request_success") == 2, f"vit: nv_inference_request_success +2 ({d('nv_inference_request_success')})")
    check(d("nv_inference_count") == MAX_BATCH, f"vit: nv_inference_count +{MAX_BATCH} images ({d('nv_inference_count')})")
    check(d("nv_inference_exec_count") == 1, f"vit: nv_inference_exec_count +1 batch ({d('nv_inference_exec_count')})")
    check(d("nv_inference_request_failure", reason="OTHER") == 1
          and sum(d("nv_inference_request_failure", reason=r) for r in ("REJECTED", "CANCELED", "BACKEND")) == 0,
          "vit: the bad image counts once, as nv_inference_request_failure{reason=OTHER}")
    for name in ("nv_inference_request_duration_us", "nv_inference_queue_duration_us",
                 "nv_inference_compute_input_duration_us", "nv_inference_compute_infer_duration_us"):
        check(d(name) > 0, f"vit: {name} grew ({d(name):.0f} us)")
    # The call held for a full batch waited in the queue; its wait is in the queue counter.
    held_us = d("nv_inference_queue_duration_us")
    ours = exposition.value(after, "elliptical_queue_duration_seconds_sum", model="vit") - \
        exposition.value(before, "elliptical_queue_duration_seconds_sum", model="vit")
    check(abs(held_us - ours * 1e6) <= 1e-6 * max(1.0, held_us) + 1,
          f"vit: queue time in microseconds = ours in seconds ({held_us:.0f} us, {ours * 1e6:.0f} us)")
    check(d("nv_inference_request_success", "seg") == 1 and d("nv_inference_count", "seg") == MAX_BATCH,
          "seg: one call of 8 images counted")
    for model in VISION_MODELS:
        mine = {name: v(after, name, model) for name in standard_vs_ours(after, model)}
        check(mine == standard_vs_ours(after, model), f"{model}: Triton's names agree with ours: {mine}")


# ---------------------------------------------------------------------------------------------
# 3. Language

def lm_values(port, *names):
    f = scrape(port)
    return f, [exposition.value(f, n, model_name="lm") or 0 for n in names]


def check_language(port):
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=120)
    release = threading.Event()

    def hold(i):
        stream = client.completions.create(model="lm", prompt=f"hold {i}", max_tokens=HOLD_TOKENS, stream=True)
        try:
            next(iter(stream))
            release.wait(120)
        finally:
            stream.close()

    with concurrent.futures.ThreadPoolExecutor(HELD_STREAMS) as pool:
        held = [pool.submit(hold, i) for i in range(HELD_STREAMS)]
        def held_state(f):
            lm = lambda name: exposition.value(f, name, model_name="lm")
            ours = lambda name: exposition.value(f, name, model="lm")
            return (lm("vllm:num_requests_running") == MAX_RUNNING and lm("vllm:num_requests_waiting") >= 1
                    and lm("vllm:kv_cache_usage_perc") == 1.0
                    # and ours agree (the poller's thread may sample between two families of a scrape)
                    and ours("elliptical_running_sequences") == lm("vllm:num_requests_running")
                    and ours("elliptical_waiting_sequences") == lm("vllm:num_requests_waiting")
                    and ours("elliptical_kv_cache_slots_used") / MAX_RUNNING == lm("vllm:kv_cache_usage_perc"))

        # The scheduler's counts and the cache's slots are read one after the other, so a scrape may
        # fall between a sequence's admission and its slot: the condition waits for a scrape in which
        # the held state shows whole.
        wait_for(lambda: (lambda f: f if held_state(f) else None)(scrape(port)),
                 f"{HELD_STREAMS} held streams: {MAX_RUNNING} running, the rest waiting, every cache slot "
                 "held (vllm:kv_cache_usage_perc 1), and our gauges equal in the same scrape")
        release.set()
        for h in held:
            h.result(timeout=120)
    wait_for(lambda: lm_values(port, "vllm:num_requests_running", "vllm:num_requests_waiting")[1] == [0, 0],
             "the released streams leave")

    names = ("vllm:time_to_first_token_seconds_count", "vllm:e2e_request_latency_seconds_count",
             "vllm:inter_token_latency_seconds_count", "vllm:inter_token_latency_seconds_sum",
             "vllm:prompt_tokens_total", "vllm:generation_tokens_total")
    before_f, before = lm_values(port, *names)
    prompt = completion = gaps = 0
    for i in range(3):
        r = client.completions.create(model="lm", prompt=f"And God said {i}", max_tokens=8 + i)
        prompt += r.usage.prompt_tokens
        completion += r.usage.completion_tokens
        gaps += max(0, r.usage.completion_tokens - 1)
    after_f, after = lm_values(port, *names)
    d = dict(zip(names, (a - b for a, b in zip(after, before))))
    check(d["vllm:time_to_first_token_seconds_count"] == 3 and d["vllm:e2e_request_latency_seconds_count"] == 3,
          f"3 completions: one TTFT and one e2e observation each ({d})")
    check(d["vllm:inter_token_latency_seconds_count"] == gaps and (gaps == 0 or d["vllm:inter_token_latency_seconds_sum"] > 0),
          f"inter-token gaps counted one per token after the first: {gaps}")
    check(d["vllm:prompt_tokens_total"] == prompt and d["vllm:generation_tokens_total"] == completion,
          f"token counters moved by the usage reported: {prompt} prompt, {completion} generated")
    for ours, theirs in (("elliptical_prompt_tokens_total", "vllm:prompt_tokens_total"),
                         ("elliptical_generated_tokens_total", "vllm:generation_tokens_total"),
                         ("elliptical_time_to_first_token_seconds_count", "vllm:time_to_first_token_seconds_count"),
                         ("elliptical_generation_duration_seconds_sum", "vllm:e2e_request_latency_seconds_sum")):
        check(exposition.value(after_f, ours, model="lm") == exposition.value(after_f, theirs, model_name="lm"),
              f"{theirs} = {ours}")


# ---------------------------------------------------------------------------------------------

def start(binary, repo, work, *flags):
    server, http, metrics = start_with_ports(binary, repo, work, *flags)
    wait_for(lambda: http_get(http, "/v2/health/ready")[0] == 200, "every model ready")
    return server, http, metrics


def check_access(binary, repo, work):
    """/metrics on the HTTP port: the metrics port's basic auth, not the bearer tokens."""
    with open(os.path.join(work, "tokens.txt"), "w") as f:
        f.write(f"{TOKEN}\n")
    with open(os.path.join(work, "users.txt"), "w") as f:
        f.write(f"{USER}:{PASSWORD}\n")
    server, http, metrics = start(binary, repo, os.path.join(work, "auth"),
                                  f"--auth_tokens_file={os.path.join(work, 'tokens.txt')}",
                                  f"--metrics_auth_file={os.path.join(work, 'users.txt')}")
    try:
        basic = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
        wrong = {"Authorization": "Basic " + base64.b64encode(f"{USER}:nope".encode()).decode()}
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        for port, where in ((http, "HTTP port"), (metrics, "metrics port")):
            status, _, headers = http_get(port, "/metrics")
            check(status == 401 and "Basic" in headers.get("WWW-Authenticate", ""),
                  f"{where}: /metrics without credentials: 401 asking for basic auth ({status})")
            check(http_get(port, "/metrics", wrong)[0] == 401, f"{where}: a wrong password: 401")
            status, body, _ = http_get(port, "/metrics", basic)
            check(status == 200 and "nv_inference_request_success" in body, f"{where}: with the user's password: 200")
        check(http_get(http, "/metrics", bearer)[0] == 401, "HTTP port: a bearer token does not open /metrics")
        check(http_get(http, "/v2/models/vit")[0] == 401 and http_get(http, "/v2/models/vit", bearer)[0] == 200,
              "HTTP port: inference routes still need the bearer token")
    finally:
        check(stop_server(server) == 0, "auth server stops cleanly")
    server, http, _ = start(binary, repo, os.path.join(work, "off"), "--http_metrics=false")
    try:
        check(http_get(http, "/metrics")[0] == 404, "--http_metrics=false: no /metrics on the HTTP port (404)")
    finally:
        check(stop_server(server) == 0, "server without HTTP metrics stops cleanly")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-binary", required=True)
    p.add_argument("--fixtures", required=True)
    p.add_argument("--names", default=os.path.join(HERE, "standard_metric_names.json"))
    args = p.parse_args()
    names = mapping(args.names)
    check(len(names) >= 18, f"{len(names)} mapped names read from {os.path.basename(args.names)}")
    work = tempfile.mkdtemp(prefix="standard_metrics_")
    code = 1
    server = None
    try:
        repo = fixture_repository(args.fixtures, work)
        config_path = os.path.join(repo, "lm", "config.json")
        config = json.load(open(config_path))
        config.setdefault("generation", {})["max_new_tokens_limit"] = HOLD_TOKENS
        json.dump(config, open(config_path, "w"))
        server, http, metrics = start(args.server_binary, repo, os.path.join(work, "main"),
                                      f"--max_batch_size={MAX_BATCH}", "--max_queue_delay_us=60000000",
                                      "--instances=1", f"--max_running_sequences={MAX_RUNNING}")
        texts = {}
        for port, where in ((http, "HTTP port"), (metrics, "metrics port")):
            status, texts[where], headers = http_get(port, "/metrics")
            check(status == 200 and headers.get("Content-Type", "").startswith("text/plain"),
                  f"{where}: GET /metrics answers the text exposition ({headers.get('Content-Type')})")
            check_promtool(texts[where], where)
            check_names(exposition.parse(texts[where]), names, where)
        # The metrics port's exposer adds three families about its own scrapes (exposer_*).
        first = set(exposition.parse(texts["HTTP port"]))
        second = {n for n in exposition.parse(texts["metrics port"]) if not n.startswith("exposer_")}
        check(first == second, f"both ports serve the same families ({sorted(first ^ second)})")
        check_idle(scrape(http), names)
        check_vision(http, args.fixtures)
        check_language(http)
        # After the load, still every name with its type and labels.
        check_names(scrape(metrics), names, "metrics port after load")
        code = stop_server(server)
        server = None
        check(code == 0, "server exits 0 on SIGTERM")
        check_access(args.server_binary, repo, work)
    finally:
        if server is not None:
            stop_server(server)
        if code != 0:
            for log in ("main", "auth", "off"):
                path = os.path.join(work, log, "server.log")
                if os.path.exists(path):
                    print(f"--- {path}\n" + open(path).read()[-3000:])
        shutil.rmtree(work, ignore_errors=True)
    print(f"{checks.passed} checks passed")


if __name__ == "__main__":
    main()
