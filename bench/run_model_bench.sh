#!/usr/bin/env bash
# Forward-pass benchmark of the model core: the C++ models against the same models in Python
# PyTorch eager, elliptical against dot-product on the same weights, at batch 1, 8 and 64.
# Writes bench/results/model_forward-<label>.{json,md}.
#
#   bash bench/run_model_bench.sh [--label NAME] [--device cpu|cuda] [--dtype float32|bfloat16]
#                                 [--models deit_tiny,deit_small,lm16] [--batches 1,8,64]
#                                 [--min-seconds 2]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LABEL="$(hostname -s)-$(nproc)cpu"
DEVICE=cpu DTYPE=float32 MODELS=deit_tiny,deit_small,lm16 BATCHES=1,8,64 MIN_SECONDS=2
while [[ $# -gt 0 ]]; do
  case "$1" in
    --label) LABEL="$2"; shift 2 ;;
    --device) DEVICE="$2"; shift 2 ;;
    --dtype) DTYPE="$2"; shift 2 ;;
    --models) MODELS="$2"; shift 2 ;;
    --batches) BATCHES="$2"; shift 2 ;;
    --min-seconds) MIN_SECONDS="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

bash "$ROOT/scripts/setup.sh"
bash "$ROOT/scripts/build.sh" >/dev/null
PY="$ROOT/.venv/bin/python"
OUT="$ROOT/bench/results"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"
NAME="model_forward-$LABEL-$DEVICE-$DTYPE"

# Two rounds, alternating implementations, so that a noisy neighbour hurts both alike; the
# summary keeps each configuration's best round.
for round in 1 2; do
  echo "[bench] round $round/2: C++"
  "$ROOT/build/bench/model_forward" --models "$MODELS" --batches "$BATCHES" --device "$DEVICE" \
    --dtype "$DTYPE" --min_seconds "$MIN_SECONDS" --out "$TMP/cpp-$round.json"
  echo "[bench] round $round/2: Python eager"
  "$PY" "$ROOT/bench/python_eager.py" --models "$MODELS" --batches "$BATCHES" --device "$DEVICE" \
    --dtype "$DTYPE" --min-seconds "$MIN_SECONDS" --out "$TMP/python-$round.json"
done
"$PY" "$ROOT/bench/summarise_model_bench.py" --label "$LABEL" --json "$OUT/$NAME.json" \
  --markdown "$OUT/$NAME.md" "$TMP"/cpp-*.json "$TMP"/python-*.json
echo "[bench] wrote $OUT/$NAME.md and .json"
cat "$OUT/$NAME.md"
