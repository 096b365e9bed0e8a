#!/usr/bin/env python3
"""The machine a benchmark ran on, as one JSON line: the CPU's model name, the ISA extensions that
decide kernels here (SIMD width, bf16, AMX), the cores, the kernel and the host. Every benchmark
script records it beside its numbers.

    python3 bench/machine.py
"""
import json
import os
import platform

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


if __name__ == "__main__":
    print(json.dumps(machine()))
