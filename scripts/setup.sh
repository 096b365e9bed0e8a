#!/usr/bin/env bash
# Installs everything the project needs to build, run and test, and nothing twice:
# each step checks whether its result is already there and skips it if so.
# Used by the README commands, .ci/run and the Dockerfile.
#
#   scripts/setup.sh            build + test dependencies (Debian packages, Python venv with torch)
#   scripts/setup.sh --runtime  only what a running server needs (Dockerfile runtime stage)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/versions.sh"

MODE="build"
[[ "${1:-}" == "--runtime" ]] && MODE="runtime"

log() { printf '[setup] %s\n' "$*"; }

SUDO=""
if [[ $EUID -ne 0 ]]; then SUDO="sudo"; fi

# Debian packages. Build: compilers' inputs (headers, CMake configs, code generators), test tools,
# and the default language model's text (bible-kjv-text, read with bible-kjv's `bible` program).
# Runtime: the shared libraries the server binary links against.
BUILD_PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  python3 python3-venv python3-dev
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc
  libprotobuf-dev libprotoc-dev protobuf-compiler
  libabsl-dev
  prometheus-cpp-dev civetweb
  libgtest-dev libgmock-dev
  nlohmann-json3-dev
  libstb-dev
  libsentencepiece-dev
  prometheus curl
  bible-kjv bible-kjv-text
)
RUNTIME_PACKAGES=(
  ca-certificates python3
  libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623
  libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libcivetweb1
  libstb0
  libsentencepiece0
)

if [[ $MODE == runtime ]]; then PACKAGES=("${RUNTIME_PACKAGES[@]}"); else PACKAGES=("${BUILD_PACKAGES[@]}"); fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  log "Debian packages: all ${#PACKAGES[@]} present"
fi

if [[ $MODE == runtime ]]; then
  log "done (runtime: Debian libraries only; LibTorch comes with the build stage's venv)"
  exit 0
fi

if [[ ! -x /usr/local/cuda/bin/nvcc && -z "${CUDAToolkit_ROOT:-}" ]]; then
  echo "[setup] no CUDA toolkit at /usr/local/cuda: the torch wheel's CMake config needs one to" \
       "configure, even for CPU-only use. Install the CUDA 13.0 toolkit there, or set" \
       "CUDAToolkit_ROOT to one." >&2
  exit 1
fi

# Python virtual environment inside the repository (stock Debian's system Python refuses pip
# installs). It carries torch, whose wheel is also our LibTorch (headers, libs, CMake config).
VENV="${ELLIPTICAL_VENV:-$ROOT/.venv}"
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating virtual environment $VENV"
  /usr/bin/python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"

have_py_pkg() { # name==version
  local name="${1%%==*}" want="${1##*==}"
  local got
  got="$("$PY" -c "import importlib.metadata as m; print(m.version('$name'))" 2>/dev/null || true)"
  [[ "$got" == "$want" || "$got" == "$want+"* ]]
}

PY_PACKAGES=("torch==$TORCH_VERSION" "numpy==$NUMPY_VERSION" "safetensors==$SAFETENSORS_VERSION" "pillow==$PILLOW_VERSION" "packaging==$PACKAGING_VERSION"
             "torchvision==$TORCHVISION_VERSION" "timm==$TIMM_VERSION"
             "sentencepiece==$SENTENCEPIECE_VERSION" "scikit-learn==$SCIKIT_LEARN_VERSION"
             "grpcio==$GRPCIO_VERSION" "grpcio-tools==$GRPCIO_VERSION" "grpcio-health-checking==$GRPCIO_VERSION"
             "protobuf==$PROTOBUF_VERSION" "wheel==$WHEEL_VERSION")
py_missing=()
for p in "${PY_PACKAGES[@]}"; do have_py_pkg "$p" || py_missing+=("$p"); done
if ((${#py_missing[@]})); then
  log "installing Python packages into $VENV: ${py_missing[*]} (torch with its CUDA libraries is a few GB; pip shows progress)"
  "$PY" -m pip install --disable-pip-version-check --progress-bar on "${py_missing[@]}"
else
  log "Python packages: all ${#PY_PACKAGES[@]} present"
fi

# The Python client, built from this checkout (its stubs are generated from proto/ when it is
# built); reinstalled only when proto/ or the package changed since the last install.
if [[ ! -d "$ROOT/client/python" ]]; then
  log "Python client package: client/python not present (a partial copy of the tree), skipped"
else
client_stamp="$VENV/.elliptical-client-$(cat "$ROOT"/proto/elliptical/v1/*.proto "$ROOT"/client/python/pyproject.toml \
  "$ROOT"/client/python/setup.py "$ROOT"/client/python/elliptical_client/*.py | sha256sum | cut -c1-16)"
if [[ ! -f "$client_stamp" ]]; then
  log "installing the Python client package (client/python) into $VENV"
  "$PY" -m pip install --disable-pip-version-check -q --no-build-isolation --no-deps "$ROOT/client/python"
  rm -f "$VENV"/.elliptical-client-*
  touch "$client_stamp"
else
  log "Python client package: up to date"
fi
fi

abi="$("$PY" -c 'import torch; print(int(torch.compiled_with_cxx11_abi()))')"
if [[ $abi != 1 ]]; then
  echo "torch was built with the pre-C++11 ABI; it cannot link with Debian's gRPC" >&2
  exit 1
fi
log "done"
