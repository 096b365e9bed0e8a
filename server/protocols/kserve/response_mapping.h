// The serving core's answers (dense probabilities, masks) -> Open Inference Protocol responses (the tensors are in tensors.h),
// and the v2 metadata of a model. Responses use raw_output_contents when the request used
// raw_input_contents (what tritonclient reads), typed contents otherwise.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "kserve/grpc_service.pb.h"
#include "server/core/requests.h"
#include "server/protocols/kserve/request_mapping.h"
#include "server/repository/model_repository.h"

namespace elliptical::server::kserve {

// Fills the v2 outputs from the core's answer (model name, version, id included): the dense
// probabilities as they are, the top classes ordered as every codec orders them (top_classes.h).
absl::Status FillClassifyResponse(const OutputPlan& plan, const inference::ModelInferRequest& request,
                                  const ClassifyResult& answer, inference::ModelInferResponse* out);

// INVALID_ARGUMENT when the masks differ in size (one mask tensor holds them all; a request
// mapped by MapSegmentRequest and checked with its files' headers never gets here with them).
absl::Status FillSegmentResponse(const OutputPlan& plan, const inference::ModelInferRequest& request,
                                 const SegmentResult& answer, inference::ModelInferResponse* out);

// Triton's classification string of one class: "score:index:label" ("score:index" without a
// label); the score as std::to_string writes it.
std::string ClassificationString(float score, int64_t index, absl::string_view label);

// The v2 metadata of a model: inputs and outputs of its family, -1 for what varies.
void FillModelMetadata(const ModelSnapshot& model, inference::ModelMetadataResponse* out);

// The model repository extension's index: Triton's state names (READY, LOADING, UNLOADING, and
// UNAVAILABLE for a version not loaded, unloaded or failed, the reason saying which), the
// version as a decimal string ("" for a model with no version).
const char* RepositoryStateName(ModelState state);
void FillRepositoryIndex(const std::vector<ModelSnapshot>& versions, inference::RepositoryIndexResponse* out);

}  // namespace elliptical::server::kserve
