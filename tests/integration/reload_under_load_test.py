#!/usr/bin/env python3
"""Reloads under load: a real server on loopback (--model_control_mode=explicit --load_model=*)
over a temporary copy of the fixture models (classifier "vit", segmenter "seg", language model
"lm"), with a load generator (threads, each with its own elliptical.v1 channel through the Python
client) calling Classify on "vit", streaming Generate from "lm" and calling Segment on "seg"
without pause, while the test

  - reloads "vit" three times and "lm" three times (LoadModel): no Classify call fails, every
    Generate stream ends with its final message and the number of tokens it asked for;
  - unloads "seg" and loads it again: its calls fail only with UNAVAILABLE, and only while it is
    unloaded;
  - reloads "vit" with an unknown key in its config.json: the load fails naming the key, "vit"
    keeps serving (no failed call, the index READY with the failure as its reason), and once the
    file is restored a reload succeeds and clears the reason;

then reads the index (every model READY) and the metrics port
(elliptical_model_lifecycle_total{action="reload",outcome="ok"} counts the reloads).

    .venv/bin/python tests/integration/reload_under_load_test.py \\
        --server-binary build/server/elliptical-server --fixtures build/fixtures
"""
import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.request

from elliptical_client import Client, ClientError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import checks  # noqa: E402
from checks import check, wait_for  # noqa: E402
from server import start_with_ports, fixture_repository, stop_server  # noqa: E402

PROMPT = "Hello there"
TOKENS = 48  # per stream: long enough that streams straddle a swap
RELOADS = 3


class LoadGenerator:
    """Threads calling the server until stop(): Classify on "vit", Generate streams on "lm",
    Segment on "seg". Every call is recorded with its outcome and its start and end times."""

    def __init__(self, address, classify_image, segment_image, classifiers=2, generators=2):
        self.address = address
        self.classify_image = open(classify_image, "rb").read()
        self.segment_image = open(segment_image, "rb").read()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.classify_ok = 0
        self.classify_failed = []      # (error,)
        self.streams_ok = 0
        self.stream_failures = []      # what went wrong with a stream
        self.stream_spans = []         # (start, end) of every complete stream
        self.segment_calls = []        # (start, end, "OK" or the error code, message)
        self.threads = ([threading.Thread(target=self._classify, daemon=True) for _ in range(classifiers)]
                        + [threading.Thread(target=self._generate, daemon=True) for _ in range(generators)]
                        + [threading.Thread(target=self._segment, daemon=True)])

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=120)
        check(not any(t.is_alive() for t in self.threads), "the load generator's threads ended")

    def counts(self):
        with self.lock:
            return self.classify_ok, self.streams_ok, len(self.segment_calls)

    def _classify(self):
        with Client(self.address, timeout_s=60) as c:
            while not self.stopping.is_set():
                try:
                    result = c.classify("vit", [self.classify_image], top_k=1)
                    good = len(result) == 1 and len(result[0]) == 1
                    with self.lock:
                        if good:
                            self.classify_ok += 1
                        else:
                            self.classify_failed.append(f"a malformed answer: {result}")
                except ClientError as e:
                    with self.lock:
                        self.classify_failed.append(str(e))
                time.sleep(0.002)

    def _generate(self):
        with Client(self.address, timeout_s=120) as c:
            while not self.stopping.is_set():
                start = time.monotonic()
                g = c.generate("lm", PROMPT, max_new_tokens=TOKENS)
                try:
                    g.text()
                    s = g.summary
                    problem = None
                    if s is None:
                        problem = "the stream ended without its final message"
                    elif s.finish_reason != "length" or s.generated_tokens != TOKENS or len(g.token_ids) != TOKENS:
                        problem = (f"finish {s.finish_reason}, {s.generated_tokens} tokens counted, "
                                   f"{len(g.token_ids)} received; {TOKENS} asked")
                except ClientError as e:
                    problem = f"the stream broke: {e}"
                with self.lock:
                    if problem:
                        self.stream_failures.append(problem)
                    else:
                        self.streams_ok += 1
                        self.stream_spans.append((start, time.monotonic()))
                time.sleep(0.002)

    def _segment(self):
        with Client(self.address, timeout_s=60) as c:
            while not self.stopping.is_set():
                start = time.monotonic()
                try:
                    c.segment("seg", self.segment_image)
                    outcome = ("OK", "")
                except ClientError as e:
                    outcome = (e.code, e.message)
                with self.lock:
                    self.segment_calls.append((start, time.monotonic()) + outcome)
                time.sleep(0.002)


def lifecycle_counts(metrics_port):
    """{(model, action, outcome): count} of elliptical_model_lifecycle_total, summed over versions."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r'elliptical_model_lifecycle_total\{(.*)\} ([0-9.e+]+)$', line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        key = (labels["model"], labels["action"], labels["outcome"])
        out[key] = out.get(key, 0) + float(m.group(2))
    return out


def index_of(client):
    return {(v.name, v.version): v for v in client.repository_index()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-binary", required=True)
    p.add_argument("--fixtures", required=True, help="the build's fixtures directory")
    args = p.parse_args()
    began = time.monotonic()
    work = tempfile.mkdtemp(prefix="reload_under_load_")
    repo = fixture_repository(args.fixtures, work)
    server, _, metrics_port = start_with_ports(args.server_binary, repo, work, "--model_control_mode=explicit",
                                               "--load_model=*")
    address = f"127.0.0.1:{open(os.path.join(work, 'port')).read().strip()}"
    load = None
    try:
        control = Client(address, timeout_s=120)
        control.wait_until_serving(timeout_s=60)
        wait_for(lambda: all(v.state == "ready" for v in control.repository_index()), "every model ready")

        load = LoadGenerator(address, os.path.join(args.fixtures, "classifier", "images", "pattern_0.png"),
                             os.path.join(args.fixtures, "core", "segmenter", "images", "large_70x45.png"))
        load.start()
        wait_for(lambda: load.counts()[0] >= 20 and load.counts()[1] >= 2 and load.counts()[2] >= 5,
                 "the load generator running (calls, streams and segments answered)")

        def under_load():
            """Waits until each kind of call has completed again since now."""
            c0, s0, g0 = load.counts()
            wait_for(lambda: load.counts()[0] >= c0 + 10 and load.counts()[1] >= s0 + 2 and load.counts()[2] > g0,
                     "more calls and streams answered")

        # --- three reloads of each, under load.
        reload_returns = []
        for i in range(RELOADS):
            for name in ("vit", "lm"):
                versions = control.load_model(name)
                reload_returns.append(time.monotonic())
                check(len(versions) == 1 and versions[0].state == "ready" and versions[0].load_ms > 0,
                      f"reload {i + 1} of {name}: version {versions[0].version} {versions[0].state}, "
                      f"loaded in {versions[0].load_ms:.1f} ms, warmed up in {versions[0].warmup_ms:.1f} ms")
                under_load()

        # --- B: unloaded, then loaded again; its calls fail only meanwhile, and only UNAVAILABLE.
        unload_called = time.monotonic()
        control.unload_model("seg")
        unload_returned = time.monotonic()
        wait_for(lambda: any(s >= unload_returned and code != "OK" for s, _, code, _ in list(load.segment_calls)),
                 "seg's calls refused once it is unloaded")
        # UNLOADING until the calls it accepted before the unload finish, then UNAVAILABLE.
        check(index_of(control)[("seg", 1)].state in ("unloading", "unavailable"),
              "seg is UNLOADING or UNAVAILABLE in the index once unloaded")
        wait_for(lambda: index_of(control)[("seg", 1)].state == "unavailable",
                 "seg UNAVAILABLE in the index once its accepted calls have finished")
        load_called = time.monotonic()
        control.load_model("seg")
        load_returned = time.monotonic()
        wait_for(lambda: any(s >= load_returned and code == "OK" for s, _, code, _ in list(load.segment_calls)),
                 "seg answering again once loaded")

        # --- a reload that fails under load: A keeps serving.
        config_path = os.path.join(repo, "vit", "config.json")
        good_config = open(config_path).read()
        bad = json.loads(good_config)
        bad["no_such_key"] = 1
        with open(config_path + ".tmp", "w") as f:
            json.dump(bad, f)
        os.rename(config_path + ".tmp", config_path)
        failed_before = len(load.classify_failed)
        try:
            control.load_model("vit")
            check(False, "a reload of vit with an unknown key in config.json fails")
        except ClientError as e:
            check(e.code == "INVALID_ARGUMENT" and "no_such_key" in e.message,
                  f"a reload with an unknown key fails naming it: {e.code}: {e.message[:120]}")
        under_load()
        vit = index_of(control)[("vit", 1)]
        check(vit.state == "ready" and "no_such_key" in vit.reason,
              f"vit READY after the failed reload, the failure its reason: {vit.reason[:100]!r}")
        check(len(load.classify_failed) == failed_before, "no Classify call failed through the failed reload")
        with open(config_path + ".tmp", "w") as f:
            f.write(good_config)
        os.rename(config_path + ".tmp", config_path)
        versions = control.load_model("vit")
        check(versions[0].state == "ready" and versions[0].reason == "",
              "the restored config reloads and clears the reason")
        under_load()

        load.stop()
        classify_ok, streams_ok, _ = load.counts()

        # --- what the load generator saw.
        check(not load.classify_failed, f"{classify_ok} Classify calls on vit, none failed "
                                         f"(failures: {load.classify_failed[:3]})")
        check(not load.stream_failures, f"{streams_ok} Generate streams on lm, each complete with its "
                                         f"{TOKENS} tokens (failures: {load.stream_failures[:3]})")
        straddling = sum(1 for s, e in load.stream_spans if any(s < r < e for r in reload_returns))
        segments = load.segment_calls
        failed = [c for c in segments if c[2] != "OK"]
        check(all(code == "UNAVAILABLE" for _, _, code, _ in failed),
              f"seg's calls failed only with UNAVAILABLE: {sorted({c[2] + ': ' + c[3] for c in failed})[:3]}")
        check(all(e >= unload_called and s <= load_returned for s, e, _, _ in failed),
              "seg's calls failed only while it was unloaded")
        between = [c for c in segments if c[0] >= unload_returned and c[1] <= load_called]
        check(between and all(code == "UNAVAILABLE" for _, _, code, _ in between),
              f"every one of seg's {len(between)} calls made while it was unloaded got UNAVAILABLE")
        outside = [c for c in segments if c[1] < unload_called or c[0] > load_returned]
        check(all(code == "OK" for _, _, code, _ in outside),
              f"seg's {len(outside)} calls before the unload and after the load succeeded")

        # --- the index and the metrics at the end.
        index = index_of(control)
        check({k: (v.state, v.reason) for k, v in index.items()}
              == {("vit", 1): ("ready", ""), ("lm", 1): ("ready", ""), ("seg", 1): ("ready", "")},
              f"the index at the end: every model READY, no reason: "
              f"{ {k: (v.state, v.reason[:40]) for k, v in index.items()} }")
        counts = lifecycle_counts(metrics_port)
        check(counts.get(("vit", "reload", "ok")) == RELOADS + 1 and counts.get(("lm", "reload", "ok")) == RELOADS,
              f"elliptical_model_lifecycle_total reload ok: vit {counts.get(('vit', 'reload', 'ok'))} "
              f"({RELOADS} + the restored one), lm {counts.get(('lm', 'reload', 'ok'))}")
        check(counts.get(("vit", "reload", "failed")) == 1, "elliptical_model_lifecycle_total: vit's failed reload")
        check(counts.get(("seg", "unload", "ok")) == 1 and counts.get(("seg", "load", "ok")) == 2,
              f"elliptical_model_lifecycle_total: seg unloaded once, loaded twice (start-up and again): "
              f"{ {k: v for k, v in counts.items() if k[0] == 'seg'} }")
        print(f"counts: {classify_ok} Classify calls on vit, {streams_ok} Generate streams on lm "
              f"({straddling} of them open across a reload's return), {len(segments)} Segment calls on seg "
              f"({len(failed)} UNAVAILABLE while unloaded), reloads: vit {RELOADS} + 1 failed + 1, "
              f"lm {RELOADS}; {time.monotonic() - began:.1f} s", flush=True)
        control.close()
    finally:
        if load is not None:
            load.stopping.set()
        code = stop_server(server)
    check(code == 0, f"the server drained and exited 0 (got {code}); log: {work}/server.log")
    shutil.rmtree(work, ignore_errors=True)
    print(f"{checks.passed} checks passed")


if __name__ == "__main__":
    main()
