# Sourced by bench/run_gpu_{forward,classify,lm}.sh: the options every GPU benchmark takes, the
# device and its name, a budget clock, and servers started on free loopback ports whose start may
# fail without ending the script (a config the server refuses is a result to record, not an error).
#
#   --device cuda|cpu|auto  cuda (default): where no CUDA device is, write why and exit 0;
#                           cpu: the reduced form (small batches, few clients), to check the
#                           commands and paths on a machine without a GPU; auto: cuda where present
#   --budget-s S            finish cleanly within S seconds of the start (0: no limit)
#   --out-dir DIR           where <bench>-<device label>.{jsonl,md} go (default bench/results)
#   --label NAME            the device label in those names (default: from the device's name,
#                           e.g. nvidia-h100-80gb-hbm3)
# Every script appends to its .jsonl and rewrites its .md after each point: a run cut off at a
# deadline keeps what it measured. Needs: build/ (or the device bundle's), and a Python with
# torch (ELLIPTICAL_BENCH_PYTHON, else .venv/bin/python, else python3).

GPU_BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${ELLIPTICAL_BUILD_DIR:-$GPU_BENCH_ROOT/build}"
if [[ -n "${ELLIPTICAL_BENCH_PYTHON:-}" ]]; then PY="$ELLIPTICAL_BENCH_PYTHON"
elif [[ -x "$GPU_BENCH_ROOT/.venv/bin/python" ]]; then PY="$GPU_BENCH_ROOT/.venv/bin/python"
else PY="$(command -v python3)"; fi
BENCH_T0=$(date +%s)
DEVICE_ARG=cuda BUDGET_S=0 OUT_DIR="$GPU_BENCH_ROOT/bench/results" LABEL=""
REST=()

gpu_bench_log() { printf '[%s %s +%ss] %s\n' "$BENCH" "$(date +%T)" "$(( $(date +%s) - BENCH_T0 ))" "$*" >&2; }

# gpu_bench_parse "$@": takes the common options, leaves the others in REST.
gpu_bench_parse() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --device) DEVICE_ARG="$2"; shift 2 ;;
      --budget-s) BUDGET_S="$2"; shift 2 ;;
      --out-dir) OUT_DIR="$2"; shift 2 ;;
      --label) LABEL="$2"; shift 2 ;;
      *) REST+=("$1"); shift ;;
    esac
  done
  mkdir -p "$OUT_DIR"
}

# Sets DEVICE (cuda or cpu), DEVICE_NAME and LABEL; with --device cuda and no CUDA device, writes
# the reason to <bench>-skipped.jsonl/.md and exits 0 (a skip, as the gpu tests skip).
gpu_bench_device() {
  local info
  info="$("$PY" "$GPU_BENCH_ROOT/bench/machine.py" --device "$DEVICE_ARG" --shell)" || {
    gpu_bench_log "bench/machine.py could not name the device"; exit 2; }
  eval "$info"  # device=, device_name=, device_label=, reason=
  if [[ -z "$device" ]]; then
    gpu_bench_log "skipped: $reason"
    printf '{"record": "skipped", "bench": "%s", "reason": "%s"}\n' "$BENCH" "$reason" >> "$OUT_DIR/$BENCH-skipped.jsonl"
    printf '# %s: skipped\n\n%s\n' "$BENCH" "$reason" > "$OUT_DIR/$BENCH-skipped.md"
    exit 0
  fi
  DEVICE="$device" DEVICE_NAME="$device_name"
  LABEL="${LABEL:-$device_label}"
  JSONL="$OUT_DIR/$BENCH-$LABEL.jsonl"
  MD="$OUT_DIR/$BENCH-$LABEL.md"
  gpu_bench_log "device $DEVICE: $DEVICE_NAME; results $JSONL, $MD; budget ${BUDGET_S} s"
}

# Seconds left of the budget (a large number without one).
budget_left() {
  if [[ "$BUDGET_S" == 0 ]]; then echo 1000000; else echo $(( BUDGET_S - ($(date +%s) - BENCH_T0) )); fi
}
# fits SECONDS: whether that much more still ends within the budget.
fits() { [[ $(budget_left) -ge "$1" ]]; }

# Whether a child still runs (an exited one stays a zombie, which kill -0 still finds, until waited).
alive() { local state; state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)"; [[ -n "$state" && "$state" != Z ]]; }

# server_start DIR REPOSITORY [flags...]: the server on a free loopback port (gRPC only: no HTTP
# or metrics port, so that two can run side by side), its log in DIR/server.log. Returns 0 once
# it serves (ADDR set to its address, DIR/pid holding its pid); 1 when it exits or reports that
# no model is ready, with the log's last error in DIR/reason; waits at most
# SERVER_START_TIMEOUT_S (default 240: warm-up runs before a model is ready).
server_start() {
  local dir="$1" repo="$2"
  shift 2
  mkdir -p "$dir"
  rm -f "$dir/port" "$dir/reason"
  "$BUILD/server/elliptical-server" --model_repository="$repo" --host=127.0.0.1 --port=0 --port_file="$dir/port" \
    --http_port=-1 --metrics_port=-1 "$@" >"$dir/server.log" 2>&1 &
  local pid=$!
  echo "$pid" > "$dir/pid"
  local deadline=$(( $(date +%s) + ${SERVER_START_TIMEOUT_S:-240} ))
  while [[ $(date +%s) -lt $deadline ]]; do
    if ! alive "$pid"; then
      wait "$pid" 2>/dev/null
      { grep -E '^E ' "$dir/server.log" | tail -1 | sed 's/^E [^ ]* //'; echo "the server exited"; } | head -1 > "$dir/reason"
      rm -f "$dir/pid"
      return 1
    fi
    if grep -qE 'Z serving$' "$dir/server.log" && [[ -s "$dir/port" ]]; then
      ADDR="127.0.0.1:$(cat "$dir/port")"
      return 0
    fi
    if grep -qE 'Z no model is ready' "$dir/server.log"; then
      grep -E '^E ' "$dir/server.log" | tail -1 | sed 's/^E [^ ]* //' > "$dir/reason"
      [[ -s "$dir/reason" ]] || echo "no model is ready" > "$dir/reason"
      server_stop "$dir"
      return 1
    fi
    sleep 0.2
  done
  echo "not serving after ${SERVER_START_TIMEOUT_S:-240} s" > "$dir/reason"
  server_stop "$dir"
  return 1
}

# server_stop DIR: SIGTERM, then waits for it to exit (SIGKILL after 60 s). It need not be this
# shell's child: a server started in a subshell (to start two at once) is waited for through /proc.
server_stop() {
  local dir="$1" pid i
  [[ -f "$dir/pid" ]] || return 0
  pid="$(cat "$dir/pid")"
  kill -TERM "$pid" 2>/dev/null || true
  for (( i = 0; i < 300; i++ )); do alive "$pid" || break; sleep 0.2; done
  alive "$pid" && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
  rm -f "$dir/pid"
}

# What every script's trap calls: no server outlives its script.
server_stop_all() {
  local f
  for f in "$@"; do [[ -f "$f/pid" ]] && server_stop "$f"; done
  return 0
}
