#!/usr/bin/env bash
# Rehearses the GPU machine's run here: the device bundle (scripts/device_bundle.sh) run by
# scripts/device_bundle_run.sh in a root unlike the build machine's, as the device tool would run
# it: a Debian trixie root (bookworm where this debootstrap knows no trixie) made with debootstrap,
# no -dev packages, Python with torch 2.11 at a path of its own (/opt/torch/.venv, as there, with
# the packages that machine's image has: numpy, pillow, safetensors, sentencepiece, scikit-learn,
# timm, cmake), no network (unshare -n), nothing of this machine's but the tree and the bundle.
# Everything runs but what needs CUDA (skipped with its reason: the bundle run's skipped.txt).
#
#   scripts/device_rehearsal.sh [--rebuild-bundle] [ctest options]     the whole suite, one run
#   scripts/device_rehearsal.sh [--rebuild-bundle] --calls             the device calls of
#       docs/building.md ("The device calls"), in turn, each in a fresh copy of the tree as a fresh
#       machine would get it, timed: the smoke and CUDA tests, the forward and classify
#       benchmarks, the LM benchmark (here in their CPU form)
#
# The root is made once and cached in $ELLIPTICAL_REHEARSAL_CACHE (default ~/.cache/elliptical-
# rehearsal; about 5.3 GB, most of it torch's CUDA wheels); making it needs the network (Debian's
# archive, PyPI) and root. Results: bench/results/device-rehearsal/ (run.log, tests.txt, skipped.txt).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/versions.sh"
CACHE="${ELLIPTICAL_REHEARSAL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/elliptical-rehearsal}"
MIRROR="${ELLIPTICAL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
log() { printf '[rehearsal %s] %s\n' "$(date +%T)" "$*"; }
[[ $EUID -eq 0 ]] || { echo "run as root (debootstrap, chroot, unshare -n)" >&2; exit 2; }
command -v ip >/dev/null || apt-get install -y -qq iproute2 >/dev/null
REBUILD=0 CALLS=0
[[ "${1:-}" == "--rebuild-bundle" ]] && { REBUILD=1; shift; }
[[ "${1:-}" == "--calls" ]] && { CALLS=1; shift; }
# The device tool's calls, as docs/building.md gives them (command; timeout_s there).
DEVICE_CALLS=(
  "bash scripts/device_bundle_run.sh --deadline 150 --gpu-tests"
  "bash scripts/device_bundle_run.sh --deadline 240 --bench forward,classify"
  "bash scripts/device_bundle_run.sh --deadline 240 --bench lm"
)

command -v debootstrap >/dev/null || { log "installing debootstrap"; apt-get install -y -qq debootstrap >/dev/null; }
SUITE=trixie
[[ -f /usr/share/debootstrap/scripts/trixie ]] || SUITE=bookworm
R="$CACHE/$SUITE-root"
if [[ ! -f "$R/.complete" ]]; then
  t=$(date +%s)
  rm -rf "$R.tmp"; mkdir -p "$CACHE"
  log "making a Debian $SUITE root in $R (once)"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,openssl "$SUITE" "$R.tmp" "$MIRROR"
  # PyPI through this machine's network, trusting what this machine trusts (a proxy's CA, say),
  # then the root's own CA list back.
  cp /etc/resolv.conf "$R.tmp/etc/resolv.conf"
  cp "$R.tmp/etc/ssl/certs/ca-certificates.crt" "$R.tmp/ca.orig"
  cp /etc/ssl/certs/ca-certificates.crt "$R.tmp/etc/ssl/certs/ca-certificates.crt"
  unshare -m bash -c "mount -t proc proc '$R.tmp/proc' && mount --rbind /dev '$R.tmp/dev' &&
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root chroot '$R.tmp' bash -c '
      python3 -m venv /opt/torch/.venv &&
      /opt/torch/.venv/bin/pip install --no-cache-dir --progress-bar off torch==$TORCH_VERSION numpy==$NUMPY_VERSION \
        pillow==$PILLOW_VERSION safetensors==$SAFETENSORS_VERSION sentencepiece==$SENTENCEPIECE_VERSION \
        scikit-learn==$SCIKIT_LEARN_VERSION timm==$TIMM_VERSION torchvision==$TORCHVISION_VERSION cmake'"
  mv "$R.tmp/ca.orig" "$R.tmp/etc/ssl/certs/ca-certificates.crt"
  if chroot "$R.tmp" dpkg-query -W -f='${Package}\n' | grep -- '-dev$'; then log "the root has -dev packages"; exit 1; fi
  touch "$R.tmp/.complete"; rm -rf "$R"; mv "$R.tmp" "$R"
  log "root made in $(( $(date +%s) - t )) s ($(du -sh "$R" | cut -f1))"
fi

if [[ $REBUILD == 1 || ! -f "$ROOT/.device-bundle.tar.xz" ]]; then bash "$ROOT/scripts/device_bundle.sh" "$(chroot "$R" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"; fi

# What the device tool sends: the tree (tracked and untracked-not-ignored files) and the carried
# bundle, at a path other than this checkout's. Then COMMAND in that root, without network.
T="$R/root/tree"
rehearse() {  # RESULTS_SUBDIR COMMAND
  local sub="$1" command="$2"
  rm -rf "$T" "$R/root/out" "$R/work"; mkdir -p "$T" "$R/root/out"
  (cd "$ROOT" && git ls-files -co --exclude-standard -z | tar --null -T - -cf - ) | tar -xf - -C "$T"
  cp "$ROOT/.device-bundle.tar.xz" "$T/"
  log "tree $(du -sh --exclude=.device-bundle.tar.xz "$T" | cut -f1) + bundle $(du -h "$T/.device-bundle.tar.xz" | cut -f1) in $T"
  log "run: $command"
  local t rc
  t=$(date +%s)
  set +e
  # A new network namespace has only a loopback device, and it is down: up, as on any machine.
  unshare -n -m bash -c "ip link set lo up && mount -t proc proc '$R/proc' && mount --rbind /dev '$R/dev' && mount -t tmpfs tmpfs '$R/tmp' &&
    env -i PATH=/opt/torch/.venv/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root OUT=/root/out LANG=C.UTF-8 \
      ELLIPTICAL_TEST_JOBS=${ELLIPTICAL_TEST_JOBS:-2} CALL='$command' chroot '$R' bash -c '
      python3 -c \"import socket; socket.create_connection((\\\"deb.debian.org\\\", 80), 3)\" 2>/dev/null &&
        { echo network reachable: not a rehearsal; exit 3; }
      echo \"[rehearsal] no network; \$(. /etc/os-release; echo \$PRETTY_NAME); python3 is \$(command -v python3)\"
      cd /root/tree && eval \"\$CALL\"'"
  rc=$?
  set -e
  local secs=$(( $(date +%s) - t ))
  local dest="$ROOT/bench/results/device-rehearsal${sub:+/$sub}"
  rm -rf "$dest"; mkdir -p "$dest"
  cp "$R"/root/out/* "$dest/" 2>/dev/null || true
  echo "$command: exit $rc in $secs s" >> "$ROOT/bench/results/device-rehearsal/times.txt"
  log "done in $secs s (exit $rc); results in ${dest#$ROOT/}"
  return "$rc"
}

mkdir -p "$ROOT/bench/results/device-rehearsal"
: > "$ROOT/bench/results/device-rehearsal/times.txt"
if [[ $CALLS == 1 ]]; then
  overall=0
  for i in "${!DEVICE_CALLS[@]}"; do
    rehearse "call-$((i + 1))" "${DEVICE_CALLS[$i]}" || overall=1
  done
  echo "--- times:"; cat "$ROOT/bench/results/device-rehearsal/times.txt"
  exit "$overall"
fi
set +e
rehearse "" "bash scripts/device_bundle_run.sh --deadline ${ELLIPTICAL_REHEARSAL_DEADLINE:-3600} $*"
rc=$?
set -e
echo "--- skipped by name:"; cat "$ROOT/bench/results/device-rehearsal/skipped.txt" 2>/dev/null || true
exit "$rc"
