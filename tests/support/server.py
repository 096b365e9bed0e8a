"""Starts the real server binary for the Python integration tests."""
import os
import shutil
import signal
import subprocess
import time


def start_server(binary, repository, work, *flags):
    """Runs the server on a free loopback port (stderr to WORK/server.log) and waits for it to
    write that port. -> (process, "127.0.0.1:PORT"); the caller stops the process."""
    port_file = os.path.join(work, "port")
    # The HTTP port too is a free one unless the test names it: servers started side by side
    # must not contend for the default (the second would refuse to start).
    http = [] if any(f.startswith("--http_port=") for f in flags) else ["--http_port=0"]
    server = subprocess.Popen([binary, f"--model_repository={repository}", "--host=127.0.0.1", "--port=0",
                               f"--port_file={port_file}", "--metrics_port=-1", *http, *flags],
                              stderr=open(os.path.join(work, "server.log"), "w"))
    deadline = time.time() + 60
    while not (os.path.exists(port_file) and open(port_file).read().strip()) and time.time() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}; see {work}/server.log")
        time.sleep(0.05)
    return server, f"127.0.0.1:{open(port_file).read().strip()}"


def read_port(path, server=None, timeout_s=60):
    """The port a server wrote to `path` (its --*_port_file), waiting up to `timeout_s`; exits
    the test if `server` (a Popen) ends first or no port comes."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if os.path.exists(path) and open(path).read().strip():
            return int(open(path).read().strip())
        if server is not None and server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode} before writing {path}")
        time.sleep(0.05)
    raise SystemExit(f"no port in {path} within {timeout_s} s")


def start_with_ports(binary, repository, work, *flags):
    """The server (one compute thread) with its HTTP and metrics ports on free ones.
    -> (process, http port, metrics port); the caller stops the process."""
    os.makedirs(work, exist_ok=True)
    http_file, metrics_file = os.path.join(work, "http_port"), os.path.join(work, "metrics_port")
    server, _ = start_server(binary, repository, work, "--compute_threads=1", "--http_port=0",
                             f"--http_port_file={http_file}", "--metrics_port=0",
                             f"--metrics_port_file={metrics_file}", *flags)
    return server, read_port(http_file, server), read_port(metrics_file, server)


def fixture_repository(fixtures, work, names=("vit", "seg", "lm")):
    """A repository of the build's fixture models (a classifier "vit", a segmenter "seg" and a
    language model "lm", or those of them in NAMES) under WORK/models. -> its path."""
    repo = os.path.join(work, "models")
    for name, source in (("vit", ("classifier", "models", "vit-test")),
                         ("seg", ("core", "segmenter", "models", "seg-linear")),
                         ("lm", ("core", "lm", "models", "lm-chat"))):
        if name not in names:
            continue
        shutil.copytree(os.path.join(fixtures, *source), os.path.join(repo, name))
    return repo


def stop_server(server, timeout_s=30):
    """SIGTERM, then the exit code once the server has drained and exited (-1 when it had not
    within `timeout_s`: it is killed)."""
    server.send_signal(signal.SIGTERM)
    try:
        return server.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        server.kill()
        return -1
