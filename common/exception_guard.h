// The one place where an exception thrown by model code on a server thread becomes a status:
// the batcher's instances and the generation scheduler run forwards through it, so a bad batch
// or step fails its requests with INTERNAL and the thread keeps serving.
#pragma once

#include <exception>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace elliptical {

// Returns f()'s result (an absl::Status or StatusOr), or INTERNAL
// "model <model>: <work> failed: <exception>". The message is built only when something threw.
template <typename F>
auto GuardExceptions(absl::string_view model, absl::string_view work, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("model ", model, ": ", work, " failed: ", e.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat("model ", model, ": ", work, " failed"));
  }
}

}  // namespace elliptical
