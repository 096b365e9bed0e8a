#include "server/security/constant_time.h"

#include <cstddef>
#include <cstdint>

namespace elliptical::server::security {

bool ConstantTimeEquals(absl::string_view presented, absl::string_view expected) {
  // A length mismatch is folded into the same accumulator instead of returning early; with an
  // empty `expected` the bytes are compared against themselves, which keeps the loop's work the
  // same while the size term makes the answer false.
  const absl::string_view reference = expected.empty() ? presented : expected;
  size_t difference = presented.size() ^ expected.size();
  uint8_t bytes = 0;
  for (size_t i = 0; i < presented.size(); ++i) {
    bytes |= static_cast<uint8_t>(presented[i]) ^
             static_cast<uint8_t>(reference[i % reference.size()]);
  }
  // A volatile read keeps the compiler from turning the loop into an early-exit comparison.
  volatile uint8_t sink = bytes;
  return (difference | sink) == 0;
}

}  // namespace elliptical::server::security
