#!/usr/bin/env bash
# The device run's first check (scripts/device_bundle_run.sh --gpu-tests runs it before the
# tests): what the machine is (nvidia-smi, torch's view of the GPU), then the server on the
# shipped models with --device=auto (CUDA where present), and Classify, Segment and Generate
# through the Python client (deploy/container/smoke_calls.py), which checks the answers. Writes
# <out>/device.txt and <out>/smoke.txt (the calls, the server's log); exit 1 on a failed call.
#
#   bash scripts/device_smoke.sh OUT_DIR        (in the bundle's environment: build/, .venv)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="${1:?usage: device_smoke.sh OUT_DIR}"
BENCH=device_smoke
source "$ROOT/bench/gpu_bench_lib.sh"
mkdir -p "$OUT_DIR"

{
  echo "== nvidia-smi"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv 2>&1
    nvidia-smi -q -d COMPUTE,CLOCK 2>&1 | grep -E 'Compute Mode|MIG|SM  ' | head -6
  else
    echo "no nvidia-smi on the PATH"
  fi
  echo "== torch"
  "$PY" - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        print(f"cuda:{i} {p.name}: {p.total_memory / 2**30:.1f} GiB, {p.multi_processor_count} SMs, "
              f"capability {p.major}.{p.minor}")
else:
    print("no CUDA device")
PY
  echo "== cpu"
  "$PY" "$ROOT/bench/machine.py"
} > "$OUT_DIR/device.txt" 2>&1
cat "$OUT_DIR/device.txt"

WORK="$(mktemp -d)"
trap 'server_stop_all "$WORK/server"; rm -rf "$WORK"' EXIT
cp -r "$ROOT/models" "$WORK/repo"
rm -f "$WORK"/repo/*.md
t=$(date +%s)
rc=0
if server_start "$WORK/server" "$WORK/repo" --device=auto; then
  echo "[smoke] serving after $(( $(date +%s) - t )) s (load and warm-up of the shipped models)"
  "$PY" "$ROOT/deploy/container/smoke_calls.py" "$ADDR" all "$ROOT/docs/examples" > "$WORK/calls.txt" 2>&1 || rc=1
  cat "$WORK/calls.txt"
  server_stop "$WORK/server"
else
  echo "[smoke] the server did not serve: $(cat "$WORK/server/reason")"
  rc=1
fi
{
  echo "== calls"
  cat "$WORK/calls.txt" 2>/dev/null
  echo "== server log (models/ with --device=auto)"
  cat "$WORK/server/server.log"
} > "$OUT_DIR/smoke.txt"
grep -E 'LibTorch|loaded|device|cuda' "$WORK/server/server.log" | head -12
echo "[smoke] $([[ $rc == 0 ]] && echo passed || echo FAILED) in $(( $(date +%s) - t )) s"
exit "$rc"
