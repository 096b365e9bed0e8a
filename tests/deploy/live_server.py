"""The live half of tests/deploy/kubernetes_test.py: the real server started with a manifest's
arguments, a real Prometheus scraping it, and the prometheus-adapter rule evaluated there. The
manifest half (rendering, schemas, cross-references) stays in kubernetes_test.py, which calls
check_live_cpu and check_live_gpu with what it read from the rendered objects."""
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import yaml

from checks import check
from elliptical_client import Client, ClientError
from server import start_server

# Flags the test sets itself: where the server listens and which models it reads.
TEST_OWNED_FLAGS = {"model_repository", "host", "port", "port_file", "metrics_host", "metrics_port",
                    "metrics_port_file"}
NAMESPACE, POD = "kubernetes-test", "elliptical-server-0"  # the labels Prometheus attaches here


def fetch(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def exported_metrics(text):
    return set(re.findall(r"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) ", text, re.M))


def sample_value(text, metric):
    m = re.search(rf"^{metric}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


# ---------------------------------------------------------------------------------------------
# The prometheus-adapter rule

def adapter_rules(source_dir):
    values = yaml.safe_load(open(os.path.join(source_dir, "deploy", "kubernetes", "prometheus-adapter", "values.yaml")))
    rules = values.get("rules", {}).get("custom", [])
    check(len(rules) > 0, "prometheus-adapter values: custom rules")
    for r in rules:
        check(all(k in r for k in ("seriesQuery", "resources", "name", "metricsQuery")) and "as" in r["name"],
              f"adapter rule {r['name'].get('as')}: seriesQuery, resources, name.as, metricsQuery")
        check(set(r["resources"].get("overrides", {})) >= {"namespace", "pod"},
              f"adapter rule {r['name']['as']}: maps the namespace and pod labels to their resources")
    return rules


def metric_names_in(text):
    return set(re.findall(r"\belliptical_[a-z_]+", text))


def render_adapter_query(rule):
    """The PromQL the adapter sends for one pod of NAMESPACE, as it fills its templates."""
    series = re.match(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", rule["seriesQuery"]).group(1)
    return (rule["metricsQuery"].replace("<<.Series>>", series)
            .replace("<<.LabelMatchers>>", f'namespace="{NAMESPACE}",pod=~"{POD}"')
            .replace("<<.GroupBy>>", "namespace,pod"))


# ---------------------------------------------------------------------------------------------
# The live server

def server_flags(flags, work, tag):
    """The manifest's arguments minus those the test owns, plus the test's metrics port."""
    metrics_file = os.path.join(work, f"metrics_port_{tag}")
    return [f"--{k}={v}" for k, v in flags.items() if k not in TEST_OWNED_FLAGS] + [
        "--metrics_host=127.0.0.1", "--metrics_port=0", f"--metrics_port_file={metrics_file}"], metrics_file


def launch(binary, models, work, flags, tag):
    sub = os.path.join(work, tag)
    os.makedirs(sub)
    extra, metrics_file = server_flags(flags, sub, tag)
    try:
        server, address = start_server(binary, models, sub, *extra)
    except SystemExit as e:
        log = open(os.path.join(sub, "server.log")).read()
        check(False, f"{tag}: the server starts with the manifest's arguments {extra} ({e}):\n{log[-2000:]}")
    check(True, f"{tag}: the server accepts every manifest flag: {' '.join(extra)}")
    return server, address, int(open(metrics_file).read()), os.path.join(sub, "server.log")


def check_unknown_flags_fail(binary, work):
    """The acceptance check above means something only if the server refuses unknown flags."""
    r = subprocess.run([binary, "--model_repository=" + work, "--port=0", "--metrics_port=-1",
                        "--grace_periods=30"], capture_output=True, text=True, timeout=30)
    check(r.returncode != 0 and "Unknown command line flag" in r.stderr,
          f"the server refuses an unknown flag (exit {r.returncode}: {r.stderr.strip()[:80]})")


def known_flags(binary):
    r = subprocess.run([binary, "--helpfull"], capture_output=True, text=True, timeout=30)
    return set(re.findall(r"^\s+--([a-z_]+) \(", r.stdout + r.stderr, re.M))


class Prometheus:
    """A real Prometheus scraping the live metrics port each second, with the namespace and pod
    labels that pod discovery would attach."""

    def __init__(self, work, metrics_port):
        self.dir = os.path.join(work, "prometheus")
        os.makedirs(os.path.join(self.dir, "data"))
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: elliptical-server\n"
                    f"    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
                    f"        labels: {{namespace: {NAMESPACE}, pod: {POD}}}\n")
        self.port = free_port()
        self.process = subprocess.Popen(
            ["prometheus", f"--config.file={self.dir}/prometheus.yml", f"--storage.tsdb.path={self.dir}/data",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "log"), "w"))

    def api(self, path, **params):
        try:
            body = json.loads(fetch(f"http://127.0.0.1:{self.port}/api/v1/{path}?" + urllib.parse.urlencode(params)))
        except (OSError, ValueError):
            return None
        return body["data"]["result"] if body.get("status") == "success" else None

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(address, threads, seconds):
    """THREADS clients each keep one Generate call going for SECONDS."""
    stop = time.time() + seconds
    errors = []

    def run():
        with Client(address, timeout_s=30) as c:
            while time.time() < stop:
                try:
                    c.generate("kjv-lm", "And God said", max_new_tokens=48, temperature=0.8, seed=1).text()
                except ClientError as e:
                    errors.append(e)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return errors


def check_live_cpu(binary, models, work, flags, memory_limit, probes, hpa_metrics, rules, extra_queries=None):
    """EXTRA_QUERIES ({what: (PromQL, the metric names it reads)}, e.g. a KEDA trigger's): each
    name is exported before any call, and the query evaluates, against the idle pod, to one sample
    of value 0."""
    server, address, metrics_port, log = launch(binary, models, work, flags, "cpu")
    prometheus = None
    try:
        with Client(address, timeout_s=30) as client:
            try:
                client.wait_until_serving(timeout_s=60)
            except ClientError as e:
                print(e)
            for service in sorted(probes):
                try:
                    status = client.health(service)
                except ClientError as e:
                    status = str(e)
                check(status == "SERVING", f"live: the probes' health service {service!r} answers SERVING ({status})")
            text = fetch(f"http://127.0.0.1:{metrics_port}/metrics")
            exported = exported_metrics(text)
            check(len(exported) > 15, f"live: /metrics (the PodMonitor's path) exports {len(exported)} metrics")
            for rule in rules:
                series = metric_names_in(rule["seriesQuery"])
                check(series and series <= exported,
                      f"live: the adapter discovers pods through {sorted(series)}, exported before any call")

            prometheus = Prometheus(work, metrics_port)
            query = render_adapter_query(rules[0])
            result, deadline = None, time.time() + 30
            while not result and time.time() < deadline:
                time.sleep(0.2)
                result = prometheus.api("query", query=query)
            check(bool(result) and len(result) == 1 and result[0]["metric"] == {"namespace": NAMESPACE, "pod": POD}
                  and float(result[0]["value"][1]) == 0,
                  f"live: Prometheus answers the adapter's query with 0 for the idle pod: {result}")

            for what, (extra, names) in (extra_queries or {}).items():
                check(names and set(names) <= exported,
                      f"live: {what} query reads {sorted(names)}, exported before any call")
                result = prometheus.api("query", query=extra)
                check(bool(result) and len(result) == 1 and float(result[0]["value"][1]) == 0,
                      f"live: Prometheus evaluates {what} query to one value, 0 for the idle pod: {result}")

            models_state = {m.name: m.state for m in client.list_models()}
            check(models_state and all(s == "ready" for s in models_state.values()),
                  f"live: every model is ready with the manifest's arguments: {models_state}")

            threads = 6
            started = time.time()
            errors = load(address, threads, 4.0)
            ended = time.time()
            check(not errors, f"live: {threads} clients generated for 4 s without errors ({errors[:1]})")
            time.sleep(1.5)  # one more scrape
            series = prometheus.api("query_range", query=query, start=f"{started:.3f}", end=f"{ended:.3f}", step="0.5")
            values = [float(v) for s in (series or []) for _, v in s["values"]]
            check(values and 1 <= max(values) <= threads,
                  f"live: under load the adapter's query counts the calls in flight (max {max(values or [0]):g} of "
                  f"{threads} clients)")

            text = fetch(f"http://127.0.0.1:{metrics_port}/metrics")
            exported = exported_metrics(text)
            used = set(hpa_metrics)
            for rule in rules:
                used |= metric_names_in(rule["seriesQuery"]) | metric_names_in(rule["metricsQuery"])
                used.add(rule["name"]["as"])
            missing = used - exported
            check(not missing, f"live: every metric the HPAs and the adapter rule name is exported: {sorted(used)}"
                  + (f"; missing {sorted(missing)}" if missing else ""))
            check(set(hpa_metrics) <= {r["name"]["as"] for r in rules},
                  f"the HPAs' metrics {sorted(set(hpa_metrics))} are served by an adapter rule")
            rss = sample_value(text, "elliptical_process_resident_memory_bytes")
            limit = memory_limit
            check(rss is not None and 0 < rss < limit,
                  f"live: resident memory after the load, {(rss or 0) / 2**20:.0f} MiB, is under the "
                  f"{limit / 2**30:g} GiB limit")

        grace = float(flags["grace_period_s"])
        server.send_signal(signal.SIGTERM)
        start = time.time()
        code = server.wait(timeout=grace + 10)
        text = open(log).read()
        check(code == 0 and f"accepted calls have {grace:.1f} s to finish" in text,
              f"live: on SIGTERM the server drains with the manifest's --grace_period_s={grace:g} and exits 0 "
              f"(exit {code} after {time.time() - start:.1f} s)")
    finally:
        if prometheus:
            prometheus.stop()
        if server.poll() is None:
            server.kill()
            server.wait()


def check_live_gpu(binary, models, work, flags):
    # No test machine is promised a GPU. The flags are still parsed and acted on: --device=cuda
    # resolves per model at load time, so without a CUDA device each model fails with the
    # message that only a well-formed CUDA device name gets ("cuda:x" or "gpu" would fail as
    # "is not one of auto, cpu, cuda, cuda:N"), and health stays NOT_SERVING (no model can
    # answer); with a GPU every model loads on it and health turns SERVING.
    server, address, _, _ = launch(binary, models, work, flags, "gpu")
    try:
        with Client(address, timeout_s=30) as client:
            deadline = time.monotonic() + 60
            models_state = []
            while time.monotonic() < deadline:
                try:
                    models_state = client.list_models()
                except ClientError:
                    models_state = []
                if models_state and all(m.state != "loading" for m in models_state):
                    break
                time.sleep(0.2)
            any_ready = any(m.state == "ready" for m in models_state)
            check(client.health() == ("SERVING" if any_ready else "NOT_SERVING"),
                  "gpu args: health is SERVING exactly when a model is ready, once every model was tried")
            models_state = client.list_models()
            no_gpu = all(m.state == "failed" and "no CUDA device is present" in m.reason for m in models_state)
            all_ready = all(m.state == "ready" for m in models_state)
            outcome = ("no GPU here, so every model fails for want of a CUDA device" if no_gpu else
                       "every model loads on the GPU" if all_ready else
                       "every model loads on the GPU, or (no GPU) fails for want of a CUDA device")
            check(models_state and (no_gpu or all_ready),
                  f"gpu args: {outcome}: {[(m.name, m.state, m.reason) for m in models_state]}")
    finally:
        server.terminate()
        server.wait(timeout=30)
