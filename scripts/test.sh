#!/usr/bin/env bash
# README command 2: installs what is missing, builds, and runs every test.
#   scripts/test.sh [ctest options, e.g. -R integration]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${ELLIPTICAL_BUILD_DIR:-$ROOT/build}"

"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh"
echo "[test] running the tests"
ctest --test-dir "$BUILD" --output-on-failure --timeout 600 -j "${ELLIPTICAL_TEST_JOBS:-2}" "$@"
