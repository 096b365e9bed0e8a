#include "server/generation/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace elliptical::server {
namespace {

// log-softmax of `x` at index `i`, computed stably.
float LogSoftmaxAt(const std::vector<float>& x, size_t i) {
  const float max = *std::max_element(x.begin(), x.end());
  double sum = 0;
  for (float v : x) sum += std::exp(static_cast<double>(v - max));
  return static_cast<float>(x[i] - max - std::log(sum));
}

}  // namespace

absl::Status CheckSamplingParams(const SamplingParams& params) {
  if (!std::isfinite(params.temperature) || params.temperature < 0) {
    return absl::InvalidArgumentError("temperature must be finite and 0 (greedy) or positive");
  }
  if (!(params.top_p >= 0 && params.top_p <= 1)) {  // NaN fails both comparisons
    return absl::InvalidArgumentError("top_p must be between 0 and 1 (0: off)");
  }
  return absl::OkStatus();
}

SampledToken Sample(const std::vector<float>& logits, const SamplingParams& params, std::mt19937_64* rng) {
  if (params.temperature <= 0) {
    const size_t best = std::max_element(logits.begin(), logits.end()) - logits.begin();
    return {static_cast<int32_t>(best), LogSoftmaxAt(logits, best)};
  }
  // Candidates sorted by score, best first (ties by id, so the order is deterministic).
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  size_t keep = order.size();
  if (params.top_k > 0) keep = std::min<size_t>(keep, params.top_k);
  std::partial_sort(order.begin(), order.begin() + keep, order.end(), [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  });
  order.resize(keep);

  // Differences from the best logit, scaled in double: with a tiny temperature (1e-40 is a float32
  // denormal) each quotient overflowed float to inf and inf - inf gave NaN probabilities; now the
  // others' weights underflow to 0 and the draw is greedy, as the temperature means.
  std::vector<double> p(order.size());
  const double inverse_temperature = 1.0 / static_cast<double>(params.temperature);
  const double top = logits[order[0]];
  double sum = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    p[i] = std::exp((logits[order[i]] - top) * inverse_temperature);
    sum += p[i];
  }
  for (double& v : p) v /= sum;
  if (params.top_p > 0 && params.top_p < 1) {
    // Smallest prefix whose mass reaches top_p (at least one token).
    double mass = 0;
    size_t n = 0;
    while (n < p.size() && mass < params.top_p) mass += p[n++];
    p.resize(n);
    order.resize(n);
    for (double& v : p) v /= mass;
  }
  std::discrete_distribution<size_t> pick(p.begin(), p.end());
  const size_t chosen = pick(*rng);
  return {order[chosen], static_cast<float>(std::log(p[chosen]))};
}

}  // namespace elliptical::server
