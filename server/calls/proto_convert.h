// Model-side plain data <-> wire messages. Kept apart from the service so the mapping of each
// field is in one place.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "elliptical/v1/inference_service.pb.h"
#include "model/api/attention_stats.h"
#include "model/api/image.h"
#include "model/api/image_segmenter.h"
#include "server/generation/generation_scheduler.h"
#include "server/serving/vision_servable.h"
#include "server/input/image_decoder.h"
#include "server/repository/model_repository.h"

namespace elliptical::server {

// Decodes one request image; the error names its index in the request.
absl::StatusOr<model::RgbImage> ImageFromProto(const v1::Image& image, int index,
                                               const ImageLimits& limits);

void FillAttentionStats(const std::vector<model::LayerStats>& stats, v1::AttentionStats* out);

// The k most probable classes, best first.
void FillTopClasses(const std::vector<float>& probabilities, const std::vector<std::string>& labels,
                    uint32_t k, v1::Classification* out);

void FillTiming(const ServeTiming& timing, v1::ServerTiming* out);

// Class ids one byte each when the model has at most 256 classes, else little-endian uint16.
void FillMask(const model::Segmentation& segmentation, const std::vector<std::string>& labels,
              v1::SegmentationMask* out);

void FillSummary(const GenerationStream::Event& final_event, v1::GenerationSummary* out);
// One prompt token's score (Score, and Generate with prompt_logprobs).
void FillScoredToken(const GenerationStream::ScoredToken& token, v1::ScoredToken* out);

v1::ModelFamily FamilyToProto(const std::optional<model::ModelFamily>& family);
void FillModelStatus(const ModelSnapshot& snapshot, v1::ModelStatus* out);
void FillMetadata(const ModelSnapshot& snapshot, v1::GetModelMetadataResponse* out);

}  // namespace elliptical::server
