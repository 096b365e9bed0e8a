// Drawing tokens on the model's device (model/nets/token_draw.h) against the host sampler it
// mirrors (server/generation/sampler.cc, Sample): the same token for the same engine state, the
// same logprob up to float64 roundoff, and the engine advanced exactly as Sample advances it.
//
// Why exact token equality is a sound test: both sides sort the same float32 logits with the
// same exact comparisons, so the candidate order, the top-k cut and the greedy argmax agree
// bit for bit. What differs is the float64 arithmetic after that: exp (LibTorch's vectorised exp
// against glibc's, a few ulp), and sums taken in another order; each running sum the pick
// compares with u differs by at most about (V + few) * 2^-53 ~ 1e-14 here. A different token
// needs u (or top_p, for the nucleus cut) to fall within that distance of a boundary: with u
// uniform on [0, 1), a chance of about 2 * 1e-14 per boundary per draw, ~1e-10 over this file's
// few thousand draws. A mismatch is a bug, not bad luck.
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "model/nets/token_draw.h"
#include "server/generation/sampler.h"

namespace elliptical::model {
namespace {

using server::SamplingParams;

struct Setting {
  float temperature;
  int top_k;
  float top_p;
};

// The float32 rounding of the host's float64 logprob (half an ulp of float, 2^-24 relative,
// either way on each side) and the float64 roundoff of the normalising sums, which enters
// log(p) as an absolute error of about (V + few) * 2^-53.
double LogprobTolerance(double logprob, int64_t vocab) {
  return std::abs(logprob) * 0x1p-23 + static_cast<double>(vocab + 8) * 0x1p-52;
}

// Logits with ties (rows rounded to halves) and a few far-apart values, as real logits have.
torch::Tensor TestLogits(int64_t rows, int64_t vocab, uint64_t seed) {
  torch::manual_seed(seed);
  torch::Tensor x = torch::randn({rows, vocab}) * 3;
  x.narrow(0, 0, rows / 2).mul_(2).round_().div_(2);  // ties in half the rows
  x.select(1, vocab - 1).fill_(-100);                  // like the fixtures' end-of-sequence logit
  return x;
}

std::vector<float> Row(const torch::Tensor& logits, int64_t r) {
  torch::Tensor row = logits[r].contiguous();
  return std::vector<float>(row.data_ptr<float>(), row.data_ptr<float>() + row.numel());
}

TEST(DrawTokens, EqualsTheHostSamplerForTheSameEngine) {
  c10::InferenceMode guard;
  const std::vector<Setting> settings = {
      {0, 0, 0},        {1, 0, 0},       {0.7f, 5, 0},      {1.3f, 0, 0.9f},  {0.8f, 20, 0.75f},
      {1e-3f, 0, 0},    {2, 1, 0},       {1, 0, 0.05f},     {1, 0, 1},        {0.5f, 1000, 0.5f},
  };
  constexpr int64_t kRows = 8, kVocab = 64, kRounds = 40;
  int draws = 0, used = 0;
  for (size_t si = 0; si < settings.size(); ++si) {
    const Setting& set = settings[si];
    SamplingParams params;
    params.temperature = set.temperature;
    params.top_k = set.top_k;
    params.top_p = set.top_p;
    std::vector<std::mt19937_64> engines;
    for (int64_t r = 0; r < kRows; ++r) engines.emplace_back(1000 * si + r + 1);
    for (int round = 0; round < kRounds; ++round) {
      torch::Tensor logits = TestLogits(kRows, kVocab, 7919 * si + round);
      // Each row's u as the scheduler draws it: from a copy of the request's engine.
      std::vector<std::mt19937_64> after = engines;
      torch::Tensor in = torch::zeros({4, kRows}, torch::kFloat64);
      for (int64_t r = 0; r < kRows; ++r) {
        in[kDrawTemperature][r] = static_cast<double>(set.temperature);
        in[kDrawTopK][r] = set.top_k;
        in[kDrawTopP][r] = static_cast<double>(set.top_p);
        if (set.temperature > 0) in[kDrawUniform][r] = std::generate_canonical<double, 53>(after[r]);
      }
      torch::Tensor out = DrawTokens(logits, in, /*any_sampled=*/set.temperature > 0);
      ASSERT_EQ(out.sizes(), torch::IntArrayRef({3, kRows}));
      for (int64_t r = 0; r < kRows; ++r) {
        const std::mt19937_64 before = engines[r];
        const server::SampledToken want = server::Sample(Row(logits, r), params, &engines[r]);
        const int32_t id = static_cast<int32_t>(out[kDrawnId][r].item<double>());
        const double logprob = out[kDrawnLogprob][r].item<double>();
        const bool used_u = out[kDrawnUsedUniform][r].item<double>() != 0;
        const std::string what = "setting " + std::to_string(si) + " round " + std::to_string(round) +
                                 " row " + std::to_string(r);
        ASSERT_EQ(id, want.id) << what;
        EXPECT_NEAR(logprob, want.logprob, LogprobTolerance(want.logprob, kVocab)) << what;
        // The engine moved as Sample moved it: by one draw, or not at all.
        EXPECT_TRUE(engines[r] == (used_u ? after[r] : before)) << what << ": the engine";
        ++draws;
        used += used_u;
      }
    }
  }
  EXPECT_EQ(draws, static_cast<int>(settings.size() * kRows * kRounds));
  EXPECT_GT(used, draws / 2) << "most sampled draws pick among several candidates";
}

TEST(DrawTokens, RowsOfOneBatchDrawIndependently) {
  c10::InferenceMode guard;
  // One batch mixing greedy and sampled rows gives each row what it gives alone.
  torch::Tensor logits = TestLogits(4, 32, 5);
  torch::Tensor params = torch::tensor({{0.0, 1.0, 0.9, 0.0},     // temperature
                                        {0.0, 3.0, 0.0, 0.0},     // top_k
                                        {0.0, 0.0, 0.8, 0.0},     // top_p
                                        {0.0, 0.5, 0.25, 0.0}},   // u
                                       torch::kFloat64);
  torch::Tensor together = DrawTokens(logits, params);
  for (int64_t r = 0; r < 4; ++r) {
    torch::Tensor alone = DrawTokens(logits.narrow(0, r, 1), params.narrow(1, r, 1));
    EXPECT_TRUE(torch::equal(together.narrow(1, r, 1), alone)) << "row " << r;
  }
  // A greedy-only batch may skip the sort: the same answer.
  torch::Tensor greedy = torch::zeros({4, 2}, torch::kFloat64);
  EXPECT_TRUE(torch::equal(DrawTokens(logits.narrow(0, 0, 2), greedy, false),
                           DrawTokens(logits.narrow(0, 0, 2), greedy, true)));
}

}  // namespace
}  // namespace elliptical::model
