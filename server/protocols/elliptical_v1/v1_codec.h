// The elliptical.v1 codec: its protobuf messages to the serving core's plain requests
// (server/core/requests.h) and the core's results back to its messages. Everything that is
// elliptical.v1's own (its enums, top_k presentation of dense probabilities, mask byte packing)
// is decided here; the service (inference_service.h) only wires the two to gRPC.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "elliptical/v1/inference_service.pb.h"
#include "model/api/attention_stats.h"
#include "model/api/image_segmenter.h"
#include "server/core/generation_events.h"
#include "server/core/request_limits.h"
#include "server/core/requests.h"
#include "server/repository/model_repository.h"
#include "server/serving/vision_servable.h"

namespace elliptical::server {

// Requests. The image bytes of the result are views into `request`, which must outlive the call.
// INVALID_ARGUMENT for values only elliptical.v1 can carry wrong (an unknown priority, top_k
// beyond --max_top_k); the core checks the rest.
absl::StatusOr<VisionRequest> ToVisionRequest(const v1::ClassifyRequest& request, const RequestLimits& limits);
absl::StatusOr<VisionRequest> ToVisionRequest(const v1::SegmentRequest& request, const RequestLimits& limits);
absl::StatusOr<GenerateRequest> ToGenerateRequest(const v1::GenerateRequest& request, const RequestLimits& limits);
ScoreRequest ToScoreRequest(const v1::ScoreRequest& request);

// Results.
// The request's top_k (default 5) most probable classes of each image, best first.
void FillClassifyResponse(const v1::ClassifyRequest& request, const ClassifyResult& result,
                          v1::ClassifyResponse* out);
void FillSegmentResponse(const v1::SegmentRequest& request, const SegmentResult& result, v1::SegmentResponse* out);
void FillScoreResponse(const ScoreResult& result, v1::ScoreResponse* out);

void FillAttentionStats(const std::vector<model::LayerStats>& stats, v1::AttentionStats* out);
// The k most probable classes, best first.
void FillTopClasses(const std::vector<float>& probabilities, const std::vector<std::string>& labels,
                    uint32_t k, v1::Classification* out);
void FillTiming(const ServeTiming& timing, v1::ServerTiming* out);
// Class ids one byte each when the model has at most 256 classes, else little-endian uint16.
void FillMask(const model::Segmentation& segmentation, const std::vector<std::string>& labels,
              v1::SegmentationMask* out);

// Generation events.
void FillToken(const TokenEvent& token, v1::Token* out);
void FillScoredToken(const GenerationStream::ScoredToken& token, v1::ScoredToken* out);
void FillSummary(const FinishedEvent& finished, v1::GenerationSummary* out);

// Models.
v1::ModelFamily FamilyToProto(const std::optional<model::ModelFamily>& family);
void FillModelStatus(const ModelSnapshot& snapshot, v1::ModelStatus* out);
// ListModels' entry: the snapshot's version, state and every ready version.
void FillModelSummary(const ModelSnapshot& snapshot, v1::ModelSummary* out);
// RepositoryIndex's and LoadModel's entry: one version, with its load report once ready.
void FillVersionStatus(const ModelSnapshot& snapshot, v1::ModelVersionStatus* out);
void FillMetadata(const ModelSnapshot& snapshot, v1::GetModelMetadataResponse* out);

}  // namespace elliptical::server
