// The common part of every model directory: a config.json whose "family" says which loader
// reads the rest.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace elliptical::model {

enum class ModelFamily { kImageClassifier, kSegmenter, kLanguageModel };

absl::string_view FamilyName(ModelFamily family);

struct ModelDirectory {
  std::string path;
  ModelFamily family;
  nlohmann::json config;
};

// Reads and parses <path>/config.json and its "family" field. Refuses a number beyond +-2^31
// anywhere in it (the parsers read ints; such a value would wrap or be undefined behaviour).
absl::StatusOr<ModelDirectory> ReadModelDirectory(const std::string& path);

}  // namespace elliptical::model
