# Sanitizer and fuzzing builds (scripts/check_sanitized.sh drives them; docs/building.md,
# "Sanitizers and fuzzing", says what each finds and what it costs).
#
#   -DELLIPTICAL_SANITIZE=address,undefined   ASan + UBSan on everything the project compiles
#   -DELLIPTICAL_SANITIZE=thread              TSan; only the concurrency tests are meant to be
#                                             built (tests/sanitizers/CMakeLists.txt)
#   -DELLIPTICAL_FUZZ=ON                      libFuzzer targets (tests/fuzz/), clang only; in an
#                                             ASan build directory, so that one compile serves
#                                             the sanitized tests and the fuzzers
#
# The libraries from Debian and LibTorch are not instrumented: ASan still checks every access
# our code makes, UBSan our arithmetic, but neither looks inside them. TSan cannot see
# synchronisation done inside uninstrumented code, which is why the TSan build compiles
# Abseil's synchronisation sources itself (tests/sanitizers/CMakeLists.txt).
set(ELLIPTICAL_SANITIZE "" CACHE STRING
    "Comma-separated -fsanitize= list for every target: address,undefined or thread (empty: none)")
option(ELLIPTICAL_FUZZ "Build the libFuzzer targets of tests/fuzz (needs clang and ELLIPTICAL_SANITIZE)" OFF)

if(ELLIPTICAL_SANITIZE)
  string(REPLACE "," ";" _sanitizers "${ELLIPTICAL_SANITIZE}")
  foreach(_s IN LISTS _sanitizers)
    if(NOT _s MATCHES "^(address|undefined|thread)$")
      message(FATAL_ERROR "ELLIPTICAL_SANITIZE: unknown sanitizer \"${_s}\" (address, undefined, thread)")
    endif()
  endforeach()
  if("thread" IN_LIST _sanitizers AND "address" IN_LIST _sanitizers)
    message(FATAL_ERROR "ELLIPTICAL_SANITIZE: thread and address cannot be combined")
  endif()
  # A target with the property ELLIPTICAL_NO_SANITIZE stays uninstrumented: the SentencePiece
  # shim, which sanitized builds load into a link namespace of its own, where the sanitizer
  # runtime of the executable is not visible (server/generation/tokenizer.cc).
  set(_on "$<NOT:$<BOOL:$<TARGET_PROPERTY:ELLIPTICAL_NO_SANITIZE>>>")
  # UBSan findings are recoverable at compile time so that its suppressions work; the runtime
  # halts on the first one (UBSAN_OPTIONS=halt_on_error=1, tests/sanitizers/env.sh).
  add_compile_options("$<${_on}:-fsanitize=${ELLIPTICAL_SANITIZE}>" "$<${_on}:-fno-omit-frame-pointer>")
  add_link_options("$<${_on}:-fsanitize=${ELLIPTICAL_SANITIZE}>")
  # tokenizer.cc: no RTLD_DEEPBIND, which every sanitizer runtime refuses to dlopen with.
  add_compile_definitions(ELLIPTICAL_SANITIZED_BUILD=1)
  message(STATUS "Sanitizers: ${ELLIPTICAL_SANITIZE}")
endif()

if(ELLIPTICAL_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "ELLIPTICAL_FUZZ needs clang (libFuzzer); configure with CXX=clang++-14")
  endif()
  if(NOT ELLIPTICAL_SANITIZE)
    message(WARNING "ELLIPTICAL_FUZZ without ELLIPTICAL_SANITIZE finds crashes only, not memory errors")
  endif()
endif()

# Coverage instrumentation for libFuzzer, on the libraries a fuzz target exercises (the fuzz
# executables themselves link with -fsanitize=fuzzer). The same objects serve the ordinary
# tests: without libFuzzer linked, the coverage hooks fall back to the sanitizer runtime's.
function(elliptical_fuzz_instrument)
  foreach(_target IN LISTS ARGN)
    target_compile_options(${_target} PRIVATE -fsanitize=fuzzer-no-link)
  endforeach()
endfunction()

# After every directory is read: keep the SentencePiece shim uninstrumented (see above).
function(_elliptical_sanitize_finish)
  if(TARGET elliptical_spm)
    set_target_properties(elliptical_spm PROPERTIES ELLIPTICAL_NO_SANITIZE ON)
  endif()
endfunction()
if(ELLIPTICAL_SANITIZE)
  cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL _elliptical_sanitize_finish)
endif()
