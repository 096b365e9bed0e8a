#include "model/config/vit_config.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace elliptical::model {

absl::StatusOr<ViTConfig> ParseViTConfig(const nlohmann::json& json) {
  if (!json.is_object()) return absl::InvalidArgumentError("\"vit\" must be an object");
  ViTConfig c;
  try {
    c.image_size = json.value("image_size", c.image_size);
    c.patch_size = json.value("patch_size", c.patch_size);
    c.in_channels = json.value("in_channels", c.in_channels);
    c.embed_dim = json.value("embed_dim", c.embed_dim);
    c.depth = json.value("depth", c.depth);
    c.num_heads = json.value("num_heads", c.num_heads);
    c.mlp_ratio = json.value("mlp_ratio", c.mlp_ratio);
    c.qkv_bias = json.value("qkv_bias", c.qkv_bias);
    c.layer_norm_eps = json.value("layer_norm_eps", c.layer_norm_eps);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("vit config: ", e.what()));
  }
  if (c.image_size <= 0 || c.patch_size <= 0 || c.embed_dim <= 0 || c.depth <= 0 ||
      c.num_heads <= 0 || c.mlp_ratio <= 0) {
    return absl::InvalidArgumentError("vit config: sizes must be positive");
  }
  if (c.in_channels != 3) {
    return absl::InvalidArgumentError("vit config: only 3-channel (RGB) inputs are supported");
  }
  if (c.embed_dim % c.num_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("vit config: embed_dim ", c.embed_dim,
                                                   " is not divisible by num_heads ", c.num_heads));
  }
  if (c.image_size % c.patch_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat("vit config: image_size ", c.image_size,
                                                   " is not a multiple of patch_size ",
                                                   c.patch_size));
  }
  return c;
}

}  // namespace elliptical::model
