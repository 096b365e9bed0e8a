// The Open Inference Protocol's tensors as this server maps them to elliptical.v1, and what
// the two halves of that mapping (request_mapping.h, response_mapping.h) share. Pure functions,
// no server code: the gRPC service (kserve_service.h) and the HTTP routes
// (server/protocols/kserve/kserve_routes.h) both turn their request into an inference::ModelInferRequest
// and use this one mapping.
//
// The mapping (docs/protocols/kserve.md has it with examples):
//   inputs, exactly one of
//     image   BYTES [N] (or [N, 1])   each element one PNG or JPEG file
//     pixels  UINT8 [N, H, W, C]      C in 1, 3, 4; row-major HWC
//     tensor  FP32 [N, 3, H, W]       already resized and normalised (NCHW); FP16 and BF16
//                                     too (raw contents only). A classifier's H and W are its
//                                     input size; a segmenter takes any.
//   each as typed contents (bytes_contents / uint_contents / fp32_contents) or
//   raw_input_contents (BYTES: a 4-byte little-endian length before each element; otherwise
//   the elements, little-endian). The metadata lists only the model's configured form
//   (config.json "input_form"), so that a client filling every listed input sends one; a
//   request may name any of the three.
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
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/repeated_field.h"
#include "server/repository/model_repository.h"

namespace elliptical::server::kserve {

inline constexpr char kPlatform[] = "elliptical_libtorch";
inline constexpr char kServerName[] = "elliptical-server";
inline constexpr int64_t kDefaultTopK = 5;

// Tensor names (the table above).
inline constexpr char kImage[] = "image";
inline constexpr char kPixels[] = "pixels";
inline constexpr char kTensor[] = "tensor";
inline constexpr char kProbabilities[] = "probabilities";
inline constexpr char kTopClasses[] = "top_classes";
inline constexpr char kTopLabels[] = "top_labels";
inline constexpr char kTopProbabilities[] = "top_probabilities";
inline constexpr char kMask[] = "mask";
inline constexpr char kLabels[] = "labels";

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

// Appends v as 4 little-endian bytes (the raw form of 32-bit elements and of BYTES lengths).
void AppendLe32(uint32_t v, std::string* out);

// A client's name in a message: quoted, escaped, and at most 64 bytes of it.
std::string Quoted(absl::string_view name);
// INVALID_ARGUMENT "what: why".
absl::Status Invalid(absl::string_view what, absl::string_view why);
std::string ShapeString(const google::protobuf::RepeatedField<int64_t>& shape);
// INVALID_ARGUMENT for a segment request whose images are not all first_w x first_h: one mask
// tensor [N, H, W] holds every answer.
absl::Status ImagesDifferInSize(int64_t first_w, int64_t first_h, int64_t w, int64_t h);
// The shape of the input "tensor" for `model`: [-1, 3, S, S] for a classifier of input size S
// (S is -1 while the model's size is not known), [-1, 3, -1, -1] for a segmenter, which takes
// images of any size.
std::vector<int64_t> TensorInputShape(const ModelSnapshot& model);
// The number of classes of a vision model; 0 while its labels are unknown (still loading).
int64_t NumClasses(const ModelSnapshot& model);

}  // namespace elliptical::server::kserve
