// How a model's attention layers score keys: elliptical (the paper's Mahalanobis metric
// estimated from consecutive layers' values) or plain dot-product, on the same weights.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"

namespace elliptical::model {

enum class AttentionMode { kElliptical, kDotProduct };
// How m is reduced over a sample's tokens.
enum class MetricEstimator { kMean, kMedian };

struct AttentionConfig {
  AttentionMode mode = AttentionMode::kElliptical;
  // 0-based blocks that use the elliptical metric. Empty in the JSON means "every block but
  // the first", as in the paper (block 0 has no previous layer to compare values with).
  std::vector<int> elliptical_layers;
  // The constant c of score(q, k) = ((m * q) . k) * c in elliptical layers. Unset means
  // 1/sqrt(head_dim) (the vision models; the paper's language model uses 1 in its elliptical
  // branch). Dot-product layers always scale by 1/sqrt(head_dim).
  std::optional<double> score_scale;
  MetricEstimator estimator = MetricEstimator::kMean;
  // The reference divides the value differences by delta; max-scaling cancels it. Kept so a
  // config copied from the reference round-trips, and so the tests can prove it cancels.
  double delta = 1.0;

  bool IsElliptical(int layer) const;
  double ScoreScale(int head_dim) const;
};

// Parses the "attention" object of a model config; `num_layers` validates the layer list.
absl::StatusOr<AttentionConfig> ParseAttentionConfig(const nlohmann::json& json, int num_layers);

absl::string_view AttentionModeName(AttentionMode mode);
absl::string_view EstimatorName(MetricEstimator estimator);

}  // namespace elliptical::model
