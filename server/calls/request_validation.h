// The edge: every field of a request is checked here, once per RPC, before any decoding,
// allocation or queueing, so nothing behind it sees a value outside RequestLimits. Refusals are
// INVALID_ARGUMENT naming the field and the limit (RESOURCE_EXHAUSTED for the pixel budget of
// one request), and never echo client data beyond a bounded prefix.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "elliptical/v1/inference_service.pb.h"
#include "server/calls/request_limits.h"

namespace elliptical::server {

// What a valid vision request will decode to.
struct VisionRequestCost {
  int64_t pixels = 0;  // all its images, decoded
};

absl::StatusOr<VisionRequestCost> ValidateClassify(const v1::ClassifyRequest& request,
                                                   const RequestLimits& limits);
absl::StatusOr<VisionRequestCost> ValidateSegment(const v1::SegmentRequest& request,
                                                  const RequestLimits& limits);
absl::Status ValidateGenerate(const v1::GenerateRequest& request, const RequestLimits& limits);
absl::Status ValidateScore(const v1::ScoreRequest& request, const RequestLimits& limits);
absl::Status ValidateModelName(const std::string& name, const RequestLimits& limits);

}  // namespace elliptical::server
