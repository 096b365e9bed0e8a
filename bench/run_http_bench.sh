#!/usr/bin/env bash
# The HTTP front, before against after, in one run on one machine (names the CPU and its ISA):
# KServe v2 REST Classify (POST /v2/models/digits-vit/infer, a PNG as the BYTES tensor `image`
# through the binary tensor data extension, docs/protocols/kserve.md's body) and OpenAI
# completions on kjv-lm (POST /v1/completions, max_tokens 16, temperature 0, whole and streamed),
# at 1, 32 and 256 keep-alive connections (bench/http_load.py, closed loop). Both servers run
# side by side, each on its own free port, serving the same repository (the shipped digits-vit
# and kjv-lm, their configs as shipped, --dtype float32 unless --dtype says otherwise) with the
# same flags; every (workload, connections) point runs ROUNDS rounds of before, after, before,
# after ..., so the noise of a shared machine falls on both. The binaries are run as they are:
# nothing is built here.
# Writes bench/results/http_front_<date>.jsonl (a machine row, a row per server, a row per run)
# and http_front_<date>.md (bench/summarise_http_bench.py), and prints the summary.
#
#   bash bench/run_http_bench.sh --before /work/old-front/elliptical-server \
#       [--after build/server/elliptical-server] [--connections "1 32 256"] [--duration 10]
#       [--rounds 2] [--warmup 2] [--timeout 20] [--workloads "classify completion completion-stream"]
#       [--max-tokens 16] [--image docs/examples/digit-3.png] [--dtype float32] [--name http_front_DATE]
# Without --before only the after binary is measured (said on stderr and in the report).
# A binary is flagged "new front" when its --helpfull lists --http_header_timeout; no flag only
# one of them knows is passed to either.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BEFORE="" AFTER="$ROOT/build/server/elliptical-server" CONNECTIONS="1 32 256" DURATION=10 ROUNDS=2
WARMUP=2 TIMEOUT=20 WORKLOADS="classify completion completion-stream" MAX_TOKENS=16
IMAGE="$ROOT/docs/examples/digit-3.png" DTYPE=float32 NAME="http_front_$(date -u +%Y%m%dT%H%MZ)"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --before) BEFORE="$2"; shift 2 ;;
    --after) AFTER="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    --workloads) WORKLOADS="$2"; shift 2 ;;
    --max-tokens) MAX_TOKENS="$2"; shift 2 ;;
    --image) IMAGE="$2"; shift 2 ;;
    --dtype) DTYPE="$2"; shift 2 ;;
    --name) NAME="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
PY="$ROOT/.venv/bin/python"
[[ -x "$PY" ]] || PY="$(command -v python3)"  # http_load.py and the summary need only the standard library
for bin in "$AFTER" ${BEFORE:+"$BEFORE"}; do
  [[ -x "$bin" ]] || { echo "no executable server binary at $bin (this script builds nothing)" >&2; exit 2; }
done
if [[ -z "$BEFORE" ]]; then
  echo "[bench] no --before binary: measuring the after binary ($AFTER) alone, no comparison" >&2
fi

TMP="$(mktemp -d)"
BEFORE_PID="" AFTER_PID="" SERVER_PID=""
cleanup() {
  for pid in "$BEFORE_PID" "$AFTER_PID"; do [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
OUT="$ROOT/bench/results"
mkdir -p "$OUT"
JSONL="$OUT/$NAME.jsonl"
: > "$JSONL"

record() {  # kind, JSON object, [KEY=VALUE...]
  "$PY" - "$@" >> "$JSONL" <<'PY'
import json, sys
row = json.loads(sys.argv[2])
for kv in sys.argv[3:]:
    k, v = kv.split("=", 1)
    row[k] = v
row = {"kind": sys.argv[1], **row}
print(json.dumps(row))
PY
}

# The machine, first (as bench/run_cpu_speed_bench.sh names it).
MACHINE="$("$PY" "$ROOT/bench/machine.py")"
record machine "$MACHINE"
echo "[bench] machine: $MACHINE" >&2

# The repository: the shipped classifier and language model, their configs as shipped.
REPO="$TMP/models"
mkdir -p "$REPO"
cp -r "$ROOT/models/digits-vit" "$ROOT/models/kjv-lm" "$REPO/"

source "$ROOT/bench/server_control.sh"
FLAGS=(--dtype="$DTYPE")  # both binaries know it; the HTTP front's own flags stay at their defaults

start_side() {  # side, binary: starts it on free ports, sets <SIDE>_PID and <SIDE>_HTTP
  local side="$1" bin="$2"
  WORK="$TMP/$side"
  mkdir -p "$WORK"
  start_server "$bin" "$REPO" --http_port=0 --http_port_file="$WORK/http_port" "${FLAGS[@]}"
  for _ in $(seq 1 100); do [[ -s "$WORK/http_port" ]] && break; sleep 0.1; done
  [[ -s "$WORK/http_port" ]] || { echo "$side: no HTTP port" >&2; cat "$WORK/server.log" >&2; exit 1; }
  local http="127.0.0.1:$(cat "$WORK/http_port")" new_front=false
  if { "$bin" --helpfull 2>&1 || true; } | grep -q -- --http_header_timeout; then new_front=true; fi
  printf -v "${side^^}_PID" '%s' "$SERVER_PID"
  printf -v "${side^^}_HTTP" '%s' "$http"
  local sha; sha="$(sha256sum "$bin" | cut -c1-16)"
  local http_flags; http_flags="$({ "$bin" --helpfull 2>&1 || true; } | grep -o -- '--http_[a-z_]*' | sort -u | tr '\n' ' ')"
  record server "{\"new_front\": $new_front}" side="$side" binary="$bin" sha256_16="$sha" \
    flags="${FLAGS[*]} --http_port=0" http_flags="$http_flags" \
    models="$(grep -o 'model [a-z0-9-]* ready.*' "$WORK/server.log" | tr '\n' ';' || true)"
  echo "[bench] $side: $bin (sha256 $sha, new front: $new_front) on http $http, pid $SERVER_PID" >&2
}

SIDES=(after)
[[ -n "$BEFORE" ]] && SIDES=(before after)
[[ -n "$BEFORE" ]] && start_side before "$BEFORE"
start_side after "$AFTER"
SERVER_PID=""

addr_of() { local v="${1^^}_HTTP"; echo "${!v}"; }
pid_of() { local v="${1^^}_PID"; echo "${!v}"; }
model_of() { [[ $1 == classify ]] && echo digits-vit || echo kjv-lm; }

# One request of each workload on each server first: a wrong body fails here, not in the matrix.
for side in "${SIDES[@]}"; do
  for w in $WORKLOADS; do
    "$PY" "$ROOT/bench/http_load.py" --addr "$(addr_of "$side")" --workload "$w" --model "$(model_of "$w")" \
      --image "$IMAGE" --max-tokens "$MAX_TOKENS" --check >/dev/null \
      || { echo "[bench] $side: the $w check request failed:" >&2
           "$PY" "$ROOT/bench/http_load.py" --addr "$(addr_of "$side")" --workload "$w" \
             --model "$(model_of "$w")" --image "$IMAGE" --max-tokens "$MAX_TOKENS" --check >&2; exit 1; }
  done
done

n_runs=$(( $(wc -w <<<"$WORKLOADS") * $(wc -w <<<"$CONNECTIONS") * ROUNDS * ${#SIDES[@]} ))
echo "[bench] $n_runs runs of ${WARMUP}+${DURATION} s: about $(( n_runs * (WARMUP + DURATION + 2) / 60 + 1 )) minutes" >&2
i=0
for w in $WORKLOADS; do
  for c in $CONNECTIONS; do
    for round in $(seq 1 "$ROUNDS"); do
      for side in "${SIDES[@]}"; do
        i=$((i + 1))
        echo "[bench] ($i/$n_runs) $w, $c connections, round $round: $side" >&2
        row="$("$PY" "$ROOT/bench/http_load.py" --addr "$(addr_of "$side")" --workload "$w" \
          --model "$(model_of "$w")" --image "$IMAGE" --max-tokens "$MAX_TOKENS" --connections "$c" \
          --duration-s "$DURATION" --warmup-s "$WARMUP" --timeout-s "$TIMEOUT" --server-pid "$(pid_of "$side")")"
        record run "$row" side="$side" round="$round"
        kill -0 "$(pid_of "$side")" 2>/dev/null || { echo "[bench] the $side server died:" >&2
          tail -20 "$TMP/$side/server.log" >&2; exit 1; }
        sleep 1  # let cancelled work and closed connections settle
      done
    done
  done
done

for side in "${SIDES[@]}"; do
  SERVER_PID="$(pid_of "$side")"
  stop_server
  printf -v "${side^^}_PID" '%s' ""
done

"$PY" "$ROOT/bench/summarise_http_bench.py" "$JSONL" "$OUT/$NAME.md"
cat "$OUT/$NAME.md"
echo "[bench] wrote $JSONL and $OUT/$NAME.md" >&2
