#!/usr/bin/env bash
# README command 1: installs what is missing, builds, and runs the server on port 8500 (CPU
# unless a GPU is present) with the default models of models/ (trained by training/train.py).
#   scripts/run_server.sh [server flags, e.g. --port=9000 --device=cpu]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${ELLIPTICAL_BUILD_DIR:-$ROOT/build}"
MODELS="${ELLIPTICAL_MODELS:-$ROOT/models}"

"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh"
if [[ ! -d "$MODELS" ]]; then
  echo "[run] no model repository at $MODELS (set ELLIPTICAL_MODELS to one)" >&2
  exit 1
fi
echo "[run] starting the server; stop it with Ctrl-C"
exec "$BUILD/server/elliptical-server" --model_repository="$MODELS" "$@"
