"""What the soak (soak.py) and the fault cases (faults.py) share: starting the real server on
loopback with its metrics endpoint, reading /metrics and /proc/<pid>, and waiting on a condition
with a timeout (a poll of the server's own state, never a sleep to order events)."""
import os
import re
import signal
import subprocess
import time
import urllib.request

from elliptical_client import Client, ClientError

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
EXAMPLES = os.path.join(ROOT, "docs", "examples")
CLASSIFIER, SEGMENTER, LM = "digits-vit", "digit-scenes-segmenter", "kjv-lm"

_SERIES = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class Metrics:
    """One scrape of a Prometheus text page: value(name, label=...) sums the matching series."""

    def __init__(self, text=""):
        self.series = []  # (name, {label: value}, float)
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = _SERIES.match(line)
            if not m:
                continue
            try:
                value = float(m.group(3))
            except ValueError:
                continue
            self.series.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), value))

    def has(self, name):
        return any(n == name for n, _, _ in self.series)

    def value(self, name, **labels):
        """The sum of every series of `name` whose labels include `labels` (0 when none)."""
        return sum(v for n, l, v in self.series
                   if n == name and all(l.get(k) == str(x) for k, x in labels.items()))

    def by(self, name, label, **labels):
        """{label value: summed value} over the series of `name` matching `labels`."""
        out = {}
        for n, l, v in self.series:
            if n == name and all(l.get(k) == str(x) for k, x in labels.items()):
                out[l.get(label, "")] = out.get(l.get(label, ""), 0.0) + v
        return out


def scrape(url, timeout_s=5.0):
    """A Metrics of `url`; an empty one when the endpoint does not answer."""
    if not url:
        return Metrics()
    try:
        return Metrics(urllib.request.urlopen(url, timeout=timeout_s).read().decode())
    except OSError:
        return Metrics()


def proc_status(pid):
    """{"rss_bytes", "threads", "fds"} of a live process of ours, or {} when it is gone."""
    if not pid:
        return {}
    try:
        text = open(f"/proc/{pid}/status").read()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return {}
    rss = re.search(r"^VmRSS:\s+(\d+)", text, re.M)
    threads = re.search(r"^Threads:\s+(\d+)", text, re.M)
    return {"rss_bytes": int(rss.group(1)) * 1024 if rss else None,
            "threads": int(threads.group(1)) if threads else None, "fds": fds}


def wait_until(what, predicate, timeout_s, poll_s=0.05):
    """Polls predicate() until it returns a true value (returned) or timeout_s passes (raises
    TimeoutError naming `what` and the last value)."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not reached after {timeout_s:g} s (last: {last!r})")
        time.sleep(poll_s)


class Server:
    """The real server binary on loopback: a free gRPC port and a free metrics port (both read from
    their port files), stderr to `log` (a path, or an open file such as /dev/full), health polled
    until SERVING. `address`, `metrics_url`, `pid`; stop() sends SIGTERM and returns the exit
    status. `prefix` runs the binary through another command (e.g. a mount namespace)."""

    def __init__(self, binary, repository, work, flags=(), log=None, stdout=None, prefix=(),
                 wait_serving=True, start_timeout_s=120):
        os.makedirs(work, exist_ok=True)
        self.work = work
        port_file, metrics_port_file = os.path.join(work, "port"), os.path.join(work, "metrics_port")
        for f in (port_file, metrics_port_file):
            if os.path.exists(f):
                os.remove(f)
        command = [*prefix, binary, f"--model_repository={repository}", "--host=127.0.0.1", "--port=0",
                   f"--port_file={port_file}", "--metrics_host=127.0.0.1", "--metrics_port=0",
                   f"--metrics_port_file={metrics_port_file}", *flags]
        if log is None:
            log = os.path.join(work, "server.log")
        self.log_path = log if isinstance(log, str) else None
        stderr = open(log, "w") if isinstance(log, str) else log
        self.process = subprocess.Popen(command, stderr=stderr, stdout=stdout or subprocess.DEVNULL)
        self.pid = self.process.pid

        def ports():
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode} while starting"
                                   + (f"; see {self.log_path}" if self.log_path else ""))
            read = [open(f).read().strip() if os.path.exists(f) else "" for f in (port_file, metrics_port_file)]
            return read if all(read) else None

        port, metrics_port = wait_until("server ports", ports, start_timeout_s)
        self.address = f"127.0.0.1:{port}"
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        if wait_serving:
            with Client(self.address, timeout_s=5) as c:
                c.wait_until_serving(timeout_s=start_timeout_s)

    def alive(self):
        return self.process.poll() is None

    def stop(self, timeout_s=60):
        """SIGTERM, then the exit status (None if it did not exit within timeout_s; it is then
        killed)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None

    def log(self):
        if self.log_path and os.path.exists(self.log_path):
            return open(self.log_path, errors="replace").read()
        return ""


def idle(metrics):
    """What the server's gauges say is still held, as {"gauge": value} of the non-zero ones (empty
    when every call, queue, sequence and cache slot is released)."""
    held = {}
    for name in ("elliptical_in_flight_requests", "elliptical_running_sequences", "elliptical_waiting_sequences",
                 "elliptical_kv_cache_slots_used", "elliptical_queue_items", "elliptical_kv_cache_reserved_bytes"):
        v = metrics.value(name)
        if v:
            held[name] = v
    return held


def example(name):
    return os.path.join(EXAMPLES, name)


__all__ = ["Client", "ClientError", "Metrics", "Server", "scrape", "proc_status", "wait_until", "idle",
           "example", "ROOT", "CLASSIFIER", "SEGMENTER", "LM"]
