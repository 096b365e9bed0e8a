#!/usr/bin/env bash
# Gathers what the GPU machine lacks into .deps/, a folder that travels with the working tree
# (`carry: [".deps"]`): the C++ dependencies from Debian's archive (gRPC, protobuf, Abseil,
# prometheus-cpp, nlohmann-json, libjpeg-turbo, libpng, libwebp, SentencePiece, GoogleTest),
# unpacked, and the wheels of the Python packages the tests use that fit the carry limit (that
# machine has PyTorch, CMake, ninja and nvcc, and no network). There, scripts/device_run.sh
# sources .deps/env.sh, which points CMake, pkg-config, protoc and the dynamic loader at it and
# tells scripts/setup.sh to install from .deps/wheels instead of the registries:
#
#   here:   scripts/gather_device_deps.sh
#   there:  bash scripts/device_run.sh        (build, whole test suite, GPU benchmarks)
#
# Packages are downloaded (not installed) and unpacked with dpkg -x; static archives are dropped
# to stay within the carry limit. Idempotent: an existing complete .deps is kept.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="$ROOT/.deps"

PACKAGES=(
  libgrpc++-dev libgrpc-dev libgrpc++1.51 libgrpc29 protobuf-compiler-grpc
  libprotobuf-dev libprotobuf32 libprotobuf-lite32 libprotoc-dev libprotoc32 protobuf-compiler
  libabsl-dev libabsl20220623
  libre2-dev libre2-9 libc-ares-dev libc-ares2 libssl-dev zlib1g-dev libsystemd-dev
  prometheus-cpp-dev libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libprometheus-cpp-push1.0
  civetweb libcivetweb1 libcivetweb-dev libcurl4-openssl-dev
  nlohmann-json3-dev libgtest-dev libgmock-dev
  libjpeg62-turbo-dev libjpeg62-turbo libpng-dev libpng16-16 libwebp-dev libwebp7
  libsentencepiece-dev libsentencepiece0
  libboost1.74-dev
  # The runtime libraries behind the dev links of zlib1g-dev, libssl-dev and libcurl4-openssl-dev
  # (libz.so -> libz.so.1, ...; libsystemd-dev, libwebp-dev likewise): without them those links dangle and CMake's FindZLIB, FindOpenSSL
  # and FindCURL (called by gRPC's and prometheus-cpp's configs) find nothing.
  zlib1g libssl3 libcurl4 libsystemd0 libwebpdemux2 libwebpmux3
  # pkg-config (CMake's FindPkgConfig) need not be on the GPU machine: pkgconf's, carried.
  pkgconf pkgconf-bin libpkgconf3
)
source "$ROOT/scripts/versions.sh"
# Python packages the tests need that the GPU machine's image (Python 3.12) lacks or holds at
# another version: the gRPC stack that generates and runs the Python client's stubs. Its own
# torch, numpy, pillow, safetensors, sentencepiece, timm and scikit-learn are used as they are;
# kubectl and the Kubernetes schemas do not fit the 64 MiB carry (scripts/device_run.sh skips
# that test).
WHEELS=("grpcio==$GRPCIO_VERSION" "grpcio-tools==$GRPCIO_VERSION" "grpcio-health-checking==$GRPCIO_VERSION"
        "grpcio-reflection==$GRPCIO_VERSION" "protobuf==$PROTOBUF_VERSION")
DEVICE_PYTHON=3.12
if [[ -f "$DEPS/root/.complete" && -f "$DEPS/wheels/.complete" ]]; then
  echo "[deps] $DEPS is complete; remove it to gather again"
  exit 0
fi
mkdir -p "$DEPS/debs" "$DEPS/root"

echo "[deps] downloading ${#PACKAGES[@]} packages from Debian's archive"
(cd "$DEPS/debs" && apt-get download "${PACKAGES[@]}")
for deb in "$DEPS"/debs/*.deb; do
  echo "[deps] unpacking $(basename "$deb")"
  dpkg -x "$deb" "$DEPS/root"
done
# Static archives are dropped to stay within the carry limit, except GoogleTest's: the tests link
# them (Debian ships no shared gtest), and GTestTargets.cmake stops configure when they are missing.
find "$DEPS/root" -name "*.a" ! -name "libgtest*.a" ! -name "libgmock*.a" -delete
rm -rf "$DEPS/debs"  # only the unpacked tree travels
rm -rf "$DEPS/root/usr/share/doc" "$DEPS/root/usr/share/man"
# Boost is 162 MB of headers; the HTTP transport includes about 8 MB of them (Asio, Beast and what
# they pull in). Keep exactly those: the closure the compiler reports for its one source file.
BOOST_KEEP="$(mktemp)"
g++ -std=gnu++17 -I"$ROOT" -DBOOST_ASIO_NO_DEPRECATED -DBOOST_BEAST_USE_STD_STRING_VIEW -isystem "$DEPS/root/usr/include" \
    -M "$ROOT/server/transport/http/http_server.cc" -I"$ROOT/build/proto" 2>/dev/null |
  tr ' \\' '\n\n' | grep -o 'usr/include/boost/.*' | sort -u > "$BOOST_KEEP" || true
if [[ -s "$BOOST_KEEP" ]]; then
  (cd "$DEPS/root" && find usr/include/boost -type f | grep -vxFf "$BOOST_KEEP" | xargs -r rm -f)
  find "$DEPS/root/usr/include/boost" -type d -empty -delete
fi
rm -f "$BOOST_KEEP"
# Every carried link must resolve inside the carried tree (a dangling dev link makes CMake's Find
# modules fail there, not here).
dangling="$(find "$DEPS/root" -xtype l -print | grep -v -e /usr/share/ -e /usr/src/ || true)"
if [[ -n "$dangling" ]]; then
  echo "[deps] links that point at nothing carried:" >&2; echo "$dangling" >&2; exit 1
fi
# pkgconf's binary answers to the name pkg-config only through a link Debian's pkg-config package
# makes; make it here.
[[ -e "$DEPS/root/usr/bin/pkg-config" ]] || ln -s pkgconf "$DEPS/root/usr/bin/pkg-config"

echo "[deps] downloading ${#WHEELS[@]} Python wheels (CPython $DEVICE_PYTHON, manylinux x86-64)"
rm -rf "$DEPS/wheels"; mkdir -p "$DEPS/wheels"
"${ELLIPTICAL_VENV:-$ROOT/.venv}/bin/python" -m pip download --disable-pip-version-check -q --no-deps \
  --only-binary=:all: --python-version "$DEVICE_PYTHON" --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  -d "$DEPS/wheels" "${WHEELS[@]}"
touch "$DEPS/wheels/.complete"

cat > "$DEPS/env.sh" <<'ENV'
# Source on the GPU machine: makes the unpacked Debian packages visible to the build and the tests.
_r="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/root"
export PATH="$_r/usr/bin:$PATH"
export LD_LIBRARY_PATH="$_r/usr/lib/x86_64-linux-gnu:$_r/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CMAKE_PREFIX_PATH="$_r/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export PKG_CONFIG_SYSROOT_DIR="$_r"
export PKG_CONFIG_LIBDIR="$_r/usr/lib/x86_64-linux-gnu/pkgconfig:$_r/usr/share/pkgconfig"
# scripts/setup.sh: Debian packages come from here, Python packages from these wheels, and the
# venv sees the machine's own torch.
export ELLIPTICAL_OFFLINE_DEPS="$(dirname "$_r")"
ENV
touch "$DEPS/root/.complete"
du -sh "$DEPS/root" "$DEPS/wheels"
