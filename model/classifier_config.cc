#include "model/classifier_config.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/model_dir.h"

namespace elliptical::model {

absl::StatusOr<ClassifierConfig> ReadClassifierConfig(const std::string& directory) {
  ELLIPTICAL_ASSIGN_OR_RETURN(ModelDirectory dir, ReadModelDirectory(directory));
  ELLIPTICAL_RETURN_IF_ERROR(ExpectFamily(dir, ModelFamily::kImageClassifier));
  ClassifierConfig config;
  config.directory = directory;
  ELLIPTICAL_ASSIGN_OR_RETURN(config.runtime, ParseRuntimeFields(dir));
  try {
    config.num_classes = dir.config.value("num_classes", 0);
  } catch (const nlohmann::json::exception& e) {
    return ConfigError(dir, absl::InvalidArgumentError(e.what()));
  }
  if (config.num_classes <= 0) {
    return ConfigError(dir, absl::InvalidArgumentError("num_classes must be a positive integer"));
  }
  ELLIPTICAL_ASSIGN_OR_RETURN(config.labels, ParseLabels(dir, config.num_classes));
  auto vit = ParseViTConfig(dir.config.value("vit", nlohmann::json::object()));
  if (!vit.ok()) return ConfigError(dir, vit.status());
  config.vit = *vit;
  auto attention =
      ParseAttentionConfig(dir.config.value("attention", nlohmann::json()), config.vit.depth);
  if (!attention.ok()) return ConfigError(dir, attention.status());
  config.attention = *std::move(attention);
  auto normalisation = ParseNormalisation(dir.config);
  if (!normalisation.ok()) return ConfigError(dir, normalisation.status());
  config.normalisation = *normalisation;
  return config;
}

}  // namespace elliptical::model
