#include "model/config/segmenter_config.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/config/model_dir.h"
#include "model/config/vision_fields.h"

namespace elliptical::model {
namespace {

absl::Status ParseDecoder(const nlohmann::json& json, SegmenterConfig* config) {
  if (!json.is_object()) return absl::InvalidArgumentError("\"decoder\" must be an object");
  try {
    const std::string type = json.value("type", "linear");
    if (type == "linear") {
      config->decoder = SegmentationDecoder::kLinear;
      return absl::OkStatus();
    }
    if (type != "mask_transformer") {
      return absl::InvalidArgumentError(absl::StrCat(
          "decoder.type is \"", type, "\"; expected \"linear\" or \"mask_transformer\""));
    }
    config->decoder = SegmentationDecoder::kMaskTransformer;
    MaskTransformerConfig& m = config->mask_transformer;
    m.embed_dim = config->encoder.embed_dim;
    m.num_heads = config->encoder.num_heads;
    m.depth = json.value("depth", m.depth);
    m.embed_dim = json.value("embed_dim", m.embed_dim);
    m.num_heads = json.value("num_heads", m.num_heads);
    m.mlp_ratio = json.value("mlp_ratio", m.mlp_ratio);
    m.layer_norm_eps = json.value("layer_norm_eps", m.layer_norm_eps);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("decoder: ", e.what()));
  }
  const MaskTransformerConfig& m = config->mask_transformer;
  if (m.depth < 1 || m.embed_dim < 1 || m.num_heads < 1 || !(m.mlp_ratio > 0)) {
    return absl::InvalidArgumentError("decoder: depth, embed_dim, num_heads, mlp_ratio must be positive");
  }
  if (m.embed_dim % m.num_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("decoder: embed_dim ", m.embed_dim,
                                                   " is not divisible by num_heads ", m.num_heads));
  }
  return absl::OkStatus();
}

absl::Status ParseInference(const nlohmann::json& json, SegmenterConfig* config) {
  if (!json.is_object()) return absl::InvalidArgumentError("\"inference\" must be an object");
  try {
    config->window_size = json.value("window_size", config->encoder.image_size);
    // Windows overlapping by a third, as in Segmenter's evaluation.
    config->window_stride =
        json.value("window_stride", static_cast<int>(int64_t{config->window_size} * 2 / 3));
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("inference: ", e.what()));
  }
  if (config->window_size < config->encoder.patch_size) {
    return absl::InvalidArgumentError(absl::StrCat("inference.window_size must be at least the patch size (",
                                                   config->encoder.patch_size, ")"));
  }
  if (config->window_stride < 1 || config->window_stride > config->window_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "inference.window_stride must be between 1 and window_size (", config->window_size, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SegmenterConfig> ReadSegmenterConfig(const std::string& directory) {
  ELLIPTICAL_ASSIGN_OR_RETURN(ModelDirectory dir, ReadModelDirectory(directory));
  ELLIPTICAL_RETURN_IF_ERROR(ExpectFamily(dir, ModelFamily::kSegmenter));
  SegmenterConfig config;
  config.directory = directory;
  ELLIPTICAL_ASSIGN_OR_RETURN(config.runtime, ParseRuntimeFields(dir));
  ELLIPTICAL_ASSIGN_OR_RETURN(VisionFields vision, ParseVisionFields(dir));
  config.num_classes = vision.num_classes;
  config.labels = std::move(vision.labels);
  config.encoder = vision.vit;
  config.attention = std::move(vision.attention);
  config.normalisation = vision.normalisation;
  if (auto s = ParseDecoder(dir.config.value("decoder", nlohmann::json::object()), &config); !s.ok()) {
    return ConfigError(dir, s);
  }
  if (auto s = ParseInference(dir.config.value("inference", nlohmann::json::object()), &config);
      !s.ok()) {
    return ConfigError(dir, s);
  }
  return config;
}

}  // namespace elliptical::model
