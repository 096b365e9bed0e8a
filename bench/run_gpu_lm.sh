#!/usr/bin/env bash
# Language-model tokens/s through the real server on the GPU at 1, 2, 4, ..., 256 concurrent
# Generate streams, with config.json's "cuda_graphs" false and true. Two servers run side by side
# on copies of the model, one per setting, and each concurrency level is measured on both in turn,
# so a run the budget cuts short still holds pairs. Where the server refuses the key (before the
# CUDA-graph decode merged: an unknown config key fails the load), that is recorded as
# "cuda_graphs unsupported" with the server's reason and the false setting alone is measured.
# Writes <out-dir>/gpu_lm-<device label>.{jsonl,md} as it measures, and the servers' logs.
#
#   bash bench/run_gpu_lm.sh [--device cuda|cpu|auto] [--budget-s S] [--out-dir DIR] [--label L]
#                            [--models kjv,wide] [--streams "1 2 4 ... 256"] [--duration S]
#                            [--max-new-tokens N]
# Models (bench/make_bench_models.py): kjv, the shipped kjv-lm (4 layers, d_model 128: small
# enough that decoding is bound by kernel launches, where CUDA graphs matter), and wide, random
# weights of 16 layers, d_model 1024, d_inner 4096 (204M parameters). The end-of-sequence logit
# is suppressed in both so that every stream runs its max_new_tokens, and their KV-cache budget
# holds a slot for every stream.
# The CPU form: kjv and a wide shrunk to 2 layers of d_model 256, 1, 2 and 4 streams, 2 s each.
set -euo pipefail
BENCH=gpu_lm
source "$(dirname "${BASH_SOURCE[0]}")/gpu_bench_lib.sh"
gpu_bench_parse "$@"
gpu_bench_device
MODELS=kjv,wide STREAMS="1 2 4 8 16 32 64 128 256" DURATION=3 WARMUP=1 NEW_TOKENS=64
WIDE=()
if [[ "$DEVICE" == cpu ]]; then
  STREAMS="1 2 4" DURATION=2 WARMUP=0.5 NEW_TOKENS=16
  WIDE=(--d-model 256 --layers 2 --heads 4 --d-inner 1024)
fi
set -- "${REST[@]+"${REST[@]}"}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --models) MODELS="$2"; shift 2 ;;
    --streams) STREAMS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --max-new-tokens) NEW_TOKENS="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
MAX_STREAMS=$(printf '%s\n' $STREAMS | sort -n | tail -1)
WORK="$(mktemp -d)"
trap 'server_stop_all "$WORK"/*/server-*; rm -rf "$WORK"' EXIT
SUM=("$PY" "$GPU_BENCH_ROOT/bench/summarise_gpu_bench.py")
: > "$JSONL"
"${SUM[@]}" record --jsonl "$JSONL" --md "$MD" record=run bench=$BENCH device="$DEVICE" device_name="$DEVICE_NAME" \
  started="$(date -u +%FT%TZ)" \
  server_flags="--device=$DEVICE, --max_running_sequences=$MAX_STREAMS, dtype auto (bfloat16 on CUDA)" \
  loadgen="closed loop Generate, prompt 'Once upon a time', $NEW_TOKENS new tokens, ${WARMUP} s warm-up, ${DURATION} s measured per point" \
  description="Tokens/s of N concurrent Generate streams (N clients in closed loop, each starting its next stream when one ends) through elliptical-server with continuous batching, config.json \"cuda_graphs\" false against true on the same weights (two servers side by side, measured in turn). kjv: the shipped kjv-lm (4 layers, d_model 128); wide: random weights, 16 layers, d_model 1024 (16 heads of 64), d_inner 4096, 256 positions. End of sequence suppressed in both; KV-cache budget with room for every stream." >/dev/null

note() { gpu_bench_log "$1"; "${SUM[@]}" record --jsonl "$JSONL" --md "$MD" record=note text="$1" >/dev/null; }
status="complete"
models=(${MODELS//,/ })
for mi in "${!models[@]}"; do
  m="${models[$mi]}"
  # An equal share of what is left for each model still to run.
  share=$(( $(budget_left) / (${#models[@]} - mi) ))
  model_end=$(( $(date +%s) + share ))
  if ! fits 30; then status="stopped by the budget before $m"; break; fi
  dir="$WORK/$m"
  shape_args=(); [[ "$m" == wide ]] && shape_args=("${WIDE[@]+"${WIDE[@]}"}")
  "$PY" "$GPU_BENCH_ROOT/bench/make_bench_models.py" lm --shape "$m" --out "$dir/model" "${shape_args[@]+"${shape_args[@]}"}" >&2
  settings=()
  set_key() {  # CONFIG_JSON true|false|absent
    "$PY" - "$1" "$2" <<'PY'
import json, sys
path, value = sys.argv[1], sys.argv[2]
with open(path) as f:
    config = json.load(f)
config.pop("cuda_graphs", None)
if value != "absent":
    config["cuda_graphs"] = value == "true"
with open(path, "w") as f:
    json.dump(config, f, indent=2)
PY
  }
  start() {  # GRAPHS: the server of that setting, in the background
    ( server_start "$dir/server-$1" "$dir/repo-$1" --device="$DEVICE" --max_running_sequences="$MAX_STREAMS" &&
        echo "$ADDR" > "$dir/server-$1/addr" ) &
  }
  for graphs in false true; do
    mkdir -p "$dir/repo-$graphs"
    cp -r "$dir/model" "$dir/repo-$graphs/$m"
    set_key "$dir/repo-$graphs/$m/config.json" "$graphs"
  done
  # Both servers load and warm up at once (warm-up runs every bucket of running sequences up to
  # MAX_STREAMS, and with cuda_graphs captures each), within what is left of this model's share.
  t=$(date +%s)
  export SERVER_START_TIMEOUT_S=$(( share > 40 ? share - 20 : 20 ))
  start false
  start true
  wait
  # A server from before the key refuses it, false too (unknown config keys fail a load): graphs
  # off is then the key left out, which is what it was before the key existed.
  if [[ ! -s "$dir/server-false/addr" ]] && grep -q 'unknown key "cuda_graphs"' "$dir/server-false/reason" 2>/dev/null; then
    note "$m: this server does not know the cuda_graphs key; graphs off is the key left out"
    set_key "$dir/repo-false/$m/config.json" absent
    start false
    wait
  fi
  for graphs in false true; do
    if [[ -s "$dir/server-$graphs/addr" ]]; then
      settings+=("$graphs")
      gpu_bench_log "$m, cuda_graphs $graphs: serving at $(cat "$dir/server-$graphs/addr") after $(( $(date +%s) - t )) s"
    else
      reason="$(cat "$dir/server-$graphs/reason" 2>/dev/null || echo "unknown")"
      if [[ "$graphs" == true ]]; then
        note "$m: cuda_graphs unsupported: the server refused \"cuda_graphs\": true ($reason); graphs off measured alone"
      else
        note "$m: the server did not serve with cuda_graphs false: $reason"
      fi
    fi
  done
  point_s=$(awk -v w="$WARMUP" -v d="$DURATION" 'BEGIN { printf "%d", w + d + 4 }')
  for n in $STREAMS; do
    [[ ${#settings[@]} -gt 0 ]] || break
    if [[ $(( model_end - $(date +%s) )) -lt $(( point_s * ${#settings[@]} )) ]] || ! fits $(( point_s * ${#settings[@]} )); then
      note "$m: stopped by the budget before $n streams"
      status="stopped by the budget"
      break
    fi
    for graphs in "${settings[@]}"; do
      gpu_bench_log "$m, cuda_graphs $graphs, $n streams"
      "$BUILD/client/elliptical-loadgen" --server="$(cat "$dir/server-$graphs/addr")" --rpc=generate --model="$m" \
        --max_new_tokens="$NEW_TOKENS" --mode=closed --concurrency="$n" --warmup_s="$WARMUP" \
        --duration_s="$DURATION" --progress=false --out="$WORK/point.json" >&2 || true
      if [[ -s "$WORK/point.json" ]]; then
        "${SUM[@]}" point --jsonl "$JSONL" --md "$MD" --loadgen "$WORK/point.json" cuda_graphs="$graphs" \
          device_label="$LABEL" new_tokens="$NEW_TOKENS" >/dev/null
      fi
      rm -f "$WORK/point.json"
    done
  done
  for graphs in false true; do
    server_stop "$dir/server-$graphs"
    cp "$dir/server-$graphs/server.log" "$OUT_DIR/$BENCH-$LABEL-$m-graphs-$graphs-server.log" 2>/dev/null || true
  done
  rm -rf "$dir"
done
"${SUM[@]}" record --jsonl "$JSONL" --md "$MD" record=done status="$status" >/dev/null
gpu_bench_log "$status; wrote $JSONL and $MD"
cat "$MD" >&2
