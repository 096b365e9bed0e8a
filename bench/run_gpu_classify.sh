#!/usr/bin/env bash
# Classify through the real server on the GPU with JPEG inputs: a DeiT-shaped classifier (random
# weights, 224 px, timm's preprocessing of a 500 x 375 JPEG) served with dynamic batching, driven
# by elliptical-loadgen in closed loop at a few concurrency levels. Writes
# <out-dir>/gpu_classify-<device label>.{jsonl,md} as it measures, and the server's log beside them.
#
#   bash bench/run_gpu_classify.sh [--device cuda|cpu|auto] [--budget-s S] [--out-dir DIR] [--label L]
#                                  [--models deit_small[,deit_base]] [--clients "1 8 32 128"]
#                                  [--duration S] [--max-batch-size N]
# The CPU form: DeiT-Tiny, 1 and 4 clients, 2 s each.
set -euo pipefail
BENCH=gpu_classify
source "$(dirname "${BASH_SOURCE[0]}")/gpu_bench_lib.sh"
gpu_bench_parse "$@"
gpu_bench_device
MODELS=deit_small CLIENTS="1 8 32 128" DURATION=4 WARMUP=1 MAX_BATCH=32
if [[ "$DEVICE" == cpu ]]; then MODELS=deit_tiny CLIENTS="1 4" DURATION=2 WARMUP=0.5 MAX_BATCH=4; fi
set -- "${REST[@]+"${REST[@]}"}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --models) MODELS="$2"; shift 2 ;;
    --clients) CLIENTS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --max-batch-size) MAX_BATCH="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
WORK="$(mktemp -d)"
trap 'server_stop_all "$WORK/server"; rm -rf "$WORK"' EXIT
SUM=("$PY" "$GPU_BENCH_ROOT/bench/summarise_gpu_bench.py")
: > "$JSONL"

"$PY" "$GPU_BENCH_ROOT/bench/make_bench_models.py" image --out "$WORK/photo.jpg" >&2
for m in ${MODELS//,/ }; do
  "$PY" "$GPU_BENCH_ROOT/bench/make_bench_models.py" classifier --shape "$m" --max-batch-size "$MAX_BATCH" \
    --out "$WORK/repo/$m" >&2
done
FLAGS=(--device="$DEVICE")
"${SUM[@]}" record --jsonl "$JSONL" --md "$MD" record=run bench=$BENCH device="$DEVICE" device_name="$DEVICE_NAME" \
  started="$(date -u +%FT%TZ)" server_flags="--device=$DEVICE, max_batch_size $MAX_BATCH, max_queue_delay 2 ms" \
  loadgen="closed loop, ${WARMUP} s warm-up, ${DURATION} s measured per point" \
  description="DeiT-shaped ViT classifiers (224 px, patch 16, 12 blocks, 1000 classes; random weights of the real shapes, elliptical attention in blocks 1-11, dtype auto: bfloat16 on CUDA) served by elliptical-server; every request one 500 x 375 JPEG (quality 90) that the server decodes, resizes (shorter side 256, bicubic), centre-crops to 224 and normalises, then batches (dynamic batching). images/s = requests/s." >/dev/null

gpu_bench_log "starting the server ($MODELS on $DEVICE)"
t=$(date +%s)
status="complete"
if ! server_start "$WORK/server" "$WORK/repo" "${FLAGS[@]}"; then
  status="the server did not serve: $(cat "$WORK/server/reason")"
  "${SUM[@]}" record --jsonl "$JSONL" --md "$MD" record=note text="$status" >/dev/null
else
  gpu_bench_log "serving at $ADDR after $(( $(date +%s) - t )) s (load and warm-up)"
  point_s=$(awk -v w="$WARMUP" -v d="$DURATION" 'BEGIN { printf "%d", w + d + 3 }')
  for m in ${MODELS//,/ }; do
    for c in $CLIENTS; do
      if ! fits "$point_s"; then status="stopped by the budget before $m at $c clients"; break 2; fi
      gpu_bench_log "$m, $c clients"
      "$BUILD/client/elliptical-loadgen" --server="$ADDR" --rpc=classify --model="$m" --image="$WORK/photo.jpg" \
        --mode=closed --concurrency="$c" --warmup_s="$WARMUP" --duration_s="$DURATION" --progress=false \
        --out="$WORK/point.json" >&2 || true
      if [[ -s "$WORK/point.json" ]]; then
        "${SUM[@]}" point --jsonl "$JSONL" --md "$MD" --loadgen "$WORK/point.json" attention=elliptical \
          device_label="$LABEL" >/dev/null
      fi
      rm -f "$WORK/point.json"
    done
  done
  server_stop "$WORK/server"
fi
cp "$WORK/server/server.log" "$OUT_DIR/$BENCH-$LABEL-server.log" 2>/dev/null || true
"${SUM[@]}" record --jsonl "$JSONL" --md "$MD" record=done status="$status" >/dev/null
gpu_bench_log "$status; wrote $JSONL and $MD"
cat "$MD" >&2
