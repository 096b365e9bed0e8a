#include "model/config/config_fields.h"

#include <fstream>

#include "absl/strings/str_cat.h"

namespace elliptical::model {

absl::Status ConfigError(const ModelDirectory& dir, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(dir.path, "/config.json: ", status.message()));
}

absl::Status ExpectFamily(const ModelDirectory& dir, ModelFamily family) {
  if (dir.family == family) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(dir.path, " holds a ", FamilyName(dir.family),
                                                 ", not a ", FamilyName(family)));
}

absl::StatusOr<RuntimeFields> ParseRuntimeFields(const ModelDirectory& dir) {
  RuntimeFields fields;
  try {
    fields.weights_path = dir.path + "/" + dir.config.value("weights", "model.safetensors");
    fields.dtype = dir.config.value("dtype", fields.dtype);
    fields.device = dir.config.value("device", fields.device);
  } catch (const nlohmann::json::exception& e) {
    return ConfigError(dir, absl::InvalidArgumentError(e.what()));
  }
  if (fields.dtype != "float32" && fields.dtype != "float16" && fields.dtype != "bfloat16") {
    return ConfigError(dir, absl::InvalidArgumentError(absl::StrCat(
                                "dtype is \"", fields.dtype,
                                "\"; expected float32, float16 or bfloat16")));
  }
  return fields;
}

absl::StatusOr<std::vector<std::string>> ParseLabels(const ModelDirectory& dir, int num_classes) {
  std::string file;
  try {
    file = dir.config.value("labels", "");
  } catch (const nlohmann::json::exception& e) {
    return ConfigError(dir, absl::InvalidArgumentError(e.what()));
  }
  std::vector<std::string> labels;
  if (file.empty()) {
    for (int i = 0; i < num_classes; ++i) labels.push_back(absl::StrCat("class_", i));
    return labels;
  }
  const std::string path = dir.path + "/" + file;
  std::ifstream in(path);
  if (!in) return ConfigError(dir, absl::NotFoundError(absl::StrCat("cannot open labels file ", path)));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    labels.push_back(line);
  }
  while (!labels.empty() && labels.back().empty()) labels.pop_back();
  if (static_cast<int>(labels.size()) != num_classes) {
    return ConfigError(dir, absl::InvalidArgumentError(absl::StrCat(
                                "the labels file has ", labels.size(),
                                " labels but num_classes is ", num_classes)));
  }
  return labels;
}

namespace {

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

absl::StatusOr<Normalisation> ParseNormalisation(const nlohmann::json& config) {
  Normalisation n;
  const nlohmann::json preprocess =
      config.contains("preprocess") ? config["preprocess"] : nlohmann::json::object();
  if (!preprocess.is_object()) return absl::InvalidArgumentError("\"preprocess\" must be an object");
  if (auto s = ReadTriple(preprocess, "mean", &n.mean); !s.ok()) return s;
  if (auto s = ReadTriple(preprocess, "std", &n.std); !s.ok()) return s;
  for (float s : n.std) {
    if (!(s > 0)) return absl::InvalidArgumentError("preprocess.std must be positive");
  }
  return n;
}

}  // namespace elliptical::model
