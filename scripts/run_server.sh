#!/usr/bin/env bash
# README command 1: installs what is missing, builds, makes the default model repository if it
# is not there yet, and runs the server on port 8500 (CPU unless a GPU is present).
#   scripts/run_server.sh [server flags, e.g. --port=9000 --device=cpu]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${ELLIPTICAL_BUILD_DIR:-$ROOT/build}"
MODELS="${ELLIPTICAL_MODELS:-$ROOT/models}"

"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh"
if [[ ! -f "$MODELS/demo-vit-classifier/config.json" ]]; then
  echo "[run] writing the default model repository to $MODELS"
  "$ROOT/.venv/bin/python" "$ROOT/tools/make_demo_model.py" --out "$MODELS/demo-vit-classifier"
fi
echo "[run] starting the server; stop it with Ctrl-C"
exec "$BUILD/server/elliptical-server" --model_repository="$MODELS" "$@"
