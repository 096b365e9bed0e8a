#!/usr/bin/env python3
"""Poll mode end to end: a real server on loopback (--model_control_mode=poll
--repository_poll_s=0.5) over a temporary repository holding the fixture classifier as a
versioned model (vit/1/...), driven by Triton's own client (tritonclient.grpc, the
protocol-clients venv):

  - version 2 is staged outside the repository (on the same filesystem) and renamed into place as
    vit/2, so the poller never sees a half-copied directory (the safe copy docs/model_formats.md
    recommends): the index turns to version 2 READY and version 1 UNAVAILABLE (the default policy,
    latest 1), and an inference asking for model_version "2" is answered by version "2";
  - a version 3 whose config.json holds an unknown key: its load fails (UNAVAILABLE, the reason
    naming the key) and version 2 keeps serving;
  - throughout, a client thread asking for the default version: no call fails (the new version
    loads beside the old one, which serves until it is ready; model_repository.h).

    .venv-clients/bin/python tests/integration/repository_poll_test.py \\
        --server-binary build/server/elliptical-server --fixtures build/fixtures
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import checks  # noqa: E402
from checks import check, wait_for  # noqa: E402
from server import start_server, stop_server  # noqa: E402


def wait_triton(condition, what, seconds=60):
    """wait_for, a tritonclient error counting as not yet."""
    return wait_for(condition, what, seconds, retry_on=(InferenceServerException,))


def index(client):
    """{(name, version): (state, reason)} of the repository index."""
    return {(m.name, m.version): (m.state, m.reason) for m in client.get_model_repository_index().models}


def stage_version(source, repo, work, version, edit=None):
    """Copies `source` to a staging directory beside the repository (same filesystem), lets
    `edit` change its config, then renames it into place as repo/vit/VERSION in one step."""
    staging = os.path.join(work, "staging", str(version))
    shutil.copytree(source, staging)
    if edit:
        path = os.path.join(staging, "config.json")
        config = json.load(open(path))
        edit(config)
        json.dump(config, open(path, "w"))
    os.rename(staging, os.path.join(repo, "vit", str(version)))


def classify(client, image, version=""):
    inp = grpcclient.InferInput("image", [1], "BYTES")
    inp.set_data_from_numpy(np.array([image], dtype=np.object_))
    return client.infer("vit", [inp], model_version=version).get_response()


class DefaultVersionCaller(threading.Thread):
    """Classifies with the default version (no model_version) until stopped; records each
    failure."""

    def __init__(self, address, image):
        super().__init__(daemon=True)
        self.client = grpcclient.InferenceServerClient(address)
        self.image = image
        self.stopping = threading.Event()
        self.ok = 0
        self.failures = []

    def run(self):
        while not self.stopping.is_set():
            try:
                classify(self.client, self.image)
                self.ok += 1
            except InferenceServerException as e:
                self.failures.append(f"{e.status()} {e.message()}")
            time.sleep(0.002)

    def stop(self):
        self.stopping.set()
        self.join(timeout=60)
        self.client.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-binary", required=True)
    p.add_argument("--fixtures", required=True, help="the build's fixtures directory")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="repository_poll_")
    source = os.path.join(args.fixtures, "classifier", "models", "vit-test")
    image = open(os.path.join(args.fixtures, "classifier", "images", "pattern_0.png"), "rb").read()
    repo = os.path.join(work, "models")
    os.makedirs(os.path.join(repo, "vit"))
    shutil.copytree(source, os.path.join(repo, "vit", "1"))
    server, address = start_server(args.server_binary, repo, work, "--compute_threads=1",
                                   "--model_control_mode=poll", "--repository_poll_s=0.5")
    try:
        client = grpcclient.InferenceServerClient(address)
        wait_triton(lambda: index(client).get(("vit", "1"), ("",))[0] == "READY", "vit version 1 READY")
        r = classify(client, image)
        check(r.model_version == "1", f"version 1 answers by default: {r.model_version!r}")
        caller = DefaultVersionCaller(address, image)
        caller.start()

        # --- version 2 renamed into place: it takes over (latest 1), version 1 is unloaded.
        stage_version(source, repo, work, 2)
        wait_triton(lambda: index(client).get(("vit", "2"), ("",))[0] == "READY"
                    and index(client).get(("vit", "1"), ("",))[0] == "UNAVAILABLE",
                    "the poller loads version 2 and unloads version 1")
        check(index(client) == {("vit", "2"): ("READY", ""), ("vit", "1"): ("UNAVAILABLE", index(client)[("vit", "1")][1])},
              f"the index: version 2 READY, version 1 UNAVAILABLE: {index(client)}")
        r = classify(client, image, version="2")
        check(r.model_version == "2" and r.outputs, f"model_version \"2\" is answered by version {r.model_version!r}")
        r = classify(client, image)
        check(r.model_version == "2", f"the default version is now 2: {r.model_version!r}")
        try:
            classify(client, image, version="1")
            check(False, "version 1 refused once the policy drops it")
        except InferenceServerException as e:
            check("UNAVAILABLE" in str(e.status()) or "unavailable" in str(e.message()).lower(),
                  f"version 1 refused once the policy drops it: {e.status()} {e.message()[:100]}")

        # --- a bad version 3: its load fails, version 2 serves on.
        stage_version(source, repo, work, 3, edit=lambda c: c.update(no_such_key=1))
        wait_triton(lambda: "no_such_key" in index(client).get(("vit", "3"), ("", ""))[1],
                    "the poller tries version 3 and reports why it failed")
        now = index(client)
        check(now[("vit", "3")][0] == "UNAVAILABLE", f"version 3 UNAVAILABLE: {now[('vit', '3')]}")
        check(now[("vit", "2")][0] == "READY", f"version 2 still READY: {now[('vit', '2')]}")
        for version in ("2", ""):
            r = classify(client, image, version=version)
            check(r.model_version == "2", f"model_version {version!r}: version 2 still answers")
        caller.stop()
        check(caller.ok > 0 and not caller.failures,
              f"{caller.ok} calls to the default version through both changes, "
              f"{len(caller.failures)} failed: {sorted(set(caller.failures))[:3]}")
        client.close()
    finally:
        code = stop_server(server)
    check(code == 0, f"the server drained and exited 0 (got {code}); log: {work}/server.log")
    shutil.rmtree(work, ignore_errors=True)
    print(f"{checks.passed} checks passed")


if __name__ == "__main__":
    main()
