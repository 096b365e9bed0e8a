#include "model/config/vision_fields.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace elliptical::model {

absl::StatusOr<VisionFields> ParseVisionFields(const ModelDirectory& dir) {
  VisionFields f;
  try {
    f.num_classes = dir.config.value("num_classes", 0);
  } catch (const nlohmann::json::exception& e) {
    return ConfigError(dir, absl::InvalidArgumentError(e.what()));
  }
  // Without a labels file one label is made per class, before the weights are read: a bound
  // keeps a mistyped count from taking the server's memory down at load.
  constexpr int kMaxClasses = 1 << 20;
  if (f.num_classes <= 0 || f.num_classes > kMaxClasses) {
    return ConfigError(dir, absl::InvalidArgumentError(absl::StrCat(
                                "num_classes must be a positive integer up to ", kMaxClasses)));
  }
  ELLIPTICAL_ASSIGN_OR_RETURN(f.labels, ParseLabels(dir, f.num_classes));
  auto vit = ParseViTConfig(dir.config.value("vit", nlohmann::json::object()));
  if (!vit.ok()) return ConfigError(dir, vit.status());
  f.vit = *vit;
  auto attention = ParseAttentionConfig(dir.config.value("attention", nlohmann::json()), f.vit.depth);
  if (!attention.ok()) return ConfigError(dir, attention.status());
  f.attention = *std::move(attention);
  auto normalisation = ParseNormalisation(dir.config);
  if (!normalisation.ok()) return ConfigError(dir, normalisation.status());
  f.normalisation = *normalisation;
  return f;
}

}  // namespace elliptical::model
