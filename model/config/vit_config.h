// Shape of a Vision Transformer encoder in timm's VisionTransformer layout (DeiT-Tiny/Small/
// Base are instances), shared by the classifier and, later, the segmenter's encoder.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"

namespace elliptical::model {

struct ViTConfig {
  int image_size = 224;  // side of the square input, pixels
  int patch_size = 16;
  int in_channels = 3;
  int embed_dim = 192;
  int depth = 12;
  int num_heads = 3;
  double mlp_ratio = 4.0;
  bool qkv_bias = true;
  double layer_norm_eps = 1e-6;

  int head_dim() const { return embed_dim / num_heads; }
  int grid_size() const { return image_size / patch_size; }
  int num_patches() const { return grid_size() * grid_size(); }
  int mlp_hidden_dim() const { return static_cast<int>(embed_dim * mlp_ratio); }
};

// Reads the "vit" object of a model config; a missing field keeps its DeiT-Tiny default.
// Rejects shapes the model cannot compute (embed_dim not divisible by num_heads, image size not
// a multiple of the patch size).
absl::StatusOr<ViTConfig> ParseViTConfig(const nlohmann::json& json);

}  // namespace elliptical::model
