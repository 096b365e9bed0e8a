#!/usr/bin/env bash
# What sampling attention statistics for the metrics costs in serving: Classify throughput at
# --attention_stats_sample_rate 0, the default 0.01, and 1 (every batch), two rounds alternating.
# Writes bench/results/stats_cost-<label>.jsonl.
#
#   bash bench/run_stats_cost.sh [--label NAME] [--classifier DIR] [--clients 8] [--duration 8]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LABEL="$(hostname -s)-$(nproc)cpu" CLASSIFIER="" CLIENTS=8 DURATION=8
while [[ $# -gt 0 ]]; do
  case "$1" in
    --label) LABEL="$2"; shift 2 ;;
    --classifier) CLASSIFIER="$2"; shift 2 ;;
    --clients) CLIENTS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
bash "$ROOT/scripts/setup.sh" >/dev/null
bash "$ROOT/scripts/build.sh" >/dev/null
BUILD="$ROOT/build"
"$ROOT/.venv/bin/python" "$ROOT/tests/fixtures/make_classifier_fixtures.py" --out "$BUILD/fixtures/classifier" >/dev/null
CLASSIFIER="${CLASSIFIER:-$BUILD/fixtures/classifier/models/vit-test}"
REPO="$(mktemp -d)"
trap 'rm -rf "$REPO"; [[ -n "${PID:-}" ]] && kill "$PID" 2>/dev/null || true' EXIT
cp -r "$CLASSIFIER" "$REPO/classifier"
OUT="$ROOT/bench/results/stats_cost-$LABEL.jsonl"
mkdir -p "$(dirname "$OUT")"
: > "$OUT"
for round in 1 2; do
  for rate in 0 0.01 1; do
    rm -f "$REPO.port"
    "$BUILD/server/elliptical-server" --model_repository="$REPO" --host=127.0.0.1 --port=0 \
      --port_file="$REPO.port" --metrics_port=0 --attention_stats_sample_rate="$rate" \
      --max_batch_size=8 --max_queue_delay_us=1000 2>"$REPO.log" &
    PID=$!
    until [[ -s "$REPO.port" ]] && grep -q "serving" "$REPO.log"; do sleep 0.1; done
    echo "[bench] round $round, sample rate $rate"
    "$BUILD/client/elliptical-loadgen" --server="127.0.0.1:$(cat "$REPO.port")" --rpc=classify \
      --model=classifier --image="$BUILD/fixtures/classifier/images/pattern_0.png" \
      --concurrency="$CLIENTS" --duration_s="$DURATION" --progress=false --out="$REPO.point.json"
    "$ROOT/.venv/bin/python" -c 'import json,sys; r=json.load(open(sys.argv[1]))[0]; r["sample_rate"]=float(sys.argv[2]); print(json.dumps(r))' \
      "$REPO.point.json" "$rate" | tee -a "$OUT"
    kill -TERM "$PID"; wait "$PID" || true; PID=""
  done
done
