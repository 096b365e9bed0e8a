#!/usr/bin/env bash
# Configures (once) and builds the project into build/ with CMake and Ninja.
#   scripts/build.sh [extra cmake -D options for the first configure]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${ELLIPTICAL_BUILD_DIR:-$ROOT/build}"
JOBS="${ELLIPTICAL_JOBS:-$(nproc)}"

if [[ ! -f "$BUILD/build.ninja" ]]; then
  echo "[build] configuring $BUILD"
  cmake -S "$ROOT" -B "$BUILD" -G Ninja "$@"
fi
echo "[build] compiling with $JOBS jobs (the first build takes several minutes: LibTorch headers are large)"
cmake --build "$BUILD" -j "$JOBS"
