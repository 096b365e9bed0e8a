// Propagation helpers for absl::Status / absl::StatusOr. The Abseil in Debian 12 (20220623)
// ships no RETURN_IF_ERROR / ASSIGN_OR_RETURN, and every module boundary of this project
// speaks Status, so one small definition serves all of them.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define ELLIPTICAL_RETURN_IF_ERROR(expr)           \
  do {                                             \
    const ::absl::Status _status = (expr);         \
    if (!_status.ok()) return _status;             \
  } while (0)

#define ELLIPTICAL_CONCAT_INNER(a, b) a##b
#define ELLIPTICAL_CONCAT(a, b) ELLIPTICAL_CONCAT_INNER(a, b)

// ELLIPTICAL_ASSIGN_OR_RETURN(auto x, MakeX()); declares x or returns MakeX()'s error.
#define ELLIPTICAL_ASSIGN_OR_RETURN(lhs, expr) \
  ELLIPTICAL_ASSIGN_OR_RETURN_IMPL(ELLIPTICAL_CONCAT(_statusor_, __LINE__), lhs, expr)
#define ELLIPTICAL_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                     \
  if (!tmp.ok()) return tmp.status();                    \
  lhs = std::move(tmp).value()
