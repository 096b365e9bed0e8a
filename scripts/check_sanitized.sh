#!/usr/bin/env bash
# The extra check (README, .ci/run after scripts/test.sh): sanitizer builds and bounded fuzzing.
#
#   1. asan: an ASan+UBSan build with clang (CPU-only LibTorch) of the server, its tools, tests and
#      the fuzz targets; the whole CTest suite in it, the fuzz regressions and seeds included.
#   2. tsan: a TSan build of the batcher and generation scheduler tests, with Abseil's
#      synchronisation compiled from Debian's source package (tests/sanitizers/CMakeLists.txt).
#   3. fuzz: each libFuzzer target on its seeds, a fixed number of inputs from a fixed seed (so a
#      CI run is reproducible: the same code meets the same inputs), at most ELLIPTICAL_FUZZ_SECONDS
#      (default 90) each. Longer exploration: run a target by hand (tests/fuzz/README.md).
#
#   scripts/check_sanitized.sh [asan] [tsan] [fuzz]     (no argument: all three, in this order)
#
# Build directories: ELLIPTICAL_ASAN_BUILD_DIR (default build-asan/), ELLIPTICAL_TSAN_BUILD_DIR
# (build-tsan/). Each is configured once and built incrementally afterwards. Exits non-zero when
# any step fails; the other steps still run. A fuzzer's crash input is kept under
# <asan dir>/fuzz/artifacts/<target>/: once fixed, copy it to tests/fuzz/regressions/<target>/.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ASAN="${ELLIPTICAL_ASAN_BUILD_DIR:-$ROOT/build-asan}"
TSAN="${ELLIPTICAL_TSAN_BUILD_DIR:-$ROOT/build-tsan}"
JOBS="${ELLIPTICAL_JOBS:-$(nproc)}"
FUZZ_SECONDS="${ELLIPTICAL_FUZZ_SECONDS:-90}"
FUZZ_SEED="${ELLIPTICAL_FUZZ_SEED:-1}"
STEPS=("$@")
((${#STEPS[@]})) || STEPS=(asan tsan fuzz)
FUZZ_TARGETS=(image_decoder safetensors model_config tokenizer inference_service http_request http_transport)
# Inputs per target: about 30-45 s each on the 2-core CI machine (docs/building.md). The image
# decoder's libraries are instrumented too (tests/fuzz/README.md), so far fewer of its inputs fit.
declare -A FUZZ_RUNS=([image_decoder]=8000 [safetensors]=600000 [model_config]=120000
                      [tokenizer]=50000 [inference_service]=25000 [http_request]=100000
                      [http_transport]=50000)

log() { printf '[sanitize] %s\n' "$*"; }
failures=()
summary=()
step_started=0
begin() { step_started=$SECONDS; log "$*"; }
# end <label> <status>: records the step's time and outcome.
end() {
  local took=$((SECONDS - step_started))
  summary+=("$(printf '%-34s %5d s  %s' "$1" "$took" "$([[ $2 == 0 ]] && echo ok || echo FAILED)")")
  [[ $2 == 0 ]] || failures+=("$1")
  log "$1: $([[ $2 == 0 ]] && echo ok || echo FAILED) ($took s)"
}

"$ROOT/scripts/setup.sh" || exit 1
source "$ROOT/tests/sanitizers/env.sh"
PY="${ELLIPTICAL_VENV:-$ROOT/.venv}/bin/python"

# Options shared by both builds: clang, LibTorch's CPU libraries only (the sanitizers check our
# code; CUDA would only add link time), no benchmarks, and -O1 with line tables (readable stack
# traces, a faster compile than the default -O2 -g).
common=(-G Ninja -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14
        -DCMAKE_BUILD_TYPE=RelWithDebInfo
        "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only -DNDEBUG"
        "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only -DNDEBUG"
        -DELLIPTICAL_CUDA=OFF -DELLIPTICAL_BUILD_BENCH=OFF)
configure_once() { # dir, extra cmake options
  local dir="$1"
  shift
  [[ -f "$dir/build.ninja" ]] && return 0
  log "configuring $dir"
  mkdir -p "$dir"
  cmake -S "$ROOT" -B "$dir" "${common[@]}" "$@" > "$dir/configure.log" 2>&1 ||
    { tail -30 "$dir/configure.log"; return 1; }
}

run_asan() {
  begin "asan: configure and build $ASAN ($JOBS jobs; the first build takes a while)"
  local status=0 decoders=()
  # The image decoder's libraries from Debian's sources, so the image_decoder fuzz target compiles
  # them instrumented (tests/fuzz/README.md); without network it links Debian's builds instead.
  mkdir -p "$ASAN"
  if "$ROOT/tests/fuzz/fetch_decoder_sources.sh" "$ASAN/decoder-sources"; then
    decoders=(-DELLIPTICAL_FUZZ_DECODER_SOURCES="$ASAN/decoder-sources")
  else
    log "no decoder sources: image_decoder_fuzz links Debian's uninstrumented libjpeg/libpng/libwebp"
  fi
  configure_once "$ASAN" -DELLIPTICAL_SANITIZE=address,undefined -DELLIPTICAL_FUZZ=ON "${decoders[@]}" &&
    { ((${#decoders[@]} == 0)) || cmake "$ASAN" "${decoders[@]}" > /dev/null; } &&
    cmake --build "$ASAN" -j "$JOBS" || status=1
  end "asan: configure + build" "$status"
  ((status == 0)) || return
  begin "asan: running the test suite under ASan+UBSan"
  ctest --test-dir "$ASAN" --output-on-failure --timeout 900 -j "${ELLIPTICAL_TEST_JOBS:-2}"
  end "asan: ctest (incl. fuzz regressions)" $?
}

# Debian's source package of the installed Abseil, fetched with apt-get from Debian's archive
# into a private apt state (the machine's sources and lists stay as they are).
fetch_abseil_source() {
  local version dest apt_dir
  version="$(dpkg-query -W -f='${source:Version}' libabsl-dev)" || return 1
  dest="$TSAN/abseil-source-$version"
  if [[ ! -f "$dest/absl/synchronization/mutex.cc" ]]; then
    log "fetching Debian's abseil $version source package"
    apt_dir="$(mktemp -d)"
    mkdir -p "$apt_dir/sources" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      > "$apt_dir/sources/debian-src.sources"
    local apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt_dir/sources"
                    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
                    -o "APT::Sandbox::User=$(id -un)")
    (cd "$apt_dir" && apt-get "${apt_opts[@]}" -qq update &&
       apt-get "${apt_opts[@]}" -qq source --download-only "abseil=$version" &&
       dpkg-source --no-check -x abseil_*.dsc "$dest" > /dev/null) || { rm -rf "$apt_dir"; return 1; }
    rm -rf "$apt_dir"
  fi
  ABSEIL_SOURCE="$dest"
}

run_tsan() {
  begin "tsan: configure and build $TSAN (the concurrency tests only)"
  mkdir -p "$TSAN"
  local status=0
  fetch_abseil_source &&
    configure_once "$TSAN" -DELLIPTICAL_SANITIZE=thread -DELLIPTICAL_TSAN_ABSEIL_SOURCE="$ABSEIL_SOURCE" &&
    cmake --build "$TSAN" -j "$JOBS" --target concurrency_tsan_test > "$TSAN/build.log" 2>&1 ||
    { status=1; tail -30 "$TSAN/build.log" 2>/dev/null; }
  end "tsan: configure + build" $status
  ((status == 0)) || return
  # The scheduler tests read the fixture language model's tokenizer: the ASan build's fixtures,
  # or made here when that build has none.
  local fixtures="$ASAN"
  if [[ ! -f "$ASAN/fixtures/core/lm/models/lm-chat/tokenizer.model" ]]; then
    fixtures="$TSAN"
    [[ -f "$TSAN/fixtures/core/lm/models/lm-chat/tokenizer.model" ]] ||
      "$PY" "$ROOT/tests/fixtures/make_model_fixtures.py" --out "$TSAN/fixtures/core" > /dev/null
  fi
  begin "tsan: batcher and scheduler tests, 10 rounds"
  ELLIPTICAL_BUILD_DIR="$fixtures" "$TSAN/tests/sanitizers/concurrency_tsan_test" --gtest_repeat=10 \
    --gtest_brief=1 2>&1 | tail -40
  end "tsan: concurrency tests" "${PIPESTATUS[0]}"
}

run_fuzz() {
  local target bin work artifacts out status
  for target in "${FUZZ_TARGETS[@]}"; do
    bin="$ASAN/tests/fuzz/${target}_fuzz"
    begin "fuzz: $target, ${FUZZ_RUNS[$target]} inputs from seed $FUZZ_SEED (at most $FUZZ_SECONDS s)"
    if [[ ! -x "$bin" ]]; then
      log "$bin is missing: run the asan step first"
      end "fuzz: $target" 1
      continue
    fi
    # New inputs go to a working corpus in the build tree, never into the repository's seeds.
    work="$ASAN/fuzz/corpus/$target"
    artifacts="$ASAN/fuzz/artifacts/$target"
    out="$ASAN/fuzz/$target.log"
    mkdir -p "$work" "$artifacts"
    local options=(-seed="$FUZZ_SEED" -runs="${FUZZ_RUNS[$target]}" -max_total_time="$FUZZ_SECONDS"
                   -rss_limit_mb=3072 -malloc_limit_mb=1024
                   -timeout=30 -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts/")
    # The service's threads (gRPC, batchers, scheduler) keep memory across inputs: libFuzzer's
    # per-input leak check would blame an input for it. Leaks are checked by the ASan tests.
    [[ $target == inference_service ]] && options+=(-detect_leaks=0)
    [[ -f "$ROOT/tests/fuzz/$target.dict" ]] && options+=(-dict="$ROOT/tests/fuzz/$target.dict")
    "$bin" "${options[@]}" "$work" "$ROOT/tests/fuzz/corpus/$target" > "$out" 2>&1
    status=$?
    log "$target: $(grep -E 'stat::number_of_executed_units' "$out" | awk '{print $2}') inputs run, corpus $(ls "$work" | wc -l) files"
    if ((status != 0)); then
      tail -60 "$out"
      log "$target: the failing input is in $artifacts/ (log: $out)"
    fi
    end "fuzz: $target" $status
  done
}

for step in "${STEPS[@]}"; do
  case "$step" in
    asan) run_asan ;;
    tsan) run_tsan ;;
    fuzz) run_fuzz ;;
    *) log "unknown step $step (asan, tsan, fuzz)"; failures+=("$step") ;;
  esac
done

log "summary:"
printf '  %s\n' "${summary[@]}"
if ((${#failures[@]})); then
  log "FAILED: ${failures[*]}"
  exit 1
fi
log "all passed"
