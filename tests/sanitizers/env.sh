# Runtime options of the sanitized builds; scripts/check_sanitized.sh sources this file. Source
# it to run a sanitized binary by hand: `source tests/sanitizers/env.sh`.
#
# Every sanitizer stops at its first finding (halt_on_error), so a finding fails the test that
# met it. The suppression files beside this one name only reports inside third-party libraries,
# each with its reason.
_elliptical_sanitizers_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_elliptical_symbolizer="$(command -v llvm-symbolizer-14 || echo /usr/lib/llvm-14/bin/llvm-symbolizer)"
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1:suppressions=$_elliptical_sanitizers_dir/asan.supp:external_symbolizer_path=$_elliptical_symbolizer"
export LSAN_OPTIONS="suppressions=$_elliptical_sanitizers_dir/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$_elliptical_sanitizers_dir/ubsan.supp:external_symbolizer_path=$_elliptical_symbolizer"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$_elliptical_sanitizers_dir/tsan.supp:external_symbolizer_path=$_elliptical_symbolizer"
unset _elliptical_sanitizers_dir _elliptical_symbolizer
