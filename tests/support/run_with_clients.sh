#!/bin/sh
# Runs a protocol test with the protocol-test clients' interpreter (tritonclient and the openai
# SDK, in .venv-clients, made by scripts/setup.sh), or, where that interpreter is absent (the GPU
# machine's bundle run, scripts/device_bundle_run.sh, which sets ELLIPTICAL_CLIENTS_MAY_BE_ABSENT),
# says why and exits 77, which CTest reports as Skipped (SKIP_RETURN_CODE in tests/CMakeLists.txt).
# Anywhere else an absent interpreter fails the test: the README's test command makes it, and a
# test that silently skipped there would check nothing. Label clients_venv: `ctest -LE
# clients_venv` leaves these tests out altogether.
#   run_with_clients.sh PYTHON TEST.py ARGS...
py="$1"
shift
if [ ! -x "$py" ]; then
  if [ -z "${ELLIPTICAL_CLIENTS_MAY_BE_ABSENT:-}" ]; then
    echo "FAIL: the protocol-test clients' Python $py is absent: run scripts/setup.sh (it makes that venv)"
    exit 1
  fi
  echo "SKIPPED: the protocol-test clients' Python $py is absent (tritonclient and openai are not" \
       "carried to this machine; scripts/setup.sh makes that venv where a registry is reachable)"
  exit 77
fi
exec "$py" "$@"
