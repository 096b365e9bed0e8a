// A Segmenter model directory (docs/model_formats.md, "segmenter"): a ViT encoder, a linear or
// mask-transformer decoder, and the sliding-window geometry used on images larger than the
// training size. Parsed and validated before any tensor is allocated.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/config/attention_config.h"
#include "model/config/config_fields.h"
#include "model/config/vit_config.h"

namespace elliptical::model {

enum class SegmentationDecoder { kLinear, kMaskTransformer };

struct MaskTransformerConfig {
  int depth = 2;
  int embed_dim = 192;
  int num_heads = 3;
  double mlp_ratio = 4.0;
  double layer_norm_eps = 1e-5;
};

struct SegmenterConfig {
  std::string directory;
  RuntimeFields runtime;
  std::vector<std::string> labels;
  int num_classes = 0;
  ViTConfig encoder;  // image_size is the training size: it fixes the pos_embed grid
  AttentionConfig attention;
  SegmentationDecoder decoder = SegmentationDecoder::kLinear;
  MaskTransformerConfig mask_transformer;  // used when decoder is kMaskTransformer
  int window_size = 0;    // pixels; images larger than this are segmented window by window
  int window_stride = 0;  // pixels between window starts
  Normalisation normalisation;
};

absl::StatusOr<SegmenterConfig> ReadSegmenterConfig(const std::string& directory);

}  // namespace elliptical::model
