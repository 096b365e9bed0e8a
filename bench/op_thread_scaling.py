#!/usr/bin/env python3
"""How single LibTorch CPU ops of DeiT-Tiny (batch 8: 1,576 rows) and a language model's decode
step (1 and 16 rows) scale from one thread to all, and what a bf16 linear costs against float32,
packed for oneDNN (mkldnn::_reorder_linear_weight, as model/nets/packed_linear.h does) or not.
A large matmul is the control: it shows what the cores themselves give. Each case runs 1 and N
threads alternately over three rounds; the best of the rounds is reported, in microseconds.

    .venv/bin/python bench/op_thread_scaling.py [--out bench/results/op_thread_scaling-LABEL.md]
"""
import argparse
import os
import time

import torch
import torch.nn.functional as F


def timed(fn, n):
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def scaling(fn, n, threads):
    best = {1: float("inf"), threads: float("inf")}
    for _ in range(3):
        for t in (1, threads):
            torch.set_num_threads(t)
            best[t] = min(best[t], timed(fn, n))
    return best[1], best[threads]


def linear_cases(rows, shapes):
    for k, n, gelu in shapes:
        w, b, x = torch.randn(n, k), torch.randn(n), torch.randn(rows, k)
        wb, bb, xb = w.bfloat16(), b.bfloat16(), x.bfloat16()
        packed = torch.ops.mkldnn._reorder_linear_weight(wb, min(rows, 197))
        attr, algorithm = ("gelu", "none") if gelu else ("none", None)
        name = f"linear {rows} x {k} -> {n}{' + GELU' if gelu else ''}"
        yield f"{name}, float32", lambda x=x, w=w, b=b: F.linear(x, w, b)
        yield f"{name}, bf16", lambda x=xb, w=wb, b=bb: F.linear(x, w, b)
        yield f"{name}, bf16 packed", lambda x=xb, p=packed, b=bb, a=attr, al=algorithm: \
            torch.ops.mkldnn._linear_pointwise(x, p, b, a, [], al)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--out")
    args = p.parse_args()
    torch.manual_seed(0)
    big = torch.randn(2048, 2048).bfloat16(), torch.randn(2048, 2048).bfloat16()
    cases = [("matmul 2048 x 2048 x 2048, bf16 (control)", lambda: big[0] @ big[1], 10)]
    deit = [(192, 576, False), (192, 192, False), (192, 768, True), (768, 192, False)]
    cases += [(name, fn, 50) for name, fn in linear_cases(197 * 8, deit)]
    q, k, v = (torch.randn(8, 3, 197, 64).bfloat16() for _ in range(3))
    cases.append(("attention (SDPA) 8 x 3 heads x 197 x 64, bf16", lambda: F.scaled_dot_product_attention(q, k, v), 50))
    x = torch.randn(8, 197, 192).bfloat16()
    ln = torch.nn.LayerNorm(192).bfloat16()
    cases.append(("LayerNorm 8 x 197 x 192, bf16", lambda: ln(x), 100))
    lm = [(128, 512, False), (512, 128, False), (128, 8000, False)]
    for rows in (1, 16):
        cases += [(name, fn, 300) for name, fn in linear_cases(rows, lm)]
    lines = [f"Op scaling, 1 against {args.threads} threads, torch {torch.__version__} (best of 3 rounds, us)", "",
             f"| op | 1 thread | {args.threads} threads | speed-up |", "|---|---|---|---|"]
    with torch.inference_mode():
        for name, fn, n in cases:
            one, many = scaling(fn, n, args.threads)
            lines.append(f"| {name} | {one:.1f} | {many:.1f} | {one / many:.2f}x |")
            print(lines[-1], flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
