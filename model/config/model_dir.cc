#include "model/config/model_dir.h"

#include <fstream>

#include "absl/strings/str_cat.h"

namespace elliptical::model {

absl::string_view FamilyName(ModelFamily family) {
  switch (family) {
    case ModelFamily::kImageClassifier: return "image_classifier";
    case ModelFamily::kSegmenter: return "segmenter";
    case ModelFamily::kLanguageModel: return "language_model";
  }
  return "?";
}

absl::StatusOr<ModelDirectory> ReadModelDirectory(const std::string& path) {
  const std::string config_path = path + "/config.json";
  std::ifstream in(config_path);
  if (!in) return absl::NotFoundError(absl::StrCat("no config.json in model directory ", path));
  ModelDirectory dir;
  dir.path = path;
  dir.config = nlohmann::json::parse(in, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (dir.config.is_discarded() || !dir.config.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(config_path, " is not a JSON object"));
  }
  const std::string family = dir.config.value("family", "");
  if (family == "image_classifier") {
    dir.family = ModelFamily::kImageClassifier;
  } else if (family == "segmenter") {
    dir.family = ModelFamily::kSegmenter;
  } else if (family == "language_model") {
    dir.family = ModelFamily::kLanguageModel;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        config_path, ": \"family\" is \"", family,
        "\"; expected image_classifier, segmenter or language_model"));
  }
  return dir;
}

}  // namespace elliptical::model
