#include "model/config/model_dir.h"

#include <cmath>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace elliptical::model {
namespace {

// Every number of a config is a size, a count, a rate or a small constant. The parsers read ints
// with nlohmann's value(), which wraps an integer beyond int's range into another value and
// turns a float beyond it into undefined behaviour; one check here, before any parser, refuses
// them all with the key's path.
absl::Status CheckNumbers(const nlohmann::json& value, const std::string& path,
                          const std::string& file) {
  if (value.is_object()) {
    for (const auto& item : value.items()) {
      const std::string child = path.empty() ? item.key() : absl::StrCat(path, ".", item.key());
      if (absl::Status s = CheckNumbers(item.value(), child, file); !s.ok()) return s;
    }
  } else if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) {
      if (absl::Status s = CheckNumbers(value[i], absl::StrCat(path, "[", i, "]"), file); !s.ok()) {
        return s;
      }
    }
  } else if (value.is_number() && !(std::abs(value.get<double>()) < 2147483648.0)) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": \"", path, "\" is ", value.dump(),
                                                   "; numbers in a config lie within +-2^31"));
  }
  return absl::OkStatus();
}

}  // namespace

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
  try {
    dir.config = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    // Its text gives the line and column of the first error.
    return absl::InvalidArgumentError(absl::StrCat(config_path, " is not valid JSON: ", e.what()));
  }
  if (!dir.config.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(config_path, " is not a JSON object"));
  }
  if (absl::Status s = CheckNumbers(dir.config, "", config_path); !s.ok()) return s;
  const auto family_it = dir.config.find("family");
  if (family_it != dir.config.end() && !family_it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(config_path, ": \"family\" must be a string"));
  }
  const std::string family = family_it == dir.config.end() ? "" : family_it->get<std::string>();
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
