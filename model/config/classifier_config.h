// Everything in a classifier's model directory: config.json, the weights file it names and the
// class labels. Parsed and validated here, before any tensor is allocated, so a bad directory
// fails with a message that names the field.
//
// config.json:
//   {
//     "family": "image_classifier",
//     "weights": "model.safetensors",       // relative to the directory
//     "labels": "labels.txt",               // one label per line, line i = class i
//     "num_classes": 10,
//     "dtype": "auto",                      // auto | float32 | float16 | bfloat16
//     "device": "auto",                     // auto (CUDA when present) | cpu | cuda | cuda:N
//     "vit": { ...see vit_config.h... },
//     "attention": { "mode": "elliptical", "elliptical_layers": [1, 2, 3],
//                    "score_scale": null, "estimator": "mean", "delta": 5.0 },
//     "preprocess": { "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
//                     "resize": "stretch",               // | shorter_side_then_center_crop
//                     "interpolation": "torch_bilinear", // | bilinear | bicubic (Pillow's)
//                     "crop_pct": 0.875 }                // shorter_side_then_center_crop only
//   }
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/config/attention_config.h"
#include "model/config/config_fields.h"
#include "model/config/vit_config.h"

namespace elliptical::model {

struct ClassifierConfig {
  std::string directory;
  RuntimeFields runtime;
  std::vector<std::string> labels;
  int num_classes = 0;
  ViTConfig vit;
  AttentionConfig attention;
  Normalisation normalisation;
  ResizePolicy resize;
};

// Reads <directory>/config.json and the labels file.
absl::StatusOr<ClassifierConfig> ReadClassifierConfig(const std::string& directory);

}  // namespace elliptical::model
