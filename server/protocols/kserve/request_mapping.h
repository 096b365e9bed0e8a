// Open Inference Protocol requests -> the serving core's requests (server/core/requests.h),
// for the vision models (the tensors are in tensors.h). The request then goes through
// InferenceCalls like any other, so RequestLimits, the pixel budget, decoding and batching are
// InferenceCalls' alone. What is
// checked here is only what the tensors themselves must satisfy: names, datatypes, shapes
// (every count and product checked for overflow by division), data lengths, and for a
// segmenter that the images are of one size.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kserve/grpc_service.pb.h"
#include "server/core/requests.h"
#include "server/protocols/kserve/tensors.h"
#include "server/repository/model_repository.h"

namespace elliptical::server::kserve {

// What the response will hold, decided from the request before the model runs.
struct OutputPlan {
  struct Output {
    std::string name;
    int64_t classification = 0;  // > 0: Triton's classification extension, that many classes
  };
  std::vector<Output> outputs;  // in response order
  int64_t top_k = kDefaultTopK;
  int64_t num_classes = 0;      // 0 when the model's labels are not known
  bool raw = false;             // answer in raw_output_contents
};

// The request's parameters that concern serving. `timeout` is absent unless asked for.
struct RequestOptions {
  int64_t top_k = kDefaultTopK;
  bool has_top_k = false;  // top_k was given
  Priority priority = Priority::kNormal;
  std::optional<absl::Duration> timeout;
};
absl::StatusOr<RequestOptions> ParseRequestParameters(const inference::ModelInferRequest& request);

// A classifier request: `out` gets the model name, the images (views into `request`, or bytes
// `out` owns) and the priority. The answer is dense; the plan says how to present it.
// `model` is the repository's snapshot (its labels give the number of classes once it is ready).
// More than `max_images` images (RequestLimits::max_images_per_request, which InferenceCalls
// applies again) are refused before any is looked at.
absl::StatusOr<OutputPlan> MapClassifyRequest(const inference::ModelInferRequest& request,
                                              const ModelSnapshot& model, int64_t max_images, VisionRequest* out);
absl::StatusOr<OutputPlan> MapSegmentRequest(const inference::ModelInferRequest& request,
                                             const ModelSnapshot& model, int64_t max_images, VisionRequest* out);

// The model repository extension's requests. "" is this server's one repository: another
// repository_name is NOT_FOUND. Of the parameters only an unload's "unload_dependents" (a bool)
// is accepted (this server's models have no dependents); Triton's "config" and "file:<path>"
// overrides and every other parameter are refused with INVALID_ARGUMENT naming it.
absl::Status CheckRepositoryName(absl::string_view repository_name);
absl::Status CheckRepositoryParameters(
    const google::protobuf::Map<std::string, inference::ModelRepositoryParameter>& parameters, bool unload);

}  // namespace elliptical::server::kserve
