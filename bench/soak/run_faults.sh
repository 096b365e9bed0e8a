#!/usr/bin/env bash
# Fault cases against the real server (not run in CI): model files corrupted while serving and
# on restart, a client SIGKILLed mid-stream, logs on /dev/full and on a full tmpfs, SIGTERM under
# load, clients that stop reading. Each case prints PASS, FAIL or SKIP with what it observed.
#
#   bash bench/soak/run_faults.sh [--cases corrupt,sigkill,devfull,fulltmpfs,drain,slowreader]
#                                 [--server-binary PATH] [--compute-threads N] [--out FILE.json] [--keep]
# Exit status 1 when a case FAILs. Builds nothing: point --server-binary at the build to test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
exec "$ROOT/.venv/bin/python" "$ROOT/bench/soak/faults.py" "$@"
