#!/usr/bin/env bash
# The prefix-versus-segment estimate of m on held-out text (docs/elliptical_attention.md):
# trains a small byte-level LM the way the paper's LM is trained (segment-wide m), then scores
# held-out text with the C++ model under both estimates. Writes bench/results/lm_scale_modes.json.
#
#   bash bench/run_scale_mode_report.sh [--steps 600] [--seed 0]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
bash "$ROOT/scripts/build.sh" >/dev/null
WORK="$ROOT/build/scale_mode_lm"
echo "[bench] training the measurement LM into $WORK (about a minute on one core)"
"$ROOT/.venv/bin/python" "$ROOT/bench/train_scale_mode_lm.py" --out "$WORK" "$@"
mkdir -p "$ROOT/bench/results"
"$ROOT/build/bench/lm_scale_modes" --model "$WORK" --tokens "$WORK/heldout_tokens.txt" \
  --window 128 --out "$ROOT/bench/results/lm_scale_modes.json"
echo "[bench] C++ model:"
cat "$ROOT/bench/results/lm_scale_modes.json"
echo "[bench] Python (training implementation):"
cat "$WORK/python_eval.json"
