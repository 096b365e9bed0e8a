// Comparison of secrets whose running time does not depend on where two values differ, so a
// client timing its failed attempts learns nothing about how close a guess was.
#pragma once

#include "absl/strings/string_view.h"

namespace elliptical::server::security {

// True when `presented` equals `expected`. Every byte of `presented` is visited whatever the
// contents, so the time depends only on the length of `presented` (which the caller already
// knows), never on the position of the first difference nor on the length of `expected`.
bool ConstantTimeEquals(absl::string_view presented, absl::string_view expected);

}  // namespace elliptical::server::security
