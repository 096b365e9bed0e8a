// Picks the next token from a model's logits: greedy, or sampled with temperature, top-k and
// top-p (nucleus) filtering from a per-request random engine, so a seed fixes the output.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace elliptical::server {

struct SamplingParams {
  float temperature = 0;  // 0: greedy
  int top_k = 0;          // 0: no top-k filter
  float top_p = 0;        // 0 or >= 1: no nucleus filter
};

struct SampledToken {
  int32_t id = 0;
  float logprob = 0;  // under the distribution it was drawn from (greedy: the model's softmax)
};

SampledToken Sample(const std::vector<float>& logits, const SamplingParams& params, std::mt19937_64* rng);

}  // namespace elliptical::server
