#!/usr/bin/env python3
"""The machine a benchmark ran on, as one JSON line: the CPU's model name, the ISA extensions that
decide kernels here (SIMD width, bf16, AMX), the cores, the kernel and the host. Every benchmark
script records it beside its numbers.

    python3 bench/machine.py
    python3 bench/machine.py --device cuda|cpu|auto [--shell]

With --device: the device a GPU benchmark runs on (bench/gpu_bench_lib.sh), its name and the
label results are named with: the CUDA device's name in lower case with dashes
("NVIDIA H100 80GB HBM3" -> nvidia-h100-80gb-hbm3), or for the CPU cpu-<model>-<N>core. With
--device cuda and no CUDA device, no device and the reason. --shell prints shell assignments.
"""
import argparse
import json
import os
import platform
import re
import shlex

ISA = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
       "amx_tile", "amx_bf16", "amx_int8")


def machine():
    name, flags = "", set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and not name:
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    return {"cpu": name, "isa": [f for f in ISA if f in flags], "cores": os.cpu_count(),
            "kernel": platform.release(), "host": platform.node()}


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", re.sub(r"\((r|tm)\)", "", text.lower())).strip("-")


def device(kind):
    """{"device": "cuda"|"cpu"|"", "device_name", "device_label", "reason"} for --device KIND."""
    if kind not in ("cuda", "cpu", "auto"):
        raise SystemExit(f"--device {kind}: expected cuda, cpu or auto")
    if kind != "cpu":
        import torch
        if torch.cuda.is_available():
            name = torch.cuda.get_device_name(0)
            return {"device": "cuda", "device_name": name, "device_label": slug(name), "reason": ""}
        if kind == "cuda":
            return {"device": "", "device_name": "", "device_label": "",
                    "reason": f"no CUDA device: torch {torch.__version__} reports torch.cuda.is_available() false"}
    m = machine()
    return {"device": "cpu", "device_name": f"{m['cpu']}, {m['cores']} cores", "reason": "",
            "device_label": f"cpu-{slug(m['cpu'])}-{m['cores']}core"}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", help="cuda, cpu or auto: describe that device instead of the machine")
    p.add_argument("--shell", action="store_true", help="with --device: shell assignments, not JSON")
    a = p.parse_args()
    if not a.device:
        print(json.dumps(machine()))
    elif a.shell:
        print("\n".join(f"{k}={shlex.quote(str(v))}" for k, v in device(a.device).items()))
    else:
        print(json.dumps(device(a.device)))
