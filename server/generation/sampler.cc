#include "server/generation/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace elliptical::server {
namespace {

// log(sum(exp(x))), computed stably.
double LogSumExp(const std::vector<float>& x) {
  const float max = *std::max_element(x.begin(), x.end());
  double sum = 0;
  for (float v : x) sum += std::exp(static_cast<double>(v - max));
  return max + std::log(sum);
}

bool Better(const std::vector<float>& logits, int32_t a, int32_t b) {
  return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
}

// The n best ids, best first (ties by id).
std::vector<int32_t> Best(const std::vector<float>& logits, size_t n) {
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  n = std::min(n, order.size());
  std::partial_sort(order.begin(), order.begin() + n, order.end(),
                    [&](int32_t a, int32_t b) { return Better(logits, a, b); });
  order.resize(n);
  return order;
}

absl::Status CheckRange(const char* field, float value, float low, float high) {
  if (std::isfinite(value) && value >= low && value <= high) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, " is ", value, "; it must be between ", low, " and ", high));
}

}  // namespace

absl::Status CheckSamplingParams(const SamplingParams& params) {
  if (!std::isfinite(params.temperature) || params.temperature < 0) {
    return absl::InvalidArgumentError("temperature must be finite and 0 (greedy) or positive");
  }
  if (!(params.top_p >= 0 && params.top_p <= 1)) {  // NaN fails both comparisons
    return absl::InvalidArgumentError("top_p must be between 0 and 1 (0: off)");
  }
  if (absl::Status s = CheckRange("presence_penalty", params.presence_penalty, -kMaxPenalty, kMaxPenalty); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckRange("frequency_penalty", params.frequency_penalty, -kMaxPenalty, kMaxPenalty); !s.ok()) {
    return s;
  }
  if (!(std::isfinite(params.repetition_penalty) && params.repetition_penalty > 0 &&
        params.repetition_penalty <= kMaxRepetitionPenalty)) {
    return absl::InvalidArgumentError(absl::StrCat("repetition_penalty is ", params.repetition_penalty,
                                                   "; it must be above 0 and at most ", kMaxRepetitionPenalty,
                                                   " (1: off)"));
  }
  if (params.logit_bias.size() > static_cast<size_t>(kMaxLogitBiasEntries)) {
    return absl::InvalidArgumentError(absl::StrCat("logit_bias holds ", params.logit_bias.size(),
                                                   " tokens; the limit is ", kMaxLogitBiasEntries));
  }
  for (const auto& [id, bias] : params.logit_bias) {
    if (id < 0) return absl::InvalidArgumentError(absl::StrCat("logit_bias: token id ", id, " is negative"));
    if (absl::Status s = CheckRange("logit_bias", bias, -kMaxLogitBias, kMaxLogitBias); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(s.message(), " (token ", id, ")"));
    }
  }
  if (params.top_logprobs < 0 || params.top_logprobs > kMaxTopLogprobs) {
    return absl::InvalidArgumentError(absl::StrCat("top_logprobs is ", params.top_logprobs,
                                                   "; it must be between 0 and ", kMaxTopLogprobs));
  }
  return absl::OkStatus();
}

bool NeedsHistory(const SamplingParams& p) {
  return p.presence_penalty != 0 || p.frequency_penalty != 0 || p.repetition_penalty != 1;
}

bool AdjustsLogits(const SamplingParams& p) { return NeedsHistory(p) || !p.logit_bias.empty(); }

std::vector<float> AdjustedLogits(const std::vector<float>& logits, const SamplingParams& p,
                                  const TokenHistory& history) {
  std::vector<float> out = logits;
  const auto in_range = [&](int32_t id) { return id >= 0 && static_cast<size_t>(id) < out.size(); };
  if (p.repetition_penalty != 1) {
    const float r = p.repetition_penalty;
    const auto penalise = [&](int32_t id) {
      if (!in_range(id)) return;
      out[id] = out[id] > 0 ? out[id] / r : out[id] * r;
    };
    for (int32_t id : history.prompt) penalise(id);
    for (const auto& [id, count] : history.output_counts) {
      if (history.prompt.count(id) == 0) penalise(id);  // once per token, wherever it was seen
    }
  }
  if (p.presence_penalty != 0 || p.frequency_penalty != 0) {
    for (const auto& [id, count] : history.output_counts) {
      if (in_range(id) && count > 0) out[id] -= static_cast<float>(count) * p.frequency_penalty + p.presence_penalty;
    }
  }
  for (const auto& [id, bias] : p.logit_bias) {
    if (in_range(id)) out[id] += bias;
  }
  return out;
}

SampledToken Sample(const std::vector<float>& logits, const SamplingParams& params, std::mt19937_64* rng) {
  const size_t wanted_top = static_cast<size_t>(std::max(0, params.top_logprobs));
  if (params.temperature <= 0) {
    const size_t best = std::max_element(logits.begin(), logits.end()) - logits.begin();
    const double log_z = LogSumExp(logits);
    SampledToken out{static_cast<int32_t>(best), static_cast<float>(logits[best] - log_z), {}};
    if (wanted_top > 0) {
      for (int32_t id : Best(logits, wanted_top)) out.top.emplace_back(id, static_cast<float>(logits[id] - log_z));
    }
    return out;
  }
  // Candidates sorted by score, best first (ties by id, so the order is deterministic).
  std::vector<int32_t> order =
      Best(logits, params.top_k > 0 ? static_cast<size_t>(params.top_k) : logits.size());

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
  SampledToken out{order[chosen], static_cast<float>(std::log(p[chosen])), {}};
  // `order` is best first: the most likely alternatives are its head (zero-weight ones left out).
  for (size_t i = 0; i < std::min(wanted_top, order.size()) && p[i] > 0; ++i) {
    out.top.emplace_back(order[i], static_cast<float>(std::log(p[i])));
  }
  return out;
}

}  // namespace elliptical::server
