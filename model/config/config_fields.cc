#include "model/config/config_fields.h"

#include <cmath>
#include <fstream>
#include <limits>

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
    if (dir.config.contains("allow_tf32")) {
      const nlohmann::json& tf32 = dir.config.at("allow_tf32");
      if (!tf32.is_boolean()) {
        return ConfigError(dir, absl::InvalidArgumentError("allow_tf32 must be true or false"));
      }
      fields.allow_tf32 = tf32.get<bool>();
    }
  } catch (const nlohmann::json::exception& e) {
    return ConfigError(dir, absl::InvalidArgumentError(e.what()));
  }
  if (fields.dtype != "auto" && fields.dtype != "float32" && fields.dtype != "float16" &&
      fields.dtype != "bfloat16") {
    return ConfigError(dir, absl::InvalidArgumentError(absl::StrCat(
                                "dtype is \"", fields.dtype,
                                "\"; expected auto, float32, float16 or bfloat16")));
  }
  if (fields.allow_tf32 && (fields.dtype == "bfloat16" || fields.dtype == "float16")) {
    return ConfigError(dir, absl::InvalidArgumentError(absl::StrCat(
                                "allow_tf32 is for float32 models; dtype is \"", fields.dtype,
                                "\" (remove allow_tf32, or set dtype to float32 or auto)")));
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
  for (int i = 0; i < 3; ++i) {
    // Through double: a number past float's range would make the conversion undefined.
    const double v = value[i].get<double>();
    if (!(std::abs(v) <= std::numeric_limits<float>::max())) {
      return absl::InvalidArgumentError(absl::StrCat("preprocess.", key, " must be 3 finite numbers"));
    }
    (*out)[i] = static_cast<float>(v);
  }
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

namespace {

// A resized side past this is a mistyped crop_pct, not a model: 8192 x 8192 RGB is 200 MB.
constexpr double kMaxResizedSide = 8192;

absl::StatusOr<std::string> ReadName(const nlohmann::json& preprocess, const char* key,
                                     const char* expected) {
  const auto& value = preprocess[key];
  if (!value.is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("preprocess.", key, " must be a string: ", expected));
  }
  return value.get<std::string>();
}

}  // namespace

int ShorterSideTarget(int image_size, double crop_pct) {
  return static_cast<int>(std::floor(static_cast<double>(image_size) / crop_pct));
}

absl::StatusOr<ResizePolicy> ParseResizePolicy(const nlohmann::json& config, int image_size) {
  ResizePolicy policy;
  if (!config.contains("preprocess")) return policy;
  const nlohmann::json& preprocess = config["preprocess"];
  if (!preprocess.is_object()) return absl::InvalidArgumentError("\"preprocess\" must be an object");

  if (preprocess.contains("resize")) {
    constexpr char kModes[] = "stretch or shorter_side_then_center_crop";
    auto mode = ReadName(preprocess, "resize", kModes);
    if (!mode.ok()) return mode.status();
    if (*mode == "stretch") {
      policy.mode = ResizeMode::kStretch;
    } else if (*mode == "shorter_side_then_center_crop") {
      policy.mode = ResizeMode::kShorterSideThenCenterCrop;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("preprocess.resize is \"", *mode, "\"; expected ", kModes));
    }
  }
  if (preprocess.contains("interpolation")) {
    constexpr char kNames[] = "torch_bilinear, bilinear or bicubic";
    auto name = ReadName(preprocess, "interpolation", kNames);
    if (!name.ok()) return name.status();
    if (*name == "torch_bilinear") {
      policy.interpolation = Interpolation::kTorchBilinear;
    } else if (*name == "bilinear") {
      policy.interpolation = Interpolation::kBilinear;
    } else if (*name == "bicubic") {
      policy.interpolation = Interpolation::kBicubic;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("preprocess.interpolation is \"", *name, "\"; expected ", kNames));
    }
  } else if (policy.mode == ResizeMode::kShorterSideThenCenterCrop) {
    policy.interpolation = Interpolation::kBicubic;  // timm's default for DeiT / ViT
  }
  if (policy.mode == ResizeMode::kShorterSideThenCenterCrop &&
      policy.interpolation == Interpolation::kTorchBilinear) {
    return absl::InvalidArgumentError(
        "preprocess.interpolation torch_bilinear works with resize stretch only; use bilinear or "
        "bicubic with shorter_side_then_center_crop");
  }
  if (preprocess.contains("crop_pct")) {
    const auto& value = preprocess["crop_pct"];
    if (policy.mode != ResizeMode::kShorterSideThenCenterCrop) {
      return absl::InvalidArgumentError(
          "preprocess.crop_pct applies to resize shorter_side_then_center_crop only");
    }
    if (!value.is_number()) return absl::InvalidArgumentError("preprocess.crop_pct must be a number");
    policy.crop_pct = value.get<double>();
    // Written so that NaN fails too.
    if (!(policy.crop_pct > 0.0 && policy.crop_pct <= 1.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("preprocess.crop_pct is ", value.dump(), "; expected a number in (0, 1]"));
    }
  }
  if (policy.mode == ResizeMode::kShorterSideThenCenterCrop &&
      !(static_cast<double>(image_size) / policy.crop_pct <= kMaxResizedSide)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "preprocess.crop_pct ", policy.crop_pct, " resizes the shorter side to image_size / crop_pct = ",
        static_cast<double>(image_size) / policy.crop_pct, " pixels, more than ", kMaxResizedSide));
  }
  return policy;
}

}  // namespace elliptical::model
