// The Open Inference Protocol's REST bodies <-> its gRPC binding's messages: a POST
// /v2/models/{m}/infer body (JSON tensors, or JSON followed by binary tensors: Triton's binary
// tensor data extension) becomes an inference::ModelInferRequest, and the ModelInferResponse
// becomes the response body. Both bindings thus share one tensor mapping
// (server/protocols/kserve/request_mapping.h,
// response_mapping.h). Pure functions: no HTTP server code.
//
// Every input becomes raw_input_contents (JSON data encoded by its datatype, little-endian;
// binary data as it is), so the answer comes back in raw_output_contents; each output is then
// written as JSON "data" or, when asked for (output parameter binary_data, or request parameter
// binary_data_output), as binary data after the JSON with "binary_data_size".
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kserve/grpc_service.pb.h"

namespace elliptical::server::kserve {

// `body` is the whole request body; `json_length` (the Inference-Header-Content-Length header)
// is how many of its bytes are JSON, the rest being the binary tensors in input order; absent:
// all JSON. INVALID_ARGUMENT naming what is wrong. model_name and model_version are the URL's
// and are set by the caller.
absl::StatusOr<inference::ModelInferRequest> ParseInferRequest(absl::string_view body,
                                                               std::optional<size_t> json_length);

struct InferResponseBody {
  std::string body;
  // Set when binary tensors follow the JSON: its length, for Inference-Header-Content-Length.
  std::optional<size_t> json_length;
};
// The response body for `request`'s answer.
absl::StatusOr<InferResponseBody> WriteInferResponse(const inference::ModelInferRequest& request,
                                                     const inference::ModelInferResponse& response);

// The model repository extension's bodies. POST /v2/repository/index: empty, or {"ready":
// bool}. POST /v2/repository/models/{m}/load and /unload: empty, or {"parameters": {name:
// value}} with bool, integer or string values (Triton's shape; which are accepted is
// CheckRepositoryParameters', request_mapping.h). INVALID_ARGUMENT for anything else.
absl::StatusOr<inference::RepositoryIndexRequest> ParseRepositoryIndexRequest(absl::string_view body);
absl::Status ParseRepositoryParameters(
    absl::string_view body, google::protobuf::Map<std::string, inference::ModelRepositoryParameter>* out);
// Triton's index body: [{"name", "version", "state", "reason"}], version and reason when set.
std::string RepositoryIndexJson(const inference::RepositoryIndexResponse& index);

std::string ServerMetadataJson(const inference::ServerMetadataResponse& metadata);
std::string ModelMetadataJson(const inference::ModelMetadataResponse& metadata);
// {"error": "<message>"}
std::string ErrorJson(absl::string_view message);

}  // namespace elliptical::server::kserve
