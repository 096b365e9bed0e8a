#!/usr/bin/env bash
# Gathers the C++ dependencies that the GPU machine lacks (gRPC, protobuf, Abseil, prometheus-cpp,
# nlohmann-json, stb, GoogleTest) from Debian's archive into .deps/, a folder that travels with
# the working tree (`carry: [".deps"]`). There, `source .deps/env.sh` points CMake, pkg-config,
# protoc and the dynamic loader at it, and the same build runs against that machine's LibTorch:
#
#   here:   scripts/gather_device_deps.sh
#   there:  source .deps/env.sh && cmake -S . -B build-gpu -G Ninja -DELLIPTICAL_PYTHON=python3 \
#             && cmake --build build-gpu && ctest --test-dir build-gpu
#
# Packages are downloaded (not installed) and unpacked with dpkg -x; static archives are dropped
# to stay within the carry limit. Idempotent: an existing .deps/root is kept.
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
  nlohmann-json3-dev libstb-dev libstb0 libgtest-dev libgmock-dev
)

if [[ -f "$DEPS/root/.complete" ]]; then
  echo "[deps] $DEPS/root is complete; remove it to gather again"
  exit 0
fi
mkdir -p "$DEPS/debs" "$DEPS/root"

echo "[deps] downloading ${#PACKAGES[@]} packages from Debian's archive"
(cd "$DEPS/debs" && apt-get download "${PACKAGES[@]}")
for deb in "$DEPS"/debs/*.deb; do
  echo "[deps] unpacking $(basename "$deb")"
  dpkg -x "$deb" "$DEPS/root"
done
find "$DEPS/root" -name "*.a" -delete
rm -rf "$DEPS/debs"  # only the unpacked tree travels
rm -rf "$DEPS/root/usr/share/doc" "$DEPS/root/usr/share/man"

cat > "$DEPS/env.sh" <<'ENV'
# Source on the GPU machine: makes the unpacked Debian packages visible to the build and the tests.
_r="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/root"
export PATH="$_r/usr/bin:$PATH"
export LD_LIBRARY_PATH="$_r/usr/lib/x86_64-linux-gnu:$_r/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CMAKE_PREFIX_PATH="$_r/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export PKG_CONFIG_SYSROOT_DIR="$_r"
export PKG_CONFIG_LIBDIR="$_r/usr/lib/x86_64-linux-gnu/pkgconfig:$_r/usr/share/pkgconfig"
ENV
touch "$DEPS/root/.complete"
du -sh "$DEPS/root"
