// Fields that every model family's config.json shares (weights file, dtype, device, labels,
// image normalisation), parsed in one place so each family validates them the same way.
#pragma once

#include <array>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "model/config/model_dir.h"

namespace elliptical::model {

struct RuntimeFields {
  std::string weights_path;  // <directory>/<"weights">
  // "auto" (model/io/precision.h: bfloat16 where the hardware runs it fast), or a forced one.
  std::string dtype = "auto";
  std::string device = "auto";
  // "allow_tf32": lets a float32 model on CUDA run its convolutions and matmuls in TF32
  // (model/io/precision.h: only while every loaded CUDA float32 model allows it). Refused with
  // an explicit "dtype" other than float32; no effect on the CPU or where "auto" (or --dtype)
  // resolves to another dtype, and the model's dtype_reason says so.
  bool allow_tf32 = false;
};

absl::StatusOr<RuntimeFields> ParseRuntimeFields(const ModelDirectory& dir);

// Reads the "labels" file when the config names one (one label per line) and checks it holds
// `num_classes` labels; without one, labels are "class_<i>".
absl::StatusOr<std::vector<std::string>> ParseLabels(const ModelDirectory& dir, int num_classes);

struct Normalisation {
  std::array<float, 3> mean = {0.485f, 0.456f, 0.406f};  // ImageNet statistics, timm's default
  std::array<float, 3> std = {0.229f, 0.224f, 0.225f};
};

// The optional "preprocess" object: {"mean": [r, g, b], "std": [r, g, b]}.
absl::StatusOr<Normalisation> ParseNormalisation(const nlohmann::json& config);

// How a classifier brings an image of any size to its square input (docs/model_formats.md).
enum class ResizeMode {
  kStretch,                   // "stretch": both sides to image_size, aspect ratio not kept
  kShorterSideThenCenterCrop  // "shorter_side_then_center_crop": timm's / torchvision's eval
};
enum class Interpolation {
  kTorchBilinear,  // "torch_bilinear": LibTorch's antialiased bilinear on float pixels
  kBilinear,       // "bilinear": Pillow's Image.resize BILINEAR on the 8-bit pixels
  kBicubic         // "bicubic": Pillow's Image.resize BICUBIC on the 8-bit pixels
};

struct ResizePolicy {
  ResizeMode mode = ResizeMode::kStretch;
  Interpolation interpolation = Interpolation::kTorchBilinear;
  // kShorterSideThenCenterCrop only: the shorter side goes to floor(image_size / crop_pct),
  // then the centre image_size x image_size is kept.
  double crop_pct = 0.875;
};

// The classifier's "preprocess.resize", "preprocess.interpolation" and "preprocess.crop_pct";
// without them, today's stretch with torch_bilinear. `image_size` bounds the resized side.
absl::StatusOr<ResizePolicy> ParseResizePolicy(const nlohmann::json& config, int image_size);

// The side the shorter image side is resized to before the centre crop: floor(size / crop_pct).
int ShorterSideTarget(int image_size, double crop_pct);

// Prefixes an error with "<directory>/config.json: " so the user knows which file to fix.
absl::Status ConfigError(const ModelDirectory& dir, const absl::Status& status);

// Fails unless `dir` holds a model of `family`.
absl::Status ExpectFamily(const ModelDirectory& dir, ModelFamily family);

}  // namespace elliptical::model
