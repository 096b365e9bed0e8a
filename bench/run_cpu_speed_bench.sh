#!/usr/bin/env bash
# CPU speed, side by side in one run on one machine (names the CPU and its ISA):
#   1. the DeiT-Tiny 224 forward alone (elliptical, random weights), images/s: float32, bfloat16
#      with the linear weights as LibTorch hands them to oneDNN (unpacked) and packed as the
#      server packs them, at 1 and all threads, batch 1 and 8 (bench/model_forward);
#   2. optional anchors on the same network exported through training/nets.py: OpenVINO and
#      ONNX Runtime, when a venv with them is at .venv-anchors (or ANCHORS_PY names its python;
#      bench/engine_anchors.py);
#   3. the server (elliptical-loadgen, Classify with a 224 x 224 PNG, closed loop) at 1, 8 and 32
#      clients, float32 and dtype auto, a lone batch on its own instance's threads (before) and on
#      every idle instance's (lend_idle_threads, now the default), with the server's own
#      per-request timing (decode, preprocess, queue, compute);
#   4. Generate on the shipped kjv-lm, float32 against bfloat16, 1 and 16 streams, alternating
#      in rounds (why dtype auto keeps language models in float32 on the CPU).
# Writes bench/results/cpu_speed-<label>.{jsonl,md}.
#
#   bash bench/run_cpu_speed_bench.sh [--label NAME] [--duration 4] [--rounds 3] [--forward-seconds 3]
#                                     [--parts forward,anchors,server,lm]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LABEL="$(hostname -s)-$(nproc)cpu" DURATION=4 ROUNDS=3 FORWARD_S=3 PARTS="forward,anchors,server,lm"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --label) LABEL="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --forward-seconds) FORWARD_S="$2"; shift 2 ;;
    --parts) PARTS="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
bash "$ROOT/scripts/setup.sh" >/dev/null
bash "$ROOT/scripts/build.sh" >/dev/null
BUILD="$ROOT/build" PY="$ROOT/.venv/bin/python"
SERVER="$BUILD/server/elliptical-server" LOADGEN="$BUILD/client/elliptical-loadgen"
FORWARD="$BUILD/bench/model_forward"
CORES="$(nproc)"

WORK="$(mktemp -d)"
SERVER_PID=""
trap '[[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"' EXIT
OUT="$ROOT/bench/results"
mkdir -p "$OUT"
JSONL="$OUT/cpu_speed-$LABEL.jsonl"
: > "$JSONL"

record() {  # part, setting, JSON file or object
  "$PY" - "$@" >> "$JSONL" <<'PY'
import json, os, sys
part, setting, data = sys.argv[1:4]
rows = json.load(open(data)) if os.path.exists(data) else json.loads(data)
for r in rows if isinstance(rows, list) else [rows]:
    r.update({"part": part, "setting": setting})
    print(json.dumps(r))
PY
}

# The machine, first.
record machine cpu "$("$PY" "$ROOT/bench/machine.py")"
CORES_JSON="{\"cores\": $CORES}"
record machine cores "$CORES_JSON"

want() { [[ ",$PARTS," == *",$1,"* ]]; }

# 1. The forward alone: every variant interleaved in one process (model_forward's --threads,
#    --dtype and --pack lists), so their ratios hold on a noisy machine.
if want forward; then
echo "[bench] forward: float32 and bfloat16 (unpacked, packed), 1 and $CORES threads, batch 1 and 8" >&2
"$FORWARD" --models=deit_tiny --batches=1,8 --modes=elliptical --dtype=float32,bfloat16 --pack=both \
  --threads="1,$CORES" --min_seconds="$FORWARD_S" --out="$WORK/forward.json"
"$PY" -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))["results"]))' "$WORK/forward.json" \
  > "$WORK/rows.json"
record forward interleaved "$WORK/rows.json"
fi

# 2. Other engines on the same network, where installed: a venv of their own (their protobuf and
#    onnx pins would break ours), e.g.
#      python3 -m venv .venv-anchors && .venv-anchors/bin/pip install torch==2.11.0 onnx onnxscript \
#        openvino onnxruntime
ANCHORS_PY="${ANCHORS_PY:-$ROOT/.venv-anchors/bin/python}"
if want anchors && [[ -x "$ANCHORS_PY" ]] && "$ANCHORS_PY" "$ROOT/bench/engine_anchors.py" --threads="1,$CORES" --batches=1,8 \
    --seconds="$FORWARD_S" --out="$WORK/anchors.json" >&2; then
  record anchors engines "$WORK/anchors.json"
else
  echo "[bench] anchors: skipped (no $ANCHORS_PY with openvino/onnxruntime)" >&2
fi

# 3. The server.
REPO="$WORK/models"
"$PY" - "$REPO" "$WORK/deit.png" "$ROOT/tools" <<'PY'
import copy, json, sys
sys.path.insert(0, sys.argv[3])
import make_demo_model as demo
import numpy as np
from PIL import Image
repo, image = sys.argv[1:3]
config = copy.deepcopy(demo.DEFAULT_CONFIG)
config["vit"] = {"image_size": 224, "patch_size": 16, "in_channels": 3, "embed_dim": 192, "depth": 12,
                 "num_heads": 3, "mlp_ratio": 4.0, "qkv_bias": True, "layer_norm_eps": 1e-6}
config["num_classes"] = 1000
config["attention"] = {"mode": "elliptical", "estimator": "mean", "delta": 1.0}
config["batching"] = {"max_batch_size": 8}
for lend in (False, True):
    c = copy.deepcopy(config)
    c["instances"] = {"lend_idle_threads": lend}
    demo.write_classifier(f"{repo}/deit-lend-{str(lend).lower()}", c, [f"class_{i}" for i in range(1000)], seed=7)
# A photo-like 224 x 224 PNG (smooth gradients and noise, about 145 KB as the issue's).
rng = np.random.default_rng(0)
y, x = np.mgrid[0:224, 0:224]
base = np.stack([x, y, (x + y) // 2], -1).astype(np.float64)
Image.fromarray((base + rng.normal(0, 24, base.shape)).clip(0, 255).astype(np.uint8)).save(image)
PY

source "$ROOT/bench/server_control.sh"
start() { start_server "$SERVER" "$REPO" "$@"; }  # extra flags...
stop() { stop_server; }

# Each client count runs ROUNDS rounds alternating the two lending settings (one model each on
# one server), so the noise of a shared machine falls on both; the report takes each setting's
# median round.
want server && for dtype in float32 auto; do
  start --dtype="$dtype"
  grep -o "model deit-lend-true ready.*" "$WORK/server.log" >&2 || true
  for clients in 1 8 32; do
    for round in $(seq 1 "$ROUNDS"); do
      for lend in false true; do
        echo "[bench] server: dtype $dtype, $clients clients, round $round, lend_idle_threads $lend" >&2
        "$LOADGEN" --server="$ADDR" --rpc=classify --model="deit-lend-$lend" --image="$WORK/deit.png" \
          --mode=closed --concurrency="$clients" --warmup_s=1 --duration_s="$DURATION" --progress=false \
          --out="$WORK/point.json" >/dev/null
        record server "${dtype}_lend_${lend}" "$WORK/point.json"
      done
    done
  done
  stop
done

# 4. A language model's decode, float32 against bfloat16 (one server each, alternating).
if want lm; then
  for clients in 1 16; do
    for round in $(seq 1 "$ROUNDS"); do
      for dtype in float32 bfloat16; do
        echo "[bench] lm: kjv-lm $dtype, $clients streams, round $round" >&2
        start_server "$SERVER" "$ROOT/models" --http_port=-1 --dtype="$dtype"
        "$LOADGEN" --server="$ADDR" --rpc=generate --model=kjv-lm --max_new_tokens=64 --mode=closed \
          --concurrency="$clients" --warmup_s=1 --duration_s="$DURATION" --progress=false \
          --out="$WORK/point.json" >/dev/null
        record lm "$dtype" "$WORK/point.json"
        stop
      done
    done
  done
fi

"$PY" "$ROOT/bench/summarise_cpu_speed.py" "$JSONL" "$OUT/cpu_speed-$LABEL.md" "$LABEL"
cat "$OUT/cpu_speed-$LABEL.md"
