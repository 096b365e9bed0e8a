// What a loaded model tells the outside about itself (listing and metadata RPCs).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config/attention_config.h"
#include "model/config/model_dir.h"

namespace elliptical::model {

struct ModelDescription {
  ModelFamily family = ModelFamily::kImageClassifier;
  std::string device;  // "cpu", "cuda:0"
  std::string dtype;   // "float32", ...
  std::string dtype_source;  // why that dtype, as a metric label value (model/io/precision.h)
  std::string dtype_reason;  // the same as a sentence
  AttentionConfig attention;
  int image_size = 0;
  std::vector<std::string> labels;
  int num_layers = 0;
  int num_heads = 0;
  int embed_dim = 0;
  int64_t num_parameters = 0;
};

}  // namespace elliptical::model
