#!/usr/bin/env bash
# Makes the device bundle here, from a finished build: everything the GPU machine needs to run the
# tests and the server without building (it has Python with torch 2.11, CMake's ctest, no network,
# and a 64 MiB carry limit), in .device-bundle/ and as .device-bundle.tar.xz (both ignored by git):
#
#   build/   the build tree's binaries (server, client, loadgen, test and bench programs, the
#            SentencePiece shim), debug info stripped, with CTest's files and the discovered gtest
#            lists; RUNPATH $ORIGIN/../../lib (LibTorch itself comes from the machine's torch)
#   lib/     the Debian runtime libraries those need beyond libc, libstdc++, zlib and OpenSSL (which
#            any root with Python has), each with RUNPATH $ORIGIN, so that they reach only our
#            programs (the machine's Python keeps its own libraries)
#   bin/     curl (the metrics tests scrape with it) and the KJV `bible` program with its data (the
#            default LM's test reads the text), with their libraries in lib/
#   wheels/  the Python client package built here (stubs generated) and the gRPC/protobuf wheels it
#            needs, for CPython 3.12 (the GPU machine's) and this script's extra versions
#   BUNDLE   where it was built (the paths CTest's files hold), the commit, torch's version
#
#   scripts/device_bundle.sh [extra CPython versions for the wheels, e.g. 3.13]
# Then there: bash scripts/device_bundle_run.sh (scripts/device_rehearsal.sh runs it here).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${ELLIPTICAL_BUILD_DIR:-$ROOT/build}"
OUTDIR="$ROOT/.device-bundle"
PY="${ELLIPTICAL_VENV:-$ROOT/.venv}/bin/python"
PY_VERSIONS=(3.12 "$@")
source "$ROOT/scripts/versions.sh"
log() { printf '[bundle] %s\n' "$*"; }

[[ -x "$BUILD/server/elliptical-server" ]] || { echo "no build in $BUILD: run scripts/build.sh" >&2; exit 2; }
start=$(date +%s)
rm -rf "$OUTDIR" "$OUTDIR.tar.xz"
mkdir -p "$OUTDIR"/{build,lib,bin,share/bible,wheels}

# CTest discovers each gtest program's cases when it runs (PRE_TEST) with CMake's own module,
# which pip's cmake there does not have at this path: discover here, carry the lists, and let the
# include files only include them.
ctest --test-dir "$BUILD" -N >/dev/null

# Binaries, CTest's files, and nothing else from the build tree.
programs=()
while IFS= read -r -d '' f; do
  rel="${f#$BUILD/}"
  case "$rel" in CMakeFiles/*|*/CMakeFiles/*|*/_deps/*) continue ;; esac
  if [[ "$rel" == *.cmake ]]; then
    [[ "$(basename "$rel")" == CTestTestfile.cmake || "$rel" == *"]_tests.cmake" || "$rel" == *"]_include.cmake" ]] || continue
    mkdir -p "$OUTDIR/build/$(dirname "$rel")"; cp "$f" "$OUTDIR/build/$rel"
  elif [[ -x "$f" && ! -d "$f" ]] && head -c4 "$f" | grep -q ELF; then
    mkdir -p "$OUTDIR/build/$(dirname "$rel")"
    strip --strip-debug -o "$OUTDIR/build/$rel" "$f"
    programs+=("$OUTDIR/build/$rel")
  fi
done < <(find "$BUILD" -maxdepth 3 \( -name 'CTestTestfile.cmake' -o -name '*.cmake' -o -type f -perm -u+x -o -name '*.so' \) -print0)
cp "$BUILD/server/libelliptical_spm.so" "$OUTDIR/build/server/" 2>/dev/null || true
strip --strip-debug "$OUTDIR/build/server/libelliptical_spm.so"
programs+=("$OUTDIR/build/server/libelliptical_spm.so")
for inc in "$OUTDIR"/build/tests/*"]_include.cmake"; do
  tests="${inc%_include.cmake}_tests.cmake"
  [[ -f "$tests" ]] || { echo "no discovered tests for $inc" >&2; exit 1; }
  printf 'include("%s")\n' "$BUILD/tests/$(basename "$tests")" > "$inc"
done

# The KJV text's program and data, curl.
cp /usr/bin/bible "$OUTDIR/bin/bible.real"
cp /usr/lib/bible.data /usr/lib/bible.data.conc "$OUTDIR/share/bible/"
cat > "$OUTDIR/bin/bible" <<'EOF'
#!/bin/sh
# Debian's bible-kjv, carried: its data beside it rather than in /usr/lib.
here="$(cd "$(dirname "$0")" && pwd)"
exec "$here/bible.real" -p "$here/../share/bible" "$@"
EOF
chmod +x "$OUTDIR/bin/bible"
cp /usr/bin/curl "$OUTDIR/bin/curl"
programs+=("$OUTDIR/bin/bible.real" "$OUTDIR/bin/curl")

# The libraries: what ldd resolves outside the torch wheel and outside a base system with Python.
is_base() {
  case "$1" in
    linux-vdso.so*|ld-linux-x86-64.so*|libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|libutil.so.*|\
    libresolv.so.*|libstdc++.so.*|libgcc_s.so.*|libz.so.*|libssl.so.*|libcrypto.so.*) return 0 ;;
  esac
  return 1
}
declare -A copied=()
for p in "${programs[@]}"; do
  while read -r name _ path _; do
    [[ -n "$path" && "$path" == /* ]] || continue
    is_base "$name" && continue
    case "$path" in *"/site-packages/"*|"$BUILD"/*) continue ;; esac  # LibTorch/CUDA: the machine's torch; ours
    [[ -n "${copied[$name]:-}" ]] && continue
    cp -L "$path" "$OUTDIR/lib/$name"; copied[$name]=1
  done < <(ldd "$p" | grep '=>')
done
for l in "$OUTDIR"/lib/*; do strip --strip-unneeded "$l" 2>/dev/null || true; patchelf --set-rpath '$ORIGIN' "$l"; done
for p in "${programs[@]}"; do
  dir="$(dirname "$p")"; rel="$(realpath --relative-to="$dir" "$OUTDIR/lib")"
  patchelf --set-rpath "\$ORIGIN/$rel" "$p"
done
log "${#programs[@]} programs, ${#copied[@]} libraries"

# Python: the client package (stubs generated here) and the gRPC runtime for each CPython.
"$PY" -m pip wheel --disable-pip-version-check -q --no-deps --no-build-isolation -w "$OUTDIR/wheels" "$ROOT/client/python"
for v in "${PY_VERSIONS[@]}"; do
  "$PY" -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: --python-version "$v" \
    --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    -d "$OUTDIR/wheels" "grpcio==$GRPCIO_VERSION" "grpcio-health-checking==$GRPCIO_VERSION" \
    "grpcio-reflection==$GRPCIO_VERSION" "protobuf==$PROTOBUF_VERSION"
done

cat > "$OUTDIR/BUNDLE" <<EOF
BUILD_ROOT=$ROOT
BUILD_DIR=$BUILD
COMMIT=$(git -C "$ROOT" rev-parse HEAD)$(git -C "$ROOT" diff --quiet HEAD -- . ':!docs' 2>/dev/null || echo "+changes")
TORCH=$("$PY" -c 'import torch; print(torch.__version__)')
MADE=$(date -u +%FT%TZ)
EOF
(cd "$ROOT" && XZ_OPT="-6 -T2" tar -cJf .device-bundle.tar.xz .device-bundle)
tree_bytes=$(cd "$ROOT" && git ls-files -co --exclude-standard -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
log "done in $(( $(date +%s) - start )) s: $(du -sh "$OUTDIR" | cut -f1) unpacked" \
    "(build $(du -sh "$OUTDIR/build" | cut -f1), lib $(du -sh "$OUTDIR/lib" | cut -f1), wheels $(du -sh "$OUTDIR/wheels" | cut -f1));" \
    ".device-bundle.tar.xz $(( $(stat -c %s "$ROOT/.device-bundle.tar.xz") / 1048576 )) MiB;" \
    "the tree that travels with it $(( tree_bytes / 1048576 )) MiB"
