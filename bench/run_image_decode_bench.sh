#!/usr/bin/env bash
# Decode time of 224x224 and 1024x1024 JPEG, PNG and WebP images: the server's decoder
# (libjpeg-turbo, libpng, libwebp) against stb_image, the decoder it replaced, side by side in
# one run. stb comes from Debian's libstb-dev, a bench-only dependency this script installs when
# missing (the server no longer needs it). Writes bench/results/image_decode-<label>.{jsonl,md}.
#
#   bash bench/run_image_decode_bench.sh [--label NAME] [--rounds 7] [--min-ms 150]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LABEL="$(hostname -s)-$(nproc)cpu" ROUNDS=7 MIN_MS=150
while [[ $# -gt 0 ]]; do
  case "$1" in
    --label) LABEL="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --min-ms) MIN_MS="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
bash "$ROOT/scripts/setup.sh" >/dev/null
if ! pkg-config --exists stb; then
  echo "[bench] installing libstb-dev (bench only) for the stb_image column"
  if [[ $(id -u) == 0 ]]; then apt-get install -y --no-install-recommends libstb-dev >/dev/null
  else sudo apt-get install -y --no-install-recommends libstb-dev >/dev/null; fi
fi
BUILD="${ELLIPTICAL_BUILD_DIR:-$ROOT/build}"
[[ -f "$BUILD/build.ninja" ]] || bash "$ROOT/scripts/build.sh" >/dev/null
# Configured before libstb-dev was there: look for it again.
grep -q "ELLIPTICAL_BENCH_STB" "$BUILD/build.ninja" || cmake "$BUILD" >/dev/null
cmake --build "$BUILD" --target image_decode >/dev/null
"$ROOT/.venv/bin/python" "$ROOT/bench/image_decode_bench.py" --tool "$BUILD/bench/image_decode" \
  --label "$LABEL" --rounds "$ROUNDS" --min-ms "$MIN_MS"
