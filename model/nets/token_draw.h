// Picks each row's next token from its logits on the logits' own device, so that a decode step
// sends back two numbers per row instead of a whole vocabulary of float32 logits.
//
// It reproduces server/generation/sampler.cc's Sample() (without penalties, bias or
// top_logprobs, which stay on the host) step for step:
//   greedy (temperature 0): the first index of the largest logit; logprob = logit - logsumexp,
//     the log-sum-exp in float64 over float32 differences from the maximum.
//   sampled: candidates sorted by logit, best first, ties by id (a stable descending sort);
//     the first top_k (all when top_k <= 0); p_i = exp((l_i - l_best) / T) in float64,
//     normalised; when 0 < top_p < 1 the shortest prefix whose mass reaches top_p, renormalised;
//     then the pick std::discrete_distribution makes in libstdc++ (bits/random.tcc): the weights
//     normalised once more, their running sums with the last one set to 1.0, and the first
//     running sum >= u; logprob = log(p_chosen). With a single candidate left,
//     discrete_distribution returns it without drawing, and so the row reports that it left u
//     unused (the caller then leaves its engine untouched too).
// Every shape is fixed by the logits' shape and nothing waits for the device (no .item(), no
// data-dependent size), so a CUDA graph can capture it.
#pragma once

#include <torch/torch.h>

namespace elliptical::model {

// Rows of DrawTokens' `params` (4, R) float64 and of its result (3, R) float64.
enum DrawParam : int64_t { kDrawTemperature = 0, kDrawTopK = 1, kDrawTopP = 2, kDrawUniform = 3 };
enum DrawResult : int64_t { kDrawnId = 0, kDrawnLogprob = 1, kDrawnUsedUniform = 2 };

// logits (R, V) float32; params (4, R) float64 on the same device: temperature (the float32
// value the request holds; 0 or less: greedy), top_k (a whole number; 0 or less: all), top_p
// (0 or >= 1: off) and u in [0, 1) (std::generate_canonical<double, 53> of the request's
// engine). Returns (3, R) float64: the chosen id (exact in a double), its logprob (float64; the
// host sampler rounds it to float) and 1.0 where the draw used u, 0.0 where it did not.
// `any_sampled` false (every temperature <= 0, known to the caller) skips the vocabulary sort
// the sampled rows need; a captured graph passes true so that one graph serves every mix.
torch::Tensor DrawTokens(const torch::Tensor& logits, const torch::Tensor& params, bool any_sampled = true);

}  // namespace elliptical::model
