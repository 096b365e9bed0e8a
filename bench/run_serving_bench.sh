#!/usr/bin/env bash
# Serving throughput and latency against concurrency, batching on against batching off, for
# Classify and Generate: starts the real server on a free loopback port for each setting and
# drives it with elliptical-loadgen (closed loop). Writes bench/results/serving-<label>.{jsonl,md},
# a plot of latency against throughput per RPC (serving-<label>-<rpc>.png), and the machine.
#
#   bash bench/run_serving_bench.sh [--label NAME] [--clients "1 8 32"] [--duration 10]
#                                   [--classifier DIR] [--lm DIR]
# Defaults: the test fixtures' classifier and language model (random weights, real tokenizer).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LABEL="$(hostname -s)-$(nproc)cpu" CLIENTS="1 8 32" DURATION=10
CLASSIFIER="" LM=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --label) LABEL="$2"; shift 2 ;;
    --clients) CLIENTS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --classifier) CLASSIFIER="$2"; shift 2 ;;
    --lm) LM="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
bash "$ROOT/scripts/setup.sh"
bash "$ROOT/scripts/build.sh" >/dev/null
BUILD="$ROOT/build"
if [[ -z "$CLASSIFIER" || -z "$LM" ]]; then
  "$ROOT/.venv/bin/python" "$ROOT/tests/fixtures/make_classifier_fixtures.py" --out "$BUILD/fixtures/classifier" >/dev/null
  "$ROOT/.venv/bin/python" "$ROOT/tests/fixtures/make_model_fixtures.py" --out "$BUILD/fixtures/core" >/dev/null
fi
CLASSIFIER="${CLASSIFIER:-$BUILD/fixtures/classifier/models/vit-test}"
LM="${LM:-$BUILD/fixtures/core/lm/models/lm-chat}"
IMAGE="$BUILD/fixtures/classifier/images/pattern_0.png"

REPO="$(mktemp -d)"
trap 'rm -rf "$REPO"; [[ -n "${SERVER_PID:-}" ]] && kill "$SERVER_PID" 2>/dev/null || true' EXIT
cp -r "$CLASSIFIER" "$REPO/classifier"
cp -r "$LM" "$REPO/lm"
OUT="$ROOT/bench/results"
mkdir -p "$OUT"
JSONL="$OUT/serving-$LABEL.jsonl"
: > "$JSONL"

start_server() {  # extra flags...
  rm -f "$REPO.port"
  "$BUILD/server/elliptical-server" --model_repository="$REPO" --host=127.0.0.1 --port=0 --metrics_port=0 \
    --port_file="$REPO.port" "$@" 2>"$REPO.log" &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    if [[ -s "$REPO.port" ]] && grep -q "serving" "$REPO.log"; then return; fi
    sleep 0.1
  done
  echo "server did not start:" >&2; cat "$REPO.log" >&2; exit 1
}
stop_server() { kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""; }

for setting in on off; do
  if [[ $setting == on ]]; then
    start_server --max_batch_size=8 --max_queue_delay_us=2000 --max_running_sequences=32
  else
    start_server --max_batch_size=1 --max_queue_delay_us=0 --max_running_sequences=1
  fi
  ADDR="127.0.0.1:$(cat "$REPO.port")"
  for clients in $CLIENTS; do
    for rpc in classify generate; do
      echo "[bench] batching $setting, $clients clients: $rpc"
      model=classifier; [[ $rpc == generate ]] && model=lm
      "$BUILD/client/elliptical-loadgen" --server="$ADDR" --rpc=$rpc --model=$model --image="$IMAGE" \
        --max_new_tokens=32 --mode=closed --concurrency="$clients" --duration_s="$DURATION" \
        --progress=false --out="$REPO.point.json"
      "$ROOT/.venv/bin/python" -c 'import json,sys; r=json.load(open(sys.argv[1]))[0]; r["batching"]=sys.argv[2]; print(json.dumps(r))' \
        "$REPO.point.json" "$setting" >> "$JSONL"
    done
  done
  stop_server
done

"$ROOT/.venv/bin/python" - "$JSONL" "$OUT/serving-$LABEL.md" "$LABEL" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
import platform, subprocess
cpu = next((l.split(":", 1)[1].strip() for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines() if l.startswith("Model name")), platform.processor())
gpu = subprocess.run(["bash", "-c", "nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null"], capture_output=True, text=True).stdout.strip() or "none"
lines = [f"# Serving: {sys.argv[3]}", "", f"Machine: {cpu}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} CPUs, GPU: {gpu}; kernel {platform.release()}.", "",
         "| rpc | batching | clients | req/s | p50 ms | p99 ms | tokens/s | TTFT p50 ms | errors |",
         "|---|---|---|---|---|---|---|---|---|"]
for r in rows:
    lat = r["latency_ms"]
    lines.append(f"| {r['rpc']} | {r['batching']} | {r['concurrency']} | {r['throughput']:.1f} | "
                 f"{lat['p50']:.1f} | {lat['p99']:.1f} | {r.get('tokens_per_second', 0):.0f} | "
                 f"{r.get('ttft_ms', {}).get('p50', 0):.1f} | {sum(r['errors'].values())} |")
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
for rpc in classify generate; do
  "$ROOT/.venv/bin/python" "$ROOT/bench/plot_latency.py" --rpc $rpc --out "$OUT/serving-$LABEL-$rpc.png" \
    --title "$rpc on $LABEL: latency against throughput (points labelled with clients)" "$JSONL"
done
