// What the classifier's and the segmenter's config.json share: classes and labels, the ViT
// encoder's shape, its attention and the image normalisation.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/config/attention_config.h"
#include "model/config/config_fields.h"
#include "model/config/model_dir.h"
#include "model/config/vit_config.h"

namespace elliptical::model {

struct VisionFields {
  int num_classes = 0;
  std::vector<std::string> labels;
  ViTConfig vit;
  AttentionConfig attention;
  Normalisation normalisation;
};

absl::StatusOr<VisionFields> ParseVisionFields(const ModelDirectory& dir);

}  // namespace elliptical::model
