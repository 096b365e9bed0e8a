#include "model/config/attention_config.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace elliptical::model {

bool AttentionConfig::IsElliptical(int layer) const {
  return mode == AttentionMode::kElliptical &&
         std::find(elliptical_layers.begin(), elliptical_layers.end(), layer) !=
             elliptical_layers.end();
}

double AttentionConfig::ScoreScale(int head_dim) const {
  return score_scale.value_or(1.0 / std::sqrt(static_cast<double>(head_dim)));
}

absl::string_view AttentionModeName(AttentionMode mode) {
  return mode == AttentionMode::kElliptical ? "elliptical" : "dot_product";
}

absl::string_view EstimatorName(MetricEstimator estimator) {
  return estimator == MetricEstimator::kMean ? "mean" : "median";
}

absl::StatusOr<AttentionConfig> ParseAttentionConfig(const nlohmann::json& given, int num_layers) {
  AttentionConfig config;
  const nlohmann::json json = given.is_null() ? nlohmann::json::object() : given;
  if (!json.is_object()) return absl::InvalidArgumentError("\"attention\" must be an object");
  try {
    const std::string mode = json.value("mode", "elliptical");
    if (mode == "elliptical") {
      config.mode = AttentionMode::kElliptical;
    } else if (mode == "dot_product") {
      config.mode = AttentionMode::kDotProduct;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "attention.mode is \"", mode, "\"; expected \"elliptical\" or \"dot_product\""));
    }
    const std::string estimator = json.value("estimator", "mean");
    if (estimator == "mean") {
      config.estimator = MetricEstimator::kMean;
    } else if (estimator == "median") {
      config.estimator = MetricEstimator::kMedian;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "attention.estimator is \"", estimator, "\"; expected \"mean\" or \"median\""));
    }
    if (json.contains("score_scale") && !json["score_scale"].is_null()) {
      config.score_scale = json["score_scale"].get<double>();
      if (!(*config.score_scale > 0)) {
        return absl::InvalidArgumentError("attention.score_scale must be positive");
      }
    }
    config.delta = json.value("delta", 1.0);
    if (!(config.delta > 0)) return absl::InvalidArgumentError("attention.delta must be positive");
    if (json.contains("elliptical_layers")) {
      config.elliptical_layers = json["elliptical_layers"].get<std::vector<int>>();
    } else {
      for (int l = 1; l < num_layers; ++l) config.elliptical_layers.push_back(l);
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("attention config: ", e.what()));
  }
  for (int layer : config.elliptical_layers) {
    if (layer < 1 || layer >= num_layers) {
      return absl::InvalidArgumentError(absl::StrCat(
          "attention.elliptical_layers holds ", layer, "; valid blocks are 1..", num_layers - 1,
          " (block 0 has no previous layer to estimate the metric from)"));
    }
  }
  return config;
}

}  // namespace elliptical::model
