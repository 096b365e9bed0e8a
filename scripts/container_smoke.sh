#!/usr/bin/env bash
# Builds the container image from the Dockerfile, starts it, and calls it from outside: waits for
# health SERVING, then Classify, Segment and Generate on the default models, then SIGTERM, which
# must end the server with exit status 0. Also checks what the image carries (no compiler, pip,
# sources or tests; a non-root user; every library resolves; the CPU image without LibTorch's CUDA
# libraries). Prints each phase's time and the image size; exits non-zero at the first failure.
# Safe to run again: the base image is made once, a rebuilt image replaces the previous one, and
# the test container is removed on every exit.
#
#   bash scripts/container_smoke.sh                  # the CPU image, elliptical-server:cpu
#   VARIANT=gpu bash scripts/container_smoke.sh      # the GPU image (on the CPU where no GPU is)
#
# Environment: VARIANT (cpu | gpu), IMAGE (default elliptical-server:$VARIANT), ENGINE (docker |
# podman | buildah; default: docker or podman if one answers, else buildah, installed with
# apt-get when missing), CLIENT (auto | cli | python), BUILD=0 (test the existing image, no
# build), LAYERS=1 (buildah: keep the layer cache), LOG_DIR (default
# /tmp/elliptical-container-smoke), PORT and METRICS_PORT (default: free ones), READY_TIMEOUT_S.
#
# Buildah needs no daemon: it runs with --isolation chroot --storage-driver vfs, the container on
# the host's network. Where no registry answers, the debian:bookworm base image is made locally
# with debootstrap from the host's apt mirror, with the host's CA bundle and pip configuration
# (registries may sit behind a proxy with its own CA).
#
# The calls use the host's client: build/client/elliptical-client when built, else the Python
# client (deploy/container/smoke_calls.py with the elliptical_client package of .venv).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VARIANT="${VARIANT:-cpu}"
IMAGE="${IMAGE:-elliptical-server:$VARIANT}"
LOG_DIR="${LOG_DIR:-/tmp/elliptical-container-smoke}"
READY_TIMEOUT_S="${READY_TIMEOUT_S:-180}"
BASE_IMAGE="debian:bookworm"
CONTAINER="elliptical-smoke-$VARIANT"
mkdir -p "$LOG_DIR"

T0=$SECONDS
log() { printf '[smoke %4ds] %s\n' "$((SECONDS - T0))" "$*"; }
fail() { printf '[smoke %4ds] FAILED: %s\n' "$((SECONDS - T0))" "$*" >&2; exit 1; }
elapsed() { local s=$1; printf '%dm%02ds' $((s / 60)) $((s % 60)); }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
[[ $VARIANT == cpu || $VARIANT == gpu ]] || fail "VARIANT is cpu or gpu, not '$VARIANT'"

# ---------------------------------------------------------------------------------------------
# The engine.
BUILDAH=(buildah --storage-driver vfs)
pick_engine() {
  if [[ -n "${ENGINE:-}" ]]; then return; fi
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then ENGINE=docker
  elif command -v podman >/dev/null && podman info >/dev/null 2>&1; then ENGINE=podman
  else
    ENGINE=buildah
    if ! command -v buildah >/dev/null; then
      [[ $EUID -eq 0 ]] || fail "no container engine answers, and installing buildah needs root"
      log "no container engine answers: installing buildah"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends buildah \
        >"$LOG_DIR/apt-buildah.log" 2>&1 || fail "apt-get install buildah (log $LOG_DIR/apt-buildah.log)"
    fi
  fi
}
pick_engine
[[ $ENGINE == buildah && $EUID -ne 0 ]] && fail "buildah with chroot isolation needs root here"
log "engine: $ENGINE; image $IMAGE (VARIANT=$VARIANT); logs in $LOG_DIR"

image_exists() {
  case $ENGINE in
    buildah) "${BUILDAH[@]}" inspect --type image "$1" >/dev/null 2>&1 ;;
    *) $ENGINE image inspect "$1" >/dev/null 2>&1 ;;
  esac
}
image_size_bytes() {
  case $ENGINE in
    # The layers' uncompressed sizes, as docker's SIZE column adds them up.
    buildah) "${BUILDAH[@]}" inspect --type image --format '{{.Manifest}}' "$1" |
             python3 -c 'import json,sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))' ;;
    *) $ENGINE image inspect --format '{{.Size}}' "$1" ;;
  esac
}
human() { python3 -c 'import sys; n=int(sys.argv[1]); print(f"{n/1e9:.2f} GB ({n/2**30:.2f} GiB)")' "$1"; }

# ---------------------------------------------------------------------------------------------
# The base image, when the engine does not have it and cannot pull it.
make_base_image() {
  local mirror root="$LOG_DIR/debian-bookworm-root"
  mirror="$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | awk '{print $2}')"
  [[ -n $mirror ]] || mirror="$(grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')"
  [[ -n $mirror ]] || mirror=http://deb.debian.org/debian
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap \
      >"$LOG_DIR/apt-debootstrap.log" 2>&1 || fail "apt-get install debootstrap"
  }
  log "making $BASE_IMAGE with debootstrap from $mirror (log $LOG_DIR/debootstrap.log)"
  rm -rf "$root"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$mirror" \
    >"$LOG_DIR/debootstrap.log" 2>&1 || fail "debootstrap (log $LOG_DIR/debootstrap.log)"
  # The host's apt sources, trust store and pip configuration: what lets apt and pip reach their
  # registries from here.
  rm -f "$root/etc/apt/sources.list"
  cp -a /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list "$root/etc/apt/sources.list.d/" 2>/dev/null || true
  [[ -f /etc/apt/sources.list ]] && cp /etc/apt/sources.list "$root/etc/apt/sources.list"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  [[ -d /usr/local/share/ca-certificates ]] && cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
  for f in /etc/pip.conf /root/.config/pip/pip.conf /root/.pip/pip.conf; do
    [[ -f $f ]] && mkdir -p "$root$(dirname "$f")" && cp "$f" "$root$f"
  done
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/*
  case $ENGINE in
    buildah)
      local ctr mnt
      ctr="$("${BUILDAH[@]}" from scratch)"
      mnt="$("${BUILDAH[@]}" mount "$ctr")"
      cp -a "$root/." "$mnt/"
      "${BUILDAH[@]}" umount "$ctr" >/dev/null
      "${BUILDAH[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --cmd /bin/bash "$ctr"
      # Under docker.io's name, so that the Dockerfile's FROM resolves to it without a registry.
      "${BUILDAH[@]}" commit --rm --quiet "$ctr" "docker.io/library/$BASE_IMAGE" >/dev/null ;;
    *) tar -C "$root" -c . | $ENGINE import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null ;;
  esac
  rm -rf "$root"
}

t=$SECONDS
if image_exists "$BASE_IMAGE"; then
  log "base image $BASE_IMAGE: present"
elif [[ $ENGINE != buildah ]] && timeout 120 $ENGINE pull -q "$BASE_IMAGE" >"$LOG_DIR/pull.log" 2>&1; then
  log "base image $BASE_IMAGE: pulled"
else
  make_base_image
  log "base image $BASE_IMAGE: made in $(elapsed $((SECONDS - t))), $(human "$(image_size_bytes "$BASE_IMAGE")")"
fi
BASE_S=$((SECONDS - t))

# ---------------------------------------------------------------------------------------------
# The image. Its output (apt, pip, compiler) goes to the log; a progress line shows the step.
BUILD_LOG="$LOG_DIR/build-$VARIANT.log"
# buildah's vfs storage copies the whole tree for every layer and every step's container: with
# the layer cache a build held 59 GB at its peak here, without it 16. So by default it builds
# without (LAYERS=1 keeps the cache, for quick reruns where the disk allows).
# --format docker: the OCI format has no HEALTHCHECK.
build_cmd=()
case $ENGINE in
  buildah) build_cmd=("${BUILDAH[@]}" bud --isolation chroot "--layers=$([[ ${LAYERS:-0} == 1 ]] && echo true || echo false)"
                      --force-rm --pull=never --format docker) ;;
  podman) build_cmd=(podman build --format docker) ;;
  docker) export DOCKER_BUILDKIT=1; build_cmd=(docker build --progress=plain) ;;
esac
build_cmd+=(--build-arg "VARIANT=$VARIANT" -t "$IMAGE" -f "$ROOT/Dockerfile" "$ROOT")
image_id() {
  case $ENGINE in
    buildah) "${BUILDAH[@]}" inspect --type image --format '{{.FromImageID}}' "$1" 2>/dev/null ;;
    *) $ENGINE image inspect --format '{{.Id}}' "$1" 2>/dev/null ;;
  esac
}
previous_id="$(image_id "$IMAGE" || true)"

BUILD_S=0
if [[ ${BUILD:-1} == 0 ]]; then
  image_exists "$IMAGE" || fail "BUILD=0, but there is no image $IMAGE"
  SIZE="$(image_size_bytes "$IMAGE")"
  log "using the existing $IMAGE (BUILD=0): $(human "$SIZE")"
else
  log "building $IMAGE (log $BUILD_LOG)"
  t=$SECONDS
  "${build_cmd[@]}" >"$BUILD_LOG" 2>&1 &
  build_pid=$!
  last_report=0
  while kill -0 "$build_pid" 2>/dev/null; do
    sleep 5
    if ((SECONDS - last_report >= 30)); then
      last_report=$SECONDS
      step="$(grep -a -o -E '^((\[[0-9]+/[0-9]+\] )?STEP [0-9]+/[0-9]+|#[0-9]+ \[[^]]+\]|Step [0-9]+/[0-9]+).{0,50}' "$BUILD_LOG" | tail -1 || true)"
      line="$(tail -c 4000 "$BUILD_LOG" | tr '\r' '\n' | grep -a -v '^[[:space:]]*$' | tail -1 | cut -c1-90 || true)"
      log "  building $(elapsed $((SECONDS - t))): ${step:-starting} | ${line}"
    fi
  done
  rc=0; wait "$build_pid" || rc=$?
  ((rc == 0)) || { tail -30 "$BUILD_LOG" >&2; fail "image build, exit status $rc (log $BUILD_LOG)"; }
  BUILD_S=$((SECONDS - t))
  # The image this build replaced, now untagged, would otherwise stay behind at every rerun.
  if [[ -n $previous_id && "$(image_id "$IMAGE")" != "$previous_id" ]]; then
    case $ENGINE in
      buildah) "${BUILDAH[@]}" rmi "$previous_id" >/dev/null 2>&1 || true ;;
      *) $ENGINE image rm "$previous_id" >/dev/null 2>&1 || true ;;
    esac
  fi
  cached="$(grep -a -c -E 'Using cache|CACHED' "$BUILD_LOG" || true)"
  SIZE="$(image_size_bytes "$IMAGE")"
  log "built $IMAGE in $(elapsed $BUILD_S) ($cached steps from the cache): $(human "$SIZE")"
  grep -a -E '^\[stage\]' "$BUILD_LOG" | tail -14 | sed 's/^/    /' || true
fi

# ---------------------------------------------------------------------------------------------
# Containers. buildah has no detached run: its `run` is started in the background, and the
# server, its child, is found by walking the process tree from it.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT="${PORT:-$(free_port)}"
METRICS_PORT="${METRICS_PORT:-$(free_port)}"
SERVER_LOG="$LOG_DIR/server-$VARIANT.log"
run_pid=""

remove_container() {
  case $ENGINE in
    buildah) "${BUILDAH[@]}" rm "$CONTAINER" >/dev/null 2>&1 || true ;;
    *) $ENGINE rm -f "$CONTAINER" >/dev/null 2>&1 || true ;;
  esac
}
cleanup() {
  if [[ -n $run_pid ]] && kill -0 "$run_pid" 2>/dev/null; then
    local pid; pid="$(server_pid || true)"
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null
    wait "$run_pid" 2>/dev/null || true
  fi
  remove_container
}
trap cleanup EXIT

# Runs a shell snippet inside the image, as its user.
in_image() {
  case $ENGINE in
    buildah) "${BUILDAH[@]}" run --isolation chroot "$CONTAINER" -- sh -c "$1" ;;
    *) $ENGINE run --rm --entrypoint sh "$IMAGE" -c "$1" ;;
  esac
}

remove_container
if [[ $ENGINE == buildah ]]; then
  "${BUILDAH[@]}" from --pull=never --name "$CONTAINER" "$IMAGE" >/dev/null
fi

# What the image carries.
t=$SECONDS
user="$(case $ENGINE in
  buildah) "${BUILDAH[@]}" inspect --type image --format '{{.OCIv1.Config.User}}' "$IMAGE" ;;
  *) $ENGINE image inspect --format '{{.Config.User}}' "$IMAGE" ;; esac)"
[[ -n $user && ${user%%:*} != 0 && ${user%%:*} != root ]] || fail "image user is '$user', not a non-root user"
in_image '
  set -e
  [ "$(id -u)" != 0 ] || { echo "runs as root"; exit 1; }
  for tool in gcc g++ cc c++ clang ld cmake ninja make pip pip3 nvcc; do
    if command -v "$tool" >/dev/null; then echo "carries $tool"; exit 1; fi
  done
  if python3 -m pip --version >/dev/null 2>&1; then echo "carries pip"; exit 1; fi
  # The build stage'"'"'s packages: toolchain, headers, the language model'"'"'s training text.
  for pkg in build-essential libc6-dev libgrpc++-dev libtorch-dev python3-venv bible-kjv-text; do
    if dpkg-query -W -f="\${Status}" "$pkg" 2>/dev/null | grep -q "install ok installed"; then echo "carries $pkg"; exit 1; fi
  done
  for dir in /src /opt/elliptical/scripts /opt/elliptical/tests /opt/elliptical/training /opt/elliptical/include; do
    if [ -e "$dir" ]; then echo "carries $dir"; exit 1; fi
  done
  if [ -n "$(find /opt \( -name "*.a" -o -name "*.h" -o -name "*.whl" -o -name "*_test" -o -name "*.cc" \) -print -quit)" ]; then
    echo "carries headers, static libraries, wheels or tests under /opt"; exit 1
  fi
  if ldd /opt/elliptical/bin/* /opt/elliptical/lib/*.so | grep "not found"; then echo "unresolved libraries"; exit 1; fi
  if [ '"$VARIANT"' = cpu ] && [ -n "$(find /opt/elliptical/venv \( -name "libtorch_cuda*" -o -name "libcudnn*" -o -name "libcublas*" -o -name "libnccl*" \) -print -quit)" ]; then
    echo "the CPU image carries LibTorch CUDA libraries"; exit 1
  fi
  echo "user $(id -u):$(id -g); CUDA libraries: $(find /opt/elliptical/venv -path "*nvidia*" -name "*.so*" -type f | wc -l) files,"\
       "$(du -shc $(find /opt/elliptical/venv -path "*nvidia*" -name "*.so*" -type f) 2>/dev/null | tail -1 | cut -f1);"\
       "LibTorch: $(ls /opt/elliptical/venv/lib/python3*/site-packages/torch/lib | tr "\n" " ")"
' >"$LOG_DIR/contents-$VARIANT.txt" 2>&1 || { cat "$LOG_DIR/contents-$VARIANT.txt" >&2; fail "image contents"; }
log "contents: $(tail -1 "$LOG_DIR/contents-$VARIANT.txt")"

# The server, with the image's entry point and arguments, on free ports.
log "starting the server (gRPC port $PORT, metrics $METRICS_PORT; log $SERVER_LOG)"
t=$SECONDS
start_ms=$(now_ms)
case $ENGINE in
  buildah)
    mapfile -t entry < <("${BUILDAH[@]}" inspect --type image "$IMAGE" |
      python3 -c 'import json,sys; c=json.load(sys.stdin)["OCIv1"]["config"]; print("\n".join((c.get("Entrypoint") or []) + (c.get("Cmd") or [])))')
    ((${#entry[@]})) || fail "the image has no entry point"
    # Later flags win: the ports move, the rest is the image's command line.
    "${BUILDAH[@]}" run --isolation chroot --network host "$CONTAINER" -- \
      "${entry[@]}" "--port=$PORT" "--metrics_port=$METRICS_PORT" >"$SERVER_LOG" 2>&1 &
    run_pid=$! ;;
  *)
    $ENGINE run -d --name "$CONTAINER" -p "127.0.0.1:$PORT:8500" -p "127.0.0.1:$METRICS_PORT:8501" "$IMAGE" >/dev/null ;;
esac
server_pid() { # buildah: the server process under our `buildah run`
  local pids=("$run_pid") next p
  for _ in 1 2 3 4 5 6; do
    next=()
    for p in "${pids[@]}"; do
      for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do
        [[ "$(cat /proc/"$c"/comm 2>/dev/null)" == elliptical-serv* ]] && { echo "$c"; return 0; }
        next+=("$c")
      done
    done
    ((${#next[@]})) || return 1
    pids=("${next[@]}")
  done
  return 1
}
running() {
  case $ENGINE in
    buildah) kill -0 "$run_pid" 2>/dev/null ;;
    *) [[ "$($ENGINE inspect --format '{{.State.Running}}' "$CONTAINER" 2>/dev/null)" == true ]] ;;
  esac
}

# The host's client.
CLI="$ROOT/build/client/elliptical-client"
PY="$ROOT/.venv/bin/python"
CLIENT="${CLIENT:-auto}"
if [[ $CLIENT == auto ]]; then
  if [[ -x $CLI ]]; then CLIENT=cli; else CLIENT=python; fi
fi
case $CLIENT in
  cli) [[ -x $CLI ]] || fail "no $CLI: build it (bash scripts/build.sh), or use the Python client (CLIENT=python)" ;;
  python) [[ -x $PY ]] && "$PY" -c 'import elliptical_client' 2>/dev/null ||
            fail "no client on the host: build one (bash scripts/build.sh) or install the Python client (bash scripts/setup.sh)" ;;
  *) fail "CLIENT is auto, cli or python, not '$CLIENT'" ;;
esac
log "client: $CLIENT"
ADDR="127.0.0.1:$PORT"
cli() { "$CLI" --server="$ADDR" "$@"; }

ready=""
while ((SECONDS - t < READY_TIMEOUT_S)); do
  running || { tail -20 "$SERVER_LOG" >&2; fail "the server exited before it was SERVING"; }
  if [[ $CLIENT == cli ]]; then
    [[ "$(cli --timeout_s=2 health 2>/dev/null)" == SERVING ]] && { ready=1; break; }
  else
    "$PY" "$ROOT/deploy/container/smoke_calls.py" "$ADDR" health >/dev/null 2>&1 && { ready=1; break; }
  fi
  sleep 0.5
done
[[ -n $ready ]] || { tail -20 "$SERVER_LOG" >&2; fail "not SERVING after $READY_TIMEOUT_S s"; }
READY_MS=$(($(now_ms) - start_ms))
log "health SERVING $READY_MS ms after the start"
if [[ $ENGINE == buildah ]]; then
  pid="$(server_pid)" || fail "cannot find the server process"
  uid="$(awk '/^Uid:/ {print $2}' /proc/"$pid"/status)"
  ((uid != 0)) || fail "the server runs as root"
  log "server process $pid runs as uid $uid"
fi
grep -a -i -E 'LibTorch .*CUDA' "$SERVER_LOG" | head -1 | sed 's/^/    /' || true

# The calls, from outside the container.
timed() { # NAME COMMAND...: runs it, prints its output and time
  local name=$1 start out rc=0; shift
  start=$(now_ms)
  out="$("$@" 2>&1)" || rc=$?
  printf '%s\n' "$out" | sed 's/^/    /'
  ((rc == 0)) || fail "$name (exit $rc)"
  log "$name: $(($(now_ms) - start)) ms"
  LAST_OUT=$out
}
EX="$ROOT/docs/examples"
if [[ $CLIENT == cli ]]; then
  timed models cli models
  timed classify cli classify "$EX/digit-3.png" "$EX/digit-7.png" --top_k=3
  top3="$(grep -A1 'digit-3.png' <<<"$LAST_OUT" | tail -1 | awk '{print $2}')"
  top7="$(grep -A1 'digit-7.png' <<<"$LAST_OUT" | tail -1 | awk '{print $2}')"
  [[ $top3 == 3 && $top7 == 7 ]] || fail "classify read $top3 and $top7, not 3 and 7"
  timed segment cli segment "$EX/scene-0.png" --out="$LOG_DIR/scene-0"
  [[ -s "$LOG_DIR/scene-0.mask.png" ]] || fail "segment wrote no mask"
  grep -q -E '^ +digit [0-9] +[0-9.]+%' <<<"$LAST_OUT" || fail "segment found no digit in scene-0"
  timed generate cli generate --temperature=0.8 --seed=9 --max_new_tokens=48 "And God said"
  grep -q '^\[.* generated, ' <<<"$LAST_OUT" || fail "generate gave no summary"
  (($(head -1 <<<"$LAST_OUT" | wc -w) > 3)) || fail "generate added nothing to the prompt"
else
  timed calls "$PY" "$ROOT/deploy/container/smoke_calls.py" "$ADDR" all "$EX"
fi

# SIGTERM: health turns NOT_SERVING, accepted calls finish, then exit 0.
log "sending SIGTERM"
start_ms=$(now_ms)
case $ENGINE in
  buildah)
    pid="$(server_pid)" || fail "cannot find the server process"
    kill -TERM "$pid"
    rc=0; wait "$run_pid" || rc=$?
    run_pid="" ;;
  *)
    $ENGINE kill --signal TERM "$CONTAINER" >/dev/null
    rc="$(timeout 90 $ENGINE wait "$CONTAINER")" || fail "the server did not stop within 90 s"
    $ENGINE logs "$CONTAINER" >"$SERVER_LOG" 2>&1 || true ;;
esac
STOP_MS=$(($(now_ms) - start_ms))
tail -3 "$SERVER_LOG" | sed 's/^/    /'
[[ $rc == 0 ]] || fail "the server exited with status $rc after SIGTERM"
log "server exited 0, $STOP_MS ms after SIGTERM"

log "PASSED $IMAGE: $(human "$SIZE"); base $(elapsed $BASE_S), build $(elapsed $BUILD_S)," \
    "SERVING after $READY_MS ms, stop $STOP_MS ms, all $(elapsed $((SECONDS - T0)))"
