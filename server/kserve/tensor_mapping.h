// The Open Inference Protocol's tensors <-> elliptical.v1 messages, for the vision models. Pure
// functions, no server code: the gRPC service (kserve_service.h) and the HTTP routes
// (server/http/kserve_routes.h) both turn their request into an inference::ModelInferRequest
// and use this one mapping; the v1 request then goes through InferenceCalls like any other, so
// RequestLimits, the pixel budget, decoding and batching are InferenceCalls' alone. What is
// checked here is only what the tensors themselves must satisfy: names, datatypes, shapes
// (every count and product checked for overflow by division), data lengths.
//
// The mapping (docs/protocols/kserve.md has it with examples):
//   inputs, exactly one of
//     image   BYTES [N] (or [N, 1])   each element one PNG or JPEG file
//     pixels  UINT8 [N, H, W, C]      C in 1, 3, 4; row-major HWC
//   each as typed contents (bytes_contents / uint_contents) or raw_input_contents (BYTES: a
//   4-byte little-endian length before each element; UINT8: the bytes).
//   request parameters: top_k (int, default 5), priority (Triton's: 0 default, 1 high,
//   2 normal, 3+ low; or "high" / "normal" / "low"), timeout (microseconds).
//   classifier outputs: probabilities FP32 [N, classes], top_classes INT64 [N, k],
//   top_labels BYTES [N, k], top_probabilities FP32 [N, k]; probabilities with the output
//   parameter classification = c: BYTES [N, c] "score:index:label" (Triton's extension).
//   segmenter outputs: mask INT32 [N, H, W] (all images the same size), labels BYTES [classes]
//   (only when asked for).
// Responses use raw_output_contents when the request used raw_input_contents (what
// tritonclient reads), typed contents otherwise.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "elliptical/v1/inference_service.pb.h"
#include "kserve/grpc_service.pb.h"
#include "server/repository/model_repository.h"

namespace elliptical::server::kserve {

inline constexpr char kPlatform[] = "elliptical_libtorch";
inline constexpr char kModelVersion[] = "1";
inline constexpr char kServerName[] = "elliptical-server";
inline constexpr int64_t kDefaultTopK = 5;

// OK for "" (the latest) and "1", the one version of every model; NOT_FOUND otherwise.
absl::Status CheckModelVersion(absl::string_view model, absl::string_view version);

// The product of `shape`'s dimensions; INVALID_ARGUMENT naming `what` for a negative dimension
// or a product beyond INT64_MAX.
absl::StatusOr<int64_t> ElementCount(const google::protobuf::RepeatedField<int64_t>& shape,
                                     absl::string_view what);

// Splits a BYTES tensor's raw form (4-byte little-endian length, then the bytes, per element)
// into exactly `count` elements; INVALID_ARGUMENT naming `what` when it is truncated, has a
// length past its end, or has bytes left over. The views point into `raw`.
absl::StatusOr<std::vector<absl::string_view>> SplitRawBytes(absl::string_view raw, int64_t count,
                                                             absl::string_view what);
// The raw form of BYTES elements.
std::string JoinRawBytes(const std::vector<std::string>& elements);

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
  v1::Priority priority = v1::PRIORITY_UNSPECIFIED;
  std::optional<absl::Duration> timeout;
};
absl::StatusOr<RequestOptions> ParseRequestParameters(const inference::ModelInferRequest& request);

// The request's images, from its one input tensor (image or pixels). More than `max_images`
// (RequestLimits::max_images_per_request, which InferenceCalls applies again) are refused
// before any is copied.
absl::Status MapInputImages(const inference::ModelInferRequest& request, int64_t max_images,
                            google::protobuf::RepeatedPtrField<v1::Image>* images);

// A classifier request: `out` gets the model name, images and priority, and top_k set so the
// answer holds every class (the probabilities output needs them all). `model` is the
// repository's snapshot (its labels give the number of classes once it is ready).
absl::StatusOr<OutputPlan> MapClassifyRequest(const inference::ModelInferRequest& request,
                                              const ModelSnapshot& model, int64_t max_images,
                                              v1::ClassifyRequest* out);
// Fills the v2 outputs from the v1 answer (model name, version, id included).
absl::Status FillClassifyResponse(const OutputPlan& plan, const inference::ModelInferRequest& request,
                                  const v1::ClassifyResponse& answer, inference::ModelInferResponse* out);

absl::StatusOr<OutputPlan> MapSegmentRequest(const inference::ModelInferRequest& request,
                                             const ModelSnapshot& model, int64_t max_images,
                                             v1::SegmentRequest* out);
// INVALID_ARGUMENT when the masks differ in size (one mask tensor holds them all).
absl::Status FillSegmentResponse(const OutputPlan& plan, const inference::ModelInferRequest& request,
                                 const v1::SegmentResponse& answer, inference::ModelInferResponse* out);

// Triton's classification string of one class: "score:index:label" ("score:index" without a
// label); the score as std::to_string writes it.
std::string ClassificationString(float score, int64_t index, absl::string_view label);

// The v2 metadata of a model: inputs and outputs of its family, -1 for what varies.
void FillModelMetadata(const ModelSnapshot& model, inference::ModelMetadataResponse* out);

}  // namespace elliptical::server::kserve
