#!/usr/bin/env bash
# On a GPU machine with no network (PyTorch 2.11, CMake, ninja and nvcc, nothing else), in one
# call: build, run the whole test suite, run the GPU benchmarks (bench/run_gpu_*.sh), and write
# everything with the device's name into bench/results/ (or $OUT when the caller collects files
# from there).
#
#   here:   bash scripts/gather_device_deps.sh          # fills .deps/ (carried with the tree)
#   there:  bash scripts/device_run.sh [--quick]        # --quick: shorter benchmarks
#
# Prefer the bundle (scripts/device_bundle.sh here, scripts/device_bundle_run.sh there): nothing is
# built there. This script builds there, for when the bundle cannot be made here.
# Tests that need what does not fit the carry (kubectl and the Kubernetes schemas for the
# manifests, the Prometheus server and promtool for the scrape tests) are skipped by name.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
QUICK=0
[[ "${1:-}" == "--quick" ]] && QUICK=1
if [[ ! -f .deps/env.sh ]]; then
  echo "[device] .deps/env.sh missing: run scripts/gather_device_deps.sh here and carry .deps" >&2
  exit 2
fi
source .deps/env.sh

gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)"
LABEL="$(echo "${gpu:-nogpu}" | tr -c 'A-Za-z0-9\n' '-' | tr -s '-' | sed 's/-$//')"
RESULTS="$ROOT/bench/results"
# Logs and test results straight into $OUT where the device tool collects it, so that a call cut
# off at its limit still returns what ran (the benchmarks' files are copied at the end).
[[ -n "${OUT:-}" ]] && RESULTS="$OUT"
mkdir -p "$RESULTS"
log() { printf '[device %s] %s\n' "$(date +%T)" "$*"; }
log "device: ${gpu:-no GPU found}; $(nproc) cores"

log "setup (offline, from .deps)"
bash scripts/setup.sh
log "build"
ELLIPTICAL_JOBS="$(nproc)" bash scripts/build.sh >"$RESULTS/device-build-$LABEL.log" 2>&1 || {
  tail -40 "$RESULTS/device-build-$LABEL.log"; exit 1; }

SKIP='kubernetes|Promtool|EveryMetricTheDeployFilesUseIsExported|RealPrometheus'
log "tests (skipped here: $SKIP)"
set +e
ctest --test-dir build --output-on-failure --timeout 600 -j 8 -E "$SKIP" 2>&1 | tee "$RESULTS/device-tests-$LABEL.txt" >/dev/null
tests_rc=${PIPESTATUS[0]}
set -e
tail -15 "$RESULTS/device-tests-$LABEL.txt"

# The GPU benchmarks (docs/benchmarks.md, "GPU benchmarks"), each with a budget so that the
# call ends in time; --quick halves them.
budget=150; [[ $QUICK == 1 ]] && budget=75
for b in forward classify lm; do
  log "benchmark $b (budget $budget s)"
  bash bench/run_gpu_$b.sh --device auto --budget-s "$budget" --out-dir "$RESULTS" || log "benchmark $b failed"
done
log "done: tests exit $tests_rc; results in $RESULTS"
exit "$tests_rc"
