// Token sampling: greedy picks the arg max, filters keep only what they should, and a seed
// fixes the draw.
#include <cmath>
#include <map>

#include <gtest/gtest.h>

#include "server/generation/sampler.h"

namespace elliptical::server {
namespace {

const std::vector<float> kLogits = {0.1f, 3.0f, 2.5f, -1.0f, 2.9f, 0.0f};

TEST(Sampler, GreedyTakesTheArgMaxWithItsLogProb) {
  std::mt19937_64 rng(1);
  SampledToken t = Sample(kLogits, {}, &rng);
  EXPECT_EQ(t.id, 1);
  EXPECT_LT(t.logprob, 0.0f);
  EXPECT_GT(t.logprob, -1.5f);
}

TEST(Sampler, TopKAndTopPKeepOnlyTheBestTokens) {
  std::mt19937_64 rng(7);
  std::map<int, int> seen;
  for (int i = 0; i < 2000; ++i) ++seen[Sample(kLogits, {1.0f, 2, 0}, &rng).id];
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen.count(1) && seen.count(4));
  seen.clear();
  // Probabilities ~ .38 (id 1), .34 (id 4), .23 (id 2): 0.5 of the mass needs the top two.
  for (int i = 0; i < 2000; ++i) ++seen[Sample(kLogits, {1.0f, 0, 0.5f}, &rng).id];
  EXPECT_EQ(seen.size(), 2u);
}

// A temperature whose inverse overflows float32 is greedy, with a finite log-probability.
TEST(Sampler, TinyTemperatureIsGreedyWithoutNaN) {
  std::mt19937_64 rng(3);
  for (float temperature : {1e-40f, 1e-30f, 1e-8f}) {
    for (int i = 0; i < 50; ++i) {
      SampledToken t = Sample(kLogits, {temperature, 0, 0.9f}, &rng);
      EXPECT_EQ(t.id, 1) << "temperature " << temperature;
      EXPECT_TRUE(std::isfinite(t.logprob)) << "temperature " << temperature;
    }
  }
}

TEST(Sampler, SameSeedSameDraws) {
  std::mt19937_64 a(42), b(42), c(43);
  std::vector<int> da, db, dc;
  for (int i = 0; i < 50; ++i) {
    da.push_back(Sample(kLogits, {1.5f, 0, 0}, &a).id);
    db.push_back(Sample(kLogits, {1.5f, 0, 0}, &b).id);
    dc.push_back(Sample(kLogits, {1.5f, 0, 0}, &c).id);
  }
  EXPECT_EQ(da, db);
  EXPECT_NE(da, dc);
}

// The penalties as OpenAI and vLLM define them, on logits small enough to work by hand.
TEST(Sampler, PenaltiesAndBiasFollowTheirDefinitions) {
  const std::vector<float> logits = {2.0f, -1.0f, 0.5f, 1.0f};
  TokenHistory history;
  history.output_counts = {{0, 3}, {1, 1}};  // token 0 produced three times, token 1 once
  history.prompt = {2};

  SamplingParams p;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  // mu[j] - c[j] * frequency - (c[j] > 0) * presence
  EXPECT_EQ(AdjustedLogits(logits, p, history), (std::vector<float>{2.0f - 1.5f - 0.25f, -1.0f - 0.5f - 0.25f, 0.5f, 1.0f}));

  SamplingParams r;
  r.repetition_penalty = 2.0f;
  // Seen in the prompt or the output, once each: positive logits halved, negative doubled.
  EXPECT_EQ(AdjustedLogits(logits, r, history), (std::vector<float>{1.0f, -2.0f, 0.25f, 1.0f}));

  SamplingParams b;
  b.logit_bias = {{3, -100.0f}, {1, 4.0f}, {99, 1.0f}};  // an id beyond the logits is skipped
  EXPECT_EQ(AdjustedLogits(logits, b, history), (std::vector<float>{2.0f, 3.0f, 0.5f, -99.0f}));
  std::mt19937_64 rng(1);
  EXPECT_EQ(Sample(AdjustedLogits(logits, b, history), {}, &rng).id, 1);

  EXPECT_FALSE(AdjustsLogits(SamplingParams{}));
  EXPECT_TRUE(AdjustsLogits(p) && AdjustsLogits(r) && AdjustsLogits(b));
  EXPECT_FALSE(NeedsHistory(b));
}

TEST(Sampler, GreedyTopLogprobsAreTheBestOfTheSoftmax) {
  std::mt19937_64 rng(1);
  SamplingParams p;
  p.top_logprobs = 3;
  SampledToken t = Sample(kLogits, p, &rng);
  double z = 0;
  for (float v : kLogits) z += std::exp(static_cast<double>(v));
  ASSERT_EQ(t.top.size(), 3u);
  const int expected_ids[] = {1, 4, 2};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(t.top[i].first, expected_ids[i]);
    // float32 log-softmax of values near 3: a few ulps of 1e-7 relative each.
    EXPECT_NEAR(t.top[i].second, kLogits[expected_ids[i]] - std::log(z), 1e-5);
  }
  EXPECT_EQ(t.top[0].second, t.logprob);
  EXPECT_TRUE(Sample(kLogits, {}, &rng).top.empty());
}

TEST(Sampler, SampledTopLogprobsComeFromTheFilteredDistribution) {
  std::mt19937_64 rng(5);
  SamplingParams p{1.0f, 2, 0};
  p.top_logprobs = 5;  // more than top_k keeps: only the kept ones are listed
  for (int i = 0; i < 20; ++i) {
    SampledToken t = Sample(kLogits, p, &rng);
    ASSERT_EQ(t.top.size(), 2u);
    EXPECT_EQ(t.top[0].first, 1);
    EXPECT_EQ(t.top[1].first, 4);
    // Renormalised over the two kept: p(1) = 1 / (1 + e^-0.1).
    EXPECT_NEAR(t.top[0].second, -std::log1p(std::exp(-0.1)), 1e-6);
    EXPECT_NEAR(std::exp(t.top[0].second) + std::exp(t.top[1].second), 1.0, 1e-6);
    EXPECT_EQ(t.logprob, t.id == 1 ? t.top[0].second : t.top[1].second);
  }
}

TEST(Sampler, ParamsOutOfRangeAreRefusedByName) {
  auto message = [](SamplingParams p) { return std::string(CheckSamplingParams(p).message()); };
  SamplingParams p;
  p.presence_penalty = 2.5f;
  EXPECT_NE(message(p).find("presence_penalty"), std::string::npos);
  p = {};
  p.frequency_penalty = std::nanf("");
  EXPECT_NE(message(p).find("frequency_penalty"), std::string::npos);
  p = {};
  p.repetition_penalty = 0;
  EXPECT_NE(message(p).find("repetition_penalty"), std::string::npos);
  p = {};
  p.logit_bias = {{-1, 1.0f}};
  EXPECT_NE(message(p).find("logit_bias"), std::string::npos);
  p.logit_bias = {{1, 100.5f}};
  EXPECT_NE(message(p).find("logit_bias"), std::string::npos);
  p.logit_bias.assign(kMaxLogitBiasEntries + 1, {1, 1.0f});
  EXPECT_NE(message(p).find("logit_bias"), std::string::npos);
  p = {};
  p.top_logprobs = kMaxTopLogprobs + 1;
  EXPECT_NE(message(p).find("top_logprobs"), std::string::npos);
  p = {};
  p.presence_penalty = -2;
  p.frequency_penalty = 2;
  p.repetition_penalty = 10;
  p.logit_bias = {{0, -100.0f}};
  p.top_logprobs = kMaxTopLogprobs;
  EXPECT_TRUE(CheckSamplingParams(p).ok());
}

}  // namespace
}  // namespace elliptical::server
