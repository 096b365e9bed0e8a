#!/usr/bin/env bash
# Lays out under OUT what the runtime image takes from the build stage (the Dockerfile copies OUT
# to / in one step): the server, the client (the image's health check) and the SentencePiece
# shim, and of the build's virtual environment only the shared libraries LibTorch needs, at their
# venv paths. Those paths matter: the binaries' RPATH names the venv, and LibTorch finds its CUDA
# libraries by $ORIGIN-relative RPATHs into site-packages/nvidia/.
#
#   deploy/container/stage_runtime.sh cpu|gpu PREFIX VENV OUT
#
# cpu: exactly the libraries the dynamic loader resolves for the binaries (a -DELLIPTICAL_CUDA=OFF
#      build: libtorch_cpu, libc10, libc10_cuda, libgomp, and of CUDA only libcudart and libcupti,
#      which libtorch_cpu itself needs and which load without a GPU).
# gpu: all of LibTorch's and the nvidia-* wheels' shared libraries: LibTorch dlopens some of them
#      (cuDNN's engines, NVRTC's builtins, the cuSOLVER/MAGMA linear algebra library) on first use,
#      so the loader's view of the binaries is not enough.
set -euo pipefail
variant=$1 prefix=$2 venv=$3 out=$4
log() { printf '[stage] %s\n' "$*"; }

site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
site="$(realpath "$site")"
rm -rf "$out"
mkdir -p "$out$prefix/bin" "$out$prefix/lib"
install -m 755 "$prefix/bin/elliptical-server" "$prefix/bin/elliptical-client" "$out$prefix/bin/"
install -m 644 "$prefix/lib/libelliptical_spm.so" "$out$prefix/lib/"
# Debug information is most of their size; the symbol table stays, for readable backtraces.
strip --strip-debug "$out$prefix"/bin/* "$out$prefix"/lib/*.so

# Copies a file to the same path under OUT, as a file (a symlink is followed).
stage() { mkdir -p "$out$(dirname "$1")" && cp -L "$1" "$out$1"; }

# What the loader resolves for the staged binaries, transitively; "not found" is an error here
# rather than at the first start of the image.
resolved="$(ldd "$out$prefix"/bin/* "$out$prefix"/lib/*.so)"
if grep -q 'not found' <<<"$resolved"; then
  grep 'not found' <<<"$resolved" | sort -u >&2
  echo "[stage] unresolved libraries" >&2
  exit 1
fi
mapfile -t from_venv < <(awk '$2 == "=>" && $3 ~ /^\// {print $3}' <<<"$resolved" |
                         while read -r f; do echo "$(realpath "$(dirname "$f")")/$(basename "$f")"; done |
                         grep "^$site/" | sort -u)

case "$variant" in
  cpu)
    if printf '%s\n' "${from_venv[@]}" | grep -q -E 'libtorch_cuda|libcudnn|libcublas'; then
      echo "[stage] the binaries load LibTorch's CUDA libraries: configure with -DELLIPTICAL_CUDA=OFF" >&2
      exit 1
    fi
    for f in "${from_venv[@]}"; do stage "$f"; done
    ;;
  gpu)
    for f in "${from_venv[@]}"; do stage "$f"; done
    # libtorch_python needs libpython: it is for the Python package only.
    find "$site/torch/lib" "$site"/nvidia/*/lib -maxdepth 1 -name '*.so*' ! -name 'libtorch_python.so' \
         -type f -print0 | while IFS= read -r -d '' f; do stage "$f"; done
    # Symlinks stay symlinks (setup.sh's unversioned names would otherwise copy cuBLAS twice).
    find "$site/torch/lib" "$site"/nvidia/*/lib -maxdepth 1 -name '*.so*' -type l -print0 |
      while IFS= read -r -d '' f; do mkdir -p "$out$(dirname "$f")" && ln -sfn "$(readlink "$f")" "$out$f"; done
    ;;
  *) echo "[stage] variant must be cpu or gpu, not '$variant'" >&2; exit 1 ;;
esac
# A venv's lib64 is a symlink to lib; keep it, in case an RPATH was recorded through it.
if [[ -L "$venv/lib64" ]]; then cp -a "$venv/lib64" "$out$venv/lib64"; fi

log "$variant: $(find "$out" -type f | wc -l) files, $(du -sh "$out" | cut -f1) in all:"
(cd "$out" && find . -type f -printf '%s %p\n' | sort -rn | head -12 |
   awk '{printf "[stage]   %7.1f MB  %s\n", $1 / 1048576, substr($2, 2)}')
