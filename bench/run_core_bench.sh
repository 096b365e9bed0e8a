#!/usr/bin/env bash
# Benchmarks of the serving core, each side by side in one run on one machine:
#   1. open Generate streams (1,000 and 5,000): accepted or refused, server threads and resident
#      memory, Classify p50/p99 meanwhile;
#   2. Generate tokens/s at 1, 32, 128 and 512 streams, and time per output token at positions
#      1, 256 and 1024 of one long stream: this server against a baseline build;
#   3. Classify (fixture ViT) at 1, 8 and 32 clients, batching on and off, and the baseline's
#      batching on;
#   4. DeiT-Tiny 224 (elliptical, random weights) at 8 and 32 clients: 1 and 2 instances,
#      float32 and bfloat16, against a two-process Python server on the same weights.
# Writes bench/results/core-<label>.{jsonl,md}.
#
#   bash bench/run_core_bench.sh [--label NAME] [--baseline-server PATH] [--duration 8]
# --baseline-server: an elliptical-server built from an earlier commit (e.g. the one before the
# callback core: git worktree add /tmp/base 254d369 and build it there); without it, parts 2
# and 3 run this server alone.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LABEL="$(hostname -s)-$(nproc)cpu" BASELINE="" DURATION=8
while [[ $# -gt 0 ]]; do
  case "$1" in
    --label) LABEL="$2"; shift 2 ;;
    --baseline-server) BASELINE="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
bash "$ROOT/scripts/setup.sh" >/dev/null
bash "$ROOT/scripts/build.sh" >/dev/null
BUILD="$ROOT/build" PY="$ROOT/.venv/bin/python"
SERVER="$BUILD/server/elliptical-server" LOADGEN="$BUILD/client/elliptical-loadgen"
"$PY" "$ROOT/tests/fixtures/make_classifier_fixtures.py" --out "$BUILD/fixtures/classifier" >/dev/null
"$PY" "$ROOT/tests/fixtures/make_model_fixtures.py" --out "$BUILD/fixtures/core" >/dev/null

WORK="$(mktemp -d)"
SERVER_PID=""
trap '[[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"' EXIT
OUT="$ROOT/bench/results"
mkdir -p "$OUT"
JSONL="$OUT/core-$LABEL.jsonl"
: > "$JSONL"

# One repository for every part: the fixture classifier and LM, and DeiT-Tiny.
REPO="$WORK/models"
mkdir -p "$REPO"
cp -r "$BUILD/fixtures/classifier/models/vit-test" "$REPO/classifier"
cp -r "$BUILD/fixtures/core/lm/models/lm-chat" "$REPO/lm"
"$PY" - "$REPO" "$WORK/deit.png" "$ROOT/tools" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[3])
import make_demo_model as demo
import numpy as np
from PIL import Image
repo, image = sys.argv[1:3]
config = dict(demo.DEFAULT_CONFIG)
config["vit"] = {"image_size": 224, "patch_size": 16, "in_channels": 3, "embed_dim": 192, "depth": 12,
                 "num_heads": 3, "mlp_ratio": 4.0, "qkv_bias": True, "layer_norm_eps": 1e-6}
config["num_classes"] = 1000
config["attention"] = {"mode": "elliptical", "estimator": "mean", "delta": 1.0}
demo.write_classifier(f"{repo}/deit", config, [f"class_{i}" for i in range(1000)], seed=7)
Image.fromarray(np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)).save(image)
PY
# Generation limits both builds read: 64 running sequences, room for 8,192 waiting.
"$PY" - "$REPO/lm/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.setdefault("generation", {}).update({"max_running": 64, "max_waiting": 8192, "max_new_tokens_limit": 2048,
                                       "max_cache_mb": 1024})
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
IMAGE="$BUILD/fixtures/classifier/images/pattern_0.png"

source "$ROOT/bench/server_control.sh"
start() { local bin="$1"; shift; start_server "$bin" "$REPO" "$@"; }  # binary, extra flags...
stop() { stop_server; }

record() {  # part, server, setting, JSON (one object, or loadgen's file of an array)
  "$PY" - "$@" >> "$JSONL" <<'PY'
import json, os, sys
part, server, setting, data = sys.argv[1:5]
rows = json.load(open(data)) if os.path.exists(data) else [json.loads(data)]
for r in rows if isinstance(rows, list) else [rows]:
    r.update({"part": part, "server": server, "setting": setting})
    print(json.dumps(r))
PY
}

load() {  # part, server, setting, rpc, model, clients, [image], [max_new_tokens]
  echo "[bench] $1: $2 $3, $4 $5, $6 clients" >&2
  "$LOADGEN" --server="$ADDR" --rpc="$4" --model="$5" --image="${7:-$IMAGE}" --max_new_tokens="${8:-64}" \
    --mode=closed --concurrency="$6" --warmup_s=2 --duration_s="$DURATION" --progress=false \
    --out="$WORK/point.json" >/dev/null
  record "$1" "$2" "$3" "$WORK/point.json"
}

servers=("ours:$SERVER")
[[ -n "$BASELINE" ]] && servers+=("baseline:$BASELINE")

# 1. Open streams.
start "$SERVER"
for n in 1000 5000; do
  echo "[bench] streams: $n open Generate streams" >&2
  record streams ours "$n" "$("$PY" "$ROOT/bench/stream_bench.py" open-streams --server="$ADDR" --pid="$SERVER_PID" \
    --streams="$n" --max-new-tokens=2000 --image="$IMAGE" --settle-s=8 --classify-s=8)"
done
stop
if [[ -n "$BASELINE" ]]; then
  start "$BASELINE"
  echo "[bench] streams: 1000 open Generate streams, baseline" >&2
  record streams baseline 1000 "$("$PY" "$ROOT/bench/stream_bench.py" open-streams --server="$ADDR" --pid="$SERVER_PID" \
    --streams=1000 --max-new-tokens=2000 --image="$IMAGE" --settle-s=8 --classify-s=8)"
  stop
fi

# 2 and 3. Generate and Classify, ours against the baseline.
for entry in "${servers[@]}"; do
  name="${entry%%:*}" bin="${entry#*:}"
  start "$bin" --max_batch_size=8
  for clients in 1 32 128 512; do load generate "$name" default generate lm "$clients"; done
  echo "[bench] token times: $name" >&2
  record token_times "$name" default "$("$PY" "$ROOT/bench/stream_bench.py" token-times --server="$ADDR" \
    --max-new-tokens=1100 --positions=1,256,1024)"
  for clients in 1 8 32; do load classify "$name" batching_on classify classifier "$clients"; done
  stop
  if [[ $name == ours ]]; then
    start "$bin" --max_batch_size=1
    for clients in 1 8 32; do load classify "$name" batching_off classify classifier "$clients"; done
    stop
  fi
done

# 4. DeiT-Tiny: instances and dtypes, against the Python pool.
for dtype in float32 bfloat16; do
  for instances in 1 2; do
    start "$SERVER" --instances="$instances" --dtype="$dtype" --max_batch_size=8
    for clients in 8 32; do load deit ours "${instances}x_$dtype" classify deit "$clients" "$WORK/deit.png"; done
    stop
  done
done
echo "[bench] deit: starting the Python two-process baseline" >&2
rm -f "$WORK/pyport"
"$PY" "$ROOT/bench/python_pool_server.py" --model-dir "$REPO/deit" --model-name deit --workers 2 \
  --port-file "$WORK/pyport" 2>"$WORK/python.log" &
SERVER_PID=$!
for _ in $(seq 1 600); do [[ -s "$WORK/pyport" ]] && break; sleep 0.1; done
ADDR="127.0.0.1:$(cat "$WORK/pyport")"
for clients in 8 32; do load deit python "2_processes_float32" classify deit "$clients" "$WORK/deit.png"; done
stop

"$PY" "$ROOT/bench/summarise_core_bench.py" "$JSONL" "$OUT/core-$LABEL.md" "$LABEL"
