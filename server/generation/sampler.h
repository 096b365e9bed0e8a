// Picks the next token from a model's logits: greedy, or sampled with temperature, top-k and
// top-p (nucleus) filtering from a per-request random engine, so a seed fixes the output.
// Before either, the logits may be adjusted: penalties on tokens already seen (OpenAI's presence
// and frequency penalties, vLLM's repetition penalty) and a per-token bias (OpenAI's logit_bias).
#pragma once

#include <cstdint>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace elliptical::server {

inline constexpr float kMaxPenalty = 2;           // |presence|, |frequency|: OpenAI's range
inline constexpr float kMaxRepetitionPenalty = 10;
inline constexpr float kMaxLogitBias = 100;       // |bias|: OpenAI's range
inline constexpr int kMaxLogitBiasEntries = 300;
inline constexpr int kMaxTopLogprobs = 20;

struct SamplingParams {
  float temperature = 0;  // 0: greedy
  int top_k = 0;          // 0: no top-k filter
  float top_p = 0;        // 0 or >= 1: no nucleus filter
  // OpenAI's definitions: the logit of a token the output already holds c times is lowered by
  // c * frequency_penalty + presence_penalty. Negative values encourage repetition.
  float presence_penalty = 0;
  float frequency_penalty = 0;
  // vLLM's (after CTRL): every token of the prompt or the output, counted once, has a positive
  // logit divided by it and a negative one multiplied by it. 1: off; above 1 discourages repeats.
  float repetition_penalty = 1;
  // Added to the logits of these token ids (OpenAI's logit_bias); -100 all but bans a token.
  std::vector<std::pair<int32_t, float>> logit_bias;
  // How many of the most likely tokens to report with each sampled one (SampledToken::top).
  int top_logprobs = 0;
};

// INVALID_ARGUMENT naming the field unless temperature is finite and >= 0, top_p in [0, 1], the
// penalties finite and within their ranges, logit_bias within kMaxLogitBiasEntries entries of
// non-negative ids and finite biases in [-100, 100], and top_logprobs in [0, kMaxTopLogprobs]
// (top_k is any count). The request edge and the scheduler both check with this; the scheduler
// also checks logit_bias's ids against its vocabulary.
absl::Status CheckSamplingParams(const SamplingParams& params);

// True when `params` changes the logits before sampling (penalties or a bias).
bool AdjustsLogits(const SamplingParams& params);
// True when the penalties need the tokens seen so far (TokenHistory).
bool NeedsHistory(const SamplingParams& params);

// What the penalties look at: how often each token was produced, and the prompt's tokens (the
// repetition penalty counts both).
struct TokenHistory {
  std::unordered_map<int32_t, int> output_counts;
  std::unordered_set<int32_t> prompt;
};

// The logits as sampling sees them: penalties, then the bias. Ids outside the logits are skipped.
std::vector<float> AdjustedLogits(const std::vector<float>& logits, const SamplingParams& params,
                                  const TokenHistory& history);

struct SampledToken {
  int32_t id = 0;
  float logprob = 0;  // under the distribution it was drawn from (greedy: the adjusted softmax)
  // With params.top_logprobs = n: the n most likely tokens under that same distribution, most
  // likely first (ties by id), each with its logprob. Fewer when top-k or top-p keep fewer.
  std::vector<std::pair<int32_t, float>> top;
};

// `logits` are used as given: callers with penalties or a bias pass AdjustedLogits.
SampledToken Sample(const std::vector<float>& logits, const SamplingParams& params, std::mt19937_64* rng);

}  // namespace elliptical::server
