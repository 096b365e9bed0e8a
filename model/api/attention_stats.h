// Per-input statistics of the elliptical metric and of the token representations, in plain
// data so that callers need no tensor headers.
#pragma once

#include <vector>

namespace elliptical::model {

struct HeadMetricStats {
  float mean = 0;
  float min = 0;
  float effective_dimension = 0;  // (sum m)^2 / (d * sum m^2)
};

// Entries of m (every head and coordinate) counted in kMetricBins equal bins over (0, 1]:
// bin i holds (i / kMetricBins, (i + 1) / kMetricBins].
inline constexpr int kMetricBins = 20;

struct LayerStats {
  int layer = 0;
  bool elliptical = false;
  std::vector<HeadMetricStats> heads;  // empty for dot-product layers
  std::vector<float> metric_histogram;  // kMetricBins counts; empty for dot-product layers
  float metric_sum = 0;                 // sum of the entries counted
  float mean_token_cosine_similarity = 0;
};

}  // namespace elliptical::model
