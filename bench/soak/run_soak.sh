#!/usr/bin/env bash
# Mixed-load soak of the real server (not run in CI): starts the server on the shipped models
# (or uses --address), runs concurrent Classify, Segment and Generate clients with cancellations,
# expiring deadlines and bad requests, samples throughput, latency, status codes, resident memory,
# threads and the /metrics gauges, and writes bench/results/soak-<name>.{jsonl,md,png}.
#
#   bash bench/soak/run_soak.sh --minutes 30 [--name NAME] [--server-binary PATH] [--compute-threads N]
#   bash bench/soak/run_soak.sh --help        # every option
# Exit status 1: unexpected errors, memory growth past --max-rss-growth-pct, or a server that
# died or did not return to idle. Builds nothing: point --server-binary at the build to test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
exec "$ROOT/.venv/bin/python" "$ROOT/bench/soak/soak.py" "$@"
