#!/usr/bin/env bash
# Model forwards on the GPU (build/bench/gpu_forward): DeiT-Tiny/Small/Base-shaped ViT
# classifiers (random weights of the real shapes) in bfloat16 and float32 at batch 1, 2, 4, ...,
# 256: latency, images/s, achieved TFLOP/s and the share of the device's dense bf16 peak,
# elliptical against dot-product attention on the same weights. Writes
# <out-dir>/gpu_forward-<device label>.{jsonl,md} as it measures.
#
#   bash bench/run_gpu_forward.sh [--device cuda|cpu|auto] [--budget-s S] [--out-dir DIR] [--label L]
#                                 [--models deit_tiny,...] [--dtypes bfloat16,float32] [--batches 1,2,...]
# The CPU form (--device cpu, or auto without CUDA): DeiT-Tiny, batches 1 and 2.
set -euo pipefail
BENCH=gpu_forward
source "$(dirname "${BASH_SOURCE[0]}")/gpu_bench_lib.sh"
gpu_bench_parse "$@"
gpu_bench_device
MODELS=deit_tiny,deit_small,deit_base DTYPES=bfloat16,float32 BATCHES=1,2,4,8,16,32,64,128,256
if [[ "$DEVICE" == cpu ]]; then MODELS=deit_tiny DTYPES=float32,bfloat16 BATCHES=1,2; fi
set -- "${REST[@]+"${REST[@]}"}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --models) MODELS="$2"; shift 2 ;;
    --dtypes) DTYPES="$2"; shift 2 ;;
    --batches) BATCHES="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[[ -x "$BUILD/bench/gpu_forward" ]] || { gpu_bench_log "no $BUILD/bench/gpu_forward: build first"; exit 2; }
# The binary keeps its own clock; a few seconds go to starting it and loading CUDA.
budget=0
[[ "$BUDGET_S" != 0 ]] && budget=$(( $(budget_left) - 3 ))
: > "$JSONL"
"$BUILD/bench/gpu_forward" --device "$DEVICE" --label "$DEVICE_NAME" --device_label "$LABEL" --models "$MODELS" --dtypes "$DTYPES" \
  --batches "$BATCHES" --budget_s "$budget" --jsonl "$JSONL" --md "$MD"
gpu_bench_log "wrote $JSONL and $MD"
