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

}  // namespace
}  // namespace elliptical::server
