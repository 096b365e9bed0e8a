// Picks the next token from a model's logits: greedy, or sampled with temperature, top-k and
// top-p (nucleus) filtering from a per-request random engine, so a seed fixes the output.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "absl/status/status.h"

namespace elliptical::server {

struct SamplingParams {
  float temperature = 0;  // 0: greedy
  int top_k = 0;          // 0: no top-k filter
  float top_p = 0;        // 0 or >= 1: no nucleus filter
};

// INVALID_ARGUMENT naming the field unless temperature is finite and >= 0 and top_p in [0, 1]
// (top_k is any count). The request edge and the scheduler both check with this.
absl::Status CheckSamplingParams(const SamplingParams& params);

struct SampledToken {
  int32_t id = 0;
  float logprob = 0;  // under the distribution it was drawn from (greedy: the model's softmax)
};

SampledToken Sample(const std::vector<float>& logits, const SamplingParams& params, std::mt19937_64* rng);

}  // namespace elliptical::server
