#include "model/config/classifier_config.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/config/model_dir.h"
#include "model/config/vision_fields.h"

namespace elliptical::model {

absl::StatusOr<ClassifierConfig> ReadClassifierConfig(const std::string& directory) {
  ELLIPTICAL_ASSIGN_OR_RETURN(ModelDirectory dir, ReadModelDirectory(directory));
  ELLIPTICAL_RETURN_IF_ERROR(ExpectFamily(dir, ModelFamily::kImageClassifier));
  ClassifierConfig config;
  config.directory = directory;
  ELLIPTICAL_ASSIGN_OR_RETURN(config.runtime, ParseRuntimeFields(dir));
  ELLIPTICAL_ASSIGN_OR_RETURN(VisionFields vision, ParseVisionFields(dir));
  config.num_classes = vision.num_classes;
  config.labels = std::move(vision.labels);
  config.vit = vision.vit;
  config.attention = std::move(vision.attention);
  config.normalisation = vision.normalisation;
  auto resize = ParseResizePolicy(dir.config, config.vit.image_size);
  if (!resize.ok()) return ConfigError(dir, resize.status());
  config.resize = *resize;
  return config;
}

}  // namespace elliptical::model
