// The edge: every field of a request is checked here, once per RPC, before any decoding,
// allocation or queueing, so nothing behind it sees a value outside RequestLimits. Refusals are
// INVALID_ARGUMENT naming the field and the limit (RESOURCE_EXHAUSTED for the pixel budget of
// one request), and never echo client data beyond a bounded prefix.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "server/core/requests.h"
#include "server/core/request_limits.h"

namespace elliptical::server {

// What a valid vision request will decode to.
struct VisionRequestCost {
  int64_t pixels = 0;  // all its images, decoded
};

absl::StatusOr<VisionRequestCost> ValidateVision(const VisionRequest& request, const RequestLimits& limits);
absl::Status ValidateGenerate(const GenerateRequest& request, const RequestLimits& limits);
absl::Status ValidateScore(const ScoreRequest& request, const RequestLimits& limits);
absl::Status ValidateModelName(const std::string& name, const RequestLimits& limits);
// A client's top_k (classes to return, or tokens to sample from) against --max_top_k: codecs
// check it before narrowing it.
absl::Status CheckTopK(uint64_t top_k, const RequestLimits& limits);

}  // namespace elliptical::server
