#include "model/classifier_config.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/model_dir.h"

namespace elliptical::model {
namespace {

absl::StatusOr<std::vector<std::string>> ReadLabels(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open labels file ", path));
  std::vector<std::string> labels;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    labels.push_back(line);
  }
  while (!labels.empty() && labels.back().empty()) labels.pop_back();
  return labels;
}

absl::Status ReadTriple(const nlohmann::json& json, const char* key, std::array<float, 3>* out) {
  if (!json.contains(key)) return absl::OkStatus();
  const auto& value = json[key];
  if (!value.is_array() || value.size() != 3 || !value[0].is_number() || !value[1].is_number() ||
      !value[2].is_number()) {
    return absl::InvalidArgumentError(absl::StrCat("preprocess.", key, " must be 3 numbers"));
  }
  for (int i = 0; i < 3; ++i) (*out)[i] = value[i].get<float>();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ClassifierConfig> ReadClassifierConfig(const std::string& directory) {
  ELLIPTICAL_ASSIGN_OR_RETURN(ModelDirectory dir, ReadModelDirectory(directory));
  if (dir.family != ModelFamily::kImageClassifier) {
    return absl::InvalidArgumentError(
        absl::StrCat(directory, " holds a ", FamilyName(dir.family), ", not an image_classifier"));
  }
  const nlohmann::json& json = dir.config;
  auto field_error = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat(directory, "/config.json: ", s.message()));
  };
  ClassifierConfig config;
  config.directory = directory;
  try {
    config.weights_path = directory + "/" + json.value("weights", "model.safetensors");
    config.num_classes = json.value("num_classes", 0);
    config.dtype = json.value("dtype", config.dtype);
    config.device = json.value("device", config.device);
    const std::string labels_file = json.value("labels", "");
    if (!labels_file.empty()) {
      auto labels = ReadLabels(directory + "/" + labels_file);
      if (!labels.ok()) return field_error(labels.status());
      config.labels = *std::move(labels);
    }
  } catch (const nlohmann::json::exception& e) {
    return field_error(absl::InvalidArgumentError(e.what()));
  }
  if (config.num_classes <= 0) {
    return field_error(absl::InvalidArgumentError("num_classes must be a positive integer"));
  }
  if (!config.labels.empty() && static_cast<int>(config.labels.size()) != config.num_classes) {
    return field_error(absl::InvalidArgumentError(absl::StrCat(
        "the labels file has ", config.labels.size(), " labels but num_classes is ",
        config.num_classes)));
  }
  if (config.labels.empty()) {
    for (int i = 0; i < config.num_classes; ++i) config.labels.push_back(absl::StrCat("class_", i));
  }
  if (config.dtype != "float32" && config.dtype != "float16" && config.dtype != "bfloat16") {
    return field_error(absl::InvalidArgumentError(absl::StrCat(
        "dtype is \"", config.dtype, "\"; expected float32, float16 or bfloat16")));
  }
  auto vit = ParseViTConfig(json.value("vit", nlohmann::json::object()));
  if (!vit.ok()) return field_error(vit.status());
  config.vit = *vit;
  auto attention = ParseAttentionConfig(json.value("attention", nlohmann::json()), config.vit.depth);
  if (!attention.ok()) return field_error(attention.status());
  config.attention = *std::move(attention);
  const nlohmann::json preprocess = json.value("preprocess", nlohmann::json::object());
  if (auto s = ReadTriple(preprocess, "mean", &config.mean); !s.ok()) return field_error(s);
  if (auto s = ReadTriple(preprocess, "std", &config.std); !s.ok()) return field_error(s);
  for (float s : config.std) {
    if (!(s > 0)) return field_error(absl::InvalidArgumentError("preprocess.std must be positive"));
  }
  return config;
}

}  // namespace elliptical::model
