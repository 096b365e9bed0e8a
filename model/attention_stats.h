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

struct LayerStats {
  int layer = 0;
  bool elliptical = false;
  std::vector<HeadMetricStats> heads;  // empty for dot-product layers
  float mean_token_cosine_similarity = 0;
};

}  // namespace elliptical::model
